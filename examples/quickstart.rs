//! The project's main job: "too many clients" reproduced, and cured.
//!
//! The same workload (by default 200 concurrent tasks, each running five
//! queries, one of which sleeps 20 ms so connections are held a moment) runs
//! three ways, one after another, against a server allowing 20 connections:
//!
//! - `connection_per_call`: every task opens its own tokio-postgres connection;
//! - `pool_per_call`: every task builds its own `PgPool` (the broken pattern);
//! - `shared_pool`: one `PgPool` of 10 shared by every task.
//!
//! A monitor with its own connection samples `pg_stat_activity` meanwhile
//! (each strategy connects with its own `application_name`), and a table
//! shows what each strategy completed, how often the server refused it, the
//! peak of server connections it held, its throughput and its latency.
//!
//! ```text
//! cargo run --release --example quickstart                 # a throwaway server
//! DATABASE_URL=postgres://... cargo run --release --example quickstart
//! cargo run --release --example quickstart -- --json --tasks 500 --seconds 5
//! ```
//!
//! Without `DATABASE_URL` it starts a throwaway PostgreSQL server (the
//! `test-server` feature of pool-postgres; needs the server binaries, e.g.
//! `apt-get install postgresql`) with `max_connections=20`, and stops it on
//! exit, Ctrl-C included.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use examples::{error_chain, is_too_many_clients, percentile_ms};
use pool_postgres::{PgPool, PgPoolBuilder};
use pool_postgres_test_server::TestServer;
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;
use tokio_postgres::NoTls;

/// Queries per task (one of them is the `pg_sleep`).
const QUERIES: u64 = 5;

/// `max_connections` of the throwaway server.
const THROWAWAY_MAX_CONNECTIONS: u32 = 20;

/// "Too many clients" reproduced with a connection per call and a pool per
/// call, and cured by one shared pool.
///
/// Uses DATABASE_URL if set; otherwise starts a throwaway PostgreSQL server
/// allowing 20 connections.
#[derive(Parser, Debug)]
#[command(name = "quickstart")]
struct Args {
    /// Concurrent tasks per strategy.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    tasks: u32,
    /// Connections in the shared pool.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pool_size: u32,
    /// How long one of each task's queries sleeps on the server (pg_sleep), holding its connection.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    sleep_ms: u32,
    /// Run each strategy for this many seconds (every task loops) instead of one round.
    #[arg(long, value_parser = parse_seconds)]
    seconds: Option<f64>,
    /// Print the results as one JSON object keyed by strategy instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!("`{text}` is not a number of seconds between 0 and 86400 (e.g. 5 or 0.5)")),
    }
}

/// The three ways of running the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    ConnectionPerCall,
    PoolPerCall,
    SharedPool,
}

impl Strategy {
    const ALL: [Self; 3] = [Self::ConnectionPerCall, Self::PoolPerCall, Self::SharedPool];

    fn name(self) -> &'static str {
        match self {
            Self::ConnectionPerCall => "connection_per_call",
            Self::PoolPerCall => "pool_per_call",
            Self::SharedPool => "shared_pool",
        }
    }

    /// The `application_name` its connections carry, for the monitor.
    fn application_name(self) -> String {
        format!("quickstart_{}", self.name())
    }
}

/// What one strategy did.
#[derive(Debug, Default)]
struct Outcome {
    ok: u64,
    errors: u64,
    too_many_clients: u64,
    peak_server_connections: i64,
    elapsed: Duration,
    /// Per successful task: from its start (connecting or borrowing
    /// included) to its last query's answer.
    latencies: Vec<Duration>,
    /// The first error that was not "too many clients", if any.
    other_error: Option<String>,
}

impl Outcome {
    fn ops_per_sec(&self) -> f64 {
        (self.ok * QUERIES) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn to_json(&self) -> Value {
        let round = |v: f64| (v * 100.0).round() / 100.0;
        json!({
            "ok": self.ok,
            "errors": self.errors,
            "too_many_clients": self.too_many_clients,
            "peak_server_connections": self.peak_server_connections,
            "ops_per_sec": round(self.ops_per_sec()),
            "p50_ms": percentile_ms(&self.latencies, 50.0).map(round),
            "p99_ms": percentile_ms(&self.latencies, 99.0).map(round),
        })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("quickstart: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (server, url) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => (None, url),
        _ => {
            eprintln!(
                "DATABASE_URL is not set: starting a throwaway PostgreSQL server with \
                 max_connections={THROWAWAY_MAX_CONNECTIONS}..."
            );
            match TestServer::builder().max_connections(THROWAWAY_MAX_CONNECTIONS).start() {
                Ok(server) => {
                    eprintln!(
                        "throwaway server listening on 127.0.0.1:{} (stopped on exit, Ctrl-C included)",
                        server.port()
                    );
                    let url = server.url();
                    (Some(server), url)
                }
                Err(e) => {
                    eprintln!("quickstart: could not start a throwaway server: {e}");
                    eprintln!("(or point DATABASE_URL at a PostgreSQL server you may connect 200 times to)");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            result = run(&args, &url) => match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("quickstart: {e}");
                    ExitCode::FAILURE
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\nquickstart: interrupted; stopping");
                ExitCode::from(130)
            }
        }
    });
    // Ends every task (and their connections) before the server goes.
    runtime.shutdown_timeout(Duration::from_secs(2));
    if let Some(server) = server {
        drop(server);
        eprintln!("stopped the throwaway server");
    }
    code
}

async fn run(args: &Args, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let shared = PgPoolBuilder::from_url(url)?
        .max_size(args.pool_size as usize)
        .name("quickstart")
        .postgres_config(|c| {
            c.application_name(Strategy::SharedPool.application_name());
        })
        .build()?;
    // The same server, user and options for raw connections (pool
    // parameters of the URL already taken out).
    let base = shared.postgres_config().clone();
    let monitor = Monitor::connect(&base).await?;
    let max_connections = monitor.max_connections().await?;
    let deadline = args.seconds.map(Duration::from_secs_f64);

    let mut results = Vec::new();
    for strategy in Strategy::ALL {
        let unit = Arc::new(Unit {
            strategy,
            url: url.to_owned(),
            base: base.clone(),
            shared: shared.clone(),
            sleep: f64::from(args.sleep_ms) / 1000.0,
        });
        let outcome = run_strategy(unit, args.tasks, deadline, &monitor).await;
        results.push((strategy, outcome));
    }
    shared.close_and_wait(Duration::from_secs(10)).await?;

    if args.json {
        let mut object = Map::new();
        for (strategy, outcome) in &results {
            object.insert(strategy.name().to_owned(), outcome.to_json());
        }
        println!("{}", Value::Object(object));
    } else {
        print_table(args, max_connections, &results);
    }
    Ok(())
}

/// Everything a task needs to run one unit of work the strategy's way.
struct Unit {
    strategy: Strategy,
    url: String,
    base: tokio_postgres::Config,
    shared: PgPool,
    /// Seconds one query sleeps.
    sleep: f64,
}

/// What went wrong in one unit of work.
struct Failure {
    too_many_clients: bool,
    text: String,
}

impl Failure {
    fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        Self { too_many_clients: is_too_many_clients(error), text: error_chain(error) }
    }
}

impl Unit {
    /// Connects (the strategy's way), runs the queries, lets go.
    async fn once(&self) -> Result<(), Failure> {
        match self.strategy {
            Strategy::ConnectionPerCall => {
                let mut config = self.base.clone();
                config.application_name(self.strategy.application_name());
                let (client, connection) = config.connect(NoTls).await.map_err(|e| Failure::of(&e))?;
                let driver = tokio::spawn(connection);
                let result = raw_queries(&client, self.sleep).await.map_err(|e| Failure::of(&e));
                drop(client);
                let _ = driver.await; // the connection is closed once this ends
                result
            }
            Strategy::PoolPerCall => {
                // The broken pattern: a pool built where a connection is needed.
                let pool = PgPoolBuilder::from_url(&self.url)
                    .map_err(|e| Failure::of(&e))?
                    .postgres_config(|c| {
                        c.application_name(self.strategy.application_name());
                    })
                    .build()
                    .map_err(|e| Failure::of(&e))?;
                let client = pool.get().await.map_err(|e| Failure::of(&e))?;
                pooled_queries(&client, self.sleep).await.map_err(|e| Failure::of(&e))
                // `pool` is dropped here, which closes its connection.
            }
            Strategy::SharedPool => {
                let client = self.shared.get().await.map_err(|e| Failure::of(&e))?;
                pooled_queries(&client, self.sleep).await.map_err(|e| Failure::of(&e))
            }
        }
    }
}

/// The queries of one task on a raw connection (prepared on every call, as
/// code without a pool does).
async fn raw_queries(client: &tokio_postgres::Client, sleep: f64) -> Result<(), tokio_postgres::Error> {
    for i in 0..QUERIES as i32 {
        if i == 2 {
            client.query_one("SELECT pg_sleep($1)", &[&sleep]).await?;
        } else {
            let row = client.query_one("SELECT $1::int + 1", &[&i]).await?;
            debug_assert_eq!(row.get::<_, i32>(0), i + 1);
        }
    }
    Ok(())
}

/// The same queries through a pooled connection (statements cached per connection).
async fn pooled_queries(client: &pool_postgres::Client, sleep: f64) -> Result<(), pool_postgres::Error> {
    for i in 0..QUERIES as i32 {
        if i == 2 {
            client.query_one("SELECT pg_sleep($1)", &[&sleep]).await?;
        } else {
            let row = client.query_one("SELECT $1::int + 1", &[&i]).await?;
            debug_assert_eq!(row.get::<_, i32>(0), i + 1);
        }
    }
    Ok(())
}

/// Counts shared by the tasks of one strategy, for the progress line.
#[derive(Default)]
struct Progress {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Runs `tasks` concurrent tasks the strategy's way: one unit each, or
/// units in a loop until `duration` has passed.
async fn run_strategy(unit: Arc<Unit>, tasks: u32, duration: Option<Duration>, monitor: &Monitor) -> Outcome {
    let progress = Arc::new(Progress::default());
    let sampling = monitor.sample(unit.strategy.application_name());
    let reporter = show_progress(unit.strategy, tasks, duration, Arc::clone(&progress));
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);

    let mut set = JoinSet::new();
    for _ in 0..tasks {
        let unit = Arc::clone(&unit);
        let progress = Arc::clone(&progress);
        set.spawn(async move {
            let mut outcome = Outcome::default();
            loop {
                let began = Instant::now();
                match unit.once().await {
                    Ok(()) => {
                        outcome.ok += 1;
                        outcome.latencies.push(began.elapsed());
                        progress.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(failure) => {
                        outcome.errors += 1;
                        if failure.too_many_clients {
                            outcome.too_many_clients += 1;
                        } else if outcome.other_error.is_none() {
                            outcome.other_error = Some(failure.text);
                        }
                        progress.failed.fetch_add(1, Ordering::Relaxed);
                        if deadline.is_some() {
                            // Do not spin on a server that refuses us.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                match deadline {
                    Some(deadline) if Instant::now() < deadline => {}
                    _ => break,
                }
            }
            outcome
        });
    }
    let mut total = Outcome::default();
    while let Some(done) = set.join_next().await {
        let Ok(outcome) = done else { continue };
        total.ok += outcome.ok;
        total.errors += outcome.errors;
        total.too_many_clients += outcome.too_many_clients;
        total.latencies.extend(outcome.latencies);
        if total.other_error.is_none() {
            total.other_error = outcome.other_error;
        }
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    reporter.finish();
    total.peak_server_connections = sampling.stop().await;
    // Let the server see this strategy's connections end before the next one.
    monitor.wait_until_gone(&unit.strategy.application_name(), Duration::from_secs(5)).await;
    total
}

/// A connection of its own that watches `pg_stat_activity`.
struct Monitor {
    client: Arc<tokio_postgres::Client>,
    _driver: AbortOnDrop,
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

const COUNT_SQL: &str = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1";

impl Monitor {
    async fn connect(base: &tokio_postgres::Config) -> Result<Self, String> {
        let mut config = base.clone();
        config.application_name("quickstart_monitor");
        let (client, connection) = config.connect(NoTls).await.map_err(|e| {
            format!("cannot connect to {}: {}", examples::describe_target(base), error_chain(&e))
        })?;
        let driver = tokio::spawn(connection);
        Ok(Self { client: Arc::new(client), _driver: AbortOnDrop(driver.abort_handle()) })
    }

    async fn max_connections(&self) -> Result<i64, String> {
        pool_postgres::insight::server_limits(&*self.client)
            .await
            .map(|limits| limits.max_connections)
            .map_err(|e| error_chain(&e))
    }

    async fn count(&self, application_name: &str) -> Option<i64> {
        self.client.query_one(COUNT_SQL, &[&application_name]).await.ok().map(|row| row.get(0))
    }

    /// Samples the connections of `application_name` until stopped.
    fn sample(&self, application_name: String) -> Sampling {
        let client = Arc::clone(&self.client);
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicI64::new(0));
        let task = {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            tokio::spawn(async move {
                let Ok(statement) = client.prepare(COUNT_SQL).await else { return };
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(row) = client.query_one(&statement, &[&application_name]).await {
                        peak.fetch_max(row.get(0), Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        Sampling { stop, peak, task }
    }

    async fn wait_until_gone(&self, application_name: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count(application_name).await.unwrap_or(0) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A running sampler.
struct Sampling {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampling {
    /// Stops sampling and returns the peak seen.
    async fn stop(self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

/// A progress line on stderr, redrawn in place, when stderr is a terminal.
struct Reporter {
    task: Option<AbortOnDrop>,
}

impl Reporter {
    fn finish(self) {
        if self.task.is_some() {
            drop(self.task);
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}

fn show_progress(
    strategy: Strategy,
    tasks: u32,
    duration: Option<Duration>,
    progress: Arc<Progress>,
) -> Reporter {
    if !std::io::stderr().is_terminal() {
        return Reporter { task: None };
    }
    let started = Instant::now();
    let task = tokio::spawn(async move {
        const SPINNER: [char; 4] = ['|', '/', '-', '\\'];
        let mut tick = 0usize;
        loop {
            let ok = progress.ok.load(Ordering::Relaxed);
            let failed = progress.failed.load(Ordering::Relaxed);
            let done = match duration {
                Some(d) => format!("{:.1}/{:.0} s", started.elapsed().as_secs_f64(), d.as_secs_f64()),
                None => format!("{}/{tasks} tasks", ok + failed),
            };
            eprint!(
                "\r\x1b[2K{} {:<20} {done}, {ok} ok, {failed} failed",
                SPINNER[tick % 4],
                strategy.name()
            );
            let _ = std::io::stderr().flush();
            tick += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Reporter { task: Some(AbortOnDrop(task.abort_handle())) }
}

fn print_table(args: &Args, max_connections: i64, results: &[(Strategy, Outcome)]) {
    let round = match args.seconds {
        Some(s) => format!("{} tasks looping for {s} s", args.tasks),
        None => format!("{} concurrent tasks", args.tasks),
    };
    println!(
        "{round}, {QUERIES} queries each (one sleeps {} ms), against a server with \
         max_connections={max_connections}; shared pool of {}",
        args.sleep_ms, args.pool_size
    );
    println!();
    println!(
        "{:<20}  {:>9}  {:>6}  {:>16}  {:>10}  {:>9}  {:>7}  {:>7}",
        "strategy", "completed", "failed", "too many clients", "peak conns", "queries/s", "p50 ms", "p99 ms"
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    for (strategy, o) in results {
        println!(
            "{:<20}  {:>9}  {:>6}  {:>16}  {:>10}  {:>9.0}  {:>7}  {:>7}",
            strategy.name(),
            o.ok,
            o.errors,
            o.too_many_clients,
            o.peak_server_connections,
            o.ops_per_sec(),
            ms(percentile_ms(&o.latencies, 50.0)),
            ms(percentile_ms(&o.latencies, 99.0)),
        );
    }
    println!();
    println!(
        "completed/failed count tasks; latency is per task (connecting or waiting for a pooled \
         connection included); peak conns is the most server connections the strategy held at once \
         (sampled from pg_stat_activity)."
    );
    for (strategy, o) in results {
        if let Some(error) = &o.other_error {
            println!("{}: other failures, e.g. {error}", strategy.name());
        }
    }
}

//! The end-to-end benchmark: the same PostgreSQL workloads through each way
//! of getting connections (a connection per call, a pool per call,
//! deadpool-postgres, bb8-postgres, pool-postgres, and pgbench as the
//! reference), in one run, one after the other, against a throwaway server
//! (or `DATABASE_URL`); then the same workloads through a throwaway
//! PgBouncer in transaction mode in front of a throwaway server
//! (pool-postgres in pooler mode, deadpool-postgres with `simple_query`,
//! pgbench with `-M simple`).
//!
//! ```sh
//! cargo run --release -p benches --bin e2e            # full run: every cell, minutes
//! cargo run --release -p benches --bin e2e -- --quick # smoke test, seconds
//! ```
//!
//! See `benches/README.md`, section "End-to-end (PostgreSQL)", for what is
//! measured and how, and `--help` for the options.

mod cell;
mod measurement;
mod output;
mod pgbench;
mod plots;
mod strategies;
mod through_pgbouncer;
mod workloads;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use pool_core::ErrorChain;
use pool_postgres_test_server::TestServer;
use serde::{Deserialize, Serialize};

use crate::cell::{CellOutcome, CellSpec};
use crate::measurement::{Sampler, Samples, load_average};
use crate::strategies::Strategy;
use crate::workloads::Workload;

/// The end-to-end benchmark: PostgreSQL workloads through each connection
/// strategy, against a throwaway server (or DATABASE_URL).
#[derive(Debug, Parser)]
#[command(name = "e2e")]
#[allow(clippy::struct_excessive_bools, reason = "command-line switches")]
struct Args {
    /// Smoke test: tiny durations, concurrency 1 and 16, a tight case with
    /// 100 tasks, pgbench with -t instead of -T; a few seconds in all.
    #[arg(long)]
    quick: bool,
    /// Measured seconds per cell (default 3; 0.08 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Unmeasured warm-up seconds per cell (default 0.5; 0.04 with --quick).
    #[arg(long)]
    warmup: Option<f64>,
    /// Only these strategies (comma-separated): naive, naive_pool, deadpool,
    /// deadpool_cached, bb8, pool, pool_prepared, pool_shared, shared_client,
    /// pgbench, pgbench_c; and
    /// through PgBouncer pool_pgbouncer, deadpool_simple, pgbench_simple.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Only these workloads (comma-separated): select1, point_read, short_tx.
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Concurrency levels (tasks; comma-separated). Default 1,16,64,256,1024
    /// (1,16 with --quick).
    #[arg(long, value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// max_size of every pool.
    #[arg(long, default_value_t = 10)]
    pool_size: usize,
    /// Rows in the table of point_read and short_tx (default 100000; 10000 with --quick).
    #[arg(long)]
    rows: Option<i32>,
    /// max_connections of the throwaway server for the grid.
    #[arg(long, default_value_t = 100)]
    max_connections: u32,
    /// Tasks in the tight case (default 1000; 100 with --quick).
    #[arg(long)]
    tight_tasks: Option<usize>,
    /// max_connections of the tight case's server.
    #[arg(long, default_value_t = 20)]
    tight_max_connections: u32,
    /// The tight case's workload.
    #[arg(long, default_value = "point_read")]
    tight_workload: String,
    /// Skip the tight case.
    #[arg(long)]
    no_tight: bool,
    /// Skip the through-PgBouncer part.
    #[arg(long)]
    no_pgbouncer: bool,
    /// Run only the through-PgBouncer part (no grid, no tight case).
    #[arg(long, conflicts_with = "no_pgbouncer")]
    pgbouncer_only: bool,
    /// Concurrency levels of the through-PgBouncer part (comma-separated).
    /// Default 16,64,256 (16 with --quick).
    #[arg(long, value_delimiter = ',')]
    pgbouncer_concurrency: Vec<usize>,
    /// PgBouncer's default_pool_size (server connections per database and
    /// user) in the through-PgBouncer part; the client pools keep --pool-size.
    #[arg(long, default_value_t = 5)]
    pgbouncer_pool_size: u32,
    /// Start a throwaway server even when DATABASE_URL is set.
    #[arg(long)]
    own_server: bool,
    /// Interval of the pg_stat_activity sampler, in milliseconds.
    #[arg(long, default_value_t = 10)]
    sample_ms: u64,
    /// Where to write e2e.json, e2e.md and the plots (default
    /// benches/results; a temporary directory with --quick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Internal: run one cell (JSON) in this process and print its outcome.
    #[arg(long, hide = true)]
    cell: Option<String>,
}

/// The machine the run took place on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) cpu: String,
    pub(crate) memory_gib: f64,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
    pub(crate) load_average_start: Option<[f64; 3]>,
    pub(crate) load_average_end: Option<[f64; 3]>,
}

/// The server(s).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Server {
    /// "throwaway server (TestServer)" or "DATABASE_URL".
    pub(crate) source: String,
    pub(crate) version: String,
    pub(crate) grid_max_connections: i64,
    pub(crate) tight_max_connections: Option<i64>,
    pub(crate) pgbench: Option<String>,
    /// PgBouncer's version line, when the through-PgBouncer part ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pgbouncer: Option<String>,
}

/// The run's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Settings {
    pub(crate) warmup_s: f64,
    pub(crate) seconds: f64,
    pub(crate) pool_size: usize,
    pub(crate) rows: i32,
    pub(crate) concurrency: Vec<usize>,
    pub(crate) workloads: Vec<Workload>,
    pub(crate) strategies: Vec<Strategy>,
    pub(crate) tight_tasks: Option<usize>,
    pub(crate) tight_workload: Workload,
    pub(crate) sample_ms: u64,
    /// Concurrency levels of the through-PgBouncer part (empty: skipped).
    #[serde(default)]
    pub(crate) pgbouncer_concurrency: Vec<usize>,
    #[serde(default)]
    pub(crate) pgbouncer_pool_size: u32,
    /// The strategies of the through-PgBouncer part.
    #[serde(default)]
    pub(crate) pgbouncer_strategies: Vec<Strategy>,
}

/// One cell's result, with what the parent saw of the server meanwhile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CellRecord {
    pub(crate) workload: Workload,
    pub(crate) concurrency: usize,
    pub(crate) strategy: Strategy,
    #[serde(flatten)]
    pub(crate) outcome: CellOutcome,
    /// Most client connections the server had at once (sampled), others'
    /// connections (present before the run) subtracted.
    pub(crate) peak_server_connections: Option<i64>,
    pub(crate) sampler_failures: u64,
    /// (ms since the cell started, connections), tight case only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timeline: Option<Vec<(f64, i64)>>,
}

/// The whole run: what `e2e.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) mode: String,
    pub(crate) command: String,
    pub(crate) started_utc: String,
    pub(crate) wall_s: f64,
    pub(crate) machine: Machine,
    pub(crate) server: Server,
    pub(crate) settings: Settings,
    pub(crate) cells: Vec<CellRecord>,
    pub(crate) tight: Vec<CellRecord>,
    /// The through-PgBouncer part.
    #[serde(default)]
    pub(crate) pgbouncer: Vec<CellRecord>,
    pub(crate) targets: Vec<output::Target>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(cell) = &args.cell {
        return child(cell);
    }
    match orchestrate(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The child side: run one cell, print its outcome as one JSON line.
fn child(json: &str) -> std::process::ExitCode {
    let outcome = serde_json::from_str::<CellSpec>(json)
        .map_err(|e| format!("bad cell spec: {e}"))
        .and_then(|spec| cell::run_here(&spec));
    match outcome.and_then(|o| serde_json::to_string(&o).map_err(|e| e.to_string())) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("e2e cell: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn parse_list<T>(
    names: &[String],
    all: &[T],
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Vec<T>, String>
where
    T: Copy,
{
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    names.iter().map(|n| parse(n.trim()).ok_or_else(|| format!("unknown {what} {n:?}"))).collect()
}

/// The settings `args` ask for.
fn settings(args: &Args) -> Result<Settings, String> {
    let quick = args.quick;
    let concurrency = if args.concurrency.is_empty() {
        if quick { vec![1, 16] } else { vec![1, 16, 64, 256, 1024] }
    } else {
        args.concurrency.clone()
    };
    let pgbouncer_concurrency = if args.no_pgbouncer {
        Vec::new()
    } else if args.pgbouncer_concurrency.is_empty() {
        if quick { vec![16] } else { vec![16, 64, 256] }
    } else {
        args.pgbouncer_concurrency.clone()
    };
    if concurrency.contains(&0) || pgbouncer_concurrency.contains(&0) {
        return Err("a concurrency of 0 runs nothing".into());
    }
    let (mut grid_strategies, pgbouncer_strategies): (Vec<_>, Vec<_>) = parse_list(
        &args.only,
        &[&Strategy::ALL[..], &Strategy::THROUGH_PGBOUNCER[..]].concat(),
        Strategy::parse,
        "strategy",
    )?
    .into_iter()
    .partition(|s| !s.through_pgbouncer());
    if args.pgbouncer_only {
        grid_strategies.clear();
    }
    let settings = Settings {
        warmup_s: args.warmup.unwrap_or(if quick { 0.04 } else { 0.5 }),
        seconds: args.seconds.unwrap_or(if quick { 0.08 } else { 3.0 }),
        pool_size: args.pool_size,
        rows: args.rows.unwrap_or(if quick { 10_000 } else { 100_000 }),
        concurrency,
        workloads: parse_list(&args.workloads, &Workload::ALL, Workload::parse, "workload")?,
        strategies: grid_strategies,
        tight_tasks: (!args.no_tight).then(|| args.tight_tasks.unwrap_or(if quick { 100 } else { 1000 })),
        tight_workload: Workload::parse(&args.tight_workload)
            .ok_or_else(|| format!("unknown workload {:?}", args.tight_workload))?,
        sample_ms: args.sample_ms.max(1),
        pgbouncer_concurrency,
        pgbouncer_pool_size: args.pgbouncer_pool_size.max(1),
        pgbouncer_strategies,
    };
    if !(settings.seconds > 0.0 && settings.warmup_s >= 0.0) || settings.pool_size == 0 || settings.rows < 1 {
        return Err("--seconds and --pool-size and --rows must be positive, --warmup not negative".into());
    }
    Ok(settings)
}

fn machine() -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned()))
        .unwrap_or_default();
    let mem_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:").and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0.0);
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        cpu,
        memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        rustc,
        load_average_start: None,
        load_average_end: None,
    }
}

/// A server for one part of the run: a throwaway one (kept alive here) or
/// `DATABASE_URL`.
struct Database {
    url: String,
    _server: Option<TestServer>,
}

fn throwaway(max_connections: u32) -> Result<Database, String> {
    let server = TestServer::builder()
        .max_connections(max_connections)
        .start()
        .map_err(|e| format!("could not start a throwaway PostgreSQL server: {e}"))?;
    Ok(Database { url: server.url(), _server: Some(server) })
}

/// Creates the table and reads the server's version and max_connections.
pub(crate) async fn prepare(url: &str, rows: i32) -> Result<(String, i64), String> {
    let config = cell::client_config(url, "e2e-setup")?;
    let (client, connection) =
        config.connect(tokio_postgres::NoTls).await.map_err(|e| format!("connecting to {url}: {e}"))?;
    let driver = tokio::spawn(connection);
    let setup = async {
        client.batch_execute(&workloads::setup_sql(rows)).await?;
        client.batch_execute(workloads::VACUUM).await?;
        let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
        let max: String = client.query_one("SHOW max_connections", &[]).await?.get(0);
        Ok::<_, tokio_postgres::Error>((version, max.parse().unwrap_or(0)))
    };
    let out = setup.await.map_err(|e| format!("setting up the table: {}", ErrorChain(&e)));
    drop(client);
    let _ = driver.await;
    out
}

/// What one cell runs: a child process of this binary, or pgbench.
enum Job {
    Child(CellSpec),
    Pgbench(pgbench::Run),
}

impl Job {
    fn run(self) -> CellOutcome {
        match self {
            Self::Child(spec) => cell::run_in_child(&spec),
            Self::Pgbench(run) => run.run(),
        }
    }
}

/// Runs `job` while sampling the server's connections, then waits for the
/// server to be back to `baseline` connections.
async fn measure(
    sampler: &mut Sampler,
    job: Job,
    baseline: i64,
    sample_every: Duration,
) -> (CellOutcome, Samples) {
    let handle = tokio::task::spawn_blocking(move || job.run());
    let samples = sampler.watch(sample_every, || handle.is_finished()).await;
    let outcome = handle.await.unwrap_or_else(|e| CellOutcome::failed(format!("the cell panicked: {e}")));
    if sampler.drain(baseline, Duration::from_secs(15)).await.is_none_or(|n| n > baseline) {
        eprintln!("e2e: warning: the server still has connections left over from the last cell");
    }
    (outcome, samples)
}

/// What every cell of the run shares.
pub(crate) struct Run<'a> {
    settings: &'a Settings,
    quick: bool,
    pgbench_version: Option<&'a String>,
}

/// The server a part of the run (the grid, the tight case) runs against.
struct Target<'a> {
    url: &'a str,
    postmaster: Option<u32>,
}

/// A cell's job, or the reason it cannot run.
fn job(
    run: &Run<'_>,
    target: &Target<'_>,
    strategy: Strategy,
    workload: Workload,
    concurrency: usize,
) -> Result<Job, String> {
    let (settings, url) = (run.settings, target.url);
    if strategy.is_pgbench() {
        if run.pgbench_version.is_none() {
            return Err("pgbench is not on PATH".into());
        }
        return Ok(Job::Pgbench(pgbench::Run {
            connect_each: strategy == Strategy::PgbenchC,
            simple: strategy == Strategy::PgbenchSimple,
            workload,
            concurrency,
            warmup_s: settings.warmup_s,
            seconds: settings.seconds,
            transactions: run.quick.then_some(10),
            url: url.to_owned(),
            rows: settings.rows,
            postmaster: target.postmaster,
        }));
    }
    Ok(Job::Child(CellSpec {
        strategy,
        workload,
        concurrency,
        pool_size: settings.pool_size,
        warmup_s: settings.warmup_s,
        seconds: settings.seconds,
        url: url.to_owned(),
        rows: settings.rows,
        postmaster: target.postmaster,
    }))
}

fn progress(done: usize, total: usize, r: &CellRecord) {
    let o = &r.outcome;
    eprintln!(
        "[{done}/{total}] {} c={} {}: {:.0} ops/s, p99 {}, starved {}, errors {} (too many clients {}), peak server conns {}, CPU/op client {} server {}{}",
        r.workload.name(),
        r.concurrency,
        r.strategy.name(),
        o.ops_per_sec,
        o.latency.p99_us.map_or_else(|| "-".to_owned(), |us| format!("{:.2} ms", us / 1000.0)),
        o.starved_tasks,
        o.error_total(),
        o.errors_of(measurement::TOO_MANY_CLIENTS),
        r.peak_server_connections.map_or_else(|| "-".to_owned(), |n| n.to_string()),
        o.client_cpu_us_per_op.map_or_else(|| "-".to_owned(), |us| format!("{us:.0} µs")),
        o.server_cpu_us_per_op.map_or_else(|| "-".to_owned(), |us| format!("{us:.0} µs")),
        o.note.as_ref().map_or_else(String::new, |n| format!(" [{n}]")),
    );
}

pub(crate) struct Part<'a> {
    /// Where the cells connect.
    url: &'a str,
    /// The server itself, for the sampler (the same as `url` unless a
    /// pooler is in between).
    server_url: &'a str,
    /// Server connections that may stay open between cells (a pooler's own).
    lingering: i64,
    cells: Vec<(Workload, usize, Strategy)>,
    keep_timeline: bool,
}

pub(crate) async fn run_part(
    run: &Run<'_>,
    part: Part<'_>,
    done: &mut usize,
    total: usize,
) -> Result<Vec<CellRecord>, String> {
    let settings = run.settings;
    let config = cell::client_config(part.server_url, "e2e-sampler")?;
    let mut sampler = Sampler::connect(&config).await.map_err(|e| format!("sampler: {e}"))?;
    let baseline = sampler.count().await.map_err(|e| format!("sampler: {e}"))?;
    let target = Target {
        url: part.url,
        postmaster: sampler.backend_pid().await.ok().and_then(measurement::postmaster_of),
    };
    let every = Duration::from_millis(settings.sample_ms);
    let mut records = Vec::new();
    for (workload, concurrency, strategy) in part.cells {
        let (outcome, samples) = match job(run, &target, strategy, workload, concurrency) {
            Ok(job) => measure(&mut sampler, job, baseline + part.lingering, every).await,
            Err(reason) => (CellOutcome::failed(format!("skipped: {reason}")), Samples::default()),
        };
        let record = CellRecord {
            workload,
            concurrency,
            strategy,
            outcome,
            peak_server_connections: samples.peak().map(|n| (n - baseline).max(0)),
            sampler_failures: samples.failures,
            timeline: part.keep_timeline.then(|| {
                samples
                    .points
                    .iter()
                    .map(|&(ms, n)| ((ms * 10.0).round() / 10.0, (n - baseline).max(0)))
                    .collect()
            }),
        };
        *done += 1;
        progress(*done, total, &record);
        records.push(record);
    }
    Ok(records)
}

/// The tight case: many tasks against a server with few slots, on its own
/// throwaway server; returns its cells and that server's max_connections.
fn tight_part(
    run: &Run<'_>,
    runtime: &tokio::runtime::Runtime,
    args: &Args,
    strategies: &[Strategy],
    done: &mut usize,
    total: usize,
) -> Result<(Vec<CellRecord>, Option<i64>), String> {
    let settings = run.settings;
    let Some(tasks) = settings.tight_tasks.filter(|_| !strategies.is_empty()) else {
        return Ok((Vec::new(), None));
    };
    if !TestServer::binaries_available() {
        eprintln!("e2e: no PostgreSQL server binaries for the tight case's own server; skipped");
        return Ok((Vec::new(), None));
    }
    let server = throwaway(args.tight_max_connections)?;
    let (_, max) = runtime.block_on(prepare(&server.url, settings.rows))?;
    let cells = strategies.iter().map(|&s| (settings.tight_workload, tasks, s)).collect();
    let part = Part { url: &server.url, server_url: &server.url, lingering: 0, cells, keep_timeline: true };
    Ok((runtime.block_on(run_part(run, part, done, total))?, Some(max)))
}

fn orchestrate(args: &Args) -> Result<(), String> {
    let settings = settings(args)?;
    let quick = args.quick;
    let out_dir = args.out.clone().unwrap_or_else(|| {
        if quick {
            std::env::temp_dir().join("e2e-quick")
        } else {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results")
        }
    });
    let started = Instant::now();
    let started_utc = output::utc(SystemTime::now());
    let mut machine = machine();
    machine.load_average_start = load_average();
    let pgbench_version = pgbench::version();

    let database_url = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty() && !args.own_server);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the Tokio runtime: {e}"))?;

    let mut grid_cells = Vec::new();
    for &w in &settings.workloads {
        for &c in &settings.concurrency {
            grid_cells.extend(settings.strategies.iter().map(|&s| (w, c, s)));
        }
    }
    let tight_strategies: Vec<_> = settings.strategies.iter().copied().filter(|s| !s.is_pgbench()).collect();
    let tight_count = if settings.tight_tasks.is_some() { tight_strategies.len() } else { 0 };

    let pgbouncer_cells = through_pgbouncer::cells(&settings);
    let total = grid_cells.len() + tight_count + pgbouncer_cells.len();
    let mut done = 0;
    let run = Run { settings: &settings, quick, pgbench_version: pgbench_version.as_ref() };

    let (mut version, mut grid_max) = (String::new(), 0);
    let mut cells = Vec::new();
    // No grid strategies (--pgbouncer-only, or --only naming none): no grid server.
    if !grid_cells.is_empty() {
        let grid = match &database_url {
            Some(url) => Database { url: url.clone(), _server: None },
            None => throwaway(args.max_connections)?,
        };
        (version, grid_max) = runtime.block_on(prepare(&grid.url, settings.rows))?;
        eprintln!(
            "e2e: PostgreSQL {version} (max_connections {grid_max}), {} cells; load average {:?}",
            total, machine.load_average_start
        );
        cells = runtime.block_on(run_part(
            &run,
            Part {
                url: &grid.url,
                server_url: &grid.url,
                lingering: 0,
                cells: grid_cells,
                keep_timeline: false,
            },
            &mut done,
            total,
        ))?;
    }

    let (tight, tight_max) = tight_part(&run, &runtime, args, &tight_strategies, &mut done, total)?;
    let through = through_pgbouncer::run(&run, &runtime, pgbouncer_cells, &mut done, total)?;
    if version.is_empty() {
        version.clone_from(&through.server_version);
    }
    machine.load_average_end = load_average();

    let mut report = Report {
        mode: if quick { "quick" } else { "full" }.to_owned(),
        command: std::iter::once("cargo run --release -p benches --bin e2e --".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        started_utc,
        wall_s: started.elapsed().as_secs_f64(),
        machine,
        server: Server {
            source: if database_url.is_some() {
                "DATABASE_URL".to_owned()
            } else {
                "throwaway server (pool-postgres TestServer, fsync=off)".to_owned()
            },
            version,
            grid_max_connections: grid_max,
            tight_max_connections: tight_max,
            pgbench: pgbench_version,
            pgbouncer: through.pgbouncer_version,
        },
        settings,
        cells,
        tight,
        pgbouncer: through.cells,
        targets: Vec::new(),
    };
    report.targets = output::targets(&report);
    output::write(&report, &out_dir)?;
    eprintln!("e2e: wrote {}", out_dir.display());
    Ok(())
}

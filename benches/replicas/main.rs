//! Read throughput with a streaming replica against the primary alone.
//!
//! Starts a throwaway primary and a replica of it (`pg_basebackup -R`),
//! fills a table on the primary, waits for the replica to replay it, then
//! runs point reads (`SELECT v FROM replica_bench WHERE k = $1`, random
//! key, the value checked) from `--tasks` tasks for `--seconds` per cell,
//! through three set-ups, rounds alternated so the machine's drift hits
//! each alike:
//!
//! - `primary_only`: a pool over the primary alone (`connection_limit=10`), `get()`;
//! - `replica_alone`: a pool over the replica alone, `get()` (no routing:
//!   what the standby itself serves);
//! - `replica_only`: a pool over both (`connection_limit=20`, 10 each),
//!   `get_for(Standby)`: every read on the replica;
//! - `prefer_replica`: the same pool, `read()`: the replica first, the
//!   primary when the replica's share is all in use.
//!
//! Prints a markdown table (median ops/s per set-up, ratio to
//! `primary_only`) with the command and the machine. On a machine where
//! both servers share the same cores, a replica adds no capacity: the
//! table shows what the routing costs, not what a second machine gains.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use pool_postgres::{PgPool, TargetSessionAttrs};
use pool_postgres_test_server::TestServer;

const ROWS: i32 = 100_000;

#[derive(Parser)]
#[command(about = "Read throughput with a streaming replica against the primary alone")]
struct Args {
    /// Concurrent tasks.
    #[arg(long, default_value_t = 64)]
    tasks: usize,
    /// Measured seconds per cell.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Rounds (each runs every set-up once).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

#[derive(Clone, Copy)]
enum Setup {
    PrimaryOnly,
    ReplicaAlone,
    ReplicaOnly,
    PreferReplica,
}

impl Setup {
    const ALL: [Self; 4] = [Self::PrimaryOnly, Self::ReplicaAlone, Self::ReplicaOnly, Self::PreferReplica];

    fn name(self) -> &'static str {
        match self {
            Self::PrimaryOnly => "primary_only",
            Self::ReplicaAlone => "replica_alone",
            Self::ReplicaOnly => "replica_only",
            Self::PreferReplica => "prefer_replica",
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let primary =
        TestServer::builder().setting("fsync", "off").setting("synchronous_commit", "off").start()?;
    let replica = primary.start_replica()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(run(&args, &primary, &replica));
    drop(runtime);
    result
}

async fn run(
    args: &Args,
    primary: &TestServer,
    replica: &TestServer,
) -> Result<(), Box<dyn std::error::Error>> {
    let alone = PgPool::from_url(&format!("{}?connection_limit=10", primary.url()))?;
    let replica_alone = PgPool::from_url(&format!("{}?connection_limit=10", replica.url()))?;
    let both = PgPool::from_url(&format!(
        "postgres://{}@{}:{},{}:{}/postgres?connection_limit=20",
        primary.user(),
        primary.host(),
        primary.port(),
        replica.host(),
        replica.port()
    ))?;
    let client = alone.get().await?;
    client.batch_execute("CREATE TABLE replica_bench (k int PRIMARY KEY, v text NOT NULL)").await?;
    client
        .execute("INSERT INTO replica_bench SELECT k, 'v' || k FROM generate_series(1, $1) k", &[&ROWS])
        .await?;
    client.batch_execute("ANALYZE replica_bench").await?;
    drop(client);
    replica.wait_for_replay(primary, Duration::from_secs(60))?;

    let load = load_average();
    let mut results: Vec<(Setup, Vec<f64>)> = Setup::ALL.iter().map(|s| (*s, Vec::new())).collect();
    for _ in 0..args.rounds {
        for (setup, runs) in &mut results {
            let pool = match setup {
                Setup::PrimaryOnly => &alone,
                Setup::ReplicaAlone => &replica_alone,
                Setup::ReplicaOnly | Setup::PreferReplica => &both,
            };
            runs.push(cell(pool, *setup, args).await?);
        }
    }
    println!("# Read throughput with one streaming replica\n");
    println!(
        "- Command: `cargo run --release -p benches --bin replicas -- --tasks {} --seconds {} --rounds {}`",
        args.tasks, args.seconds, args.rounds
    );
    println!(
        "- Machine: {} cores, load average at the start {load}; both servers throwaway (fsync=off) on this machine.",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "- Point reads of a {ROWS}-row table, each value checked; {} tasks; pools of 10 per server.\n",
        args.tasks
    );
    println!("| set-up | ops/s per round | median | ratio to primary_only |");
    println!("|---|---|---:|---:|");
    let base = median(&results[0].1);
    for (setup, runs) in &results {
        let listed: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
        let m = median(runs);
        println!("| {} | {} | {m:.0} | {:.2} |", setup.name(), listed.join(", "), m / base);
    }
    alone.close_and_wait(Duration::from_secs(5)).await?;
    replica_alone.close_and_wait(Duration::from_secs(5)).await?;
    both.close_and_wait(Duration::from_secs(5)).await?;
    Ok(())
}

/// One cell: `args.tasks` tasks reading for `args.seconds`; ops per second.
async fn cell(pool: &PgPool, setup: Setup, args: &Args) -> Result<f64, Box<dyn std::error::Error>> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for task in 0..args.tasks {
        let (pool, stop, done) = (pool.clone(), Arc::clone(&stop), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut key = (task as i32 * 7919) % ROWS + 1;
            while !stop.load(Ordering::Relaxed) {
                let client = match setup {
                    Setup::PrimaryOnly | Setup::ReplicaAlone => pool.get().await,
                    Setup::ReplicaOnly => pool.get_for(TargetSessionAttrs::Standby).await,
                    Setup::PreferReplica => pool.read().await,
                }
                .map_err(|e| e.to_string())?;
                let row = client
                    .query_one("SELECT v FROM replica_bench WHERE k = $1", &[&key])
                    .await
                    .map_err(|e| e.to_string())?;
                let value: &str = row.get(0);
                if value != format!("v{key}") {
                    return Err(format!("key {key} read {value:?}"));
                }
                done.fetch_add(1, Ordering::Relaxed);
                key = (key + 7918) % ROWS + 1;
            }
            Ok::<(), String>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (start_ops, started) = (done.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    let ops = done.load(Ordering::Relaxed) - start_ops;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?.map_err(|e| format!("{}: {e}", setup.name()))?;
    }
    Ok(ops as f64 / elapsed)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) { f64::midpoint(sorted[mid - 1], sorted[mid]) } else { sorted[mid] }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| String::from("unknown"),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

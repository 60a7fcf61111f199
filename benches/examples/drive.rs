//! Drives one pool through one scenario of the `pool_core` bench for a
//! fixed number of rounds, with nothing else in the process: the thing to
//! put under `perf record` or `perf stat`, or to time two builds of
//! pool-core against each other in alternating runs.
//!
//! ```sh
//! cargo run --release -p benches --example drive -- POOL SCENARIO [SIZE] [WORKERS] [ROUNDS]
//! #   POOL: pool-core | deadpool | bb8 | baseline | semaphore     SCENARIO: s1 | s2 | s3
//! cargo run --release -p benches --example drive -- clock   # cost of one clock read
//! ```
//!
//! `s1` and `s2` run `ROUNDS` rounds (default 3000) of `WORKERS` tasks
//! (default 64) on a pool of `SIZE` (default 4), on the bench's two-thread
//! runtime, and print the mean time per round. `s3` runs 20 million
//! uncontended get + drop cycles on a current-thread runtime (pool size
//! 16) and prints the mean per cycle. Means, not medians: this is a probe
//! for profiles and quick comparisons; the recorded tables (`results/`)
//! come from the bench itself.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use benches::interleave::{current_thread_runtime, multi_thread_runtime};
use benches::workload::{cycles, round_hold, round_yield};
use benches::{Baseline, BenchPool, Semaphore, managers};

const USAGE: &str = "usage: drive (pool-core|deadpool|bb8|baseline|semaphore) (s1|s2|s3) [SIZE] [WORKERS] [ROUNDS] | drive clock";

/// Uncontended cycles in `s3`.
const S3_CYCLES: u64 = 20_000_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("clock") {
        clock();
        return ExitCode::SUCCESS;
    }
    let number = |i: usize, default: usize| args.get(i).map_or(Ok(default), |a| a.parse::<usize>());
    let (Some(pool), Some(scenario), Ok(size), Ok(workers), Ok(rounds)) =
        (args.first(), args.get(1), number(2, 4), number(3, 64), number(4, 3000))
    else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let scenario = scenario.as_str();
    if !matches!(scenario, "s1" | "s2" | "s3") || size == 0 || rounds == 0 {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    }
    if scenario == "s3" {
        let runtime = current_thread_runtime();
        let took = match pool.as_str() {
            "pool-core" => runtime.block_on(async { s3(&managers::pool_core(16)).await }),
            "deadpool" => runtime.block_on(async { s3(&managers::deadpool(16, false)).await }),
            "bb8" => runtime.block_on(async { s3(&managers::bb8(16).await).await }),
            "baseline" => runtime.block_on(s3(&Baseline)),
            "semaphore" => runtime.block_on(s3(&Semaphore::new(16))),
            other => {
                eprintln!("unknown pool {other:?}\n{USAGE}");
                return ExitCode::FAILURE;
            }
        };
        println!("{pool} s3: {:.1} ns per get + drop", took.as_nanos() as f64 / S3_CYCLES as f64);
        return ExitCode::SUCCESS;
    }
    let runtime = multi_thread_runtime();
    let took = match pool.as_str() {
        "pool-core" => {
            runtime.block_on(async { grid(&managers::pool_core(size), scenario, workers, rounds).await })
        }
        "deadpool" => runtime
            .block_on(async { grid(&managers::deadpool(size, false), scenario, workers, rounds).await }),
        "bb8" => {
            runtime.block_on(async { grid(&managers::bb8(size).await, scenario, workers, rounds).await })
        }
        "baseline" => runtime.block_on(grid(&Baseline, scenario, workers, rounds)),
        "semaphore" => runtime.block_on(grid(&Semaphore::new(size), scenario, workers, rounds)),
        other => {
            eprintln!("unknown pool {other:?}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{pool} {scenario} {size} x {workers}: {:.1} µs per round",
        took.as_secs_f64() * 1e6 / rounds as f64
    );
    ExitCode::SUCCESS
}

/// `rounds` rounds of `s1` or `s2`; the time they took.
async fn grid<P: BenchPool>(pool: &P, scenario: &str, workers: usize, rounds: usize) -> Duration {
    let mut waits = Vec::with_capacity(workers * benches::CYCLES);
    let started = Instant::now();
    for _ in 0..rounds {
        if scenario == "s2" {
            waits.clear();
            round_yield(pool, workers, &mut waits).await;
        } else {
            round_hold(pool, workers).await;
        }
    }
    started.elapsed()
}

/// `S3_CYCLES` get + drop cycles after a tenth as many to warm up.
async fn s3<P: BenchPool>(pool: &P) -> Duration {
    cycles(pool, S3_CYCLES / 10).await;
    let started = Instant::now();
    cycles(pool, S3_CYCLES).await;
    started.elapsed()
}

/// What one read of the clock the pool uses costs here.
fn clock() {
    let n = 20_000_000u32;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(tokio::time::Instant::now());
    }
    println!("{:.1} ns per tokio::time::Instant::now()", started.elapsed().as_nanos() as f64 / f64::from(n));
}

//! pool-core against deadpool 0.13 and bb8 0.9, all with no-op managers,
//! side by side in one run, plus a no-pool baseline and a reference: Tokio's
//! fair semaphore on its own (`benches::Semaphore`), the queueing every
//! first-come-first-served pool must do, with no objects to keep.
//!
//! - `s1/…`: the grid of the public rust-pool-benchmark on a multi-thread
//!   runtime: pool size {4, 8, 16} × workers {4, 16, 64, 256}; a round spawns
//!   the workers, each doing 10 get / modify / drop cycles, and joins them.
//! - `s2/…`: the same grid, each worker holding the object across
//!   `yield_now` so the pool runs dry and waiters queue; the wait of every
//!   `get` is recorded and its p99 reported.
//! - `s3/…`: one task doing get + drop in a loop on a current-thread runtime.
//!
//! The run has two parts:
//!
//! 1. criterion measures every benchmark on its own (one round, or one get +
//!    drop, per iteration; runtime and pool construction are outside the
//!    measured time via `iter_custom`), with its usual report and change
//!    detection against the previous run.
//! 2. The bench's own loop ([`benches::interleave`]) then measures each cell
//!    again with its five columns taking turns in 10 ms blocks, and prints
//!    one Markdown table per scenario: medians side by side, each pool's time
//!    above the baseline, and the p99 `get` wait. Interleaving makes the
//!    columns comparable on a machine whose background load drifts.
//!
//! Environment: `BENCH_QUICK=1` for a smoke test (tiny times);
//! `BENCH_ONLY=s1,s3` to run only some scenarios (both parts);
//! `BENCH_CRITERION=0` to skip part 1 (tables only), `BENCH_TABLE=0` to skip
//! part 2; `BENCH_DEADPOOL_TIMEOUT=1` to give deadpool a 30 s wait timeout
//! like pool-core's default (deadpool's own default has none). criterion's
//! filter argument selects criterion benchmarks
//! (`cargo bench -p benches --bench pool_core -- s2/`); it does not affect
//! the tables.

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::interleave::{
    Budget, Column, CyclesColumn, Grid, GridColumn, current_thread_runtime, interleave, multi_thread_runtime,
};
use benches::report::{Row, Table};
use benches::workload::{cycles, round_hold, round_yield};
use benches::{Baseline, BenchPool, Semaphore, managers};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use tokio::runtime::Runtime;

/// Pool sizes of the grid.
const SIZES: [usize; 3] = [4, 8, 16];
/// Worker counts of the grid.
const WORKERS: [usize; 4] = [4, 16, 64, 256];
/// Pool size for scenario 3 (uncontended, so it hardly matters).
const S3_SIZE: usize = 16;

/// Run-wide settings, from the environment.
#[derive(Debug, Clone, Copy)]
struct Settings {
    quick: bool,
    warm_up: Duration,
    measurement: Duration,
    sample_size: usize,
    nresamples: usize,
    table: Budget,
    deadpool_timeout: bool,
}

impl Settings {
    fn from_env() -> Self {
        let quick = env_flag("BENCH_QUICK", false);
        let deadpool_timeout = env_flag("BENCH_DEADPOOL_TIMEOUT", false);
        if quick {
            Self {
                quick,
                warm_up: Duration::from_millis(20),
                measurement: Duration::from_millis(60),
                sample_size: 10,
                nresamples: 1_000,
                table: Budget {
                    warm_up: Duration::from_millis(10),
                    measure: Duration::from_millis(40),
                    block: Duration::from_millis(5),
                },
                deadpool_timeout,
            }
        } else {
            Self {
                quick,
                warm_up: Duration::from_millis(300),
                measurement: Duration::from_secs(1),
                sample_size: 15,
                nresamples: 10_000,
                table: Budget {
                    warm_up: Duration::from_millis(100),
                    measure: Duration::from_millis(600),
                    block: Duration::from_millis(10),
                },
                deadpool_timeout,
            }
        }
    }

    fn criterion(&self) -> Criterion {
        Criterion::default()
            .warm_up_time(self.warm_up)
            .measurement_time(self.measurement)
            .sample_size(self.sample_size)
            .nresamples(self.nresamples)
            .without_plots()
            .configure_from_args()
    }
}

/// An on/off environment variable: unset gives `default`; empty or `0` is off.
fn env_flag(name: &str, default: bool) -> bool {
    std::env::var(name).map_or(default, |v| !v.is_empty() && v != "0")
}

/// Whether `BENCH_ONLY` (a comma-separated list like `s1,s3`) selects `scenario`.
fn selected(scenario: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == scenario))
}

// ---------------------------------------------------------------------------
// Part 1: criterion.

/// One criterion benchmark of a grid cell: each iteration is one round.
fn criterion_grid<P: BenchPool>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    grid: Grid,
    workers: usize,
    build: impl FnOnce(&Runtime) -> P,
) {
    let rt = multi_thread_runtime();
    let pool = build(&rt);
    let mut waits = Vec::new();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    match grid {
                        Grid::Hold => round_hold(&pool, workers).await,
                        Grid::Yield => {
                            // Same work as in the tables, waits included;
                            // they are only reported there.
                            waits.clear();
                            round_yield(&pool, workers, &mut waits).await;
                        }
                    }
                }
                started.elapsed()
            })
        });
    });
    let _inside = rt.enter();
    drop(pool);
}

fn criterion_grids(c: &mut Criterion, grid: Grid, settings: Settings) {
    for size in SIZES {
        for workers in WORKERS {
            let mut group = c.benchmark_group(format!("{}/size{size}_workers{workers}", grid.scenario()));
            criterion_grid(&mut group, "baseline", grid, workers, |_| Baseline);
            criterion_grid(&mut group, "pool-core", grid, workers, |rt| {
                let _inside = rt.enter();
                managers::pool_core(size)
            });
            criterion_grid(&mut group, "deadpool", grid, workers, |rt| {
                let _inside = rt.enter();
                managers::deadpool(size, settings.deadpool_timeout)
            });
            criterion_grid(&mut group, "bb8", grid, workers, |rt| rt.block_on(managers::bb8(size)));
            criterion_grid(&mut group, "semaphore", grid, workers, |_| Semaphore::new(size));
            group.finish();
        }
    }
}

/// One criterion benchmark of scenario 3: each iteration is one get + drop.
fn criterion_cycles<P: BenchPool>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    build: impl FnOnce(&Runtime) -> P,
) {
    let rt = current_thread_runtime();
    let pool = build(&rt);
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                cycles(&pool, iters).await;
                black_box(started.elapsed())
            })
        });
    });
    let _inside = rt.enter();
    drop(pool);
}

fn criterion_single_task(c: &mut Criterion, settings: Settings) {
    let mut group = c.benchmark_group("s3/get_drop");
    criterion_cycles(&mut group, "pool-core", |rt| {
        let _inside = rt.enter();
        managers::pool_core(S3_SIZE)
    });
    criterion_cycles(&mut group, "deadpool", |rt| {
        let _inside = rt.enter();
        managers::deadpool(S3_SIZE, settings.deadpool_timeout)
    });
    criterion_cycles(&mut group, "bb8", |rt| rt.block_on(managers::bb8(S3_SIZE)));
    criterion_cycles(&mut group, "semaphore", |_| Semaphore::new(S3_SIZE));
    group.finish();
}

// ---------------------------------------------------------------------------
// Part 2: the interleaved tables.

fn table_grid(grid: Grid, settings: Settings) -> Table {
    let mut table = Table::default();
    for size in SIZES {
        for workers in WORKERS {
            let deadpool_timeout = settings.deadpool_timeout;
            let mut columns: [Option<Box<dyn Column>>; 5] = [
                Some(Box::new(GridColumn::new(grid, workers, |_| Baseline))),
                Some(Box::new(GridColumn::new(grid, workers, |rt| {
                    let _inside = rt.enter();
                    managers::pool_core(size)
                }))),
                Some(Box::new(GridColumn::new(grid, workers, |rt| {
                    let _inside = rt.enter();
                    managers::deadpool(size, deadpool_timeout)
                }))),
                Some(Box::new(GridColumn::new(grid, workers, |rt| rt.block_on(managers::bb8(size))))),
                Some(Box::new(GridColumn::new(grid, workers, |_| Semaphore::new(size)))),
            ];
            let columns = interleave(&mut columns, settings.table);
            let cell = format!("{size} × {workers}");
            eprintln!("table {}: {cell} measured", grid.scenario());
            table.rows.push(Row { cell, columns });
        }
    }
    table
}

fn table_single_task(settings: Settings) -> Table {
    let deadpool_timeout = settings.deadpool_timeout;
    let mut columns: [Option<Box<dyn Column>>; 5] = [
        None,
        Some(Box::new(CyclesColumn::new(|rt| {
            let _inside = rt.enter();
            managers::pool_core(S3_SIZE)
        }))),
        Some(Box::new(CyclesColumn::new(|rt| {
            let _inside = rt.enter();
            managers::deadpool(S3_SIZE, deadpool_timeout)
        }))),
        Some(Box::new(CyclesColumn::new(|rt| rt.block_on(managers::bb8(S3_SIZE))))),
        Some(Box::new(CyclesColumn::new(|_| Semaphore::new(S3_SIZE)))),
    ];
    let columns = interleave(&mut columns, settings.table);
    Table { rows: vec![Row { cell: format!("1 task, current_thread, size {S3_SIZE}"), columns }] }
}

fn main() {
    let settings = Settings::from_env();
    let (s1, s2, s3) = (selected("s1"), selected("s2"), selected("s3"));

    if env_flag("BENCH_CRITERION", true) {
        let mut c = settings.criterion();
        if s1 {
            criterion_grids(&mut c, Grid::Hold, settings);
        }
        if s2 {
            criterion_grids(&mut c, Grid::Yield, settings);
        }
        if s3 {
            criterion_single_task(&mut c, settings);
        }
        c.final_summary();
    }
    if !env_flag("BENCH_TABLE", true) {
        return;
    }

    let tables = [
        s1.then(|| table_grid(Grid::Hold, settings)),
        s2.then(|| table_grid(Grid::Yield, settings)),
        s3.then(|| table_single_task(settings)),
    ];
    let budget = settings.table;
    println!();
    println!(
        "# pool-core vs deadpool vs bb8, and a bare Tokio semaphore ({}; tables: per column {:?} warm-up, then {:?} measured \
         in {:?} turns interleaved with the other columns; deadpool wait timeout: {})",
        if settings.quick { "QUICK mode, smoke test only" } else { "full run" },
        budget.warm_up,
        budget.measure,
        budget.block,
        if settings.deadpool_timeout { "30 s" } else { "none (its default)" },
    );
    let [t1, t2, t3] = tables;
    if let Some(table) = t1 {
        println!("\n## Scenario 1: get / modify / drop, 10 cycles per worker (median time per round)\n");
        print!("{}", table.render_grid(false));
    }
    if let Some(table) = t2 {
        println!(
            "\n## Scenario 2: get / modify / yield_now / drop, 10 cycles per worker \
             (median time per round; p99 of the single get waits)\n"
        );
        print!("{}", table.render_grid(true));
    }
    if let Some(table) = t3 {
        println!("\n## Scenario 3: uncontended get + drop in one task (median ns per cycle)\n");
        print!("{}", table.render_cycles());
    }
}

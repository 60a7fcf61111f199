//! The bench's own sample loop for the printed tables: the columns of one
//! cell (baseline, pool-core, deadpool, bb8, semaphore) take turns in short
//! blocks until each has had its time budget, so a change in background load
//! (other processes on a shared machine) hits every column alike instead of
//! whichever criterion happened to be measuring at that moment.
//!
//! Each column owns its Tokio runtime and pool; building them is not
//! measured, and neither is the warm-up each column gets first.

use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::report::{Measured, median, quantile};
use crate::workload::{BenchPool, cycles, round_hold, round_yield};

/// The two grid scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grid {
    /// Scenario 1: get / modify / drop.
    Hold,
    /// Scenario 2: get / modify / yield / drop, with the wait of each get recorded.
    Yield,
}

impl Grid {
    /// `s1` or `s2`.
    pub fn scenario(self) -> &'static str {
        match self {
            Self::Hold => "s1",
            Self::Yield => "s2",
        }
    }
}

/// What a column has measured so far.
#[derive(Debug, Default)]
pub struct Samples {
    /// ns per round (grid) or ns per cycle of one batch (scenario 3).
    pub values: Vec<f64>,
    /// ns waited by each single `get` (scenario 2 only).
    pub waits: Vec<u64>,
}

impl Samples {
    /// The median value and, if any waits were recorded, their p99.
    pub fn finish(mut self) -> Option<Measured> {
        let median_ns = median(&mut self.values)?;
        let p99_wait_ns = quantile(&mut self.waits, 0.99);
        Some(Measured { median_ns, samples: self.values.len(), p99_wait_ns })
    }
}

/// One column of a cell: something that can run its workload for a while.
pub trait Column {
    /// Runs whole rounds (or batches) until at least `budget` has passed
    /// (at least one), adding what it measured to `samples`.
    fn run(&mut self, budget: Duration, samples: &mut Samples);
}

/// A grid column: rounds of scenario 1 or 2 on its own multi-thread runtime.
pub struct GridColumn<P: BenchPool> {
    rt: Runtime,
    pool: Option<P>,
    grid: Grid,
    workers: usize,
}

impl<P: BenchPool> GridColumn<P> {
    /// Builds the runtime and then the pool with `build` (given the runtime
    /// so it can build inside it).
    pub fn new(grid: Grid, workers: usize, build: impl FnOnce(&Runtime) -> P) -> Self {
        let rt = multi_thread_runtime();
        let pool = Some(build(&rt));
        Self { rt, pool, grid, workers }
    }
}

impl<P: BenchPool> Column for GridColumn<P> {
    fn run(&mut self, budget: Duration, samples: &mut Samples) {
        let pool = self.pool.as_ref().expect("the pool lives as long as the column");
        let (grid, workers) = (self.grid, self.workers);
        self.rt.block_on(async {
            let began = Instant::now();
            loop {
                let started = Instant::now();
                match grid {
                    Grid::Hold => round_hold(pool, workers).await,
                    Grid::Yield => round_yield(pool, workers, &mut samples.waits).await,
                }
                samples.values.push(started.elapsed().as_nanos() as f64);
                if began.elapsed() >= budget {
                    break;
                }
            }
        });
    }
}

impl<P: BenchPool> Drop for GridColumn<P> {
    fn drop(&mut self) {
        let _inside = self.rt.enter();
        self.pool = None;
    }
}

/// Cycles per batch in scenario 3 (a batch is one sample).
pub const CYCLES_PER_BATCH: u64 = 1_000;

/// A scenario-3 column: batches of get + drop on its own current-thread runtime.
pub struct CyclesColumn<P: BenchPool> {
    rt: Runtime,
    pool: Option<P>,
}

impl<P: BenchPool> CyclesColumn<P> {
    /// Builds the runtime and then the pool with `build`.
    pub fn new(build: impl FnOnce(&Runtime) -> P) -> Self {
        let rt = current_thread_runtime();
        let pool = Some(build(&rt));
        Self { rt, pool }
    }
}

impl<P: BenchPool> Column for CyclesColumn<P> {
    fn run(&mut self, budget: Duration, samples: &mut Samples) {
        let pool = self.pool.as_ref().expect("the pool lives as long as the column");
        self.rt.block_on(async {
            let began = Instant::now();
            loop {
                let started = Instant::now();
                cycles(pool, CYCLES_PER_BATCH).await;
                samples.values.push(started.elapsed().as_nanos() as f64 / CYCLES_PER_BATCH as f64);
                if began.elapsed() >= budget {
                    break;
                }
            }
        });
    }
}

impl<P: BenchPool> Drop for CyclesColumn<P> {
    fn drop(&mut self) {
        let _inside = self.rt.enter();
        self.pool = None;
    }
}

/// How long the interleaved loop runs each column.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Unmeasured warm-up per column (creates the objects, warms caches).
    pub warm_up: Duration,
    /// Measured time per column.
    pub measure: Duration,
    /// Length of one turn of one column.
    pub block: Duration,
}

/// Measures the columns of one cell in turns (the starting column rotates
/// each pass) until each has run for `budget.measure`; `None` columns are
/// skipped and stay `None`.
pub fn interleave<const N: usize>(
    columns: &mut [Option<Box<dyn Column + '_>>; N],
    budget: Budget,
) -> [Option<Measured>; N] {
    for column in columns.iter_mut().flatten() {
        column.run(budget.warm_up, &mut Samples::default());
    }
    let mut samples: [Samples; N] = std::array::from_fn(|_| Samples::default());
    let mut spent = [Duration::ZERO; N];
    let mut pass = 0;
    loop {
        let mut ran = false;
        for offset in 0..N {
            let index = (pass + offset) % N;
            let Some(column) = columns[index].as_mut() else { continue };
            if spent[index] >= budget.measure {
                continue;
            }
            let started = Instant::now();
            column.run(budget.block, &mut samples[index]);
            spent[index] += started.elapsed();
            ran = true;
        }
        if !ran {
            break;
        }
        pass += 1;
    }
    samples.map(Samples::finish)
}

/// A multi-thread runtime with the default worker count (one per core), as
/// `#[tokio::main]` would build it.
pub fn multi_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

/// A current-thread runtime.
pub fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

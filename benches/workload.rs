//! The workloads, written once over [`BenchPool`] so every pool (and the
//! no-pool baseline) runs exactly the same code, monomorphised.
//!
//! - [`round_hold`] (scenario 1): spawn `workers` tasks, each doing
//!   [`CYCLES`] get / modify / drop cycles, and join them all.
//! - [`round_yield`] (scenario 2): the same, but each task holds the object
//!   across `tokio::task::yield_now().await`, so the pool runs dry and
//!   waiters queue; the wait of every single `get` is recorded.
//! - [`cycles`] (scenario 3): one task doing get + drop in a loop.

use std::future::Future;
use std::hint::black_box;
use std::ops::DerefMut;
use std::time::Instant;

use crate::managers::{Baseline, Bb8Noop, CoreNoop, DeadpoolNoop, Local, Permit, Semaphore};

/// Get / modify / drop cycles per worker and round (as in the public
/// rust-pool-benchmark).
pub const CYCLES: usize = 10;

/// A pool the workloads can drive: a cheap handle whose `get` yields a guard
/// that derefs to the `u64` and gives it back on drop. Errors cannot happen
/// with the no-op managers (and no timeout fires), so `get` panics on one.
pub trait BenchPool: Clone + Send + Sync + 'static {
    /// The guard `get` returns.
    type Guard<'a>: DerefMut<Target = u64> + Send
    where
        Self: 'a;

    /// Borrows an object, waiting for one if need be.
    fn get(&self) -> impl Future<Output = Self::Guard<'_>> + Send;
}

impl BenchPool for Baseline {
    type Guard<'a> = Local;

    fn get(&self) -> impl Future<Output = Local> + Send {
        std::future::ready(Local(0))
    }
}

impl BenchPool for Semaphore {
    type Guard<'a> = Permit<'a>;

    fn get(&self) -> impl Future<Output = Permit<'_>> + Send {
        self.acquire()
    }
}

impl BenchPool for pool_core::Pool<CoreNoop> {
    type Guard<'a> = pool_core::Pooled<CoreNoop>;

    async fn get(&self) -> pool_core::Pooled<CoreNoop> {
        pool_core::Pool::get(self).await.expect("pool-core get failed")
    }
}

impl BenchPool for deadpool::managed::Pool<DeadpoolNoop> {
    type Guard<'a> = deadpool::managed::Object<DeadpoolNoop>;

    async fn get(&self) -> deadpool::managed::Object<DeadpoolNoop> {
        deadpool::managed::Pool::get(self).await.expect("deadpool get failed")
    }
}

impl BenchPool for bb8::Pool<Bb8Noop> {
    type Guard<'a> = bb8::PooledConnection<'a, Bb8Noop>;

    async fn get(&self) -> bb8::PooledConnection<'_, Bb8Noop> {
        bb8::Pool::get(self).await.expect("bb8 get failed")
    }
}

/// The "modify" step: increments the object through `DerefMut`, behind a
/// `black_box` so the compiler cannot fold it away (for the baseline too).
#[inline]
fn modify(guard: &mut impl DerefMut<Target = u64>) -> u64 {
    let value: &mut u64 = black_box(&mut **guard);
    *value += 1;
    *value
}

/// Scenario 1, one round: spawns `workers` tasks on the current runtime,
/// each doing [`CYCLES`] get / modify / drop cycles, and waits for all.
pub async fn round_hold<P: BenchPool>(pool: &P, workers: usize) {
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for _ in 0..CYCLES {
                let mut guard = pool.get().await;
                last = modify(&mut guard);
                drop(guard);
            }
            last
        }));
    }
    for task in tasks {
        black_box(task.await.expect("worker panicked"));
    }
}

/// Scenario 2, one round: like [`round_hold`], but each task holds the
/// object across `yield_now` (get, modify, yield, drop). The wait of every
/// `get` (clock read before and after it), in nanoseconds, is appended to
/// `waits` (`workers * CYCLES` values). The baseline reads the clock the
/// same way around its instant "get", so the clock reads are part of the
/// baseline too.
pub async fn round_yield<P: BenchPool>(pool: &P, workers: usize, waits: &mut Vec<u64>) {
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut task_waits = [0u64; CYCLES];
            for wait in &mut task_waits {
                let asked = Instant::now();
                let mut guard = pool.get().await;
                *wait = asked.elapsed().as_nanos() as u64;
                modify(&mut guard);
                tokio::task::yield_now().await;
                drop(guard);
            }
            task_waits
        }));
    }
    for task in tasks {
        waits.extend_from_slice(&task.await.expect("worker panicked"));
    }
}

/// Scenario 3: `n` get + drop cycles in the calling task (uncontended).
pub async fn cycles<P: BenchPool>(pool: &P, n: u64) {
    for _ in 0..n {
        let guard = pool.get().await;
        black_box(&guard);
        drop(guard);
    }
}

//! No-op managers: `create` returns a `u64` at once, `recycle` (or bb8's
//! `is_valid`) does nothing, so what is measured is the pool's own
//! bookkeeping and scheduling, not a backend.
//!
//! Also the constructors of the three pools with the settings the bench
//! uses (each library's defaults apart from `max_size`), the no-pool
//! [`Baseline`], and the [`Semaphore`] reference: Tokio's fair semaphore on
//! its own, the least a first-come-first-served pool has to do.

use std::convert::Infallible;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

/// pool-core's no-op [`pool_core::Manager`] (recycle keeps the default no-op).
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreNoop;

impl pool_core::Manager for CoreNoop {
    type Resource = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }
}

/// deadpool's no-op [`deadpool::managed::Manager`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadpoolNoop;

impl deadpool::managed::Manager for DeadpoolNoop {
    type Type = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn recycle(
        &self,
        _obj: &mut u64,
        _metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

/// bb8's no-op [`bb8::ManageConnection`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Bb8Noop;

impl bb8::ManageConnection for Bb8Noop {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn is_valid(&self, _conn: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut u64) -> bool {
        false
    }
}

/// A pool-core pool of `max_size` no-op resources, default settings
/// otherwise (`acquire_timeout` 30 s, which never fires here).
///
/// Call it inside a Tokio runtime, as a service would, so the maintenance
/// task starts at once.
pub fn pool_core(max_size: usize) -> pool_core::Pool<CoreNoop> {
    pool_core::Pool::builder(CoreNoop).max_size(max_size).build().expect("valid pool-core settings")
}

/// A deadpool pool of `max_size` no-op objects. deadpool's default has no
/// timeouts at all; with `wait_timeout` set (the bench's
/// `BENCH_DEADPOOL_TIMEOUT=1`) it gets a 30 s wait timeout like pool-core's
/// default, on the Tokio runtime.
pub fn deadpool(max_size: usize, wait_timeout: bool) -> deadpool::managed::Pool<DeadpoolNoop> {
    let builder = deadpool::managed::Pool::builder(DeadpoolNoop).max_size(max_size);
    let builder = if wait_timeout {
        builder.wait_timeout(Some(Duration::from_secs(30))).runtime(deadpool::Runtime::Tokio1)
    } else {
        builder
    };
    builder.build().expect("valid deadpool settings")
}

/// A bb8 pool of `max_size` no-op connections, default settings otherwise
/// (`connection_timeout` 30 s, `test_on_check_out` on). Must run inside a
/// Tokio runtime (bb8 spawns its reaper).
pub async fn bb8(max_size: usize) -> bb8::Pool<Bb8Noop> {
    let max_size = u32::try_from(max_size).expect("max_size fits in u32");
    bb8::Pool::builder().max_size(max_size).build(Bb8Noop).await.expect("bb8 pool builds")
}

/// The no-pool baseline: its "get" hands out a fresh local value at once,
/// so a baseline round does the same spawning, joining, modifying (and, in
/// scenario 2, yielding and clock reads) as a pool round, without a pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Baseline;

/// The baseline's "guard": a plain local `u64`.
#[derive(Debug, Default)]
pub struct Local(pub u64);

impl Deref for Local {
    type Target = u64;

    fn deref(&self) -> &u64 {
        &self.0
    }
}

impl DerefMut for Local {
    fn deref_mut(&mut self) -> &mut u64 {
        &mut self.0
    }
}

/// The reference column: Tokio's own fair semaphore with `max_size`
/// permits and no objects at all. Its `get` acquires a permit (waiting in
/// Tokio's first-come-first-served queue when none is free) and hands out a
/// fresh local value beside it; dropping the guard releases the permit to
/// the first waiter. That is the queueing and hand-over every fair pool
/// must do, without storing, checking or counting any object, so its share
/// above the baseline is what a pool's bookkeeping has to be measured
/// against. (deadpool is this semaphore plus a mutex-protected object queue.)
#[derive(Debug, Clone)]
pub struct Semaphore(Arc<tokio::sync::Semaphore>);

impl Semaphore {
    /// A semaphore with `max_size` permits.
    pub fn new(max_size: usize) -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(max_size)))
    }

    /// Waits for a permit, first come first served.
    pub async fn acquire(&self) -> Permit<'_> {
        let permit = self.0.acquire().await.expect("the bench never closes its semaphore");
        Permit { _held: permit, value: 0 }
    }
}

/// The [`Semaphore`] column's guard: the permit (released on drop) and a
/// local `u64` to modify.
#[derive(Debug)]
pub struct Permit<'a> {
    _held: tokio::sync::SemaphorePermit<'a>,
    value: u64,
}

impl Deref for Permit<'_> {
    type Target = u64;

    fn deref(&self) -> &u64 {
        &self.value
    }
}

impl DerefMut for Permit<'_> {
    fn deref_mut(&mut self) -> &mut u64 {
        &mut self.value
    }
}

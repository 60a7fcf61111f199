//! [`PoolMetrics`]: the observer that turns pool events into metrics.

use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use pool_core::{DestroyReason, Event, EventKind, Manager, Observer, Pool, Status, TimeoutPhase};
use tokio::task::AbortHandle;

use crate::names;

/// An [`Observer`] that records every event of the pools it is attached to
/// as metrics, through the [`metrics`] facade (so any recorder works).
///
/// One `PoolMetrics` may serve several pools: metrics are labelled with each
/// pool's name. The first time it sees a pool name it registers that pool's
/// metric handles with the recorder that is current at that moment and keeps
/// them, so an event costs a few atomic updates and no allocation, no label
/// formatting and no registry lookup. Install the recorder (for instance with
/// `install_prometheus_exporter`) before building the pool: handles taken
/// before that go to the no-op recorder.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use pool_metrics::PoolMetrics;
/// # use pool_core::{Manager, Pool};
/// # struct Numbers;
/// # impl Manager for Numbers {
/// #     type Resource = u32;
/// #     type Error = std::io::Error;
/// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(1) }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pool_core::BuildError> {
/// let metrics = Arc::new(PoolMetrics::new());
/// let pool = Pool::builder(Numbers).name("numbers").observer(metrics.clone()).build()?;
/// // Optional: also count the tasks that start waiting while nothing else happens.
/// let _refresh = metrics.refresh_every(&pool, Duration::from_secs(1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct PoolMetrics {
    /// The handles of the first pool seen: the only one in most services,
    /// reached without taking a lock.
    first: OnceLock<PoolHandles>,
    /// The handles of further pools.
    others: RwLock<Vec<PoolHandles>>,
}

impl PoolMetrics {
    /// An observer with no pool registered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the gauges of the pool named `pool` from `status` (usually
    /// [`Pool::status`]), as an event would.
    ///
    /// Events keep the gauges current, except while a keepalive check or
    /// [`Pool::retain`] runs (see the crate's "Fresh gauges"). Call this
    /// before rendering the metrics (in a `/metrics` handler) for gauges
    /// exact at every scrape, or let [`refresh_every`](Self::refresh_every)
    /// call it periodically. A `status` older than the one the gauges show
    /// ([`Status::sequence`]) is ignored.
    pub fn record_status(&self, pool: &str, status: &Status) {
        self.with_handles(pool, |handles| handles.set_gauges(status));
    }

    /// Spawns a Tokio task that calls [`record_status`](Self::record_status)
    /// with `pool`'s status every `period`, so the gauges (`waiting` above
    /// all) are at most `period` old even when no event happens. The task
    /// stops when the returned guard is dropped or the pool is closed.
    ///
    /// The task holds a handle to the pool, so while it runs, dropping every
    /// other handle does not close the pool: keep the guard next to the pool
    /// (or close the pool explicitly).
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime, or with a zero `period`.
    pub fn refresh_every<M: Manager>(self: &Arc<Self>, pool: &Pool<M>, period: Duration) -> Refresh {
        let handle = pool.clone();
        self.refresh_with(pool.name(), move || handle.status(), period)
    }

    /// [`refresh_every`](Self::refresh_every) for any pool, given its name
    /// and how to read its status: for a backend's own pool type (say
    /// pool-postgres's `PgPool`:
    /// `metrics.refresh_with(pool.name(), { let p = pool.clone(); move || p.status() }, period)`).
    /// The task stops when the guard is dropped or the status says closed.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime, or with a zero `period`.
    pub fn refresh_with(
        self: &Arc<Self>,
        pool: &str,
        status: impl Fn() -> Status + Send + 'static,
        period: Duration,
    ) -> Refresh {
        let metrics = Arc::clone(self);
        let name: Arc<str> = Arc::from(pool);
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let task = tokio::spawn(async move {
            loop {
                ticks.tick().await;
                let status = status();
                metrics.record_status(&name, &status);
                if status.closed {
                    break;
                }
            }
        });
        Refresh { task: task.abort_handle() }
    }

    /// Runs `f` with the handles of the pool named `pool`, registering them
    /// the first time.
    #[inline]
    fn with_handles(&self, pool: &str, f: impl FnOnce(&PoolHandles)) {
        match self.first.get() {
            Some(handles) if &*handles.pool == pool => f(handles),
            _ => self.with_other_handles(pool, f),
        }
    }

    /// [`with_handles`](Self::with_handles) for a pool other than the first
    /// one (or for the very first event).
    #[cold]
    fn with_other_handles(&self, pool: &str, f: impl FnOnce(&PoolHandles)) {
        let first = self.first.get_or_init(|| PoolHandles::register(pool));
        if &*first.pool == pool {
            return f(first);
        }
        {
            let others = self.others.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(handles) = others.iter().find(|handles| &*handles.pool == pool) {
                return f(handles);
            }
        }
        let mut others = self.others.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(handles) = others.iter().find(|handles| &*handles.pool == pool) {
            f(handles);
        } else {
            let handles = PoolHandles::register(pool);
            f(&handles);
            others.push(handles);
        }
    }
}

impl Observer for PoolMetrics {
    #[inline]
    fn on_event(&self, event: &Event<'_>) {
        self.with_handles(event.pool, |handles| handles.record(event));
    }
}

/// A new [`PoolMetrics`], ready for [`PoolBuilder::observer`](pool_core::PoolBuilder::observer).
///
/// ```
/// # use pool_core::{Manager, Pool};
/// # struct Numbers;
/// # impl Manager for Numbers {
/// #     type Resource = u32;
/// #     type Error = std::io::Error;
/// #     async fn create(&self) -> Result<u32, std::io::Error> { Ok(1) }
/// # }
/// let pool = Pool::builder(Numbers).name("numbers").observer(pool_metrics::observer()).build()?;
/// # Ok::<(), pool_core::BuildError>(())
/// ```
pub fn observer() -> Arc<dyn Observer> {
    Arc::new(PoolMetrics::new())
}

/// Stops the task started by [`PoolMetrics::refresh_every`] when dropped.
#[derive(Debug)]
#[must_use = "the refresh stops when this guard is dropped"]
pub struct Refresh {
    task: AbortHandle,
}

impl Drop for Refresh {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The gauges, in the order of [`PoolHandles::gauges`].
const GAUGES: [&str; 7] =
    [names::CONNECTIONS, names::IDLE, names::ACTIVE, names::WAITING, names::PENDING, names::MAX, names::MIN];

/// `pool_connections_closed_total`, one handle per known reason.
const REASONS: [DestroyReason; 6] = [
    DestroyReason::Idle,
    DestroyReason::Lifetime,
    DestroyReason::Broken,
    DestroyReason::RecycleFailed,
    DestroyReason::Evicted,
    DestroyReason::Closed,
];

/// `pool_connections_timeout_total`, one handle per known phase.
const PHASES: [TimeoutPhase; 3] = [TimeoutPhase::Wait, TimeoutPhase::Create, TimeoutPhase::Recycle];

/// One pool's metric handles, registered once.
#[derive(Debug)]
struct PoolHandles {
    pool: Box<str>,
    /// `pool_connections`, `_idle`, `_active`, `_waiting`, `_pending`, `_max`, `_min`.
    gauges: [Gauge; GAUGES.len()],
    /// The values last written to `gauges`, to skip rewriting those that did
    /// not change (most of them, on most events), and the `sequence` of the
    /// status they came from. The lock keeps the values and the gauges in
    /// step when events race: with plain atomics, two racing events could
    /// leave `written` holding one's value and the gauge the other's, and
    /// every later event with `written`'s value would skip the write,
    /// leaving the gauge wrong until the count changed again.
    written: Mutex<Written>,
    created: Counter,
    errors: Counter,
    rejected: Counter,
    leaks: Counter,
    capacity_refusals: Counter,
    closed: [Counter; REASONS.len()],
    timeouts: [Counter; PHASES.len()],
    acquire: Histogram,
    creation: Histogram,
    usage: Histogram,
}

impl PoolHandles {
    /// Registers every metric of `pool` with the current recorder (and
    /// describes them), so that they all show up, at zero, from the start.
    fn register(pool: &str) -> Self {
        names::describe();
        let gauge = |name: &'static str| gauge!(name, "pool" => pool.to_owned());
        let counter = |name: &'static str| counter!(name, "pool" => pool.to_owned());
        let histogram = |name: &'static str| histogram!(name, "pool" => pool.to_owned());
        let handles = Self {
            pool: pool.into(),
            gauges: GAUGES.map(gauge),
            written: Mutex::new(Written { values: [0; GAUGES.len()], pool_id: 0, sequence: 0 }),
            created: counter(names::CREATED_TOTAL),
            errors: counter(names::ERRORS_TOTAL),
            rejected: counter(names::REJECTED_TOTAL),
            leaks: counter(names::LEAK_SUSPECTED_TOTAL),
            capacity_refusals: counter(names::CAPACITY_REFUSALS_TOTAL),
            closed: REASONS.map(|reason| closed_counter(pool, reason)),
            timeouts: PHASES.map(|phase| timeout_counter(pool, phase)),
            acquire: histogram(names::ACQUIRE_SECONDS),
            creation: histogram(names::CREATION_SECONDS),
            usage: histogram(names::USAGE_SECONDS),
        };
        for gauge in &handles.gauges {
            gauge.set(0.0);
        }
        for counter in
            [&handles.created, &handles.errors, &handles.rejected, &handles.leaks, &handles.capacity_refusals]
                .into_iter()
                .chain(&handles.closed)
                .chain(&handles.timeouts)
        {
            counter.increment(0);
        }
        handles
    }

    #[inline]
    fn record(&self, event: &Event<'_>) {
        self.set_gauges(&event.status);
        match event.kind {
            EventKind::Acquired { waited } => self.acquire.record(waited.as_secs_f64()),
            EventKind::Released { held } => self.usage.record(held.as_secs_f64()),
            EventKind::Created { took } => {
                self.created.increment(1);
                self.creation.record(took.as_secs_f64());
            }
            EventKind::CreateFailed { .. } => self.errors.increment(1),
            EventKind::Destroyed { reason } => match REASONS.iter().position(|&known| known == reason) {
                Some(index) => self.closed[index].increment(1),
                None => closed_counter(&self.pool, reason).increment(1),
            },
            EventKind::TimedOut { phase } => match PHASES.iter().position(|&known| known == phase) {
                Some(index) => self.timeouts[index].increment(1),
                None => timeout_counter(&self.pool, phase).increment(1),
            },
            EventKind::Rejected => self.rejected.increment(1),
            EventKind::LeakSuspected { .. } => self.leaks.increment(1),
            EventKind::CapacityRefused { .. } => self.capacity_refusals.increment(1),
            _ => {}
        }
    }

    /// Brings every gauge to `status`, writing only those that changed,
    /// unless the gauges already show a newer status of the same pool:
    /// events reach the observer on the tasks where they happened, so an
    /// older one can arrive last, and the gauges must not go back to it.
    #[inline]
    fn set_gauges(&self, status: &Status) {
        let values = [
            status.size,
            status.idle,
            status.in_use,
            status.waiting,
            status.creating,
            status.max_size,
            status.min_idle,
        ];
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if status.pool_id == written.pool_id && status.sequence < written.sequence {
            return;
        }
        (written.pool_id, written.sequence) = (status.pool_id, status.sequence);
        for ((gauge, old), new) in self.gauges.iter().zip(&mut written.values).zip(values) {
            if *old != new {
                *old = new;
                gauge.set(new as f64);
            }
        }
    }
}

/// What [`PoolHandles::set_gauges`] last wrote.
#[derive(Debug)]
struct Written {
    values: [usize; GAUGES.len()],
    /// The `Status::pool_id` and `Status::sequence` the values came from:
    /// a status of the same pool with a smaller sequence is older. One of
    /// another pool with the same name (a replacement) is taken as it comes.
    pool_id: u64,
    sequence: u64,
}

fn closed_counter(pool: &str, reason: DestroyReason) -> Counter {
    counter!(names::CLOSED_TOTAL, "pool" => pool.to_owned(), "reason" => reason.as_str())
}

fn timeout_counter(pool: &str, phase: TimeoutPhase) -> Counter {
    counter!(names::TIMEOUT_TOTAL, "pool" => pool.to_owned(), "phase" => phase.as_str())
}

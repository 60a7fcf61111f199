//! [`Lanes`]: the shared connections of one pool-core pool, and the room
//! for statements on them.

use std::panic::Location;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use pool_core::{Pool, Pooled};
use tokio::sync::{Notify, Semaphore, SemaphorePermit, TryAcquireError};
use tokio::time::Instant;

use crate::manager::PgManager;
use crate::pool::PoolError;

/// The least-loaded lane had this many statements in flight: open another
/// lane (if the pool may), since pipelining has begun on every one.
const GROW_AT: u64 = 2;
/// Abandoned requests one lane may carry before it takes no new statements
/// (it is drained when it goes back to the pool).
pub(crate) const BACKLOG_CAP: u32 = 64;
/// How often the janitor looks at the lanes and publishes the gauges.
const TICK: Duration = Duration::from_secs(1);
/// Ticks without a statement after which the last lane goes back to the
/// pool (any other lane, or the last while exclusive checkouts wait for a
/// connection, goes back after one such tick).
const LAST_LANE_IDLE_TICKS: u32 = 30;

/// The gauge of shared connections, labelled `pool`.
pub const SHARED_CONNECTIONS_METRIC: &str = "pool_shared_connections";
/// The gauge of statements in flight on shared connections, labelled `pool`.
pub const SHARED_IN_FLIGHT_METRIC: &str = "pool_shared_in_flight";
/// The gauge of shared-mode statements waiting for room, labelled `pool`.
pub const SHARED_WAITING_METRIC: &str = "pool_shared_waiting";

/// How many shared connections, and how full each may get.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LaneLimits {
    /// `shared_connections` (at most the pool's `max_size`).
    pub(crate) lanes: usize,
    /// `shared_in_flight`: statements pipelined on one connection at once.
    pub(crate) per_lane: usize,
    /// Waiting for room (and for a first lane) ends here: `acquire_timeout`.
    pub(crate) acquire_timeout: Duration,
    /// A lane goes back to the pool this old (half the
    /// `leak_detection_threshold`, so it is never reported as a leak).
    pub(crate) rotate_after: Option<Duration>,
}

/// The shared connections of one pool; see [`crate::pipelined`].
pub(crate) struct Lanes {
    pool: Pool<PgManager>,
    limits: LaneLimits,
    open: RwLock<Vec<Arc<Lane>>>,
    /// Lanes open or being opened.
    planned: AtomicUsize,
    /// One permit per statement that may be in flight: `per_lane` for each
    /// open lane. Fair: waiters are served first come, first served.
    room: Semaphore,
    /// Permits of retired lanes still held by their statements: forgotten
    /// as they come back instead of being returned.
    debt: AtomicUsize,
    waiting: AtomicUsize,
    /// A lane opened, failed to open or retired: waiters look again.
    changed: Notify,
    /// What the last failed open of a lane waited on, for the waiters'
    /// timeout error.
    last_error: Mutex<Option<Arc<tokio_postgres::Error>>>,
    janitor: OnceLock<tokio::task::AbortHandle>,
}

/// One shared connection.
pub(crate) struct Lane {
    pub(crate) conn: Pooled<PgManager>,
    /// Statements started (high 32 bits) and in flight (low 32 bits), in
    /// one word so a start and an end are one atomic operation each.
    load: AtomicU64,
    /// Set once: it takes no new statements.
    retired: std::sync::atomic::AtomicBool,
    /// The janitor's own: statements started at its last look, and looks
    /// in a row that found none started.
    seen_started: AtomicU32,
    idle_ticks: AtomicU32,
}

const IN_FLIGHT: u64 = 0xffff_ffff;
const START_ONE: u64 = (1 << 32) | 1;

impl Lane {
    fn in_flight(&self) -> u64 {
        self.load.load(Ordering::Relaxed) & IN_FLIGHT
    }

    /// Whether it should take no new statements: its connection closed or
    /// broke, or it carries too many abandoned requests.
    fn spoiled(&self) -> bool {
        self.conn.is_marked_broken() || self.conn.is_closed() || self.conn.backlog.abandoned() >= BACKLOG_CAP
    }
}

/// Room for one statement on one lane, held while it runs.
pub(crate) struct Slot<'a> {
    lanes: &'a Lanes,
    pub(crate) lane: Arc<Lane>,
    permit: Option<SemaphorePermit<'a>>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.lane.load.fetch_sub(1, Ordering::Relaxed);
        if self.lane.spoiled() {
            self.lanes.retire(&self.lane, "spoiled");
        }
        let permit = self.permit.take();
        let owed = self.lanes.debt.load(Ordering::Relaxed) > 0
            && self
                .lanes
                .debt
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |debt| debt.checked_sub(1))
                .is_ok();
        if owed && let Some(permit) = permit {
            permit.forget();
        }
    }
}

/// Whether an attempt waits for room ([`Lanes::slot`]) or not
/// ([`Lanes::try_slot`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Yes,
    No,
}

/// A lane planned and not open yet: un-planned if dropped (an open that
/// failed or was cancelled), so the next caller may plan it again.
struct Planned<'a>(&'a Lanes);

impl Drop for Planned<'_> {
    fn drop(&mut self) {
        self.0.planned.fetch_sub(1, Ordering::Relaxed);
        self.0.changed.notify_waiters();
    }
}

/// Counts a waiter while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Lanes {
    pub(crate) fn new(pool: Pool<PgManager>, limits: LaneLimits) -> Arc<Self> {
        Arc::new(Self {
            pool,
            limits,
            open: RwLock::default(),
            planned: AtomicUsize::new(0),
            room: Semaphore::new(0),
            debt: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            changed: Notify::new(),
            last_error: Mutex::new(None),
            janitor: OnceLock::new(),
        })
    }

    pub(crate) fn limits(&self) -> LaneLimits {
        self.limits
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Lane>>> {
        self.open.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Lane>>> {
        self.open.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Room for one statement on the least-loaded lane, waiting within
    /// `acquire_timeout` for room and for a first lane to open.
    pub(crate) async fn slot(
        self: &Arc<Self>,
        location: &'static Location<'static>,
    ) -> Result<Slot<'_>, PoolError> {
        let mut deadline = None;
        loop {
            if let Some(slot) = self.attempt(Wait::Yes, &mut deadline, location).await? {
                return Ok(slot);
            }
        }
    }

    /// Room now, or on the first lane (opened, or waited for while another
    /// caller opens it); `None` when the lanes are open and full, so a
    /// routed statement may try another host.
    pub(crate) async fn try_slot(
        self: &Arc<Self>,
        location: &'static Location<'static>,
    ) -> Result<Option<Slot<'_>>, PoolError> {
        let mut deadline = None;
        loop {
            match self.attempt(Wait::No, &mut deadline, location).await? {
                Some(slot) => return Ok(Some(slot)),
                None if self.full() => return Ok(None),
                None => {}
            }
        }
    }

    /// One try: room now, or after [`Lanes::no_room`]'s wait, on the
    /// least-loaded lane; `None`: look again. The deadline is set at the
    /// first wait, so a statement that finds room reads no clock.
    async fn attempt(
        self: &Arc<Self>,
        wait: Wait,
        deadline: &mut Option<Instant>,
        location: &'static Location<'static>,
    ) -> Result<Option<Slot<'_>>, PoolError> {
        self.start_janitor();
        let permit = match self.room.try_acquire() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(pool_core::Error::Closed),
            Err(TryAcquireError::NoPermits) => {
                let deadline = *deadline.get_or_insert_with(|| Instant::now() + self.limits.acquire_timeout);
                match self.no_room(wait, deadline, location).await? {
                    Some(permit) => permit,
                    None => return Ok(None),
                }
            }
        };
        Ok(self.pick(permit))
    }

    /// Lanes are open and every one is full.
    fn full(&self) -> bool {
        !self.read().is_empty() && self.room.available_permits() == 0
    }

    /// Every lane is full, or none is open: opens one (at once if there is
    /// none, in the background otherwise) and waits for room.
    async fn no_room(
        self: &Arc<Self>,
        wait: Wait,
        deadline: Instant,
        location: &'static Location<'static>,
    ) -> Result<Option<SemaphorePermit<'_>>, PoolError> {
        if self.try_plan() {
            if self.read().is_empty() {
                self.open_lane(location).await?;
                return Ok(None);
            }
            self.open_in_background(location);
        }
        // Without waiting, give up only when lanes are open and full; while
        // the first is being opened, wait for it like everyone else.
        if wait == Wait::No && self.full() {
            return Ok(None);
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        let mut changed = std::pin::pin!(self.changed.notified());
        changed.as_mut().enable();
        if self.read().is_empty() && self.planned.load(Ordering::Relaxed) == 0 {
            return Ok(None);
        }
        tokio::select! {
            permit = self.room.acquire() => permit.map(Some).map_err(|_| pool_core::Error::Closed),
            () = &mut changed => Ok(None),
            () = tokio::time::sleep_until(deadline) => Err(self.timed_out()),
        }
    }

    /// The least-loaded lane that takes statements, with `permit`'s room on
    /// it; `None` (the permit given back) if none does.
    fn pick<'a>(self: &'a Arc<Self>, permit: SemaphorePermit<'a>) -> Option<Slot<'a>> {
        let lane = {
            let open = self.read();
            let lane = open
                .iter()
                .filter(|lane| !lane.retired.load(Ordering::Relaxed))
                .min_by_key(|lane| lane.in_flight())?;
            Arc::clone(lane)
        };
        let before = lane.load.fetch_add(START_ONE, Ordering::Relaxed) & IN_FLIGHT;
        if before >= GROW_AT && self.try_plan() {
            self.open_in_background(Location::caller());
        }
        Some(Slot { lanes: self, lane, permit: Some(permit) })
    }

    /// Counts one more lane to open, if the limit allows. Called for
    /// nearly every statement once all lanes are busy, so the pool's
    /// status (its lock) is read only while a lane may still be added.
    fn try_plan(&self) -> bool {
        if self.planned.load(Ordering::Relaxed) >= self.limits.lanes {
            return false;
        }
        let max = self.limits.lanes.min(self.pool.status().max_size);
        self.planned
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok()
    }

    fn open_in_background(self: &Arc<Self>, location: &'static Location<'static>) {
        let lanes = Arc::clone(self);
        tokio::spawn(async move {
            // Its failure is kept for the waiters' timeout error.
            let _ = lanes.open_lane(location).await;
        });
    }

    /// Takes a connection from the pool (within its `acquire_timeout`, so
    /// it counts in `max_size` like any checkout) and opens a lane on it.
    /// The lane was planned ([`Lanes::try_plan`]); a failure, or this
    /// future dropped (its caller cancelled), un-plans it.
    async fn open_lane(&self, location: &'static Location<'static>) -> Result<(), PoolError> {
        let planned = Planned(self);
        match self.pool.get_at(location).await {
            Ok(conn) => {
                std::mem::forget(planned);
                let lane = Arc::new(Lane {
                    conn,
                    load: AtomicU64::new(0),
                    retired: false.into(),
                    seen_started: AtomicU32::new(0),
                    idle_ticks: AtomicU32::new(0),
                });
                self.write().push(lane);
                self.room.add_permits(self.limits.per_lane);
                self.publish();
                self.changed.notify_waiters();
                Ok(())
            }
            Err(error) => {
                if let pool_core::Error::Timeout { last_error: Some(cause), .. } = &error {
                    *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(Arc::clone(cause));
                }
                Err(error)
            }
        }
    }

    /// Takes `lane` out of use: no new statements; its connection goes back
    /// to the pool when the statements on it end.
    pub(crate) fn retire(&self, lane: &Arc<Lane>, why: &'static str) {
        if lane.retired.swap(true, Ordering::Relaxed) {
            return;
        }
        self.write().retain(|open| !Arc::ptr_eq(open, lane));
        self.planned.fetch_sub(1, Ordering::Relaxed);
        let forgotten = self.room.forget_permits(self.limits.per_lane);
        self.debt.fetch_add(self.limits.per_lane - forgotten, Ordering::Relaxed);
        tracing::debug!(pool = %self.pool.name(), why, "a shared connection retired");
        self.publish();
        self.changed.notify_waiters();
    }

    /// Retires every lane (an eviction, a role change of the host).
    pub(crate) fn retire_all(&self, why: &'static str) {
        let open: Vec<Arc<Lane>> = self.read().clone();
        for lane in &open {
            self.retire(lane, why);
        }
    }

    /// No new statements; waiters fail with `Closed`.
    pub(crate) fn close(&self) {
        self.room.close();
        self.retire_all("closed");
        if let Some(janitor) = self.janitor.get() {
            janitor.abort();
        }
    }

    /// Lanes open, statements in flight on them, and statements waiting.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let open = self.read();
        let in_flight = open.iter().map(|lane| lane.in_flight()).sum::<u64>();
        (open.len(), usize::try_from(in_flight).unwrap_or(usize::MAX), self.waiting.load(Ordering::Relaxed))
    }

    fn timed_out(&self) -> PoolError {
        let last_error = self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        pool_core::Error::Timeout {
            phase: pool_core::TimeoutPhase::Wait,
            elapsed: self.limits.acquire_timeout,
            max_size: self.pool.status().max_size,
            last_error,
            refused_at_size: None,
            resource: "shared connection",
        }
    }

    fn publish(&self) {
        let (connections, in_flight, waiting) = self.counts();
        let name = self.pool.name().to_owned();
        #[allow(clippy::cast_precision_loss, reason = "gauges are f64; the counts are small")]
        {
            metrics::gauge!(SHARED_CONNECTIONS_METRIC, "pool" => name.clone()).set(connections as f64);
            metrics::gauge!(SHARED_IN_FLIGHT_METRIC, "pool" => name.clone()).set(in_flight as f64);
            metrics::gauge!(SHARED_WAITING_METRIC, "pool" => name).set(waiting as f64);
        }
    }

    fn start_janitor(self: &Arc<Self>) {
        if self.janitor.get().is_some() {
            return;
        }
        let lanes = Arc::downgrade(self);
        let _ = self.janitor.get_or_init(|| tokio::spawn(janitor(lanes)).abort_handle());
    }

    /// One look at every lane: retire the spoiled, the old and the idle.
    fn tend(&self) {
        let open: Vec<Arc<Lane>> = self.read().clone();
        let now = Instant::now();
        let mut left = open.len();
        // Exclusive checkouts waiting: an idle lane gives its connection
        // back after one tick, the last one too.
        let starved = self.pool.status().waiting > 0;
        for lane in &open {
            let info = Pooled::info(&lane.conn);
            let rotate = self.limits.rotate_after.is_some_and(|after| info.age() >= after);
            let expired = info.expires_at().is_some_and(|at| at <= now);
            // Truncation is the point: the started count is the high half.
            #[allow(clippy::cast_possible_truncation)]
            let started = (lane.load.load(Ordering::Relaxed) >> 32) as u32;
            let idle = lane.seen_started.swap(started, Ordering::Relaxed) == started && lane.in_flight() == 0;
            let idle_ticks = if idle {
                lane.idle_ticks.fetch_add(1, Ordering::Relaxed) + 1
            } else {
                lane.idle_ticks.store(0, Ordering::Relaxed);
                0
            };
            let why = if lane.spoiled() {
                "spoiled"
            } else if expired || rotate {
                "max_lifetime"
            } else if idle_ticks >= if left == 1 && !starved { LAST_LANE_IDLE_TICKS } else { 1 } {
                "idle"
            } else {
                continue;
            };
            self.retire(lane, why);
            left -= 1;
        }
        self.publish();
    }
}

/// Tends the lanes every [`TICK`] while the pool lives.
async fn janitor(lanes: Weak<Lanes>) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(lanes) = lanes.upgrade() else { return };
        lanes.tend();
    }
}

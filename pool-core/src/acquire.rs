//! The `get` path: queue, check an idle resource, or create one, under the
//! caller's `acquire_timeout`. Checking is `recycle.rs`'s path and creating
//! `create.rs`'s, shared with the upkeep task; what is `get`'s own is
//! the order of the steps, the queue and the caller's clock.
//!
//! Each step that holds something of the pool's (a queue place, a resource
//! being checked, a slot being filled) holds it in one of the drop guards of
//! `cancel_guards.rs`, so a `get` future dropped at any await point gives it
//! back.
//!
//! A caller that held a slot and lost the right to use it waits again, in
//! the queue by its own deadline (`Core::rejoin`): when its idle resource
//! failed its check while no create may start (`max_concurrent_creates`
//! run, or the pool cools down), when its create was refused because the
//! backend is full, and when it failed on a passing state of the backend
//! ([`Manager::is_passing_error`], a restart). So neither fails a caller by
//! itself: a caller gets a returned resource, or a slot once the cool-down
//! ends (or the backoff gives it a turn), or a timeout that names the last
//! error when its `acquire_timeout` passes.
//!
//! Waiting costs one lock to join the queue (registering the task's waker
//! in the same critical section) and one to pick up the grant once woken.
//! The deadline is watched by the pool's single queue timer (`expiry.rs`),
//! which serves a waiter whose time is up with a timeout instead of a
//! resource.

use std::future::poll_fn;
use std::panic::Location;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use crate::cancel_guards::{Checking, QueuePlace, Slot};
use crate::create::{CreateFor, NotCreated};
use crate::deadline::Ran;
use crate::engine::{Checkout, Entry, Grant, Join};
use crate::error::{Error, TimeoutPhase};
use crate::guard::Pooled;
use crate::manager::{DestroyReason, Manager};
use crate::observer::EventKind;
use crate::recycle::{CheckFor, Recycled};
use crate::shared::{Shared, wake};
use crate::status::Status;

/// The caller's clock: when `get` started and when it must give up. Both
/// are read lazily, so an uncontended `get` with no observer reads no clock.
struct Clock {
    started: Option<Instant>,
    timeout: Duration,
}

impl Clock {
    fn started(&mut self) -> Instant {
        *self.started.get_or_insert_with(Instant::now)
    }

    fn deadline(&mut self) -> Option<Instant> {
        let timeout = self.timeout;
        self.started().checked_add(timeout)
    }

    fn elapsed(&mut self) -> Duration {
        self.started().elapsed()
    }

    fn passed(&mut self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// The caller joins the queue now: the deadline of its wait. Read under
    /// the engine's lock, so the queue's deadlines are in order (engine
    /// invariant 5).
    fn joined(&mut self) -> Option<Instant> {
        let now = Instant::now();
        self.started.get_or_insert(now);
        now.checked_add(self.timeout)
    }
}

/// How checking an idle resource for a caller ended.
enum Checked<T> {
    Ready(Entry<T>),
    /// It failed and was destroyed; the caller keeps its slot to create
    /// one, or (`false`: no create may start now) waits again.
    Replaced(bool),
    TimedOut,
    NoRuntime,
}

impl<M: Manager> Shared<M> {
    /// The whole of `get`: first the common case (an idle resource whose
    /// check finishes at once), then, if that did not do, the slow path.
    /// The fast path allocates nothing; the slow path is boxed once per
    /// `get` that takes it (and `create` once more, see `create.rs`), so
    /// the future `get` returns stays small.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        wait: bool,
        location: &'static Location<'static>,
    ) -> Result<Pooled<M>, Error<M::Error>> {
        // The clock is read only if this call has to wait or check slowly:
        // on the fast path, the wait is reported as zero.
        let mut clock = Clock { started: None, timeout: self.config.acquire_timeout };
        let mut status = Status::default();
        let observed = self.observed();
        let checkout = poll_fn(|cx| {
            let join = wait.then(|| Join { waker: cx.waker(), deadline: || clock.joined() });
            Poll::Ready(self.core.checkout(join, observed.then_some(&mut status)))
        })
        .await;
        let ticket = match checkout {
            Checkout::Resource(entry, below_min_idle) => {
                if below_min_idle {
                    self.upkeep.wake();
                }
                // `check`, written out: as a call, its state would sit in
                // the future of every `get`, beside the slow path's box.
                let mut held = Checking::new(&**self, entry);
                let ran = self.recycle(&mut held, || clock.deadline()).await;
                match self.checked(held, ran, &mut clock) {
                    Checked::Ready(entry) => {
                        let snapshot = (observed && clock.started.is_none()).then_some(&status);
                        return Ok(self.hand_out(entry, &mut clock, location, snapshot));
                    }
                    Checked::Replaced(true) => Checkout::Slot,
                    Checked::Replaced(false) => self.rejoin(&mut clock, wait).await?,
                    Checked::TimedOut => return Err(self.timed_out(TimeoutPhase::Recycle, &mut clock)),
                    Checked::NoRuntime => return Err(Error::NoRuntime),
                }
            }
            other => other,
        };
        if self.timed {
            clock.started();
        }
        // Boxed, so the future `get` returns is only as large as the fast
        // path above needs: callers move it (into their own futures, into
        // `timeout`, ...), and moving the slow path's states along with it
        // would cost every uncontended get more than this allocation costs
        // a get that waits, creates or checks slowly.
        Box::pin(self.acquire_slow(ticket, clock, wait, location)).await
    }

    /// Queueing, creating, and checking what a grant brought.
    async fn acquire_slow(
        self: &Arc<Self>,
        mut ticket: Checkout<M::Resource>,
        mut clock: Clock,
        wait: bool,
        location: &'static Location<'static>,
    ) -> Result<Pooled<M>, Error<M::Error>> {
        loop {
            ticket = match ticket {
                Checkout::Resource(entry, _) => match self.check(entry, &mut clock).await {
                    Checked::Ready(entry) => return Ok(self.hand_out(entry, &mut clock, location, None)),
                    Checked::Replaced(true) => Checkout::Slot,
                    Checked::Replaced(false) => self.rejoin(&mut clock, wait).await?,
                    Checked::TimedOut => return Err(self.timed_out(TimeoutPhase::Recycle, &mut clock)),
                    Checked::NoRuntime => return Err(Error::NoRuntime),
                },
                Checkout::Slot => match self.create_for(&mut clock, location).await {
                    Err(NotCreated::Refused(error)) if !wait => return Err(Error::Backend(error)),
                    Err(NotCreated::Refused(_)) => self.rejoin(&mut clock, wait).await?,
                    Err(NotCreated::Failed(error)) if wait && self.manager.is_passing_error(&error) => {
                        self.rejoin(&mut clock, wait).await?
                    }
                    done => return done.map_err(|not_created| self.not_created(not_created, &mut clock)),
                },
                Checkout::Wait { key, wake_timer } => {
                    if wake_timer {
                        self.timer.wake();
                    }
                    self.emit(EventKind::Queued);
                    match self.wait_turn(key).await {
                        Some(Grant::Resource(entry)) => Checkout::Resource(entry, false),
                        Some(Grant::Slot) => Checkout::Slot,
                        Some(Grant::Closed) => return Err(Error::Closed),
                        Some(Grant::TimedOut) => return Err(self.timed_out(TimeoutPhase::Wait, &mut clock)),
                        None => return Err(Error::NoRuntime),
                    }
                }
                Checkout::Closed => return Err(Error::Closed),
                Checkout::Overloaded => {
                    self.emit(EventKind::Rejected);
                    return Err(Error::Overloaded {
                        max_waiters: self.config.max_waiters.unwrap_or(usize::MAX),
                        resource: M::RESOURCE,
                    });
                }
                Checkout::Exhausted => {
                    return Err(Error::Exhausted {
                        max_size: self.core.status().max_size,
                        resource: M::RESOURCE,
                    });
                }
            };
        }
    }

    /// Wraps a ready resource in its guard. `snapshot`: the counts read
    /// when it was taken, if nothing changed them for this caller since.
    fn hand_out(
        self: &Arc<Self>,
        mut entry: Entry<M::Resource>,
        clock: &mut Clock,
        location: &'static Location<'static>,
        snapshot: Option<&Status>,
    ) -> Pooled<M> {
        entry.info.checkouts += 1;
        if self.timed {
            let now = Instant::now();
            entry.lease.acquired_at = Some(now);
            if self.observed() {
                let waited = clock.started.map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
                self.emit_after(snapshot, EventKind::Acquired { waited });
            }
            entry.lease.leak = self.leaks.as_ref().map(|leaks| leaks.register(now, location));
        }
        Pooled::new(Arc::clone(self), entry)
    }

    fn timed_out(&self, phase: TimeoutPhase, clock: &mut Clock) -> Error<M::Error> {
        let elapsed = clock.elapsed();
        tracing::debug!(pool = %self.config.name, %phase, ?elapsed, "get timed out");
        self.emit(EventKind::TimedOut { phase });
        let last = self.last_error();
        Error::Timeout {
            phase,
            elapsed,
            max_size: self.core.status().max_size,
            refused_at_size: last.as_ref().and_then(|last| last.refused_at_size),
            last_error: last.map(|last| last.error),
            resource: M::RESOURCE,
        }
    }

    /// The caller gave up a slot it may not use now (see the module docs)
    /// and waits again (if it may `wait`), by the deadline it has had since
    /// it called `get`. A caller whose deadline has passed meanwhile times
    /// out here instead, so nobody joins the queue already due: the queue
    /// then never holds a waiter that is timed out before anyone polls it.
    async fn rejoin(&self, clock: &mut Clock, wait: bool) -> Result<Checkout<M::Resource>, Error<M::Error>> {
        if wait && clock.passed() {
            return Err(self.timed_out(TimeoutPhase::Wait, clock));
        }
        let checkout = poll_fn(|cx| {
            let join = wait.then(|| Join { waker: cx.waker(), deadline: || clock.deadline() });
            Poll::Ready(self.core.rejoin(join))
        })
        .await;
        if matches!(checkout, Checkout::Closed) {
            // The slot it gave up may have been the last one a closed pool had.
            self.notify_if_drained();
        }
        Ok(checkout)
    }

    /// Waits in the queue for a grant (a timeout is one too). Must be first
    /// polled in the same poll as the `checkout` that queued `key`, whose
    /// waker is registered already. `None`: no runtime to run the queue's
    /// timer on, so the caller gives up its place rather than wait forever.
    async fn wait_turn(self: &Arc<Self>, key: usize) -> Option<Grant<M::Resource>> {
        let mut place = QueuePlace { shared: self, key: Some(key) };
        let mut just_joined = true;
        let grant = poll_fn(|cx| {
            if !crate::expiry::start(self) {
                return Poll::Ready(None);
            }
            if std::mem::take(&mut just_joined) {
                // Anything granted since joining wakes the waker registered then.
                return Poll::Pending;
            }
            self.core.poll_grant(key, cx).map(Some)
        })
        .await;
        if grant.is_some() {
            place.key = None;
        }
        grant
    }

    /// Checks an idle resource taken from the pool before handing it out,
    /// within the caller's deadline, and says what that means for it.
    async fn check(&self, entry: Entry<M::Resource>, clock: &mut Clock) -> Checked<M::Resource> {
        let mut held = Checking::new(self, entry);
        let ran = self.recycle(&mut held, || clock.deadline()).await;
        self.checked(held, ran, clock)
    }

    /// Records a check's outcome, and what it means for the resource it checked.
    fn checked(
        &self,
        held: Checking<'_, M>,
        ran: Ran<Result<(), M::Error>>,
        clock: &mut Clock,
    ) -> Checked<M::Resource> {
        match self.record_check(ran, CheckFor::Reuse) {
            Recycled::Passed => Checked::Ready(held.passed()),
            Recycled::NoRuntime => Checked::NoRuntime,
            // The caller's time is up: `held` destroys the resource.
            Recycled::TimedOut if clock.passed() => Checked::TimedOut,
            Recycled::Failed | Recycled::TimedOut => Checked::Replaced(held.replace()),
        }
    }

    /// Creates a resource in the slot the caller holds, and hands it out.
    /// `Err(Error::Closed)` (as a `NotCreated::Closed`) if the pool was
    /// closed while it was created.
    async fn create_for(
        self: &Arc<Self>,
        clock: &mut Clock,
        location: &'static Location<'static>,
    ) -> Result<Pooled<M>, NotCreated<M::Error>> {
        let slot = Slot::reserved(self);
        let purpose = CreateFor::Caller { deadline: clock.deadline() };
        let (booked, wake_next) = self.create(slot, purpose, |entry| self.core.fill_slot(entry)).await?;
        // The create's turn went to the next waiter.
        wake(wake_next);
        match booked {
            Ok(entry) => Ok(self.hand_out(entry, clock, location, None)),
            Err(entry) => {
                // Closed while it was being created.
                self.destroy(entry, DestroyReason::Closed);
                Err(NotCreated::Closed)
            }
        }
    }

    /// The error for a caller whose create did not give it a resource.
    fn not_created(&self, not_created: NotCreated<M::Error>, clock: &mut Clock) -> Error<M::Error> {
        match not_created {
            NotCreated::Failed(error) | NotCreated::Refused(error) => Error::Backend(error),
            NotCreated::TimedOut => self.timed_out(TimeoutPhase::Create, clock),
            NotCreated::Closed => Error::Closed,
            NotCreated::NoRuntime => Error::NoRuntime,
        }
    }
}

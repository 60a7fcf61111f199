//! The `get` path: queue, check an idle resource, or create one, under the
//! caller's `acquire_timeout`.
//!
//! Each step that holds something of the pool's (a queue place, a resource
//! being checked, a slot being filled) holds it in a small drop guard, so a
//! `get` future dropped at any await point gives it back: the queue place is
//! released (and anything granted to it meanwhile passed on), a resource
//! interrupted mid-check is destroyed (its state is unknown) and its slot
//! freed, and a slot whose create was interrupted is freed for the next
//! waiter.
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

use crate::deadline::{Ran, earliest, run_until};
use crate::engine::{Checkout, Entry, Grant, Join};
use crate::error::{Error, TimeoutPhase};
use crate::guard::Pooled;
use crate::manager::{DestroyReason, Manager};
use crate::observer::EventKind;
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

/// How checking an idle resource ended.
enum Checked<T> {
    Ready(Entry<T>),
    /// It failed and was destroyed; the caller keeps its slot to create one.
    Replaced,
    TimedOut,
    NoRuntime,
}

impl<M: Manager> Shared<M> {
    /// The whole of `get`: first the common case (an idle resource whose
    /// check finishes at once), then, if that did not do, the slow path.
    /// The fast path allocates nothing; the slow path is boxed once per
    /// `get` that takes it (and `create` once more, see `create_for`), so
    /// the future `get` returns stays small (272 bytes with a no-op
    /// manager, 80 of them the counts snapshot for observers; 672 with the
    /// slow path inline).
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
                    self.maintenance.wake();
                }
                // `check`, written out: as a call, the future's hand-over
                // measurably slowed the uncontended path.
                let mut held = Checking { shared: &**self, entry: Some(entry) };
                let ran = {
                    let entry = held.entry.as_mut().expect("held until checked");
                    let fut = self.manager.recycle(&mut entry.resource, &entry.info);
                    run_until(fut, || self.check_deadline(&mut clock)).await
                };
                match self.checked(held, ran, &mut clock) {
                    Checked::Ready(entry) => {
                        let snapshot = (observed && clock.started.is_none()).then_some(&status);
                        return Ok(self.hand_out(entry, &mut clock, location, snapshot));
                    }
                    Checked::Replaced => Checkout::Slot,
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
        // cost the uncontended get more than this allocation costs a get
        // that waits, creates or checks slowly.
        Box::pin(self.acquire_slow(ticket, clock, location)).await
    }

    /// Queueing, creating, and checking what a grant brought.
    async fn acquire_slow(
        self: &Arc<Self>,
        mut ticket: Checkout<M::Resource>,
        mut clock: Clock,
        location: &'static Location<'static>,
    ) -> Result<Pooled<M>, Error<M::Error>> {
        loop {
            ticket = match ticket {
                Checkout::Resource(entry, _) => match self.check(entry, &mut clock).await {
                    Checked::Ready(entry) => return Ok(self.hand_out(entry, &mut clock, location, None)),
                    Checked::Replaced => Checkout::Slot,
                    Checked::TimedOut => return Err(self.timed_out(TimeoutPhase::Recycle, &mut clock)),
                    Checked::NoRuntime => return Err(Error::NoRuntime),
                },
                Checkout::Slot => return self.create_for(&mut clock, location).await,
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
                    });
                }
                Checkout::Exhausted => {
                    return Err(Error::Exhausted { max_size: self.core.status().max_size });
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
        Error::Timeout {
            phase,
            elapsed,
            max_size: self.core.status().max_size,
            last_error: self.last_error(),
        }
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

    /// Runs `recycle` on an idle resource taken from the pool.
    async fn check(&self, entry: Entry<M::Resource>, clock: &mut Clock) -> Checked<M::Resource> {
        let mut held = Checking { shared: self, entry: Some(entry) };
        let ran = {
            let entry = held.entry.as_mut().expect("held until checked");
            let fut = self.manager.recycle(&mut entry.resource, &entry.info);
            run_until(fut, || self.check_deadline(clock)).await
        };
        self.checked(held, ran, clock)
    }

    /// When a check that did not finish at once must give up.
    fn check_deadline(&self, clock: &mut Clock) -> Option<Instant> {
        let by_recycle = self.config.recycle_timeout.and_then(|t| Instant::now().checked_add(t));
        earliest(clock.deadline(), by_recycle)
    }

    /// What a check's outcome means for the resource it checked.
    fn checked(
        &self,
        mut held: Checking<'_, M>,
        ran: Ran<Result<(), M::Error>>,
        clock: &mut Clock,
    ) -> Checked<M::Resource> {
        match ran {
            Ran::Done(Ok(())) => Checked::Ready(held.entry.take().expect("held until now")),
            Ran::NoRuntime => Checked::NoRuntime,
            Ran::TimedOut if clock.passed() => Checked::TimedOut,
            Ran::Done(Err(error)) => {
                tracing::debug!(pool = %self.config.name, error = %crate::ErrorChain(&error), "an idle connection failed its check");
                self.set_last_error(Some(Arc::new(error)));
                held.replace();
                Checked::Replaced
            }
            Ran::TimedOut => {
                tracing::debug!(pool = %self.config.name, "an idle connection's check timed out");
                held.replace();
                Checked::Replaced
            }
        }
    }

    /// Creates a resource in the slot the caller holds.
    async fn create_for(
        self: &Arc<Self>,
        clock: &mut Clock,
        location: &'static Location<'static>,
    ) -> Result<Pooled<M>, Error<M::Error>> {
        let slot = Slot { shared: self, filled: false };
        let Some(turn) = self.backoff.turn(clock.deadline()).await else {
            drop(slot);
            return Err(self.timed_out(TimeoutPhase::Create, clock));
        };
        let generation = self.core.generation();
        let began = Instant::now();
        let create_timeout = self.config.create_timeout;
        self.emit(EventKind::Creating);
        // Boxed: a backend's create future can be large (tokio-postgres with
        // TLS: ~18 KB), and inline it would bloat every caller's future.
        let ran = run_until(Box::pin(self.manager.create()), || {
            earliest(clock.deadline(), create_timeout.and_then(|t| began.checked_add(t)))
        })
        .await;
        match ran {
            Ran::Done(Ok(resource)) => {
                let now = Instant::now();
                self.backoff.succeeded();
                drop(turn);
                self.set_last_error(None);
                let entry = self.new_entry(resource, now, generation);
                let entry = slot.fill(entry)?;
                tracing::debug!(pool = %self.config.name, took = ?(now - began), "opened a new connection");
                self.emit(EventKind::Created { took: now - began });
                Ok(self.hand_out(entry, clock, location, None))
            }
            Ran::Done(Err(error)) => {
                let now = Instant::now();
                self.backoff.failed(now);
                drop(turn);
                let error = Arc::new(error);
                self.set_last_error(Some(Arc::clone(&error)));
                tracing::warn!(pool = %self.config.name, error = %crate::ErrorChain(&*error), "could not open a new connection");
                drop(slot);
                self.emit(EventKind::CreateFailed {
                    took: now - began,
                    error: &crate::ErrorChain(&*error),
                });
                Err(Error::Backend(error))
            }
            Ran::TimedOut => {
                let now = Instant::now();
                self.backoff.failed(now);
                drop(turn);
                drop(slot);
                self.emit(EventKind::CreateFailed { took: now - began, error: &"timed out" });
                Err(self.timed_out(TimeoutPhase::Create, clock))
            }
            Ran::NoRuntime => {
                drop(turn);
                Err(Error::NoRuntime)
            }
        }
    }
}

/// A place in the queue; dropping it while still queued gives it up and
/// passes on anything granted to it meanwhile.
struct QueuePlace<'a, M: Manager> {
    shared: &'a Shared<M>,
    key: Option<usize>,
}

impl<M: Manager> Drop for QueuePlace<'_, M> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let returned = self.shared.core.cancel_wait(key);
            self.shared.settle(returned);
            // A slot granted to it may have been the last one a closed pool had.
            self.shared.notify_if_drained();
            self.shared.emit(EventKind::Cancelled);
        }
    }
}

/// A resource out of the idle list being checked; dropping it unfinished
/// destroys it (its state is unknown) and frees its slot.
pub(crate) struct Checking<'a, M: Manager> {
    pub(crate) shared: &'a Shared<M>,
    pub(crate) entry: Option<Entry<M::Resource>>,
}

impl<M: Manager> Checking<'_, M> {
    /// Destroys the resource but keeps its slot for a replacement.
    fn replace(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.shared.core.swap_for_slot();
            self.shared.destroy(entry, DestroyReason::RecycleFailed);
        }
    }
}

impl<M: Manager> Drop for Checking<'_, M> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            wake(self.shared.core.remove_in_use());
            self.shared.destroy(entry, DestroyReason::RecycleFailed);
        }
    }
}

/// A reserved slot; dropping it unfilled frees it for the next waiter.
pub(crate) struct Slot<'a, M: Manager> {
    pub(crate) shared: &'a Shared<M>,
    pub(crate) filled: bool,
}

impl<M: Manager> Slot<'_, M> {
    /// Puts a new resource in the slot for the caller; fails if the pool
    /// closed meanwhile (the resource is then destroyed).
    fn fill(mut self, entry: Entry<M::Resource>) -> Result<Entry<M::Resource>, Error<M::Error>> {
        self.filled = true;
        match self.shared.core.fill_slot(entry) {
            Ok(entry) => Ok(entry),
            Err(entry) => {
                self.shared.destroy(entry, DestroyReason::Closed);
                Err(Error::Closed)
            }
        }
    }
}

impl<M: Manager> Drop for Slot<'_, M> {
    fn drop(&mut self) {
        if !self.filled {
            wake(self.shared.core.abandon_slot());
            self.shared.notify_if_drained();
        }
    }
}

//! Creating a resource: the one path that `get` (for its caller) and the
//! upkeep task (to keep `min_idle` ready, `upkeep.rs`) share.
//!
//! The caller has reserved a slot (counted in `creating`) and hands it over
//! in a [`Slot`] guard, so a create cut short at any await point frees it.
//! Then, in this order:
//!
//! 1. Wait for a turn from the [backoff](crate::backoff) (immediate unless
//!    the last create failed). The wait is bounded by the caller's deadline,
//!    or, for a create no caller waits for, by the longest one create may
//!    take; and it ends at once when the pool is closed, so a closed pool
//!    opens nothing new and `close_and_wait` does not sit out a backoff.
//! 2. Send [`EventKind::Creating`] and run [`Manager::create`] until the
//!    earlier of the caller's deadline and the longest one create may take
//!    (`create_timeout`; for the background, `create_timeout` or else
//!    `acquire_timeout`).
//! 3. Record the outcome, once, in the same order for every caller: the
//!    backoff learns of it and lets the next creator in, the pool's last
//!    backend error is cleared or set, a log line is written, then the
//!    resource is booked into its slot (the caller's `book`) and
//!    [`EventKind::Created`] (with the counts after the booking) or
//!    [`EventKind::CreateFailed`] is sent.
//!
//! A failure the manager calls a capacity refusal
//! ([`Manager::is_capacity_error`]) also puts the engine into a capacity
//! cool-down (`cooldown.rs`; engine invariant 6) *before* the slot is freed,
//! so the freed turn cannot start another create the backend would refuse.
//! Only the refusal that begins a cool-down logs a warning and sends
//! [`EventKind::CapacityRefused`]; it starts the queue's timer, which ends
//! the cool-down. The caller learns of it as [`NotCreated::Refused`]: a
//! `get` then waits again rather than fail (`acquire.rs`).
//!
//! A create in flight when the pool closes is not interrupted (the backend
//! may not expect it); its resource is destroyed when booked.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::time::Instant;

use crate::backoff::Turn;
use crate::cancel_guards::Slot;
use crate::deadline::{Ran, earliest, run_until};
use crate::engine::Entry;
use crate::manager::Manager;
use crate::observer::EventKind;
use crate::shared::{LastError, Shared};

/// Who a resource is created for; decides how long creating may take and
/// how the pool logs it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CreateFor {
    /// A `get` whose caller waits for it until `deadline`.
    Caller {
        /// The caller's `acquire_timeout` ends here (`None`: never).
        deadline: Option<Instant>,
    },
    /// The upkeep task, to keep `min_idle` resources idle.
    MinIdle,
}

impl CreateFor {
    /// What is being created, for the logs: "a new connection", "an idle
    /// connection for min_idle".
    fn describe(self, resource: &'static str) -> Describe {
        Describe { purpose: self, resource }
    }
}

/// [`CreateFor::describe`]'s text.
struct Describe {
    purpose: CreateFor,
    resource: &'static str,
}

impl std::fmt::Display for Describe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.purpose {
            CreateFor::Caller { .. } => write!(f, "a new {}", self.resource),
            CreateFor::MinIdle => write!(f, "an idle {} for min_idle", self.resource),
        }
    }
}

/// Why no resource was created; already logged and sent to observers.
pub(crate) enum NotCreated<E> {
    /// `create` failed with this error (now the pool's last error).
    Failed(Arc<E>),
    /// `create` failed with this capacity refusal (now the pool's last
    /// error), and the pool is cooling down.
    Refused(Arc<E>),
    /// The deadline passed while waiting for a turn or creating.
    TimedOut,
    /// The pool was closed while waiting for a turn.
    Closed,
    /// Creating had to wait, and no Tokio runtime runs to time it.
    NoRuntime,
}

impl<M: Manager> Shared<M> {
    /// Creates a resource in `slot` for `purpose` and books it with `book`
    /// (which takes it out of `creating`); returns what `book` returned.
    pub(crate) async fn create<R>(
        self: &Arc<Self>,
        slot: Slot<'_, M>,
        purpose: CreateFor,
        book: impl FnOnce(Entry<M::Resource>) -> R,
    ) -> Result<R, NotCreated<M::Error>> {
        let (caller_deadline, per_create) = match purpose {
            CreateFor::Caller { deadline } => (deadline, self.config.create_timeout),
            CreateFor::MinIdle => (None, Some(self.config.background_create_timeout())),
        };
        let turn_deadline =
            caller_deadline.or_else(|| per_create.and_then(|t| Instant::now().checked_add(t)));
        let turn = self.turn_unless_closed(turn_deadline).await?;
        let generation = self.core.generation();
        let began = Instant::now();
        self.emit(EventKind::Creating);
        // Boxed: a backend's create future can be large, and inline it would
        // make every `get` future as large.
        let ran = run_until(Box::pin(self.manager.create()), || {
            earliest(caller_deadline, per_create.and_then(|t| began.checked_add(t)))
        })
        .await;
        let now = Instant::now();
        let took = now.saturating_duration_since(began);
        let pool = &self.config.name;
        let what = purpose.describe(M::RESOURCE);
        let error = match ran {
            Ran::Done(Ok(created)) => {
                self.backoff.succeeded();
                drop(turn);
                self.set_last_error(None);
                tracing::debug!(%pool, ?took, "opened {what}");
                let entry = self.new_entry(created, now, generation);
                slot.fill();
                let booked = book(entry);
                self.emit(EventKind::Created { took });
                self.refill_if_short();
                return Ok(booked);
            }
            Ran::NoRuntime => return Err(NotCreated::NoRuntime),
            Ran::Done(Err(error)) => Some(Arc::new(error)),
            Ran::TimedOut => None,
        };
        self.backoff.failed(now);
        drop(turn);
        let refused = error
            .as_ref()
            .filter(|error| self.manager.is_capacity_error(error))
            .map(|_| self.core.refused(now, self.jitter.next()));
        if let Some(error) = &error {
            let refused_at_size = refused.as_ref().map(|refused| refused.held);
            self.set_last_error(Some(LastError { error: Arc::clone(error), refused_at_size }));
        }
        // Freed after the last error is written and any cool-down entered,
        // so whoever gets the slot next and creates cannot have its outcome
        // overwritten by this one, nor create while the backend is full.
        drop(slot);
        self.refill_if_short();
        let Some(error) = error else {
            tracing::warn!(%pool, ?took, "opening {what} timed out");
            self.emit(EventKind::CreateFailed { took, error: &"timed out" });
            return Err(NotCreated::TimedOut);
        };
        let chain = crate::ErrorChain(&*error);
        let Some(refused) = refused else {
            tracing::warn!(%pool, error = %chain, "could not open {what}");
            self.emit(EventKind::CreateFailed { took, error: &chain });
            return Err(NotCreated::Failed(error));
        };
        self.emit(EventKind::CreateFailed { took, error: &chain });
        let Some(cool_down) = refused.cool_down else {
            tracing::debug!(%pool, error = %chain, "the backend refused {what} while cooling down");
            return Err(NotCreated::Refused(error));
        };
        let cooldown = cool_down.length;
        let held = refused.held;
        tracing::warn!(
            %pool,
            error = %chain,
            ?cooldown,
            held,
            "the backend refused {what}: it has no free {resource} slots, its limit shared with \
             its other clients; this pool holds {held} and opens nothing new for {cooldown:?}, \
             serving its waiters with the {resource}s returned to it",
            resource = M::RESOURCE,
        );
        if cool_down.wake_timer {
            self.timer.wake();
        }
        crate::expiry::start(self);
        self.emit(EventKind::CapacityRefused { cooldown });
        Err(NotCreated::Refused(error))
    }

    /// Waits for a turn to create (see `backoff.rs`) until `deadline`;
    /// gives up at once if the pool is or gets closed.
    async fn turn_unless_closed(&self, deadline: Option<Instant>) -> Result<Turn<'_>, NotCreated<M::Error>> {
        // Listening from before the check, so a close in between is not missed.
        let mut closing = pin!(self.closing.notified());
        closing.as_mut().enable();
        if self.core.is_closed() {
            return Err(NotCreated::Closed);
        }
        let mut turn = pin!(self.backoff.turn(deadline));
        poll_fn(|cx| {
            if closing.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(NotCreated::Closed));
            }
            turn.as_mut().poll(cx).map(|turn| turn.ok_or(NotCreated::TimedOut))
        })
        .await
    }
}

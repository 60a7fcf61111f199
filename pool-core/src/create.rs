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
use crate::shared::Shared;

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
        &self,
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
                return Ok(booked);
            }
            Ran::NoRuntime => return Err(NotCreated::NoRuntime),
            Ran::Done(Err(error)) => Some(Arc::new(error)),
            Ran::TimedOut => None,
        };
        self.backoff.failed(now);
        drop(turn);
        if let Some(error) = &error {
            self.set_last_error(Some(Arc::clone(error)));
        }
        // Freed after the last error is written, so whoever gets the slot
        // next and creates cannot have its outcome overwritten by this one.
        drop(slot);
        let Some(error) = error else {
            tracing::warn!(%pool, ?took, "opening {what} timed out");
            self.emit(EventKind::CreateFailed { took, error: &"timed out" });
            return Err(NotCreated::TimedOut);
        };
        let chain = crate::ErrorChain(&*error);
        tracing::warn!(%pool, error = %chain, "could not open {what}");
        self.emit(EventKind::CreateFailed { took, error: &chain });
        Err(NotCreated::Failed(error))
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

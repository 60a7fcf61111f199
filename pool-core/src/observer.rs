//! The observer hook: how metrics, logging or tests learn of pool events
//! without `pool-core` depending on them.

use std::panic::Location;
use std::time::Duration;

use crate::error::TimeoutPhase;
use crate::manager::DestroyReason;
use crate::status::Status;

/// Receives every pool event. Register one with
/// [`PoolBuilder::observer`](crate::PoolBuilder::observer).
///
/// Called on the task where the event happened, after the pool released its
/// lock, so it must be quick and must not block (update counters, send to a
/// channel). A pool with no observer pays nothing for this hook: it does not
/// even read the clock for the durations.
pub trait Observer: Send + Sync + 'static {
    /// One event, with the pool's name and its counts right after the event.
    fn on_event(&self, event: &Event<'_>);
}

/// One thing that happened in a pool.
#[derive(Debug)]
pub struct Event<'a> {
    /// The pool's `name`.
    pub pool: &'a str,
    /// The pool's counts just after the event.
    pub status: Status,
    /// What happened.
    pub kind: EventKind<'a>,
}

/// What happened; see [`Event`].
#[non_exhaustive]
pub enum EventKind<'a> {
    /// The pool was built.
    Started,
    /// A slot was reserved and `create` is about to run (`status.creating`
    /// counts it), for a caller of `get` or to keep `min_idle`.
    Creating,
    /// A new resource was created, taking `took`.
    Created {
        /// How long `create` ran.
        took: Duration,
    },
    /// `create` failed or timed out after `took`.
    CreateFailed {
        /// How long `create` ran.
        took: Duration,
        /// What went wrong, as text (the backend error's `Display`).
        error: &'a dyn std::fmt::Display,
    },
    /// A caller got a resource after waiting `waited` in `get`.
    Acquired {
        /// Time from the call to `get` until it returned the resource.
        waited: Duration,
    },
    /// A resource came back after being held for `held` (sent after the
    /// pool booked it back, so `status` no longer counts it as in use).
    Released {
        /// Time from the end of `get` until the guard was dropped.
        held: Duration,
    },
    /// The backend refused a create for lack of free slots
    /// ([`Manager::is_capacity_error`](crate::Manager::is_capacity_error)),
    /// and the pool entered a capacity cool-down (`status.cooling_down`):
    /// it opens nothing new for `cooldown`. Sent once per cool-down, after
    /// the [`EventKind::CreateFailed`] of the refusal that began it; further
    /// refusals of creates that were already under way send only their
    /// `CreateFailed`.
    CapacityRefused {
        /// How long the pool opens nothing new.
        cooldown: Duration,
    },
    /// A `get` ran out of time.
    TimedOut {
        /// The step that was running.
        phase: TimeoutPhase,
    },
    /// A `get` found nothing free and joined the queue (`status.waiting` counts it).
    Queued,
    /// A queued `get` was dropped (cancelled) before it was served.
    Cancelled,
    /// A `get` was refused because `max_waiters` tasks were already waiting.
    Rejected,
    /// A resource was destroyed.
    Destroyed {
        /// Why.
        reason: DestroyReason,
    },
    /// A resource has been held longer than `leak_detection_threshold`.
    LeakSuspected {
        /// How long it has been held so far.
        held: Duration,
        /// Where the `get` that took it was called.
        location: &'static Location<'static>,
    },
    /// [`Pool::resize`](crate::Pool::resize) set a new `max_size`
    /// (`status.max_size`), and idle resources above it were removed.
    Resized,
    /// The pool was closed.
    Closed,
}

impl std::fmt::Debug for EventKind<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Started => f.write_str("Started"),
            Self::Creating => f.write_str("Creating"),
            Self::Created { took } => f.debug_struct("Created").field("took", took).finish(),
            Self::CreateFailed { took, error } => f
                .debug_struct("CreateFailed")
                .field("took", took)
                .field("error", &format_args!("{error}"))
                .finish(),
            Self::Acquired { waited } => f.debug_struct("Acquired").field("waited", waited).finish(),
            Self::Released { held } => f.debug_struct("Released").field("held", held).finish(),
            Self::CapacityRefused { cooldown } => {
                f.debug_struct("CapacityRefused").field("cooldown", cooldown).finish()
            }
            Self::TimedOut { phase } => f.debug_struct("TimedOut").field("phase", phase).finish(),
            Self::Queued => f.write_str("Queued"),
            Self::Resized => f.write_str("Resized"),
            Self::Cancelled => f.write_str("Cancelled"),
            Self::Rejected => f.write_str("Rejected"),
            Self::Destroyed { reason } => f.debug_struct("Destroyed").field("reason", reason).finish(),
            Self::LeakSuspected { held, location } => {
                f.debug_struct("LeakSuspected").field("held", held).field("location", location).finish()
            }
            Self::Closed => f.write_str("Closed"),
        }
    }
}

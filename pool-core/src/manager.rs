//! The [`Manager`] trait: what a backend implements to be pooled.

use std::future::Future;

use crate::info::ResourceInfo;

/// Why the pool destroyed a resource instead of handing it out again.
///
/// Passed to [`Manager::destroy`] and to observers, and used as the `reason`
/// label of pool-metrics' counter of closed resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DestroyReason {
    /// It sat idle longer than `idle_timeout` while more than `min_idle` were idle.
    Idle,
    /// It outlived `max_lifetime` (minus its jitter).
    Lifetime,
    /// [`Manager::is_broken`] said so on return, it was discarded by the
    /// borrower, or the borrower panicked while holding it.
    Broken,
    /// [`Manager::recycle`] failed, timed out or was cancelled halfway.
    RecycleFailed,
    /// [`Pool::evict_all`](crate::Pool::evict_all), [`Pool::retain`](crate::Pool::retain)
    /// or a [`Pool::resize`](crate::Pool::resize) to a smaller size removed it.
    Evicted,
    /// The pool was closed.
    Closed,
}

impl DestroyReason {
    /// A short, stable, lower-case name (`"idle"`, `"recycle_failed"`, ...), fit for a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Lifetime => "lifetime",
            Self::Broken => "broken",
            Self::RecycleFailed => "recycle_failed",
            Self::Evicted => "evicted",
            Self::Closed => "closed",
        }
    }
}

impl std::fmt::Display for DestroyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backend: creates resources, checks them before reuse and learns when
/// they are destroyed.
///
/// The pool never calls a manager method while it holds its own lock, so a
/// manager may take as long as it likes (the pool bounds `create` and
/// `recycle` with its timeouts) and may call back into the pool.
///
/// Implementations write plain `async fn`s; the futures must be `Send`
/// because the pool's upkeep task runs them in the background.
///
/// ```
/// use pool_core::{Manager, ResourceInfo};
///
/// struct Counter;
///
/// impl Manager for Counter {
///     type Resource = u64;
///     type Error = std::io::Error;
///
///     async fn create(&self) -> Result<u64, std::io::Error> {
///         Ok(0)
///     }
///
///     async fn recycle(&self, n: &mut u64, _info: &ResourceInfo) -> Result<(), std::io::Error> {
///         *n += 1;
///         Ok(())
///     }
/// }
/// ```
pub trait Manager: Send + Sync + 'static {
    /// What the pool hands out (a connection, a socket, ...).
    type Resource: Send + 'static;
    /// The backend's error, returned by `create` and `recycle`.
    type Error: std::error::Error + Send + Sync + 'static;

    /// What the backend calls its resource, in the singular and lower case
    /// (`"connection"`, `"session"`, `"channel"`): the word the pool's error
    /// messages, logs and leak reports use for it, so an operator reads
    /// "timed out after 5s waiting for a free connection" rather than a
    /// word from the pool's own vocabulary. Plurals add an "(s)". The
    /// default, `"resource"`, fits any backend.
    const RESOURCE: &'static str = "resource";

    /// Opens a new resource.
    ///
    /// The pool bounds this with `create_timeout` and the caller's
    /// `acquire_timeout`; when the bound passes, the future is dropped, so it
    /// must be cancel-safe in the sense that dropping it releases whatever it
    /// had opened.
    fn create(&self) -> impl Future<Output = Result<Self::Resource, Self::Error>> + Send;

    /// Checks (and, if needed, resets) an idle resource before it is handed out
    /// again, and validates idle resources when `keepalive_interval` is set.
    ///
    /// An error destroys the resource with [`DestroyReason::RecycleFailed`]
    /// and the caller gets another one; it is never returned to the caller
    /// directly. Bounded by `recycle_timeout`. Keep the common case cheap: the
    /// future is polled once inline, and no timer is armed unless it is still
    /// pending after that first poll. The default accepts every resource.
    fn recycle(
        &self,
        resource: &mut Self::Resource,
        info: &ResourceInfo,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (resource, info);
        std::future::ready(Ok(()))
    }

    /// Whether `error`, returned by [`Manager::create`], means the backend
    /// refused because it is full: it has no free slots for another
    /// resource (PostgreSQL's SQLSTATE 53300, "too many clients already" or
    /// "remaining connection slots are reserved"). The default says no.
    ///
    /// A backend's limit is often shared by many pools (the instances of a
    /// service, other clients), so on such an error the pool stops
    /// growing: it enters a capacity cool-down (1 s at first, doubling
    /// while refusals continue, up to 30 s, each +-25 % at random; reset by
    /// a successful create) in which it opens nothing new, serves its
    /// waiters with the resources returned to it, and fails a waiter only
    /// when the waiter's own `acquire_timeout` passes, with an error that
    /// says the backend is full. It logs one warning per cool-down, sends
    /// [`EventKind::CapacityRefused`](crate::EventKind::CapacityRefused),
    /// and shows it in [`Status::cooling_down`](crate::Status::cooling_down).
    ///
    /// Must be cheap and must not block: it runs on the task whose create
    /// failed.
    fn is_capacity_error(&self, error: &Self::Error) -> bool {
        let _ = error;
        false
    }

    /// Whether `error`, returned by [`Manager::create`], comes from a state
    /// of the backend that passes by itself within seconds (PostgreSQL's
    /// 57P03, "the database system is starting up" or "shutting down",
    /// during a restart). The caller is then not failed at once: it waits
    /// again, within its own `acquire_timeout`, for a returned resource or
    /// its next turn to create (after the create backoff), and times out
    /// naming this error as the last one. The default says no, so creates
    /// fail their caller at once.
    fn is_passing_error(&self, error: &Self::Error) -> bool {
        let _ = error;
        false
    }

    /// A cheap, synchronous check made when a resource is returned: `true`
    /// destroys it with [`DestroyReason::Broken`] instead of keeping it idle.
    /// The default says nothing is broken.
    fn is_broken(&self, resource: &mut Self::Resource) -> bool {
        let _ = resource;
        false
    }

    /// Whether a resource just returned (and not [broken](Manager::is_broken))
    /// must be [settled](Manager::settle) before anyone may have it again:
    /// for a resource the borrower left with work in flight (PostgreSQL: a
    /// statement whose future was dropped). Cheap and synchronous, like
    /// `is_broken`. The default says no.
    fn needs_settling(&self, resource: &mut Self::Resource) -> bool {
        let _ = resource;
        false
    }

    /// Brings a returned resource back to a reusable state, on a task of
    /// the pool's own, so neither the borrower that left the work behind
    /// nor the next one waits for it. Meanwhile the resource counts as in
    /// use. Bounded by `recycle_timeout` (or else `acquire_timeout`); an
    /// error or the bound passing destroys it with
    /// [`DestroyReason::RecycleFailed`]. Without a Tokio runtime to run it
    /// on, the resource goes back idle unsettled, so [`Manager::recycle`]
    /// must also be able to settle it. The default does nothing.
    fn settle(&self, resource: &mut Self::Resource) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = resource;
        std::future::ready(Ok(()))
    }

    /// Called once for every resource the pool gives up, with the reason.
    /// The default just drops it. Runs on whichever task gave it up (possibly
    /// inside a `Drop`), so it must not block; spawn if closing needs I/O.
    fn destroy(&self, resource: Self::Resource, reason: DestroyReason) {
        let _ = reason;
        drop(resource);
    }
}

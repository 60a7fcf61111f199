//! The errors of `get` ([`Error`]), of building a pool ([`BuildError`]) and of
//! closing one ([`CloseTimedOut`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Which step of `get` ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Waiting in the queue for another task to return a resource.
    Wait,
    /// Creating a new resource (`create_timeout`, or the end of `acquire_timeout`).
    Create,
    /// Checking an idle resource before handing it out (the end of `acquire_timeout`).
    Recycle,
}

impl TimeoutPhase {
    /// A short lower-case name (`"wait"`, `"create"`, `"recycle"`), fit for a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::Create => "create",
            Self::Recycle => "recycle",
        }
    }
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why `get` or `try_get` gave no resource. `E` is the backend's error.
///
/// The messages name the resource with the word its backend chose
/// ([`Manager::RESOURCE`](crate::Manager::RESOURCE)), carried in the
/// variants' `resource` field.
///
/// Backend errors are shared (`Arc<E>`) because one failure can be reported
/// to many callers: the task whose `create` failed gets [`Error::Backend`],
/// and tasks that time out meanwhile see it as `last_error`.
#[non_exhaustive]
pub enum Error<E> {
    /// Ran out of time in `phase`, after `elapsed` in `get`.
    Timeout {
        /// The step that was running when time ran out.
        phase: TimeoutPhase,
        /// How long `get` had been running.
        elapsed: Duration,
        /// The pool's `max_size` at the time.
        max_size: usize,
        /// The last error the backend returned while this caller waited (a
        /// failed create or recycle), which is usually the real cause.
        last_error: Option<Arc<E>>,
        /// Set when `last_error` was the backend refusing a create for lack
        /// of free slots ([`Manager::is_capacity_error`](crate::Manager::is_capacity_error)):
        /// how many resources this pool held then.
        refused_at_size: Option<usize>,
        /// What the backend calls its resource ([`Manager::RESOURCE`](crate::Manager::RESOURCE)).
        resource: &'static str,
    },
    /// The pool is closed; it hands out nothing any more.
    Closed,
    /// `max_waiters` tasks were already waiting, so this one was refused at once.
    Overloaded {
        /// The configured limit.
        max_waiters: usize,
        /// What the backend calls its resource ([`Manager::RESOURCE`](crate::Manager::RESOURCE)).
        resource: &'static str,
    },
    /// `try_get` found no idle resource and no free slot.
    Exhausted {
        /// The pool's `max_size` at the time.
        max_size: usize,
        /// What the backend calls its resource ([`Manager::RESOURCE`](crate::Manager::RESOURCE)).
        resource: &'static str,
    },
    /// The backend failed to create a resource for this caller.
    Backend(Arc<E>),
    /// `get` was called outside a Tokio runtime, so it could not wait.
    NoRuntime,
    /// A router over several backends (a primary and its standbys, say)
    /// found none that can serve what the caller asked for within its
    /// timeout: all such backends down, or a failover under way.
    NoneEligible {
        /// What the caller asked for, in the router's words.
        wanted: String,
        /// What each backend was seen as, in the router's words.
        seen: String,
        /// How long the caller waited.
        elapsed: Duration,
    },
}

impl<E> Error<E> {
    /// The backend error behind this one: the failure itself for
    /// [`Error::Backend`], the last failure seen for [`Error::Timeout`].
    pub fn backend_error(&self) -> Option<&E> {
        match self {
            Self::Backend(e) => Some(e),
            Self::Timeout { last_error, .. } => last_error.as_deref(),
            _ => None,
        }
    }

    /// Whether this is a [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }
}

/// Displays an error and every `source()` below it, `: `-separated, skipping
/// a source whose text is already in what was written before it.
///
/// Backends often put the real cause in a source: tokio-postgres displays a
/// server error as just "db error", and its source says "FATAL: sorry, too
/// many clients already". Every crate, example and tool of this workspace
/// prints errors through this one adaptor, so an error reads the same in a
/// log line, the CLI and a test failure.
///
/// ```
/// use std::fmt;
///
/// #[derive(Debug)]
/// struct Outer(std::io::Error);
/// impl fmt::Display for Outer {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str("connecting") }
/// }
/// impl std::error::Error for Outer {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> { Some(&self.0) }
/// }
///
/// let error = Outer(std::io::Error::other("connection refused"));
/// assert_eq!(pool_core::ErrorChain(&error).to_string(), "connecting: connection refused");
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut next = self.0.source();
        while let Some(source) = next {
            let part = source.to_string();
            if !text.contains(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            next = source.source();
        }
        f.write_str(&text)
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<E: std::error::Error + 'static> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { phase, elapsed, max_size, last_error, refused_at_size, resource } => {
                if let Some(held) = refused_at_size {
                    let doing = match phase {
                        TimeoutPhase::Wait => "waiting for a free",
                        TimeoutPhase::Create => "opening a new",
                        TimeoutPhase::Recycle => "checking an idle",
                    };
                    write!(
                        f,
                        "timed out after {elapsed:?} {doing} {resource}: the backend has no free {resource} \
                         slots and refused new ones while this pool held {held} of its max_size {max_size}; \
                         its limit (a database server's max_connections, say) is shared with every other \
                         client of it, so lower max_size, run fewer instances, check that the instances' \
                         max_size fits the limit (pool-postgres: check_budget), or put a pooler such as \
                         PgBouncer in front"
                    )?;
                } else {
                    match phase {
                        TimeoutPhase::Wait => write!(
                            f,
                            "timed out after {elapsed:?} waiting for a free {resource} (all {max_size} in use); \
                             return them sooner, raise max_size or raise acquire_timeout"
                        )?,
                        TimeoutPhase::Create => write!(
                            f,
                            "timed out after {elapsed:?} opening a new {resource}; check that the backend is \
                             reachable and not overloaded, or raise create_timeout/acquire_timeout"
                        )?,
                        TimeoutPhase::Recycle => write!(
                            f,
                            "timed out after {elapsed:?} checking an idle {resource} before reuse; the backend \
                             or the network path to it may be stuck"
                        )?,
                    }
                }
                if let Some(e) = last_error {
                    write!(f, "; last error from the backend: {}", ErrorChain(&**e))?;
                }
                Ok(())
            }
            Self::Closed => f.write_str("the pool is closed and hands out nothing more"),
            Self::Overloaded { max_waiters, resource } => write!(
                f,
                "refused at once: {max_waiters} tasks are already waiting for a {resource} (max_waiters); \
                 the service is overloaded, shed load or raise max_waiters"
            ),
            Self::Exhausted { max_size, resource } => write!(
                f,
                "no idle {resource} and no free slot (all {max_size} in use), and try_get does not wait"
            ),
            Self::Backend(e) => {
                write!(f, "the backend's create failed for this call: {}", ErrorChain(&**e))
            }
            Self::NoRuntime => f.write_str(
                "the pool must be used inside a Tokio runtime with timers enabled, and none is running here",
            ),
            Self::NoneEligible { wanted, seen, elapsed } => write!(
                f,
                "found no {wanted} within {elapsed:?} ({seen}); a failover may be under way, or no backend \
                 has the role asked for"
            ),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { phase, elapsed, max_size, last_error, refused_at_size, resource } => f
                .debug_struct("Timeout")
                .field("phase", phase)
                .field("elapsed", elapsed)
                .field("max_size", max_size)
                .field("last_error", last_error)
                .field("refused_at_size", refused_at_size)
                .field("resource", resource)
                .finish(),
            Self::Closed => f.write_str("Closed"),
            Self::Overloaded { max_waiters, resource } => f
                .debug_struct("Overloaded")
                .field("max_waiters", max_waiters)
                .field("resource", resource)
                .finish(),
            Self::Exhausted { max_size, resource } => {
                f.debug_struct("Exhausted").field("max_size", max_size).field("resource", resource).finish()
            }
            Self::Backend(e) => f.debug_tuple("Backend").field(e).finish(),
            Self::NoRuntime => f.write_str("NoRuntime"),
            Self::NoneEligible { wanted, seen, elapsed } => f
                .debug_struct("NoneEligible")
                .field("wanted", wanted)
                .field("seen", seen)
                .field("elapsed", elapsed)
                .finish(),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Backend(e) | Self::Timeout { last_error: Some(e), .. } => Some(&**e),
            _ => None,
        }
    }
}

/// A pool setting was out of range; says which one, the value given and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    setting: &'static str,
    value: String,
    rule: &'static str,
}

impl BuildError {
    /// An error for `setting`, whose `value` broke `rule` (for wrappers of
    /// the pool that check settings of their own the same way).
    pub fn new(setting: &'static str, value: impl fmt::Debug, rule: &'static str) -> Self {
        Self { setting, value: format!("{value:?}"), rule }
    }

    /// The name of the bad setting, as the builder method is called (`"max_size"`).
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// The value that was given, as text.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid pool setting {} = {}: {}", self.setting, self.value, self.rule)
    }
}

impl std::error::Error for BuildError {}

/// [`Pool::close_and_wait`](crate::Pool::close_and_wait) gave up before every
/// checked-out resource came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseTimedOut {
    /// Resources still checked out (or being created) when time ran out.
    pub outstanding: usize,
    /// What the backend calls its resource ([`Manager::RESOURCE`](crate::Manager::RESOURCE)).
    pub resource: &'static str,
}

impl fmt::Display for CloseTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the pool is closed but {} {}(s) were still checked out when the deadline passed; \
             they are destroyed when their holders drop them",
            self.outstanding, self.resource
        )
    }
}

impl std::error::Error for CloseTimedOut {}

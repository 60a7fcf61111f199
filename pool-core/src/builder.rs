//! [`PoolBuilder`]: every setting of a pool, with its operational reason.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Reuse, Sizes};
use crate::error::BuildError;
use crate::manager::Manager;
use crate::observer::Observer;
use crate::pool::Pool;

/// Configures and builds a [`Pool`]. Start with [`Pool::builder`].
///
/// Setters that take `impl Into<Option<Duration>>` accept a `Duration` to set
/// the limit or `None` to switch it off.
#[must_use = "a builder does nothing until .build() is called"]
pub struct PoolBuilder<M> {
    manager: M,
    sizes: Sizes,
    config: Config,
    observers: Vec<Arc<dyn Observer>>,
}

impl<M: Manager> PoolBuilder<M> {
    pub(crate) fn new(manager: M) -> Self {
        Self { manager, sizes: Sizes::default(), config: Config::default(), observers: Vec::new() }
    }

    /// A name for logs and metrics labels, so several pools in one process
    /// stay apart. Default `"default"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// The most resources open at once, in use and idle together (and being
    /// created). This is the bound that keeps a service under the backend's
    /// own limit (a database server's connection limit, say): the backend
    /// must have room for `max_size` times the number of instances.
    /// Default 10; must be at least 1.
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.sizes.max_size = max_size;
        self
    }

    /// How many idle resources the pool keeps ready (created in the
    /// background), so a burst after a quiet spell does not pay for
    /// connecting. Idle reaping never goes below it. Default 0; at most `max_size`.
    pub fn min_idle(mut self, min_idle: usize) -> Self {
        self.sizes.min_idle = min_idle;
        self
    }

    /// The longest a `get` may take in all: queueing, creating and checking
    /// included. Then it fails with [`Error::Timeout`](crate::Error::Timeout)
    /// naming the phase and the last backend error. Finite by design; default 30 s.
    ///
    /// Waiting in the queue arms no timer per call: one timer task per pool
    /// watches the queue's deadlines (see the crate docs), and fails a
    /// waiter within Tokio's timer resolution (about a millisecond) of its
    /// deadline.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.config.acquire_timeout = timeout;
        self
    }

    /// The longest one `create` may take (also for background refills).
    /// Unset (the default), a create is bounded only by the caller's
    /// `acquire_timeout`, and background creates by `acquire_timeout` too.
    pub fn create_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.create_timeout = timeout.into();
        self
    }

    /// The longest one `recycle` may take. When it passes, the resource is
    /// destroyed and the caller gets another one. Unset (the default), a
    /// recycle is bounded by the caller's `acquire_timeout`.
    pub fn recycle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.recycle_timeout = timeout.into();
        self
    }

    /// Idle resources beyond `min_idle` that have not been used for this long
    /// are closed, so a pool shrinks back after a burst and stops holding
    /// server slots it does not need. Default 10 min; `None` keeps them.
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.idle_timeout = timeout.into();
        self
    }

    /// Resources older than this are closed (idle ones by the maintenance
    /// task, in-use ones when they come back), so server-side memory growth,
    /// credential changes and load-balancer rebalancing take effect. Each
    /// resource gets a random jitter of up to 2.5% off its lifetime so they
    /// do not all expire together. Default 30 min; `None` keeps them forever.
    pub fn max_lifetime(mut self, lifetime: impl Into<Option<Duration>>) -> Self {
        self.config.max_lifetime = lifetime.into();
        self
    }

    /// Validates idle resources in the background (with
    /// [`Manager::recycle`]) when they have not been used or checked for
    /// this long, so firewalls and NATs do not silently drop the network
    /// connections of idle resources, and dead ones are found before a
    /// caller gets them. Default off.
    pub fn keepalive_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.config.keepalive_interval = interval.into();
        self
    }

    /// Which idle resource to hand out first; see [`Reuse`]. Default LIFO.
    pub fn reuse(mut self, reuse: Reuse) -> Self {
        self.config.reuse = reuse;
        self
    }

    /// Load shedding: when this many tasks already wait in `get`, further
    /// calls fail at once with [`Error::Overloaded`](crate::Error::Overloaded)
    /// instead of queueing, so an overloaded service answers quickly instead of
    /// piling up work. Default unlimited.
    pub fn max_waiters(mut self, max_waiters: impl Into<Option<usize>>) -> Self {
        self.config.max_waiters = max_waiters.into();
        self
    }

    /// The most [`Manager::create`] calls in flight at once, for callers
    /// of `get` and background refills together. A `get` that would create
    /// while this many run waits in the queue, in turn, for a returned
    /// resource or for a create to finish, within its `acquire_timeout`.
    ///
    /// This keeps a pool from opening `max_size` resources at once when a
    /// burst meets an empty pool (after a start, a restart of the backend,
    /// an eviction): a backend shared by many instances then sees a few
    /// connection attempts per instance at a time, not a stampede, and a
    /// full backend refuses only a few of them before the pool stops
    /// growing (see [`Manager::is_capacity_error`]). Raise it when creating
    /// is slow and callers should not wait for one another's creates.
    /// Default [`DEFAULT_MAX_CONCURRENT_CREATES`](crate::DEFAULT_MAX_CONCURRENT_CREATES)
    /// (2); must be at least 1.
    pub fn max_concurrent_creates(mut self, max_concurrent_creates: usize) -> Self {
        self.config.max_concurrent_creates = max_concurrent_creates;
        self
    }

    /// Logs a warning (and sends [`EventKind::LeakSuspected`](crate::EventKind::LeakSuspected))
    /// naming the source line of the `get` when a resource is held longer than
    /// this, to find code that forgets to give resources back. Default off;
    /// when on, each `get` records the time and its caller.
    pub fn leak_detection_threshold(mut self, threshold: impl Into<Option<Duration>>) -> Self {
        self.config.leak_detection_threshold = threshold.into();
        self
    }

    /// Adds an observer that learns of every event (metrics, logging, tests).
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Validates the settings and builds the pool.
    ///
    /// Inside a Tokio runtime this also starts the background tasks: the
    /// maintenance task (idle reaping, lifetimes, leak reports) and, with
    /// `min_idle` or `keepalive_interval` set, the upkeep task (`min_idle`
    /// refills, keepalive checks); outside one, they start at the first `get`.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the first setting that is out of range, its
    /// value and the rule (for instance `max_size = 0`).
    pub fn build(self) -> Result<Pool<M>, BuildError> {
        self.sizes.validate()?;
        self.config.validate()?;
        Ok(Pool::from_parts(self.manager, self.sizes, self.config, self.observers))
    }
}

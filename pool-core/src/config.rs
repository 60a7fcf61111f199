//! The validated settings a pool is built with, and their defaults:
//! [`Sizes`], the two that [`Pool::resize`](crate::Pool::resize) can change
//! later and so live in the engine once the pool is built, and [`Config`],
//! every other one, fixed for the pool's life.

use std::time::Duration;

use crate::error::BuildError;

/// Which idle resource `get` takes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reuse {
    /// The most recently returned one (the default). Keeps a small hot set in
    /// use, so surplus resources stay idle long enough for `idle_timeout` to
    /// close them when load drops.
    #[default]
    Lifo,
    /// The least recently returned one. Spreads use over every resource
    /// (useful when the backend spreads its resources across servers, and
    /// each should carry its share of the load).
    Fifo,
}

/// Default `max_size`: 10.
pub const DEFAULT_MAX_SIZE: usize = 10;
/// Default `acquire_timeout`: 30 s. Finite, so a starved caller fails instead of hanging.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `idle_timeout`: 10 min.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Default `max_lifetime`: 30 min.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Default `max_concurrent_creates`: 2. More than one, so one slow create
/// (a connect stuck on DNS, TLS or authentication) does not hold up every
/// other; few, so a burst of callers on an empty pool, or many instances
/// starting together, open resources a couple at a time per instance rather
/// than `max_size` at once, and a backend that is full refuses at most two
/// attempts per instance before the pool cools down.
pub const DEFAULT_MAX_CONCURRENT_CREATES: usize = 2;

/// How many resources a pool may hold and keeps ready, as built. Handed to
/// the engine, which owns the live values from then on (`resize` changes
/// them there): nothing else keeps a copy that could go stale.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
}

impl Default for Sizes {
    fn default() -> Self {
        Self { max_size: DEFAULT_MAX_SIZE, min_idle: 0 }
    }
}

impl Sizes {
    /// Checks both sizes, naming the first bad one.
    pub(crate) fn validate(self) -> Result<(), BuildError> {
        validate_max_size(self.max_size)?;
        if self.min_idle > self.max_size {
            return Err(BuildError::new("min_idle", self.min_idle, "must not be larger than max_size"));
        }
        Ok(())
    }
}

/// The rule for `max_size`, at build time and at `resize`.
pub(crate) fn validate_max_size(max_size: usize) -> Result<(), BuildError> {
    if max_size == 0 {
        return Err(BuildError::new("max_size", max_size, "must be at least 1"));
    }
    Ok(())
}

/// Every other setting of a pool after validation, fixed for its life.
/// Build one with [`PoolBuilder`](crate::PoolBuilder).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: String,
    pub(crate) acquire_timeout: Duration,
    pub(crate) create_timeout: Option<Duration>,
    pub(crate) recycle_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) keepalive_interval: Option<Duration>,
    pub(crate) reuse: Reuse,
    pub(crate) max_waiters: Option<usize>,
    pub(crate) max_concurrent_creates: usize,
    pub(crate) leak_detection_threshold: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: String::from("default"),
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            create_timeout: None,
            recycle_timeout: None,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_lifetime: Some(DEFAULT_MAX_LIFETIME),
            keepalive_interval: None,
            reuse: Reuse::Lifo,
            max_waiters: None,
            max_concurrent_creates: DEFAULT_MAX_CONCURRENT_CREATES,
            leak_detection_threshold: None,
        }
    }
}

impl Config {
    /// Checks every setting, naming the first bad one.
    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        if self.name.is_empty() {
            return Err(BuildError::new("name", &self.name, "must not be empty"));
        }
        let positive = [
            ("acquire_timeout", Some(self.acquire_timeout)),
            ("create_timeout", self.create_timeout),
            ("recycle_timeout", self.recycle_timeout),
            ("idle_timeout", self.idle_timeout),
            ("max_lifetime", self.max_lifetime),
            ("keepalive_interval", self.keepalive_interval),
            ("leak_detection_threshold", self.leak_detection_threshold),
        ];
        for (setting, value) in positive {
            if value == Some(Duration::ZERO) {
                return Err(BuildError::new(
                    setting,
                    Duration::ZERO,
                    "must be longer than zero (leave it unset to disable it)",
                ));
            }
        }
        if self.max_concurrent_creates == 0 {
            return Err(BuildError::new("max_concurrent_creates", 0, "must be at least 1"));
        }
        if self.max_waiters == Some(0) {
            return Err(BuildError::new(
                "max_waiters",
                0,
                "must be at least 1 (leave it unset for no limit)",
            ));
        }
        Ok(())
    }

    /// How long background work (refill, keepalive) may spend on one
    /// create or recycle, which no caller's deadline bounds.
    pub(crate) fn background_create_timeout(&self) -> Duration {
        self.create_timeout.unwrap_or(self.acquire_timeout)
    }

    /// See [`Config::background_create_timeout`].
    pub(crate) fn background_recycle_timeout(&self) -> Duration {
        self.recycle_timeout.unwrap_or(self.acquire_timeout)
    }
}

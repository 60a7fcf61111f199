//! [`ResourceInfo`]: what the pool knows about one resource.

use std::time::Duration;

use tokio::time::Instant;

/// Book-keeping the pool keeps beside each resource, shown to
/// [`Manager::recycle`](crate::Manager::recycle), to
/// [`Pool::retain`](crate::Pool::retain) predicates and through
/// [`Pooled::info`](crate::Pooled::info).
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub(crate) created_at: Instant,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) returned_at: Instant,
    pub(crate) alive_at: Instant,
    pub(crate) checkouts: u64,
    pub(crate) generation: u64,
}

impl ResourceInfo {
    pub(crate) fn new(now: Instant, expires_at: Option<Instant>, generation: u64) -> Self {
        Self { created_at: now, expires_at, returned_at: now, alive_at: now, checkouts: 0, generation }
    }

    /// When the resource was created.
    pub fn created_at(&self) -> Instant {
        self.created_at
    }

    /// How long ago the resource was created.
    pub fn age(&self) -> Duration {
        self.created_at.elapsed()
    }

    /// When the resource was last returned to the pool (its creation time if
    /// it was never handed out).
    pub fn returned_at(&self) -> Instant {
        self.returned_at
    }

    /// How long the resource has been idle since it was last returned.
    pub fn idle_for(&self) -> Duration {
        self.returned_at.elapsed()
    }

    /// When the resource was last known to work: its last return, or its last
    /// successful keepalive check.
    pub fn alive_at(&self) -> Instant {
        self.alive_at
    }

    /// When `max_lifetime` (with this resource's jitter) retires it, if set.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// How many times the resource has been handed out, the current
    /// checkout included (0 while it was never handed out).
    pub fn checkouts(&self) -> u64 {
        self.checkouts
    }
}

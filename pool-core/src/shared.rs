//! [`Shared`]: everything one pool's handles, guards and background tasks
//! share, and the small operations they all use (destroying, emitting
//! events, waking, recording the last backend error).
//!
//! The pool's larger operations are `impl Shared` blocks in files named
//! for them: `acquire.rs` (`get`), `create.rs` (the one create path),
//! `recycle.rs` (the one check path), `maintenance.rs` (housekeeping) and
//! `upkeep.rs` (the background's calls to the backend).

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::task::Waker;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::background::Background;
use crate::backoff::Backoff;
use crate::config::{Config, Sizes};
use crate::engine::{Core, Entry, EntryData, Removed, Returned};
use crate::jitter::Jitter;
use crate::leak::LeakRegistry;
use crate::manager::{DestroyReason, Manager};
use crate::observer::{Event, EventKind, Observer};
use crate::status::Status;

pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    pub(crate) core: Core<M::Resource>,
    pub(crate) config: Config,
    observers: Box<[Arc<dyn Observer>]>,
    /// Whether `get` reads the clock for observers or leak detection.
    pub(crate) timed: bool,
    /// Live `Pool` handles; the pool closes when the last one drops.
    pub(crate) handles: AtomicUsize,
    pub(crate) backoff: Backoff,
    /// The last backend error, cleared by the next successful create; shown
    /// in timeout errors as the likely cause.
    last_error: Mutex<Option<LastError<M::Error>>>,
    /// The maintenance task (`maintenance.rs`).
    pub(crate) maintenance: Background,
    /// The upkeep task (`upkeep.rs`), if the pool has upkeep to do.
    pub(crate) upkeep: Background,
    /// Whether the pool keeps idle resources ready or checks idle ones
    /// (`min_idle` or `keepalive_interval` set), the upkeep task's work.
    pub(crate) has_upkeep: bool,
    /// The queue's timer task (`expiry.rs`).
    pub(crate) timer: Background,
    /// Signalled when a closed pool has no resource left.
    pub(crate) drained: Notify,
    /// Signalled (to every task listening) when the pool is closed, so a
    /// create waiting for its backoff turn gives up at once.
    pub(crate) closing: Notify,
    pub(crate) leaks: Option<LeakRegistry>,
    pub(crate) jitter: Jitter,
}

impl<M: Manager> Shared<M> {
    pub(crate) fn new(manager: M, sizes: Sizes, config: Config, observers: Vec<Arc<dyn Observer>>) -> Self {
        let leaks = config.leak_detection_threshold.map(LeakRegistry::new);
        Self {
            manager,
            core: Core::new(sizes, config.reuse, config.max_waiters, config.max_concurrent_creates),
            timed: !observers.is_empty() || leaks.is_some(),
            observers: observers.into_boxed_slice(),
            handles: AtomicUsize::new(1),
            backoff: Backoff::default(),
            last_error: Mutex::new(None),
            maintenance: Background::default(),
            upkeep: Background::default(),
            has_upkeep: sizes.min_idle > 0 || config.keepalive_interval.is_some(),
            timer: Background::default(),
            drained: Notify::new(),
            closing: Notify::new(),
            leaks,
            jitter: Jitter::new(),
            config,
        }
    }

    /// Sends an event to every observer, with the counts right after it.
    pub(crate) fn emit(&self, kind: EventKind<'_>) {
        if self.observers.is_empty() {
            return;
        }
        self.emit_with(&self.core.status(), kind);
    }

    /// Sends an event with the counts read in the critical section of the
    /// operation that caused it, if that `snapshot` is still the right one,
    /// and with the counts now otherwise.
    pub(crate) fn emit_after(&self, snapshot: Option<&Status>, kind: EventKind<'_>) {
        match snapshot {
            Some(status) => self.emit_with(status, kind),
            None => self.emit(kind),
        }
    }

    /// Sends an event with counts already read (in the critical section of
    /// the operation that caused it).
    pub(crate) fn emit_with(&self, status: &Status, kind: EventKind<'_>) {
        let event = Event { pool: &self.config.name, status: *status, kind };
        for observer in &*self.observers {
            observer.on_event(&event);
        }
    }

    pub(crate) fn observed(&self) -> bool {
        !self.observers.is_empty()
    }

    /// The last backend error, if the last create or check failed, and
    /// whether it was a refusal for capacity.
    pub(crate) fn last_error(&self) -> Option<LastError<M::Error>> {
        self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Written only by the create path (`create.rs`) and the check path
    /// (`recycle.rs`), once per outcome.
    pub(crate) fn set_last_error(&self, error: Option<LastError<M::Error>>) {
        *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = error;
    }

    /// Hands a resource that left the pool's books to the manager.
    #[allow(clippy::boxed_local, reason = "entries live boxed from creation on; see engine::Entry")]
    pub(crate) fn destroy(&self, entry: Entry<M::Resource>, reason: DestroyReason) {
        tracing::debug!(pool = %self.config.name, %reason, "closing a {}", M::RESOURCE);
        self.manager.destroy(entry.resource, reason);
        self.emit(EventKind::Destroyed { reason });
        if reason != DestroyReason::Closed && self.has_upkeep && self.core.keeps_idle() {
            self.upkeep.wake();
        }
        self.notify_if_drained();
    }

    /// Makes the maintenance and upkeep tasks run a round now: something
    /// changed (a close, a resize, an eviction) that their next round
    /// would otherwise learn of only when it is due.
    pub(crate) fn wake_housekeeping(&self) {
        self.maintenance.wake();
        self.upkeep.wake();
    }

    /// A create's turn was given back (engine invariant 6): if the upkeep
    /// task skipped a `min_idle` refill for want of one, it refills now.
    pub(crate) fn refill_if_short(&self) {
        if self.has_upkeep && self.core.needs_refill() {
            self.upkeep.wake();
        }
    }

    /// Wakes `close_and_wait` callers once a closed pool holds nothing.
    pub(crate) fn notify_if_drained(&self) {
        if self.core.is_closed() && self.core.outstanding() == 0 {
            self.drained.notify_waiters();
        }
    }

    pub(crate) fn settle(&self, returned: Returned<M::Resource>) {
        match returned {
            Returned::Kept(waker) => wake(waker),
            Returned::Destroy(entry, reason, waker) => {
                wake(waker);
                self.destroy(entry, reason);
            }
        }
    }

    pub(crate) fn settle_removed(&self, removed: Removed<M::Resource>) {
        for waker in removed.wake {
            waker.wake();
        }
        for (entry, reason) in removed.destroy {
            self.destroy(entry, reason);
        }
    }

    /// Book-keeping for a freshly created resource.
    #[allow(
        clippy::unnecessary_box_returns,
        reason = "entries live boxed from creation on; see engine::Entry"
    )]
    pub(crate) fn new_entry(
        &self,
        resource: M::Resource,
        created: Instant,
        generation: u64,
    ) -> Entry<M::Resource> {
        let expires_at = self.jitter.expiry(created, self.config.max_lifetime);
        Box::new(EntryData {
            resource,
            info: crate::info::ResourceInfo::new(created, expires_at, generation),
            lease: crate::engine::Lease::default(),
        })
    }
}

impl<M: Manager> Drop for Shared<M> {
    fn drop(&mut self) {
        if let Some(removed) = self.core.close() {
            for (entry, reason) in removed.destroy {
                self.manager.destroy(entry.resource, reason);
            }
        }
    }
}

/// A backend error kept as the pool's last one.
pub(crate) struct LastError<E> {
    pub(crate) error: Arc<E>,
    /// Set when it was a create refused for capacity
    /// ([`Manager::is_capacity_error`]): the resources the pool held then.
    pub(crate) refused_at_size: Option<usize>,
}

impl<E> LastError<E> {
    /// Any other failure of a create or a check.
    pub(crate) fn failed(error: Arc<E>) -> Self {
        Self { error, refused_at_size: None }
    }
}

// Not derived: that would ask for `E: Clone`.
impl<E> Clone for LastError<E> {
    fn clone(&self) -> Self {
        Self { error: Arc::clone(&self.error), refused_at_size: self.refused_at_size }
    }
}

pub(crate) fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

//! [`Pool`]: the handle services keep and clone.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::builder::PoolBuilder;
use crate::cancel_guards::Retaining;
use crate::config::{Config, Sizes, validate_max_size};
use crate::error::{BuildError, CloseTimedOut, Error};
use crate::guard::Pooled;
use crate::info::ResourceInfo;
use crate::manager::{DestroyReason, Manager};
use crate::observer::{EventKind, Observer};
use crate::shared::{Shared, wake};
use crate::status::Status;
use crate::{maintenance, upkeep};

/// A bounded, shared pool of resources made by a [`Manager`].
///
/// Cheap to clone: every clone is a handle to the same pool. Keep one pool
/// per process (per database) and pass clones around; when the last handle
/// is dropped the pool closes (see [`Pool::close`]).
pub struct Pool<M: Manager> {
    shared: Arc<Shared<M>>,
}

impl<M: Manager> Pool<M> {
    /// Starts configuring a pool over `manager`; see [`PoolBuilder`].
    pub fn builder(manager: M) -> PoolBuilder<M> {
        PoolBuilder::new(manager)
    }

    pub(crate) fn from_parts(
        manager: M,
        sizes: Sizes,
        config: Config,
        observers: Vec<Arc<dyn Observer>>,
    ) -> Self {
        let shared = Arc::new(Shared::new(manager, sizes, config, observers));
        tracing::info!(
            pool = %shared.config.name,
            max_size = sizes.max_size,
            min_idle = sizes.min_idle,
            acquire_timeout = ?shared.config.acquire_timeout,
            "pool started"
        );
        shared.emit(EventKind::Started);
        maintenance::start(&shared);
        upkeep::start(&shared);
        Self { shared }
    }

    /// Borrows a resource, waiting in line (first come, first served) until
    /// one is free, for at most `acquire_timeout`.
    ///
    /// Takes an idle resource (checked with [`Manager::recycle`] first) or,
    /// when fewer than `max_size` exist, creates one. A resource that fails
    /// its check is destroyed and replaced transparently.
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] when `acquire_timeout` passes, naming the phase
    ///   (waiting, creating, checking) and the last backend error seen;
    /// - [`Error::Backend`] when creating the resource for this call failed;
    /// - [`Error::Closed`] once the pool is closed, also for calls already waiting;
    /// - [`Error::Overloaded`] at once when `max_waiters` tasks already wait;
    /// - [`Error::NoRuntime`] when it must wait outside a Tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future at any point (for instance under
    /// `tokio::time::timeout` or in a losing `select!` branch) leaks nothing.
    /// Its place in the queue is released, a resource or slot granted to it
    /// meanwhile goes to the next waiter, a resource it was checking is
    /// destroyed, and a resource it was creating is abandoned with its slot
    /// freed. `status()` stays consistent throughout.
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<Pooled<M>, Error<M::Error>>> + Send + '_ {
        let location = Location::caller();
        self.start_background_tasks();
        self.shared.acquire(true, location)
    }

    /// Like [`Pool::get`], but never queues: it takes an idle resource or a
    /// free slot if there is one (still checking or creating it, within
    /// `acquire_timeout`), and otherwise fails at once.
    ///
    /// # Errors
    ///
    /// [`Error::Exhausted`] when nothing is free or others are already
    /// waiting; otherwise as [`Pool::get`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`Pool::get`].
    #[track_caller]
    pub fn try_get(&self) -> impl Future<Output = Result<Pooled<M>, Error<M::Error>>> + Send + '_ {
        let location = Location::caller();
        self.start_background_tasks();
        self.shared.acquire(false, location)
    }

    /// [`Pool::get`] for a wrapper of the pool that takes its own caller's
    /// location (`#[track_caller]` and [`Location::caller`]) and passes it
    /// on, so leak reports name the wrapper's caller.
    ///
    /// # Errors
    ///
    /// As [`Pool::get`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`Pool::get`].
    pub fn get_at(
        &self,
        location: &'static Location<'static>,
    ) -> impl Future<Output = Result<Pooled<M>, Error<M::Error>>> + Send + '_ {
        self.start_background_tasks();
        self.shared.acquire(true, location)
    }

    /// [`Pool::try_get`] with the caller's location passed on, as
    /// [`Pool::get_at`].
    ///
    /// # Errors
    ///
    /// As [`Pool::try_get`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`Pool::get`].
    pub fn try_get_at(
        &self,
        location: &'static Location<'static>,
    ) -> impl Future<Output = Result<Pooled<M>, Error<M::Error>>> + Send + '_ {
        self.start_background_tasks();
        self.shared.acquire(false, location)
    }

    fn start_background_tasks(&self) {
        maintenance::start(&self.shared);
        upkeep::start(&self.shared);
    }

    /// The pool's counts, all from the same instant.
    pub fn status(&self) -> Status {
        self.shared.core.status()
    }

    /// The pool's name, as given to the builder.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// The backend manager.
    pub fn manager(&self) -> &M {
        &self.shared.manager
    }

    /// Whether [`Pool::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.shared.core.is_closed()
    }

    /// Closes the pool. Idempotent and immediate: new and waiting `get`s
    /// fail with [`Error::Closed`] at once, idle resources are destroyed now,
    /// and resources in use are destroyed as they come back. Use
    /// [`Pool::close_and_wait`] to also wait for those.
    pub fn close(&self) {
        let Some(removed) = self.shared.core.close() else { return };
        tracing::info!(pool = %self.shared.config.name, "pool closing");
        self.shared.settle_removed(removed);
        // Creates waiting out a backoff give up their slots now.
        self.shared.closing.notify_waiters();
        self.shared.wake_housekeeping();
        self.shared.timer.wake();
        self.shared.emit(EventKind::Closed);
        self.shared.notify_if_drained();
    }

    /// Closes the pool (as [`Pool::close`]) and waits until every resource
    /// that was in use has come back and been destroyed, for at most
    /// `timeout`: what a service calls on SIGTERM after it stopped taking
    /// requests.
    ///
    /// # Errors
    ///
    /// [`CloseTimedOut`], with how many resources are still out, if
    /// `timeout` passes first. The pool stays closed either way.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future only stops the waiting; the pool is
    /// closed from the first poll on.
    pub async fn close_and_wait(&self, timeout: Duration) -> Result<(), CloseTimedOut> {
        self.close();
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let mut drained = pin!(self.shared.drained.notified());
            drained.as_mut().enable();
            let outstanding = self.shared.core.outstanding();
            if outstanding == 0 {
                tracing::info!(pool = %self.shared.config.name, "pool closed; every {} is closed", M::RESOURCE);
                return Ok(());
            }
            match deadline {
                None => drained.await,
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, drained).await.is_err() {
                        let outstanding = self.shared.core.outstanding();
                        if outstanding == 0 {
                            return Ok(());
                        }
                        return Err(CloseTimedOut { outstanding, resource: M::RESOURCE });
                    }
                }
            }
        }
    }

    /// Changes `max_size` at run time. Growing lets waiting tasks create
    /// resources at once; shrinking closes idle resources above the new
    /// size now, and in-use ones as they come back.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if `max_size` is 0.
    pub fn resize(&self, max_size: usize) -> Result<(), BuildError> {
        validate_max_size(max_size)?;
        let removed = self.shared.core.resize(max_size);
        tracing::info!(pool = %self.shared.config.name, max_size, "pool resized");
        self.shared.settle_removed(removed);
        self.shared.emit(EventKind::Resized);
        self.shared.wake_housekeeping();
        Ok(())
    }

    /// Keeps only the idle resources for which `keep` returns `true`; the
    /// others are destroyed ([`DestroyReason::Evicted`]). `keep` runs outside
    /// the pool's lock; while it runs, the idle resources count as in use.
    pub fn retain(&self, mut keep: impl FnMut(&M::Resource, &ResourceInfo) -> bool) {
        let mut pending = Retaining {
            shared: &self.shared,
            judging: None,
            entries: self.shared.core.take_idle().into_iter(),
        };
        for entry in pending.entries.by_ref() {
            let judging = pending.judging.insert(entry);
            let kept = keep(&judging.resource, &judging.info);
            let entry = pending.judging.take().expect("inserted above");
            if kept {
                self.shared.settle(self.shared.core.put_back(entry, None));
            } else {
                wake(self.shared.core.remove_in_use());
                self.shared.destroy(entry, DestroyReason::Evicted);
            }
        }
    }

    /// Destroys every idle resource now and every in-use one when it comes
    /// back, so that from now on every `get` gets a freshly created resource:
    /// for credential rotation or after a failover.
    pub fn evict_all(&self) {
        let removed = self.shared.core.evict_all();
        tracing::info!(pool = %self.shared.config.name, "evicting every {}", M::RESOURCE);
        self.shared.settle_removed(removed);
        self.shared.wake_housekeeping();
    }
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Self { shared: Arc::clone(&self.shared) }
    }
}

impl<M: Manager> Drop for Pool<M> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.shared.config.name)
            .field("status", &self.status())
            .finish()
    }
}

//! [`Pooled`]: the guard `get` returns, which gives the resource back on drop.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::Entry;
use crate::info::ResourceInfo;
use crate::manager::{DestroyReason, Manager};
use crate::observer::EventKind;
use crate::shared::{Shared, wake};
use crate::status::Status;

/// A resource borrowed from a [`Pool`](crate::Pool). Derefs to the
/// resource; dropping it gives the resource back.
///
/// On drop the resource is kept for reuse unless [`Manager::is_broken`] says
/// it is broken, its `max_lifetime` has passed, it was evicted, the pool
/// was closed, or the holder is panicking (its state is then unknown); in
/// those cases it is destroyed and its slot freed. Returning never blocks
/// and never awaits: it is a few field updates under the pool's lock, and
/// a waiting task, if any, is handed the resource directly. A resource the
/// manager says [needs settling](Manager::needs_settling) is settled on a
/// task of the pool's first, and put back once settled.
pub struct Pooled<M: Manager> {
    shared: Arc<Shared<M>>,
    /// Boxed with its checkout's book-keeping (`Lease`), so the guard is
    /// two pointers wide.
    entry: Option<Entry<M::Resource>>,
}

impl<M: Manager> Pooled<M> {
    pub(crate) fn new(shared: Arc<Shared<M>>, entry: Entry<M::Resource>) -> Self {
        Self { shared, entry: Some(entry) }
    }

    fn entry(&self) -> &Entry<M::Resource> {
        self.entry.as_ref().expect("a Pooled holds its entry until it is consumed")
    }

    /// What the pool knows about this resource (age, checkouts, ...).
    pub fn info(this: &Self) -> &ResourceInfo {
        &this.entry().info
    }

    /// Takes the resource out of the pool for good. Its slot is freed at
    /// once, so the pool may open another in its place; the pool no longer
    /// counts, checks or closes it.
    pub fn detach(mut this: Self) -> M::Resource {
        let mut entry = this.entry.take().expect("a Pooled holds its entry until it is consumed");
        let held = this.finish(&mut entry, None);
        wake(this.shared.core.remove_in_use());
        this.shared.notify_if_drained();
        this.released(held, None);
        entry.resource
    }

    /// Destroys the resource instead of returning it (with
    /// [`DestroyReason::Broken`]): for a resource the caller knows is no
    /// longer usable.
    pub fn discard(mut this: Self) {
        let mut entry = this.entry.take().expect("a Pooled holds its entry until it is consumed");
        let held = this.finish(&mut entry, None);
        wake(this.shared.core.remove_in_use());
        this.shared.destroy(entry, DestroyReason::Broken);
        this.released(held, None);
    }

    /// Leak book-keeping when the holder is done; returns how long it held
    /// the resource, if the pool keeps time (observers, leak detection).
    fn finish(&self, entry: &mut Entry<M::Resource>, now: Option<Instant>) -> Option<Duration> {
        let lease = std::mem::take(&mut entry.lease);
        let held = lease
            .acquired_at
            .map(|acquired_at| now.unwrap_or_else(Instant::now).saturating_duration_since(acquired_at));
        if let (Some(key), Some(leaks)) = (lease.leak, self.shared.leaks.as_ref())
            && let Some(location) = leaks.unregister(key)
        {
            tracing::info!(
                pool = %self.shared.config.name,
                %location,
                "a {} reported as a possible leak was returned",
                M::RESOURCE
            );
        }
        held
    }

    /// Tells observers the resource is back (or gone), with the counts after it.
    fn released(&self, held: Option<Duration>, status: Option<&Status>) {
        if let Some(held) = held
            && self.shared.observed()
        {
            self.shared.emit_after(status, EventKind::Released { held });
        }
    }
}

impl<M: Manager> Drop for Pooled<M> {
    fn drop(&mut self) {
        let Some(mut entry) = self.entry.take() else { return };
        let now = Instant::now();
        let held = self.finish(&mut entry, Some(now));
        let shared = &*self.shared;
        let broken = std::thread::panicking()
            || match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                shared.manager.is_broken(&mut entry.resource)
            })) {
                Ok(broken) => broken,
                Err(panic) => {
                    // Free the slot before passing the manager's panic on.
                    wake(shared.core.remove_in_use());
                    shared.destroy(entry, DestroyReason::Broken);
                    std::panic::resume_unwind(panic);
                }
            };
        let reason = if broken {
            Some(DestroyReason::Broken)
        } else if entry.info.expires_at.is_some_and(|at| now >= at) {
            Some(DestroyReason::Lifetime)
        } else {
            None
        };
        if let Some(reason) = reason {
            wake(shared.core.remove_in_use());
            shared.destroy(entry, reason);
            self.released(held, None);
            return;
        }
        if shared.manager.needs_settling(&mut entry.resource)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // Still counted in use; it is put back (or destroyed) when settled.
            runtime.spawn(Arc::clone(&self.shared).settle_returned(entry));
            self.released(held, None);
            return;
        }
        entry.info.returned_at = now;
        entry.info.alive_at = now;
        let mut status = Status::default();
        let observed = held.is_some() && shared.observed();
        let returned = shared.core.put_back(entry, observed.then_some(&mut status));
        shared.settle(returned);
        self.released(held, observed.then_some(&status));
    }
}

impl<M: Manager> Deref for Pooled<M> {
    type Target = M::Resource;

    fn deref(&self) -> &M::Resource {
        &self.entry().resource
    }
}

impl<M: Manager> DerefMut for Pooled<M> {
    fn deref_mut(&mut self) -> &mut M::Resource {
        &mut self.entry.as_mut().expect("a Pooled holds its entry until it is consumed").resource
    }
}

impl<M: Manager> fmt::Debug for Pooled<M>
where
    M::Resource: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("pool", &self.shared.config.name)
            .field("resource", &self.entry().resource)
            .field("info", &self.entry().info)
            .finish_non_exhaustive()
    }
}

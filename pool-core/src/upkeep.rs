//! The upkeep task: the calls to the backend a pool makes in the
//! background. One per pool that has `min_idle` or `keepalive_interval`
//! set, beside the maintenance task (`maintenance.rs`), so that a create or
//! check that hangs holds up only this task, never the housekeeping.
//!
//! Each round it takes out the idle resources due for a keepalive check and
//! checks them one after the other (`recycle.rs`'s path: kept if they pass,
//! destroyed otherwise), then creates one resource (`create.rs`'s path)
//! when fewer than `min_idle` are idle, and goes again at once while fewer
//! still are. Then it sleeps until the next keepalive check falls due, or
//! until it is woken (close, resize, evict, a `get` that left fewer than
//! `min_idle` idle, a destroyed resource when `min_idle` is set).
//!
//! Like maintenance, it holds only a weak reference to the pool while it
//! sleeps, and ends when the pool is closed or gone. A create it started
//! before a close runs to its end (its resource is then destroyed); one
//! waiting for its backoff turn gives up at the close.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::background::{Running, run_rounds, unless_it_panics};
use crate::cancel_guards::{Checking, Slot};
use crate::create::CreateFor;
use crate::deadline::earliest;
use crate::manager::Manager;
use crate::recycle::{CheckFor, Recycled};
use crate::shared::{Shared, wake};

/// Spawns the task if the pool has upkeep to do, a Tokio runtime is running
/// and the task is not running (any more: see `background.rs`).
pub(crate) fn start<M: Manager>(shared: &Arc<Shared<M>>) {
    if shared.has_upkeep {
        shared.upkeep.start(|running, wake| run(Arc::downgrade(shared), running, wake));
    }
}

async fn run<M: Manager>(pool: Weak<Shared<M>>, running: Running, wake: Arc<Notify>) {
    run_rounds(pool, running, wake, |shared| async move {
        unless_it_panics("upkeep", &shared.config.name, shared.keep_up()).await
    })
    .await;
}

impl<M: Manager> Shared<M> {
    /// One round; returns when the next round is due (`None`: only when woken).
    async fn keep_up(self: &Arc<Self>) -> Option<Instant> {
        let now = Instant::now();
        let interval = self.config.keepalive_interval;
        let upkeep = self
            .core
            .upkeep(|info| interval.and_then(|i| info.alive_at.checked_add(i)).is_some_and(|at| at <= now));
        // Each in its guard, so a round cut short destroys those not yet
        // checked instead of losing their slots.
        let checks: Vec<_> = upkeep.check.into_iter().map(|e| Checking::new(self, e)).collect();
        for held in checks {
            self.keepalive(held).await;
        }
        if upkeep.refill {
            self.refill().await;
            if self.core.needs_refill() {
                return Some(Instant::now());
            }
        }
        self.next_keepalive(Instant::now())
    }

    /// When the next keepalive check falls due: the earliest of the idle
    /// resources', or one interval from now for one not idle yet.
    fn next_keepalive(&self, now: Instant) -> Option<Instant> {
        let interval = self.config.keepalive_interval?;
        let mut next = now.checked_add(interval);
        self.core.for_each_idle(|info| next = earliest(next, info.alive_at.checked_add(interval)));
        next
    }

    /// Validates one idle resource with `recycle`; keeps it or destroys it.
    async fn keepalive(&self, mut held: Checking<'_, M>) {
        let ran = self.recycle(&mut held, || self.keepalive_deadline()).await;
        if self.record_check(ran, CheckFor::Keepalive) == Recycled::Passed {
            let mut entry = held.passed();
            entry.info.alive_at = Instant::now();
            let returned = self.core.put_back(entry, None);
            self.settle(returned);
        }
        // Otherwise `held` destroys it with `DestroyReason::RecycleFailed`.
    }

    /// Creates one resource for `min_idle`, in the slot `keep_up` reserved,
    /// for the first waiter or the idle list. A failure has been logged and
    /// sent to observers; the next round tries again.
    async fn refill(self: &Arc<Self>) {
        let slot = Slot::reserved(self);
        if let Ok((returned, wake_next)) =
            self.create(slot, CreateFor::MinIdle, |entry| self.core.add_created(entry)).await
        {
            // The create's turn went to the next waiter.
            wake(wake_next);
            self.settle(returned);
        }
    }
}

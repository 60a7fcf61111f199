//! The maintenance task: one per pool, in the background, doing the
//! housekeeping that needs no call to the backend.
//!
//! Each round it retires idle resources past their lifetime, closes those
//! idle longer than `idle_timeout` while more than `min_idle` are idle, and
//! reports suspected leaks. Then it sleeps until the earliest moment
//! something can next fall due, or until it is woken (close, resize,
//! evict). The calls to the backend made in the background (keepalive
//! checks, `min_idle` refills) are the upkeep task's (`upkeep.rs`), so a
//! create or check that hangs never holds this housekeeping up.
//!
//! It holds only a weak reference to the pool while it sleeps, so it never
//! keeps a dropped pool alive; it ends when the pool is closed (which
//! dropping the last `Pool` handle does) or gone.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::background::{Running, run_rounds, unless_it_panics};
use crate::deadline::earliest;
use crate::manager::Manager;
use crate::observer::EventKind;
use crate::shared::Shared;

/// Spawns the task if a Tokio runtime is running and it is not running
/// (any more: see `background.rs`).
pub(crate) fn start<M: Manager>(shared: &Arc<Shared<M>>) {
    shared.maintenance.start(|running, wake| run(Arc::downgrade(shared), running, wake));
}

async fn run<M: Manager>(pool: Weak<Shared<M>>, running: Running, wake: Arc<Notify>) {
    run_rounds(pool, running, wake, |shared| async move {
        // `Manager::destroy` may panic.
        unless_it_panics("maintenance", &shared.config.name, async { shared.maintain() }).await
    })
    .await;
}

impl<M: Manager> Shared<M> {
    /// One round; returns when the next round is due (`None`: only when woken).
    fn maintain(&self) -> Option<Instant> {
        let now = Instant::now();
        let config = &self.config;
        let after = |at: Instant, period: Option<Duration>| period.and_then(|p| at.checked_add(p));
        let retired = self.core.retire(
            |info| info.expires_at.is_some_and(|at| at <= now),
            |info| after(info.returned_at, config.idle_timeout).is_some_and(|at| at <= now),
        );
        for (entry, reason) in retired {
            self.destroy(entry, reason);
        }
        let mut next = None;
        if let Some(leaks) = &self.leaks {
            let (suspects, due) = leaks.scan(Instant::now());
            for suspect in suspects {
                tracing::warn!(
                    pool = %config.name,
                    held = ?suspect.held,
                    location = %suspect.location,
                    "a {} has been held longer than leak_detection_threshold; \
                     is it ever returned? it was taken by the get() called at this location",
                    M::RESOURCE
                );
                self.emit(EventKind::LeakSuspected { held: suspect.held, location: suspect.location });
            }
            next = due;
        }
        earliest(next, self.next_due(Instant::now()))
    }

    /// The earliest time an idle resource can next need retiring or
    /// reaping, or a leak report, for a resource not yet idle or taken at
    /// the soonest.
    fn next_due(&self, now: Instant) -> Option<Instant> {
        let config = &self.config;
        let mut next = None;
        self.core.for_each_idle(|info| {
            next = earliest(next, info.expires_at);
            // Idle deadlines already past belong to resources `min_idle`
            // keeps: waking for them again would spin.
            let reap_at = config.idle_timeout.and_then(|t| info.returned_at.checked_add(t));
            next = earliest(next, reap_at.filter(|at| *at > now));
        });
        // A resource that becomes idle later falls due no sooner than the
        // shortest period after now.
        let lifetime = config.max_lifetime.map(|l| l.saturating_sub(l / 40));
        let periods = [config.idle_timeout, lifetime, config.leak_detection_threshold];
        let shortest = periods.into_iter().flatten().min();
        earliest(next, shortest.and_then(|p| now.checked_add(p)))
    }
}

//! The maintenance task: one per pool, in the background.
//!
//! Each round it retires idle resources past their lifetime, closes those
//! idle longer than `idle_timeout` while more than `min_idle` are idle,
//! validates idle resources due for a keepalive check, reports suspected
//! leaks, and creates one resource when fewer than `min_idle` are idle. Then
//! it sleeps until the earliest moment something can next fall due, or
//! until it is woken (close, resize, evict, a destroyed resource when
//! `min_idle` is set).
//!
//! It holds only a weak reference to the pool while it sleeps, so it never
//! keeps a dropped pool alive; it ends when the pool is closed (which
//! dropping the last `Pool` handle does) or gone.

use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::background::{Running, run_rounds};
use crate::cancel_guards::{Checking, Slot};
use crate::create::CreateFor;
use crate::deadline::earliest;
use crate::manager::Manager;
use crate::observer::EventKind;
use crate::recycle::{CheckFor, Recycled};
use crate::shared::Shared;

/// Spawns the task if a Tokio runtime is running and it is not running
/// (any more: see `background.rs`).
pub(crate) fn start<M: Manager>(shared: &Arc<Shared<M>>) {
    shared.maintenance.start(|running, wake| run(Arc::downgrade(shared), running, wake));
}

async fn run<M: Manager>(pool: Weak<Shared<M>>, running: Running, wake: Arc<Notify>) {
    run_rounds(pool, running, wake, |shared| async move {
        // A panicking manager call ends the round, not the task: the
        // round's guards free what it held, and the next round waits a bit.
        let mut round = std::pin::pin!(shared.maintain());
        std::future::poll_fn(|cx| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| round.as_mut().poll(cx))).unwrap_or_else(
                |_| {
                    tracing::error!(pool = %shared.config.name, "a maintenance round panicked");
                    Poll::Ready(Instant::now().checked_add(Duration::from_secs(1)))
                },
            )
        })
        .await
    })
    .await;
}

impl<M: Manager> Shared<M> {
    /// One round; returns when the next round is due (`None`: only when woken).
    async fn maintain(&self) -> Option<Instant> {
        let now = Instant::now();
        let config = &self.config;
        let after = |at: Instant, period: Option<Duration>| period.and_then(|p| at.checked_add(p));
        let chores = self.core.maintain(
            |info| info.expires_at.is_some_and(|at| at <= now),
            |info| after(info.returned_at, config.idle_timeout).is_some_and(|at| at <= now),
            |info| after(info.alive_at, config.keepalive_interval).is_some_and(|at| at <= now),
        );
        for (entry, reason) in chores.destroy {
            self.destroy(entry, reason);
        }
        // Each in its guard, so a round cut short destroys those not yet
        // checked instead of losing their slots.
        let checks: Vec<_> = chores.check.into_iter().map(|e| Checking::new(self, e)).collect();
        for held in checks {
            self.keepalive(held).await;
        }
        let mut next = None;
        if chores.refill {
            self.refill().await;
            if self.core.needs_refill() {
                next = Some(Instant::now());
            }
        }
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
            next = earliest(next, due);
        }
        earliest(next, self.next_due(Instant::now()))
    }

    /// The earliest time an idle resource can next need attention, or a
    /// resource not yet idle at the soonest.
    fn next_due(&self, now: Instant) -> Option<Instant> {
        let config = &self.config;
        let mut next = None;
        self.core.for_each_idle(|info| {
            next = earliest(next, info.expires_at);
            // Idle deadlines already past belong to resources `min_idle`
            // keeps: waking for them again would spin.
            let reap_at = config.idle_timeout.and_then(|t| info.returned_at.checked_add(t));
            next = earliest(next, reap_at.filter(|at| *at > now));
            next = earliest(next, config.keepalive_interval.and_then(|t| info.alive_at.checked_add(t)));
        });
        // A resource that becomes idle later falls due no sooner than the
        // shortest period after now.
        let lifetime = config.max_lifetime.map(|l| l.saturating_sub(l / 40));
        let periods =
            [config.idle_timeout, lifetime, config.keepalive_interval, config.leak_detection_threshold];
        let shortest = periods.into_iter().flatten().min();
        earliest(next, shortest.and_then(|p| now.checked_add(p)))
    }

    /// Validates one idle resource with `recycle`; keeps it or destroys it.
    async fn keepalive(&self, mut held: Checking<'_, M>) {
        let ran = self.recycle(&mut held, CheckFor::Keepalive, || None).await;
        if self.record_check(ran, CheckFor::Keepalive) == Recycled::Passed {
            let mut entry = held.passed();
            entry.info.alive_at = Instant::now();
            let returned = self.core.put_back(entry, None);
            self.settle(returned);
        }
        // Otherwise `held` destroys it with `DestroyReason::RecycleFailed`.
    }

    /// Creates one resource for `min_idle`, in the slot `maintain` reserved,
    /// for the first waiter or the idle list. A failure has been logged and
    /// sent to observers; the next round tries again.
    async fn refill(&self) {
        let slot = Slot::reserved(self);
        if let Ok(returned) =
            self.create(slot, CreateFor::MinIdle, |entry| self.core.add_created(entry)).await
        {
            self.settle(returned);
        }
    }
}

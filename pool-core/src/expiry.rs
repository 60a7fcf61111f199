//! The queue's timer: one Tokio task per pool that fails the waiters whose
//! `acquire_timeout` has passed, so that waiting in `get` arms no timer of
//! its own (the engine's docs, "Timeouts", give the algorithm). It also
//! ends capacity cool-downs (`cooldown.rs`), and is started by the create
//! that begins one, so a cool-down ends on time even when nobody waits.
//!
//! Registering and clearing a Tokio timer for every `get` that waits would
//! be the largest single cost of waiting. Since every waiter of a
//! pool waits the same `acquire_timeout` and joins the queue in deadline
//! order, one timer that sleeps until the first waiter's deadline serves
//! them all. It is woken only when a waiter joins while it sleeps with no
//! deadline, or with a later one than that waiter's.
//!
//! The task is started by the first `get` that has to wait, on that
//! caller's runtime. It holds only a weak reference to the pool and ends
//! when the pool is closed or gone. If its runtime shuts down while the pool
//! lives on (a pool kept in a static and used by one runtime after another),
//! its guard marks it stopped and wakes every waiter; each looks at the
//! timer on its next poll, and the first to find it stopped starts it again
//! on its own runtime. A waiter that finds no runtime to start it on fails
//! with [`Error::NoRuntime`](crate::Error::NoRuntime) rather than waiting
//! without a deadline.
//!
//! The price of one timer: a pool shared by several runtimes has its timer
//! on one of them, so if every thread of that runtime is blocked (a
//! current-thread runtime stuck in blocking code), waiters on the other
//! runtimes time out only once it runs again. With a timer per waiter, each
//! waiter's own runtime kept its deadline.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::background::{Running, run_rounds};
use crate::manager::Manager;
use crate::shared::{Shared, wake};

/// Starts the task on the current runtime unless it runs already; returns
/// whether it runs now.
pub(crate) fn start<M: Manager>(shared: &Arc<Shared<M>>) -> bool {
    if shared.timer.is_running() {
        return true;
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        // Panics here, in the caller's `get`, with Tokio's own message if
        // the runtime has no timers (as a `get` with a timer of its own
        // would), rather than in the task, where no waiter would learn of it.
        drop(tokio::time::sleep_until(Instant::now()));
    }
    shared.timer.start(|running, wake_up| run(Arc::downgrade(shared), running, wake_up))
}

async fn run<M: Manager>(pool: Weak<Shared<M>>, running: Running, wake_up: Arc<Notify>) {
    // Dropped after the rounds (and the `Running` guard they hold), also
    // when the runtime drops the task.
    let _stopping = Stopping { pool: pool.clone() };
    run_rounds(pool, running, wake_up, |shared| async move {
        let expired = shared.core.expire(Instant::now());
        for waker in expired.wake {
            waker.wake();
        }
        if expired.cooled && shared.has_upkeep {
            // `min_idle` may be short, and refills waited for this.
            shared.upkeep.wake();
        }
        expired.next
    })
    .await;
}

/// When the task has ended (and its `Running` guard has marked it stopped),
/// wakes the waiters, so that one of them starts it again if its runtime
/// shut down.
struct Stopping<M: Manager> {
    pool: Weak<Shared<M>>,
}

impl<M: Manager> Drop for Stopping<M> {
    fn drop(&mut self) {
        let Some(shared) = self.pool.upgrade() else { return };
        for waker in shared.core.waiting_wakers() {
            wake(Some(waker));
        }
    }
}

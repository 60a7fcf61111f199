//! A pool's background tasks (maintenance, upkeep and the queue timer): each is
//! spawned lazily, on the runtime of the first caller that needs it, woken
//! through a [`Notify`], and spawned again when the runtime it ran on shut
//! down while the pool lives on (a pool kept in a static and used by one
//! runtime after another, as tests do).
//!
//! Tokio drops a task's future when its runtime shuts down, so a guard
//! inside the task ([`Running`]) is how the pool learns the task is gone. A
//! task that ends because the pool was closed says so
//! ([`Running::finish`]): it is not started again, so `get` on a closed pool
//! spawns nothing.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::manager::Manager;
use crate::shared::Shared;

/// Not running: the next caller that needs the task starts it.
const IDLE: u8 = 0;
/// Running on some runtime.
const RUNNING: u8 = 1;
/// Ended for good: the pool was closed.
const FINISHED: u8 = 2;

/// One background task's handle, kept in the pool's shared state.
#[derive(Debug, Default)]
pub(crate) struct Background {
    state: Arc<AtomicU8>,
    wake: Arc<Notify>,
}

impl Background {
    /// Whether the task is running, or has finished for good (either way,
    /// there is nothing to start).
    pub(crate) fn is_running(&self) -> bool {
        self.state.load(Ordering::Acquire) != IDLE
    }

    /// Makes the task run a round now (or as soon as it next waits).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Spawns `task` on the current runtime unless it runs already, handing
    /// it the [`Running`] guard to hold and the [`Notify`] that wakes it.
    /// Returns whether the task runs now (`false`: no runtime to spawn on).
    pub(crate) fn start<F>(&self, task: impl FnOnce(Running, Arc<Notify>) -> F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.is_running() {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return false };
        if self.state.compare_exchange(IDLE, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            let running = Running(Arc::clone(&self.state));
            runtime.spawn(task(running, Arc::clone(&self.wake)));
        }
        true
    }
}

/// A task's body: rounds until its pool is gone or closed (then the task
/// [finishes](Running::finish)). Each round gets the pool and returns when
/// the next one is due (`None`: only when woken); in between, the task holds
/// only `pool`, a weak reference, and sleeps until then or until `wake`
/// fires (a wake-up during a round is not lost: it is listened for from
/// before the round starts).
pub(crate) async fn run_rounds<M: Manager, R>(
    pool: Weak<Shared<M>>,
    running: Running,
    wake: Arc<Notify>,
    mut round: impl FnMut(Arc<Shared<M>>) -> R,
) where
    R: Future<Output = Option<Instant>>,
{
    loop {
        let mut woken = std::pin::pin!(wake.notified());
        woken.as_mut().enable();
        let next = {
            let Some(shared) = pool.upgrade() else { return };
            if shared.core.is_closed() {
                running.finish();
                return;
            }
            round(shared).await
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = woken => {}
                }
            }
            None => woken.await,
        }
    }
}

/// Runs one round of a task that calls the manager, so that a panicking
/// manager call ends the round, not the task: the round's guards free what
/// it held, and the next round is due a second later (not at once, in case
/// the panic repeats).
pub(crate) async fn unless_it_panics(
    task: &'static str,
    pool: &str,
    round: impl Future<Output = Option<Instant>>,
) -> Option<Instant> {
    let mut round = std::pin::pin!(round);
    std::future::poll_fn(|cx| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| round.as_mut().poll(cx))).unwrap_or_else(
            |_| {
                tracing::error!(%pool, "a round of the {task} task panicked");
                std::task::Poll::Ready(Instant::now().checked_add(std::time::Duration::from_secs(1)))
            },
        )
    })
    .await
}

/// Held by a running task; marks it stopped when the task ends, so the next
/// caller that needs it starts it again, unless the task
/// [finished](Running::finish) for good or panicked.
pub(crate) struct Running(Arc<AtomicU8>);

impl Running {
    /// The task ends because the pool was closed: never start it again.
    pub(crate) fn finish(self) {
        self.0.store(FINISHED, Ordering::Release);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A task that panicked would panic again if restarted (a runtime
        // without timers, say): it is not started again either. A finished
        // task stays finished.
        let next = if std::thread::panicking() { FINISHED } else { IDLE };
        let _ = self.0.compare_exchange(RUNNING, next, Ordering::AcqRel, Ordering::Acquire);
    }
}

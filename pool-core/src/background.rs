//! A pool's background tasks (maintenance and the queue timer): each is
//! spawned lazily, on the runtime of the first caller that needs it, woken
//! through a [`Notify`], and spawned again when the runtime it ran on shut
//! down while the pool lives on (a pool kept in a static and used by one
//! runtime after another, as tests do).
//!
//! Tokio drops a task's future when its runtime shuts down, so a guard
//! inside the task ([`Running`]) is how the pool learns the task is gone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::time::Instant;

/// One background task's handle, kept in the pool's shared state.
#[derive(Debug, Default)]
pub(crate) struct Background {
    running: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl Background {
    /// Whether the task is running (on some runtime).
    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
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
        if !self.running.swap(true, Ordering::AcqRel) {
            let running = Running(Arc::clone(&self.running));
            runtime.spawn(task(running, Arc::clone(&self.wake)));
        }
        true
    }
}

/// Between two rounds of a task: sleeps until `next` (with `None`, until
/// woken), or until `woken` (enabled before the round) fires.
pub(crate) async fn sleep_until_woken(next: Option<Instant>, woken: Pin<&mut Notified<'_>>) {
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

/// Held by a running task; marks it stopped when the task ends, however it
/// ends, so the next caller that needs it starts it again.
pub(crate) struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

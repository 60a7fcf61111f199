//! Running a backend call under a deadline without paying for a timer when
//! the call finishes at once.
//!
//! The future is polled once inline; only if it is still pending is a Tokio
//! timer armed (and boxed, as it is large). A no-op `recycle` therefore
//! costs no clock read and no timer registration, which keeps the
//! uncontended `get` cheap.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use tokio::time::Instant;

/// Outcome of [`run_until`].
pub(crate) enum Ran<T> {
    Done(T),
    TimedOut,
    /// Would have to wait, but no Tokio runtime is running.
    NoRuntime,
}

/// Runs `fut` to completion or until the deadline that `deadline()` names
/// (asked only if `fut` does not finish on its first poll; `None` means no
/// deadline).
pub(crate) async fn run_until<F: Future>(
    fut: F,
    deadline: impl FnOnce() -> Option<Instant>,
) -> Ran<F::Output> {
    let mut fut = pin!(fut);
    if let Poll::Ready(out) = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        return Ran::Done(out);
    }
    match deadline() {
        None => Ran::Done(fut.await),
        Some(_) if tokio::runtime::Handle::try_current().is_err() => Ran::NoRuntime,
        // Boxed: a timer is large, and this future lives inline in `get`'s
        // (see `Shared::acquire`); a call that got here waits on the backend.
        Some(at) => match Box::pin(tokio::time::timeout_at(at, fut)).await {
            Ok(out) => Ran::Done(out),
            Err(_) => Ran::TimedOut,
        },
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

//! [`Backlog`]: what was sent on one connection and is no longer awaited by
//! anyone — the requests whose futures were dropped (a caller's own
//! `timeout`, a cancelled HTTP handler, a `select!` that took another
//! branch) after the request went out.
//!
//! tokio-postgres keeps such a request in its queue: the server still runs
//! it, and its answer is read and thrown away before the answer of anything
//! sent later. A connection returned with a backlog would hand the next
//! borrower a wait of unknown length (and, repeated, a queue that grows
//! without bound), so the pool drains it first (`drain.rs`).
//!
//! # Algorithm
//!
//! Every round trip of [`Session`](crate::session::Session) holds a
//! [`Sent`] for as long as it is awaited. Dropped unanswered, it counts one
//! abandoned request. Answered, it clears the count when no request was
//! abandoned since it was sent: the server answers in order, so every
//! request sent before it has been answered too. The count and the number
//! of abandonments so far (the *epoch*) share one atomic word, so a clear
//! never swallows an abandonment that happened meanwhile (a caller may run
//! several statements on one guard at once).
//!
//! The common case, nothing abandoned, costs two relaxed loads per round trip.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::task::JoinHandle;

/// The low half of [`Backlog::word`]: requests abandoned and not known answered.
const COUNT: u64 = 0xffff_ffff;
/// One abandonment: the epoch (high half) and the count go up together.
const ABANDONED_ONE: u64 = (1 << 32) | 1;

/// What one connection has in flight that nobody awaits; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    /// Epoch (high 32 bits) and count (low 32 bits).
    word: AtomicU64,
    /// The cancel request sent when the connection came back with a
    /// backlog; the drain waits for it before it syncs, so the cancel
    /// cannot land on a later borrower's statement.
    cancel: Mutex<Option<JoinHandle<()>>>,
}

impl Backlog {
    /// Starts tracking one request about to be sent.
    pub(crate) fn track(&self) -> Sent<'_> {
        Sent { backlog: self, epoch: self.word.load(Ordering::Relaxed) >> 32, answered: false }
    }

    /// Requests abandoned and not known to be answered yet.
    pub(crate) fn abandoned(&self) -> u32 {
        // Truncation is the point: the count is the low half.
        #[allow(clippy::cast_possible_truncation)]
        let count = (self.word.load(Ordering::Relaxed) & COUNT) as u32;
        count
    }

    /// Something handed to the caller may be left unfinished and the pool
    /// cannot see when it ends (a `COPY` sink or stream): counted as
    /// abandoned until a later answer shows it ended, so a connection
    /// returned before that is drained.
    pub(crate) fn assume_unfinished(&self) {
        drop(self.track());
    }

    /// Everything sent so far has been answered (a sync round trip came back).
    pub(crate) fn cleared(&self) {
        self.word.fetch_and(!COUNT, Ordering::Relaxed);
    }

    /// Keeps the cancel request sent for the backlog, to be awaited by the drain.
    pub(crate) fn set_cancel(&self, cancel: JoinHandle<()>) {
        // A previous one, if any, is delivered or given up on by itself.
        drop(self.lock_cancel().replace(cancel));
    }

    /// The cancel request sent for the backlog, if any.
    pub(crate) fn take_cancel(&self) -> Option<JoinHandle<()>> {
        self.lock_cancel().take()
    }

    pub(crate) fn has_cancel(&self) -> bool {
        self.lock_cancel().is_some()
    }

    fn lock_cancel(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.cancel.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One request in flight, tracked until answered or abandoned.
pub(crate) struct Sent<'a> {
    backlog: &'a Backlog,
    /// The epoch when it was sent.
    epoch: u64,
    answered: bool,
}

impl Sent<'_> {
    /// Its answer arrived: if nothing was abandoned since it was sent,
    /// everything abandoned before it has been answered too.
    pub(crate) fn answered(mut self) {
        self.answered = true;
        let word = &self.backlog.word;
        let current = word.load(Ordering::Relaxed);
        if current & COUNT != 0 && current >> 32 == self.epoch {
            // Fails only if an abandonment came in between, which this
            // answer does not cover: then the count stays.
            let _ = word.compare_exchange(current, current & !COUNT, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

impl Drop for Sent<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.backlog.word.fetch_add(ABANDONED_ONE, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Backlog;

    #[test]
    fn an_answer_clears_what_was_abandoned_before_it_was_sent() {
        let backlog = Backlog::default();
        drop(backlog.track());
        drop(backlog.track());
        assert_eq!(backlog.abandoned(), 2);
        backlog.track().answered();
        assert_eq!(backlog.abandoned(), 0);
    }

    #[test]
    fn an_answer_does_not_clear_an_abandonment_made_while_it_was_in_flight() {
        let backlog = Backlog::default();
        let first = backlog.track();
        let second = backlog.track();
        drop(second);
        first.answered();
        assert_eq!(backlog.abandoned(), 1, "the second may have been sent after the first");
        backlog.track().answered();
        assert_eq!(backlog.abandoned(), 0);
    }

    #[test]
    fn a_sync_clears_everything() {
        let backlog = Backlog::default();
        drop(backlog.track());
        backlog.cleared();
        assert_eq!(backlog.abandoned(), 0);
        drop(backlog.track());
        assert_eq!(backlog.abandoned(), 1, "the epoch survives a clear");
    }
}

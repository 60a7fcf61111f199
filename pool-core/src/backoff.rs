//! Backoff between creates after failures, so a pool facing a down or
//! refusing server does not hammer it, and recovers as soon as it is back.
//!
//! While the last create failed, creates run one at a time (the *probe*,
//! a fair FIFO lock), each starting no sooner than `delay(n)` after the
//! previous failure, where `n` counts consecutive failures and
//! `delay(n) = min(BASE * 2^(n-1), CAP)`. So a down backend sees at most one
//! create per delay, however many tasks wait. The first success resets the
//! count, and the tasks queued behind the probe then create at once, in
//! parallel. Waiting for a turn is bounded by the caller's deadline (see
//! `create.rs`, which also ends the wait when the pool closes).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const BASE: Duration = Duration::from_millis(10);
const CAP: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    failures: u32,
    not_before: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Backoff {
    state: Mutex<State>,
    probe: tokio::sync::Mutex<()>,
}

fn delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BASE.saturating_mul(1 << exp).min(CAP)
}

/// Permission to create; holding a probe keeps other creators waiting
/// until this create's outcome is recorded.
pub(crate) enum Turn<'a> {
    Free,
    Probe(
        #[allow(dead_code, reason = "held only for its Drop, which lets the next creator in")]
        tokio::sync::MutexGuard<'a, ()>,
    ),
}

impl Backoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// While creates fail: when the next may start.
    fn failing(&self) -> Option<Instant> {
        let state = self.lock();
        if state.failures > 0 { state.not_before } else { None }
    }

    /// Waits for this creator's turn; `None` if `deadline` passes first.
    pub(crate) async fn turn(&self, deadline: Option<Instant>) -> Option<Turn<'_>> {
        if self.failing().is_none() {
            return Some(Turn::Free);
        }
        let probe = match deadline {
            None => self.probe.lock().await,
            Some(deadline) => tokio::time::timeout_at(deadline, self.probe.lock()).await.ok()?,
        };
        let Some(not_before) = self.failing() else {
            // The probe ahead of us succeeded.
            return Some(Turn::Free);
        };
        if let Some(deadline) = deadline.filter(|d| *d < not_before) {
            tokio::time::sleep_until(deadline).await;
            return None;
        }
        tokio::time::sleep_until(not_before).await;
        Some(Turn::Probe(probe))
    }

    pub(crate) fn succeeded(&self) {
        let mut state = self.lock();
        state.failures = 0;
        state.not_before = None;
    }

    pub(crate) fn failed(&self, now: Instant) {
        let mut state = self.lock();
        state.failures = state.failures.saturating_add(1);
        state.not_before = Some(now.checked_add(delay(state.failures)).unwrap_or(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_from_base_and_stops_at_cap() {
        assert_eq!(delay(1), BASE);
        assert_eq!(delay(2), BASE * 2);
        assert_eq!(delay(3), BASE * 4);
        assert_eq!(delay(40), CAP);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_failure_creators_probe_one_at_a_time_spaced_by_the_delay() {
        let backoff = Backoff::default();
        assert!(matches!(backoff.turn(None).await, Some(Turn::Free)));
        let start = Instant::now();
        backoff.failed(start);
        let first = backoff.turn(None).await.expect("no deadline");
        assert!(matches!(first, Turn::Probe(_)));
        assert_eq!(Instant::now() - start, BASE);
        // A second creator waits for the probe; the probe fails again.
        let second = async {
            let turn = backoff.turn(None).await;
            (Instant::now(), turn.is_some())
        };
        let record = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            backoff.failed(Instant::now());
            drop(first);
        };
        let ((at, ok), ()) = tokio::join!(second, record);
        assert!(ok);
        assert_eq!(at - start, BASE + Duration::from_millis(5) + delay(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_lets_the_queued_creators_go_at_once() {
        let backoff = Backoff::default();
        backoff.failed(Instant::now());
        let probe = backoff.turn(None).await.unwrap();
        let waiting = async { backoff.turn(None).await.map(|t| matches!(t, Turn::Free)) };
        let succeed = async {
            backoff.succeeded();
            drop(probe);
        };
        let (free, ()) = tokio::join!(waiting, succeed);
        assert_eq!(free, Some(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_beyond_the_deadline_gives_up_at_the_deadline() {
        let backoff = Backoff::default();
        for _ in 0..10 {
            backoff.failed(Instant::now());
        }
        let start = Instant::now();
        let deadline = start + Duration::from_millis(100);
        assert!(backoff.turn(Some(deadline)).await.is_none());
        assert_eq!(Instant::now(), deadline);
    }
}

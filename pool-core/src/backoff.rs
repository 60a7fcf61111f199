//! Backoff between creates after failures, so a pool facing a down or
//! refusing server does not hammer it.
//!
//! After `n` consecutive failures each create waits for its turn: creators
//! are spaced `delay(n) = min(BASE * 2^(n-1), CAP)` apart, starting `delay(n)`
//! after the last failure. One success resets it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const BASE: Duration = Duration::from_millis(10);
const CAP: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    failures: u32,
    next: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Backoff {
    state: Mutex<State>,
}

fn delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BASE.saturating_mul(1 << exp).min(CAP)
}

impl Backoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When the caller may start its create: `None` for now (no recent
    /// failures), otherwise its reserved turn.
    pub(crate) fn reserve(&self, now: Instant) -> Option<Instant> {
        let mut state = self.lock();
        if state.failures == 0 {
            return None;
        }
        let start = state.next.map_or(now, |next| next.max(now));
        state.next = start.checked_add(delay(state.failures));
        Some(start)
    }

    pub(crate) fn succeeded(&self) {
        let mut state = self.lock();
        state.failures = 0;
        state.next = None;
    }

    pub(crate) fn failed(&self, now: Instant) {
        let mut state = self.lock();
        state.failures = state.failures.saturating_add(1);
        let earliest = now.checked_add(delay(state.failures));
        state.next = state.next.max(earliest);
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

    #[test]
    fn creators_after_a_failure_are_spaced_apart_and_success_resets() {
        let backoff = Backoff::default();
        let now = Instant::now();
        assert_eq!(backoff.reserve(now), None);
        backoff.failed(now);
        let first = backoff.reserve(now).expect("a failure delays the next create");
        let second = backoff.reserve(now).expect("still failing");
        assert_eq!(first, now + BASE);
        assert_eq!(second, first + BASE);
        backoff.succeeded();
        assert_eq!(backoff.reserve(now), None);
    }
}

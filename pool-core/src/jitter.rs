//! Jitter: each resource's `max_lifetime` is shortened by a random amount
//! of up to 1/40 (2.5%), so resources created together do not all expire,
//! and get recreated, in the same instant; and the generator's raw numbers
//! spread the capacity cool-downs (`cooldown.rs`) of instances refused
//! together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A SplitMix64 generator: tiny, lock-free, and plenty for spreading expiries.
pub(crate) struct Jitter(AtomicU64);

impl Jitter {
    pub(crate) fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64);
        let here = (&raw const seed).addr() as u64;
        Self(AtomicU64::new(seed ^ here.rotate_left(32)))
    }

    /// The next pseudo-random number.
    pub(crate) fn next(&self) -> u64 {
        let mut z =
            self.0.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// When a resource created at `created` with `lifetime` should retire;
    /// `None` when there is no lifetime or it lies beyond what `Instant` holds.
    pub(crate) fn expiry(&self, created: Instant, lifetime: Option<Duration>) -> Option<Instant> {
        let lifetime = lifetime?;
        let max = u64::try_from(lifetime.as_nanos() / 40).unwrap_or(u64::MAX - 1);
        let cut = Duration::from_nanos(self.next() % (max + 1));
        created.checked_add(lifetime.saturating_sub(cut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_stays_within_two_and_a_half_percent_below_the_lifetime() {
        let jitter = Jitter::new();
        let now = Instant::now();
        let lifetime = Duration::from_secs(400);
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..1000 {
            let at = jitter.expiry(now, Some(lifetime)).unwrap();
            assert!(at <= now + lifetime);
            assert!(at >= now + lifetime - Duration::from_secs(10));
            distinct.insert(at);
        }
        assert!(distinct.len() > 900, "expiries should be spread, got {} distinct", distinct.len());
    }

    #[test]
    fn no_lifetime_or_a_huge_one_means_no_expiry() {
        let jitter = Jitter::new();
        assert_eq!(jitter.expiry(Instant::now(), None), None);
        assert_eq!(jitter.expiry(Instant::now(), Some(Duration::MAX)), None);
    }
}

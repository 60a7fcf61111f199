//! [`Rng`]: a tiny seeded generator (SplitMix64) for the random parts of a
//! workload: think times, timeouts, which operation comes next. Not for
//! anything that needs good randomness; enough for spreading load.

use std::time::Duration;

/// SplitMix64: one `u64` of state, a fixed sequence per seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A duration between `low` and `high` (inclusive), in microseconds.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_micros() as u64 + 1;
        low + Duration::from_micros(self.below(span))
    }
}

//! The capacity cool-down: how long a pool stops opening resources after
//! the backend refused one for lack of free slots
//! ([`Manager::is_capacity_error`](crate::Manager::is_capacity_error)).
//!
//! A backend's own limit (a database server's `max_connections`, say) is
//! usually shared by several pools: the instances of one service, other
//! services, administrators. When it is reached, retrying at the pace of
//! the failure backoff (`backoff.rs`) only adds refused attempts, and a
//! pool that keeps trying to grow takes the slots other instances free.
//! So a refusal makes the pool stop *growing* for a while, and serve its
//! waiters with the resources it already holds as they are returned.
//!
//! The `n`th cool-down in a row (counted by the engine, reset by the next
//! successful create) lasts `min(BASE * 2^(n-1), CAP)`, stretched or cut by
//! up to a quarter at random: the jitter keeps instances that were refused
//! together from all trying again in the same instant, and the doubling
//! lets a fleet that keeps hitting the limit settle, each instance retrying
//! rarely, instead of hammering the server. `BASE` is long enough that a
//! slot freed by another client's disconnect is likely to be there, and
//! `CAP` short enough that a pool recovers within half a minute once the
//! server has room again.

use std::time::Duration;

/// The first cool-down's length, before jitter.
const BASE: Duration = Duration::from_secs(1);
/// The longest cool-down, before jitter.
const CAP: Duration = Duration::from_secs(30);

/// The length of the `entry`th cool-down in a row (1-based), jittered by
/// `random` (any value; its low bits pick a point within +-25 %).
pub(crate) fn length(entry: u32, random: u64) -> Duration {
    let doublings = entry.saturating_sub(1).min(16);
    let base = BASE.saturating_mul(1 << doublings).min(CAP);
    // A point in [3/4, 5/4] of `base`, in steps of 1/1024 of the range.
    let step = u32::try_from(random % 1025).unwrap_or(0);
    let quarter = base / 4;
    let spread = quarter.saturating_mul(2).saturating_mul(step) / 1024;
    base.saturating_sub(quarter) + spread
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cool_down_stays_within_a_quarter_of_its_base() {
        for random in [0, 1, 512, 1024, 1025, u64::MAX] {
            let first = length(1, random);
            assert!(first >= BASE * 3 / 4 && first <= BASE * 5 / 4, "{first:?}");
        }
        assert_eq!(length(1, 0), BASE * 3 / 4);
        assert_eq!(length(1, 1024), BASE * 5 / 4);
        assert_eq!(length(1, 512), BASE);
    }

    #[test]
    fn cool_downs_in_a_row_double_up_to_the_cap() {
        assert_eq!(length(2, 512), BASE * 2);
        assert_eq!(length(3, 512), BASE * 4);
        assert_eq!(length(6, 512), CAP);
        assert_eq!(length(u32::MAX, 512), CAP);
        assert!(length(u32::MAX, 1024) <= CAP * 5 / 4);
    }
}

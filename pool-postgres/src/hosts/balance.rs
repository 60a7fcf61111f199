//! [`LoadBalance`]: the order in which servers of the same standing are
//! offered a checkout.

use std::hash::BuildHasher;
use std::str::FromStr;
use std::sync::Arc;

use super::Member;

/// Which of several servers that can serve a checkout is tried first (the
/// `load_balance_hosts` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LoadBalance {
    /// The one with the smallest part of its share of the budget in use;
    /// ties go round robin.
    #[default]
    LeastLoaded,
    /// A random one each time (libpq's `random`).
    Random,
    /// The first in the URL's order (libpq's `disable`).
    Disable,
}

impl FromStr for LoadBalance {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "least-loaded" | "least-busy" => Ok(Self::LeastLoaded),
            "random" => Ok(Self::Random),
            "disable" | "off" | "none" | "in-order" => Ok(Self::Disable),
            _ => Err(()),
        }
    }
}

impl LoadBalance {
    /// Puts `members` in the order they are to be tried; `turn` is a number
    /// that changes with every checkout.
    pub(crate) fn order(self, members: &mut [&Arc<Member>], turn: usize) {
        if members.len() < 2 {
            return;
        }
        match self {
            Self::Disable => {}
            Self::Random => {
                let len = members.len();
                let random = std::collections::hash_map::RandomState::new().hash_one(turn) as usize;
                members.rotate_left(random % len);
            }
            Self::LeastLoaded => {
                let len = members.len();
                members.rotate_left(turn % len);
                // Stable: equals keep the rotated order, so ties go round robin.
                members.sort_by_cached_key(|member| load(member));
            }
        }
    }
}

/// In use per 1,000 of the host's share, so shares of different sizes compare.
fn load(member: &Member) -> usize {
    let status = member.pool.status();
    (status.in_use + status.creating) * 1000 / status.max_size.max(1)
}

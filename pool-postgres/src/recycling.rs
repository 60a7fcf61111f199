//! [`Recycling`]: how much checking a connection gets before reuse.

use std::str::FromStr;

use serde::Deserialize;

/// How a connection is checked before it is handed out again.
///
/// Whatever the policy, a connection that may still be inside a transaction
/// (a raw `BEGIN`, a `transaction()` future dropped halfway, `SET`
/// commands, any use of the raw client) is first reset with one `ROLLBACK`
/// round trip, and a connection whose socket or driver task has ended is
/// never handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recycling {
    /// No round trip for a connection that is known clean and was used in
    /// the last `verify_idle_after` (5 s by default); one that sat idle
    /// longer is verified with an empty query first, bounded by
    /// `recycle_timeout`. The default: cheap, and still safe against
    /// connections that died silently while idle.
    #[default]
    Fast,
    /// An empty-query round trip before every reuse.
    Verified,
    /// `DISCARD ALL` before every reuse: resets session state (settings,
    /// temporary tables, prepared statements — the statement cache is
    /// cleared with it). The slowest; for code that changes session state.
    Clean,
}

impl FromStr for Recycling {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fast" => Ok(Self::Fast),
            "verified" => Ok(Self::Verified),
            "clean" => Ok(Self::Clean),
            _ => Err(()),
        }
    }
}

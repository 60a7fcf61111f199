//! [`StatementPolicy`]: the pool's rules for sending statements, shared by
//! every connection of one pool and read by [`crate::session`].

use std::time::Duration;

use crate::pooler::{Pooler, SessionStatePolicy};

/// How statements are sent on the pool's connections.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatementPolicy {
    /// Longest time one round trip may take (`socket_timeout`).
    pub(crate) socket_timeout: Option<Duration>,
    /// What stands between the pool and the server (`pooler`).
    pub(crate) pooler: Pooler,
    /// What happens to session state behind a transaction pooler.
    pub(crate) session_state: SessionStatePolicy,
    /// The pool's name, for log lines and metric labels.
    pub(crate) pool_name: String,
    /// How cancel requests reach the server.
    pub(crate) canceller: crate::drain::Canceller,
}

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
    /// The dead-path check of unanswered statements (`liveness_check_after`);
    /// `None` when off or behind a transaction pooler.
    pub(crate) liveness: Option<std::sync::Arc<crate::liveness::Liveness>>,
    /// Cancel requests still on their way, for `close_and_wait`.
    pub(crate) side_tasks: std::sync::Arc<crate::side_channel::SideTasks>,
    /// How cancel requests and liveness probes reach the server.
    pub(crate) side_channel: crate::side_channel::SideChannel,
    /// In a pool over several hosts, wakes the role check: a write was
    /// refused as read-only (25006), or a connection was lost.
    pub(crate) role_doubt: Option<std::sync::Arc<tokio::sync::Notify>>,
}

#![doc = include_str!("../README.md")]

mod backlog;
mod budget;
mod builder;
mod cache;
mod client;
mod config_error;
mod connection;
mod drain;
mod error;
mod hosts;
mod hygiene;
pub mod insight;
mod key_value;
mod liveness;
mod manager;
mod param_types;
mod pipelined;
mod policy;
mod pool;
mod pooler;
mod postgres_checks;
mod query;
mod queued;
mod recycling;
mod registry;
mod retry;
mod row_stream;
mod session;
mod session_state;
mod settings;
mod shared;
mod side_channel;
mod statements;
mod target;
#[cfg(feature = "tls")]
mod tls;
mod transaction;
mod url;

pub use budget::BudgetCheckError;
pub use builder::PgPoolBuilder;
pub use cache::CacheStats;
pub use client::Client;
pub use config_error::ConfigError;
pub use connection::PgConnection;
pub use drain::CANCEL_METRIC;
pub use error::{Error, ErrorKind};
pub use hosts::{HOST_CHECK_METRIC, HostStatus, LoadBalance, REPLICA_LAG_METRIC};
pub use manager::PgManager;
pub use pipelined::{
    SHARED_CONNECTIONS_METRIC, SHARED_IN_FLIGHT_METRIC, SHARED_WAITING_METRIC, Shared, SharedStatus,
};
pub use pool::{PgPool, PoolError};
pub use pool_core::{self, ErrorChain, Status};
pub use pooler::{Pooler, SessionStatePolicy};
pub use query::Query;
pub use recycling::Recycling;
pub use retry::{Retry, RetryError, Retryable};
pub use row_stream::RowStream;
pub use settings::{
    DEFAULT_HOST_RECHECK_INTERVAL, DEFAULT_LIVENESS_CHECK_AFTER, DEFAULT_RECYCLE_TIMEOUT,
    DEFAULT_SHARED_CONNECTIONS, DEFAULT_SHARED_IN_FLIGHT, DEFAULT_STATEMENT_CACHE_SIZE,
    DEFAULT_VERIFY_IDLE_AFTER, IntoSetting, PgConfig, PoolSettings,
};
pub use shared::shared_pool;
pub use target::{Role, TargetSessionAttrs};
pub use tokio_postgres;
pub use transaction::{Transaction, TransactionBuilder};

/// The counter of statements that would leave session state behind a
/// transaction pooler, labelled `pool`, `statement` (`SET`, `LISTEN`, ...)
/// and `action` (`refused` or `warned`); through the `metrics` facade.
pub const SESSION_STATE_METRIC: &str = "pool_pooler_session_state_total";

/// The workspace README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct WorkspaceReadme;

#![doc = include_str!("../README.md")]

mod cache;
mod client;
mod connection;
mod error;
mod hygiene;
pub mod insight;
mod manager;
mod pool;
mod recycling;
mod registry;
mod settings;
mod shared;
#[cfg(feature = "tls")]
mod tls;
mod transaction;
mod url;

pub use cache::CacheStats;
pub use client::{Client, Query};
pub use connection::PgConnection;
pub use error::ConfigError;
pub use manager::PgManager;
pub use pool::{
    BudgetCheckError, DEFAULT_RECYCLE_TIMEOUT, DEFAULT_STATEMENT_CACHE_SIZE, PgConfig, PgPool, PgPoolBuilder,
    PoolError,
};
pub use pool_core::{self, Status};
pub use recycling::Recycling;
pub use settings::PoolSettings;
pub use shared::shared_pool;
pub use tokio_postgres;
pub use transaction::Transaction;

/// The workspace README's examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct WorkspaceReadme;

//! [`PgPool::check_budget`]: whether this deployment's pools fit in the
//! server's connections, checked at start-up.

use pool_core::ErrorChain;

use crate::error::Error;
use crate::insight::{self, Budget};
use crate::pool::{PgPool, PoolError};

impl PgPool {
    /// Checks at start-up whether `instances` copies of this service, each
    /// with this pool's `max_size`, fit in the connections the server has
    /// left; logs a warning with the arithmetic when they do not (info when
    /// they do) and returns the figures.
    ///
    /// # Errors
    ///
    /// A [`BudgetCheckError`] if no connection could be had or the server
    /// refused to tell its settings.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe (read-only).
    pub async fn check_budget(&self, instances: u32) -> Result<Budget, BudgetCheckError> {
        let client = self.get().await.map_err(BudgetCheckError::Pool)?;
        let limits = insight::server_limits(&client).await.map_err(BudgetCheckError::Query)?;
        let max_size = self.status().max_size;
        let budget = if self.pooler().transaction_mode() {
            Budget::behind_pooler(&limits, instances, max_size)
        } else {
            // Every instance's sessions carry the same application_name: they
            // are this service's, part of what it needs, not held by others.
            let application = self.postgres_config().get_application_name().unwrap_or_default();
            let ours = insight::sessions_of_application(&client, application)
                .await
                .map_err(BudgetCheckError::Query)?;
            let needed = i64::from(instances).saturating_mul(i64::try_from(max_size).unwrap_or(i64::MAX));
            Budget::compute(&limits, instances, max_size, ours.min(needed))
        };
        drop(client);
        if budget.behind_pooler {
            tracing::info!(pool = %self.name(), %budget, "connection budget");
        } else if budget.fits() {
            tracing::info!(pool = %self.name(), %budget, "connection budget");
        } else {
            tracing::warn!(
                pool = %self.name(),
                %budget,
                "this deployment's pools do not fit in the server's max_connections: lower max_size \
                 (connection_limit), run fewer instances, or put a pooler such as PgBouncer in between"
            );
        }
        Ok(budget)
    }
}

/// [`PgPool::check_budget`] could not read the server's limits.
#[derive(Debug)]
#[non_exhaustive]
pub enum BudgetCheckError {
    /// No connection could be had.
    Pool(PoolError),
    /// The server refused the query.
    Query(Error),
}

impl std::fmt::Display for BudgetCheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pool(e) => write!(f, "checking the connection budget: {e}"),
            Self::Query(e) => write!(f, "checking the connection budget: {}", ErrorChain(e)),
        }
    }
}

impl std::error::Error for BudgetCheckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Pool(e) => Some(e),
            Self::Query(e) => Some(e),
        }
    }
}

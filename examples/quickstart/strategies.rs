//! The three ways of getting a connection, and the queries each unit of work
//! runs through it.

use examples::is_too_many_clients;
use pool_core::ErrorChain;
use pool_postgres::{PgPool, PgPoolBuilder};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

/// Queries per unit of work (one of them is the `pg_sleep`).
pub(crate) const QUERIES: u64 = 5;

/// The three ways of running the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strategy {
    ConnectionPerCall,
    PoolPerCall,
    SharedPool,
}

impl Strategy {
    /// In the order they run and are reported.
    pub(crate) const ALL: [Self; 3] = [Self::ConnectionPerCall, Self::PoolPerCall, Self::SharedPool];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::ConnectionPerCall => "connection_per_call",
            Self::PoolPerCall => "pool_per_call",
            Self::SharedPool => "shared_pool",
        }
    }

    /// The `application_name` its connections carry, for the monitor.
    pub(crate) fn application_name(self) -> String {
        format!("quickstart_{}", self.name())
    }
}

/// Everything a task needs to run one unit of work the strategy's way.
pub(crate) struct Unit {
    pub(crate) strategy: Strategy,
    pub(crate) url: String,
    pub(crate) base: tokio_postgres::Config,
    pub(crate) shared: PgPool,
    /// Seconds one query sleeps.
    pub(crate) sleep: f64,
}

/// What went wrong in one unit of work.
pub(crate) struct Failure {
    pub(crate) too_many_clients: bool,
    pub(crate) text: String,
}

impl Failure {
    fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        Self { too_many_clients: is_too_many_clients(error), text: ErrorChain(error).to_string() }
    }
}

impl Unit {
    /// Connects (the strategy's way), runs the queries, lets go.
    pub(crate) async fn once(&self) -> Result<(), Failure> {
        match self.strategy {
            Strategy::ConnectionPerCall => {
                let mut config = self.base.clone();
                config.application_name(self.strategy.application_name());
                let (client, connection) = config.connect(NoTls).await.map_err(|e| Failure::of(&e))?;
                let driver = tokio::spawn(connection);
                let result = queries(&client, self.sleep).await.map_err(|e| Failure::of(&e));
                drop(client);
                let _ = driver.await; // the connection is closed once this ends
                result
            }
            Strategy::PoolPerCall => {
                // The broken pattern: a pool built where a connection is needed.
                let pool = PgPoolBuilder::from_url(&self.url)
                    .map_err(|e| Failure::of(&e))?
                    .postgres_config(|c| {
                        c.application_name(self.strategy.application_name());
                    })
                    .build()
                    .map_err(|e| Failure::of(&e))?;
                let client = pool.get().await.map_err(|e| Failure::of(&e))?;
                queries(&client, self.sleep).await.map_err(|e| Failure::of(&e))
                // `pool` is dropped here, which closes its connection.
            }
            Strategy::SharedPool => {
                let client = self.shared.get().await.map_err(|e| Failure::of(&e))?;
                queries(&client, self.sleep).await.map_err(|e| Failure::of(&e))
            }
        }
    }
}

/// A client the queries go through; the strategies differ in which.
trait QueryClient: Sync {
    /// What a failed query returns.
    type Error: std::error::Error + 'static;

    fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Self::Error>> + Send;
}

/// A raw connection prepares each statement on every call, as code without
/// a pool does.
impl QueryClient for tokio_postgres::Client {
    type Error = tokio_postgres::Error;

    fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Self::Error>> + Send {
        tokio_postgres::Client::query_one(self, sql, params)
    }
}

/// A pooled connection prepares each statement once and caches it.
impl QueryClient for pool_postgres::Client {
    type Error = pool_postgres::Error;

    fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Self::Error>> + Send {
        pool_postgres::Client::query_one(self, sql, params)
    }
}

/// The queries of one unit of work: [`QUERIES`] of them, the third sleeping
/// `sleep` seconds on the server so the connection is held a moment.
async fn queries<C: QueryClient>(client: &C, sleep: f64) -> Result<(), C::Error> {
    for i in 0..QUERIES as i32 {
        if i == 2 {
            client.query_one("SELECT pg_sleep($1)", &[&sleep]).await?;
        } else {
            let row = client.query_one("SELECT $1::int + 1", &[&i]).await?;
            debug_assert_eq!(row.get::<_, i32>(0), i + 1);
        }
    }
    Ok(())
}

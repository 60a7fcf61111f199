//! [`PgPool`]: a pool of PostgreSQL connections; everything pool-core can
//! do, with connections handed out as a usable [`Client`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pool_core::{BuildError, CloseTimedOut, Pool, ResourceInfo, Status};

use crate::builder::PgPoolBuilder;
use crate::client::Client;
use crate::config_error::ConfigError;
use crate::connection::PgConnection;
use crate::manager::PgManager;
use crate::registry::Registration;
use crate::settings::PgConfig;

/// What `get` fails with: pool-core's error over tokio-postgres's.
pub type PoolError = pool_core::Error<tokio_postgres::Error>;

/// A bounded pool of PostgreSQL connections. Cheap to clone; keep one per
/// process and database.
#[derive(Clone)]
pub struct PgPool {
    inner: Pool<PgManager>,
    _registration: Arc<Registration>,
}

impl PgPool {
    pub(crate) fn new(inner: Pool<PgManager>, registration: Registration) -> Self {
        Self { inner, _registration: Arc::new(registration) }
    }

    /// Builds a pool from a `postgres://` URL, with pool settings in its
    /// query string (see [`PoolSettings`](crate::PoolSettings) for the list).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let pool = pool_postgres::PgPool::from_url(
    ///     "postgres://app:secret@localhost/app?connection_limit=5&pool_timeout=2",
    /// ).unwrap();
    /// assert_eq!(pool.status().max_size, 5);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the bad parameter and value: a malformed
    /// URL, an unknown parameter, `connection_limit=0`, `pool_timeout=abc`...
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        PgPoolBuilder::from_url(url)?.build()
    }

    /// Builds a pool from the `DATABASE_URL` environment variable.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] if the variable is unset or not a valid URL.
    pub fn from_env() -> Result<Self, ConfigError> {
        PgPoolBuilder::from_env()?.build()
    }

    /// Builds a pool from a deserialized config section.
    ///
    /// # Errors
    ///
    /// As [`PgPool::from_url`].
    pub fn from_config(config: &PgConfig) -> Result<Self, ConfigError> {
        PgPoolBuilder::from_url(&config.url)?.settings(&config.pool).build()
    }

    /// Starts a builder over a tokio-postgres config.
    pub fn builder(config: tokio_postgres::Config) -> PgPoolBuilder {
        PgPoolBuilder::new(config)
    }

    /// Borrows a connection, waiting for one up to `acquire_timeout`; see
    /// [`pool_core::Pool::get`].
    ///
    /// # Errors
    ///
    /// As [`pool_core::Pool::get`]: a timeout naming its phase and the
    /// server's last error (for instance "password authentication failed"
    /// or "sorry, too many clients already"), `Closed`, `Overloaded`, or the
    /// connect error itself.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`pool_core::Pool::get`].
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<Client, PoolError>> + Send + '_ {
        let get = self.inner.get();
        async move { get.await.map(Client::new) }
    }

    /// Borrows a connection only if one is idle or a slot is free (opening a
    /// connection then); never waits in the queue. See
    /// [`pool_core::Pool::try_get`].
    ///
    /// # Errors
    ///
    /// `Exhausted` when every connection is in use, and as [`PgPool::get`]
    /// otherwise.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`pool_core::Pool::try_get`].
    #[track_caller]
    pub fn try_get(&self) -> impl Future<Output = Result<Client, PoolError>> + Send + '_ {
        let get = self.inner.try_get();
        async move { get.await.map(Client::new) }
    }

    /// The pool's counts; see [`Status`].
    pub fn status(&self) -> Status {
        self.inner.status()
    }

    /// The pool's name, as in logs and metric labels.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Whether [`close`](PgPool::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Changes `max_size`; see [`pool_core::Pool::resize`].
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if `max_size` is 0 or below `min_idle`.
    pub fn resize(&self, max_size: usize) -> Result<(), BuildError> {
        self.inner.resize(max_size)
    }

    /// Closes the idle connections for which `keep` returns false; see
    /// [`pool_core::Pool::retain`].
    pub fn retain(&self, keep: impl FnMut(&PgConnection, &ResourceInfo) -> bool) {
        self.inner.retain(keep);
    }

    /// Closes every idle connection now and every borrowed one when it comes
    /// back (after a failover or a credentials change); see
    /// [`pool_core::Pool::evict_all`].
    pub fn evict_all(&self) {
        self.inner.evict_all();
    }

    /// Closes the pool; see [`pool_core::Pool::close`].
    pub fn close(&self) {
        self.inner.close();
    }

    /// Closes the pool and waits for borrowed connections to come back (see
    /// [`pool_core::Pool::close_and_wait`]) and for the cancel requests sent
    /// for statements abandoned on them, within the same `timeout`: a
    /// process that exits before a cancel is delivered leaves its statement
    /// running on the server.
    ///
    /// # Errors
    ///
    /// [`CloseTimedOut`] if connections are still out after `timeout`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe; the pool is closed from the first poll on.
    pub async fn close_and_wait(&self, timeout: Duration) -> Result<(), CloseTimedOut> {
        let started = tokio::time::Instant::now();
        let closed = self.inner.close_and_wait(timeout).await;
        // Cancel requests for statements abandoned on the closed connections
        // must reach the server before the process may exit; each is bounded.
        let left = timeout.saturating_sub(started.elapsed());
        if tokio::time::timeout(left, self.inner.manager().policy.side_tasks.settled()).await.is_err() {
            tracing::debug!(pool = %self.inner.name(), "closed with cancel requests still on their way");
        }
        closed
    }

    /// What the pool was told stands between it and the server (`pooler`).
    pub fn pooler(&self) -> crate::Pooler {
        self.inner.manager().policy.pooler
    }

    /// The tokio-postgres config connections are opened with (the password
    /// is hidden in its `Debug`).
    pub fn postgres_config(&self) -> &tokio_postgres::Config {
        self.inner.manager().config()
    }
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("pool", &self.inner)
            .field("manager", self.inner.manager())
            .finish_non_exhaustive()
    }
}

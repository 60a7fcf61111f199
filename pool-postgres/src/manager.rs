//! [`PgManager`]: the pool-core [`Manager`] for PostgreSQL.

use std::time::Duration;

use pool_core::{DestroyReason, Manager, ResourceInfo};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::connection::PgConnection;
use crate::recycling::Recycling;

/// Opens, checks and closes PostgreSQL connections for a pool.
///
/// Checks before reuse, by [`Recycling`] policy:
/// - always, at no cost: the socket is open and its driver task alive;
/// - `Fast`: an empty query (`""`, one round trip) only when the connection
///   sat idle longer than `verify_idle_after`;
/// - `Verified`: an empty query every time;
/// - `Clean`: `DISCARD ALL` every time (and the statement cache is cleared).
///
/// On return, a connection whose session may be inside a transaction gets a
/// `ROLLBACK` queued, and one whose socket died or whose statement did not
/// answer a cancel is destroyed. One that comes back with requests nobody
/// awaits any more (a dropped query future) is drained on a task of the
/// pool's before it goes back idle (the work still running after 50 ms is
/// cancelled on the server), within `recycle_timeout`. A connection with such a backlog is never handed out
/// unchecked, whatever the policy.
///
/// A connect the server refuses for lack of connection slots (SQLSTATE
/// 53300, `too_many_connections`: "sorry, too many clients already" or
/// "remaining connection slots are reserved for ...") is a capacity refusal
/// ([`Manager::is_capacity_error`]): the pool stops opening connections for
/// a cool-down and serves its callers with the connections it has.
pub struct PgManager {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) recycling: Recycling,
    pub(crate) verify_idle_after: Duration,
    pub(crate) statement_cache_size: usize,
    pub(crate) policy: std::sync::Arc<crate::policy::StatementPolicy>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::MakeRustlsConnect>,
}

impl PgManager {
    /// A manager with the default policies over a tokio-postgres config.
    pub fn new(config: tokio_postgres::Config) -> Self {
        Self {
            config,
            recycling: Recycling::default(),
            verify_idle_after: crate::settings::DEFAULT_VERIFY_IDLE_AFTER,
            statement_cache_size: crate::DEFAULT_STATEMENT_CACHE_SIZE,
            policy: std::sync::Arc::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The tokio-postgres config connections are opened with.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

impl Manager for PgManager {
    type Resource = PgConnection;
    type Error = tokio_postgres::Error;

    const RESOURCE: &'static str = "connection";

    async fn create(&self) -> Result<PgConnection, tokio_postgres::Error> {
        let policy = std::sync::Arc::clone(&self.policy);
        #[cfg(feature = "tls")]
        let mut conn = if let Some(tls) = &self.tls {
            let (client, connection) = self.config.connect(tls.clone()).await?;
            PgConnection::new(client, connection, self.statement_cache_size, policy)
        } else {
            let (client, connection) = self.config.connect(NoTls).await?;
            PgConnection::new(client, connection, self.statement_cache_size, policy)
        };
        #[cfg(not(feature = "tls"))]
        let mut conn = {
            let (client, connection) = self.config.connect(NoTls).await?;
            PgConnection::new(client, connection, self.statement_cache_size, policy)
        };
        if self.policy.liveness.is_some() {
            conn.backend_pid = Some(backend_pid(&conn.client).await?);
        }
        Ok(conn)
    }

    async fn recycle(
        &self,
        conn: &mut PgConnection,
        info: &ResourceInfo,
    ) -> Result<(), tokio_postgres::Error> {
        if conn.is_closed() {
            // Surfaces the reason tokio-postgres recorded ("connection closed").
            return conn.client.simple_query("").await.map(drop);
        }
        if conn.backlog.abandoned() > 0 {
            crate::drain::drain(conn).await?;
        }
        match self.recycling {
            Recycling::Fast if info.idle_for() < self.verify_idle_after => Ok(()),
            Recycling::Fast | Recycling::Verified => conn.client.simple_query("").await.map(drop),
            Recycling::Clean => {
                conn.cache().clear();
                conn.client.batch_execute("DISCARD ALL").await
            }
        }
    }

    /// SQLSTATE 53300 (`too_many_connections`), which the server sends both
    /// when `max_connections` is reached and when only the slots reserved
    /// for superusers (or roles with `pg_use_reserved_connections`) are left.
    fn is_capacity_error(&self, error: &tokio_postgres::Error) -> bool {
        error.as_db_error().is_some_and(|db| *db.code() == SqlState::TOO_MANY_CONNECTIONS)
    }

    /// SQLSTATE 57P03 (`cannot_connect_now`: the server is starting up,
    /// shutting down or in recovery without hot standby), which a restart
    /// shows for a second or so: callers wait it out within `pool_timeout`.
    fn is_passing_error(&self, error: &tokio_postgres::Error) -> bool {
        error.as_db_error().is_some_and(|db| *db.code() == SqlState::CANNOT_CONNECT_NOW)
    }

    fn is_broken(&self, conn: &mut PgConnection) -> bool {
        conn.is_closed() || conn.is_marked_broken() || !conn.reset_on_return()
    }

    /// A connection returned with requests nobody awaits any more.
    fn needs_settling(&self, conn: &mut PgConnection) -> bool {
        conn.backlog.abandoned() > 0
    }

    /// Drains the backlog: waits for it, cancelling what still runs, and
    /// ends any block it left open.
    async fn settle(&self, conn: &mut PgConnection) -> Result<(), tokio_postgres::Error> {
        crate::drain::drain(conn).await
    }

    fn destroy(&self, conn: PgConnection, reason: DestroyReason) {
        tracing::debug!(%reason, "closing a PostgreSQL connection");
        drop(conn);
    }
}

/// The server process id of a new session, for the liveness check.
async fn backend_pid(client: &tokio_postgres::Client) -> Result<i32, tokio_postgres::Error> {
    let messages = client.simple_query("SELECT pg_backend_pid()").await?;
    let pid = messages.iter().find_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|pid| pid.parse().ok()),
        _ => None,
    });
    // A server always answers it; 0 matches no session, so the check then
    // finds the statement "not running" only if the session is gone too.
    Ok(pid.unwrap_or(0))
}

impl std::fmt::Debug for PgManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // tokio_postgres::Config's Debug hides the password.
        f.debug_struct("PgManager")
            .field("config", &self.config)
            .field("recycling", &self.recycling)
            .field("verify_idle_after", &self.verify_idle_after)
            .field("statement_cache_size", &self.statement_cache_size)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

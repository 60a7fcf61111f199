//! Server insight for operators: who holds the server's connections, how
//! many it allows, whether a deployment's pools fit, and ending idle
//! sessions. Every function takes a pooled [`Client`](crate::Client) or a
//! plain `tokio_postgres::Client` (see [`Connection`]) and runs
//! parameterised SQL.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::Error;

/// What the insight functions read through: a pooled [`Client`](crate::Client)
/// (its statements take the pool's one query path) or a plain
/// `tokio_postgres::Client` (as the `pgpool` tool uses).
pub trait Connection: sealed::Sealed + Sync {
    #[doc(hidden)]
    fn rows<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a;

    #[doc(hidden)]
    fn row<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Client {}
    impl Sealed for tokio_postgres::Client {}
}

impl Connection for crate::Client {
    fn rows<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a {
        self.query(sql, params)
    }

    fn row<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send + 'a {
        self.query_one(sql, params)
    }
}

impl Connection for tokio_postgres::Client {
    async fn rows<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        Ok(self.query(sql, params).await?)
    }

    async fn row<'a>(&'a self, sql: &'a str, params: &'a [&'a (dyn ToSql + Sync)]) -> Result<Row, Error> {
        Ok(self.query_one(sql, params).await?)
    }
}

/// Client connections on the server with one state and application name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionGroup {
    /// `active`, `idle`, `idle in transaction`, ...
    pub state: String,
    /// The `application_name` the clients gave (empty if none).
    pub application_name: String,
    /// How many connections.
    pub count: i64,
}

/// Client connections on the server (all databases), grouped by state and
/// application, largest group first, from `pg_stat_activity`.
///
/// # Errors
///
/// The server's error.
///
/// # Cancel safety
///
/// Cancel-safe (a read-only query).
pub async fn connections_by_state(client: &impl Connection) -> Result<Vec<ConnectionGroup>, Error> {
    let rows = client
        .rows(
            "SELECT coalesce(state, 'unknown'), coalesce(application_name, ''), count(*) \
             FROM pg_stat_activity WHERE backend_type = 'client backend' \
             GROUP BY 1, 2 ORDER BY 3 DESC, 2, 1",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| ConnectionGroup { state: row.get(0), application_name: row.get(1), count: row.get(2) })
        .collect())
}

/// The server's connection limits and use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerLimits {
    /// `max_connections`.
    pub max_connections: i64,
    /// `superuser_reserved_connections`.
    pub superuser_reserved: i64,
    /// `reserved_connections` (PostgreSQL 16+; 0 before).
    pub reserved: i64,
    /// Client connections open now, all databases and users.
    pub in_use: i64,
}

impl ServerLimits {
    /// Connections ordinary users may open in all: `max_connections` minus the reserved slots.
    pub fn usable(&self) -> i64 {
        self.max_connections - self.superuser_reserved - self.reserved
    }

    /// Connections ordinary users can still open now.
    pub fn available(&self) -> i64 {
        (self.usable() - self.in_use).max(0)
    }
}

/// Reads the server's limits and current use.
///
/// # Errors
///
/// The server's error.
///
/// # Cancel safety
///
/// Cancel-safe (a read-only query).
pub async fn server_limits(client: &impl Connection) -> Result<ServerLimits, Error> {
    let row = client
        .row(
            "SELECT current_setting('max_connections')::int8, \
                current_setting('superuser_reserved_connections')::int8, \
                coalesce(current_setting('reserved_connections', true)::int8, 0), \
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
            &[],
        )
        .await?;
    Ok(ServerLimits {
        max_connections: row.get(0),
        superuser_reserved: row.get(1),
        reserved: row.get(2),
        in_use: row.get(3),
    })
}

/// How many client sessions on the server (all databases) have this
/// `application_name`: the connections of every instance of a service.
///
/// # Errors
///
/// The server's error.
///
/// # Cancel safety
///
/// Cancel-safe (a read-only query).
pub async fn sessions_of_application(client: &impl Connection, application_name: &str) -> Result<i64, Error> {
    let row = client
        .row(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND application_name = $1",
            &[&application_name],
        )
        .await?;
    Ok(row.get(0))
}

/// Whether `instances` copies of a service, each with a pool of `pool_size`,
/// fit in what the server allows beside everyone else's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Budget {
    /// Service instances.
    pub instances: u32,
    /// `max_size` of each instance's pool.
    pub pool_size: usize,
    /// `instances * pool_size`.
    pub needed: i64,
    /// Connections ordinary users may open (max minus reserved).
    pub usable: i64,
    /// Connections held by others (open now, minus this service's own).
    pub others: i64,
    /// `usable - others - needed`: the slack left (negative: the shortfall).
    pub headroom: i64,
    /// The pools reach the server through a transaction pooler: `needed`
    /// counts client connections to the pooler, which the server never
    /// sees, so only the server's own use is checked.
    pub behind_pooler: bool,
}

impl Budget {
    /// Computes the budget; `own` is how many of the open connections are
    /// this service's (they are part of `needed`, not of `others`).
    pub fn compute(limits: &ServerLimits, instances: u32, pool_size: usize, own: i64) -> Self {
        let needed = i64::from(instances).saturating_mul(i64::try_from(pool_size).unwrap_or(i64::MAX));
        let usable = limits.usable();
        let others = (limits.in_use - own).max(0);
        Self {
            instances,
            pool_size,
            needed,
            usable,
            others,
            headroom: usable - others - needed,
            behind_pooler: false,
        }
    }

    /// The budget of pools behind a transaction pooler: their connections
    /// end at the pooler, so what is checked is whether the server has room
    /// beside what is open now (the pooler's server connections included).
    pub fn behind_pooler(limits: &ServerLimits, instances: u32, pool_size: usize) -> Self {
        let needed = i64::from(instances).saturating_mul(i64::try_from(pool_size).unwrap_or(i64::MAX));
        let usable = limits.usable();
        let others = limits.in_use;
        Self { instances, pool_size, needed, usable, others, headroom: usable - others, behind_pooler: true }
    }

    /// Whether the pools fit.
    pub fn fits(&self) -> bool {
        self.headroom >= 0
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.behind_pooler {
            return write!(
                f,
                "behind a transaction pooler: {} instance(s) x pool of {} = {} client connections to the pooler \
                 (its max_client_conn must allow them), not to the server; the server allows {} (max_connections \
                 minus reserved) and has {} open now, the pooler's among them, leaving {}: the pooler's pool \
                 sizes must fit in that",
                self.instances, self.pool_size, self.needed, self.usable, self.others, self.headroom
            );
        }
        write!(
            f,
            "{} instance(s) x pool of {} = {} connections needed; server allows {} (max_connections minus \
             reserved), {} held by others, leaving {}: {}",
            self.instances,
            self.pool_size,
            self.needed,
            self.usable,
            self.others,
            self.usable - self.others,
            if self.fits() {
                format!("fits with {} to spare", self.headroom)
            } else {
                format!("does NOT fit, short by {}", -self.headroom)
            }
        )
    }
}

/// An idle server session found by [`terminate_idle`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct IdleSession {
    /// The backend's process id.
    pub pid: i32,
    /// Its `application_name`.
    pub application_name: String,
    /// Its user.
    pub user: String,
    /// How long it has been idle.
    pub idle_for: Duration,
    /// Whether it was terminated (false on a dry run).
    pub terminated: bool,
}

/// Which idle sessions [`terminate_idle`] ends.
#[derive(Debug, Clone, Default)]
pub struct IdleFilter {
    /// Only sessions idle longer than this.
    pub idle_longer_than: Duration,
    /// Only sessions with this `application_name`.
    pub application_name: Option<String>,
    /// Also superusers' sessions (off by default).
    pub include_superusers: bool,
    /// List, but terminate nothing.
    pub dry_run: bool,
}

impl IdleFilter {
    /// Sessions idle longer than `idle_longer_than`, any application, no superusers, for real.
    pub fn idle_longer_than(idle_longer_than: Duration) -> Self {
        Self { idle_longer_than, ..Self::default() }
    }
}

/// Terminates (with `pg_terminate_backend`) the idle client sessions of the
/// current database that match `filter` — never the caller's own session.
///
/// # Errors
///
/// The server's error, for instance "permission denied to terminate
/// process" when the user may not signal another role's sessions.
///
/// # Cancel safety
///
/// Not cancel-safe in effect: sessions terminated before the drop stay terminated.
pub async fn terminate_idle(
    client: &impl Connection,
    filter: &IdleFilter,
) -> Result<Vec<IdleSession>, Error> {
    let rows = client
        .rows(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), \
                    extract(epoch FROM now() - a.state_change)::float8, \
                    CASE WHEN $4 THEN false ELSE pg_terminate_backend(a.pid) END \
             FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid \
             WHERE a.state = 'idle' AND a.backend_type = 'client backend' \
               AND a.pid <> pg_backend_pid() AND a.datname = current_database() \
               AND a.state_change < now() - make_interval(secs => $1) \
               AND ($2::text IS NULL OR a.application_name = $2) \
               AND ($3 OR NOT coalesce(r.rolsuper, false)) \
             ORDER BY a.pid",
            &[
                &filter.idle_longer_than.as_secs_f64(),
                &filter.application_name,
                &filter.include_superusers,
                &filter.dry_run,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| IdleSession {
            pid: row.get(0),
            application_name: row.get(1),
            user: row.get(2),
            idle_for: Duration::try_from_secs_f64(row.get::<_, f64>(3).max(0.0)).unwrap_or_default(),
            terminated: row.get(4),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_shows_its_arithmetic_and_the_shortfall() {
        let limits = ServerLimits { max_connections: 100, superuser_reserved: 3, reserved: 0, in_use: 30 };
        let budget = Budget::compute(&limits, 4, 20, 10);
        assert_eq!((budget.needed, budget.usable, budget.others, budget.headroom), (80, 97, 20, -3));
        assert!(!budget.fits());
        let text = budget.to_string();
        assert!(text.contains("4 instance(s) x pool of 20 = 80") && text.contains("short by 3"), "{text}");
        assert!(Budget::compute(&limits, 3, 20, 10).fits());
    }
}

//! [`PgPool`]: a pool of PostgreSQL connections; everything pool-core can
//! do, with connections handed out as a usable [`Client`].

use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use pool_core::{BuildError, CloseTimedOut, Pool, ResourceInfo, Status};

use crate::builder::PgPoolBuilder;
use crate::client::Client;
use crate::config_error::ConfigError;
use crate::connection::PgConnection;
use crate::hosts::{HostStatus, Hosts};
use crate::manager::PgManager;
use crate::pipelined::{Lanes, Shared};
use crate::registry::Registration;
use crate::settings::PgConfig;
use crate::target::TargetSessionAttrs;

/// What `get` fails with: pool-core's error over tokio-postgres's.
pub type PoolError = pool_core::Error<tokio_postgres::Error>;

/// A bounded pool of PostgreSQL connections. Cheap to clone; keep one per
/// process and database.
///
/// Over one server, it is one pool-core pool. Given several hosts (or a
/// `target_session_attrs`), it is one pool per host under one budget, and
/// routes every checkout by role: [`get`](Self::get) to the pool's target
/// (a primary that takes writes, unless set otherwise), [`read`](Self::read)
/// to a standby with the primary as fallback, [`get_for`](Self::get_for)
/// to any target (see [`TargetSessionAttrs`]); [`hosts`](Self::hosts)
/// tells what each host was seen as.
#[derive(Clone)]
pub struct PgPool {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    One { pool: Pool<PgManager>, lanes: Arc<Lanes>, _registration: Arc<Registration> },
    Hosts(Arc<Hosts>),
}

impl PgPool {
    pub(crate) fn one(pool: Pool<PgManager>, lanes: Arc<Lanes>, registration: Registration) -> Self {
        Self { inner: Inner::One { pool, lanes, _registration: Arc::new(registration) } }
    }

    /// Every set of shared connections under this pool: one, or one per host.
    fn lanes(&self) -> impl Iterator<Item = &Lanes> {
        let (one, hosts) = match &self.inner {
            Inner::One { lanes, .. } => (Some(&**lanes), None),
            Inner::Hosts(hosts) => (None, Some(hosts.members.iter().map(|member| &*member.lanes))),
        };
        one.into_iter().chain(hosts.into_iter().flatten())
    }

    pub(crate) fn routed(hosts: Arc<Hosts>) -> Self {
        Self { inner: Inner::Hosts(hosts) }
    }

    /// Every pool-core pool under this one: one, or one per host.
    fn pools(&self) -> impl Iterator<Item = &Pool<PgManager>> {
        let (one, hosts) = match &self.inner {
            Inner::One { pool, .. } => (Some(pool), None),
            Inner::Hosts(hosts) => (None, Some(hosts.members.iter().map(|member| &member.pool))),
        };
        one.into_iter().chain(hosts.into_iter().flatten())
    }

    /// The first pool-core pool (the only one, or the first host's).
    fn first(&self) -> &Pool<PgManager> {
        match &self.inner {
            Inner::One { pool, .. } => pool,
            Inner::Hosts(hosts) => &hosts.members[0].pool,
        }
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
    /// [`pool_core::Pool::get`]. Over several hosts, from one whose role
    /// serves the pool's `target_session_attrs` (by default `read-write`:
    /// the primary).
    ///
    /// # Errors
    ///
    /// As [`pool_core::Pool::get`]: a timeout naming its phase and the
    /// server's last error (for instance "password authentication failed"
    /// or "sorry, too many clients already"), `Closed`, `Overloaded`, or the
    /// connect error itself. Over several hosts, `NoneEligible` naming what
    /// each host was seen as when none had the role within
    /// `acquire_timeout` (a failover under way, the primary down).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`pool_core::Pool::get`].
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<Client, PoolError>> + Send + '_ {
        let location = Location::caller();
        async move {
            match &self.inner {
                Inner::One { pool, .. } => pool.get_at(location).await.map(Client::new),
                // The waits of routing are boxed: large, and they would sit
                // in the future of every checkout of a one-host pool too.
                Inner::Hosts(hosts) => {
                    if let Some(got) = hosts.at_once(hosts.target, location).await {
                        return got;
                    }
                    let routed = Box::pin(hosts.get(hosts.target, location));
                    routed.await
                }
            }
        }
    }

    /// Borrows a connection for reading: from a standby if one can serve
    /// (up, within `max_replica_lag`, not exhausted), else from the
    /// primary; `target_session_attrs=prefer-standby`. Over one host
    /// without a target, the same as [`get`](Self::get).
    ///
    /// A standby serves what it has replayed: a read right after a write
    /// on the primary may not see it (read that from [`get`](Self::get)).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`get`](Self::get).
    #[track_caller]
    pub fn read(&self) -> impl Future<Output = Result<Client, PoolError>> + Send + '_ {
        self.get_for(TargetSessionAttrs::PreferStandby)
    }

    /// Borrows a connection from a server that serves `target`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get); and, over one host without
    /// `target_session_attrs` (whose role the pool does not check),
    /// `NoneEligible` for any target but `any` and `prefer-standby`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`get`](Self::get).
    #[track_caller]
    pub fn get_for(
        &self,
        target: TargetSessionAttrs,
    ) -> impl Future<Output = Result<Client, PoolError>> + Send + '_ {
        let location = Location::caller();
        async move {
            match &self.inner {
                Inner::Hosts(hosts) => {
                    if let Some(got) = hosts.at_once(target, location).await {
                        return got;
                    }
                    let routed = Box::pin(hosts.get(target, location));
                    routed.await
                }
                Inner::One { pool, .. }
                    if matches!(target, TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby) =>
                {
                    pool.get_at(location).await.map(Client::new)
                }
                Inner::One { .. } => Err(pool_core::Error::NoneEligible {
                    wanted: format!("a server for target_session_attrs={target}"),
                    seen: String::from(
                        "this pool has one host and no target_session_attrs, so it does not check roles; \
                         set target_session_attrs or list several hosts in the URL",
                    ),
                    elapsed: Duration::ZERO,
                }),
            }
        }
    }

    /// Shared mode: autocommit statements from any number of tasks
    /// pipelined over a few of this pool's connections (at most
    /// `shared_connections`, counted in `max_size` with the exclusive
    /// checkouts). Over several hosts, on the pool's target, as
    /// [`get`](Self::get). See [`Shared`] for what it refuses.
    pub fn shared(&self) -> Shared {
        match &self.inner {
            Inner::One { lanes, .. } => Shared::one(Arc::clone(lanes)),
            Inner::Hosts(hosts) => Shared::routed(Arc::clone(hosts), hosts.target),
        }
    }

    /// Shared mode for reading: on a standby if one can serve, else on the
    /// primary (`prefer-standby`, as [`read`](Self::read)). Over one host
    /// without a target, the same as [`shared`](Self::shared).
    pub fn shared_read(&self) -> Shared {
        self.shared_for(TargetSessionAttrs::PreferStandby)
    }

    /// Shared mode on servers that serve `target`. Over one host without
    /// `target_session_attrs`, the same as [`shared`](Self::shared) (its
    /// role is not checked).
    pub fn shared_for(&self, target: TargetSessionAttrs) -> Shared {
        match &self.inner {
            Inner::One { lanes, .. } => Shared::one(Arc::clone(lanes)),
            Inner::Hosts(hosts) => Shared::routed(Arc::clone(hosts), target),
        }
    }

    /// What each host was seen as at its last check, in the URL's order
    /// (one entry, with no role, for a pool over one host without a target).
    pub fn hosts(&self) -> Vec<HostStatus> {
        match &self.inner {
            Inner::Hosts(hosts) => hosts.statuses(),
            Inner::One { pool, .. } => vec![HostStatus {
                host: crate::hosts::split::label(pool.manager().config(), 0),
                pool_name: pool.name().to_owned(),
                role: None,
                down: false,
                last_error: None,
                status: pool.status(),
            }],
        }
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
        let location = Location::caller();
        async move {
            match &self.inner {
                Inner::One { pool, .. } => pool.try_get_at(location).await.map(Client::new),
                // The waits of routing are boxed: large, and they would sit
                // in the future of every checkout of a one-host pool too.
                Inner::Hosts(hosts) => {
                    let routed = Box::pin(hosts.try_get(hosts.target, location));
                    routed.await
                }
            }
        }
    }

    /// The pool's counts; see [`Status`]. Over several hosts, their sums,
    /// with `max_size` the budget over all ([`hosts`](Self::hosts) has each).
    pub fn status(&self) -> Status {
        match &self.inner {
            Inner::One { pool, .. } => pool.status(),
            Inner::Hosts(hosts) => hosts.status(),
        }
    }

    /// The pool's name, as in logs and metric labels (over several hosts,
    /// each host's pool is named `{name}@{host}:{port}`).
    pub fn name(&self) -> &str {
        match &self.inner {
            Inner::One { pool, .. } => pool.name(),
            Inner::Hosts(hosts) => &hosts.name,
        }
    }

    /// Whether [`close`](PgPool::close) has been called.
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            Inner::One { pool, .. } => pool.is_closed(),
            Inner::Hosts(hosts) => hosts.is_closed(),
        }
    }

    /// Changes `max_size`; see [`pool_core::Pool::resize`]. Over several
    /// hosts, the budget over all; each host's share follows.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] if `max_size` is 0, below `min_idle`, or (over
    /// several hosts) below their number.
    pub fn resize(&self, max_size: usize) -> Result<(), BuildError> {
        match &self.inner {
            Inner::One { pool, .. } => pool.resize(max_size),
            Inner::Hosts(hosts) => hosts.resize(max_size),
        }
    }

    /// Closes the idle connections for which `keep` returns false; see
    /// [`pool_core::Pool::retain`].
    pub fn retain(&self, mut keep: impl FnMut(&PgConnection, &ResourceInfo) -> bool) {
        for pool in self.pools() {
            pool.retain(&mut keep);
        }
    }

    /// Closes every idle connection now and every borrowed one when it comes
    /// back (after a failover or a credentials change); see
    /// [`pool_core::Pool::evict_all`].
    pub fn evict_all(&self) {
        for lanes in self.lanes() {
            lanes.retire_all("evicted");
        }
        for pool in self.pools() {
            pool.evict_all();
        }
    }

    /// Closes the pool; see [`pool_core::Pool::close`].
    pub fn close(&self) {
        match &self.inner {
            Inner::One { pool, lanes, .. } => {
                lanes.close();
                pool.close();
            }
            Inner::Hosts(hosts) => hosts.close(),
        }
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
        self.close();
        let mut closed = Ok(());
        for pool in self.pools() {
            let left = timeout.saturating_sub(started.elapsed());
            closed = closed.and(pool.close_and_wait(left).await);
        }
        for pool in self.pools() {
            // Cancel requests for statements abandoned on the closed
            // connections must reach the server before the process may
            // exit; each is bounded.
            let left = timeout.saturating_sub(started.elapsed());
            if tokio::time::timeout(left, pool.manager().policy.side_tasks.settled()).await.is_err() {
                tracing::debug!(pool = %pool.name(), "closed with cancel requests still on their way");
            }
        }
        closed
    }

    /// What the pool was told stands between it and the server (`pooler`).
    pub fn pooler(&self) -> crate::Pooler {
        self.first().manager().policy.pooler
    }

    /// The tokio-postgres config the pool was built with (the password is
    /// hidden in its `Debug`); over several hosts, with all of them (each
    /// host's pool connects with its own host alone).
    pub fn postgres_config(&self) -> &tokio_postgres::Config {
        match &self.inner {
            Inner::One { pool, .. } => pool.manager().config(),
            Inner::Hosts(hosts) => &hosts.config,
        }
    }
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::One { pool, .. } => f
                .debug_struct("PgPool")
                .field("pool", pool)
                .field("manager", pool.manager())
                .finish_non_exhaustive(),
            Inner::Hosts(hosts) => f
                .debug_struct("PgPool")
                .field("name", &hosts.name)
                .field("target", &hosts.target)
                .field("hosts", &hosts.statuses())
                .field("manager", hosts.members[0].pool.manager())
                .finish_non_exhaustive(),
        }
    }
}

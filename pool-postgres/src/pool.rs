//! [`PgPool`] and [`PgPoolBuilder`]: a pool of PostgreSQL connections, built
//! from a URL, the environment, a config file or code.

use std::fmt::Write as _;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use pool_core::{CloseTimedOut, Observer, Pool, Status};
use serde::Deserialize;

use crate::client::Client;
use crate::error::ConfigError;
use crate::insight::Budget;
use crate::manager::PgManager;
use crate::recycling::Recycling;
use crate::registry::Registration;
use crate::settings::PoolSettings;
use crate::url;

/// What `get` fails with: pool-core's error over tokio-postgres's.
pub type PoolError = pool_core::Error<tokio_postgres::Error>;

/// Default number of prepared statements cached per connection.
pub const DEFAULT_STATEMENT_CACHE_SIZE: usize = 256;
/// Default `recycle_timeout` for PostgreSQL: a check before reuse that takes
/// longer than this means the connection (or the path to it) is stuck.
pub const DEFAULT_RECYCLE_TIMEOUT: Duration = Duration::from_secs(5);

/// A bounded pool of PostgreSQL connections. Cheap to clone; keep one per
/// process and database.
#[derive(Clone)]
pub struct PgPool {
    inner: Pool<PgManager>,
    _registration: Arc<Registration>,
}

/// A config-file section for a pool: the URL and the pool settings.
///
/// ```toml
/// [database]
/// url = "postgres://app@db.internal/app"
/// [database.pool]
/// max_size = 20
/// acquire_timeout = "5s"
/// ```
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PgConfig {
    /// The connection URL; pool parameters in its query string apply too
    /// (settings in `pool` win over them).
    pub url: String,
    /// The pool settings.
    #[serde(default)]
    pub pool: PoolSettings,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConfig").field("url", &"(hidden)").field("pool", &self.pool).finish()
    }
}

impl PgPool {
    /// Builds a pool from a `postgres://` URL, with pool settings in its
    /// query string (see [`PoolSettings`] for the list).
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

    /// Borrows a connection; see [`pool_core::Pool::get`].
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

    /// The pool's counts; see [`Status`].
    pub fn status(&self) -> Status {
        self.inner.status()
    }

    /// Closes the pool; see [`pool_core::Pool::close`].
    pub fn close(&self) {
        self.inner.close();
    }

    /// Closes the pool and waits for borrowed connections to come back; see
    /// [`pool_core::Pool::close_and_wait`].
    ///
    /// # Errors
    ///
    /// [`CloseTimedOut`] if connections are still out after `timeout`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe; the pool is closed from the first poll on.
    pub async fn close_and_wait(&self, timeout: Duration) -> Result<(), CloseTimedOut> {
        self.inner.close_and_wait(timeout).await
    }

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
        let limits = crate::insight::server_limits(&client).await.map_err(BudgetCheckError::Query)?;
        drop(client);
        let status = self.status();
        let own = i64::try_from(status.size).unwrap_or(i64::MAX);
        let budget = Budget::compute(&limits, instances, status.max_size, own);
        if budget.fits() {
            tracing::info!(pool = %self.inner.name(), %budget, "connection budget");
        } else {
            tracing::warn!(
                pool = %self.inner.name(),
                %budget,
                "this deployment's pools do not fit in the server's max_connections: lower max_size \
                 (connection_limit), run fewer instances, or put a pooler such as PgBouncer in between"
            );
        }
        Ok(budget)
    }

    /// The generic pool underneath, for `resize`, `retain`, `evict_all`...
    pub fn inner(&self) -> &Pool<PgManager> {
        &self.inner
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

/// Configures a [`PgPool`]. Start with [`PgPool::builder`],
/// [`PgPoolBuilder::from_url`] or [`PgPoolBuilder::from_env`].
#[must_use = "a builder does nothing until .build() is called"]
pub struct PgPoolBuilder {
    config: tokio_postgres::Config,
    settings: PoolSettings,
    observers: Vec<Arc<dyn Observer>>,
    tls: Tls,
}

/// How connections are encrypted, as decided by `sslmode` or [`PgPoolBuilder::tls`].
enum Tls {
    /// Plain TCP (or `prefer` without the `tls` feature).
    Off,
    #[cfg(feature = "tls")]
    On(crate::tls::MakeRustlsConnect),
}

impl PgPoolBuilder {
    fn new(config: tokio_postgres::Config) -> Self {
        Self { config, settings: PoolSettings::default(), observers: Vec::new(), tls: default_tls() }
    }

    /// A builder from a URL; pool parameters in its query string are applied.
    ///
    /// # Errors
    ///
    /// As [`PgPool::from_url`].
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let split = url::split(url)?;
        let config = tokio_postgres::Config::from_str(&split.postgres).map_err(|e| {
            // tokio-postgres's messages name the option, never the password.
            ConfigError::new("url", "(hidden)", crate::error::with_sources(&e))
        })?;
        let mut settings = PoolSettings::default();
        for (name, value) in &split.pool {
            settings.set(name, value)?;
        }
        let tls = tls_for(split.sslmode.as_deref(), split.sslrootcert.as_deref())?;
        Ok(Self { config, settings, observers: Vec::new(), tls })
    }

    /// A builder from the `DATABASE_URL` environment variable.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] if the variable is unset, not Unicode, or not a valid URL.
    pub fn from_env() -> Result<Self, ConfigError> {
        let url = std::env::var("DATABASE_URL").map_err(|e| {
            ConfigError::new(
                "DATABASE_URL",
                "(unset)",
                format!("{e}; set it to postgres://user:password@host:port/database"),
            )
        })?;
        Self::from_url(&url)
    }

    /// Applies every setting that is set in `settings` (over what the URL said).
    pub fn settings(mut self, settings: &PoolSettings) -> Self {
        macro_rules! take {
            ($($field:ident),*) => { $( if settings.$field.is_some() { self.settings.$field = settings.$field.clone(); } )* };
        }
        take!(
            max_size,
            acquire_timeout,
            create_timeout,
            socket_timeout,
            min_idle,
            idle_timeout,
            max_lifetime,
            statement_cache_size,
            statement_timeout,
            max_waiters,
            keepalive_interval,
            recycling,
            verify_idle_after,
            recycle_timeout,
            name,
            leak_detection_threshold
        );
        self
    }

    /// Most connections open at once (`connection_limit`). Default 10.
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.settings.max_size = Some(max_size);
        self
    }

    /// Longest wait in `get` (`pool_timeout`). Default 30 s.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.settings.acquire_timeout = Some(timeout);
        self
    }

    /// Idle connections kept ready. Default 0.
    pub fn min_idle(mut self, min_idle: usize) -> Self {
        self.settings.min_idle = Some(min_idle);
        self
    }

    /// Prepared statements cached per connection; 0 turns the cache off
    /// (needed behind PgBouncer in transaction mode). Default 256.
    pub fn statement_cache_size(mut self, size: usize) -> Self {
        self.settings.statement_cache_size = Some(size);
        self
    }

    /// The check before reuse; see [`Recycling`]. Default `Fast`.
    pub fn recycling(mut self, recycling: Recycling) -> Self {
        self.settings.recycling = Some(recycling);
        self
    }

    /// Server-side `statement_timeout` for every session of the pool.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.settings.statement_timeout = Some(timeout);
        self
    }

    /// The name for logs and metrics. Default: the database name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.settings.name = Some(name.into());
        self
    }

    /// Adds an observer (for instance pool-metrics').
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Changes the tokio-postgres config before connecting (TLS-free
    /// options: host, user, options, keepalives...).
    pub fn postgres_config(mut self, f: impl FnOnce(&mut tokio_postgres::Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Encrypts connections with this rustls configuration (cargo feature
    /// `tls`), overriding what `sslmode` chose; set `sslmode=require` in the
    /// config to refuse plain connections.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: rustls::ClientConfig) -> Self {
        self.tls = Tls::On(crate::tls::MakeRustlsConnect::new(config));
        self
    }

    /// Builds the pool. Adds what a service wants by default: an
    /// `application_name` (the program's name) so `pg_stat_activity` shows
    /// who holds connections, TCP keepalive probes after 30 s idle so dead
    /// peers are noticed, and the `statement_timeout` if set. Logs a warning
    /// (once) if this process already has a pool for the same server,
    /// database and user: the usual cause of "too many clients".
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming any setting out of range.
    pub fn build(self) -> Result<PgPool, ConfigError> {
        let Self { mut config, settings, observers, tls } = self;
        if config.get_application_name().is_none() {
            config.application_name(default_application_name());
        }
        if config.get_keepalives_idle() >= Duration::from_secs(7200) {
            config.keepalives_idle(Duration::from_secs(30));
            config.keepalives_interval(Duration::from_secs(10));
            config.keepalives_retries(3);
        }
        if let Some(timeout) = settings.statement_timeout {
            let mut options = config.get_options().unwrap_or_default().to_owned();
            if !options.is_empty() {
                options.push(' ');
            }
            let _ = write!(options, "-c statement_timeout={}", timeout.as_millis().max(1));
            config.options(&options);
        }
        if let Some(create) = settings.create_timeout
            && config.get_connect_timeout().is_none()
        {
            config.connect_timeout(create);
        }
        let mut manager = PgManager::new(config);
        manager.recycling = settings.recycling.unwrap_or_default();
        manager.verify_idle_after = settings.verify_idle_after.unwrap_or(manager.verify_idle_after);
        manager.statement_cache_size = settings.statement_cache_size.unwrap_or(DEFAULT_STATEMENT_CACHE_SIZE);
        manager.socket_timeout = settings.socket_timeout;
        match tls {
            Tls::Off => {}
            #[cfg(feature = "tls")]
            Tls::On(connector) => manager.tls = Some(connector),
        }
        let target = crate::registry::Target::of(manager.config());
        let name = settings.name.clone().unwrap_or_else(|| target.dbname.clone());

        let mut builder = Pool::builder(manager)
            .name(name)
            .recycle_timeout(settings.recycle_timeout.unwrap_or(DEFAULT_RECYCLE_TIMEOUT))
            .create_timeout(settings.create_timeout)
            .keepalive_interval(settings.keepalive_interval)
            .max_waiters(settings.max_waiters)
            .leak_detection_threshold(settings.leak_detection_threshold);
        if let Some(n) = settings.max_size {
            builder = builder.max_size(n);
        }
        if let Some(n) = settings.min_idle {
            builder = builder.min_idle(n);
        }
        if let Some(t) = settings.acquire_timeout {
            builder = builder.acquire_timeout(t);
        }
        if let Some(t) = settings.idle_timeout {
            builder = builder.idle_timeout(t);
        }
        if let Some(t) = settings.max_lifetime {
            builder = builder.max_lifetime(t);
        }
        for observer in observers {
            builder = builder.observer(observer);
        }
        let inner = builder.build()?;
        let registration = Arc::new(Registration::register(target, inner.name()));
        Ok(PgPool { inner, _registration: registration })
    }
}

/// The running program's file name, for `application_name`.
fn default_application_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .or_else(|| std::env::args().next())
        .unwrap_or_else(|| String::from("pool-postgres"))
        .chars()
        .take(63)
        .collect()
}

/// Without an `sslmode`: TLS if the server offers it (with the `tls`
/// feature), as libpq's default `prefer`.
fn default_tls() -> Tls {
    tls_for(None, None).unwrap_or(Tls::Off)
}

/// The encryption `sslmode` (and `sslrootcert`) ask for.
fn tls_for(sslmode: Option<&str>, sslrootcert: Option<&str>) -> Result<Tls, ConfigError> {
    let mode = sslmode.unwrap_or("prefer");
    if mode == "disable" {
        return Ok(Tls::Off);
    }
    #[cfg(feature = "tls")]
    {
        use crate::tls::{Verify, connector};
        let verify = match mode {
            "verify-ca" => Verify::Chain,
            "verify-full" => Verify::ChainAndName,
            _ => Verify::Nothing,
        };
        Ok(Tls::On(connector(verify, sslrootcert.map(std::path::Path::new))?))
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = sslrootcert;
        if mode == "prefer" {
            return Ok(Tls::Off);
        }
        Err(ConfigError::new(
            "sslmode",
            mode,
            "needs TLS, and pool-postgres was built without its `tls` feature; enable it in Cargo.toml",
        ))
    }
}

/// [`PgPool::check_budget`] could not read the server's limits.
#[derive(Debug)]
#[non_exhaustive]
pub enum BudgetCheckError {
    /// No connection could be had.
    Pool(PoolError),
    /// The server refused the query.
    Query(tokio_postgres::Error),
}

impl std::fmt::Display for BudgetCheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pool(e) => write!(f, "checking the connection budget: {e}"),
            Self::Query(e) => {
                write!(f, "checking the connection budget: {}", crate::error::with_sources(e))
            }
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

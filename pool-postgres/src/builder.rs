//! [`PgPoolBuilder`]: a [`PgPool`] from a URL, the environment, a config
//! file or code. Its setters, one per setting, are generated from the
//! settings table (see [`crate::settings`]); this file applies the table's
//! values, one line each, and adds what the table cannot say (TLS,
//! observers, tokio-postgres options).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use pool_core::{ErrorChain, Observer, Pool};

use crate::config_error::ConfigError;
use crate::liveness::Liveness;
use crate::manager::PgManager;
use crate::policy::StatementPolicy;
use crate::pool::PgPool;
use crate::postgres_checks::{self, When};
use crate::recycling::Recycling;
use crate::registry::{Registration, Target};
pub(crate) use crate::settings::Effective;
use crate::settings::PoolSettings;
use crate::side_channel::SideChannel;
use crate::target::TargetSessionAttrs;
use crate::url;

/// Configures a [`PgPool`]. Start with [`PgPool::builder`],
/// [`PgPoolBuilder::from_url`] or [`PgPoolBuilder::from_env`]; every
/// setting of [`PoolSettings`] has a setter of the same name.
#[must_use = "a builder does nothing until .build() is called"]
pub struct PgPoolBuilder {
    config: tokio_postgres::Config,
    pub(crate) settings: PoolSettings,
    observers: Vec<Arc<dyn Observer>>,
    tls: Tls,
}

/// How connections are encrypted, as decided by `sslmode` or [`PgPoolBuilder::tls`].
#[derive(Clone)]
pub(crate) enum Tls {
    /// Plain TCP (or `prefer` without the `tls` feature).
    Off,
    #[cfg(feature = "tls")]
    On(crate::tls::MakeRustlsConnect),
}

impl PgPoolBuilder {
    pub(crate) fn new(config: tokio_postgres::Config) -> Self {
        Self { config, settings: PoolSettings::default(), observers: Vec::new(), tls: default_tls() }
    }

    /// A builder from a URL; pool parameters in its query string are applied.
    ///
    /// # Errors
    ///
    /// As [`PgPool::from_url`].
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let split = if crate::key_value::is_key_value(url) {
            crate::key_value::split(url)?
        } else {
            url::split(url)?
        };
        let config = tokio_postgres::Config::from_str(&split.postgres).map_err(|e| {
            // tokio-postgres's messages name the option, never the password.
            ConfigError::new("url", "(hidden)", ErrorChain(&e).to_string())
        })?;
        postgres_checks::check(&config, When::Parsed)?;
        let mut settings = PoolSettings::default();
        for (name, value) in &split.pool {
            settings.set_text(name, value)?;
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
        self.settings.overlay(settings);
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
    /// A [`ConfigError`] naming any setting out of range, whichever way it
    /// was given, and anything in the tokio-postgres config that would make
    /// every connect fail: no host, port 0, more ports than hosts (or
    /// fewer, but more than one), a NUL byte in a name, the password or
    /// `options`.
    pub fn build(self) -> Result<PgPool, ConfigError> {
        let Self { config, settings, observers, tls } = self;
        postgres_checks::check(&config, When::Built)?;
        let s = settings.checked()?.effective();
        let target = s.target_session_attrs.or_else(|| driver_target(&config));
        if config.get_hosts().len() > 1 || target.is_some_and(|t| t != TargetSessionAttrs::Any) {
            let target = target.unwrap_or(TargetSessionAttrs::ReadWrite);
            return crate::hosts::build(config, &s, target, &observers, &tls);
        }
        let limits = lane_limits(&s);
        let (inner, registration) = build_one(config, s, &observers, &tls, None)?;
        let lanes = crate::pipelined::Lanes::new(inner.clone(), limits);
        Ok(PgPool::one(inner, lanes, registration))
    }
}

/// Shared mode's limits for one pool-core pool of these settings.
pub(crate) fn lane_limits(s: &Effective) -> crate::pipelined::LaneLimits {
    crate::pipelined::LaneLimits {
        lanes: s.shared_connections.min(s.max_size),
        per_lane: s.shared_in_flight,
        acquire_timeout: s.acquire_timeout,
        rotate_after: s.leak_detection_threshold.map(|threshold| threshold / 2),
    }
}

/// What a tokio-postgres config given to [`PgPool::builder`] asks for.
fn driver_target(config: &tokio_postgres::Config) -> Option<TargetSessionAttrs> {
    match config.get_target_session_attrs() {
        tokio_postgres::config::TargetSessionAttrs::ReadWrite => Some(TargetSessionAttrs::ReadWrite),
        tokio_postgres::config::TargetSessionAttrs::ReadOnly => Some(TargetSessionAttrs::ReadOnly),
        _ => None,
    }
}

/// One pool-core pool over one server (or over what the driver makes of a
/// host list): the whole of a one-host [`PgPool`], and each host's pool of
/// a pool over several. `role_doubt` is the checking task's wake-up, for
/// the latter.
pub(crate) fn build_one(
    mut config: tokio_postgres::Config,
    s: Effective,
    observers: &[Arc<dyn Observer>],
    tls: &Tls,
    role_doubt: Option<Arc<tokio::sync::Notify>>,
) -> Result<(Pool<PgManager>, Registration), ConfigError> {
    if config.get_application_name().is_none() {
        config.application_name(default_application_name());
    }
    if config.get_keepalives_idle() >= Duration::from_secs(7200) {
        config.keepalives_idle(Duration::from_secs(30));
        config.keepalives_interval(Duration::from_secs(10));
        config.keepalives_retries(3);
    }
    if let Some(timeout) = s.statement_timeout {
        append_option(&mut config, &format!("-c statement_timeout={}", timeout.as_millis().max(1)));
    }
    if let Some(create) = s.create_timeout
        && config.get_connect_timeout().is_none()
    {
        config.connect_timeout(create);
    }

    if s.pooler.transaction_mode() {
        refuse_what_a_transaction_pooler_cannot_take(&config, &s)?;
    }
    let target = Target::of(&config);
    let name = if s.name.is_empty() { target.dbname.clone() } else { s.name };
    let mut manager = PgManager::new(config);
    manager.recycling = s.recycling;
    manager.verify_idle_after = s.verify_idle_after;
    manager.statement_cache_size = s.statement_cache_size;
    let side_channel = match tls.clone() {
        Tls::Off => SideChannel::Plain,
        #[cfg(feature = "tls")]
        Tls::On(connector) => {
            manager.tls = Some(connector.clone());
            SideChannel::Tls(connector)
        }
    };
    let liveness = s
        .liveness_check_after
        .filter(|_| !s.pooler.transaction_mode())
        .map(|after| Arc::new(Liveness::new(after, &manager.config, side_channel.clone())));
    manager.policy = Arc::new(StatementPolicy {
        socket_timeout: s.socket_timeout,
        pooler: s.pooler,
        session_state: s.pooler_session_state,
        pool_name: name.clone(),
        liveness,
        side_tasks: Arc::default(),
        side_channel,
        role_doubt,
    });
    let mut builder = Pool::builder(manager)
        .name(name)
        .max_size(s.max_size)
        .min_idle(s.min_idle)
        .max_concurrent_creates(s.max_concurrent_creates)
        .acquire_timeout(s.acquire_timeout)
        .create_timeout(s.create_timeout)
        .recycle_timeout(s.recycle_timeout)
        .idle_timeout(s.idle_timeout)
        .max_lifetime(s.max_lifetime)
        .keepalive_interval(s.keepalive_interval)
        .max_waiters(s.max_waiters)
        .leak_detection_threshold(s.leak_detection_threshold)
        .reuse(s.reuse);
    for observer in observers {
        builder = builder.observer(Arc::clone(observer));
    }
    let inner = builder.build()?;
    let registration = Registration::register(target, inner.name());
    Ok((inner, registration))
}

/// Settings that make every connect or every reuse fail behind a
/// transaction pooler, refused when the pool is built instead.
fn refuse_what_a_transaction_pooler_cannot_take(
    config: &tokio_postgres::Config,
    s: &Effective,
) -> Result<(), ConfigError> {
    if let Some(timeout) = s.statement_timeout {
        return Err(ConfigError::new(
            "statement_timeout",
            format!("{timeout:?}"),
            "cannot be set behind a transaction pooler (pooler=transaction, pgbouncer=true): it travels in the \
             `options` startup parameter, which PgBouncer refuses, so every connect would fail; set it on the \
             role instead (ALTER ROLE ... SET statement_timeout = '5s') or with SET LOCAL in each transaction",
        ));
    }
    if config.get_options().is_some() {
        return Err(ConfigError::new(
            "options",
            "(not shown)",
            "cannot be sent through a transaction pooler (pooler=transaction, pgbouncer=true): PgBouncer \
             refuses the `options` startup parameter, so every connect would fail; set these on the role \
             (ALTER ROLE ... SET) instead",
        ));
    }
    if s.recycling == Recycling::Clean {
        return Err(ConfigError::new(
            "recycling",
            "clean",
            "cannot be used behind a transaction pooler (pooler=transaction, pgbouncer=true): its DISCARD ALL \
             would reset whichever server session the pooler picks, which other clients use; the pooler \
             resets server sessions itself",
        ));
    }
    Ok(())
}

/// Adds `option` to the `options` startup parameter.
fn append_option(config: &mut tokio_postgres::Config, option: &str) {
    let mut options = config.get_options().unwrap_or_default().to_owned();
    if !options.is_empty() {
        options.push(' ');
    }
    options.push_str(option);
    config.options(&options);
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

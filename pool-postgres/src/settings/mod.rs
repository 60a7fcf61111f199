//! The pool's settings: one table, read from a URL's query string, a
//! config file or the builder, by one set of rules.
//!
//! Each row of the table below names a setting once: its field and type,
//! the rule its values follow (see [`rules`]), its default, and every name
//! it answers to (ours, Prisma's, pgx's). [`generate`] turns the table into
//! the public [`PoolSettings`], the builder's setters and the readers, so
//! adding a setting is one row here and one line where
//! [`PgPoolBuilder::build`](crate::PgPoolBuilder::build) applies it.

mod file;
mod generate;
#[cfg(test)]
mod paths_tests;
mod rules;

use std::time::Duration;

use pool_core::Reuse;

use crate::config_error::ConfigError;
use crate::hosts::LoadBalance;
use crate::pooler::{Pooler, SessionStatePolicy};
use crate::recycling::Recycling;
use crate::target::TargetSessionAttrs;
use rules::{
    AtLeastOne, Count, Limit, LoadBalanceRule, Name, PoolerRule, Positive, RecyclingRule, ReuseRule, Rule,
    ServerTimeout, SessionStateRule, Span, TargetRule, ZeroIsOff,
};

pub use file::PgConfig;

/// Default number of prepared statements cached per connection.
pub const DEFAULT_STATEMENT_CACHE_SIZE: usize = 256;
/// Default `recycle_timeout` for PostgreSQL: a check before reuse that takes
/// longer than this means the connection (or the path to it) is stuck.
pub const DEFAULT_RECYCLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `verify_idle_after`: connections idle longer get a round trip before reuse.
pub const DEFAULT_VERIFY_IDLE_AFTER: Duration = Duration::from_secs(1);
/// Default `host_recheck_interval`: how often a pool over several hosts
/// checks their roles (Npgsql's `Host Recheck Seconds` is 10 too).
pub const DEFAULT_HOST_RECHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Default `liveness_check_after`: a statement unanswered this long gets its
/// session looked at from the side (the `liveness_check_after` setting).
pub const DEFAULT_LIVENESS_CHECK_AFTER: Duration = Duration::from_secs(2);

/// Default `shared_connections`: shared mode's connections, enough to
/// keep both cores of a small machine busy with pipelines, few enough to
/// leave most of a pool of 10 to exclusive checkouts.
pub const DEFAULT_SHARED_CONNECTIONS: usize = 4;
/// Default `shared_in_flight`: statements pipelined on one shared connection.
pub const DEFAULT_SHARED_IN_FLIGHT: usize = 32;

generate::pool_settings! {
    /// Most connections open at once, in use and idle.
    max_size: usize, AtLeastOne,
        default pool_core::DEFAULT_MAX_SIZE => "10",
        names ["connection_limit", "pool_max_conns"];
    /// Most connections being opened at once: a burst, or a fleet of
    /// instances starting together, opens this many at a time per pool, and a
    /// full server refuses at most this many before the pool cools down.
    max_concurrent_creates: usize, AtLeastOne,
        default pool_core::DEFAULT_MAX_CONCURRENT_CREATES => "2",
        names ["max_concurrent_creates"];
    /// Idle connections kept open and ready.
    min_idle: usize, Count,
        default 0 => "0",
        names ["min_idle", "pool_min_idle_conns"];
    /// Longest wait in `get` for a connection; never infinite.
    acquire_timeout: Duration, Positive,
        default pool_core::DEFAULT_ACQUIRE_TIMEOUT => "30 s",
        names ["pool_timeout"];
    /// Longest time to open one connection, TLS and authentication included;
    /// `0`/`off`: bounded only by `pool_timeout`.
    create_timeout: Option<Duration>, ZeroIsOff,
        default None => "`pool_timeout`",
        names ["connect_timeout"];
    /// Longest time one statement may take through the client guard before
    /// the connection is given up; `0`/`off`: no limit.
    socket_timeout: Option<Duration>, ZeroIsOff,
        default None => "off",
        names ["socket_timeout"];
    /// Close connections idle this long; `0`/`off`: never.
    idle_timeout: Option<Duration>, ZeroIsOff,
        default Some(pool_core::DEFAULT_IDLE_TIMEOUT) => "10 min",
        names ["idle_timeout", "pool_max_conn_idle_time"];
    /// Close connections this old (when idle or returned); `0`/`off`: never.
    max_lifetime: Option<Duration>, ZeroIsOff,
        default Some(pool_core::DEFAULT_MAX_LIFETIME) => "30 min",
        names ["max_lifetime", "pool_max_conn_lifetime"];
    /// Prepared statements cached per connection; `0` turns the cache off.
    statement_cache_size: usize, Count,
        default DEFAULT_STATEMENT_CACHE_SIZE => "256",
        names ["statement_cache_size"];
    /// The server's `statement_timeout` for every session of the pool
    /// (at most 2147483647 ms, the server's limit); `0`/`off`: the server's own setting.
    statement_timeout: Option<Duration>, ServerTimeout,
        default None => "the server's",
        names ["statement_timeout"];
    /// Refuse `get` at once when this many tasks wait already; `off`: no limit.
    max_waiters: Option<usize>, Limit,
        default None => "off",
        names ["max_waiters"];
    /// Check idle connections in the background this often; `0`/`off`: never.
    keepalive_interval: Option<Duration>, ZeroIsOff,
        default None => "off",
        names ["keepalive_interval", "pool_health_check_period"];
    /// The check before reuse: `fast`, `verified` or `clean` (see [`Recycling`]).
    recycling: Recycling, RecyclingRule,
        default Recycling::Fast => "`fast`",
        names ["recycling"];
    /// With `recycling=fast`, verify a connection with a round trip before
    /// reuse when it sat idle this long.
    verify_idle_after: Duration, Span,
        default DEFAULT_VERIFY_IDLE_AFTER => "1 s",
        names ["verify_idle_after"];
    /// Longest check of a connection before reuse.
    recycle_timeout: Duration, Positive,
        default DEFAULT_RECYCLE_TIMEOUT => "2 s",
        names ["recycle_timeout"];
    /// When a statement has had no answer this long, ask the server from
    /// a side connection whether it is still running it: if not (it
    /// finished, or never got it), the path to the server is dead and the
    /// statement fails at once instead of hanging; long statements the
    /// server is running are left alone. `0`/`off`: never. Not behind a
    /// transaction pooler (there, set `socket_timeout`).
    liveness_check_after: Option<Duration>, ZeroIsOff,
        default Some(DEFAULT_LIVENESS_CHECK_AFTER) => "2 s",
        names ["liveness_check_after"];
    /// The pool's name in logs and metric labels.
    name: String, Name,
        default String::new() => "the database name",
        names ["pool_name"];
    /// Warn when a connection has been held this long; `0`/`off`: never.
    leak_detection_threshold: Option<Duration>, ZeroIsOff,
        default None => "off",
        names ["leak_detection_threshold"];
    /// Which idle connection `get` takes: `lifo` (most recently returned,
    /// so surplus ones idle out) or `fifo` (spreads use over all).
    reuse: Reuse, ReuseRule,
        default Reuse::Lifo => "`lifo`",
        names ["reuse"];
    /// What stands between the pool and the server: `none`; `transaction`,
    /// a transaction pooler such as PgBouncer in transaction mode (Prisma's
    /// `pgbouncer=true` says the same): statements go out unnamed, session
    /// state is refused; or `transaction-prepared`, one that keeps prepared
    /// statements (PgBouncer 1.21+ with `max_prepared_statements` > 0). See [`Pooler`].
    pooler: Pooler, PoolerRule,
        default Pooler::None => "`none`",
        names ["pooler", "pgbouncer"];
    /// Behind a transaction pooler, what happens to a statement that would
    /// leave session state (`SET`, `LISTEN`, ...): `refuse` or `warn`.
    pooler_session_state: SessionStatePolicy, SessionStateRule,
        default SessionStatePolicy::Refuse => "`refuse`",
        names ["pooler_session_state"];
    /// Which server `get` takes a connection from, by role: libpq's `any`,
    /// `read-write`, `read-only`, `primary`, `standby` or `prefer-standby`
    /// (see [`TargetSessionAttrs`]). Set, or with several hosts, the pool
    /// learns each server's role and routes every checkout by it.
    target_session_attrs: Option<TargetSessionAttrs>, TargetRule,
        default None => "`read-write` with several hosts, else `any`",
        names ["target_session_attrs"];
    /// With several servers of the role a checkout asks for, which one it
    /// takes: `least-loaded` (the fewest connections in use for its share
    /// of the budget), `random`, or `disable` (the first in the URL's order).
    load_balance_hosts: LoadBalance, LoadBalanceRule,
        default LoadBalance::LeastLoaded => "`least-loaded`",
        names ["load_balance_hosts"];
    /// How often a pool over several hosts checks each server's role (and a
    /// standby's lag); a refused write (25006) or a lost connection checks
    /// at once. A server that does not answer is checked again after a
    /// back-off (1 s doubling, at most this interval).
    host_recheck_interval: Duration, Positive,
        default DEFAULT_HOST_RECHECK_INTERVAL => "10 s",
        names ["host_recheck_interval", "host_recheck_seconds"];
    /// Skip standbys whose replay is further behind than this (seen at the
    /// last check); `0`/`off`: never.
    max_replica_lag: Option<Duration>, ZeroIsOff,
        default None => "off",
        names ["max_replica_lag"];
    /// Most connections shared mode ([`PgPool::shared`](crate::PgPool::shared))
    /// holds at once, out of `max_size` (at most `max_size`; over several
    /// hosts, per host).
    shared_connections: usize, AtLeastOne,
        default DEFAULT_SHARED_CONNECTIONS => "4",
        names ["shared_connections"];
    /// Most statements pipelined on one shared connection at once; more
    /// wait their turn.
    shared_in_flight: usize, AtLeastOne,
        default DEFAULT_SHARED_IN_FLIGHT => "32",
        names ["shared_in_flight"];
}

/// What a builder setter takes for a setting of type `T`: the value itself,
/// and for optional durations a plain `Duration`, for names a `&str`.
pub trait IntoSetting<T> {
    /// The setting's value.
    fn into_setting(self) -> T;
}

impl<T> IntoSetting<T> for T {
    fn into_setting(self) -> T {
        self
    }
}

impl IntoSetting<Option<Duration>> for Duration {
    fn into_setting(self) -> Option<Duration> {
        Some(self)
    }
}

impl IntoSetting<Option<TargetSessionAttrs>> for TargetSessionAttrs {
    fn into_setting(self) -> Option<TargetSessionAttrs> {
        Some(self)
    }
}

impl IntoSetting<String> for &str {
    fn into_setting(self) -> String {
        self.to_owned()
    }
}

/// One row of the table: the field and every name it answers to (the URL
/// parameter first).
#[derive(Debug)]
pub(crate) struct Parameter {
    pub(crate) field: &'static str,
    pub(crate) names: &'static [&'static str],
}

/// The row a name belongs to.
pub(crate) fn lookup(name: &str) -> Option<&'static Parameter> {
    PARAMETERS.iter().find(|p| p.names.contains(&name))
}

/// Names come from the user's text; keep them short in messages.
fn shorten(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, value: &str) -> Result<PoolSettings, ConfigError> {
        let mut s = PoolSettings::default();
        s.set_text(name, value).map(|()| s)
    }

    #[test]
    fn prisma_parameters_map_to_pool_settings() {
        assert_eq!(set("connection_limit", "5").unwrap().max_size, Some(5));
        assert_eq!(set("pool_timeout", "2").unwrap().acquire_timeout, Some(Duration::from_secs(2)));
        assert_eq!(
            set("connect_timeout", "1.5").unwrap().create_timeout,
            Some(Some(Duration::from_millis(1500)))
        );
        assert_eq!(
            set("socket_timeout", "250ms").unwrap().socket_timeout,
            Some(Some(Duration::from_millis(250)))
        );
    }

    #[test]
    fn bad_values_name_the_parameter_and_the_value() {
        for (name, value, needle) in [
            ("connection_limit", "0", "at least 1"),
            ("connection_limit", "ten", "whole number"),
            ("pool_timeout", "abc", "must be a duration"),
            ("pool_timeout", "-1", "negative"),
            ("pool_timeout", "0", "never waits forever"),
            ("idle_timeout", "5 parsecs", "unit"),
            ("recycling", "sometimes", "fast, verified, clean"),
            ("max_waiters", "0", "at least 1"),
            ("pool_name", "", "empty"),
        ] {
            let err = set(name, value).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(name) && text.contains(value) && text.contains(needle), "{text}");
        }
    }

    #[test]
    fn zero_or_off_switches_optional_limits_off() {
        assert_eq!(set("idle_timeout", "0").unwrap().idle_timeout, Some(None));
        assert_eq!(set("max_lifetime", "off").unwrap().max_lifetime, Some(None));
        assert_eq!(set("max_lifetime", "10m").unwrap().max_lifetime, Some(Some(Duration::from_secs(600))));
        assert_eq!(set("statement_timeout", "0").unwrap().effective().statement_timeout, None);
    }

    #[test]
    fn every_name_of_a_setting_counts_once() {
        let mut s = PoolSettings::default();
        s.set_text("connection_limit", "5").unwrap();
        let err = s.set_text("max_size", "6").unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
    }

    #[test]
    fn unknown_names_are_refused_without_their_value() {
        let err = set("conection_limit", "hunter2").unwrap_err();
        assert!(err.to_string().contains("conection_limit"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn names_belong_to_one_setting_each() {
        let mut owner = std::collections::HashMap::new();
        for parameter in PARAMETERS {
            for name in parameter.names {
                let first = owner.entry(*name).or_insert(parameter.field);
                assert_eq!(*first, parameter.field, "{name} names two settings");
            }
        }
    }
}

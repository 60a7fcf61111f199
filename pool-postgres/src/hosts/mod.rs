//! [`Hosts`]: one pool over several servers (a primary and its standbys,
//! or any list of hosts), routing each checkout by the role it asks for.
//!
//! # The algorithm
//!
//! - **One pool per host, one budget.** Each host gets a pool-core pool of
//!   its own (named `{pool}@{host}:{port}`, so logs and metrics are per
//!   host); `connection_limit` is what the whole [`PgPool`](crate::PgPool)
//!   may hold, split evenly over the hosts. A host found down keeps a share
//!   of one (enough for its next check) and the hosts that are up share
//!   the rest, so the service holds no more than `connection_limit` in all
//!   (a share that shrinks is given back as its connections come home; see
//!   [`split`]).
//! - **Roles are learned, not assumed.** A task of the pool checks every
//!   host's role ([`Role`]: `pg_is_in_recovery()`,
//!   `default_transaction_read_only`, and a standby's replay lag) on one of
//!   that host's own pooled connections, at the start, every
//!   `host_recheck_interval`, and at once when a statement is refused as a
//!   write on a read-only server (25006) or a connection is lost. A host
//!   that does not answer is down until a later check finds it, with a
//!   back-off between checks. See [`recheck`].
//! - **Each checkout is routed** ([`route`]): the hosts whose role serves
//!   its [`TargetSessionAttrs`] (with `prefer-standby`, the primary after
//!   the standbys), in the order `load_balance_hosts` gives; the first with
//!   an idle connection or a free slot serves it; if all are busy, it waits
//!   in the queue of the first; if none has the role (a failover under
//!   way), it waits for the next check, all within `acquire_timeout`.
//!
//! # Invariants
//!
//! - A connection is handed out only from a host whose last check found a
//!   role that serves the checkout's target. Between checks a server can
//!   change its role (a promotion): a standby promoted still serves reads
//!   until the check moves them; a primary demoted must restart, which ends
//!   its connections, and its pool is emptied when the check sees it.
//! - Writes are refused by the server itself on a standby (25006), and that
//!   refusal triggers a check: no write is ever taken by a server of the
//!   wrong role. Two servers that both claim to be the primary (a split
//!   brain) are not told apart: writes go to the first in the URL's order.
//! - The per-host shares always add up to the pool's `max_size`.

mod balance;
mod recheck;
mod route;
pub(crate) mod split;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use pool_core::{Observer, Pool, Status};
use tokio::sync::Notify;
use tokio::time::Instant;

pub use balance::LoadBalance;

use crate::builder::{Effective, Tls, build_one};
use crate::config_error::ConfigError;
use crate::manager::PgManager;
use crate::pool::PgPool;
use crate::registry::Registration;
use crate::target::{Role, TargetSessionAttrs};

/// The counter of role checks of a pool over several hosts, labelled
/// `pool` (the host's pool, `{pool}@{host}:{port}`) and `role` (`primary`,
/// `standby` or `down`), through the `metrics` facade.
pub const HOST_CHECK_METRIC: &str = "pool_host_checks_total";
/// The gauge of a standby's replay lag in seconds at its last check,
/// labelled `pool` as [`HOST_CHECK_METRIC`].
pub const REPLICA_LAG_METRIC: &str = "pool_replica_lag_seconds";

/// A pool over several hosts; see the module docs.
pub(crate) struct Hosts {
    pub(crate) name: String,
    pub(crate) members: Vec<Arc<Member>>,
    /// What `get` asks for.
    pub(crate) target: TargetSessionAttrs,
    pub(crate) balance: LoadBalance,
    pub(crate) max_lag: Option<Duration>,
    pub(crate) recheck_interval: Duration,
    pub(crate) acquire_timeout: Duration,
    /// The budget over all hosts (`connection_limit`).
    pub(crate) max_size: AtomicUsize,
    pub(crate) min_idle: usize,
    /// Woken when a check changed what routing sees.
    pub(crate) changed: Notify,
    /// Wakes the checking task: a statement found a reason to doubt a role.
    pub(crate) doubt: Arc<Notify>,
    /// Round robin among equals.
    pub(crate) turn: AtomicUsize,
    pub(crate) rechecks: OnceLock<tokio::task::AbortHandle>,
    pub(crate) config: tokio_postgres::Config,
    pub(crate) closed: AtomicBool,
}

/// One host of a [`Hosts`] pool.
pub(crate) struct Member {
    /// `host:port`, as in logs and in [`HostStatus::host`].
    pub(crate) label: String,
    pub(crate) pool: Pool<PgManager>,
    /// Its pool's shared connections ([`crate::pipelined`]).
    pub(crate) lanes: Arc<crate::pipelined::Lanes>,
    pub(crate) seen: Mutex<Seen>,
    pub(crate) _registration: Registration,
}

/// What the last checks found of a host.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    /// `None` before the first answer, and while the host is down.
    pub(crate) role: Option<Role>,
    /// Consecutive failed checks; 0 when the last one answered.
    pub(crate) failures: u32,
    /// Not checked again before this (the back-off of a host that is down).
    pub(crate) next_check: Option<Instant>,
    /// Why the last check failed, for errors and [`HostStatus`].
    pub(crate) last_error: Option<String>,
}

impl Member {
    pub(crate) fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// One host of a pool over several hosts, as [`PgPool::hosts`](crate::PgPool::hosts) reports it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HostStatus {
    /// `host:port`.
    pub host: String,
    /// The host's pool's name (`{pool}@{host}:{port}`), as in logs and
    /// metric labels.
    pub pool_name: String,
    /// The role its last check found; `None` before the first answer and
    /// while it is down.
    pub role: Option<Role>,
    /// Whether its last check failed (the host is skipped).
    pub down: bool,
    /// Why its last check failed.
    pub last_error: Option<String>,
    /// Its pool's counts; `max_size` is its share of the budget.
    pub status: Status,
}

/// Builds a pool over the hosts of `config`, `get` asking for `target`.
pub(crate) fn build(
    config: tokio_postgres::Config,
    s: &Effective,
    target: TargetSessionAttrs,
    observers: &[Arc<dyn Observer>],
    tls: &Tls,
) -> Result<PgPool, ConfigError> {
    let count = config.get_hosts().len();
    if s.max_size < count {
        return Err(ConfigError::new(
            "connection_limit",
            s.max_size.to_string(),
            format!("must be at least the number of hosts ({count}): each host's pool needs one connection"),
        ));
    }
    let name = if s.name.is_empty() { crate::registry::Target::of(&config).dbname } else { s.name.clone() };
    let doubt = Arc::new(Notify::new());
    let shares = split::shares(s.max_size, &vec![false; count]);
    let mut members = Vec::with_capacity(count);
    for (index, share) in shares.into_iter().enumerate() {
        let label = split::label(&config, index);
        let mut own = s.clone();
        own.max_size = share;
        own.min_idle = (s.min_idle / count).min(share);
        own.name = format!("{name}@{label}");
        let limits = crate::builder::lane_limits(&own);
        let (pool, registration) =
            build_one(split::one_host(&config, index), own, observers, tls, Some(Arc::clone(&doubt)))?;
        let lanes = crate::pipelined::Lanes::new(pool.clone(), limits);
        members.push(Arc::new(Member {
            label,
            pool,
            lanes,
            seen: Mutex::default(),
            _registration: registration,
        }));
    }
    Ok(PgPool::routed(Arc::new(Hosts {
        name,
        members,
        target,
        balance: s.load_balance_hosts,
        max_lag: s.max_replica_lag,
        recheck_interval: s.host_recheck_interval,
        acquire_timeout: s.acquire_timeout,
        max_size: AtomicUsize::new(s.max_size),
        min_idle: s.min_idle,
        changed: Notify::new(),
        doubt,
        turn: AtomicUsize::new(0),
        rechecks: OnceLock::new(),
        config,
        closed: AtomicBool::new(false),
    })))
}

impl Hosts {
    /// Every host's state, in the URL's order.
    pub(crate) fn statuses(&self) -> Vec<HostStatus> {
        self.members
            .iter()
            .map(|member| {
                let seen = member.seen();
                HostStatus {
                    host: member.label.clone(),
                    pool_name: member.pool.name().to_owned(),
                    role: seen.role,
                    down: seen.failures > 0,
                    last_error: seen.last_error,
                    status: member.pool.status(),
                }
            })
            .collect()
    }

    /// The counts of all hosts together; `max_size` is the whole budget.
    pub(crate) fn status(&self) -> Status {
        let mut all = Status::default();
        for member in &self.members {
            let one = member.pool.status();
            all.min_idle += one.min_idle;
            all.size += one.size;
            all.idle += one.idle;
            all.in_use += one.in_use;
            all.creating += one.creating;
            all.waiting += one.waiting;
            all.cooling_down |= one.cooling_down;
            all.closed |= one.closed;
        }
        all.max_size = self.max_size.load(Ordering::Relaxed);
        all
    }

    /// Changes the budget over all hosts; each host's share follows.
    pub(crate) fn resize(&self, max_size: usize) -> Result<(), pool_core::BuildError> {
        if max_size < self.members.len() || max_size < self.min_idle {
            return Err(pool_core::BuildError::new(
                "max_size",
                max_size,
                "must be at least the number of hosts and min_idle",
            ));
        }
        self.max_size.store(max_size, Ordering::Relaxed);
        recheck::rebalance(self);
        Ok(())
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(task) = self.rechecks.get() {
            task.abort();
        }
        for member in &self.members {
            member.lanes.close();
            member.pool.close();
        }
        self.changed.notify_waiters();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A one-line account of every host, for the error of a checkout that
    /// found none to serve it.
    pub(crate) fn describe(&self) -> String {
        self.members
            .iter()
            .map(|member| {
                let seen = member.seen();
                match (seen.role, seen.last_error) {
                    (_, Some(error)) if seen.failures > 0 => format!("{} down ({error})", member.label),
                    (Some(Role::Standby { lag }), _) => match lag {
                        Some(lag) => format!("{} standby ({lag:?} behind)", member.label),
                        None => format!("{} standby (nothing replayed yet)", member.label),
                    },
                    (Some(Role::Primary { read_only: true }), _) => {
                        format!("{} primary (read-only by default)", member.label)
                    }
                    (Some(Role::Primary { .. }), _) => format!("{} primary", member.label),
                    (None, _) => format!("{} not checked yet", member.label),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if let Some(task) = self.rechecks.get() {
            task.abort();
        }
    }
}

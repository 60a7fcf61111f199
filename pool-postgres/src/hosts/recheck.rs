//! Learning each host's role: the checking task of a [`Hosts`] pool.
//!
//! One task per pool, started by the first checkout. Each round checks
//! every host that is due (all of them, except those down and still in
//! their back-off), at once and each within [`CHECK_BOUND`], on a
//! connection of that host's own pool: an idle one, or a new one if its
//! share has room. A host whose share is all in use is busy, not down: its
//! role stands. Then the round applies what it found: a host that stopped
//! being a primary, or went down, has its idle connections closed and its
//! borrowed ones closed on return; the shares are recomputed; and waiting
//! checkouts are woken to route again.
//!
//! Rounds come every `host_recheck_interval`, sooner when a host's back-off
//! ends, and at once (at most every [`DOUBT_SPACING`]) when a statement
//! found a reason to doubt a role: a write refused as read-only (25006), a
//! lost connection, a checkout whose host failed to connect, or a checkout
//! waiting for a role no host has (a failover: while it waits, the roles are
//! checked every [`DOUBT_SPACING`], so a promotion is seen within about that).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{HOST_CHECK_METRIC, Hosts, Member, REPLICA_LAG_METRIC, split};
use crate::target::Role;

/// Longest wait for one host's answer (a connect included).
const CHECK_BOUND: Duration = Duration::from_secs(2);
/// Doubts come in bursts (every caller of a dead host has one); a round
/// answers all of them.
const DOUBT_SPACING: Duration = Duration::from_millis(250);

/// The role query: recovery, the sessions' default, and a standby's lag (0
/// when it has replayed all it received; else the age of the last
/// transaction it replayed, which an idle primary makes grow, so a standby
/// is only "behind" while WAL it received is still waiting).
const ROLE_SQL: &str = "SELECT pg_is_in_recovery()::text, current_setting('default_transaction_read_only'), \
     CASE WHEN NOT pg_is_in_recovery() THEN NULL \
          WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
          ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END::text";

impl Hosts {
    /// Starts the checking task if it is not running yet (it needs a
    /// runtime, so it starts with the first checkout, not at build).
    pub(crate) fn start_rechecks(self: &Arc<Self>) {
        if self.rechecks.get().is_some() {
            return;
        }
        let weak = Arc::downgrade(self);
        let task = tokio::spawn(run(weak));
        if self.rechecks.set(task.abort_handle()).is_err() {
            task.abort();
        }
    }
}

/// The task: rounds until the pool is dropped or closed.
async fn run(hosts: Weak<Hosts>) {
    let mut last_round: Option<Instant> = None;
    loop {
        let Some(pool) = hosts.upgrade() else { return };
        if pool.is_closed() {
            return;
        }
        if let Some(last) = last_round {
            let next = next_round(&pool, last);
            let doubt = Arc::clone(&pool.doubt);
            drop(pool);
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = doubt.notified() => {
                    tokio::time::sleep_until(last + DOUBT_SPACING).await;
                }
            }
        } else {
            drop(pool);
        }
        let Some(pool) = hosts.upgrade() else { return };
        last_round = Some(Instant::now());
        round(&pool).await;
    }
}

/// When the next round is due: the interval after the last, or a down
/// host's back-off end if sooner.
fn next_round(hosts: &Hosts, last: Instant) -> Instant {
    let regular = last + hosts.recheck_interval;
    hosts.members.iter().filter_map(|member| member.seen().next_check).fold(regular, Instant::min)
}

/// One round: checks the hosts that are due, applies what it found.
pub(crate) async fn round(hosts: &Hosts) {
    let now = Instant::now();
    let mut checks = JoinSet::new();
    for (index, member) in hosts.members.iter().enumerate() {
        if member.seen().next_check.is_some_and(|at| at > now) {
            continue;
        }
        let member = Arc::clone(member);
        checks.spawn(async move {
            let found = tokio::time::timeout(CHECK_BOUND, check(&member))
                .await
                .unwrap_or_else(|_| Err(format!("no answer to the role check within {CHECK_BOUND:?}")));
            (index, found)
        });
    }
    let mut changed = false;
    while let Some(done) = checks.join_next().await {
        let Ok((index, found)) = done else { continue };
        changed |= apply(hosts, &hosts.members[index], found);
    }
    if changed {
        rebalance(hosts);
        // Only on a change: a waiter woken re-routes, and leaves its place
        // in a host's queue to do so.
        hosts.changed.notify_waiters();
    }
}

/// What one check found: a role, `Ok(None)` for a host too busy to ask
/// (its role stands), or why it failed.
async fn check(member: &Member) -> Result<Option<Role>, String> {
    let client = match member.pool.try_get().await {
        Ok(client) => crate::client::Client::new(client),
        Err(pool_core::Error::Exhausted { .. }) => return Ok(None),
        Err(error) => return Err(pool_core::ErrorChain(&error).to_string()),
    };
    let messages = client.simple_query(ROLE_SQL).await.map_err(|e| pool_core::ErrorChain(&e).to_string())?;
    let row = messages
        .iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .ok_or("the role check returned no row")?;
    let in_recovery = row.get(0) == Some("true");
    let read_only = row.get(1) == Some("on");
    Ok(Some(if in_recovery {
        let lag = row
            .get(2)
            .and_then(|secs| secs.parse::<f64>().ok())
            .map(|secs| Duration::from_secs_f64(secs.max(0.0)));
        Role::Standby { lag }
    } else {
        Role::Primary { read_only }
    }))
}

/// Records one host's check; returns whether its standing for routing
/// changed (up/down, or its role).
fn apply(hosts: &Hosts, member: &Member, found: Result<Option<Role>, String>) -> bool {
    let mut seen = member.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let before = (seen.role, seen.failures > 0);
    match found {
        Ok(role) => {
            if let Some(role) = role {
                seen.role = Some(role);
            }
            seen.failures = 0;
            seen.next_check = None;
            seen.last_error = None;
        }
        Err(error) => {
            seen.failures += 1;
            seen.role = None;
            seen.next_check = Some(Instant::now() + split::back_off(seen.failures, hosts.recheck_interval));
            seen.last_error = Some(error);
        }
    }
    let after = (seen.role, seen.failures > 0);
    let label = match after {
        (_, true) => "down",
        (Some(role), false) => role.as_str(),
        (None, false) => "busy",
    };
    metrics::counter!(HOST_CHECK_METRIC, "pool" => member.pool.name().to_owned(), "role" => label)
        .increment(1);
    if let Some(Role::Standby { lag: Some(lag) }) = seen.role {
        metrics::gauge!(REPLICA_LAG_METRIC, "pool" => member.pool.name().to_owned()).set(lag.as_secs_f64());
    }
    let was_primary = matches!(before.0, Some(Role::Primary { .. }));
    let is_primary = matches!(after.0, Some(Role::Primary { .. }));
    let kind_changed = before.0.map(Role::as_str) != after.0.map(Role::as_str);
    if before.1 != after.1 || (kind_changed && after.0.is_some()) {
        match (after, &seen.last_error) {
            ((_, true), Some(error)) => {
                tracing::warn!(pool = %hosts.name, host = %member.label, %error, "a host is down; checkouts skip it");
            }
            ((Some(role), _), _) => {
                tracing::info!(pool = %hosts.name, host = %member.label, role = role.as_str(), "a host's role");
            }
            _ => {}
        }
    }
    drop(seen);
    if (was_primary && !is_primary) || (after.1 && !before.1) {
        // Demoted, or gone: nothing may be written, or waited for, through
        // what is left.
        member.lanes.retire_all("role changed");
        member.pool.evict_all();
    }
    // Lag changes what a standby serves (max_replica_lag), so every change
    // of the role value counts, not only of its kind.
    before != after
}

/// Resizes every host's share after a host went down or came back.
pub(crate) fn rebalance(hosts: &Hosts) {
    let down: Vec<bool> = hosts.members.iter().map(|member| member.seen().failures > 0).collect();
    let budget = hosts.max_size.load(Ordering::Relaxed);
    for (member, share) in hosts.members.iter().zip(split::shares(budget, &down)) {
        if member.pool.status().max_size != share
            && let Err(error) = member.pool.resize(share)
        {
            tracing::debug!(pool = %hosts.name, host = %member.label, %error, "kept a host's share");
        }
    }
}

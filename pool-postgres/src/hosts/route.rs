//! Routing one checkout of a [`Hosts`] pool to a host whose role serves it.

use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Hosts, Member};
use crate::client::Client;
use crate::pipelined::Slot;
use crate::pool::PoolError;
use crate::target::{Role, TargetSessionAttrs};

/// How soon a checkout whose every candidate failed to connect tries again
/// when no check has changed what it sees.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(250);

impl Hosts {
    /// The fast path of a checkout, with no timer and no wait: a connection
    /// from the first candidate that has one idle or a slot free; `None`
    /// when all are busy or none can serve (then [`Hosts::get`] waits).
    /// Small, so that it sits inline in `PgPool::get`'s future, which
    /// boxes only the slow path.
    pub(crate) async fn at_once(
        self: &Arc<Self>,
        target: TargetSessionAttrs,
        location: &'static Location<'static>,
    ) -> Option<Result<Client, PoolError>> {
        self.start_rechecks();
        if self.is_closed() {
            return Some(Err(pool_core::Error::Closed));
        }
        for member in &self.candidates(target) {
            match member.pool.try_get_at(location).await {
                Ok(conn) => return Some(Ok(Client::new(conn))),
                Err(pool_core::Error::Exhausted { .. }) => {}
                Err(pool_core::Error::Closed) => return Some(Err(pool_core::Error::Closed)),
                Err(_) => self.doubt.notify_one(),
            }
        }
        None
    }

    /// A connection from a host that serves `target`, within
    /// `acquire_timeout`; see the module docs for the order.
    pub(crate) async fn get(
        self: &Arc<Self>,
        target: TargetSessionAttrs,
        location: &'static Location<'static>,
    ) -> Result<Client, PoolError> {
        self.start_rechecks();
        let started = Instant::now();
        let deadline = started + self.acquire_timeout;
        loop {
            if self.is_closed() {
                return Err(pool_core::Error::Closed);
            }
            // Registered before the roles are read, so a round that ends
            // while this checkout looks is not missed.
            let mut changed = std::pin::pin!(self.changed.notified());
            changed.as_mut().enable();
            let candidates = self.candidates(target);
            // With one candidate, its own queue does what trying it first
            // would (an idle connection or a free slot is taken at once).
            let only = if let [only] = candidates.as_slice() { Some(only) } else { None };
            let mut busy = only;
            for member in candidates.iter().filter(|_| only.is_none()) {
                match member.pool.try_get_at(location).await {
                    Ok(conn) => return Ok(Client::new(conn)),
                    Err(pool_core::Error::Exhausted { .. }) => busy = busy.or(Some(member)),
                    Err(pool_core::Error::Closed) => return Err(pool_core::Error::Closed),
                    Err(_) => self.doubt.notify_one(),
                }
            }
            if let Some(first) = busy {
                // All busy: queue at the first that is, unless the roles change.
                tokio::select! {
                    got = first.pool.get_at(location) => match got {
                        Ok(conn) => return Ok(Client::new(conn)),
                        Err(error) if error.is_timeout() || matches!(error, pool_core::Error::Closed) => {
                            return Err(error);
                        }
                        Err(_) => self.doubt.notify_one(),
                    },
                    () = &mut changed => continue,
                    () = tokio::time::sleep_until(deadline) => return Err(Self::timed_out(first, started)),
                }
            }
            let all_failed = !candidates.is_empty();
            if Instant::now() >= deadline {
                return Err(self.none_serves(target, started));
            }
            // None has the role, or all failed to connect: the next round of
            // checks (asked for now, so a promotion is seen within a round's
            // spacing, not a whole interval), or (for a failure a check does
            // not confirm) a retry soon.
            self.doubt.notify_one();
            let retry =
                if all_failed { deadline.min(Instant::now() + RETRY_AFTER_FAILURE) } else { deadline };
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(retry) => {}
            }
        }
    }

    /// A connection from a host that serves `target` and has one idle or a
    /// slot free; never waits. `Exhausted` when every such host is busy (or
    /// failed to connect), `NoneEligible` when none serves `target`.
    pub(crate) async fn try_get(
        self: &Arc<Self>,
        target: TargetSessionAttrs,
        location: &'static Location<'static>,
    ) -> Result<Client, PoolError> {
        let started = Instant::now();
        if let Some(got) = self.at_once(target, location).await {
            return got;
        }
        if self.candidates(target).is_empty() {
            Err(self.none_serves(target, started))
        } else {
            Err(pool_core::Error::Exhausted { max_size: self.status().max_size, resource: "connection" })
        }
    }

    /// Room for a shared-mode statement ([`crate::pipelined`]) on a host
    /// that serves `target`: the first candidate with room now (or none
    /// open yet, opening one), else a wait at the first, within
    /// `acquire_timeout`; for no candidate, the next check.
    pub(crate) async fn shared_slot(
        self: &Arc<Self>,
        target: TargetSessionAttrs,
        location: &'static Location<'static>,
    ) -> Result<Slot<'_>, PoolError> {
        self.start_rechecks();
        let started = Instant::now();
        let deadline = started + self.acquire_timeout;
        loop {
            if self.is_closed() {
                return Err(pool_core::Error::Closed);
            }
            let mut changed = std::pin::pin!(self.changed.notified());
            changed.as_mut().enable();
            let candidates = self.candidates(target);
            for member in &candidates {
                match member.lanes.try_slot(location).await {
                    Ok(Some(slot)) => return Ok(slot),
                    Ok(None) => {}
                    Err(pool_core::Error::Closed) => return Err(pool_core::Error::Closed),
                    Err(_) => self.doubt.notify_one(),
                }
            }
            if let Some(first) = candidates.first() {
                return first.lanes.slot(location).await;
            }
            if Instant::now() >= deadline {
                return Err(self.none_serves(target, started));
            }
            self.doubt.notify_one();
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// The hosts that may serve `target`, in the order they are tried
    /// (borrowed from the pool, which outlives every checkout):
    /// first choices (balanced), then fallbacks (the primary, for
    /// `prefer-standby`).
    pub(crate) fn candidates(&self, target: TargetSessionAttrs) -> Vec<&Arc<Member>> {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut first = Vec::with_capacity(self.members.len());
        let mut fallback = Vec::new();
        for member in &self.members {
            let (role, down) = member.standing();
            match role {
                _ if down => {}
                Some(role) if target.accepts(role, self.max_lag) => first.push(member),
                Some(role) if target.falls_back_to(role) => fallback.push(member),
                None if target == TargetSessionAttrs::Any => first.push(member),
                _ => {}
            }
        }
        self.balance.order(&mut first, turn);
        self.balance.order(&mut fallback, turn);
        first.append(&mut fallback);
        first
    }

    /// Waited in a busy host's queue until `acquire_timeout`.
    fn timed_out(member: &Member, started: Instant) -> PoolError {
        pool_core::Error::Timeout {
            phase: pool_core::TimeoutPhase::Wait,
            elapsed: started.elapsed(),
            max_size: member.pool.status().max_size,
            last_error: None,
            refused_at_size: None,
            resource: "connection",
        }
    }

    /// No host could serve `target` within `acquire_timeout`.
    pub(crate) fn none_serves(&self, target: TargetSessionAttrs, started: Instant) -> PoolError {
        pool_core::Error::NoneEligible {
            wanted: format!("a server for target_session_attrs={target}"),
            seen: self.describe(),
            elapsed: started.elapsed(),
        }
    }
}

impl Member {
    /// The role and whether the host is down, without copying the rest.
    pub(crate) fn standing(&self) -> (Option<Role>, bool) {
        let seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (seen.role, seen.failures > 0)
    }
}

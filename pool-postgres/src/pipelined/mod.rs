//! Shared mode: autocommit statements from many tasks pipelined over a few
//! of the pool's connections ([`PgPool::shared`](crate::PgPool::shared)).
//!
//! An exclusive checkout keeps one statement in flight per connection at a
//! time, so a pool of ten serves at most ten at once, each waiting a whole
//! round trip. tokio-postgres can keep many requests in flight on one
//! connection: each goes out as soon as it is made, the server answers in
//! order, and the connection's task hands each answer to its caller. Shared
//! mode uses that: a handful of connections serve every task.
//!
//! # Algorithm
//!
//! - **Lanes.** A shared connection (a *lane*) is an ordinary checkout of
//!   the pool, held for as long as it is used, so it counts in `max_size`
//!   with the exclusive ones. At most `shared_connections` lanes are open;
//!   the first is opened by the first statement, another whenever the
//!   least-loaded lane already has two statements in flight (in the
//!   background: nobody waits for it while a lane can take the statement).
//! - **Room.** A fair semaphore holds `shared_in_flight` permits per open
//!   lane: a statement takes one, then the least-loaded lane; when all are
//!   taken, statements wait first come, first served, within
//!   `acquire_timeout`. Each lane's own task writes its requests and reads
//!   its answers, so there is no single writer for all connections (what
//!   capped Npgsql's multiplexing), and no aggregator between the caller
//!   and tokio-postgres.
//! - **Statements** take the one path every statement takes
//!   ([`crate::session`]) with [`Scope::Shared`](crate::session::Scope):
//!   SQL text is prepared once per lane and cached there; callers racing
//!   for the same new text share one `PREPARE` ([`crate::cache`]).
//! - **Retiring.** A lane takes no new statements once its connection is
//!   closed or broken (an error that ended the session, a `socket_timeout`,
//!   a dead path), once it carries more than [`lanes::BACKLOG_CAP`]
//!   abandoned requests, when it reaches `max_lifetime`, and when it ran
//!   nothing for a second (the last lane: for 30 s, unless exclusive
//!   checkouts are waiting for a connection). Its connection goes
//!   back to the pool when the statements on it end, and is settled,
//!   reused or closed there like any other.
//!
//! # Invariants
//!
//! - Nothing that leaves state on a connection runs on a lane: transaction
//!   blocks, session settings, `LISTEN`, cursors, locks, `PREPARE`, `COPY`
//!   and statements prepared elsewhere are refused before anything is sent
//!   ([`ErrorKind::NeedsExclusive`](crate::ErrorKind::NeedsExclusive)), and
//!   the handle has no transaction or raw-client methods. Each statement is
//!   its own implicit transaction, ended by its own `Sync`.
//! - One statement's failure reaches only its caller: the server ends
//!   each statement's error at its `Sync`, and the rest of the pipeline
//!   runs on. No cancel request is ever sent for a statement on a lane
//!   (a cancel stops whatever the server runs for that connection, which
//!   may be another caller's statement): a `socket_timeout` retires the
//!   lane instead, and the statements on it run to their answers.
//! - A lane that broke fails the statements in flight on it (they may have
//!   run); a statement that found its lane already closed had not been sent
//!   and is retried on another lane.
//! - Statements in flight on all lanes never exceed `shared_connections` ×
//!   `shared_in_flight`, and a cancelled caller gives its room back at once.

pub(crate) mod lanes;

use std::panic::Location;
use std::sync::Arc;

use tokio_postgres::Row;

use crate::error::Error;
use crate::hosts::Hosts;
use crate::query::Query;
use crate::session::{Scope, Session};
use crate::statements::{Params, TypedParams};
use crate::target::TargetSessionAttrs;
pub(crate) use lanes::{LaneLimits, Lanes, Slot};
pub use lanes::{SHARED_CONNECTIONS_METRIC, SHARED_IN_FLIGHT_METRIC, SHARED_WAITING_METRIC};

/// How many times a statement that found its lane closed before it was
/// sent moves to another lane.
const NOT_SENT_RETRIES: u32 = 3;

/// Shared mode of a [`PgPool`](crate::PgPool): statements from any number
/// of tasks pipelined over a few of the pool's connections. Cheap to clone;
/// every clone (and every call of [`PgPool::shared`](crate::PgPool::shared))
/// uses the same connections.
///
/// For autocommit statements: each runs as its own transaction. What needs
/// a connection of its own (a transaction, `SET`, `LISTEN`, `COPY`, a
/// cursor, a prepared [`Statement`](tokio_postgres::Statement)) is refused
/// with [`ErrorKind::NeedsExclusive`](crate::ErrorKind::NeedsExclusive);
/// take a [`Client`](crate::Client) with [`PgPool::get`](crate::PgPool::get)
/// for that. A long statement holds up those pipelined behind it on the
/// same connection, so keep reports and bulk work on exclusive connections
/// too.
///
/// ```no_run
/// # async fn demo(pool: pool_postgres::PgPool) -> Result<(), pool_postgres::Error> {
/// let shared = pool.shared();
/// let row = shared.query_one("SELECT $1::int + 1", &[&41]).await?;
/// assert_eq!(row.get::<_, i32>(0), 42);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Shared {
    route: Route,
}

#[derive(Clone)]
enum Route {
    One(Arc<Lanes>),
    Hosts { hosts: Arc<Hosts>, target: TargetSessionAttrs },
}

/// What shared mode holds and does now; see [`Shared::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SharedStatus {
    /// Shared connections open (each also counts as in use in the pool's
    /// [`Status`](crate::Status)).
    pub connections: usize,
    /// The most that may be open (`shared_connections`, over several
    /// hosts per host).
    pub max_connections: usize,
    /// Statements in flight on them.
    pub in_flight: usize,
    /// The most one connection takes at once (`shared_in_flight`).
    pub max_in_flight_per_connection: usize,
    /// Statements waiting for room.
    pub waiting: usize,
}

impl Shared {
    pub(crate) fn one(lanes: Arc<Lanes>) -> Self {
        Self { route: Route::One(lanes) }
    }

    pub(crate) fn routed(hosts: Arc<Hosts>, target: TargetSessionAttrs) -> Self {
        Self { route: Route::Hosts { hosts, target } }
    }

    /// Room for one statement on a lane.
    async fn slot(&self, location: &'static Location<'static>) -> Result<Slot<'_>, Error> {
        let got = match &self.route {
            Route::One(lanes) => lanes.slot(location).await,
            Route::Hosts { hosts, target } => Box::pin(hosts.shared_slot(*target, location)).await,
        };
        got.map_err(Error::acquire)
    }

    /// What shared mode holds and does now (over several hosts, the sums).
    pub fn status(&self) -> SharedStatus {
        let mut all = SharedStatus::default();
        let mut add = |lanes: &Lanes| {
            let (connections, in_flight, waiting) = lanes.counts();
            let limits = lanes.limits();
            all.connections += connections;
            all.in_flight += in_flight;
            all.waiting += waiting;
            all.max_connections += limits.lanes;
            all.max_in_flight_per_connection = limits.per_lane;
        };
        match &self.route {
            Route::One(lanes) => add(lanes),
            Route::Hosts { hosts, .. } => hosts.members.iter().for_each(|member| add(&member.lanes)),
        }
        all
    }
}

/// The statement methods of [`Shared`]: each takes room on a lane, runs
/// the statement there through [`Session`], and moves to another lane if
/// the connection was found closed before the statement went out.
macro_rules! shared_methods {
    ($( $(#[$doc:meta])* $name:ident ($query:ident : $query_type:ty, $params:ty) -> $out:ty; )*) => {$(
        $(#[$doc])*
        ///
        /// # Errors
        ///
        /// The server's error; [`ErrorKind::NeedsExclusive`](crate::ErrorKind::NeedsExclusive)
        /// for what shared mode refuses; [`ErrorKind::Acquire`](crate::ErrorKind::Acquire)
        /// when no shared connection could be had within `acquire_timeout`;
        /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) after `socket_timeout`.
        ///
        /// # Cancel safety
        ///
        /// Cancel-safe: its room is given back at once; a statement already
        /// sent runs on the server and its answer is read and dropped, and
        /// the other statements on the connection are not disturbed.
        #[track_caller]
        pub fn $name<'s>(
            &'s self,
            $query: &'s $query_type,
            params: $params,
        ) -> impl std::future::Future<Output = Result<$out, Error>> + Send + 's {
            let location = Location::caller();
            async move {
                let mut attempts = 0;
                loop {
                    let slot = self.slot(location).await?;
                    let out = Session::new(&slot.lane.conn, Scope::Shared).$name($query, params).await;
                    match out {
                        Err(error) if error.was_not_sent() && attempts < NOT_SENT_RETRIES => attempts += 1,
                        out => return out,
                    }
                }
            }
        }
    )*};
}

impl Shared {
    shared_methods! {
        /// Runs a query and returns all its rows; SQL text is prepared once
        /// per shared connection and cached there.
        query(query: (impl Query + ?Sized), Params<'s>) -> Vec<Row>;
        /// Runs a query that returns exactly one row.
        query_one(query: (impl Query + ?Sized), Params<'s>) -> Row;
        /// Runs a query that returns at most one row.
        query_opt(query: (impl Query + ?Sized), Params<'s>) -> Option<Row>;
        /// Runs a statement and returns how many rows it changed.
        execute(query: (impl Query + ?Sized), Params<'s>) -> u64;
        /// Runs SQL text as an unnamed statement with the parameter types
        /// given, in one round trip (nothing prepared or cached).
        query_typed(sql: str, TypedParams<'s>) -> Vec<Row>;
        /// As [`query_typed`](Self::query_typed), for exactly one row.
        query_typed_one(sql: str, TypedParams<'s>) -> Row;
        /// As [`query_typed`](Self::query_typed), for at most one row.
        query_typed_opt(sql: str, TypedParams<'s>) -> Option<Row>;
        /// As [`query_typed`](Self::query_typed), returning how many rows it changed.
        execute_typed(sql: str, TypedParams<'s>) -> u64;
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("status", &self.status()).finish_non_exhaustive()
    }
}

//! [`Session`]: the one path every statement takes through a pooled
//! connection, whether it comes from the [`Client`](crate::Client) guard or
//! a [`Transaction`](crate::Transaction).
//!
//! For each statement, in order:
//! 1. **Guard.** Behind a transaction pooler, text that would leave session
//!    state (`SET`, `LISTEN`, ...) is refused before it is sent, or sent with
//!    a warning (see [`crate::session_state`]); either way it is counted.
//! 2. **Route.** Behind a pooler that keeps no prepared statements
//!    ([`Pooler::Transaction`](crate::Pooler::Transaction)), SQL text goes out
//!    unnamed, Parse to Sync in one round trip, with parameter types taken
//!    from the Rust values ([`crate::param_types`]); anything that needs a
//!    named statement is refused. Otherwise a prepared [`Statement`] is used
//!    as given, and SQL text is looked up in the connection's statement
//!    cache and prepared (then cached) on a miss, or with the cache off
//!    prepared for this call.
//! 3. **Deadline and backlog.** Every round trip is tracked until answered
//!    ([`crate::backlog`]): one whose future is dropped first leaves a
//!    backlog that is cancelled and drained before the connection is reused
//!    ([`crate::drain`]). It runs under the pool's `socket_timeout`; running
//!    out of it cancels the statement on the server, and the connection is
//!    kept if the server answers within a bound. No answer, or an error that
//!    ends the session (closed socket, FATAL, PANIC), marks the connection
//!    broken: it is closed when it comes back instead of being handed to the
//!    next borrower.
//! 4. **Stale and lost statements.** A cached statement the schema has
//!    changed under ("cached plan must not change result type") or that the
//!    server no longer has (`26000`, after `DEALLOCATE`/`DISCARD ALL`) is
//!    dropped from the cache. `26000` and `42P05` where no pooler is
//!    configured get a hint naming `pgbouncer=true`.
//! 5. **Hygiene.** Text that may leave the session inside a transaction
//!    block or holding a lock marks it dirty, and a dirty connection gets a
//!    `ROLLBACK` when it comes back (see [`crate::hygiene`]).
//!
//! The callers differ in one way, the [`Scope`]: in autocommit a stale
//! or lost statement is prepared again and the statement retried once (the
//! server ran nothing, so this is safe), and step 5 applies. Inside a
//! transaction block the failure has aborted the block, so nothing is
//! retried; the first failure is remembered so that `commit` can say the
//! transaction was rolled back instead of reporting success; and the block
//! ends itself, so there is nothing to watch.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::OnceLock;
use std::time::Duration;

use tokio_postgres::Statement;
use tokio_postgres::error::SqlState;

use crate::cache;
use crate::connection::PgConnection;
use crate::drain;
use crate::error::Error;
use crate::hygiene;
use crate::pooler::SessionStatePolicy;
use crate::query::{Query, QueryRef};
use crate::row_stream::RowStream;
use crate::session_state;

/// Appended to 26000/42P05 errors when no pooler is configured.
const POOLER_HINT: &str = "if a transaction pooler (PgBouncer in transaction mode) is between this pool and the \
                           server, add pgbouncer=true to the URL so statements are sent unnamed";

/// Abandoned requests one connection may carry before the next statement
/// waits for them (see [`Session::bounded`]).
const BACKLOG_CAP: u32 = 8;

/// Where a statement runs; the one difference between the client guard's
/// and a transaction's statements.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// On the client guard, outside any transaction block of ours.
    Autocommit,
    /// Inside a [`Transaction`](crate::Transaction); the cell keeps the
    /// block's first failure.
    Transaction(&'a OnceLock<String>),
    /// On a connection shared by many callers' statements at once (see
    /// [`crate::pipelined`]): text that would leave state on it is refused,
    /// a timeout retires the connection instead of cancelling (a cancel
    /// stops whatever the server runs for it, maybe another caller's
    /// statement), and abandoned requests are bounded by retiring it too.
    Shared,
}

/// One connection seen from one caller, for one statement at a time.
#[derive(Clone, Copy)]
pub(crate) struct Session<'a> {
    conn: &'a PgConnection,
    scope: Scope<'a>,
}

impl<'a> Session<'a> {
    pub(crate) fn new(conn: &'a PgConnection, scope: Scope<'a>) -> Self {
        Self { conn, scope }
    }

    pub(crate) fn client(&self) -> &'a tokio_postgres::Client {
        &self.conn.client
    }

    pub(crate) fn conn(&self) -> &'a PgConnection {
        self.conn
    }

    /// Step 1, for SQL text sent without the statement cache (which makes
    /// shared mode's check once per text, see [`cache::prepare_cached`]).
    pub(crate) fn guard(&self, sql: &str) -> Result<(), Error> {
        if matches!(self.scope, Scope::Shared) {
            // All session state is refused here, which leaves the pooler's
            // check nothing to find.
            return hygiene::needs_exclusive(sql)
                .map_or(Ok(()), |operation| Err(Error::needs_exclusive(operation)));
        }
        self.guard_pooler(sql)
    }

    /// Step 1 behind a transaction pooler: session state is refused or
    /// warned about, and counted, on every statement.
    fn guard_pooler(&self, sql: &str) -> Result<(), Error> {
        let policy = &self.conn.policy;
        if !policy.pooler.transaction_mode() {
            return Ok(());
        }
        let Some(found) = session_state::find(sql) else { return Ok(()) };
        let action = match policy.session_state {
            SessionStatePolicy::Refuse => "refused",
            SessionStatePolicy::Warn => "warned",
        };
        metrics::counter!(
            crate::SESSION_STATE_METRIC,
            "pool" => policy.pool_name.clone(),
            "statement" => found.statement,
            "action" => action,
        )
        .increment(1);
        match policy.session_state {
            SessionStatePolicy::Refuse => Err(Error::session_state(found.statement, found.instead)),
            SessionStatePolicy::Warn => {
                tracing::warn!(
                    pool = %policy.pool_name,
                    statement = found.statement,
                    instead = found.instead,
                    "sent session state through a transaction pooler: the next client of that server \
                     connection gets it, and this one may not find it again"
                );
                Ok(())
            }
        }
    }

    /// Step 2 for a statement that can go either way: `Some(sql)` when it
    /// must go out unnamed (the caller sends it with `query_typed` and
    /// friends), `None` when it goes through [`Session::run`].
    pub(crate) fn unnamed<'q>(&self, query: &'q (impl Query + ?Sized)) -> Result<Option<&'q str>, Error> {
        let unnamed_only = self.conn.policy.pooler.unnamed_only();
        match query.as_query() {
            QueryRef::Text(sql) if unnamed_only => {
                self.guard(sql)?;
                self.watch(sql);
                Ok(Some(sql))
            }
            QueryRef::Prepared(_) if unnamed_only => {
                Err(Error::needs_named_statement("a prepared Statement"))
            }
            QueryRef::Prepared(_) if matches!(self.scope, Scope::Shared) => {
                Err(Error::needs_exclusive("a prepared Statement"))
            }
            _ => Ok(None),
        }
    }

    /// Refuses `operation` where named statements do not survive.
    pub(crate) fn needs_named(&self, operation: &'static str) -> Result<(), Error> {
        if self.conn.policy.pooler.unnamed_only() {
            Err(Error::needs_named_statement(operation))
        } else {
            Ok(())
        }
    }

    /// Step 3: runs one round trip under `socket_timeout` and books its
    /// failure. A connection whose backlog (requests abandoned on it, see
    /// [`crate::backlog`]) has reached [`BACKLOG_CAP`] first waits for it
    /// with an empty query, so a caller that keeps abandoning statements on
    /// one guard cannot queue without bound.
    pub(crate) async fn bounded<T>(
        &self,
        round_trip: Pin<&mut impl Future<Output = Result<T, tokio_postgres::Error>>>,
    ) -> Result<T, Error> {
        // Shared connections bound their backlog by retiring instead
        // (`crate::pipelined`): this wait would hold up every caller on it.
        if self.conn.backlog.abandoned() >= BACKLOG_CAP && !matches!(self.scope, Scope::Shared) {
            // Boxed: rare, and it would sit beside `round_trip` in every
            // statement's future.
            Box::pin(self.round_trip(pin!(self.conn.client.simple_query("")))).await?;
        }
        self.round_trip(round_trip).await
    }

    /// One round trip, tracked in the connection's backlog until answered.
    /// Out of `socket_timeout`, it is cancelled on the server
    /// ([`drain::cancel_in_place`]): the connection is kept if the server
    /// answers within the bound, and marked broken if not.
    async fn round_trip<T>(
        &self,
        mut round_trip: Pin<&mut impl Future<Output = Result<T, tokio_postgres::Error>>>,
    ) -> Result<T, Error> {
        let sent = self.conn.backlog.track();
        let closed_before = self.conn.client.is_closed();
        let watched = self.watched(round_trip.as_mut());
        let watched = match self.conn.policy.socket_timeout {
            None => watched.await,
            Some(limit) => match tokio::time::timeout(limit, watched).await {
                Ok(watched) => watched,
                Err(_) if matches!(self.scope, Scope::Shared) => {
                    self.conn.mark_broken();
                    return Err(self.failed(Error::timeout(limit, false).on_shared()));
                }
                // Boxed: rare, and large (a cancel request connects).
                Err(_) => match Box::pin(drain::cancel_in_place(self.conn, round_trip)).await {
                    Some(Err(error)) if error.code() == Some(&SqlState::QUERY_CANCELED) => {
                        sent.answered();
                        return Err(self.failed(Error::timeout(limit, true)));
                    }
                    Some(out) => Ok(out),
                    None => {
                        self.conn.mark_broken();
                        return Err(self.failed(Error::timeout(limit, false)));
                    }
                },
            },
        };
        let out = match watched {
            Ok(out) => out,
            Err(waited) => {
                self.conn.mark_broken();
                return Err(self.failed(Error::unanswered(waited)));
            }
        };
        sent.answered();
        out.map_err(|error| {
            let closed = error.is_closed();
            let error = self.book(error);
            if closed && closed_before { error.not_sent() } else { error }
        })
    }

    /// Books an error the driver or server reported: one that ends the
    /// session marks the connection broken, a lost statement gets its hint,
    /// and inside a transaction the first failure is kept.
    pub(crate) fn book(&self, error: tokio_postgres::Error) -> Error {
        let read_only = error.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION);
        let mut error = Error::from(error);
        if error.ends_session() {
            self.conn.mark_broken();
        }
        if (read_only || error.ends_session())
            && let Some(doubt) = &self.conn.policy.role_doubt
        {
            doubt.notify_one();
        }
        if error.is_lost_statement() && !self.conn.policy.pooler.transaction_mode() {
            error = error.with_hint(POOLER_HINT);
        }
        self.failed(error)
    }

    /// A row stream handed to the caller: tracked until read to its end.
    pub(crate) fn stream(&self, rows: tokio_postgres::RowStream) -> RowStream<'a> {
        RowStream::new(*self, rows)
    }

    /// Awaits a round trip under the liveness check, if the pool has one
    /// and knows the session's server process ([`crate::liveness`]).
    async fn watched<F: Future>(&self, round_trip: Pin<&mut F>) -> Result<F::Output, Duration> {
        match (&self.conn.policy.liveness, self.conn.backend_pid) {
            (Some(liveness), Some(pid)) => liveness.watch(pid, round_trip).await,
            _ => Ok(round_trip.await),
        }
    }

    /// Books a failure: inside a transaction, the first one is what
    /// `commit` reports.
    fn failed(&self, error: Error) -> Error {
        if let Scope::Transaction(first_failure) = self.scope {
            let _ = first_failure.set(error.to_string());
        }
        error
    }

    /// Step 5, for text that does not go through the cache.
    pub(crate) fn watch(&self, sql: &str) {
        if matches!(self.scope, Scope::Autocommit) && hygiene::may_dirty(sql) {
            self.conn.mark_dirty();
        }
    }

    /// Steps 1, 3 and 5 for SQL text sent as it is (simple protocol, unnamed
    /// statements, uncached prepares): nothing cached, nothing to go stale.
    pub(crate) async fn unprepared<T>(
        &self,
        sql: &str,
        round_trip: Pin<&mut impl Future<Output = Result<T, tokio_postgres::Error>>>,
    ) -> Result<T, Error> {
        self.guard(sql)?;
        self.watch(sql);
        self.bounded(round_trip).await
    }

    /// A statement prepared for this call, not cached.
    pub(crate) async fn prepare(
        &self,
        sql: &str,
        prepare: Pin<&mut impl Future<Output = Result<Statement, tokio_postgres::Error>>>,
    ) -> Result<Statement, Error> {
        self.needs_named("prepare")?;
        self.unprepared(sql, prepare).await
    }

    /// The statement cached for `sql` on this connection, or a new one
    /// (prepared, then cached); with the cache off, prepared every time.
    pub(crate) async fn prepare_cached(&self, sql: &str) -> Result<Statement, Error> {
        self.needs_named("prepare_cached")?;
        let shared = matches!(self.scope, Scope::Shared);
        if !shared {
            self.guard_pooler(sql)?;
        }
        let prepare = pin!(self.client().prepare(sql));
        let prepare = pin!(self.bounded(prepare));
        let (statement, traits) = cache::prepare_cached(&self.conn.cache, sql, shared, prepare).await?;
        if traits.dirties && matches!(self.scope, Scope::Autocommit) {
            self.conn.mark_dirty();
        }
        Ok(statement)
    }

    /// Step 2 for a named statement: the statement for `query`, and the
    /// text it is cached under (`None` when it does not come from the cache).
    pub(crate) async fn statement<'q>(
        &self,
        query: &'q (impl Query + ?Sized),
    ) -> Result<(Statement, Option<&'q str>), Error> {
        match query.as_query() {
            QueryRef::Prepared(statement) => {
                self.needs_named("a prepared Statement")?;
                Ok((statement.clone(), None))
            }
            QueryRef::Text(sql) if self.conn.cache().enabled() => {
                Ok((self.prepare_cached(sql).await?, Some(sql)))
            }
            QueryRef::Text(sql) => Ok((self.prepare(sql, pin!(self.client().prepare(sql))).await?, None)),
        }
    }

    /// Step 4: drops a stale or lost cached statement; returns whether the
    /// caller may prepare it again and retry (autocommit only).
    pub(crate) fn forget_if_stale<T>(&self, out: &Result<T, Error>, cached: Option<&str>) -> bool {
        match (out, cached) {
            (Err(error), Some(sql)) if error.is_stale_plan() || error.is_lost_statement() => {
                self.conn.cache().remove(sql);
                matches!(self.scope, Scope::Autocommit | Scope::Shared)
            }
            _ => false,
        }
    }

    /// Steps 1 to 5 for a named statement whose parameters can be bound
    /// twice: runs `op` with the statement for `query`, retrying once on a
    /// stale or lost statement where that is safe.
    pub(crate) async fn run<T, F, Fut>(&self, query: &(impl Query + ?Sized), op: F) -> Result<T, Error>
    where
        F: Fn(&'a tokio_postgres::Client, Statement) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let (statement, cached) = self.statement(query).await?;
        let out = self.bounded(pin!(op(self.client(), statement))).await;
        if let (true, Some(sql)) = (self.forget_if_stale(&out, cached), cached) {
            tracing::debug!("a cached statement went stale or missing; preparing it again");
            let statement = self.prepare_cached(sql).await?;
            return self.bounded(pin!(op(self.client(), statement))).await;
        }
        out
    }
}

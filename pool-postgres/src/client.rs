//! [`Client`]: the guard a PostgreSQL pool hands out.

use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pool_core::{Pooled, ResourceInfo};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row, SimpleQueryMessage, Statement};

use crate::cache::{self, CacheStats};
use crate::connection::PgConnection;
use crate::hygiene;
use crate::manager::PgManager;
use crate::transaction::Transaction;

/// Query text or a prepared statement: what [`Client`]'s query methods take.
pub trait Query: sealed::Sealed + Sync {
    #[doc(hidden)]
    fn as_query(&self) -> QueryRef<'_>;
}

#[doc(hidden)]
pub enum QueryRef<'a> {
    Text(&'a str),
    Prepared(&'a Statement),
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for str {}
    impl Sealed for String {}
    impl Sealed for tokio_postgres::Statement {}
}

impl Query for str {
    fn as_query(&self) -> QueryRef<'_> {
        QueryRef::Text(self)
    }
}

impl Query for String {
    fn as_query(&self) -> QueryRef<'_> {
        QueryRef::Text(self)
    }
}

impl Query for Statement {
    fn as_query(&self) -> QueryRef<'_> {
        QueryRef::Prepared(self)
    }
}

/// A connection borrowed from a [`PgPool`](crate::PgPool); it goes back to
/// the pool when dropped.
///
/// `query`, `query_one`, `query_opt` and `execute` given SQL text use the
/// connection's statement cache: the first call prepares the statement, and
/// later calls with the same text skip straight to executing it (one round
/// trip instead of two). Given a prepared [`Statement`], they run it as is.
///
/// Everything else of `tokio_postgres::Client` is reachable through `Deref`.
/// Because the pool cannot see what is done through the raw client, using
/// it marks the connection, and a `ROLLBACK` is queued when it comes back
/// (it costs the next borrower nothing: it runs ahead of their first query on
/// the same socket). Text starting a transaction block (`BEGIN`, `START
/// TRANSACTION`, ...) marks it likewise.
pub struct Client {
    inner: Pooled<PgManager>,
}

impl Client {
    pub(crate) fn new(inner: Pooled<PgManager>) -> Self {
        Self { inner }
    }

    fn conn(&self) -> &PgConnection {
        &self.inner
    }

    /// Runs `fut` under the pool's `socket_timeout`; see [`bounded`].
    async fn bounded<T>(&self, fut: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        let conn = self.conn();
        bounded(&conn.broken, conn.socket_timeout, fut).await
    }

    /// Marks the connection for a reset on return if `sql` may leave the
    /// session dirty (for text that does not go through the cache).
    fn watch(&self, sql: &str) {
        if hygiene::may_dirty(sql) {
            self.conn().mark_dirty();
        }
    }

    /// Prepares `sql`, or returns the statement cached for it on this
    /// connection. With the cache off, prepares every time.
    ///
    /// # Errors
    ///
    /// The server's error if the statement does not parse.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a statement prepared by a dropped call is simply not cached.
    pub async fn prepare_cached(&self, sql: &str) -> Result<Statement, Error> {
        let conn = self.conn();
        let prepare = self.bounded(conn.client.prepare(sql));
        let (statement, dirties) = cache::prepare_cached(&conn.cache, sql, prepare).await?;
        if dirties {
            conn.mark_dirty();
        }
        Ok(statement)
    }

    /// Runs `op` with the statement for `query`; if a cached statement has
    /// gone stale because the schema changed under it, prepares it again and
    /// retries once.
    async fn with_statement<'a, T, F, Fut>(
        &'a self,
        query: &'a (impl Query + ?Sized),
        op: F,
    ) -> Result<T, Error>
    where
        F: Fn(Statement) -> Fut,
        Fut: Future<Output = Result<T, Error>> + 'a,
    {
        let query = query.as_query();
        let cached_text = match query {
            QueryRef::Text(sql) if self.conn().cache().enabled() => Some(sql),
            QueryRef::Text(sql) => {
                // Cache off (for instance behind PgBouncer in transaction
                // mode): prepare, run, drop.
                self.watch(sql);
                let statement = self.bounded(self.conn().client.prepare(sql)).await?;
                return self.bounded(op(statement)).await;
            }
            QueryRef::Prepared(_) => None,
        };
        let statement = match (query, cached_text) {
            (QueryRef::Prepared(statement), _) => statement.clone(),
            (_, Some(sql)) => self.prepare_cached(sql).await?,
            (QueryRef::Text(_), None) => unreachable!("uncached text returned above"),
        };
        match self.bounded(op(statement)).await {
            Err(error) if cached_text.is_some() && is_stale_plan(&error) => {
                let sql = cached_text.unwrap_or_default();
                tracing::debug!("a cached statement went stale after a schema change; preparing it again");
                self.conn().cache().remove(sql);
                let statement = self.prepare_cached(sql).await?;
                self.bounded(op(statement)).await
            }
            other => other,
        }
    }

    /// Runs a query and returns all its rows.
    ///
    /// # Errors
    ///
    /// The server's error, or a timeout error after `socket_timeout`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the server may still run the query; its answer is discarded.
    pub async fn query(
        &self,
        query: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let client = &self.conn().client;
        self.with_statement(query, |s| async move { client.query(&s, params).await }).await
    }

    /// Runs a query that returns exactly one row.
    ///
    /// # Errors
    ///
    /// As [`Client::query`], and an error when the query returns no row or
    /// more than one.
    ///
    /// # Cancel safety
    ///
    /// As [`Client::query`].
    pub async fn query_one(
        &self,
        query: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        let client = &self.conn().client;
        self.with_statement(query, |s| async move { client.query_one(&s, params).await }).await
    }

    /// Runs a query that returns at most one row.
    ///
    /// # Errors
    ///
    /// As [`Client::query`], and an error when the query returns more than one row.
    ///
    /// # Cancel safety
    ///
    /// As [`Client::query`].
    pub async fn query_opt(
        &self,
        query: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        let client = &self.conn().client;
        self.with_statement(query, |s| async move { client.query_opt(&s, params).await }).await
    }

    /// Runs a statement and returns how many rows it changed.
    ///
    /// # Errors
    ///
    /// As [`Client::query`].
    ///
    /// # Cancel safety
    ///
    /// As [`Client::query`].
    pub async fn execute(
        &self,
        query: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        let client = &self.conn().client;
        self.with_statement(query, |s| async move { client.execute(&s, params).await }).await
    }

    /// Prepares a statement without caching it.
    ///
    /// # Errors
    ///
    /// The server's error if the statement does not parse.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn prepare(&self, sql: &str) -> Result<Statement, Error> {
        self.watch(sql);
        self.bounded(self.conn().client.prepare(sql)).await
    }

    /// Runs one or more statements with the simple protocol, returning nothing.
    ///
    /// # Errors
    ///
    /// The server's error for the first statement that fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe; if the text may open a transaction, the connection is
    /// reset before reuse either way.
    pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.watch(sql);
        self.bounded(self.conn().client.batch_execute(sql)).await
    }

    /// Runs one or more statements with the simple protocol, returning text rows.
    ///
    /// # Errors
    ///
    /// As [`Client::batch_execute`].
    ///
    /// # Cancel safety
    ///
    /// As [`Client::batch_execute`].
    pub async fn simple_query(&self, sql: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
        self.watch(sql);
        self.bounded(self.conn().client.simple_query(sql)).await
    }

    /// Begins a transaction. Dropping the [`Transaction`] without committing
    /// rolls it back; if this future itself is dropped halfway (after
    /// `BEGIN` went out), the connection is rolled back before its next use.
    ///
    /// # Errors
    ///
    /// The server's error for `BEGIN`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe in the sense above: the next borrower never inherits the
    /// half-begun transaction.
    pub async fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        let conn: &mut PgConnection = &mut self.inner;
        conn.mark_dirty();
        let PgConnection { client, cache, dirty, broken, socket_timeout, .. } = conn;
        let begun = bounded(broken, *socket_timeout, client.transaction()).await?;
        // Committed or dropped, a Transaction ends its block itself.
        dirty.store(false, Ordering::Relaxed);
        Ok(Transaction::new(begun, cache, broken, *socket_timeout))
    }

    /// The statement cache's size and hit counts for this connection.
    pub fn statement_cache_stats(&self) -> CacheStats {
        self.conn().cache().stats()
    }

    /// What the pool knows about this connection (age, checkouts, ...).
    pub fn info(&self) -> &ResourceInfo {
        Pooled::info(&self.inner)
    }

    /// Destroys this connection instead of returning it to the pool.
    pub fn discard(self) {
        Pooled::discard(self.inner);
    }
}

/// Runs `fut` under `socket_timeout`, if one is set, and marks the
/// connection broken (destroyed when it comes back) when the query timed
/// out or the server ended the session: its state is then unknown, and the
/// driver task may not have noticed a closed socket yet.
pub(crate) async fn bounded<T>(
    broken: &AtomicBool,
    socket_timeout: Option<Duration>,
    fut: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let out = match socket_timeout {
        None => fut.await,
        Some(limit) => {
            if let Ok(out) = tokio::time::timeout(limit, fut).await {
                out
            } else {
                broken.store(true, Ordering::Relaxed);
                return Err(Error::__private_api_timeout());
            }
        }
    };
    if let Err(error) = &out
        && ends_session(error)
    {
        broken.store(true, Ordering::Relaxed);
    }
    out
}

/// Whether `error` means the session is over: the socket closed, or a
/// FATAL/PANIC from the server (terminated, shut down, crashed).
fn ends_session(error: &Error) -> bool {
    error.is_closed() || error.as_db_error().is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"))
}

/// "cached plan must not change result type" and the like: a prepared
/// statement no longer matches the schema.
pub(crate) fn is_stale_plan(error: &Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED)
        && error.as_db_error().is_some_and(|db| db.message().contains("cached plan"))
}

impl Deref for Client {
    type Target = tokio_postgres::Client;

    /// The raw client. The pool cannot see what is done with it, so the
    /// connection's session is reset (a queued `ROLLBACK`) when it comes back.
    fn deref(&self) -> &tokio_postgres::Client {
        self.conn().mark_dirty();
        &self.conn().client
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("connection", self.conn()).finish()
    }
}

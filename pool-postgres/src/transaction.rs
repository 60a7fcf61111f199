//! [`Transaction`]: a transaction on a pooled connection whose query
//! methods use the connection's statement cache, like the client guard's.

use std::future::Future;
use std::ops::Deref;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row, Statement};

use crate::cache::{self, StatementCache};
use crate::client::{Query, QueryRef, bounded, is_stale_plan};

/// A transaction begun with [`Client::transaction`](crate::Client::transaction).
///
/// `query`, `query_one`, `query_opt` and `execute` given SQL text use the
/// connection's statement cache (prepared statements outlive transactions,
/// so what is prepared here serves later calls too). Everything else of
/// `tokio_postgres::Transaction` (savepoints, `copy_in`, portals...) is
/// reachable through `Deref`. Dropped without [`commit`](Transaction::commit),
/// it rolls back.
pub struct Transaction<'a> {
    tx: tokio_postgres::Transaction<'a>,
    cache: &'a Mutex<StatementCache>,
    broken: &'a AtomicBool,
    socket_timeout: Option<Duration>,
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(
        tx: tokio_postgres::Transaction<'a>,
        cache: &'a Mutex<StatementCache>,
        broken: &'a AtomicBool,
        socket_timeout: Option<Duration>,
    ) -> Self {
        Self { tx, cache, broken, socket_timeout }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, StatementCache> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn bounded<T>(&self, fut: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        bounded(self.broken, self.socket_timeout, fut).await
    }

    /// Prepares `sql`, or returns the statement cached for it on this connection.
    ///
    /// # Errors
    ///
    /// The server's error if the statement does not parse.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a statement prepared by a dropped call is simply not cached.
    pub async fn prepare_cached(&self, sql: &str) -> Result<Statement, Error> {
        // Inside a transaction block, session dirtiness is the block's own
        // business: it ends itself on commit or drop.
        let prepare = self.bounded(self.tx.prepare(sql));
        Ok(cache::prepare_cached(self.cache, sql, prepare).await?.0)
    }

    /// Runs `op` with the statement for `query`. A cached statement made
    /// stale by a schema change is dropped from the cache (the error still
    /// reaches the caller: it has aborted the transaction).
    async fn with_statement<T, F, Fut>(&self, query: &(impl Query + ?Sized), op: F) -> Result<T, Error>
    where
        F: FnOnce(Statement) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let (statement, cached) = match query.as_query() {
            QueryRef::Prepared(statement) => (statement.clone(), None),
            QueryRef::Text(sql) if self.cache().enabled() => (self.prepare_cached(sql).await?, Some(sql)),
            QueryRef::Text(sql) => (self.bounded(self.tx.prepare(sql)).await?, None),
        };
        let out = self.bounded(op(statement)).await;
        if let (Err(error), Some(sql)) = (&out, cached)
            && is_stale_plan(error)
        {
            self.cache().remove(sql);
        }
        out
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
        self.with_statement(query, |s| async move { self.tx.query(&s, params).await }).await
    }

    /// Runs a query that returns exactly one row.
    ///
    /// # Errors
    ///
    /// As [`Transaction::query`], and an error when it returns no row or more than one.
    ///
    /// # Cancel safety
    ///
    /// As [`Transaction::query`].
    pub async fn query_one(
        &self,
        query: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        self.with_statement(query, |s| async move { self.tx.query_one(&s, params).await }).await
    }

    /// Runs a query that returns at most one row.
    ///
    /// # Errors
    ///
    /// As [`Transaction::query`], and an error when it returns more than one row.
    ///
    /// # Cancel safety
    ///
    /// As [`Transaction::query`].
    pub async fn query_opt(
        &self,
        query: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        self.with_statement(query, |s| async move { self.tx.query_opt(&s, params).await }).await
    }

    /// Runs a statement and returns how many rows it changed.
    ///
    /// # Errors
    ///
    /// As [`Transaction::query`].
    ///
    /// # Cancel safety
    ///
    /// As [`Transaction::query`].
    pub async fn execute(
        &self,
        query: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        self.with_statement(query, |s| async move { self.tx.execute(&s, params).await }).await
    }

    /// Commits the transaction.
    ///
    /// # Errors
    ///
    /// The server's error for `COMMIT` (the transaction is then rolled back).
    ///
    /// # Cancel safety
    ///
    /// If dropped before `COMMIT` is sent, the transaction rolls back.
    pub async fn commit(self) -> Result<(), Error> {
        let Self { tx, broken, socket_timeout, .. } = self;
        bounded(broken, socket_timeout, tx.commit()).await
    }

    /// Rolls the transaction back (dropping it does the same, without waiting).
    ///
    /// # Errors
    ///
    /// The server's error for `ROLLBACK`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the transaction ends either way.
    pub async fn rollback(self) -> Result<(), Error> {
        let Self { tx, broken, socket_timeout, .. } = self;
        bounded(broken, socket_timeout, tx.rollback()).await
    }
}

impl<'a> Deref for Transaction<'a> {
    type Target = tokio_postgres::Transaction<'a>;

    fn deref(&self) -> &tokio_postgres::Transaction<'a> {
        &self.tx
    }
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

//! [`Session`]: the one path every statement takes through a pooled
//! connection, whether it comes from the [`Client`](crate::Client) guard or
//! a [`Transaction`](crate::Transaction).
//!
//! For each statement, in order:
//! 1. **Statement.** A prepared [`Statement`] is used as given. SQL text is
//!    looked up in the connection's statement cache and prepared (then
//!    cached) on a miss; with the cache off it is prepared for this call.
//! 2. **Deadline.** Every round trip runs under the pool's `socket_timeout`.
//!    Running out of it, or an error that ends the session (closed socket,
//!    FATAL, PANIC), marks the connection broken: it is closed when it comes
//!    back instead of being handed to the next borrower.
//! 3. **Stale plans.** A cached statement the schema has changed under
//!    ("cached plan must not change result type") is dropped from the cache.
//! 4. **Hygiene.** Text that may leave the session inside a transaction
//!    block or holding a lock marks it dirty, and a dirty connection gets a
//!    `ROLLBACK` when it comes back (see [`crate::hygiene`]).
//!
//! The two callers differ in one way, the [`Scope`]: in autocommit a stale
//! plan is prepared again and the statement retried once (the server ran
//! nothing, so this is safe), and step 4 applies. Inside a transaction
//! block the failure has aborted the block, so nothing is retried; the
//! first failure is remembered so that `commit` can say the transaction was
//! rolled back instead of reporting success; and the block ends itself, so
//! there is nothing to watch.

use std::future::Future;
use std::sync::OnceLock;

use tokio_postgres::Statement;

use crate::cache;
use crate::connection::PgConnection;
use crate::error::Error;
use crate::hygiene;
use crate::query::{Query, QueryRef};

/// Where a statement runs; the one difference between the client guard's
/// and a transaction's statements.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// On the client guard, outside any transaction block of ours.
    Autocommit,
    /// Inside a [`Transaction`](crate::Transaction); the cell keeps the
    /// block's first failure.
    Transaction(&'a OnceLock<String>),
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

    /// Step 2: runs one round trip under `socket_timeout` and books its failure.
    pub(crate) async fn bounded<T>(
        &self,
        round_trip: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Error> {
        let out = match self.conn.socket_timeout {
            None => round_trip.await,
            Some(limit) => {
                if let Ok(out) = tokio::time::timeout(limit, round_trip).await {
                    out
                } else {
                    self.conn.mark_broken();
                    return Err(Error::timeout(limit));
                }
            }
        };
        out.map_err(|error| {
            let error = Error::from(error);
            if error.ends_session() {
                self.conn.mark_broken();
            }
            if let Scope::Transaction(first_failure) = self.scope {
                let _ = first_failure.set(error.to_string());
            }
            error
        })
    }

    /// Step 4, for text that does not go through the cache.
    pub(crate) fn watch(&self, sql: &str) {
        if matches!(self.scope, Scope::Autocommit) && hygiene::may_dirty(sql) {
            self.conn.mark_dirty();
        }
    }

    /// The statement cached for `sql` on this connection, or a new one
    /// (prepared, then cached); with the cache off, prepared every time.
    pub(crate) async fn prepare_cached(&self, sql: &str) -> Result<Statement, Error> {
        let prepare = self.bounded(self.client().prepare(sql));
        let (statement, dirties) = cache::prepare_cached(&self.conn.cache, sql, prepare).await?;
        if dirties && matches!(self.scope, Scope::Autocommit) {
            self.conn.mark_dirty();
        }
        Ok(statement)
    }

    /// Step 1: the statement for `query`, and the text it is cached under
    /// (`None` when it does not come from the cache).
    pub(crate) async fn statement<'q>(
        &self,
        query: &'q (impl Query + ?Sized),
    ) -> Result<(Statement, Option<&'q str>), Error> {
        match query.as_query() {
            QueryRef::Prepared(statement) => Ok((statement.clone(), None)),
            QueryRef::Text(sql) if self.conn.cache().enabled() => Ok((self.prepare_cached(sql).await?, Some(sql))),
            QueryRef::Text(sql) => {
                self.watch(sql);
                Ok((self.bounded(self.client().prepare(sql)).await?, None))
            }
        }
    }

    /// Step 3: drops a stale cached statement; returns whether the caller
    /// may prepare it again and retry (autocommit only).
    pub(crate) fn forget_if_stale<T>(&self, out: &Result<T, Error>, cached: Option<&str>) -> bool {
        match (out, cached) {
            (Err(error), Some(sql)) if error.is_stale_plan() => {
                self.conn.cache().remove(sql);
                matches!(self.scope, Scope::Autocommit)
            }
            _ => false,
        }
    }

    /// Steps 1 to 4 for a statement whose parameters can be bound twice:
    /// runs `op` with the statement for `query`, retrying once on a stale
    /// plan where that is safe.
    pub(crate) async fn run<T, F, Fut>(&self, query: &(impl Query + ?Sized), op: F) -> Result<T, Error>
    where
        F: Fn(&'a tokio_postgres::Client, Statement) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let (statement, cached) = self.statement(query).await?;
        let out = self.bounded(op(self.client(), statement)).await;
        if let (true, Some(sql)) = (self.forget_if_stale(&out, cached), cached) {
            tracing::debug!("a cached statement went stale after a schema change; preparing it again");
            let statement = self.prepare_cached(sql).await?;
            return self.bounded(op(self.client(), statement)).await;
        }
        out
    }
}

//! [`Transaction`]: a transaction block (or a savepoint inside one) on a
//! pooled connection, with the same query methods as the client guard.
//!
//! The block is begun and ended with plain `BEGIN`, `COMMIT` and `ROLLBACK`
//! (`SAVEPOINT`, `RELEASE`, `ROLLBACK TO` for nested ones) sent by this
//! module. A guard dropped without `commit` or `rollback` sends its
//! `ROLLBACK` at once without waiting (see [`crate::queued`]), so exactly
//! one `ROLLBACK` ends an abandoned block and the connection is clean
//! before anything else is sent on it. A statement in the block that failed
//! has aborted it on the server; `commit` then rolls back and says so
//! instead of reporting success.

use std::pin::pin;
use std::sync::OnceLock;

use tokio_postgres::IsolationLevel;

use crate::connection::PgConnection;
use crate::error::Error;
use crate::query::query_methods;
use crate::session::{Scope, Session};

/// A transaction begun with [`Client::transaction`](crate::Client::transaction)
/// or [`Transaction::savepoint`].
///
/// Its query methods are the client guard's: SQL text uses the connection's
/// statement cache (prepared statements outlive transactions, so what is
/// prepared here serves later calls too), and every statement runs under
/// `socket_timeout`. Dropped without [`commit`](Transaction::commit), it
/// rolls back.
pub struct Transaction<'a> {
    conn: &'a PgConnection,
    /// 0 for the transaction block, n for the n-th nested savepoint.
    depth: u32,
    /// The first statement that failed inside this block or savepoint.
    first_failure: OnceLock<String>,
    /// `COMMIT` or `ROLLBACK` has been sent and answered.
    ended: bool,
}

impl<'a> Transaction<'a> {
    /// Sends `begin` (`BEGIN ...`). If this future is dropped before the
    /// answer, the block may be open on the server with no guard to end it,
    /// so a `ROLLBACK` is sent at once (see [`Unanswered`]).
    pub(crate) async fn begin(conn: &'a PgConnection, begin: &str) -> Result<Self, Error> {
        let unanswered = Unanswered(Some(conn));
        let out = Session::new(conn, Scope::Autocommit).bounded(pin!(conn.client.batch_execute(begin))).await;
        unanswered.answered();
        out?;
        Ok(Self { conn, depth: 0, first_failure: OnceLock::new(), ended: false })
    }

    fn session(&self) -> Session<'_> {
        Session::new(self.conn, Scope::Transaction(&self.first_failure))
    }

    fn savepoint_name(depth: u32) -> String {
        format!("pool_savepoint_{depth}")
    }

    query_methods!();

    /// Opens a savepoint: a nested transaction that commits into this one
    /// (`RELEASE`) or rolls back to where it began (`ROLLBACK TO`), leaving
    /// this one usable.
    ///
    /// # Errors
    ///
    /// The server's error for `SAVEPOINT`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a savepoint left half-made is undone with this
    /// transaction.
    pub async fn savepoint(&mut self) -> Result<Transaction<'_>, Error> {
        let depth = self.depth + 1;
        let sql = format!("SAVEPOINT {}", Self::savepoint_name(depth));
        self.session().bounded(pin!(self.conn.client.batch_execute(&sql))).await?;
        Ok(Transaction { conn: self.conn, depth, first_failure: OnceLock::new(), ended: false })
    }

    /// Commits the transaction (releases the savepoint).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TransactionAborted`](crate::ErrorKind::TransactionAborted)
    /// if a statement in it failed (it has been rolled back), or the
    /// server's error for `COMMIT` (serialization failures are reported
    /// here; the transaction is then rolled back too).
    ///
    /// # Cancel safety
    ///
    /// If dropped before `COMMIT` is answered, a `ROLLBACK` follows: the
    /// transaction is committed only if `COMMIT` reached the server first.
    pub async fn commit(mut self) -> Result<(), Error> {
        if let Some(first_failure) = self.first_failure.get().cloned() {
            self.end(false).await?;
            return Err(Error::transaction_aborted(first_failure));
        }
        self.end(true).await
    }

    /// Rolls the transaction back (to the savepoint). Dropping it does the
    /// same without waiting.
    ///
    /// # Errors
    ///
    /// The server's error for `ROLLBACK`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the transaction ends either way.
    pub async fn rollback(mut self) -> Result<(), Error> {
        self.end(false).await
    }

    async fn end(&mut self, commit: bool) -> Result<(), Error> {
        let sql = self.end_sql(commit);
        // Ended from here on, even if this future is dropped before the
        // answer: the first poll queues the statement, so a ROLLBACK from
        // `drop` would reach the server after the COMMIT, with no block left
        // to end (a "there is no transaction in progress" warning). Should
        // the block outlive this (dropped while waiting out a backlog, before
        // the COMMIT went out), the drain of the abandoned request finds it
        // open and rolls it back. Answered, well or not, the block is over
        // on the server (a failed COMMIT rolls back); a lost connection is
        // closed on return.
        self.ended = true;
        Session::new(self.conn, Scope::Autocommit).bounded(pin!(self.conn.client.batch_execute(&sql))).await
    }

    fn end_sql(&self, commit: bool) -> String {
        match (self.depth, commit) {
            (0, true) => String::from("COMMIT"),
            (0, false) => String::from("ROLLBACK"),
            (depth, true) => format!("RELEASE SAVEPOINT {}", Self::savepoint_name(depth)),
            (depth, false) => {
                let name = Self::savepoint_name(depth);
                format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}")
            }
        }
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.ended && !crate::queued::queue(&self.conn.client, &self.end_sql(false)) {
            self.conn.mark_broken();
        }
    }
}

/// A `BEGIN` on its way: the future carrying it holds this, and dropping
/// it before [`Unanswered::answered`] (the future was cancelled) rolls back
/// whatever the `BEGIN` opened.
struct Unanswered<'a>(Option<&'a PgConnection>);

impl Unanswered<'_> {
    fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.0
            && !crate::queued::queue(&conn.client, "ROLLBACK")
        {
            conn.mark_broken();
        }
    }
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("depth", &self.depth)
            .field("failed", &self.first_failure.get().is_some())
            .finish_non_exhaustive()
    }
}

/// Options for a transaction's `BEGIN`; from [`Client::build_transaction`](crate::Client::build_transaction).
#[must_use = "a transaction builder does nothing until .start() is awaited"]
pub struct TransactionBuilder<'a> {
    conn: &'a PgConnection,
    isolation_level: Option<IsolationLevel>,
    read_only: Option<bool>,
    deferrable: Option<bool>,
}

impl<'a> TransactionBuilder<'a> {
    pub(crate) fn new(conn: &'a PgConnection) -> Self {
        Self { conn, isolation_level: None, read_only: None, deferrable: None }
    }

    /// The isolation level (default: the server's, usually read committed).
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = Some(level);
        self
    }

    /// Read-only (or explicitly read-write).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = Some(read_only);
        self
    }

    /// Deferrable (only matters for serializable read-only transactions).
    pub fn deferrable(mut self, deferrable: bool) -> Self {
        self.deferrable = Some(deferrable);
        self
    }

    /// Begins the transaction.
    ///
    /// # Errors
    ///
    /// The server's error for `BEGIN`.
    ///
    /// # Cancel safety
    ///
    /// As [`Client::transaction`](crate::Client::transaction).
    pub async fn start(self) -> Result<Transaction<'a>, Error> {
        let mut begin = String::from("BEGIN");
        let mut modes = Vec::new();
        match self.isolation_level {
            Some(IsolationLevel::ReadUncommitted) => modes.push("ISOLATION LEVEL READ UNCOMMITTED"),
            Some(IsolationLevel::ReadCommitted) => modes.push("ISOLATION LEVEL READ COMMITTED"),
            Some(IsolationLevel::RepeatableRead) => modes.push("ISOLATION LEVEL REPEATABLE READ"),
            Some(IsolationLevel::Serializable) => modes.push("ISOLATION LEVEL SERIALIZABLE"),
            Some(_) | None => {}
        }
        match self.read_only {
            Some(true) => modes.push("READ ONLY"),
            Some(false) => modes.push("READ WRITE"),
            None => {}
        }
        match self.deferrable {
            Some(true) => modes.push("DEFERRABLE"),
            Some(false) => modes.push("NOT DEFERRABLE"),
            None => {}
        }
        if !modes.is_empty() {
            begin.push(' ');
            begin.push_str(&modes.join(", "));
        }
        Transaction::begin(self.conn, &begin).await
    }
}

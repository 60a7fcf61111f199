//! [`Client`]: the guard a PostgreSQL pool hands out.

use pool_core::{Pooled, ResourceInfo};

use crate::error::Error;
use crate::manager::PgManager;
use crate::query::query_methods;
use crate::session::{Scope, Session};
use crate::transaction::{Transaction, TransactionBuilder};

/// A connection borrowed from a [`PgPool`](crate::PgPool); it goes back to
/// the pool when dropped.
///
/// `query`, `query_one`, `query_opt`, `execute` and the `_raw` variants
/// given SQL text use the connection's statement cache: the first call
/// prepares the statement, later calls with the same text skip straight to
/// executing it (one round trip instead of two). Given a prepared
/// [`Statement`](tokio_postgres::Statement), they run it as is. The
/// `query_typed` family sends unnamed statements with the types given.
/// Every statement runs under the pool's `socket_timeout` (see
/// [`Error`]).
///
/// Text that may leave the session inside a transaction block (`BEGIN`,
/// `DECLARE`, `LOCK`, ...) marks the connection, and a `ROLLBACK` is sent
/// when it comes back, before anyone else can use it. For what the guard
/// does not wrap, [`raw_reset_on_return`](Client::raw_reset_on_return)
/// hands out the tokio-postgres client and marks the connection likewise.
pub struct Client {
    inner: Pooled<PgManager>,
}

impl Client {
    pub(crate) fn new(inner: Pooled<PgManager>) -> Self {
        Self { inner }
    }

    fn session(&self) -> Session<'_> {
        Session::new(&self.inner, Scope::Autocommit)
    }

    query_methods!();

    /// Begins a transaction. Dropping the [`Transaction`] without committing
    /// rolls it back at once (a `ROLLBACK` is sent without waiting); if this
    /// future itself is dropped after `BEGIN` went out, the connection is
    /// rolled back when it comes back.
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
        Transaction::begin(&self.inner, "BEGIN").await
    }

    /// Configures a transaction (isolation level, read-only, deferrable)
    /// before beginning it.
    pub fn build_transaction(&mut self) -> TransactionBuilder<'_> {
        TransactionBuilder::new(&self.inner)
    }

    /// The tokio-postgres client underneath, for what this guard does not
    /// wrap. The pool cannot see what is done with it, so the connection is
    /// marked: when it comes back, a `ROLLBACK` is sent ahead of the next
    /// borrower's first statement. Statements sent through it bypass the
    /// statement cache and `socket_timeout`.
    pub fn raw_reset_on_return(&self) -> &tokio_postgres::Client {
        self.inner.mark_dirty();
        &self.inner.client
    }

    /// What the pool knows about this connection (age, checkouts, ...).
    pub fn info(&self) -> &ResourceInfo {
        Pooled::info(&self.inner)
    }

    /// Whether the connection is known to be closed.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Destroys this connection instead of returning it to the pool.
    pub fn discard(self) {
        Pooled::discard(self.inner);
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("connection", &*self.inner).finish()
    }
}

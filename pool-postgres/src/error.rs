//! [`Error`]: what a statement sent through a pooled [`Client`](crate::Client)
//! or [`Transaction`](crate::Transaction) failed with.

use std::fmt;
use std::time::Duration;

use pool_core::ErrorChain;
use tokio_postgres::error::{DbError, SqlState};

/// A statement through the pool's client guard or a transaction failed.
///
/// Most failures come from the server or the driver ([`ErrorKind::Postgres`]:
/// see [`Error::code`] and [`Error::as_db_error`]); the pool adds the ones it
/// detects itself. `Display` gives the whole story in one line (the server's
/// message included, not just tokio-postgres's "db error").
pub struct Error {
    kind: ErrorKind,
    postgres: Option<tokio_postgres::Error>,
    /// What the pool knows about the likely cause, appended to the message.
    hint: Option<&'static str>,
    /// The connection was closed before the statement was handed to it, so
    /// nothing of it reached the server.
    not_sent: bool,
    /// It ran on a shared connection, where a timeout sends no cancel.
    shared: bool,
    /// Getting a connection failed ([`ErrorKind::Acquire`]).
    pool: Option<Box<crate::pool::PoolError>>,
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server or the driver reported it; the tokio-postgres error is
    /// the [`source`](std::error::Error::source).
    Postgres,
    /// The statement did not finish within the pool's `socket_timeout`, and
    /// the pool asked the server to cancel it.
    Timeout {
        /// The `socket_timeout` in force.
        limit: Duration,
        /// The server confirmed the cancel in time: the statement was
        /// stopped (in autocommit, nothing it did was kept) and the
        /// connection is usable. `false`: no answer came; the statement may
        /// still be running or may have finished, and the connection is
        /// closed when it comes back.
        cancelled: bool,
    },
    /// No answer came, and the server is not running the statement: it
    /// finished it or never received it, so the network path to it is dead
    /// (see the `liveness_check_after` setting). The statement may or may
    /// not have taken effect; the connection is closed when it comes back.
    Unanswered {
        /// How long the statement had waited.
        waited: Duration,
    },
    /// A statement earlier in this transaction failed, so the server had
    /// already rolled the transaction back; `commit` reports this instead of
    /// success. Nothing the transaction wrote was committed.
    TransactionAborted {
        /// The earlier failure, as text.
        first_failure: String,
    },
    /// Behind a transaction pooler (`pooler=transaction`, `pgbouncer=true`),
    /// this would leave state in a server session that other clients get
    /// next, so it was not sent (see the `pooler_session_state` setting).
    SessionState {
        /// The statement (`SET`, `LISTEN`, ...).
        statement: &'static str,
        /// Its transaction-scoped alternative.
        instead: &'static str,
    },
    /// Behind a transaction pooler that keeps no prepared statements
    /// (`pooler=transaction`, `pgbouncer=true`), this needs a named
    /// server-side statement, which would not survive to the next round trip.
    NeedsNamedStatement {
        /// What was asked for (`prepare`, `copy_in`, ...).
        operation: &'static str,
    },
    /// Behind a transaction pooler statements go out unnamed with their
    /// parameter types taken from the Rust values, and this value's type
    /// is not one the pool can name.
    UnknownParameterType {
        /// The parameter's position (`$1` is 1).
        position: usize,
    },
    /// In shared mode ([`PgPool::shared`](crate::PgPool::shared)), this
    /// would leave state on a connection other callers' statements share (a
    /// transaction block, a session setting, `LISTEN`, a cursor, a lock, a
    /// statement prepared on some other connection), so it was not sent.
    NeedsExclusive {
        /// What was asked for (`BEGIN`, `SET`, `a prepared Statement`, ...).
        operation: &'static str,
    },
    /// No connection to run the statement on: getting one failed (a
    /// timeout, the pool closed, the server refusing); the pool's error is
    /// the [`source`](std::error::Error::source). Nothing was sent.
    Acquire,
}

impl Error {
    fn of(kind: ErrorKind) -> Self {
        Self { kind, postgres: None, hint: None, not_sent: false, shared: false, pool: None }
    }

    pub(crate) fn needs_exclusive(operation: &'static str) -> Self {
        Self::of(ErrorKind::NeedsExclusive { operation })
    }

    pub(crate) fn acquire(error: crate::pool::PoolError) -> Self {
        Self { pool: Some(Box::new(error)), ..Self::of(ErrorKind::Acquire) }
    }

    /// The pool's error, for [`ErrorKind::Acquire`].
    pub fn as_pool_error(&self) -> Option<&crate::pool::PoolError> {
        self.pool.as_deref()
    }

    /// It ran on a shared connection (a timeout there sends no cancel).
    pub(crate) fn on_shared(mut self) -> Self {
        self.shared = true;
        self
    }

    pub(crate) fn timeout(limit: Duration, cancelled: bool) -> Self {
        Self::of(ErrorKind::Timeout { limit, cancelled })
    }

    pub(crate) fn unanswered(waited: Duration) -> Self {
        Self::of(ErrorKind::Unanswered { waited })
    }

    pub(crate) fn transaction_aborted(first_failure: String) -> Self {
        Self::of(ErrorKind::TransactionAborted { first_failure })
    }

    pub(crate) fn session_state(statement: &'static str, instead: &'static str) -> Self {
        Self::of(ErrorKind::SessionState { statement, instead })
    }

    pub(crate) fn needs_named_statement(operation: &'static str) -> Self {
        Self::of(ErrorKind::NeedsNamedStatement { operation })
    }

    pub(crate) fn unknown_parameter_type(position: usize) -> Self {
        Self::of(ErrorKind::UnknownParameterType { position })
    }

    /// The connection was found closed before the statement went out.
    pub(crate) fn not_sent(mut self) -> Self {
        self.not_sent = true;
        self
    }

    /// Whether nothing of the statement can have reached the server.
    pub(crate) fn was_not_sent(&self) -> bool {
        self.not_sent
    }

    /// Adds what the pool knows about the likely cause.
    pub(crate) fn with_hint(mut self, hint: &'static str) -> Self {
        self.hint = Some(hint);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The server's SQLSTATE, for errors the server reported.
    pub fn code(&self) -> Option<&SqlState> {
        self.postgres.as_ref().and_then(tokio_postgres::Error::code)
    }

    /// The server's error (message, detail, hint, position...), if the server reported it.
    pub fn as_db_error(&self) -> Option<&DbError> {
        self.postgres.as_ref().and_then(tokio_postgres::Error::as_db_error)
    }

    /// The tokio-postgres error underneath, if the failure came from the driver or server.
    pub fn as_postgres(&self) -> Option<&tokio_postgres::Error> {
        self.postgres.as_ref()
    }

    /// Whether the statement ran out of `socket_timeout`.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::Timeout { .. })
    }

    /// Whether the connection is closed (the server ended the session or the socket died).
    pub fn is_closed(&self) -> bool {
        self.postgres.as_ref().is_some_and(tokio_postgres::Error::is_closed)
    }

    /// "cached plan must not change result type": a prepared statement no
    /// longer matches the schema (nothing ran).
    pub(crate) fn is_stale_plan(&self) -> bool {
        self.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED)
            && self.as_db_error().is_some_and(|db| db.message().contains("cached plan"))
    }

    /// 26000 (the named statement does not exist) or 42P05 (it exists
    /// already): on a connection only this pool uses, that happens after
    /// `DEALLOCATE`/`DISCARD ALL`; otherwise a transaction pooler is
    /// handing the statements to other server connections.
    pub(crate) fn is_lost_statement(&self) -> bool {
        self.code().is_some_and(|code| {
            *code == SqlState::INVALID_SQL_STATEMENT_NAME || *code == SqlState::DUPLICATE_PSTATEMENT
        })
    }

    /// Whether the session is over: the socket closed, or a FATAL/PANIC from
    /// the server (terminated, shut down, crashed).
    pub(crate) fn ends_session(&self) -> bool {
        self.is_closed() || self.as_db_error().is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Self {
        Self { postgres: Some(error), ..Self::of(ErrorKind::Postgres) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_kind(f)?;
        match self.hint {
            Some(hint) => write!(f, "; {hint}"),
            None => Ok(()),
        }
    }
}

impl Error {
    fn fmt_kind(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Postgres => match &self.postgres {
                Some(error) => write!(f, "{}", ErrorChain(error)),
                None => f.write_str("the server or driver failed"),
            },
            ErrorKind::Timeout { limit, cancelled: true } => write!(
                f,
                "the statement did not finish within socket_timeout ({limit:?}) and was cancelled on the \
                 server (raise socket_timeout if such statements are expected)"
            ),
            ErrorKind::Timeout { limit, cancelled: false } if self.shared => write!(
                f,
                "the statement did not finish within socket_timeout ({limit:?}) on a shared connection: no \
                 cancel is sent there (it could stop another caller's statement), so it may still run or \
                 have finished; the connection takes no new statements and is closed once the others on it \
                 are answered"
            ),
            ErrorKind::Timeout { limit, cancelled: false } => write!(
                f,
                "the statement did not finish within socket_timeout ({limit:?}), and the server did not \
                 confirm a cancel within {:?}: it may still run or have finished; the connection will be \
                 closed",
                crate::side_channel::SIDE_BOUND
            ),
            ErrorKind::Unanswered { waited } => write!(
                f,
                "no answer after {waited:?}, and the server is not running the statement (it finished it or \
                 never received it): the network path to the server is dead; the connection will be closed, \
                 and the statement may or may not have taken effect"
            ),
            ErrorKind::TransactionAborted { first_failure } => write!(
                f,
                "the transaction was rolled back, not committed: an earlier statement in it failed \
                 ({first_failure})"
            ),
            ErrorKind::SessionState { statement, instead } => write!(
                f,
                "{statement} was not sent: behind a transaction pooler (pooler=transaction, pgbouncer=true) it \
                 would leave state in a server session that other clients get next; use {instead} \
                 (or set pooler_session_state=warn to send it anyway)"
            ),
            ErrorKind::NeedsNamedStatement { operation } => write!(
                f,
                "{operation} needs a named prepared statement, which a transaction pooler does not keep \
                 (pooler=transaction, pgbouncer=true): pass the SQL text to query or execute instead (sent \
                 unnamed, in one round trip); behind PgBouncer 1.21+ with max_prepared_statements > 0, set \
                 pooler=transaction-prepared"
            ),
            ErrorKind::NeedsExclusive { operation } => write!(
                f,
                "{operation} was not sent: in shared mode statements from many callers share a connection, \
                 and this would leave state on it that the others would run in (or need a connection of its \
                 own); take a connection of your own with PgPool::get() for transactions, session settings, \
                 LISTEN, COPY, cursors and prepared statements"
            ),
            ErrorKind::Acquire => match &self.pool {
                Some(error) => write!(f, "no connection for the statement: {}", ErrorChain(&**error)),
                None => f.write_str("no connection for the statement"),
            },
            ErrorKind::UnknownParameterType { position } => write!(
                f,
                "parameter ${position}: its PostgreSQL type cannot be told from its Rust type, and behind a \
                 transaction pooler (pooler=transaction) statements are sent unnamed with declared types; use \
                 query_typed with an explicit Type, or pass it as text and cast it in the SQL (${position}::type)"
            ),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("postgres", &self.postgres)
            .field("hint", &self.hint)
            .field("not_sent", &self.not_sent)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match (&self.postgres, &self.pool) {
            (Some(postgres), _) => Some(postgres),
            (None, Some(pool)) => Some(&**pool),
            (None, None) => None,
        }
    }
}

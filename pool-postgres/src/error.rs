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
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server or the driver reported it; the tokio-postgres error is
    /// the [`source`](std::error::Error::source).
    Postgres,
    /// The statement did not finish within the pool's `socket_timeout`. The
    /// connection's state is unknown, so it is closed when it comes back.
    Timeout {
        /// The `socket_timeout` in force.
        limit: Duration,
    },
    /// A statement earlier in this transaction failed, so the server had
    /// already rolled the transaction back; `commit` reports this instead of
    /// success. Nothing the transaction wrote was committed.
    TransactionAborted {
        /// The earlier failure, as text.
        first_failure: String,
    },
}

impl Error {
    pub(crate) fn timeout(limit: Duration) -> Self {
        Self { kind: ErrorKind::Timeout { limit }, postgres: None }
    }

    pub(crate) fn transaction_aborted(first_failure: String) -> Self {
        Self { kind: ErrorKind::TransactionAborted { first_failure }, postgres: None }
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

    /// Whether the session is over: the socket closed, or a FATAL/PANIC from
    /// the server (terminated, shut down, crashed).
    pub(crate) fn ends_session(&self) -> bool {
        self.is_closed() || self.as_db_error().is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Self {
        Self { kind: ErrorKind::Postgres, postgres: Some(error) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Postgres => match &self.postgres {
                Some(error) => write!(f, "{}", ErrorChain(error)),
                None => f.write_str("the server or driver failed"),
            },
            ErrorKind::Timeout { limit } => write!(
                f,
                "the statement did not finish within socket_timeout ({limit:?}); the connection will be \
                 closed (raise socket_timeout if such statements are expected)"
            ),
            ErrorKind::TransactionAborted { first_failure } => write!(
                f,
                "the transaction was rolled back, not committed: an earlier statement in it failed \
                 ({first_failure})"
            ),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error").field("kind", &self.kind).field("postgres", &self.postgres).finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.postgres.as_ref().map(|e| e as _)
    }
}

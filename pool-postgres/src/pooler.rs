//! [`Pooler`]: what stands between the pool and the server, and what that
//! allows to be sent.
//!
//! A transaction pooler (PgBouncer with `pool_mode = transaction`, Supavisor,
//! pgcat, RDS Proxy...) hands each transaction, or each statement outside
//! one, to whichever server connection is free. What one statement leaves
//! in the server session is then found by some other client's statement,
//! and what a client left before is gone. Two things follow:
//! - **Named prepared statements** (tokio-postgres names them `s0`, `s1`,
//!   ... from a counter that starts at 0 in every process) do not survive:
//!   a statement prepared through one server connection is missing on the
//!   next (`26000`), already there under another process's text (`42P05`),
//!   or, worst, there with another process's text, which then runs in its
//!   place. So in [`Pooler::Transaction`] every statement goes out unnamed,
//!   Parse/Bind/Describe/Execute/Sync in one round trip (one pooler
//!   transaction), with parameter types taken from the Rust values (see
//!   [`crate::param_types`]), or with the simple protocol.
//! - **Session state** (`SET`, `LISTEN`, session advisory locks, temporary
//!   tables, `PREPARE`, `DECLARE ... WITH HOLD`) lands on a server
//!   connection that other clients use next; see [`crate::session_state`].
//!
//! PgBouncer 1.21 and later can keep protocol-level prepared statements
//! across server connections (`max_prepared_statements` > 0, on by default
//! from 1.24): behind such a pooler [`Pooler::TransactionKeepsPrepared`]
//! keeps the statement cache on and still guards session state.

use std::str::FromStr;

/// What stands between this pool and the server; the `pooler` setting (also
/// `pgbouncer=true`, Prisma's name for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pooler {
    /// The server itself, or a pooler in session mode: every feature works.
    #[default]
    None,
    /// A transaction pooler that keeps nothing between transactions
    /// (PgBouncer in transaction mode before 1.21, or with
    /// `max_prepared_statements = 0`): only unnamed statements and the simple
    /// protocol are sent, `prepare` is refused, and session state is refused
    /// (or warned about; see the `pooler_session_state` setting).
    Transaction,
    /// A transaction pooler that keeps protocol-level prepared statements
    /// (PgBouncer 1.21+ with `max_prepared_statements` > 0): the statement
    /// cache stays on; session state is guarded as for `Transaction`.
    TransactionKeepsPrepared,
}

impl Pooler {
    /// Whether statements must go out unnamed.
    pub(crate) fn unnamed_only(self) -> bool {
        self == Self::Transaction
    }

    /// Whether session state is guarded.
    pub(crate) fn transaction_mode(self) -> bool {
        self != Self::None
    }
}

impl FromStr for Pooler {
    type Err = ();

    /// `none`/`false`/`off`, `transaction`/`true` (so `pgbouncer=true` reads
    /// as it does for Prisma), `transaction-prepared`.
    fn from_str(text: &str) -> Result<Self, ()> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" | "false" | "off" | "0" | "session" => Ok(Self::None),
            "transaction" | "true" | "on" | "1" => Ok(Self::Transaction),
            "transaction-prepared" | "transaction_prepared" | "prepared" => {
                Ok(Self::TransactionKeepsPrepared)
            }
            _ => Err(()),
        }
    }
}

/// What happens to a statement that would leave session state behind a
/// transaction pooler; the `pooler_session_state` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SessionStatePolicy {
    /// Refuse it before it is sent, with an error naming the statement and
    /// its transaction-scoped alternative (the default).
    #[default]
    Refuse,
    /// Send it, and log a warning naming the statement and the alternative.
    Warn,
}

impl FromStr for SessionStatePolicy {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text.trim().to_ascii_lowercase().as_str() {
            "refuse" | "error" => Ok(Self::Refuse),
            "warn" | "warning" => Ok(Self::Warn),
            _ => Err(()),
        }
    }
}

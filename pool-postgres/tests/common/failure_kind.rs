//! Short names for failures, so that a long run can count them by kind
//! ("get timed out (create) after SQLSTATE 53300", "socket timeout",
//! "SQLSTATE 57P01", ...) instead of keeping every message.

use pool_postgres::{ErrorKind, PoolError};

/// The kind of a failed `get`.
pub fn of_get(error: &PoolError) -> String {
    match error {
        PoolError::Timeout { phase, last_error, .. } => match last_error {
            Some(last) => format!("get timed out ({phase}) after {}", of_driver(last)),
            None => format!("get timed out ({phase})"),
        },
        PoolError::Backend(e) => format!("get failed: {}", of_driver(e)),
        PoolError::Closed => String::from("get: pool closed"),
        other => format!("get: {}", without_digits(&other.to_string())),
    }
}

/// The kind of a failed statement (or `commit`).
pub fn of_statement(error: &pool_postgres::Error) -> String {
    match error.kind() {
        ErrorKind::Timeout { .. } => String::from("socket timeout"),
        ErrorKind::TransactionAborted { .. } => String::from("transaction aborted"),
        _ => match error.as_postgres() {
            Some(e) => of_driver(e),
            None => without_digits(&pool_postgres::ErrorChain(error).to_string()),
        },
    }
}

/// The kind of a tokio-postgres error: its SQLSTATE, "connection closed",
/// or its text without digits (ports and pids vary).
pub fn of_driver(error: &tokio_postgres::Error) -> String {
    if let Some(code) = error.code() {
        format!("SQLSTATE {}", code.code())
    } else if error.is_closed() {
        String::from("connection closed")
    } else {
        without_digits(&pool_postgres::ErrorChain(error).to_string())
    }
}

fn without_digits(text: &str) -> String {
    let text: String = text.chars().filter(|c| !c.is_ascii_digit()).collect();
    text.chars().take(100).collect()
}

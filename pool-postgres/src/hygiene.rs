//! Which SQL text can leave a session in a state the next borrower must not
//! inherit (an open transaction, a cursor, a lock).
//!
//! tokio-postgres does not expose the transaction status the server reports
//! after each command, so the client guard watches the SQL it is given: text
//! that starts a transaction block or holds session resources marks the
//! connection, and a marked connection gets a `ROLLBACK` queued when it is
//! returned (see [`crate::connection::PgConnection::reset_on_return`]). Being
//! conservative only costs a queued `ROLLBACK`, never correctness.

/// Keywords that, as the first word of a statement, may leave the session
/// inside a transaction block or holding per-session state that a
/// `ROLLBACK` clears.
const MARKING: &[&str] = &["BEGIN", "START", "SAVEPOINT", "DECLARE", "LOCK", "PREPARE"];

/// First words that need a connection of their own beyond those that mark
/// it: `COPY` holds the connection for its data stream.
const OWN_CONNECTION: &[&str] = &["COPY"];

/// Whether `sql` (one or several statements) may leave the session dirty.
pub(crate) fn may_dirty(sql: &str) -> bool {
    statements(sql).any(|first_word| MARKING.iter().any(|k| first_word.eq_ignore_ascii_case(k)))
}

/// What in `sql` needs a connection of its own, so shared mode refuses it:
/// session state ([`crate::session_state`]), a transaction block, a
/// cursor, a lock, `PREPARE`, `COPY`.
pub(crate) fn needs_exclusive(sql: &str) -> Option<&'static str> {
    if let Some(found) = crate::session_state::find(sql) {
        return Some(found.statement);
    }
    statements(sql).find_map(|first_word| {
        MARKING.iter().chain(OWN_CONNECTION).copied().find(|k| first_word.eq_ignore_ascii_case(k))
    })
}

/// What SQL text does to a session, decided once per text and kept with
/// its cached statement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Traits {
    /// It may leave the session dirty ([`may_dirty`]).
    pub(crate) dirties: bool,
    /// What shared mode refuses in it ([`needs_exclusive`]).
    pub(crate) needs_exclusive: Option<&'static str>,
}

impl Traits {
    pub(crate) fn of(sql: &str) -> Self {
        Self { dirties: may_dirty(sql), needs_exclusive: needs_exclusive(sql) }
    }
}

/// The first word of each `;`-separated statement, skipping comments. Splits
/// naively (a `;` inside a string literal starts a "statement" too), which
/// can only err towards marking.
fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').filter_map(|stmt| first_word(stmt))
}

fn first_word(mut s: &str) -> Option<&str> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    let end = s.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

#[cfg(test)]
mod tests {
    use super::may_dirty;

    #[test]
    fn transaction_starts_mark_the_session() {
        for sql in ["BEGIN", "begin isolation level serializable", "  START TRANSACTION", "SELECT 1; BEGIN"] {
            assert!(may_dirty(sql), "{sql}");
        }
        assert!(may_dirty("/* note */ -- comment\n BeGiN"));
        assert!(may_dirty("DECLARE c CURSOR WITH HOLD FOR SELECT 1"));
    }

    #[test]
    fn ordinary_statements_do_not() {
        for sql in ["SELECT 1", "UPDATE t SET begin = 1", "insert into begins values (1)", "", "COMMIT"] {
            assert!(!may_dirty(sql), "{sql}");
        }
    }
}

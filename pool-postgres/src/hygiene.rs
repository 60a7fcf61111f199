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

/// Whether `sql` (one or several statements) may leave the session dirty.
pub(crate) fn may_dirty(sql: &str) -> bool {
    marking_word(sql).is_some()
}

/// The keyword that makes `sql` leave the session dirty, upper case, if any.
pub(crate) fn marking_word(sql: &str) -> Option<&'static str> {
    statements(sql)
        .find_map(|first_word| MARKING.iter().copied().find(|k| first_word.eq_ignore_ascii_case(k)))
}

/// Whether some statement in `sql` starts with `word` (any case).
pub(crate) fn has_statement(sql: &str, word: &str) -> bool {
    statements(sql).any(|first_word| first_word.eq_ignore_ascii_case(word))
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

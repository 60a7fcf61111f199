//! Statements that leave state in the server session, which a transaction
//! pooler hands to other clients next: found in SQL text before it is sent.
//!
//! The check reads the text with string literals, quoted identifiers and
//! comments blanked out, splits it at `;` and looks at each statement's
//! first words, and for session advisory locks and `set_config(..., false)`
//! at the function calls anywhere in it. It errs towards finding: a match
//! inside something it cannot see through (a function body, say) is found
//! too, and the `pooler_session_state=warn` setting is the way out.

/// A statement that would leave session state, and what to do instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionState {
    /// The statement as a user would name it (`SET`, `LISTEN`...).
    pub(crate) statement: &'static str,
    /// Its transaction-scoped alternative.
    pub(crate) instead: &'static str,
}

const SET: SessionState = SessionState {
    statement: "SET",
    instead: "SET LOCAL inside a transaction, or a setting on the role (ALTER ROLE ... SET)",
};
const RESET: SessionState = SessionState { statement: "RESET", instead: "SET LOCAL inside a transaction" };
const LISTEN: SessionState = SessionState {
    statement: "LISTEN",
    instead: "a direct connection to the server (not through the pooler) for notifications",
};
const UNLISTEN: SessionState =
    SessionState { statement: "UNLISTEN", instead: "a direct connection to the server for notifications" };
const PREPARE: SessionState = SessionState {
    statement: "PREPARE",
    instead: "sending the statement's text each time (query and execute send it unnamed)",
};
const DEALLOCATE: SessionState = SessionState {
    statement: "DEALLOCATE",
    instead: "nothing: no statement is prepared by name behind a transaction pooler",
};
const DISCARD: SessionState =
    SessionState { statement: "DISCARD", instead: "nothing: the pooler resets server sessions itself" };
const HOLD_CURSOR: SessionState = SessionState {
    statement: "DECLARE ... WITH HOLD",
    instead: "DECLARE without WITH HOLD, inside a transaction",
};
const TEMP_TABLE: SessionState = SessionState {
    statement: "CREATE TEMP TABLE",
    instead: "CREATE TEMP TABLE ... ON COMMIT DROP inside a transaction",
};
const ADVISORY_LOCK: SessionState = SessionState {
    statement: "a session advisory lock (pg_advisory_lock and friends)",
    instead: "pg_advisory_xact_lock inside a transaction (released at commit)",
};
const SET_CONFIG: SessionState = SessionState {
    statement: "set_config(..., false)",
    instead: "set_config(..., true) inside a transaction",
};

/// The first statement in `sql` that would leave session state.
pub(crate) fn find(sql: &str) -> Option<SessionState> {
    let code = code_only(sql);
    code.split(';').find_map(in_statement)
}

fn in_statement(statement: &str) -> Option<SessionState> {
    let words: Vec<&str> = statement.split_whitespace().take(6).collect();
    let word = |i: usize| words.get(i).copied().unwrap_or("");
    let found = match word(0) {
        "set" => (!matches!(word(1), "local" | "transaction" | "constraints")).then_some(SET),
        "reset" => Some(RESET),
        "listen" => Some(LISTEN),
        "unlisten" => Some(UNLISTEN),
        "prepare" if word(1) != "transaction" => Some(PREPARE),
        "deallocate" => Some(DEALLOCATE),
        "discard" => Some(DISCARD),
        "declare" if statement.contains(" with hold") => Some(HOLD_CURSOR),
        "create" if creates_temp_table(&words) && !statement.contains("on commit drop") => Some(TEMP_TABLE),
        _ => None,
    };
    found.or_else(|| calls(statement))
}

fn creates_temp_table(words: &[&str]) -> bool {
    let after_create = words.iter().skip(1).take(3);
    after_create.take_while(|w| **w != "table").any(|w| matches!(*w, "temp" | "temporary"))
}

/// Function calls that hold or set session state, anywhere in the statement.
fn calls(statement: &str) -> Option<SessionState> {
    const ADVISORY: &[&str] = &[
        "pg_advisory_lock(",
        "pg_advisory_lock_shared(",
        "pg_try_advisory_lock(",
        "pg_try_advisory_lock_shared(",
        "pg_advisory_unlock(",
        "pg_advisory_unlock_shared(",
        "pg_advisory_unlock_all(",
    ];
    let compact: String = statement.chars().filter(|c| !c.is_whitespace()).collect();
    if ADVISORY.iter().any(|call| compact.contains(call)) {
        return Some(ADVISORY_LOCK);
    }
    let mut rest = compact.as_str();
    while let Some(at) = rest.find("set_config(") {
        rest = &rest[at + "set_config(".len()..];
        let arguments = rest.split(')').next().unwrap_or("");
        if arguments.ends_with(",false") {
            return Some(SET_CONFIG);
        }
    }
    None
}

/// `sql` in lower case with string literals, quoted identifiers, dollar
/// quotes and comments replaced by spaces, so that only code is matched.
fn code_only(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\'' | '"' => {
                // Quoted; a doubled quote is an escaped one and stays inside.
                while let Some((_, d)) = chars.next() {
                    if d == c {
                        if chars.peek().map(|&(_, e)| e) == Some(c) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push(' ');
            }
            '-' if chars.peek().map(|&(_, d)| d) == Some('-') => {
                for (_, d) in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                out.push(' ');
            }
            '/' if chars.peek().map(|&(_, d)| d) == Some('*') => {
                chars.next();
                let mut last = ' ';
                for (_, d) in chars.by_ref() {
                    if last == '*' && d == '/' {
                        break;
                    }
                    last = d;
                }
                out.push(' ');
            }
            '$' => {
                // A dollar quote: $$...$$ or $tag$...$tag$.
                let tag_len = sql[at + 1..].find('$').filter(|&n| {
                    sql[at + 1..at + 1 + n].chars().all(|t| t.is_ascii_alphanumeric() || t == '_')
                        && !sql[at + 1..at + 1 + n].starts_with(|t: char| t.is_ascii_digit())
                });
                match tag_len {
                    Some(n) => {
                        let tag = &sql[at..=at + n + 1];
                        let body_start = at + n + 2;
                        let end =
                            sql[body_start..].find(tag).map_or(sql.len(), |e| body_start + e + tag.len());
                        while chars.peek().is_some_and(|&(i, _)| i < end) {
                            chars.next();
                        }
                        out.push(' ');
                    }
                    None => out.push('$'),
                }
            }
            _ => out.extend(c.to_lowercase()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_state_is_found_with_its_alternative() {
        for (sql, statement) in [
            ("SET search_path = app", "SET"),
            ("set session statement_timeout = '5s'", "SET"),
            ("RESET ALL", "RESET"),
            ("LISTEN jobs", "LISTEN"),
            ("UNLISTEN *", "UNLISTEN"),
            ("PREPARE q AS SELECT 1", "PREPARE"),
            ("DEALLOCATE ALL", "DEALLOCATE"),
            ("DISCARD ALL", "DISCARD"),
            ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "DECLARE ... WITH HOLD"),
            ("CREATE TEMP TABLE x (id int)", "CREATE TEMP TABLE"),
            ("create global temporary table x (id int)", "CREATE TEMP TABLE"),
            ("SELECT pg_advisory_lock(42)", "a session advisory lock (pg_advisory_lock and friends)"),
            ("select pg_try_advisory_lock (1, 2)", "a session advisory lock (pg_advisory_lock and friends)"),
            ("SELECT set_config('search_path', 'app', false)", "set_config(..., false)"),
            ("SELECT 1; SET x.y = 1", "SET"),
        ] {
            assert_eq!(find(sql).map(|s| s.statement), Some(statement), "{sql}");
        }
    }

    #[test]
    fn transaction_scoped_and_ordinary_statements_pass() {
        for sql in [
            "SET LOCAL statement_timeout = '1s'",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET CONSTRAINTS ALL DEFERRED",
            "SELECT pg_advisory_xact_lock(42)",
            "SELECT set_config('x.y', '1', true)",
            "CREATE TEMP TABLE x (id int) ON COMMIT DROP",
            "CREATE TABLE temp (id int)",
            "DECLARE c CURSOR FOR SELECT 1",
            "PREPARE TRANSACTION 'x'",
            "SELECT 'SET x = 1; LISTEN y', \"listen\" FROM t -- LISTEN z",
            "SELECT $$pg_advisory_lock(1)$$, $f$RESET ALL$f$ /* DISCARD ALL */",
            "UPDATE t SET listen = 1",
            "SELECT $1::int",
        ] {
            assert_eq!(find(sql), None, "{sql}");
        }
    }
}

//! libpq's other connection string form, `host=a port=5432 dbname=app`:
//! split like a URL (see [`crate::url`]) into what tokio-postgres reads and
//! the pool settings among the pairs.
//!
//! Values may be single-quoted (`password='a b'`) with `\'` and `\\` inside
//! quotes, as libpq takes them. Pool settings (`connection_limit=5`),
//! `sslmode` and `sslrootcert` are taken out; the rest goes to
//! tokio-postgres quoted again, so a value it reads is exactly the value
//! given. As with URLs, the string is never echoed: errors name the key.

use crate::config_error::ConfigError;
use crate::url::SplitUrl;

/// Whether `text` looks like a key=value string rather than a URL.
pub(crate) fn is_key_value(text: &str) -> bool {
    let text = text.trim_start();
    !text.contains("://") && text.split_whitespace().next().is_some_and(|first| first.contains('='))
}

/// Takes a key=value connection string apart.
pub(crate) fn split(text: &str) -> Result<SplitUrl, ConfigError> {
    let mut out = SplitUrl::default();
    let mut kept = Vec::new();
    for (key, value) in pairs(text)? {
        match key.as_str() {
            "sslrootcert" => out.sslrootcert = Some(value),
            "sslmode" => {
                let driver = match value.as_str() {
                    "disable" | "prefer" | "require" => value.clone(),
                    "verify-ca" | "verify-full" => String::from("require"),
                    _ => {
                        return Err(ConfigError::new(
                            "sslmode",
                            value,
                            "must be one of disable, prefer, require, verify-ca, verify-full",
                        ));
                    }
                };
                kept.push(format!("sslmode={driver}"));
                out.sslmode = Some(value);
            }
            _ if crate::settings::lookup(&key).is_some() => out.pool.push((key, value)),
            _ => kept.push(format!("{key}={}", quote(&value))),
        }
    }
    out.postgres = kept.join(" ");
    Ok(out)
}

/// The pairs of `text`, values unquoted.
fn pairs(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut chars = text.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(ConfigError::new(
                "connection string",
                shown(&key),
                "is a key without `=value` (write key=value pairs, quoting values with spaces: key='a b')",
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => {
                        return Err(ConfigError::new(
                            shown(&key),
                            "(not shown)",
                            "has a quote that is never closed",
                        ));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// A key as it may appear in an error: not a password's text (a key is
/// never secret, but a broken string can put a password where a key goes).
fn shown(key: &str) -> &'static str {
    let known = crate::settings::lookup(key).is_some()
        || matches!(
            key,
            "host"
                | "hostaddr"
                | "port"
                | "user"
                | "password"
                | "dbname"
                | "options"
                | "application_name"
                | "connect_timeout"
                | "sslmode"
                | "sslrootcert"
                | "target_session_attrs"
                | "channel_binding"
        );
    if known { "a known key" } else { "(a key, not shown)" }
}

/// A value quoted for tokio-postgres's key=value parser.
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_settings_come_out_and_the_rest_reads_back_the_same() {
        assert!(split("host=a password='it''s'").is_err(), "libpq's '' is not an escape");
        let parts =
            split("host=a,b port=5433,5434 dbname=app password='it\\'s a secret' connection_limit=4 sslmode=disable")
                .unwrap();
        assert_eq!(parts.pool, [("connection_limit".to_owned(), "4".to_owned())]);
        let config: tokio_postgres::Config = parts.postgres.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"it's a secret"[..]));
        assert_eq!(config.get_ports(), &[5433, 5434]);
        assert_eq!(config.get_hosts().len(), 2);
        assert_eq!(config.get_dbname(), Some("app"));
    }

    #[test]
    fn only_key_value_strings_are_taken_for_them() {
        assert!(is_key_value("host=localhost dbname=app"));
        assert!(is_key_value("  dbname=app"));
        assert!(!is_key_value("postgres://h/db?x=1"));
        assert!(!is_key_value("localhost"));
    }

    #[test]
    fn a_broken_string_never_shows_its_text() {
        let error = split("host=h s3cr3t-password").unwrap_err().to_string();
        assert!(!error.contains("s3cr3t"), "{error}");
    }
}

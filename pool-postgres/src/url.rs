//! Splitting a connection URL into what tokio-postgres reads and the pool
//! settings that ride in its query string.
//!
//! The URL is never echoed into errors or logs (it may carry a password):
//! errors name the parameter and its value only, and values of parameters
//! that may be secret are not repeated.

use crate::config_error::ConfigError;

/// Parameters tokio-postgres understands in a URL's query string, kept as they are.
const PASSED_THROUGH: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslnegotiation",
    "host",
    "hostaddr",
    "port",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// A URL taken apart: the part for tokio-postgres, and the pool's parameters
/// (name, decoded value) in their order.
#[derive(Default)]
#[cfg_attr(test, derive(Debug))]
pub(crate) struct SplitUrl {
    pub(crate) postgres: String,
    pub(crate) pool: Vec<(String, String)>,
    /// `sslmode` as given (tokio-postgres gets `require` for the `verify-*` modes).
    pub(crate) sslmode: Option<String>,
    /// `sslrootcert`, which tokio-postgres does not know.
    pub(crate) sslrootcert: Option<String>,
}

/// Takes the pool's parameters out of a `postgres://` or `postgresql://` URL.
pub(crate) fn split(url: &str) -> Result<SplitUrl, ConfigError> {
    let url = url.trim();
    let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) else {
        return Err(ConfigError::new(
            "url",
            describe_scheme(url),
            "must start with postgres:// or postgresql://",
        ));
    };
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, query),
        None => (rest, ""),
    };
    let scheme_len = url.len() - rest.len();
    let mut split = SplitUrl { postgres: format!("{}{}", &url[..scheme_len], base), ..SplitUrl::default() };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(raw_key)
            .map_err(|()| ConfigError::new("url", "(a parameter name)", "has a bad %-escape"))?;
        let value = decode(raw_value).map_err(|()| {
            ConfigError::new(
                leak_name(&key),
                "(hidden)",
                "has a bad %-escape (write % as %25 and & as %26 inside values)",
            )
        })?;
        if key == "sslrootcert" {
            split.sslrootcert = Some(value);
        } else if key == "sslmode" {
            match value.as_str() {
                "disable" | "prefer" | "require" => kept.push(pair),
                "verify-ca" | "verify-full" => kept.push("sslmode=require"),
                _ => {
                    return Err(ConfigError::new(
                        "sslmode",
                        value,
                        "must be one of disable, prefer, require, verify-ca, verify-full",
                    ));
                }
            }
            split.sslmode = Some(value);
        } else if crate::settings::lookup(&key).is_some() {
            split.pool.push((key, value));
        } else if PASSED_THROUGH.contains(&key.as_str()) {
            kept.push(pair);
        } else {
            return Err(ConfigError::new(
                leak_name(&key),
                "(not shown)",
                "is not a parameter this pool or tokio-postgres knows; \
                 see the pool-postgres docs for the list",
            ));
        }
    }
    if !kept.is_empty() {
        split.postgres.push('?');
        split.postgres.push_str(&kept.join("&"));
    }
    Ok(split)
}

/// Parameter names come from the user's URL; keep them short in messages.
fn leak_name(key: &str) -> String {
    key.chars().take(64).collect()
}

/// What a URL without a known scheme starts with, without its credentials.
fn describe_scheme(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, _)) => format!("{scheme}://..."),
        None if url.is_empty() => String::from("(empty)"),
        None => String::from("(no scheme)"),
    }
}

/// Percent-decodes a query component (`+` is a space, as in forms).
fn decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(())?;
                let hex = std::str::from_utf8(hex).map_err(|_| ())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_parameters_are_taken_out_and_the_rest_is_kept() {
        let split =
            split("postgres://u:secret@db:5432/app?connection_limit=5&sslmode=disable&pool_timeout=2")
                .unwrap();
        assert_eq!(split.postgres, "postgres://u:secret@db:5432/app?sslmode=disable");
        assert_eq!(
            split.pool,
            vec![("connection_limit".into(), "5".into()), ("pool_timeout".into(), "2".into())]
        );
    }

    #[test]
    fn a_url_with_only_pool_parameters_loses_its_question_mark() {
        let split = split("postgresql://h/db?min_idle=1").unwrap();
        assert_eq!(split.postgres, "postgresql://h/db");
    }

    #[test]
    fn unknown_parameters_are_refused_by_name_without_echoing_the_url() {
        let err = split("postgres://u:hunter2@h/db?conection_limit=5").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("conection_limit"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn a_wrong_scheme_is_named_without_the_rest() {
        let err = split("mysql://root:hunter2@h/db").unwrap_err();
        assert!(err.to_string().contains("mysql://..."), "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn values_are_percent_decoded() {
        let split = split("postgres://h/db?pool_name=a%20b+c").unwrap();
        assert_eq!(split.pool[0].1, "a b c");
        assert!(super::split("postgres://h/db?pool_name=%zz").is_err());
    }

    #[test]
    fn verify_modes_reach_tokio_postgres_as_require_and_sslrootcert_is_kept_back() {
        let split = split("postgres://h/db?sslmode=verify-full&sslrootcert=/ca.pem").unwrap();
        assert_eq!(split.postgres, "postgres://h/db?sslmode=require");
        assert_eq!(split.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(split.sslrootcert.as_deref(), Some("/ca.pem"));
        assert!(
            super::split("postgres://h/db?sslmode=sometimes")
                .unwrap_err()
                .to_string()
                .contains("verify-full")
        );
    }
}

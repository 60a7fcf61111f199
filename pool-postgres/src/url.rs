//! Splitting a connection URL into what tokio-postgres reads and the pool
//! settings that ride in its query string.
//!
//! # Where the password ends
//!
//! A password should be percent-encoded, but many are pasted as they are,
//! with `?`, `@`, `/`, `#`, `:` or spaces in them. tokio-postgres ends the
//! credentials at the first `@` and this module used to end the URL's base
//! at the first `?`, so such a password spilled into a host name, a
//! database name (and from there the pool's default name, its logs and its
//! metric labels) or an unknown-parameter error. So the credentials are
//! found here, before anything else reads the URL, by one rule:
//!
//! - They end at the **last** `@` that is not inside a query parameter. A
//!   host list holds no `@`, so any earlier `@` (and any `?`, `/`, `#` or
//!   `:` before it) belongs to the password. libpq ends them at the first
//!   `@` before any `/`, which puts the rest of such a password into the
//!   host; the last `@` is the only choice that can connect.
//! - An `@` is inside a query parameter when a `?` comes before it and the
//!   nearest `?` or `&` before it starts `name=` with a name this pool or
//!   tokio-postgres knows (`?application_name=svc@web1`). So a password
//!   holding `?` followed by such a name and `=` is misread: those must be
//!   percent-encoded, as must an `@` in a database name (`%40`).
//!
//! The user and password are then decoded strictly (a bad %-escape is
//! refused, as libpq refuses it; tokio-postgres would keep it verbatim) and
//! handed on percent-encoded, so tokio-postgres reads exactly them.
//!
//! # What is never echoed
//!
//! The URL is never echoed into errors or logs: errors name the parameter
//! and its value only, and values that may be secret (the password; a
//! parameter name right after a query-string `password`, which may be the
//! rest of a password holding `&`; a port where the URL's `@` was not taken
//! as the end of credentials) are not repeated.

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
    "channel_binding",
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
            "must start with postgres:// or postgresql://, or be libpq key=value pairs (host=... dbname=...)",
        ));
    };
    let parts = Parts::of(rest);
    let mut split = SplitUrl { postgres: url[..url.len() - rest.len()].to_owned(), ..SplitUrl::default() };
    if let Some(userinfo) = parts.userinfo {
        push_credentials(&mut split.postgres, userinfo)?;
    }
    check_url_ports(parts.hosts, parts.stray_at)?;
    split.postgres.push_str(parts.hosts);
    split.postgres.push_str(parts.path);
    let mut kept: Vec<String> = Vec::new();
    let mut after_password = false;
    for pair in parts.query.split('&').filter(|p| !p.is_empty()) {
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
        let follows_password = std::mem::replace(&mut after_password, key == "password");
        if key == "sslrootcert" {
            split.sslrootcert = Some(value);
        } else if key == "sslmode" {
            match value.as_str() {
                "disable" | "prefer" | "require" => kept.push(pair.to_owned()),
                "verify-ca" | "verify-full" => kept.push("sslmode=require".to_owned()),
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
        } else if key == "host" {
            // tokio-postgres takes a `host` parameter as one name, commas
            // and all; libpq, as a list. One `host` per name says the list.
            kept.extend(value.split(',').map(|host| format!("host={}", encode(host.as_bytes()))));
        } else if PASSED_THROUGH.contains(&key.as_str()) {
            if key == "port" {
                for port in value.split(',') {
                    check_port(port, false)?;
                }
            }
            // Encoded again, `@` included: tokio-postgres ends credentials
            // at the first `@` anywhere, even in a query value.
            let literal = decode_bytes(raw_value, false).unwrap_or_default();
            kept.push(format!("{key}={}", encode(&literal)));
        } else if follows_password {
            return Err(ConfigError::new(
                "password",
                "(hidden)",
                "is followed by a parameter this pool and tokio-postgres do not know (its name is not \
                 shown, in case it is the rest of the password: write & in a password as %26)",
            ));
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

/// A URL after its scheme, cut at the end of the credentials (see the
/// module docs), of the host list and of the path.
struct Parts<'a> {
    /// `user[:password]`, raw, without its `@`.
    userinfo: Option<&'a str>,
    /// `host[:port][,host[:port]...]`.
    hosts: &'a str,
    /// `/dbname`, or empty.
    path: &'a str,
    /// The query string without its `?`.
    query: &'a str,
    /// No credentials were found, but the URL holds an `@`: what precedes
    /// it may be a password that holds `?name=`, so the host list is not
    /// echoed.
    stray_at: bool,
}

impl<'a> Parts<'a> {
    fn of(rest: &'a str) -> Self {
        let at = rest.match_indices('@').map(|(i, _)| i).rev().find(|&i| !in_query(rest, i));
        let (userinfo, after) = match at {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (hosts, after) = after.split_at(after.find(['/', '?']).unwrap_or(after.len()));
        let (path, query) = after.split_once('?').unwrap_or((after, ""));
        Self { userinfo, hosts, path, query, stray_at: at.is_none() && rest.contains('@') }
    }
}

/// Whether the `@` at `at` is inside a query parameter of a name this pool
/// or tokio-postgres knows.
fn in_query(rest: &str, at: usize) -> bool {
    let before = &rest[..at];
    if !before.contains('?') {
        return false;
    }
    let pair = before.rfind(['?', '&']).map_or(before, |i| &before[i + 1..]);
    pair.split_once('=').is_some_and(|(name, _)| decode(name).is_ok_and(|name| is_known(&name)))
}

fn is_known(name: &str) -> bool {
    matches!(name, "sslmode" | "sslrootcert")
        || PASSED_THROUGH.contains(&name)
        || crate::settings::lookup(name).is_some()
}

/// Decodes `user[:password]` strictly and appends it, encoded again so that
/// tokio-postgres decodes exactly it, with its `@`.
fn push_credentials(out: &mut String, userinfo: &str) -> Result<(), ConfigError> {
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    let user = decode_bytes(user, false)
        .ok()
        .and_then(|user| String::from_utf8(user).ok())
        .ok_or_else(|| ConfigError::new("user", "(not shown)", "has a bad %-escape or is not UTF-8"))?;
    out.push_str(&encode(user.as_bytes()));
    if let Some(password) = password {
        let password = decode_bytes(password, false).map_err(|()| {
            ConfigError::new(
                "password",
                "(hidden)",
                "has a bad %-escape: a % in a password must be written %25 (a % not followed by two \
                 hex digits is refused, as libpq refuses it)",
            )
        })?;
        out.push(':');
        out.push_str(&encode(&password));
    }
    out.push('@');
    Ok(())
}

/// Checks the ports of a URL's host list (`h:5432,[::1]:5433`), so a bad
/// one is named with its value, which tokio-postgres leaves out.
fn check_url_ports(hosts: &str, hide: bool) -> Result<(), ConfigError> {
    for chunk in hosts.split(',') {
        let port = match chunk.strip_prefix('[') {
            Some(v6) => v6.split_once(']').and_then(|(_, after)| after.strip_prefix(':')),
            None => chunk.split_once(':').map(|(_, port)| port),
        };
        if let Some(port) = port {
            let decoded = decode_bytes(port, false).ok().and_then(|p| String::from_utf8(p).ok());
            check_port(decoded.as_deref().unwrap_or(port), hide)?;
        }
    }
    Ok(())
}

/// One port of a list: empty (the default, 5432) or 1 to 65535.
fn check_port(port: &str, hide: bool) -> Result<(), ConfigError> {
    if port.is_empty() || port.parse::<u16>().is_ok_and(|p| p != 0) {
        return Ok(());
    }
    Err(if hide {
        ConfigError::new(
            "port",
            "(not shown)",
            "must be a number from 1 to 65535 (not shown because it may be part of a password: \
             write ? in a password as %3F and @ as %40)",
        )
    } else {
        ConfigError::new("port", port, "must be a number from 1 to 65535")
    })
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
    String::from_utf8(decode_bytes(s, true)?).map_err(|_| ())
}

/// Percent-decodes `s`, refusing a `%` not followed by two hex digits.
fn decode_bytes(s: &str, plus_is_space: bool) -> Result<Vec<u8>, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(())?;
                // Not `from_str_radix` alone: it takes a sign (`%+f`).
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(());
                }
                let hex = std::str::from_utf8(hex).map_err(|_| ())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Percent-encodes every byte but RFC 3986's unreserved ones.
fn encode(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
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

    /// What tokio-postgres reads from the URL the split hands it.
    fn read(url: &str) -> tokio_postgres::Config {
        url.parse().unwrap()
    }

    /// Issue #14 (6): passwords pasted unencoded. A `?` used to end the
    /// URL's base there (the rest of the password was then named in an
    /// unknown-parameter error), an `@` to end the credentials at the first
    /// one (the rest went into the host), and a `/` the same way.
    #[test]
    fn passwords_holding_url_delimiters_are_read_whole() {
        for password in [
            "pa?ss",
            "p@ss",
            "pa/ss",
            "pa#ss",
            "pa:ss",
            "pa ss",
            "pässwörd€",
            "a?b@c/d#e:f g",
            "x@y/z@w",
            "?@/#: ",
        ] {
            let url = format!("postgres://app:{password}@db.internal:5433/appdb?connection_limit=3");
            let split = split(&url).unwrap_or_else(|e| panic!("{password}: {e}"));
            let config = read(&split.postgres);
            assert_eq!(config.get_password(), Some(password.as_bytes()), "{password}");
            assert_eq!(config.get_user(), Some("app"), "{password}");
            assert_eq!(config.get_dbname(), Some("appdb"), "{password}");
            assert_eq!(config.get_ports(), [5433], "{password}");
            assert!(
                matches!(config.get_hosts(), [tokio_postgres::config::Host::Tcp(h)] if h == "db.internal"),
                "{password}: {:?}",
                config.get_hosts()
            );
            assert_eq!(split.pool, vec![("connection_limit".into(), "3".into())], "{password}");
        }
    }

    #[test]
    fn percent_escapes_in_credentials_are_decoded_and_plus_is_kept() {
        let config = read(&split("postgres://me%40corp:50%25+off%2F@h/db").unwrap().postgres);
        assert_eq!(config.get_user(), Some("me@corp"));
        assert_eq!(config.get_password(), Some(&b"50%+off/"[..]));
    }

    /// libpq refuses these; tokio-postgres used to keep them verbatim.
    #[test]
    fn a_bad_percent_escape_in_the_password_is_refused_without_echoing_it() {
        for password in ["50%off", "zq7%zz", "zq7%4", "zq7%+f", "zq7%"] {
            let err = split(&format!("postgres://u:{password}@h/db")).unwrap_err();
            let text = format!("{err} {err:?}");
            assert_eq!(err.parameter(), "password", "{text}");
            assert!(text.contains("%25"), "says how to write a %: {text}");
            assert!(!text.contains("zq7") && !text.contains("off"), "{text}");
        }
    }

    #[test]
    fn an_at_in_a_query_value_does_not_end_the_credentials() {
        let config = read(&split("postgres://u:pw@h/db?application_name=svc@web1").unwrap().postgres);
        assert_eq!((config.get_user(), config.get_password()), (Some("u"), Some(&b"pw"[..])));
        assert_eq!(config.get_application_name(), Some("svc@web1"));
        for url in ["postgres://h/db?application_name=svc@web1", "postgres://h?application_name=svc@web1"] {
            let config = read(&split(url).unwrap().postgres);
            assert_eq!((config.get_user(), config.get_application_name()), (None, Some("svc@web1")), "{url}");
        }
    }

    /// Azure's `user@server` names, pasted unencoded.
    #[test]
    fn an_at_in_the_user_name_stays_in_it() {
        let config = read(&split("postgres://me@server:pw@h/db").unwrap().postgres);
        assert_eq!((config.get_user(), config.get_password()), (Some("me@server"), Some(&b"pw"[..])));
    }

    /// A `password` query value holding `&`: the rest looks like a parameter.
    #[test]
    fn an_unknown_parameter_after_a_password_is_not_named() {
        let err = split("postgres://h/db?password=zq7&xw8=1").unwrap_err();
        let text = format!("{err} {err:?}");
        assert_eq!(err.parameter(), "password", "{text}");
        assert!(!text.contains("zq7") && !text.contains("xw8"), "{text}");
        assert!(text.contains("%26"), "{text}");
    }

    /// tokio-postgres takes `host=a,b` as one host named "a,b".
    #[test]
    fn a_host_list_in_the_query_string_becomes_one_host_each() {
        let config = read(&split("postgres:///db?host=a,b&port=5432,5433").unwrap().postgres);
        let hosts: Vec<_> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                other @ tokio_postgres::config::Host::Unix(_) => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(hosts, ["a", "b"]);
        assert_eq!(config.get_ports(), [5432, 5433]);
    }

    /// tokio-postgres's own error names the option only.
    #[test]
    fn bad_ports_are_named_with_their_value() {
        for (url, value) in [
            ("postgres://h:0/db", "0"),
            ("postgres://h:99999/db", "99999"),
            ("postgres://h:54x/db", "54x"),
            ("postgres://[::1]:abc/db", "abc"),
            ("postgres://a:1,b:0/db", "0"),
            ("postgres://h/db?port=5432,0", "0"),
        ] {
            let err = split(url).unwrap_err();
            assert_eq!((err.parameter(), err.value()), ("port", value), "{url}: {err}");
        }
    }

    /// A password holding `?application_name=` is misread (see the module
    /// docs); its start is then where a port would be, and is not shown.
    #[test]
    fn a_port_that_may_be_part_of_a_password_is_not_shown() {
        let err = split("postgres://u:zq7?application_name=x@h/db").unwrap_err();
        assert_eq!(err.parameter(), "port", "{err}");
        assert!(!err.to_string().contains("zq7"), "{err}");
    }
}

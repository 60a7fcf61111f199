//! [`PoolSettings`]: the pool's settings as they come from a URL's query
//! string or a config file, parsed with errors that name the bad value.

// `Some(None)` is how a setting says "switched off" as opposed to "unset".
#![allow(clippy::option_option)]

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::error::ConfigError;
use crate::recycling::Recycling;

/// Pool settings, every one optional (unset means the default). Read from a
/// URL's query string by [`PgPool::from_url`](crate::PgPool::from_url) or
/// deserialized from a config file (the field names below; durations as
/// seconds or as text with a unit: `"500ms"`, `"30s"`, `"10m"`, `"1h"`).
///
/// | URL parameter | field | meaning |
/// |---|---|---|
/// | `connection_limit` | `max_size` | most connections open at once (default 10) |
/// | `pool_timeout` | `acquire_timeout` | longest wait for a connection (default 30 s; never infinite) |
/// | `connect_timeout` | `create_timeout` | longest time to open one connection, handshake included |
/// | `socket_timeout` | `socket_timeout` | longest time one query may take through the client guard |
/// | `min_idle` | `min_idle` | idle connections kept ready (default 0) |
/// | `idle_timeout` | `idle_timeout` | close connections idle this long (default 10 min; `0` = never) |
/// | `max_lifetime` | `max_lifetime` | close connections this old (default 30 min; `0` = never) |
/// | `statement_cache_size` | `statement_cache_size` | prepared statements cached per connection (default 256; `0` = off, for PgBouncer in transaction mode) |
/// | `statement_timeout` | `statement_timeout` | server-side `statement_timeout` for every session (default: the server's) |
/// | `max_waiters` | `max_waiters` | refuse at once when this many tasks wait |
/// | `keepalive_interval` | `keepalive_interval` | check idle connections in the background this often |
/// | `recycling` | `recycling` | `fast` (default), `verified` or `clean`; see [`Recycling`] |
/// | `verify_idle_after` | `verify_idle_after` | check with a round trip before reuse when idle this long (default 5 s) |
/// | `recycle_timeout` | `recycle_timeout` | longest check before reuse (default 5 s) |
/// | `pool_name` | `name` | name for logs and metrics (default: the database name) |
/// | `leak_detection_threshold` | `leak_detection_threshold` | warn when a connection is held this long |
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct PoolSettings {
    /// See the table above (`connection_limit`).
    #[serde(alias = "connection_limit")]
    pub max_size: Option<usize>,
    /// `pool_timeout`.
    #[serde(alias = "pool_timeout", deserialize_with = "de::duration")]
    pub acquire_timeout: Option<Duration>,
    /// `connect_timeout`.
    #[serde(alias = "connect_timeout", deserialize_with = "de::duration")]
    pub create_timeout: Option<Duration>,
    /// `socket_timeout`.
    #[serde(deserialize_with = "de::duration")]
    pub socket_timeout: Option<Duration>,
    /// `min_idle`.
    pub min_idle: Option<usize>,
    /// `idle_timeout`; `Some(None)` switches it off.
    #[serde(deserialize_with = "de::switchable")]
    pub idle_timeout: Option<Option<Duration>>,
    /// `max_lifetime`; `Some(None)` switches it off.
    #[serde(deserialize_with = "de::switchable")]
    pub max_lifetime: Option<Option<Duration>>,
    /// `statement_cache_size`.
    pub statement_cache_size: Option<usize>,
    /// `statement_timeout`.
    #[serde(deserialize_with = "de::duration")]
    pub statement_timeout: Option<Duration>,
    /// `max_waiters`.
    pub max_waiters: Option<usize>,
    /// `keepalive_interval`.
    #[serde(deserialize_with = "de::duration")]
    pub keepalive_interval: Option<Duration>,
    /// `recycling`.
    pub recycling: Option<Recycling>,
    /// `verify_idle_after`.
    #[serde(deserialize_with = "de::duration")]
    pub verify_idle_after: Option<Duration>,
    /// `recycle_timeout`.
    #[serde(deserialize_with = "de::duration")]
    pub recycle_timeout: Option<Duration>,
    /// `pool_name`.
    #[serde(alias = "pool_name")]
    pub name: Option<String>,
    /// `leak_detection_threshold`.
    #[serde(deserialize_with = "de::duration")]
    pub leak_detection_threshold: Option<Duration>,
}

impl PoolSettings {
    /// Reads one URL parameter (a name from the table above).
    pub(crate) fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        match name {
            "connection_limit" => self.max_size = Some(count(name, value, 1)?),
            "pool_timeout" => self.acquire_timeout = Some(required_duration(name, value)?),
            "connect_timeout" | "create_timeout" => {
                self.create_timeout = Some(required_duration(name, value)?);
            }
            "socket_timeout" => self.socket_timeout = Some(required_duration(name, value)?),
            "min_idle" => self.min_idle = Some(count(name, value, 0)?),
            "idle_timeout" => self.idle_timeout = Some(optional_duration(name, value)?),
            "max_lifetime" => self.max_lifetime = Some(optional_duration(name, value)?),
            "statement_cache_size" => self.statement_cache_size = Some(count(name, value, 0)?),
            "statement_timeout" => self.statement_timeout = optional_duration(name, value)?,
            "max_waiters" => self.max_waiters = Some(count(name, value, 1)?),
            "keepalive_interval" => self.keepalive_interval = optional_duration(name, value)?,
            "recycling" => {
                self.recycling =
                    Some(Recycling::from_str(value).map_err(|()| {
                        ConfigError::new(name, value, "must be one of fast, verified, clean")
                    })?);
            }
            "verify_idle_after" => self.verify_idle_after = Some(parse_duration(name, value)?),
            "recycle_timeout" => self.recycle_timeout = Some(required_duration(name, value)?),
            "pool_name" => {
                if value.is_empty() {
                    return Err(ConfigError::new(name, value, "must not be empty"));
                }
                self.name = Some(value.to_owned());
            }
            "leak_detection_threshold" => self.leak_detection_threshold = optional_duration(name, value)?,
            _ => return Err(ConfigError::new(name, value, "is not a pool parameter")),
        }
        Ok(())
    }
}

fn count(name: &str, value: &str, min: usize) -> Result<usize, ConfigError> {
    let n: usize = value
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(name, value, format!("must be a whole number of at least {min}")))?;
    if n < min {
        return Err(ConfigError::new(name, value, format!("must be at least {min}")));
    }
    Ok(n)
}

/// A duration that must be longer than zero.
fn required_duration(name: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(name, value)?;
    if d.is_zero() {
        return Err(ConfigError::new(
            name,
            value,
            "must be longer than zero (this pool never waits forever)",
        ));
    }
    Ok(d)
}

/// A duration where `0`, `off` or `none` switches the feature off.
fn optional_duration(name: &str, value: &str) -> Result<Option<Duration>, ConfigError> {
    if matches!(value.trim(), "off" | "none") {
        return Ok(None);
    }
    let d = parse_duration(name, value)?;
    Ok((!d.is_zero()).then_some(d))
}

/// Seconds (`"30"`, `"0.5"`) or a number with a unit (`ms`, `s`, `m`, `h`).
pub(crate) fn parse_duration(name: &str, value: &str) -> Result<Duration, ConfigError> {
    let text = value.trim();
    let bad = |rule: &str| ConfigError::new(name, value, rule);
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(bad("must be a duration: seconds (\"30\", \"0.5\") or with a unit (\"500ms\", \"10m\")"));
    }
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad("has an unknown unit; use seconds or a number with ms, s, m or h")),
    };
    let number: f64 = number.parse().map_err(|_| {
        bad("must be a duration: seconds (\"30\", \"0.5\") or with a unit (\"500ms\", \"10m\")")
    })?;
    if number.is_sign_negative() {
        return Err(bad("must not be negative"));
    }
    Duration::try_from_secs_f64(number * scale).map_err(|_| bad("is too large"))
}

mod de {
    //! Durations in config files: a number of seconds or text with a unit.
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }

    fn text(raw: Raw) -> String {
        match raw {
            Raw::Seconds(s) => s.to_string(),
            Raw::Text(t) => t,
        }
    }

    pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let raw = Raw::deserialize(d)?;
        let value = text(raw);
        super::parse_duration("duration", &value).map(Some).map_err(serde::de::Error::custom)
    }

    pub(super) fn switchable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Duration>>, D::Error> {
        let raw = Raw::deserialize(d)?;
        let value = text(raw);
        super::optional_duration("duration", &value).map(Some).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, value: &str) -> Result<PoolSettings, ConfigError> {
        let mut s = PoolSettings::default();
        s.set(name, value).map(|()| s)
    }

    #[test]
    fn prisma_parameters_map_to_pool_settings() {
        assert_eq!(set("connection_limit", "5").unwrap().max_size, Some(5));
        assert_eq!(set("pool_timeout", "2").unwrap().acquire_timeout, Some(Duration::from_secs(2)));
        assert_eq!(set("connect_timeout", "1.5").unwrap().create_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(set("socket_timeout", "250ms").unwrap().socket_timeout, Some(Duration::from_millis(250)));
    }

    #[test]
    fn bad_values_name_the_parameter_and_the_value() {
        for (name, value, needle) in [
            ("connection_limit", "0", "at least 1"),
            ("connection_limit", "ten", "whole number"),
            ("pool_timeout", "abc", "must be a duration"),
            ("pool_timeout", "-1", "negative"),
            ("pool_timeout", "0", "never waits forever"),
            ("idle_timeout", "5 parsecs", "unit"),
            ("recycling", "sometimes", "fast, verified, clean"),
        ] {
            let err = set(name, value).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(name) && text.contains(value) && text.contains(needle), "{text}");
        }
    }

    #[test]
    fn zero_or_off_switches_optional_limits_off() {
        assert_eq!(set("idle_timeout", "0").unwrap().idle_timeout, Some(None));
        assert_eq!(set("max_lifetime", "off").unwrap().max_lifetime, Some(None));
        assert_eq!(set("max_lifetime", "10m").unwrap().max_lifetime, Some(Some(Duration::from_secs(600))));
    }
}

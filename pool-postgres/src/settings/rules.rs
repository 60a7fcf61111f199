//! The rules a setting's value follows, one type per kind of value, shared
//! by every way a setting arrives (URL, `DATABASE_URL`, config file,
//! builder).
//!
//! A rule has two halves: [`Rule::parse`] turns text into a value of the
//! setting's type, and [`Rule::check`] applies the zero/off rule and the
//! range to a value of that type. Text goes through both; a value set in
//! code goes through `check` only. So `statement_timeout = 0` means the same
//! whether it came from a URL, a TOML file or `Duration::ZERO`.

use std::fmt::Debug;
use std::time::Duration;

use crate::recycling::Recycling;

/// How one kind of setting is read and checked. Errors are the rule the
/// value broke ("must be at least 1"); the caller adds the name and value.
pub(crate) trait Rule {
    /// The setting's type.
    type Value: Clone + Debug + PartialEq;

    /// Reads text (a URL parameter, a config-file string or number).
    fn parse(text: &str) -> Result<Self::Value, String>;

    /// Applies the zero/off rule and the range; what `parse` returns has
    /// been checked already.
    fn check(value: Self::Value) -> Result<Self::Value, String> {
        Ok(value)
    }

    /// Reads and checks text.
    fn read(text: &str) -> Result<Self::Value, String> {
        Self::parse(text).and_then(Self::check)
    }
}

/// A whole number of at least 1 (`0` is refused: a pool of nothing).
pub(crate) struct AtLeastOne;

impl Rule for AtLeastOne {
    type Value = usize;

    fn parse(text: &str) -> Result<usize, String> {
        whole_number(text).and_then(Self::check)
    }

    fn check(value: usize) -> Result<usize, String> {
        if value == 0 { Err(String::from("must be at least 1")) } else { Ok(value) }
    }
}

/// A whole number, `0` included.
pub(crate) struct Count;

impl Rule for Count {
    type Value = usize;

    fn parse(text: &str) -> Result<usize, String> {
        whole_number(text)
    }
}

/// An optional limit: a whole number of at least 1, or `off`/`none` for no
/// limit. `0` is refused because it reads both as "no limit" and as "none
/// allowed".
pub(crate) struct Limit;

impl Rule for Limit {
    type Value = Option<usize>;

    fn parse(text: &str) -> Result<Option<usize>, String> {
        if is_off(text) {
            return Ok(None);
        }
        whole_number(text).map(Some)
    }

    fn check(value: Option<usize>) -> Result<Option<usize>, String> {
        match value {
            Some(0) => Err(String::from("must be at least 1 (or off, for no limit)")),
            other => Ok(other),
        }
    }
}

/// A duration longer than zero; zero is refused because this setting bounds
/// a wait, and no wait in this pool is unbounded.
pub(crate) struct Positive;

impl Rule for Positive {
    type Value = Duration;

    fn parse(text: &str) -> Result<Duration, String> {
        duration(text)
    }

    fn check(value: Duration) -> Result<Duration, String> {
        if value.is_zero() {
            Err(String::from("must be longer than zero (this pool never waits forever)"))
        } else {
            Ok(value)
        }
    }
}

/// A duration that switches a feature off when it is `0`, `off` or `none`
/// (and in code, `None` or `Duration::ZERO`).
pub(crate) struct ZeroIsOff;

impl Rule for ZeroIsOff {
    type Value = Option<Duration>;

    fn parse(text: &str) -> Result<Option<Duration>, String> {
        if is_off(text) {
            return Ok(None);
        }
        duration(text).map(Some)
    }

    fn check(value: Option<Duration>) -> Result<Option<Duration>, String> {
        Ok(value.filter(|d| !d.is_zero()))
    }
}

/// A duration the server keeps, switched off as [`ZeroIsOff`]; at most
/// what PostgreSQL takes for a timeout (`INT_MAX` milliseconds, about 24.8
/// days), so that a longer one is refused here instead of by the server at
/// every connect. Sent in whole milliseconds, at least 1.
pub(crate) struct ServerTimeout;

/// The longest timeout PostgreSQL takes, in milliseconds.
pub(crate) const SERVER_TIMEOUT_MAX_MS: u128 = i32::MAX as u128;

impl Rule for ServerTimeout {
    type Value = Option<Duration>;

    fn parse(text: &str) -> Result<Option<Duration>, String> {
        ZeroIsOff::parse(text)
    }

    fn check(value: Option<Duration>) -> Result<Option<Duration>, String> {
        match ZeroIsOff::check(value)? {
            Some(d) if d.as_millis() > SERVER_TIMEOUT_MAX_MS => Err(format!(
                "must be at most {SERVER_TIMEOUT_MAX_MS} ms (about 24 days), the longest PostgreSQL takes"
            )),
            other => Ok(other),
        }
    }
}

/// A duration where zero means zero ("always").
pub(crate) struct Span;

impl Rule for Span {
    type Value = Duration;

    fn parse(text: &str) -> Result<Duration, String> {
        duration(text)
    }
}

/// How connections are checked before reuse.
pub(crate) struct RecyclingRule;

impl Rule for RecyclingRule {
    type Value = Recycling;

    fn parse(text: &str) -> Result<Recycling, String> {
        text.parse().map_err(|()| String::from("must be one of fast, verified, clean"))
    }
}

/// What stands between the pool and the server.
pub(crate) struct PoolerRule;

impl Rule for PoolerRule {
    type Value = crate::pooler::Pooler;

    fn parse(text: &str) -> Result<crate::pooler::Pooler, String> {
        text.parse().map_err(|()| {
            String::from(
                "must be none, transaction or transaction-prepared (pgbouncer=true means transaction)",
            )
        })
    }
}

/// What happens to session state behind a transaction pooler.
pub(crate) struct SessionStateRule;

impl Rule for SessionStateRule {
    type Value = crate::pooler::SessionStatePolicy;

    fn parse(text: &str) -> Result<crate::pooler::SessionStatePolicy, String> {
        text.parse().map_err(|()| String::from("must be refuse or warn"))
    }
}

/// Which server a checkout goes to, by role (libpq's six values).
pub(crate) struct TargetRule;

impl Rule for TargetRule {
    type Value = Option<crate::target::TargetSessionAttrs>;

    fn parse(text: &str) -> Result<Self::Value, String> {
        text.parse().map(Some).map_err(|()| {
            String::from("must be one of any, read-write, read-only, primary, standby, prefer-standby")
        })
    }
}

/// How a server is picked among several that can serve a checkout.
pub(crate) struct LoadBalanceRule;

impl Rule for LoadBalanceRule {
    type Value = crate::hosts::LoadBalance;

    fn parse(text: &str) -> Result<Self::Value, String> {
        text.parse().map_err(|()| String::from("must be least-loaded, random or disable"))
    }
}

/// Which idle connection is taken first.
pub(crate) struct ReuseRule;

impl Rule for ReuseRule {
    type Value = pool_core::Reuse;

    fn parse(text: &str) -> Result<pool_core::Reuse, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "lifo" => Ok(pool_core::Reuse::Lifo),
            "fifo" => Ok(pool_core::Reuse::Fifo),
            _ => Err(String::from("must be lifo or fifo")),
        }
    }
}

/// A name for logs and metric labels: not empty, printable, at most 63
/// bytes (PostgreSQL's identifier length, so it also fits `application_name`).
/// Unset, the pool takes the database name.
pub(crate) struct Name;

impl Rule for Name {
    type Value = String;

    fn parse(text: &str) -> Result<String, String> {
        Self::check(text.to_owned())
    }

    fn check(name: String) -> Result<String, String> {
        if name.trim().is_empty() {
            Err(String::from("must not be empty"))
        } else if name.chars().any(char::is_control) {
            Err(String::from("must not contain control characters"))
        } else if name.len() > 63 {
            Err(String::from("must be at most 63 bytes long"))
        } else {
            Ok(name)
        }
    }
}

fn is_off(text: &str) -> bool {
    matches!(text.trim().to_ascii_lowercase().as_str(), "off" | "none")
}

fn whole_number(text: &str) -> Result<usize, String> {
    text.trim().parse().map_err(|_| String::from("must be a whole number"))
}

const DURATION_FORMS: &str =
    "must be a duration: seconds (\"30\", \"0.5\") or numbers with units (\"500ms\", \"10m\", \"1h30m\")";

/// Seconds (`"30"`, `"0.5"`), or one or more numbers each with a unit
/// (`us`, `ms`, `s`, `m`/`min`, `h`): `"500ms"`, `"1h30m"`, `"1.5s"`.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(String::from("must not be negative"));
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds_to_duration(seconds);
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    if rest.is_empty() {
        return Err(String::from(DURATION_FORMS));
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let after = after.trim_start();
        let unit_len = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let number: f64 = number.parse().map_err(|_| String::from(DURATION_FORMS))?;
        let scale = match unit {
            "us" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "" => return Err(String::from(DURATION_FORMS)),
            _ => return Err(String::from("has an unknown unit; use us, ms, s, m or h")),
        };
        total += number * scale;
        rest = after.trim_start();
    }
    seconds_to_duration(total)
}

fn seconds_to_duration(seconds: f64) -> Result<Duration, String> {
    if seconds.is_sign_negative() {
        return Err(String::from("must not be negative"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| String::from("is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_units_and_compounds() {
        assert_eq!(duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("2 min"), Ok(Duration::from_secs(120)));
        assert!(duration("-1").unwrap_err().contains("negative"));
        assert!(duration("5 parsecs").unwrap_err().contains("unit"));
        assert!(duration("").unwrap_err().contains("duration"));
        assert!(duration("ms").unwrap_err().contains("duration"));
        assert!(duration("1e400").unwrap_err().contains("too large"));
    }

    #[test]
    fn zero_is_off_reads_zero_and_off_alike_and_checks_typed_zero_the_same() {
        assert_eq!(ZeroIsOff::read("0"), Ok(None));
        assert_eq!(ZeroIsOff::read("off"), Ok(None));
        assert_eq!(ZeroIsOff::read("0s"), Ok(None));
        assert_eq!(ZeroIsOff::check(Some(Duration::ZERO)), Ok(None));
        assert_eq!(ZeroIsOff::read("5"), Ok(Some(Duration::from_secs(5))));
    }

    /// Issue #14 (6): a longer one used to be sent and refused by the
    /// server at every connect.
    #[test]
    fn server_timeouts_stop_at_the_servers_limit() {
        let most = Duration::from_millis(2_147_483_647);
        assert_eq!(ServerTimeout::check(Some(most)), Ok(Some(most)));
        assert!(
            ServerTimeout::check(Some(most + Duration::from_millis(1))).unwrap_err().contains("2147483647")
        );
        assert!(ServerTimeout::read("600h").is_err());
        assert_eq!(ServerTimeout::read("off"), Ok(None));
        assert_eq!(ServerTimeout::check(Some(Duration::ZERO)), Ok(None));
    }

    #[test]
    fn limits_refuse_zero_and_take_off() {
        assert!(Limit::read("0").is_err());
        assert!(Limit::check(Some(0)).is_err());
        assert_eq!(Limit::read("off"), Ok(None));
        assert_eq!(Limit::read("7"), Ok(Some(7)));
        assert!(AtLeastOne::read("0").is_err());
        assert!(AtLeastOne::check(0).is_err());
        assert!(Positive::read("0").is_err());
        assert!(Positive::check(Duration::ZERO).is_err());
    }
}

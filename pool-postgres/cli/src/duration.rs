//! Durations on the command line: `500ms`, `30s`, `5m`, `1h`, `1.5s`, or a
//! bare number of seconds.

use std::time::Duration;

/// Parses a duration such as `500ms`, `30s`, `5m`, `1h` or `1.5` (seconds).
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let hint = "use a number with a unit: 500ms, 30s, 5m or 1h";
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!("not a duration; {hint}"));
    }
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit {unit:?}; {hint}")),
    };
    let value: f64 = number.parse().map_err(|_| format!("not a duration; {hint}"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("must be zero or more; {hint}"));
    }
    Duration::try_from_secs_f64(value * scale).map_err(|_| "is too large".to_owned())
}

/// Like [`parse`], for a refresh interval: more than zero.
pub(crate) fn parse_interval(text: &str) -> Result<Duration, String> {
    match parse(text)? {
        d if d.is_zero() => Err("must be more than zero".to_owned()),
        d => Ok(d),
    }
}

/// A short human form: `850ms`, `12.3s`, `4m05s`, `2h03m`.
pub(crate) fn show(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs < 60 && d.subsec_millis() == 0 {
        format!("{secs}s")
    } else if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_rejects_nonsense() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        for bad in ["", "abc", "5 minutes", "5x", "-1s", "ms", "nan"] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_interval("0").is_err());
    }

    #[test]
    fn shows_short_forms() {
        assert_eq!(show(Duration::from_millis(850)), "850ms");
        assert_eq!(show(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(show(Duration::from_secs(30)), "30s");
        assert_eq!(show(Duration::from_secs(245)), "4m05s");
        assert_eq!(show(Duration::from_secs(7380)), "2h03m");
    }
}

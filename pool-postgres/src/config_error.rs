//! [`ConfigError`]: a bad setting, named with its value and the rule.

use std::fmt;

/// A connection URL, environment variable or setting was not acceptable.
/// Names the parameter, the value given (never a password) and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    parameter: String,
    value: String,
    rule: String,
}

impl ConfigError {
    pub(crate) fn new(
        parameter: impl Into<String>,
        value: impl Into<String>,
        rule: impl Into<String>,
    ) -> Self {
        Self { parameter: parameter.into(), value: value.into(), rule: rule.into() }
    }

    /// The parameter that was wrong (`"connection_limit"`, `"url"`, `"DATABASE_URL"`).
    pub fn parameter(&self) -> &str {
        &self.parameter
    }

    /// The value that was given, as text (`"(hidden)"` where it could be secret).
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid database setting {} = {:?}: {}", self.parameter, self.value, self.rule)
    }
}

impl std::error::Error for ConfigError {}

impl From<pool_core::BuildError> for ConfigError {
    fn from(e: pool_core::BuildError) -> Self {
        Self::new(e.setting(), e.value(), e.to_string())
    }
}

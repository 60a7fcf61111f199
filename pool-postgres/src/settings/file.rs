//! Settings from a config file: [`PoolSettings`] deserializes from any serde
//! format through the same text reader as the URL, and [`PgConfig`] is a
//! whole config-file section (URL plus settings).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use super::PoolSettings;

/// A config-file section for a pool: the URL and the pool settings.
///
/// ```toml
/// [database]
/// url = "postgres://app@db.internal/app"
/// [database.pool]
/// max_size = 20
/// acquire_timeout = "5s"
/// ```
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PgConfig {
    /// The connection URL; pool parameters in its query string apply too
    /// (settings in `pool` win over them).
    pub url: String,
    /// The pool settings.
    #[serde(default)]
    pub pool: PoolSettings,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig").field("url", &"(hidden)").field("pool", &self.pool).finish()
    }
}

impl<'de> Deserialize<'de> for PoolSettings {
    /// A map of setting names (any name of the table) to values: numbers,
    /// booleans or text, each read as the URL would read its text.
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(SettingsVisitor)
    }
}

struct SettingsVisitor;

impl<'de> Visitor<'de> for SettingsVisitor {
    type Value = PoolSettings;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of pool settings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PoolSettings, A::Error> {
        let mut settings = PoolSettings::default();
        while let Some(name) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            settings.set_text(&name, &value.into_text()).map_err(de::Error::custom)?;
        }
        Ok(settings)
    }
}

/// A config-file value before its setting's rule reads it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Value {
    Bool(bool),
    Whole(u64),
    Signed(i64),
    Number(f64),
    Text(String),
}

impl Value {
    fn into_text(self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Whole(n) => n.to_string(),
            Self::Signed(n) => n.to_string(),
            Self::Number(n) => n.to_string(),
            Self::Text(t) => t,
        }
    }
}

//! The macro that turns the settings table in [`super`] into everything
//! that serves it: the [`PoolSettings`](super::PoolSettings) struct with its
//! documented parameter table, the list of names the URL and config-file
//! readers look up, one text reader, one checker, the effective values with
//! defaults, and the builder's setters. Each entry is written once, so no
//! path can apply a rule another path does not.

macro_rules! pool_settings {
    ($(
        #[doc = $summary:literal]
        $(#[doc = $more:literal])*
        $field:ident: $ty:ty, $rule:ty,
            default $default:expr => $shown:literal,
            names [$url:literal $(, $alias:literal)*];
    )*) => {
        /// Pool settings, every one optional (unset means the default).
        ///
        /// They come from a URL's query string ([`PgPool::from_url`](crate::PgPool::from_url),
        /// `DATABASE_URL`), a config file ([`PgConfig`](crate::PgConfig), any serde
        /// format) or code ([`PgPoolBuilder`](crate::PgPoolBuilder)'s setters of the same
        /// names), and every path reads and checks them by the same rules. Each
        /// setting answers to all the names in its row, in URLs and config files
        /// alike; a setting given twice in one source (under any two of its names)
        /// is an error. Durations are seconds (`30`, `0.5`) or numbers with units
        /// (`500ms`, `10m`, `1h30m`). Where `0` or `off` is allowed, it switches
        /// the feature off.
        ///
        /// | URL parameter | field and other names | default | meaning |
        /// |---|---|---|---|
        $(
            #[doc = concat!("| `", $url, "` | `", stringify!($field), "`", $(" `", $alias, "`",)* " | ", $shown, " | ", $summary, " |")]
        )*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct PoolSettings {
            $(
                #[doc = $summary]
                $(#[doc = $more])*
                #[doc = concat!("\n\nURL parameter `", $url, "`; default ", $shown, ".")]
                pub $field: Option<$ty>,
            )*
        }

        /// Every setting with its default filled in: what a pool is built with.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(crate) struct Effective {
            $( pub(crate) $field: $ty, )*
        }

        /// The table's rows, for the URL and config-file readers and the docs tests.
        pub(crate) const PARAMETERS: &[Parameter] = &[
            $( Parameter { field: stringify!($field), names: &[$url, stringify!($field) $(, $alias)*] }, )*
        ];

        impl PoolSettings {
            /// Reads one setting from text, under any of its names.
            pub(crate) fn set_text(&mut self, name: &str, text: &str) -> Result<(), ConfigError> {
                let parameter = lookup(name).ok_or_else(|| {
                    ConfigError::new(
                        shorten(name),
                        "(not shown)",
                        "is not a parameter this pool knows; see pool_postgres::PoolSettings for the list",
                    )
                })?;
                match parameter.field {
                    $(
                        stringify!($field) => {
                            if self.$field.is_some() {
                                return Err(ConfigError::new(name, text, "is given twice (under this or another of its names)"));
                            }
                            let value = <$rule as Rule>::read(text).map_err(|rule| ConfigError::new(name, text, rule))?;
                            self.$field = Some(value);
                        }
                    )*
                    _ => unreachable!("PARAMETERS lists exactly the fields"),
                }
                Ok(())
            }

            /// Takes every setting that `other` sets, over this one's.
            pub(crate) fn overlay(&mut self, other: &Self) {
                $( if other.$field.is_some() { self.$field.clone_from(&other.$field); } )*
            }

            /// Applies every rule to the values as they are (set in code, or
            /// read from text and so checked already), naming the first bad one.
            pub(crate) fn checked(&self) -> Result<Self, ConfigError> {
                Ok(Self { $(
                    $field: match &self.$field {
                        Some(value) => Some(<$rule as Rule>::check(value.clone()).map_err(|rule| {
                            ConfigError::new(stringify!($field), format!("{value:?}"), rule)
                        })?),
                        None => None,
                    },
                )* })
            }

            /// The settings with every default filled in.
            pub(crate) fn effective(&self) -> Effective {
                Effective { $( $field: self.$field.clone().unwrap_or_else(|| $default), )* }
            }
        }

        /// The setters, one per setting; values are checked by
        /// [`build`](crate::PgPoolBuilder::build) with the same rules as text.
        impl crate::builder::PgPoolBuilder {
            $(
                #[doc = $summary]
                $(#[doc = $more])*
                #[doc = concat!("\n\nURL parameter `", $url, "`; default ", $shown, ".")]
                pub fn $field(mut self, value: impl crate::IntoSetting<$ty>) -> Self {
                    self.settings.$field = Some(value.into_setting());
                    self
                }
            )*
        }
    };
}

pub(super) use pool_settings;

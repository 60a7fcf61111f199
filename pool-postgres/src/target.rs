//! [`TargetSessionAttrs`]: which server a checkout may land on, by role;
//! the six values of libpq's `target_session_attrs`, and the [`Role`] a
//! server is seen to have.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which kind of server a connection must come from (the
/// `target_session_attrs` setting, with libpq's six values and spellings).
///
/// A pool over several hosts routes each checkout by it:
/// [`PgPool::get`](crate::PgPool::get) takes the pool's setting,
/// [`PgPool::read`](crate::PgPool::read) takes
/// [`PreferStandby`](Self::PreferStandby), and
/// [`PgPool::get_for`](crate::PgPool::get_for) any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TargetSessionAttrs {
    /// Any server that accepts the connection.
    Any,
    /// A server that takes writes: a primary whose sessions are not
    /// read-only by default (`default_transaction_read_only = off`).
    ReadWrite,
    /// A server that takes no writes: a standby, or a primary with
    /// `default_transaction_read_only = on`.
    ReadOnly,
    /// A primary (not in recovery), read-only by default or not.
    Primary,
    /// A standby (in recovery), within `max_replica_lag` if one is set.
    Standby,
    /// A standby if one can serve; the primary when none can (all down,
    /// lagging or busy).
    PreferStandby,
}

impl TargetSessionAttrs {
    /// The libpq spelling (`read-write`, `prefer-standby`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::ReadWrite => "read-write",
            Self::ReadOnly => "read-only",
            Self::Primary => "primary",
            Self::Standby => "standby",
            Self::PreferStandby => "prefer-standby",
        }
    }

    /// Whether a server seen as `role` serves this target as a first choice.
    pub(crate) fn accepts(self, role: Role, max_lag: Option<Duration>) -> bool {
        match (self, role) {
            (Self::Any, _) | (Self::Primary, Role::Primary { .. }) => true,
            (Self::ReadWrite, Role::Primary { read_only }) => !read_only,
            (Self::ReadOnly, Role::Primary { read_only }) => read_only,
            (Self::ReadOnly | Self::Standby | Self::PreferStandby, Role::Standby { lag }) => {
                max_lag.is_none_or(|max| lag.is_some_and(|lag| lag <= max))
            }
            _ => false,
        }
    }

    /// Whether a server seen as `role` serves this target when no first
    /// choice can: the primary, for `prefer-standby`.
    pub(crate) fn falls_back_to(self, role: Role) -> bool {
        self == Self::PreferStandby && matches!(role, Role::Primary { .. })
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetSessionAttrs {
    type Err = ();

    /// libpq's spellings; `_` for `-` is taken too.
    fn from_str(text: &str) -> Result<Self, ()> {
        match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "any" => Ok(Self::Any),
            "read-write" => Ok(Self::ReadWrite),
            "read-only" => Ok(Self::ReadOnly),
            "primary" => Ok(Self::Primary),
            "standby" => Ok(Self::Standby),
            "prefer-standby" => Ok(Self::PreferStandby),
            _ => Err(()),
        }
    }
}

/// What a server was seen to be at its last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not in recovery; `read_only` when its sessions start read-only
    /// (`default_transaction_read_only = on`).
    Primary {
        /// Sessions start read-only.
        read_only: bool,
    },
    /// In recovery (a streaming or log-shipping standby).
    Standby {
        /// How far its replay is behind: zero when it has replayed all it
        /// received, else the age of the last transaction it replayed;
        /// `None` before it replayed any.
        lag: Option<Duration>,
    },
}

impl Role {
    /// `primary` or `standby`, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Primary { .. } => "primary",
            Self::Standby { .. } => "standby",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: Role = Role::Primary { read_only: false };
    const READ_ONLY_PRIMARY: Role = Role::Primary { read_only: true };
    const FRESH: Role = Role::Standby { lag: Some(Duration::ZERO) };
    const BEHIND: Role = Role::Standby { lag: Some(Duration::from_secs(60)) };

    #[test]
    fn all_six_libpq_values_parse_and_print_back() {
        for text in ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"] {
            let target: TargetSessionAttrs = text.parse().expect(text);
            assert_eq!(target.as_str(), text);
        }
        assert_eq!("Prefer_Standby".parse(), Ok(TargetSessionAttrs::PreferStandby));
        assert_eq!("replica".parse::<TargetSessionAttrs>(), Err(()));
    }

    #[test]
    fn roles_serve_the_targets_libpq_gives_them() {
        use TargetSessionAttrs::*;
        let cases = [
            (ReadWrite, [true, false, false]),
            (ReadOnly, [false, true, true]),
            (Primary, [true, true, false]),
            (Standby, [false, false, true]),
            (PreferStandby, [false, false, true]),
            (Any, [true, true, true]),
        ];
        for (target, expected) in cases {
            let got = [PRIMARY, READ_ONLY_PRIMARY, FRESH].map(|role| target.accepts(role, None));
            assert_eq!(got, expected, "{target}");
        }
        assert!(PreferStandby.falls_back_to(PRIMARY));
        assert!(!Standby.falls_back_to(PRIMARY));
    }

    #[test]
    fn a_standby_behind_max_replica_lag_is_skipped() {
        let max = Some(Duration::from_secs(5));
        assert!(TargetSessionAttrs::Standby.accepts(FRESH, max));
        assert!(!TargetSessionAttrs::Standby.accepts(BEHIND, max));
        assert!(!TargetSessionAttrs::Standby.accepts(Role::Standby { lag: None }, max));
        assert!(TargetSessionAttrs::Standby.accepts(BEHIND, None));
    }
}

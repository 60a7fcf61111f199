//! What a tokio-postgres [`Config`] must hold for any connect to succeed,
//! checked when a pool is configured, so that what can never work is
//! refused there, naming itself and its value, instead of failing every
//! `get` with a message that names neither.
//!
//! tokio-postgres accepts all of these and fails only when it connects:
//! - a NUL byte in the user, database, password, `options`,
//!   `application_name` or a host name (the startup message is a list of
//!   NUL-terminated strings, so it cannot carry one);
//! - port 0;
//! - more than one port, but not one per host ("invalid number of ports"),
//!   or host names and `hostaddr`s in different numbers;
//! - a host name holding a comma (a list given as one name);
//! - no host at all.
//!
//! Values are named in the errors, except the password's.

use tokio_postgres::Config;
use tokio_postgres::config::Host;

use crate::config_error::ConfigError;

/// Whether the check runs before the builder's
/// [`postgres_config`](crate::PgPoolBuilder::postgres_config) could still add
/// what is missing, or when the pool is built.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// Straight after reading a URL: a host may still be added in code.
    Parsed,
    /// In `build`: the config is final.
    Built,
}

/// Refuses what would make every connect with `config` fail.
pub(crate) fn check(config: &Config, when: When) -> Result<(), ConfigError> {
    let texts = [
        ("user", config.get_user()),
        ("dbname", config.get_dbname()),
        ("options", config.get_options()),
        ("application_name", config.get_application_name()),
    ];
    for (parameter, value) in texts {
        if let Some(value) = value.filter(|v| v.contains('\0')) {
            return Err(ConfigError::new(parameter, value, NUL_RULE));
        }
    }
    if config.get_password().is_some_and(|p| p.contains(&0)) {
        return Err(ConfigError::new("password", "(hidden)", NUL_RULE));
    }
    for host in config.get_hosts() {
        if let Host::Tcp(name) = host {
            if name.contains('\0') {
                return Err(ConfigError::new("host", name.as_str(), NUL_RULE));
            }
            if name.contains(',') {
                return Err(ConfigError::new(
                    "host",
                    name.as_str(),
                    "holds a comma: give each host of a list on its own (Config::host once per host)",
                ));
            }
        }
    }
    if config.get_ports().contains(&0) {
        return Err(ConfigError::new("port", "0", "must be a number from 1 to 65535"));
    }
    let (names, addrs) = (config.get_hosts().len(), config.get_hostaddrs().len());
    if names > 0 && addrs > 0 && names != addrs {
        return Err(ConfigError::new(
            "hostaddr",
            format!("{addrs} addresses for {names} host names"),
            "must give one address per host name, or none",
        ));
    }
    let hosts = names.max(addrs);
    let ports = config.get_ports().len();
    if ports > 1 && ports != hosts {
        return Err(ConfigError::new(
            "port",
            format!("{ports} ports for {hosts} hosts"),
            "must give one port per host, or one port for all of them",
        ));
    }
    if when == When::Built && hosts == 0 {
        return Err(ConfigError::new(
            "host",
            "(none)",
            "must be given: tokio-postgres has no default host (write postgres://host/db, or \
             ?host=/run/postgresql for a Unix socket)",
        ));
    }
    Ok(())
}

const NUL_RULE: &str = "must not contain a NUL byte (the server's startup message cannot carry one)";

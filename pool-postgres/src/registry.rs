//! Noticing a process that builds more than one pool for the same server,
//! database and user — the usual road to "sorry, too many clients already",
//! since every pool brings its own `max_size`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tokio_postgres::config::Host;

/// Where a pool connects: hosts, ports, database and user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    pub(crate) hosts: String,
    pub(crate) dbname: String,
    pub(crate) user: String,
}

impl Target {
    pub(crate) fn of(config: &tokio_postgres::Config) -> Self {
        let hosts = config
            .get_hosts()
            .iter()
            .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
            .map(|(host, port)| match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            })
            .collect::<Vec<_>>()
            .join(",");
        let user = config.get_user().unwrap_or("(default user)").to_owned();
        let dbname = config.get_dbname().map_or_else(|| user.clone(), str::to_owned);
        Self { hosts, dbname, user }
    }
}

#[derive(Default)]
struct Live {
    pools: usize,
    warned: bool,
}

fn live() -> &'static Mutex<HashMap<Target, Live>> {
    static LIVE: OnceLock<Mutex<HashMap<Target, Live>>> = OnceLock::new();
    LIVE.get_or_init(Mutex::default)
}

/// Counts one live pool for its target while it exists.
pub(crate) struct Registration {
    target: Target,
}

impl Registration {
    pub(crate) fn register(target: Target, name: &str) -> Self {
        let mut live = live().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = live.entry(target.clone()).or_default();
        entry.pools += 1;
        if entry.pools > 1 && !entry.warned {
            entry.warned = true;
            tracing::warn!(
                pool = name,
                server = %target.hosts,
                database = %target.dbname,
                user = %target.user,
                pools = entry.pools,
                "this process now has more than one pool for the same server, database and user; \
                 each brings its own max_size, which is how services end up with \
                 \"too many clients\": build one pool and share clones of it"
            );
        }
        Self { target }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut live = live().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = live.get_mut(&self.target) {
            entry.pools -= 1;
        }
    }
}

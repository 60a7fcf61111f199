//! [`TestPgBouncerBuilder`]: the settings of a test PgBouncer, and its start.

use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::TestPgBouncer;
use super::binary::PgBouncerBinary;
use super::config::{self, Placement};
use super::launch::Launch;
use crate::account::Identity;
use crate::error::{Phase, TestServerError};
use crate::supervised::Supervised;
use crate::watchdog::Watchdog;
use crate::{TestServer, dirs, ports};

/// The default for [`TestPgBouncerBuilder::start_timeout`].
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How many ports to try when another process takes the chosen one.
const PORT_ATTEMPTS: u32 = 5;

/// PgBouncer's `pool_mode`: when a server connection goes back to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolMode {
    /// When the client disconnects.
    Session,
    /// When a transaction ends (the default of a [`TestPgBouncer`]):
    /// session state such as prepared statements, `SET` and advisory locks
    /// does not survive from one transaction to the next.
    Transaction,
    /// After every statement; multi-statement transactions are refused.
    Statement,
}

impl PoolMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Transaction => "transaction",
            Self::Statement => "statement",
        }
    }
}

/// Settings for a [`TestPgBouncer`] in front of one [`TestServer`]; create
/// one with [`TestPgBouncer::builder`].
///
/// The defaults: `pool_mode = transaction`, `default_pool_size = 5`,
/// `max_client_conn = 4096`, `auth_type = trust` (or `scram-sha-256` when
/// the server has a password), the server's user as `admin_users`; all
/// else is PgBouncer's default, `ignore_startup_parameters` and
/// `server_reset_query` included. A builder can start any number of
/// PgBouncers. `Debug` does not show the password.
#[derive(Clone)]
pub struct TestPgBouncerBuilder {
    server_port: u16,
    user: String,
    password: Option<String>,
    /// `pgbouncer.ini`'s `[pgbouncer]` settings: the defaults, then
    /// whatever the caller set (see the `config` module).
    settings: Vec<(String, String)>,
    start_timeout: Duration,
}

impl fmt::Debug for TestPgBouncerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPgBouncerBuilder")
            .field("server_port", &self.server_port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("settings", &self.settings)
            .field("start_timeout", &self.start_timeout)
            .finish()
    }
}

impl TestPgBouncerBuilder {
    pub(super) fn new(server: &TestServer) -> Self {
        Self {
            server_port: server.port(),
            user: server.user().to_owned(),
            password: server.password().map(str::to_owned),
            settings: config::defaults(server.user(), server.password().is_some()),
            start_timeout: DEFAULT_START_TIMEOUT,
        }
    }

    /// Sets `pool_mode` (default [`PoolMode::Transaction`]).
    #[must_use]
    pub fn pool_mode(self, mode: PoolMode) -> Self {
        self.setting("pool_mode", mode.as_str())
    }

    /// Sets `default_pool_size`, the number of server connections per
    /// database and user (default 5). With 1, every client's transactions
    /// run on the same server connection, one at a time.
    #[must_use]
    pub fn default_pool_size(self, size: u32) -> Self {
        self.setting("default_pool_size", size.to_string())
    }

    /// Sets `max_client_conn`, how many clients may connect at once
    /// (default 4096: room for a few test processes, each with dozens of
    /// tasks that hold several connections). The file descriptor limit
    /// (`ulimit -n`) of the test process caps it too; PgBouncer logs that
    /// limit when it starts.
    #[must_use]
    pub fn max_client_conn(self, max: u32) -> Self {
        self.setting("max_client_conn", max.to_string())
    }

    /// Sets `ignore_startup_parameters`, a comma-separated list of startup
    /// parameters PgBouncer accepts and ignores (e.g. `"options"` or
    /// `"extra_float_digits,options"`). Left unset, as in a default
    /// production PgBouncer, a client that sends `options` is refused with
    /// `unsupported startup parameter: options`.
    #[must_use]
    pub fn ignore_startup_parameters(self, names: impl Into<String>) -> Self {
        self.setting("ignore_startup_parameters", names)
    }

    /// Sets any setting of `pgbouncer.ini`'s `[pgbouncer]` section, e.g.
    /// `server_reset_query`, `server_lifetime` or `query_wait_timeout`; a
    /// later call for the same name wins. `listen_addr`, `listen_port`,
    /// `unix_socket_dir`, `auth_file` and `logfile` are set by the test
    /// PgBouncer itself and are refused when it starts.
    #[must_use]
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        config::set(&mut self.settings, name.into(), value.into());
        self
    }

    /// How long to wait for PgBouncer to accept connections (default 30 s).
    #[must_use]
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts a PgBouncer and returns once it accepts connections. It only
    /// connects to the server when a client needs a server connection.
    ///
    /// Blocks the calling thread, typically for some milliseconds.
    ///
    /// # Errors
    ///
    /// A [`TestServerError`] naming the failed [`Phase`]: a refused setting
    /// ([`Phase::Configure`]), no `pgbouncer` installed
    /// ([`Phase::FindPgBouncer`], saying how to install it), a PgBouncer
    /// that exits or does not become ready in time
    /// ([`Phase::StartPgBouncer`], [`Phase::WaitPgBouncerReady`], with the
    /// end of its log), ...
    pub fn start(&self) -> Result<TestPgBouncer, TestServerError> {
        if let Some(why) = self.settings.iter().find_map(|(name, value)| config::invalid(name, value)) {
            return Err(TestServerError::new(Phase::Configure, why));
        }
        let binary = PgBouncerBinary::get()?;
        let identity = Identity::get()?;
        let base = dirs::run_dir(identity)?;
        let root = dirs::unique_dir(base, "bouncer-").map_err(|e| {
            TestServerError::io(
                Phase::PrepareDirectory,
                format!("could not create a directory in {}", base.display()),
                e,
            )
        })?;
        // From here on, dropping `bouncer` cleans up whatever exists.
        let mut bouncer = TestPgBouncer {
            binary,
            identity,
            config_path: root.join("pgbouncer.ini"),
            log_path: root.join("pgbouncer.log"),
            root,
            port: 0,
            user: self.user.clone(),
            password: self.password.clone(),
            state: Mutex::new(Supervised::default()),
        };
        let auth_path = bouncer.root.join("users.txt");
        prepare_directory(&mut bouncer, &auth_path)?;
        ports::launch_on_free_port(PORT_ATTEMPTS, Phase::StartPgBouncer, |port| {
            bouncer.port = port;
            let launched = self.launch(&bouncer, &auth_path);
            if launched.as_ref().is_err_and(|failure| failure.port_taken) {
                bouncer.port = 0;
            }
            launched
        })?;
        Ok(bouncer)
    }

    /// Writes the ini file for `bouncer.port` and starts `pgbouncer` on it.
    fn launch(&self, bouncer: &TestPgBouncer, auth_path: &Path) -> Result<(), ports::LaunchFailure> {
        let placement =
            Placement { listen_port: bouncer.port, server_port: self.server_port, auth_file: auth_path };
        let ini = config::ini(&placement, &self.settings);
        dirs::write_private_file(&bouncer.config_path, &ini, bouncer.identity.owner()).map_err(|e| {
            ports::LaunchFailure {
                error: TestServerError::io(
                    Phase::StartPgBouncer,
                    format!("could not write {}", bouncer.config_path.display()),
                    e,
                ),
                port_taken: false,
            }
        })?;
        let launch = Launch {
            binary: bouncer.binary,
            identity: bouncer.identity,
            root: &bouncer.root,
            config_path: &bouncer.config_path,
            log_path: &bouncer.log_path,
            port: bouncer.port,
            start_timeout: self.start_timeout,
            password: self.password.as_deref(),
        };
        let mut state = bouncer.lock();
        let Supervised { child, watchdog } = &mut *state;
        let Some(watchdog) = watchdog.as_mut() else {
            return Err(ports::LaunchFailure {
                error: TestServerError::new(Phase::StartPgBouncer, "the watchdog is not running"),
                port_taken: false,
            });
        };
        *child = Some(launch.run(watchdog)?);
        Ok(())
    }
}

/// Hands the bouncer's directory over, starts its watchdog and writes the
/// auth file.
fn prepare_directory(bouncer: &mut TestPgBouncer, auth_path: &Path) -> Result<(), TestServerError> {
    if let Some((uid, gid)) = bouncer.identity.owner() {
        std::os::unix::fs::chown(&bouncer.root, Some(uid), Some(gid)).map_err(|e| {
            TestServerError::io(
                Phase::PrepareDirectory,
                format!("could not chown {} to {uid}:{gid}", bouncer.root.display()),
                e,
            )
        })?;
    }
    let watchdog = Watchdog::spawn(&bouncer.root, &bouncer.root, "TERM").map_err(|e| {
        TestServerError::io(Phase::PrepareDirectory, "could not start the watchdog (/bin/sh)", e)
    })?;
    bouncer.lock().watchdog = Some(watchdog);
    let users = config::auth_file(&bouncer.user, bouncer.password.as_deref());
    dirs::write_private_file(auth_path, &users, bouncer.identity.owner()).map_err(|e| {
        TestServerError::io(Phase::StartPgBouncer, format!("could not write {}", auth_path.display()), e)
    })
}

//! [`TestPgBouncer`]: a private PgBouncer in front of a [`TestServer`].
//!
//! Design:
//! * **Files.** Each PgBouncer gets a fresh directory `bouncer-*` next to
//!   the servers' directories, holding `pgbouncer.ini`, the auth file
//!   `users.txt` (mode 0600: it has the server's password, if any) and the
//!   log `pgbouncer.log` (its stdout and stderr). The `[databases]` section
//!   is the single fallback `* = host=127.0.0.1 port=SERVER_PORT`, so every
//!   database name reaches the server, logging in as the client's user.
//! * **Process.** `pgbouncer` runs in the foreground, as our child, in its
//!   own process group and with its directory as working directory; as the
//!   server's user when we are root (PgBouncer refuses to run as root).
//! * **Readiness.** See the `launch` module: the start waits for the log
//!   lines that say the socket listens and the event loop runs.
//! * **Invariant: no orphan.** From the moment the directory exists, the
//!   value that owns it exists too, so an early error drops it and cleans
//!   up; and from just after `pgbouncer` is spawned until it has been
//!   reaped, the watchdog knows its pid, so it is stopped (`SIGTERM`, then
//!   `SIGKILL`) even when this process dies without running `Drop` (the
//!   instant between the spawn and telling the watchdog is the one gap, as
//!   for servers).
//!
//! [`TestServer`]: crate::TestServer

mod binary;
mod builder;
mod config;
mod launch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use builder::{PoolMode, TestPgBouncerBuilder};

use crate::account::Identity;
use crate::address::{HOST, Login};
use crate::error::{self, Phase, TestServerError};
use crate::process;
use crate::supervised::{StopReport, Supervised};
use crate::{TestServer, dirs, ports};
use binary::PgBouncerBinary;

/// The admin console's database name.
const ADMIN_DATABASE: &str = "pgbouncer";

/// How long [`TestPgBouncer::stop`] waits for the safe shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `SIGTERM` gets (after `stop`'s `SIGINT`, or in `Drop`) before
/// `SIGKILL`.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A running (or stopped) PgBouncer in front of a [`TestServer`],
/// listening on a free port of 127.0.0.1.
///
/// Start one with [`TestPgBouncer::start`] or [`TestPgBouncer::builder`].
/// It copies what it needs from the server and does not borrow it, so both
/// can live side by side in a test fixture (in either drop order; while
/// the server is gone, queries through the PgBouncer fail). Clients use [`url`](Self::url) or
/// [`connection_string`](Self::connection_string) as they would the
/// server's.
///
/// **Admin console.** The server's user is PgBouncer's `admin_users`:
/// connect to the database `pgbouncer` ([`admin_url`](Self::admin_url))
/// and send `SHOW POOLS`, `SHOW STATS`, `SHOW SERVERS`, ... with the
/// simple query protocol (`simple_query` in tokio-postgres; the console
/// does not support prepared statements).
///
/// Dropping it stops PgBouncer (`SIGTERM`, then `SIGKILL`) and deletes its
/// directory; if the test process dies without dropping it, its watchdog
/// does the same. `Debug` does not show the password.
pub struct TestPgBouncer {
    binary: &'static PgBouncerBinary,
    identity: &'static Identity,
    root: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    port: u16,
    user: String,
    password: Option<String>,
    /// The `pgbouncer` process, until it has been stopped, and its watchdog.
    state: Mutex<Supervised>,
}

impl TestPgBouncer {
    /// A builder for a PgBouncer in front of `server`; see
    /// [`TestPgBouncerBuilder`] for the defaults.
    pub fn builder(server: &TestServer) -> TestPgBouncerBuilder {
        TestPgBouncerBuilder::new(server)
    }

    /// Starts a PgBouncer with the default settings in front of `server`;
    /// see [`TestPgBouncerBuilder::start`].
    ///
    /// # Errors
    ///
    /// As [`TestPgBouncerBuilder::start`].
    pub fn start(server: &TestServer) -> Result<Self, TestServerError> {
        Self::builder(server).start()
    }

    /// Whether a `pgbouncer` binary can be found (on `PATH`, or in
    /// `/usr/sbin` or `/usr/local/sbin`). [`start`](Self::start) never
    /// skips: without one it fails, saying how to install it.
    pub fn available() -> bool {
        PgBouncerBinary::get().is_ok()
    }

    /// The host PgBouncer listens on: `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port PgBouncer listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user the URLs log in as: the server's user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// `postgres://USER[:PASSWORD]@127.0.0.1:PORT/postgres`, through
    /// PgBouncer.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// Like [`url`](Self::url), for database `dbname` (which must exist on
    /// the server; any name is passed through).
    pub fn url_for(&self, dbname: &str) -> String {
        self.login().url(dbname)
    }

    /// The URL of the admin console: [`url_for("pgbouncer")`](Self::url_for).
    pub fn admin_url(&self) -> String {
        self.url_for(ADMIN_DATABASE)
    }

    /// A key=value connection string through PgBouncer:
    /// `host=127.0.0.1 port=PORT user=USER dbname=postgres [password=...]`.
    pub fn connection_string(&self) -> String {
        self.connection_string_for("postgres")
    }

    /// Like [`connection_string`](Self::connection_string), for database
    /// `dbname`.
    pub fn connection_string_for(&self, dbname: &str) -> String {
        self.login().connection_string(dbname)
    }

    /// The `pgbouncer.ini` in use (it has no password in it).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// PgBouncer's log: everything it wrote to stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        error::tail_lines(&dirs::read_end(&self.log_path).unwrap_or_default(), lines)
    }

    /// The first line of `pgbouncer --version`, e.g. `PgBouncer 1.18.0`.
    pub fn version(&self) -> &str {
        &self.binary.version
    }

    /// Whether the `pgbouncer` process is running.
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// The `pgbouncer` process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.lock().running_pid()
    }

    /// Stops PgBouncer with a safe shutdown (`SIGINT`: it waits until no
    /// server connection is in use, which in transaction mode means until
    /// running transactions end, then closes every connection) and waits
    /// until it has exited. Stopping a stopped PgBouncer does nothing.
    ///
    /// # Errors
    ///
    /// [`Phase::StopPgBouncer`] if it did not exit within 10 s (it has then
    /// been stopped with `SIGTERM` or `SIGKILL`) or could not be signalled.
    pub fn stop(&self) -> Result<(), TestServerError> {
        self.shut_down(&[("INT", STOP_TIMEOUT), ("TERM", TERM_GRACE)], "INT", STOP_TIMEOUT)
    }

    /// Kills PgBouncer like a crash (`SIGKILL`): every client connection
    /// breaks at once, without a word from PgBouncer. Waits until it has
    /// exited.
    ///
    /// # Errors
    ///
    /// [`Phase::StopPgBouncer`] if it could not be killed.
    pub fn kill(&self) -> Result<(), TestServerError> {
        self.shut_down(&[], "KILL", Duration::ZERO)
    }

    fn login(&self) -> Login<'_> {
        Login { port: self.port, user: &self.user, password: self.password.as_deref() }
    }

    fn lock(&self) -> MutexGuard<'_, Supervised> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn shut_down(
        &self,
        steps: &[(&'static str, Duration)],
        first_signal: &str,
        grace: Duration,
    ) -> Result<(), TestServerError> {
        let report = StopReport {
            phase: Phase::StopPgBouncer,
            who: "pgbouncer",
            first_signal,
            grace,
            log_label: "pgbouncer log",
            log_path: &self.log_path,
        };
        self.lock().stop(|child| process::shut_down_with(child, steps), &report)
    }
}

impl Drop for TestPgBouncer {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        state.tear_down(|child| process::shut_down_with(child, &[("TERM", TERM_GRACE)]), &self.root);
        ports::release(self.port);
    }
}

impl fmt::Debug for TestPgBouncer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPgBouncer")
            .field("host", &HOST)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("config_path", &self.config_path)
            .field("version", &self.binary.version)
            .finish_non_exhaustive()
    }
}

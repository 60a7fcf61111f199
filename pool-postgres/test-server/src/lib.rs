#![doc = include_str!("../README.md")]

#[cfg(not(unix))]
compile_error!("pool-postgres-test-server works on Unix-like systems only");

mod account;
mod address;
mod binaries;
mod dirs;
mod error;
#[cfg(feature = "fault-proxy")]
mod fault_proxy;
mod pgbouncer;
mod ports;
mod process;
mod psql;
mod recovery;
mod replica;
mod supervised;
mod template;
mod watchdog;

use std::fmt;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use error::{Phase, TestServerError};
#[cfg(feature = "fault-proxy")]
pub use fault_proxy::FaultProxy;
pub use pgbouncer::{PoolMode, TestPgBouncer, TestPgBouncerBuilder};

use account::Identity;
use address::{HOST, Login};
use binaries::Binaries;
use ports::LaunchFailure;
use process::{Launch, NotReady};
use supervised::{StopReport, Supervised};
use template::{Auth, SUPERUSER};
use watchdog::Watchdog;

/// The default for [`TestServerBuilder::start_timeout`].
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`TestServer::stop`] waits for a fast shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `Drop` waits for a fast shutdown before escalating.
const DROP_GRACE: Duration = Duration::from_secs(5);

/// How long [`TestServer::kill`] waits for an immediate shutdown.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How many ports to try when another process takes the chosen one.
const PORT_ATTEMPTS: u32 = 5;

/// The longest Unix socket path that works everywhere (`sun_path` is 104
/// bytes on macOS and the BSDs, 108 on Linux, including the NUL).
const MAX_SOCKET_PATH: usize = 103;

/// Settings for a [`TestServer`]; create one with [`TestServer::builder`].
///
/// A builder can start any number of servers.
#[derive(Clone)]
pub struct TestServerBuilder {
    settings: Vec<(String, String)>,
    auth: Option<(String, String)>,
    start_timeout: Duration,
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        Self { settings: Vec::new(), auth: None, start_timeout: DEFAULT_START_TIMEOUT }
    }
}

impl fmt::Debug for TestServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServerBuilder")
            .field("settings", &self.settings)
            .field("user", &self.auth.as_ref().map(|(user, _)| user))
            .field("password", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("start_timeout", &self.start_timeout)
            .finish()
    }
}

impl TestServerBuilder {
    /// The same as [`TestServer::builder`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `max_connections` (PostgreSQL's default is 100).
    #[must_use]
    pub fn max_connections(self, max: u32) -> Self {
        self.setting("max_connections", max.to_string())
    }

    /// Sets any server setting, passed as `-c name=value` on the `postgres`
    /// command line; it overrides this crate's defaults (such as
    /// `fsync=off`), and a later call for the same name wins.
    #[must_use]
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Requires SCRAM-SHA-256 password authentication for TCP connections,
    /// and gives `user` the password `password`. A `user` other than
    /// `postgres` is created as a superuser and becomes the server's
    /// [`user`](TestServer::user) (the one in [`url`](TestServer::url)).
    ///
    /// Neither may be empty or contain a line break. Each distinct
    /// user/password pair gets its own cached template cluster, so the
    /// first start with a new pair runs `initdb` again.
    #[must_use]
    pub fn password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some((user.into(), password.into()));
        self
    }

    /// How long to wait for the server to accept connections (default 30 s).
    #[must_use]
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts a server and returns once it accepts connections.
    ///
    /// Blocks the calling thread: tens to a few hundred milliseconds when
    /// the template cluster exists, about a second more when it must be
    /// created first (see the [crate docs](crate)).
    ///
    /// # Errors
    ///
    /// A [`TestServerError`] naming the failed [`Phase`]: no PostgreSQL
    /// binaries (with install instructions), a failed `initdb`, a server that
    /// exits or does not become ready in time (with the end of its log), ...
    pub fn start(&self) -> Result<TestServer, TestServerError> {
        self.validate()?;
        let bins = Binaries::get()?;
        let identity = Identity::get()?;
        let auth = self.auth.as_ref().map(|(user, password)| Auth { user, password });
        let template = template::ensure(bins, identity, dirs::cache_dir(identity)?, auth)?;
        let user = self.auth.as_ref().map_or(SUPERUSER, |(user, _)| user.as_str()).to_owned();
        let password = self.auth.as_ref().map(|(_, password)| password.clone());
        let settings = self.settings.clone();
        let mut server =
            TestServer::in_new_dir(bins, identity, template, user, password, settings, self.start_timeout)?;
        server.prepare()?;
        server.copy_template()?;
        server.launch_on_free_port()?;
        Ok(server)
    }

    fn validate(&self) -> Result<(), TestServerError> {
        let bad = |what: String| Err(TestServerError::new(Phase::Configure, what));
        for (name, value) in &self.settings {
            let name_ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
            if !name_ok {
                return bad(format!("invalid setting name {name:?}"));
            }
            if value.contains('\0') {
                return bad(format!("the value of setting {name} contains a NUL byte"));
            }
        }
        if let Some((user, password)) = &self.auth {
            let broken = |s: &str| s.is_empty() || s.contains(['\n', '\r', '\0']);
            if broken(user) {
                return bad(format!("invalid user name {user:?}: it must be non-empty, without line breaks"));
            }
            if broken(password) {
                return bad("invalid password: it must be non-empty, without line breaks".to_owned());
            }
        }
        Ok(())
    }
}

/// A running (or stopped) throwaway PostgreSQL server: a primary from
/// [`TestServer::start`] or [`TestServerBuilder::start`], or a streaming
/// replica of one from [`start_replica`](TestServer::start_replica).
///
/// See the [crate docs](crate) for how it works. The superuser is
/// `postgres` (or the user given to [`TestServerBuilder::password`]); the
/// database `postgres` exists. All methods take `&self`, so a server can
/// live in a `static` and be shared between tests (the watchdog stops it
/// when the test process exits, since statics are never dropped).
///
/// `Debug` does not show the password.
pub struct TestServer {
    bins: &'static Binaries,
    identity: &'static Identity,
    template: PathBuf,
    root: PathBuf,
    data_dir: PathBuf,
    socket_dir: Option<PathBuf>,
    log_path: PathBuf,
    port: u16,
    user: String,
    password: Option<String>,
    settings: Vec<(String, String)>,
    start_timeout: Duration,
    /// A replica's primary's port (0 for a primary), held in [`ports`] as
    /// long as the replica lives: every server here is a copy of the same
    /// template, with the same system identifier, so a replica whose
    /// primary is gone would happily stream from another server of this
    /// process that got the port.
    upstream_port: u16,
    state: Mutex<State>,
}

/// What changes while the server lives.
#[derive(Default)]
struct State {
    /// The postmaster, while it runs (or until we notice it has exited),
    /// and its watchdog.
    process: Supervised,
    /// The log file, opened once, appended to by every start.
    log: Option<File>,
}

/// What [`server_launch`] needs from a [`TestServer`].
struct LaunchParts<'a> {
    bins: &'a Binaries,
    identity: &'a Identity,
    template: &'a Path,
    data_dir: &'a Path,
    socket_dir: Option<&'a Path>,
    log_path: &'a Path,
    port: u16,
    settings: &'a [(String, String)],
    start_timeout: Duration,
}

impl TestServer {
    /// A builder for a server with custom settings.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// Starts a server with the default settings; see
    /// [`TestServerBuilder::start`].
    ///
    /// # Errors
    ///
    /// As [`TestServerBuilder::start`].
    pub fn start() -> Result<Self, TestServerError> {
        Self::builder().start()
    }

    /// Whether the PostgreSQL server binaries can be found (see the
    /// [crate docs](crate)). Use it to decide between a test server and,
    /// say, `DATABASE_URL`; [`start`](Self::start) itself never skips.
    pub fn binaries_available() -> bool {
        Binaries::get().is_ok()
    }

    /// The host the server listens on: `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port the server listens on; it stays the same across
    /// [`start_again`](Self::start_again).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user the URLs and connection strings log in as: `postgres`, or
    /// the user given to [`TestServerBuilder::password`].
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password, if the server requires one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `postgres://USER[:PASSWORD]@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// Like [`url`](Self::url), for database `dbname` (which must exist).
    pub fn url_for(&self, dbname: &str) -> String {
        self.login().url(dbname)
    }

    /// A key=value connection string as `tokio_postgres::Config` and libpq
    /// accept: `host=127.0.0.1 port=PORT user=USER dbname=postgres
    /// [password=...]`.
    pub fn connection_string(&self) -> String {
        self.connection_string_for("postgres")
    }

    /// Like [`connection_string`](Self::connection_string), for database
    /// `dbname`.
    pub fn connection_string_for(&self, dbname: &str) -> String {
        self.login().connection_string(dbname)
    }

    /// The directory of the server's Unix socket (`.s.PGSQL.PORT`), or
    /// `None` if the temp dir's path is too long for a socket path.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.socket_dir.as_deref()
    }

    /// The data directory (a canonical path).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's log file: everything it wrote to stdout and stderr, over
    /// all its starts.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        error::tail_lines(&dirs::read_end(&self.log_path).unwrap_or_default(), lines)
    }

    /// The directory of the PostgreSQL binaries in use (it has `psql` too,
    /// if the client package is installed).
    pub fn bin_dir(&self) -> &Path {
        &self.bins.bin_dir
    }

    /// `postgres --version` of the binaries in use.
    pub fn version(&self) -> &str {
        &self.bins.version
    }

    /// A command for a client program from [`bin_dir`](Self::bin_dir)
    /// (`psql`, `pg_dump`, `pgbench`, ...) with `PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGDATABASE=postgres` and, if set, `PGPASSWORD` pointing at this
    /// server. It runs as the current user and connects over TCP. Pass `-X`
    /// to `psql` to ignore `~/.psqlrc`.
    pub fn client_command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bins.program(program));
        command
            .env("PGHOST", HOST)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGDATABASE", "postgres")
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS");
        match &self.password {
            Some(password) => command.env("PGPASSWORD", password),
            None => command.env_remove("PGPASSWORD"),
        };
        command
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// The postmaster's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.lock().process.running_pid()
    }

    /// Stops the server with a fast shutdown (`SIGINT`: open connections are
    /// closed, a checkpoint is written) and waits until it has exited. The
    /// data directory and port are kept for [`start_again`](Self::start_again).
    /// Stopping a stopped server does nothing.
    ///
    /// # Errors
    ///
    /// [`Phase::Stop`] if the server did not exit within 10 s (it has then
    /// been stopped with `SIGQUIT` or `SIGKILL`) or could not be signalled.
    pub fn stop(&self) -> Result<(), TestServerError> {
        self.shut_down("INT", STOP_TIMEOUT)
    }

    /// Stops the server abruptly, like a crash: an immediate shutdown
    /// (`SIGQUIT`, what `pg_ctl stop -m immediate` sends) makes every server
    /// process exit at once, without a checkpoint, cutting all connections;
    /// the next [`start_again`](Self::start_again) runs crash recovery.
    /// (A bare `SIGKILL` of the postmaster would leave its children
    /// running.) Waits until the server has exited.
    ///
    /// # Errors
    ///
    /// [`Phase::Stop`] if the server could not be signalled, or needed a
    /// `SIGKILL` after 5 s.
    pub fn kill(&self) -> Result<(), TestServerError> {
        self.shut_down("QUIT", KILL_GRACE)
    }

    /// Starts the stopped server again, on the same data directory and
    /// port, and waits until it accepts connections. Does nothing if it is
    /// running.
    ///
    /// # Errors
    ///
    /// [`Phase::Start`] or [`Phase::WaitReady`] with the end of the server
    /// log, e.g. when another process has taken the port meanwhile.
    pub fn start_again(&self) -> Result<(), TestServerError> {
        let mut state = self.lock();
        if state.process.running_pid().is_some() {
            return Ok(());
        }
        state.process.forget_exited();
        server_launch(&self.launch_parts(), &mut state).map_err(|failure| failure.error)
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again).
    ///
    /// # Errors
    ///
    /// As those two.
    pub fn restart(&self) -> Result<(), TestServerError> {
        self.stop()?;
        self.start_again()
    }

    fn login(&self) -> Login<'_> {
        Login { port: self.port, user: &self.user, password: self.password.as_deref() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn launch_parts(&self) -> LaunchParts<'_> {
        LaunchParts {
            bins: self.bins,
            identity: self.identity,
            template: &self.template,
            data_dir: &self.data_dir,
            socket_dir: self.socket_dir.as_deref(),
            log_path: &self.log_path,
            port: self.port,
            settings: &self.settings,
            start_timeout: self.start_timeout,
        }
    }

    /// A server that does not exist yet: a fresh directory below the run
    /// dir, no data directory, no watchdog, no port. From here on, dropping
    /// it cleans up whatever exists.
    fn in_new_dir(
        bins: &'static Binaries,
        identity: &'static Identity,
        template: PathBuf,
        user: String,
        password: Option<String>,
        settings: Vec<(String, String)>,
        start_timeout: Duration,
    ) -> Result<Self, TestServerError> {
        let base = dirs::run_dir(identity)?;
        let root = dirs::unique_dir(base, "srv-").map_err(|e| {
            TestServerError::io(
                Phase::PrepareDirectory,
                format!("could not create a directory in {}", base.display()),
                e,
            )
        })?;
        let socket_dir =
            (root.as_os_str().len() + "/.s.PGSQL.65535".len() <= MAX_SOCKET_PATH).then(|| root.clone());
        Ok(Self {
            bins,
            identity,
            template,
            log_path: root.join("server.log"),
            data_dir: root.join("data"),
            socket_dir,
            root,
            port: 0,
            user,
            password,
            settings,
            start_timeout,
            upstream_port: 0,
            state: Mutex::new(State::default()),
        })
    }

    /// Hands the directory over, starts the watchdog and opens the log.
    fn prepare(&mut self) -> Result<(), TestServerError> {
        if let Some((uid, gid)) = self.identity.owner() {
            std::os::unix::fs::chown(&self.root, Some(uid), Some(gid)).map_err(|e| {
                TestServerError::io(
                    Phase::PrepareDirectory,
                    format!("could not chown {} to {uid}:{gid}", self.root.display()),
                    e,
                )
            })?;
        }
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let watchdog = Watchdog::spawn(&self.root, &self.data_dir, "QUIT").map_err(|e| {
            TestServerError::io(Phase::PrepareDirectory, "could not start the watchdog (/bin/sh)", e)
        })?;
        state.process.watchdog = Some(watchdog);
        let log = OpenOptions::new().create(true).append(true).open(&self.log_path).map_err(|e| {
            TestServerError::io(
                Phase::PrepareDirectory,
                format!("could not create {}", self.log_path.display()),
                e,
            )
        })?;
        state.log = Some(log);
        Ok(())
    }

    /// Fills the data directory with a copy of the template.
    fn copy_template(&self) -> Result<(), TestServerError> {
        dirs::copy_tree(&self.template, &self.data_dir, self.identity.owner()).map_err(|e| {
            TestServerError::io(
                Phase::CopyTemplate,
                format!("could not copy {} to {}", self.template.display(), self.data_dir.display()),
                e,
            )
        })
    }

    /// The first launch: on a newly reserved port, and on another one if a
    /// different process takes it first.
    fn launch_on_free_port(&mut self) -> Result<(), TestServerError> {
        ports::launch_on_free_port(PORT_ATTEMPTS, Phase::Start, |port| {
            self.port = port;
            let launched = {
                let mut state = self.lock();
                server_launch(&self.launch_parts(), &mut state)
            };
            if launched.as_ref().is_err_and(|failure| failure.port_taken) {
                self.port = 0;
            }
            launched
        })
    }

    fn shut_down(&self, signal: &'static str, grace: Duration) -> Result<(), TestServerError> {
        let report = StopReport {
            phase: Phase::Stop,
            who: "the server",
            first_signal: signal,
            grace,
            log_label: "server log",
            log_path: &self.log_path,
        };
        self.lock().process.stop(|child| process::shut_down(child, signal, grace), &report)
    }
}

/// Spawns the postmaster and waits until it is ready; on success the child
/// is stored in `state`.
fn server_launch(parts: &LaunchParts<'_>, state: &mut State) -> Result<(), LaunchFailure> {
    let fail = |error: TestServerError| LaunchFailure { error, port_taken: false };
    let Some(log) = state.log.as_ref() else {
        return Err(fail(TestServerError::new(Phase::Start, "the server log is not open")));
    };
    let log_offset = log.metadata().map(|m| m.len()).ok();
    let launch = Launch {
        bins: parts.bins,
        identity: parts.identity,
        data_dir: parts.data_dir,
        socket_dir: parts.socket_dir,
        port: parts.port,
        settings: parts.settings,
        log,
    };
    let (mut child, command) = launch.spawn().map_err(|e| {
        fail(TestServerError::io(Phase::Start, "could not spawn postgres", e).with_command(&launch.command()))
    })?;
    if let Some(watchdog) = &mut state.process.watchdog {
        watchdog.watch(child.id());
    }
    let outcome = process::wait_ready(&mut child, parts.data_dir, parts.start_timeout);
    if outcome.is_ok() {
        state.process.child = Some(child);
        return Ok(());
    }
    // Failed: make sure it is gone, then explain.
    let _ = process::shut_down(&mut child, "QUIT", KILL_GRACE);
    if let Some(watchdog) = &mut state.process.watchdog {
        watchdog.unwatch();
    }
    let new_log = dirs::read_from(parts.log_path, log_offset).unwrap_or_default();
    let port_taken = new_log.contains("Address already in use");
    let mut message = match outcome {
        Err(NotReady::Exited(status)) => format!("postgres exited during startup ({status})"),
        Err(NotReady::TimedOut) => format!(
            "the server did not accept connections within {:?}; it was shut down",
            parts.start_timeout
        ),
        Err(NotReady::Io(ref e)) => format!("could not watch the server process: {e}"),
        Ok(()) => String::new(),
    };
    if new_log.contains("Permission denied")
        && let Some(account) = &parts.identity.run_as
    {
        let _ = write!(
            message,
            "; note: the server runs as user {} (we are root), so every directory above {} \
             must be searchable by it; set TMPDIR to a directory such as /tmp",
            account.name,
            parts.data_dir.display()
        );
    }
    if port_taken {
        let _ = write!(message, "; port {} is in use", parts.port);
    }
    let damaged = ["PANIC", "No such file or directory", "incompatible", "invalid checkpoint"];
    if damaged.iter().any(|sign| new_log.contains(sign)) {
        let _ = write!(
            message,
            "; the data directory is a copy of the cached template {}: if that is damaged, \
             delete it to have it rebuilt",
            parts.template.display()
        );
    }
    let phase = if matches!(outcome, Err(NotReady::TimedOut)) { Phase::WaitReady } else { Phase::Start };
    Err(LaunchFailure {
        error: TestServerError::new(phase, message)
            .with_command(&command)
            .with_output(format!("server log {}", parts.log_path.display()), &new_log),
        port_taken,
    })
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        state.log = None;
        state.process.tear_down(|child| process::shut_down(child, "INT", DROP_GRACE), &self.root);
        ports::release(self.port);
        ports::release(self.upstream_port);
    }
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("host", &HOST)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("data_dir", &self.data_dir)
            .field("version", &self.bins.version)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_debug_hides_the_password() {
        let builder = TestServer::builder().password("app", "hunter2");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("app"), "{shown}");
    }

    #[test]
    fn rejects_bad_settings() {
        let err = TestServer::builder().setting("bad name", "1").start().unwrap_err();
        assert_eq!(err.phase(), Phase::Configure);
        let err = TestServer::builder().password("postgres", "two\nlines").start().unwrap_err();
        assert_eq!(err.phase(), Phase::Configure);
    }
}

//! Spawning `pgbouncer` and waiting until it accepts connections.
//!
//! PgBouncer logs `listening on 127.0.0.1:PORT` once its socket is bound
//! and listening, then `process up: PgBouncer ...` as it enters its event
//! loop. A start waits for both lines in the part of the log that this
//! start wrote, while checking that the process has not exited. One that
//! cannot bind its port logs `Address already in use` and exits; the caller
//! then tries another port.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::binary::PgBouncerBinary;
use crate::account::Identity;
use crate::dirs;
use crate::error::{Phase, TestServerError};
use crate::ports::LaunchFailure;
use crate::process::{self, NotReady};
use crate::watchdog::Watchdog;

/// How long a PgBouncer that did not become ready gets to exit on
/// `SIGTERM` before `SIGKILL`.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// Everything needed to start one `pgbouncer` process.
pub(crate) struct Launch<'a> {
    pub(crate) binary: &'a PgBouncerBinary,
    pub(crate) identity: &'a Identity,
    /// Its directory, which becomes its working directory (the watchdog
    /// recognises it by that).
    pub(crate) root: &'a Path,
    pub(crate) config_path: &'a Path,
    pub(crate) log_path: &'a Path,
    pub(crate) port: u16,
    pub(crate) start_timeout: Duration,
    /// Kept out of errors, should PgBouncer ever echo it.
    pub(crate) password: Option<&'a str>,
}

impl Launch<'_> {
    /// Spawns `pgbouncer` and waits until it accepts connections. On
    /// failure the process is gone again and the watchdog told so.
    pub(crate) fn run(&self, watchdog: &mut Watchdog) -> Result<Child, LaunchFailure> {
        let fail = |error: TestServerError| LaunchFailure { error, port_taken: false };
        let log = OpenOptions::new().create(true).append(true).open(self.log_path).map_err(|e| {
            fail(TestServerError::io(
                Phase::StartPgBouncer,
                format!("could not open {}", self.log_path.display()),
                e,
            ))
        })?;
        let log_offset = log.metadata().map(|m| m.len()).ok();
        let mut command = self.command();
        let mut child = self.spawn(&mut command, &log).map_err(|e| {
            fail(
                TestServerError::io(Phase::StartPgBouncer, "could not spawn pgbouncer", e)
                    .with_command(&command),
            )
        })?;
        watchdog.watch(child.id());
        let listening = format!("listening on 127.0.0.1:{}", self.port);
        let outcome = process::wait_until_ready(&mut child, self.start_timeout, || {
            let written = dirs::read_from(self.log_path, log_offset).unwrap_or_default();
            written.contains(&listening) && written.contains("process up")
        });
        if outcome.is_ok() {
            return Ok(child);
        }
        let _ = process::shut_down_with(&mut child, &[("TERM", ABORT_GRACE)]);
        watchdog.unwatch();
        let written = dirs::read_from(self.log_path, log_offset).unwrap_or_default();
        let port_taken = written.contains("Address already in use");
        let mut message = match outcome {
            Err(NotReady::Exited(status)) => format!("pgbouncer exited during startup ({status})"),
            Err(NotReady::TimedOut) => format!(
                "pgbouncer did not accept connections within {:?}; it was stopped",
                self.start_timeout
            ),
            Err(NotReady::Io(ref e)) => format!("could not watch the pgbouncer process: {e}"),
            Ok(()) => String::new(),
        };
        if port_taken {
            let _ = write!(message, "; port {} is in use", self.port);
        }
        let phase = if matches!(outcome, Err(NotReady::TimedOut)) {
            Phase::WaitPgBouncerReady
        } else {
            Phase::StartPgBouncer
        };
        let mut error = TestServerError::new(phase, message)
            .with_command(&command)
            .with_output(format!("pgbouncer log {}", self.log_path.display()), &written);
        if let Some(password) = self.password {
            error = error.redact(password);
        }
        Err(LaunchFailure { error, port_taken })
    }

    /// `pgbouncer CONFIG`, in the foreground (no `-d`), so that it stays
    /// our child and its log goes to our file.
    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary.path);
        command.arg(self.config_path);
        command
    }

    /// Spawns it in its own process group (a Ctrl-C leaves the shutdown to
    /// `Drop` or the watchdog, as for the servers), as the server's user
    /// when we are root (PgBouncer refuses to run as root), with stdout and
    /// stderr going to the log.
    fn spawn(&self, command: &mut Command, log: &File) -> io::Result<Child> {
        command
            .current_dir(self.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .process_group(0);
        self.identity.apply(command);
        command.spawn()
    }
}

//! Spawning `postgres`, waiting until it is ready, signalling and stopping it.

use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::account::Identity;
use crate::binaries::Binaries;

/// Everything needed to spawn the postmaster.
pub(crate) struct Launch<'a> {
    pub(crate) bins: &'a Binaries,
    pub(crate) identity: &'a Identity,
    pub(crate) data_dir: &'a Path,
    pub(crate) socket_dir: Option<&'a Path>,
    pub(crate) port: u16,
    pub(crate) settings: &'a [(String, String)],
    pub(crate) log: &'a File,
}

impl Launch<'_> {
    /// The `postgres` command line: our defaults first, so that the caller's
    /// settings (later `-c` options win) can override them.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(self.bins.program("postgres"));
        command.arg("-D").arg(self.data_dir);
        let socket_dirs = self.socket_dir.map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
        let defaults = [
            ("listen_addresses", "127.0.0.1".to_owned()),
            ("port", self.port.to_string()),
            ("unix_socket_directories", socket_dirs),
            // Throwaway data: do not wait for the disk.
            ("fsync", "off".to_owned()),
            // The log goes to stderr, which is our log file.
            ("logging_collector", "off".to_owned()),
            // Puts the data directory into every server process's title, so
            // `pgrep -f DATA_DIR` finds them all.
            ("cluster_name", self.data_dir.to_string_lossy().into_owned()),
            // Dynamic shared memory as files in the data directory instead of
            // /dev/shm: a server that is killed (or shut down immediately)
            // cannot clean up its /dev/shm segments, and they would outlive
            // the deleted data directory on every test run.
            ("dynamic_shared_memory_type", "mmap".to_owned()),
        ];
        for (name, value) in defaults {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        for (name, value) in self.settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        command
    }

    /// Spawns the postmaster in its own process group (so that a Ctrl-C or
    /// a test runner killing the test's group leaves the orderly shutdown to
    /// us or the watchdog), with stdout and stderr going to the log file.
    pub(crate) fn spawn(&self) -> io::Result<(Child, Command)> {
        let mut command = self.command();
        command
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(self.log.try_clone()?)
            .stderr(self.log.try_clone()?)
            .process_group(0);
        self.identity.apply(&mut command);
        let child = command.spawn()?;
        Ok((child, command))
    }
}

/// Why a postmaster did not become ready.
pub(crate) enum NotReady {
    Exited(ExitStatus),
    TimedOut,
    Io(io::Error),
}

/// Polls until the postmaster reports "ready" in `postmaster.pid` (as
/// `pg_ctl` does), it exits, or `timeout` passes.
pub(crate) fn wait_ready(child: &mut Child, data_dir: &Path, timeout: Duration) -> Result<(), NotReady> {
    let pid = child.id();
    wait_until_ready(child, timeout, || is_ready(data_dir, pid))
}

/// Polls `ready` until it returns true, the child exits, or `timeout`
/// passes; the pauses between polls grow from 1 ms to 20 ms.
pub(crate) fn wait_until_ready(
    child: &mut Child,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), NotReady> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Err(NotReady::Exited(status)),
            Ok(None) => {}
            Err(e) => return Err(NotReady::Io(e)),
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NotReady::TimedOut);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Line 8 of `postmaster.pid` is the postmaster's status since PostgreSQL 10
/// (`starting`, `ready`, `stopping`); line 1 is its pid, which tells a
/// stale file from an old run apart from the current one.
fn is_ready(data_dir: &Path, pid: u32) -> bool {
    let Ok(text) = fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.first().and_then(|l| l.trim().parse::<u32>().ok()) != Some(pid) {
        return false;
    }
    // The file is written in stages; until the status line exists the
    // server is still starting, even though it may already accept TCP
    // connections (which it then refuses with "the database system is
    // starting up"). Every supported version (10+) writes the line.
    lines.get(7).is_some_and(|status| status.trim() == "ready")
}

/// Sends a signal (`INT`, `QUIT`, ...) with the shell's `kill` builtin:
/// std can only send `SIGKILL`, and this crate has no unsafe code.
pub(crate) fn signal(pid: u32, name: &str) -> io::Result<bool> {
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("kill -s {name} {pid} 2>/dev/null"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(status.success())
}

/// Waits up to `timeout` for the child to exit.
pub(crate) fn wait_exit(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// How a shutdown ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shutdown {
    /// It exited after the first signal.
    Clean,
    /// It needed a later signal: its name without `SIG` (`QUIT`, `KILL`).
    Escalated(&'static str),
}

/// How long a postmaster gets to exit after an immediate shutdown.
const IMMEDIATE_GRACE: Duration = Duration::from_secs(5);

/// Stops a postmaster: sends `first` (`INT` = fast shutdown, `QUIT` =
/// immediate shutdown) and waits `grace`; then `QUIT` and 5 s; then
/// `SIGKILL`. See [`shut_down_with`].
pub(crate) fn shut_down(child: &mut Child, first: &'static str, grace: Duration) -> io::Result<Shutdown> {
    if first == "QUIT" {
        shut_down_with(child, &[("QUIT", grace)])
    } else {
        shut_down_with(child, &[(first, grace), ("QUIT", IMMEDIATE_GRACE)])
    }
}

/// Sends each signal of `steps` in turn and waits its time for the process
/// to exit; if it is still there after the last, `SIGKILL`s it and waits
/// until it is gone. Returns an error only if even that fails.
pub(crate) fn shut_down_with(child: &mut Child, steps: &[(&'static str, Duration)]) -> io::Result<Shutdown> {
    if child.try_wait()?.is_some() {
        return Ok(Shutdown::Clean);
    }
    let pid = child.id();
    for (index, &(name, grace)) in steps.iter().enumerate() {
        signal(pid, name)?;
        if wait_exit(child, grace)?.is_some() {
            return Ok(if index == 0 { Shutdown::Clean } else { Shutdown::Escalated(name) });
        }
    }
    child.kill()?;
    child.wait()?;
    Ok(if steps.is_empty() { Shutdown::Clean } else { Shutdown::Escalated("KILL") })
}

//! The orphan safety net: a tiny `sh` process per server or PgBouncer that
//! cleans up when the owning process dies without dropping the
//! [`TestServer`] or [`TestPgBouncer`].
//!
//! The watchdog reads commands from a pipe whose only writer is this
//! process. The kernel closes that pipe when this process ends, *however* it
//! ends (panic with `panic = "abort"`, `std::process::exit`, a server kept in
//! a `static`, `SIGKILL` from a test runner's timeout). `read` then sees end
//! of file, and the watchdog stops the process it was told about with the
//! signal it was given (`SIGQUIT`, an immediate shutdown, for a postmaster;
//! `SIGTERM` for a PgBouncer), then `SIGKILL` after 5 s, and removes the
//! temporary directory.
//!
//! Messages: `pid N` (the process now runs as N), `nopid` (it has exited
//! and been reaped by us) and `disarm` (we cleaned up ourselves; exit quietly).
//! Before signalling, the watchdog checks on Linux that the process's working
//! directory is still the one it was given (the postmaster `chdir`s to its
//! data directory, a PgBouncer is started in its own directory), so a
//! recycled pid is never hit. It sits in its own process group, so a
//! Ctrl-C or a runner killing the test's process group does not take the
//! watchdog down with it.
//!
//! [`TestServer`]: crate::TestServer
//! [`TestPgBouncer`]: crate::TestPgBouncer

use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = r#"
root=$POOL_POSTGRES_WATCHDOG_ROOT
cwd_of_pid=$POOL_POSTGRES_WATCHDOG_CWD
stop_signal=$POOL_POSTGRES_WATCHDOG_SIGNAL
pid=
while IFS= read -r line; do
  case $line in
    "pid "*) pid=${line#pid } ;;
    nopid) pid= ;;
    disarm) exit 0 ;;
  esac
done
# End of input without "disarm": the owning process is gone.
if [ -n "$pid" ]; then
  ours=yes
  if [ -d /proc/self ]; then
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || cwd=
    [ "$cwd" = "$cwd_of_pid" ] || ours=no
  fi
  if [ "$ours" = yes ]; then
    kill -s "$stop_signal" "$pid" 2>/dev/null
    n=0
    while kill -s 0 "$pid" 2>/dev/null && [ "$n" -lt 100 ]; do
      sleep 0.05
      n=$((n + 1))
    done
    kill -s KILL "$pid" 2>/dev/null
  fi
fi
rm -rf -- "$root"
"#;

/// The write end of a watchdog's pipe, and the watchdog.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts a watchdog for the directory `root` and a process whose
    /// working directory is `cwd` (both canonical paths), which it stops
    /// with `stop_signal` (a name such as `QUIT`).
    pub(crate) fn spawn(root: &Path, cwd: &Path, stop_signal: &str) -> io::Result<Self> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("pool-postgres-test-watchdog")
            // In the environment rather than in argv, so `pgrep -f DATA_DIR`
            // finds only the server's processes.
            .env("POOL_POSTGRES_WATCHDOG_ROOT", root)
            .env("POOL_POSTGRES_WATCHDOG_CWD", cwd)
            .env("POOL_POSTGRES_WATCHDOG_SIGNAL", stop_signal)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take();
        Ok(Self { child, pipe })
    }

    /// Tells the watchdog the pid of the process to stop.
    pub(crate) fn watch(&mut self, pid: u32) {
        self.send(&format!("pid {pid}\n"));
    }

    /// Tells the watchdog the process has exited.
    pub(crate) fn unwatch(&mut self) {
        self.send("nopid\n");
    }

    /// Lets the watchdog exit without doing anything, and reaps it.
    pub(crate) fn disarm(mut self) {
        self.send("disarm\n");
        self.pipe = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                _ => return,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn send(&mut self, message: &str) {
        // If the watchdog is gone, the safety net is gone, but the server
        // itself is fine: nothing to report.
        if let Some(pipe) = &mut self.pipe {
            let _ = pipe.write_all(message.as_bytes());
        }
    }
}

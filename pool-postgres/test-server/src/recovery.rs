//! A replica's recovery, seen from a test: [`TestServer::promote`] ends
//! it, [`TestServer::wait_for_replay`] waits until it has caught up.
//!
//! Both ask the servers with `psql` (see the `psql` module). Catching up
//! means the replica's `pg_last_wal_replay_lsn()` has reached the
//! primary's `pg_current_wal_lsn()` as it was when the wait began: every
//! transaction committed on the primary before the call is then visible on
//! the replica. The wait polls, with pauses growing from 2 ms to 50 ms,
//! until that holds or its deadline passes; it is an event wait with a
//! deadline, so tests need no sleeps.

use std::fmt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Phase, TestServerError};
use crate::{TestServer, psql};

/// How many lines of the replica's log a failed wait or promotion quotes.
const LOG_LINES: usize = 30;

impl TestServer {
    /// Promotes a replica made by [`start_replica`](Self::start_replica)
    /// to a primary (`pg_ctl promote -w`) and returns once it is out of
    /// recovery: it then takes writes, and no longer follows its old
    /// primary. Promoting a replica that is already out of recovery does
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`Phase::Promote`] if the server is not running, is not a replica
    /// (a server from [`TestServerBuilder::start`](crate::TestServerBuilder::start)),
    /// or `pg_ctl promote` fails or it is still in recovery after the
    /// [`start_timeout`](crate::TestServerBuilder::start_timeout) (with the
    /// end of its log); `psql` missing or failing is an error in that phase
    /// too.
    pub fn promote(&self) -> Result<(), TestServerError> {
        if !self.is_running() {
            return Err(TestServerError::new(Phase::Promote, "the server is not running"));
        }
        if !self.in_recovery(Phase::Promote)? {
            if self.upstream_port != 0 {
                return Ok(());
            }
            return Err(TestServerError::new(
                Phase::Promote,
                "the server is a primary, not a replica: make one with start_replica",
            ));
        }
        let mut command = Command::new(self.bins.program("pg_ctl"));
        command
            .arg("promote")
            .arg("-w")
            .arg("-t")
            .arg(self.start_timeout.as_secs().max(1).to_string())
            .arg("-D")
            .arg(&self.data_dir)
            .current_dir("/")
            .stdin(Stdio::null());
        self.identity.apply(&mut command);
        let output = command.output().map_err(|e| {
            TestServerError::io(Phase::Promote, "could not run pg_ctl", e).with_command(&command)
        })?;
        if !output.status.success() {
            let text = format!(
                "{}{}\n-- server log:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                self.log_tail(LOG_LINES)
            );
            return Err(TestServerError::new(
                Phase::Promote,
                format!("pg_ctl promote failed ({})", output.status),
            )
            .with_command(&command)
            .with_output("pg_ctl output", &text));
        }
        // pg_ctl waited for pg_control to say "in production"; sessions see
        // the end of recovery at the same moment, but check what they see.
        let deadline = Instant::now() + self.start_timeout;
        let mut pause = Duration::from_millis(2);
        while self.in_recovery(Phase::Promote)? {
            if Instant::now() >= deadline {
                return Err(TestServerError::new(
                    Phase::Promote,
                    format!("the server was still in recovery {:?} after pg_ctl promote", self.start_timeout),
                )
                .with_output(format!("server log {}", self.log_path.display()), &self.log_tail(LOG_LINES)));
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Waits until this replica has replayed everything `primary` had
    /// written when the call began, so a test can read its writes here:
    /// compares the primary's `pg_current_wal_lsn()` with this server's
    /// `pg_last_wal_replay_lsn()`, polling until `timeout` passes.
    ///
    /// # Errors
    ///
    /// [`Phase::WaitReplay`] if either server cannot be asked (not running,
    /// `psql` missing), `primary` is itself in recovery, this server is not
    /// a replica, or it has not caught up within `timeout` (with both
    /// positions and the end of its log).
    pub fn wait_for_replay(&self, primary: &TestServer, timeout: Duration) -> Result<(), TestServerError> {
        let target = Lsn::parse(&psql::query(primary, "SELECT pg_current_wal_lsn()", Phase::WaitReplay)?)?;
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            let replayed = psql::query(self, "SELECT pg_last_wal_replay_lsn()", Phase::WaitReplay)?;
            if replayed.is_empty() {
                return Err(TestServerError::new(
                    Phase::WaitReplay,
                    "this server is not a replica (pg_last_wal_replay_lsn() is NULL)",
                ));
            }
            let replayed = Lsn::parse(&replayed)?;
            if replayed >= target {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TestServerError::new(
                    Phase::WaitReplay,
                    format!(
                        "the replica had replayed up to {replayed} after {timeout:?}, \
                         short of the primary's {target}"
                    ),
                )
                .with_output(format!("server log {}", self.log_path.display()), &self.log_tail(LOG_LINES)));
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// A WAL position, `pg_lsn`'s `HI/LO` in hexadecimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Lsn(u64);

impl Lsn {
    fn parse(text: &str) -> Result<Self, TestServerError> {
        let half = |part: &str| u32::from_str_radix(part, 16).ok();
        text.trim()
            .split_once('/')
            .and_then(|(hi, lo)| Some(Self(u64::from(half(hi)?) << 32 | u64::from(half(lo)?))))
            .ok_or_else(|| TestServerError::new(Phase::WaitReplay, format!("not a WAL position: {text:?}")))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_wal_positions() {
        let lsn = Lsn::parse("16/B374D848").unwrap();
        assert_eq!(lsn, Lsn(0x16_B374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert!(Lsn::parse("0/3000148").unwrap() < Lsn::parse("1/0").unwrap());
        assert!(Lsn::parse("0/FFFFFFFF").unwrap() < Lsn::parse("1/0").unwrap());
        for bad in ["", "16", "x/1", "1/2/3", "100000000/0"] {
            let err = Lsn::parse(bad).unwrap_err();
            assert_eq!(err.phase(), Phase::WaitReplay, "{bad:?}");
        }
    }
}

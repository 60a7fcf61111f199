//! [`TestServer::start_replica`]: a streaming hot standby of a running
//! server, made with `pg_basebackup` and started like any other server.
//!
//! Design:
//! * **Nothing to set up on the primary.** PostgreSQL 10 and newer default
//!   to `wal_level=replica`, `max_wal_senders=10` and
//!   `max_replication_slots=10`, and the template's `pg_hba.conf` has
//!   `replication` lines with the same method as the others (`trust`, or
//!   SCRAM with a password). A primary whose own settings turn that off is
//!   refused before anything is copied, saying which setting is in the way.
//! * **Copy.** `pg_basebackup -R -X stream -c fast` from the primary's bin
//!   dir, over TCP to 127.0.0.1 as the primary's user, with its password (if
//!   any) in `PGPASSWORD`, never on a command line. TCP because the socket
//!   directory is optional (a long temp path has none). `-R` writes
//!   `standby.signal` and a `primary_conninfo` with the same connection
//!   parameters, password included, into the copy's
//!   `postgresql.auto.conf`, so the replica's walreceiver logs in as the
//!   base backup did.
//! * **No orphan.** The replica's directory, log and watchdog exist before
//!   `pg_basebackup` runs, so an error drops it and cleans up. The copy runs
//!   with the new data directory as its working directory, where the
//!   watchdog checks before it signals, and the watchdog knows its pid
//!   until it has been reaped: a test process that dies mid-copy leaves
//!   nothing behind either.
//! * **Start.** With the primary's settings (a hot standby needs
//!   `max_connections` and the like at least as high as its primary's, and
//!   a test wants the same behaviour on both) and `hot_standby=on` last, on
//!   a port of its own, with the same retry as a primary. Ready means
//!   `postmaster.pid` says `ready` (a hot standby says so once it accepts
//!   connections) and `pg_is_in_recovery()` is true.
//! * **Independence.** A replica is a [`TestServer`] of its own: its own
//!   directory, process, watchdog and port; stopping, killing or dropping
//!   either side leaves the other running (a replica whose primary is down
//!   serves reads, and its walreceiver retries until the primary is back).
//!   The replica keeps the primary's port reserved in this process while it
//!   lives (see `upstream_port`).

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::process::{Command, Stdio};

use crate::address::HOST;
use crate::error::{Phase, TestServerError};
use crate::{TestServer, binaries, ports, psql};

impl TestServer {
    /// Starts a streaming replica (a hot standby) of this server and
    /// returns once it accepts connections and is in recovery.
    ///
    /// The replica is a copy made with `pg_basebackup` while this server
    /// runs; it gets a port and directory of its own, this server's
    /// settings, user and password, and `hot_standby=on`. It is a
    /// [`TestServer`] like any other: [`stop`](Self::stop),
    /// [`kill`](Self::kill), [`start_again`](Self::start_again), `Drop` and
    /// the watchdog work on it, and none of them touches the primary (nor
    /// the primary's on it: a replica whose primary is down keeps serving
    /// reads). Writes on it fail with SQLSTATE 25006
    /// (`read_only_sql_transaction`) until it is [`promote`](Self::promote)d;
    /// use [`wait_for_replay`](Self::wait_for_replay) to read on it what was
    /// just written on the primary.
    ///
    /// Nothing needs to be configured on this server for it, unless its
    /// settings turn replication off (`wal_level=minimal`,
    /// `max_wal_senders` below 2): that is refused.
    ///
    /// # Errors
    ///
    /// [`Phase::Configure`] if this server's settings rule out replication;
    /// [`Phase::BaseBackup`] if this server is not running, or
    /// `pg_basebackup` is missing or fails (with its output);
    /// [`Phase::Start`] or [`Phase::WaitReady`] (with the end of the
    /// replica's log) if the replica does not start, does not become ready
    /// in time, or is not in recovery; and the directory errors of
    /// [`TestServerBuilder::start`](crate::TestServerBuilder::start).
    pub fn start_replica(&self) -> Result<TestServer, TestServerError> {
        if let Some(problem) = replication_blocker(&self.settings) {
            return Err(TestServerError::new(Phase::Configure, problem));
        }
        if !self.is_running() {
            return Err(TestServerError::new(
                Phase::BaseBackup,
                "the primary is not running; start it again before making a replica of it",
            ));
        }
        let mut settings = self.settings.clone();
        settings.push(("hot_standby".to_owned(), "on".to_owned()));
        let mut replica = TestServer::in_new_dir(
            self.bins,
            self.identity,
            self.template.clone(),
            self.user.clone(),
            self.password.clone(),
            settings,
            self.start_timeout,
        )?;
        ports::hold(self.port);
        replica.upstream_port = self.port;
        replica.prepare()?;
        replica.copy_from(self)?;
        replica.launch_on_free_port()?;
        if !replica.in_recovery(Phase::WaitReady)? {
            return Err(TestServerError::new(
                Phase::WaitReady,
                "the replica accepts connections but is not in recovery (pg_is_in_recovery() is false)",
            )
            .with_output(format!("server log {}", replica.log_path.display()), &replica.log_tail(30)));
        }
        Ok(replica)
    }

    /// `SELECT pg_is_in_recovery()`, failing in `phase`.
    pub(crate) fn in_recovery(&self, phase: Phase) -> Result<bool, TestServerError> {
        Ok(psql::query(self, "SELECT pg_is_in_recovery()", phase)? == "t")
    }

    /// Fills this (new) server's data directory with a base backup of
    /// `primary`.
    fn copy_from(&self, primary: &TestServer) -> Result<(), TestServerError> {
        let program = self.bins.program("pg_basebackup");
        if !binaries::is_executable(&program) {
            return Err(TestServerError::new(
                Phase::BaseBackup,
                format!(
                    "{} is missing: install the PostgreSQL client package \
                     (`apt-get install -y postgresql-client` on Debian/Ubuntu)",
                    program.display()
                ),
            ));
        }
        // Empty and ours (or the server user's): pg_basebackup fills it and
        // runs in it.
        DirBuilder::new().mode(0o700).create(&self.data_dir).map_err(|e| {
            TestServerError::io(
                Phase::PrepareDirectory,
                format!("could not create {}", self.data_dir.display()),
                e,
            )
        })?;
        if let Some((uid, gid)) = self.identity.owner() {
            std::os::unix::fs::chown(&self.data_dir, Some(uid), Some(gid)).map_err(|e| {
                TestServerError::io(
                    Phase::PrepareDirectory,
                    format!("could not chown {} to {uid}:{gid}", self.data_dir.display()),
                    e,
                )
            })?;
        }
        let mut command = Command::new(program);
        command
            .arg("--pgdata")
            .arg(&self.data_dir)
            .args(["--write-recovery-conf", "--wal-method=stream", "--checkpoint=fast", "--no-sync"])
            .args(["--host", HOST, "--port", &primary.port.to_string(), "--username", &primary.user])
            .arg("--no-password")
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS")
            .current_dir(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.bins.major >= 13 {
            // The manifest is for pg_verifybackup; nobody verifies this copy.
            command.arg("--no-manifest");
        }
        match &primary.password {
            Some(password) => command.env("PGPASSWORD", password),
            None => command.env_remove("PGPASSWORD"),
        };
        self.identity.apply(&mut command);
        let redact = |error: TestServerError| match &primary.password {
            Some(password) => error.redact(password),
            None => error,
        };

        let mut state = self.lock();
        let child = command.spawn().map_err(|e| {
            TestServerError::io(Phase::BaseBackup, "could not run pg_basebackup", e).with_command(&command)
        })?;
        if let Some(watchdog) = &mut state.process.watchdog {
            watchdog.watch(child.id());
        }
        let waited = child.wait_with_output();
        if let Some(watchdog) = &mut state.process.watchdog {
            watchdog.unwatch();
        }
        let output = waited.map_err(|e| {
            TestServerError::io(Phase::BaseBackup, "could not wait for pg_basebackup", e)
                .with_command(&command)
        })?;
        if output.status.success() {
            return Ok(());
        }
        let text =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        Err(redact(
            TestServerError::new(Phase::BaseBackup, format!("pg_basebackup failed ({})", output.status))
                .with_command(&command)
                .with_output("pg_basebackup output", &text),
        ))
    }
}

/// Why a server with these settings cannot feed a replica, if it cannot:
/// `wal_level=minimal`, or fewer than the two WAL senders that
/// `pg_basebackup -X stream` uses at once. The last value of a setting
/// counts, as on the `postgres` command line.
fn replication_blocker(settings: &[(String, String)]) -> Option<String> {
    let last =
        |name: &str| settings.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim());
    if last("wal_level").is_some_and(|level| level.eq_ignore_ascii_case("minimal")) {
        return Some(
            "the primary runs with wal_level=minimal, which cannot feed a replica; \
             leave wal_level at its default (replica)"
                .to_owned(),
        );
    }
    if let Some(senders) = last("max_wal_senders").and_then(|v| v.parse::<u32>().ok())
        && senders < 2
    {
        return Some(format!(
            "the primary runs with max_wal_senders={senders}, but pg_basebackup needs 2 and the \
             replica 1; leave max_wal_senders at its default (10)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect()
    }

    #[test]
    fn refuses_settings_that_rule_out_replication() {
        assert_eq!(replication_blocker(&settings(&[("work_mem", "2MB")])), None);
        let minimal = replication_blocker(&settings(&[("wal_level", "minimal")])).unwrap();
        assert!(minimal.contains("wal_level=minimal"), "{minimal}");
        let senders = replication_blocker(&settings(&[("max_wal_senders", "1")])).unwrap();
        assert!(senders.contains("max_wal_senders=1"), "{senders}");
        // The last value counts.
        assert_eq!(
            replication_blocker(&settings(&[("wal_level", "minimal"), ("wal_level", "logical")])),
            None
        );
        assert_eq!(
            replication_blocker(&settings(&[("max_wal_senders", "0"), ("max_wal_senders", "4")])),
            None
        );
    }
}

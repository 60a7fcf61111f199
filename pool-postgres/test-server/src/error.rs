//! [`TestServerError`] and the [`Phase`] it happened in.

use std::error::Error;
use std::fmt;
use std::io;
use std::process::Command;

/// How many lines of a command's output or of the server log an error keeps.
pub(crate) const TAIL_LINES: usize = 30;

/// The step of a test server's (or test PgBouncer's) life in which a
/// [`TestServerError`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Checking the builder's settings and the account to run the server as.
    Configure,
    /// Looking for the PostgreSQL server binaries (`initdb`, `postgres`).
    FindBinaries,
    /// Creating the temporary directories (and, as root, handing them over).
    PrepareDirectory,
    /// Creating the cached template cluster: `initdb`, `pg_hba.conf` and
    /// the password.
    Initdb,
    /// Copying the template cluster into the server's own data directory.
    CopyTemplate,
    /// Spawning the `postgres` process.
    Start,
    /// Waiting until the freshly spawned server accepts connections (and,
    /// for a replica, checking that it is in recovery).
    WaitReady,
    /// Shutting the server down.
    Stop,
    /// Copying a running server into a new replica's data directory with
    /// `pg_basebackup`.
    BaseBackup,
    /// Promoting a replica (`pg_ctl promote`) and waiting until it is out
    /// of recovery.
    Promote,
    /// Waiting until a replica has replayed what its primary had written.
    WaitReplay,
    /// Looking for the `pgbouncer` binary and asking its version.
    FindPgBouncer,
    /// Writing a PgBouncer's configuration and spawning `pgbouncer`.
    StartPgBouncer,
    /// Waiting until the freshly spawned PgBouncer accepts connections.
    WaitPgBouncerReady,
    /// Shutting a PgBouncer down.
    StopPgBouncer,
    /// Starting a [`FaultProxy`](crate::FaultProxy): its port, runtime or thread.
    #[cfg(feature = "fault-proxy")]
    StartFaultProxy,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Self::Configure => "checking the configuration",
            Self::FindBinaries => "finding the PostgreSQL binaries",
            Self::PrepareDirectory => "preparing the temporary directory",
            Self::Initdb => "creating the template cluster (initdb)",
            Self::CopyTemplate => "copying the template cluster",
            Self::Start => "starting the server",
            Self::WaitReady => "waiting for the server to accept connections",
            Self::Stop => "stopping the server",
            Self::BaseBackup => "making a replica (pg_basebackup)",
            Self::Promote => "promoting the replica",
            Self::WaitReplay => "waiting for the replica to replay the primary's WAL",
            Self::FindPgBouncer => "finding pgbouncer",
            Self::StartPgBouncer => "starting pgbouncer",
            Self::WaitPgBouncerReady => "waiting for pgbouncer to accept connections",
            Self::StopPgBouncer => "stopping pgbouncer",
            #[cfg(feature = "fault-proxy")]
            Self::StartFaultProxy => "starting the fault proxy",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why a [`TestServer`](crate::TestServer) or a
/// [`TestPgBouncer`](crate::TestPgBouncer) could not be started, stopped or
/// restarted.
///
/// Its `Display` (and, so that `unwrap()` in a test prints something
/// readable, its `Debug`) names the [`Phase`], the command that failed and
/// the last lines of that command's output or of the server log.
pub struct TestServerError {
    phase: Phase,
    message: String,
    command: Option<String>,
    output_label: String,
    output: Option<String>,
    source: Option<io::Error>,
}

impl TestServerError {
    pub(crate) fn new(phase: Phase, message: impl Into<String>) -> Self {
        Self {
            phase,
            message: message.into(),
            command: None,
            output_label: String::new(),
            output: None,
            source: None,
        }
    }

    pub(crate) fn io(phase: Phase, message: impl Into<String>, source: io::Error) -> Self {
        Self::new(phase, message).with_source(source)
    }

    pub(crate) fn with_source(mut self, source: io::Error) -> Self {
        self.source = Some(source);
        self
    }

    pub(crate) fn with_command(mut self, command: &Command) -> Self {
        self.command = Some(describe_command(command));
        self
    }

    /// Attaches the last [`TAIL_LINES`] lines of `text` (if any) as `label`.
    pub(crate) fn with_output(mut self, label: impl Into<String>, text: &str) -> Self {
        let tail = tail_lines(text, TAIL_LINES);
        if !tail.trim().is_empty() {
            self.output_label = label.into();
            self.output = Some(tail);
        }
        self
    }

    /// Replaces `secret` (and its SQL-quoted form) wherever the message or
    /// output might echo it.
    pub(crate) fn redact(mut self, secret: &str) -> Self {
        let quoted = secret.replace('\'', "''");
        let hide = |text: &mut String| {
            for form in [secret, quoted.as_str()] {
                if !form.is_empty() && text.contains(form) {
                    *text = text.replace(form, "<redacted>");
                }
            }
        };
        hide(&mut self.message);
        if let Some(output) = &mut self.output {
            hide(output);
        }
        self
    }

    /// The step that failed.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The command that failed, as it would be typed in a shell (roughly).
    pub fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// The last lines of the failed command's output or of the server log.
    pub fn output_tail(&self) -> Option<&str> {
        self.output.as_deref()
    }

    /// A copy for caching: the `io::Error` source is reduced to its text.
    pub(crate) fn duplicate(&self) -> Self {
        Self {
            phase: self.phase,
            message: self.message.clone(),
            command: self.command.clone(),
            output_label: self.output_label.clone(),
            output: self.output.clone(),
            source: self.source.as_ref().map(|e| io::Error::new(e.kind(), e.to_string())),
        }
    }
}

impl fmt::Display for TestServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "test server: {} failed: {}", self.phase, self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        if let Some(command) = &self.command {
            write!(f, "\n  command: {command}")?;
        }
        if let Some(output) = &self.output {
            write!(f, "\n  {}:", self.output_label)?;
            for line in output.lines() {
                write!(f, "\n    {line}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TestServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Error for TestServerError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn Error + 'static))
    }
}

/// `program arg arg ...`, quoting arguments that need it.
pub(crate) fn describe_command(command: &Command) -> String {
    let mut out = shell_word(&command.get_program().to_string_lossy());
    for arg in command.get_args() {
        out.push(' ');
        out.push_str(&shell_word(&arg.to_string_lossy()));
    }
    out
}

fn shell_word(word: &str) -> String {
    let plain =
        !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain { word.to_owned() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

/// The last `n` lines of `text`.
pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_phase_command_and_tail() {
        let mut cmd = Command::new("/usr/bin/initdb");
        cmd.args(["-D", "/tmp/some dir"]);
        let text = (1..=40).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n");
        let err = TestServerError::new(Phase::Initdb, "initdb exited with status 1")
            .with_command(&cmd)
            .with_output("output", &text);
        let shown = err.to_string();
        assert!(shown.starts_with(
            "test server: creating the template cluster (initdb) failed: initdb exited with status 1"
        ));
        assert!(shown.contains("command: /usr/bin/initdb -D '/tmp/some dir'"));
        assert!(shown.contains("line 40"));
        assert!(!shown.contains("line 10\n"));
        assert_eq!(format!("{err:?}"), shown);
    }

    #[test]
    fn redacts_secrets() {
        let err = TestServerError::new(Phase::Initdb, "failed")
            .with_output("output", "STATEMENT: ALTER ROLE x PASSWORD 'it''s secret'")
            .redact("it's secret");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(err.to_string().contains("PASSWORD '<redacted>'"), "{err}");
    }
}

//! One SQL query through `psql`, for the few questions the crate must ask
//! a running server itself: whether it is in recovery, how far it has
//! written or replayed its WAL.
//!
//! The crate has no client library (users bring their own), and `psql`
//! comes with the server binaries in every packaging we know (Debian's
//! server package depends on its client package). It connects like
//! [`TestServer::client_command`], over TCP with the server's user and
//! password, so it needs nothing a test's own client would not.

use std::process::Stdio;

use crate::TestServer;
use crate::binaries;
use crate::error::{Phase, TestServerError};

/// Runs `sql` (one statement that returns one value) on `server` and
/// returns its output, trimmed; failures are errors in `phase`, with the
/// command and what `psql` printed.
pub(crate) fn query(server: &TestServer, sql: &str, phase: Phase) -> Result<String, TestServerError> {
    let program = server.bins.program("psql");
    if !binaries::is_executable(&program) {
        return Err(TestServerError::new(
            phase,
            format!(
                "{} is missing: install the PostgreSQL client package \
                 (`apt-get install -y postgresql-client` on Debian/Ubuntu)",
                program.display()
            ),
        ));
    }
    let mut command = server.client_command("psql");
    command
        .args(["-X", "-w", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .current_dir("/")
        .stdin(Stdio::null());
    let output = command
        .output()
        .map_err(|e| TestServerError::io(phase, "could not run psql", e).with_command(&command))?;
    if !output.status.success() {
        let text =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        return Err(TestServerError::new(phase, format!("psql failed ({})", output.status))
            .with_command(&command)
            .with_output("psql output", &text));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

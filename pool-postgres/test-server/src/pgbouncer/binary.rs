//! Finding the `pgbouncer` program and its version.
//!
//! Looked up on `PATH`, then in `/usr/sbin` and `/usr/local/sbin`: Debian's
//! package installs it in `/usr/sbin`, which a non-root `PATH` often lacks.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::binaries::{find_in_path, is_executable};
use crate::error::{Phase, TestServerError};

/// Where to look after `PATH`.
const SBIN_DIRS: [&str; 2] = ["/usr/sbin", "/usr/local/sbin"];

/// What to tell someone who has no PgBouncer installed.
const INSTALL_HINT: &str = "install PgBouncer: `apt-get install -y pgbouncer` on Debian/Ubuntu \
(the tests start their own pgbouncer processes, never the system service the package sets up), \
`dnf install -y pgbouncer` on Fedora/RHEL, `brew install pgbouncer` on macOS";

/// A usable `pgbouncer` and its version.
#[derive(Debug)]
pub(crate) struct PgBouncerBinary {
    pub(crate) path: PathBuf,
    /// The first line of `pgbouncer --version`, e.g. `PgBouncer 1.18.0`.
    pub(crate) version: String,
}

impl PgBouncerBinary {
    /// The `pgbouncer` of this process, looked up once.
    pub(crate) fn get() -> Result<&'static Self, TestServerError> {
        static FOUND: OnceLock<Result<PgBouncerBinary, TestServerError>> = OnceLock::new();
        FOUND
            .get_or_init(|| {
                let sbin = SBIN_DIRS.map(PathBuf::from);
                find(std::env::var_os("PATH").as_ref(), &sbin)
            })
            .as_ref()
            .map_err(TestServerError::duplicate)
    }
}

/// Looks on `path` (a `PATH` value), then in `sbin_dirs`, and asks the
/// program found for its version.
pub(crate) fn find(
    path: Option<&OsString>,
    sbin_dirs: &[PathBuf],
) -> Result<PgBouncerBinary, TestServerError> {
    let found = find_in_path(path, "pgbouncer").or_else(|| {
        sbin_dirs.iter().map(|dir| dir.join("pgbouncer")).find(|candidate| is_executable(candidate))
    });
    let Some(program) = found else {
        let places: Vec<String> = sbin_dirs.iter().map(|dir| dir.display().to_string()).collect();
        return Err(TestServerError::new(
            Phase::FindPgBouncer,
            format!("no pgbouncer found on PATH or in {}; {INSTALL_HINT}", places.join(", ")),
        ));
    };
    version_of(&program).map(|version| PgBouncerBinary { path: program, version })
}

fn version_of(program: &Path) -> Result<String, TestServerError> {
    let mut command = Command::new(program);
    command.arg("--version");
    let output = command.output().map_err(|e| {
        TestServerError::io(Phase::FindPgBouncer, "could not run pgbouncer", e).with_command(&command)
    })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next().unwrap_or_default().trim();
    if output.status.success() && first.starts_with("PgBouncer ") {
        return Ok(first.to_owned());
    }
    Err(TestServerError::new(
        Phase::FindPgBouncer,
        format!("could not tell the version of {}", program.display()),
    )
    .with_command(&command)
    .with_output("output", &format!("{text}\n{}", String::from_utf8_lossy(&output.stderr))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_found_says_how_to_install() {
        let err = find(Some(&OsString::new()), &[PathBuf::from("/nonexistent/sbin")]).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.phase(), Phase::FindPgBouncer);
        assert!(text.contains("apt-get install -y pgbouncer"), "{text}");
        assert!(text.contains("/nonexistent/sbin"), "{text}");
    }
}

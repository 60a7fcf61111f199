//! Finding the PostgreSQL server binaries (`initdb`, `postgres`).
//!
//! Order: `$PG_BINDIR`, `pg_config --bindir`, the highest
//! `/usr/lib/postgresql/<version>/bin` (Debian and Ubuntu), then `$PATH`.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Phase, TestServerError};

/// The oldest major version supported (SCRAM and `postmaster.pid` status).
const MIN_MAJOR: u32 = 10;

/// What to tell someone who has no PostgreSQL server installed.
const INSTALL_HINT: &str = "install the PostgreSQL server: `apt-get install -y postgresql` on \
Debian/Ubuntu (the binaries land in /usr/lib/postgresql/<version>/bin), \
`dnf install -y postgresql-server` on Fedora/RHEL, `brew install postgresql` on macOS; \
or point PG_BINDIR at the directory that holds `initdb` and `postgres`. \
(Test suites that support it can use an existing server given by DATABASE_URL instead.)";

/// A directory with a usable `initdb` and `postgres`, and their version.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) bin_dir: PathBuf,
    /// `postgres --version`, e.g. `postgres (PostgreSQL) 15.4 (Debian 15.4-1)`.
    pub(crate) version: String,
    /// The major version, e.g. 15.
    pub(crate) major: u32,
}

impl Binaries {
    /// The binaries of this process, looked up once.
    pub(crate) fn get() -> Result<&'static Self, TestServerError> {
        static FOUND: OnceLock<Result<Binaries, TestServerError>> = OnceLock::new();
        FOUND.get_or_init(|| find(&SearchEnv::from_process())).as_ref().map_err(TestServerError::duplicate)
    }

    pub(crate) fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// Where to look; the process environment except in unit tests.
pub(crate) struct SearchEnv {
    pub(crate) pg_bindir: Option<OsString>,
    pub(crate) path: Option<OsString>,
    pub(crate) debian_root: PathBuf,
}

impl SearchEnv {
    fn from_process() -> Self {
        Self {
            pg_bindir: std::env::var_os("PG_BINDIR"),
            path: std::env::var_os("PATH"),
            debian_root: PathBuf::from("/usr/lib/postgresql"),
        }
    }
}

pub(crate) fn find(env: &SearchEnv) -> Result<Binaries, TestServerError> {
    let dir = locate(env)?;
    let postgres = dir.join("postgres");
    let mut command = Command::new(&postgres);
    command.arg("--version");
    let output = command.output().map_err(|e| {
        TestServerError::io(Phase::FindBinaries, "could not run postgres", e).with_command(&command)
    })?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major = parse_major(&text);
    match major {
        Some(major) if output.status.success() && major >= MIN_MAJOR => {
            Ok(Binaries { bin_dir: dir, version: text, major })
        }
        Some(major) if output.status.success() => Err(TestServerError::new(
            Phase::FindBinaries,
            format!(
                "PostgreSQL {major} in {} is too old: {MIN_MAJOR} or newer is needed; {INSTALL_HINT}",
                dir.display()
            ),
        )),
        _ => Err(TestServerError::new(
            Phase::FindBinaries,
            format!("could not tell the version of {}", postgres.display()),
        )
        .with_command(&command)
        .with_output("output", &format!("{text}\n{}", String::from_utf8_lossy(&output.stderr)))),
    }
}

fn locate(env: &SearchEnv) -> Result<PathBuf, TestServerError> {
    let mut tried = Vec::new();

    if let Some(dir) = env.pg_bindir.as_ref().filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_server_binaries(&dir) {
            return Ok(dir);
        }
        // An explicit choice that does not work is an error, not a hint to
        // silently use something else.
        return Err(TestServerError::new(
            Phase::FindBinaries,
            format!(
                "PG_BINDIR is set to {} but that directory has no executable `initdb` and \
                 `postgres`; fix or unset PG_BINDIR, or {INSTALL_HINT}",
                dir.display()
            ),
        ));
    }
    tried.push("$PG_BINDIR (unset)".to_owned());

    match find_in_path(env.path.as_ref(), "pg_config") {
        Some(pg_config) => match Command::new(&pg_config).arg("--bindir").output() {
            Ok(out) if out.status.success() => {
                let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                if has_server_binaries(&dir) {
                    return Ok(dir);
                }
                tried.push(format!(
                    "`pg_config --bindir` = {} (no initdb/postgres: only the client \
                     package is installed?)",
                    dir.display()
                ));
            }
            _ => tried.push(format!("`{} --bindir` (failed)", pg_config.display())),
        },
        None => tried.push("`pg_config --bindir` (no pg_config on PATH)".to_owned()),
    }

    if let Some(dir) = newest_versioned_dir(&env.debian_root) {
        return Ok(dir);
    }
    tried.push(format!("{}/*/bin (none)", env.debian_root.display()));

    if let Some(initdb) = find_in_path(env.path.as_ref(), "initdb") {
        let dir = initdb.parent().map(Path::to_path_buf).unwrap_or_default();
        // Prefer the real directory when PATH holds symlinks to the binaries.
        if let Some(real) = fs::canonicalize(&initdb)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .filter(|d| has_server_binaries(d))
        {
            return Ok(real);
        }
        if has_server_binaries(&dir) {
            return Ok(dir);
        }
    }
    tried.push("initdb and postgres on PATH (not found)".to_owned());

    Err(TestServerError::new(
        Phase::FindBinaries,
        format!("no PostgreSQL server binaries found (looked at: {}); {INSTALL_HINT}", tried.join(", ")),
    ))
}

fn has_server_binaries(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub(crate) fn find_in_path(path: Option<&OsString>, program: &str) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// The `<root>/<version>/bin` with the highest version that has the binaries.
fn newest_versioned_dir(root: &Path) -> Option<PathBuf> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let key = name.split('.').map(str::parse).collect::<Result<Vec<u32>, _>>().ok()?;
            Some((key, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_server_binaries(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// `postgres (PostgreSQL) 15.4 (Debian ...)` → 15; `... 9.6.24` → 9;
/// `... 17devel` → 17.
pub(crate) fn parse_major(version: &str) -> Option<u32> {
    let rest = version.split_once("(PostgreSQL)").map_or(version, |(_, rest)| rest);
    let word = rest.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_versions() {
        assert_eq!(parse_major("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"), Some(15));
        assert_eq!(parse_major("postgres (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("postgres (PostgreSQL) 17devel"), Some(17));
        assert_eq!(parse_major("postgres (PostgreSQL) 16beta1"), Some(16));
        assert_eq!(parse_major("something else"), None);
    }

    #[test]
    fn nothing_found_says_how_to_install() {
        let env = SearchEnv {
            pg_bindir: None,
            path: Some(OsString::new()),
            debian_root: PathBuf::from("/nonexistent/postgresql"),
        };
        let err = find(&env).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.phase(), Phase::FindBinaries);
        assert!(text.contains("apt-get install -y postgresql"), "{text}");
        assert!(text.contains("DATABASE_URL"), "{text}");
        assert!(text.contains("PG_BINDIR"), "{text}");
    }

    #[test]
    fn wrong_pg_bindir_is_an_error_not_a_fallback() {
        let env = SearchEnv {
            pg_bindir: Some(OsString::from("/nonexistent/bin")),
            path: std::env::var_os("PATH"),
            debian_root: PathBuf::from("/usr/lib/postgresql"),
        };
        let text = find(&env).unwrap_err().to_string();
        assert!(text.contains("PG_BINDIR is set to /nonexistent/bin"), "{text}");
    }
}

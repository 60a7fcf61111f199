//! The cached template cluster: `initdb` runs once per machine and
//! configuration, every server starts from a copy.
//!
//! Templates live in `<base>/templates/pg<major>-<hash>`, where the hash
//! covers everything that shapes the cluster: the binaries and their
//! version, the `initdb` arguments, the owner, and the user and password.
//! A template is built in a private `.tmp-*` directory and then renamed into
//! place, which is atomic: concurrent test processes may both build one, one
//! rename wins, the loser throws its copy away and uses the winner's.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::account::Identity;
use crate::binaries::Binaries;
use crate::dirs::{ensure_private_dir, fnv1a, remove_tree, unique_dir};
use crate::error::{Phase, TestServerError};

/// Bump when the way templates are made changes, to stop using old ones.
const FORMAT: &str = "pool-postgres template v1";

/// A file written into finished templates; its absence marks a broken one.
const MARKER: &str = "pool_postgres_template";

/// The cluster's bootstrap superuser.
pub(crate) const SUPERUSER: &str = "postgres";

/// Leftovers of builds by processes that died are removed after this long.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The password setup of a template, if any.
#[derive(Clone, Copy)]
pub(crate) struct Auth<'a> {
    pub(crate) user: &'a str,
    pub(crate) password: &'a str,
}

/// Returns the data directory of a ready template, building it if needed.
pub(crate) fn ensure(
    bins: &Binaries,
    identity: &Identity,
    base: &Path,
    auth: Option<Auth<'_>>,
) -> Result<PathBuf, TestServerError> {
    // One build at a time in this process; other processes are handled by
    // the atomic rename.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(PoisonError::into_inner);

    let args = initdb_args(bins);
    let owner =
        identity.owner().map_or_else(|| format!("euid {}", identity.euid), |(u, g)| format!("{u}:{g}"));
    let key = fnv1a(&[
        FORMAT.as_bytes(),
        bins.bin_dir.as_os_str().as_encoded_bytes(),
        bins.version.as_bytes(),
        args.join(" ").as_bytes(),
        owner.as_bytes(),
        auth.map_or(b"-".as_slice(), |a| a.user.as_bytes()),
        auth.map_or(b"-".as_slice(), |a| a.password.as_bytes()),
    ]);

    let templates = base.join("templates");
    let mode = if identity.run_as.is_some() { 0o711 } else { 0o700 };
    ensure_private_dir(&templates, identity.euid, mode)?;
    let target = templates.join(format!("pg{}-{key:016x}", bins.major));
    if is_complete(&target) {
        return Ok(target);
    }
    if target.exists() {
        // Damaged (say, by a temp cleaner): move it aside and rebuild.
        if let Ok(trash) = unique_dir(&templates, ".trash-") {
            let _ = fs::rename(&target, trash.join("old"));
        }
    }
    remove_stale(&templates);

    let build = unique_dir(&templates, ".tmp-").map_err(|e| {
        TestServerError::io(
            Phase::PrepareDirectory,
            format!("could not create a directory in {}", templates.display()),
            e,
        )
    })?;
    let result = build_into(bins, identity, &build, &args, auth);
    if let Err(e) = result {
        let _ = remove_tree(&build);
        return Err(e);
    }
    match fs::rename(&build, &target) {
        Ok(()) => Ok(target),
        Err(_) if is_complete(&target) => {
            // Another process was faster; use its template.
            let _ = remove_tree(&build);
            Ok(target)
        }
        Err(e) => {
            let _ = remove_tree(&build);
            Err(TestServerError::io(
                Phase::Initdb,
                format!("could not move the new template to {}", target.display()),
                e,
            ))
        }
    }
}

fn initdb_args(bins: &Binaries) -> Vec<String> {
    let mut args: Vec<String> = [
        "--username",
        SUPERUSER,
        "--auth=trust",
        "--encoding=UTF8",
        "--no-locale",
        // Nothing is fsynced: a throwaway cluster does not outlive the machine.
        "--no-sync",
    ]
    .map(String::from)
    .into();
    if bins.major >= 11 {
        // 1 MiB WAL segments instead of 16: less to copy for every server.
        args.push("--wal-segsize=1".into());
    }
    if bins.major >= 14 {
        args.push("--no-instructions".into());
    }
    args
}

fn is_complete(dir: &Path) -> bool {
    [MARKER, "PG_VERSION", "global/pg_control"].iter().all(|f| dir.join(f).is_file())
}

/// Removes `.tmp-*` and `.trash-*` leftovers older than [`STALE_AFTER`].
fn remove_stale(templates: &Path) {
    let Ok(entries) = fs::read_dir(templates) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old && (name.starts_with(".tmp-") || name.starts_with(".trash-")) {
            let _ = remove_tree(&entry.path());
        }
    }
}

fn build_into(
    bins: &Binaries,
    identity: &Identity,
    dir: &Path,
    args: &[String],
    auth: Option<Auth<'_>>,
) -> Result<(), TestServerError> {
    if let Some((uid, gid)) = identity.owner() {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| {
            TestServerError::io(
                Phase::PrepareDirectory,
                format!("could not chown {} to {uid}:{gid}", dir.display()),
                e,
            )
        })?;
    }

    let mut initdb = Command::new(bins.program("initdb"));
    initdb.arg("--pgdata").arg(dir).args(args);
    identity.apply(&mut initdb);
    run(&mut initdb, None, Phase::Initdb)?;

    let hba_method = if auth.is_some() { "scram-sha-256" } else { "trust" };
    let hba = format!(
        "# Written by pool-postgres's test server for a throwaway cluster.\n\
         # TYPE  DATABASE     USER  ADDRESS       METHOD\n\
         local   all          all                 trust\n\
         host    all          all   127.0.0.1/32  {hba_method}\n\
         host    all          all   ::1/128       {hba_method}\n\
         local   replication  all                 trust\n\
         host    replication  all   127.0.0.1/32  {hba_method}\n\
         host    replication  all   ::1/128       {hba_method}\n"
    );
    // Overwriting keeps the file's owner and mode.
    fs::write(dir.join("pg_hba.conf"), hba)
        .map_err(|e| TestServerError::io(Phase::Initdb, "could not write pg_hba.conf", e))?;

    if let Some(auth) = auth {
        set_password(bins, identity, dir, auth)?;
    }

    let marker = format!("{FORMAT}\n{}\ninitdb {}\n", bins.version, args.join(" "));
    fs::write(dir.join(MARKER), marker)
        .map_err(|e| TestServerError::io(Phase::Initdb, "could not write the marker file", e))
}

/// Gives `auth.user` (created as a superuser if it is not `postgres`) its
/// SCRAM password, with a single-user backend: no server, no client needed.
fn set_password(
    bins: &Binaries,
    identity: &Identity,
    dir: &Path,
    auth: Auth<'_>,
) -> Result<(), TestServerError> {
    let role = format!("\"{}\"", auth.user.replace('"', "\"\""));
    let password = format!("'{}'", auth.password.replace('\'', "''"));
    // One statement per line: single-user mode runs each line on its own.
    let sql = if auth.user == SUPERUSER {
        format!("ALTER ROLE {role} PASSWORD {password}\n")
    } else {
        format!("CREATE ROLE {role} SUPERUSER LOGIN PASSWORD {password}\n")
    };
    let mut single = Command::new(bins.program("postgres"));
    single
        .arg("--single")
        .arg("-D")
        .arg(dir)
        .args(["-c", "exit_on_error=on"])
        .args(["-c", "password_encryption=scram-sha-256"])
        .arg("postgres");
    identity.apply(&mut single);
    // A failing statement is echoed in the output: keep the password out.
    run(&mut single, Some(sql.as_bytes()), Phase::Initdb).map_err(|e| e.redact(auth.password))?;
    Ok(())
}

/// Runs a command to completion, from `/` (which the server's user can
/// always enter), failing with its output unless it succeeds.
fn run(command: &mut Command, input: Option<&[u8]>, phase: Phase) -> Result<Output, TestServerError> {
    command
        .current_dir("/")
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let fail = |what: &str, e: io::Error, command: &Command| {
        TestServerError::io(phase, what.to_owned(), e).with_command(command)
    };
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Err(fail("could not run", e, command)),
    };
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A failure to write shows up as a failed command below.
        let _ = stdin.write_all(input);
    }
    let output = child.wait_with_output().map_err(|e| fail("could not wait for", e, command))?;
    if output.status.success() {
        return Ok(output);
    }
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Err(TestServerError::new(phase, format!("command failed ({})", output.status))
        .with_command(command)
        .with_output("output", &text))
}

//! Who runs the server: the current user, or `postgres` when we are root.
//!
//! PostgreSQL refuses to run as root, so a root process (typical in
//! containers and CI) runs `initdb` and `postgres` as the `postgres` system
//! user through [`CommandExt::uid`]/[`CommandExt::gid`] and hands the data
//! directory over with `chown`.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{Phase, TestServerError};

/// The system user the server runs as when we are root.
const SERVER_USER: &str = "postgres";

/// A system account to switch to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// This process's effective uid and, if it is root, whom to run as instead.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) euid: u32,
    pub(crate) run_as: Option<Account>,
}

impl Identity {
    /// Looked up once per process.
    pub(crate) fn get() -> Result<&'static Self, TestServerError> {
        static ID: OnceLock<Result<Identity, TestServerError>> = OnceLock::new();
        ID.get_or_init(lookup).as_ref().map_err(TestServerError::duplicate)
    }

    /// Makes `command` run as the server's user.
    pub(crate) fn apply(&self, command: &mut Command) {
        if let Some(account) = &self.run_as {
            command.uid(account.uid).gid(account.gid);
            // Some tools read these; root's values would point at /root.
            command.env("USER", &account.name).env("LOGNAME", &account.name);
        }
    }

    /// `(uid, gid)` to `chown` files to, when they must change hands.
    pub(crate) fn owner(&self) -> Option<(u32, u32)> {
        self.run_as.as_ref().map(|a| (a.uid, a.gid))
    }
}

fn lookup() -> Result<Identity, TestServerError> {
    let euid = effective_uid().ok_or_else(|| {
        TestServerError::new(
            Phase::Configure,
            "could not determine the effective user id (neither /proc/self/status nor `id -u` worked)",
        )
    })?;
    if euid != 0 {
        return Ok(Identity { euid, run_as: None });
    }
    let account = passwd_entry(SERVER_USER).or_else(|| id_lookup(SERVER_USER)).ok_or_else(|| {
        TestServerError::new(
            Phase::Configure,
            format!(
                "running as root, and PostgreSQL refuses to run as root, but there is no \
                     `{SERVER_USER}` user to run it as: install the server package \
                     (`apt-get install -y postgresql` creates the user) or create it with \
                     `useradd --system --user-group {SERVER_USER}`, or run the tests as a \
                     non-root user"
            ),
        )
    })?;
    if account.uid == 0 {
        return Err(TestServerError::new(
            Phase::Configure,
            format!("the `{SERVER_USER}` user has uid 0; PostgreSQL cannot run as root"),
        ));
    }
    Ok(Identity { euid, run_as: Some(account) })
}

/// The effective uid, from `/proc/self/status` (Linux) or `id -u`.
fn effective_uid() -> Option<u32> {
    if let Ok(status) = fs::read_to_string("/proc/self/status")
        && let Some(uid) = parse_status_euid(&status)
    {
        return Some(uid);
    }
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// `Uid:\t<real>\t<effective>\t<saved>\t<fs>` → effective.
fn parse_status_euid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn passwd_entry(name: &str) -> Option<Account> {
    parse_passwd(&fs::read_to_string("/etc/passwd").ok()?, name)
}

fn parse_passwd(passwd: &str, name: &str) -> Option<Account> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(Account { name: name.to_owned(), uid, gid })
    })
}

/// `id -u NAME` / `id -g NAME`, for accounts that come from NSS (LDAP, ...).
fn id_lookup(name: &str) -> Option<Account> {
    let number = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some(Account { name: name.to_owned(), uid: number("-u")?, gid: number("-g")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_passwd() {
        let status = "Name:\tcargo\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t5\t5\t5\t5\n";
        assert_eq!(parse_status_euid(status), Some(0));
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(
            parse_passwd(passwd, "postgres"),
            Some(Account { name: "postgres".into(), uid: 101, gid: 104 })
        );
        assert_eq!(parse_passwd(passwd, "nobody"), None);
    }
}

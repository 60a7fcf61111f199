//! A test PgBouncer's settings and the two files made from them:
//! `pgbouncer.ini` and the auth file.
//!
//! The settings are one ordered list of `(name, value)`: it starts as
//! [`defaults`], and [`set`] replaces a value by name or appends a new
//! name, so every setting appears once and the file is written in one
//! place. The names in [`MANAGED`] tie the PgBouncer to its port, directory
//! and log, so they are written by [`ini`] itself and cannot be set. The
//! password goes into the auth file only (mode 0600), never into the ini
//! file, whose text may end up in an error.

use std::path::Path;

/// Settings [`ini`] writes itself.
pub(crate) const MANAGED: [&str; 5] =
    ["listen_addr", "listen_port", "unix_socket_dir", "auth_file", "logfile"];

/// The settings before the builder changes any: transaction pooling with
/// 5 server connections per database and user, room for many clients,
/// logins as the server expects them, and `user` as the admin console's
/// user. Everything else is left at PgBouncer's default
/// (`ignore_startup_parameters` included, so a client that sends
/// `options` fails as it would in production).
pub(crate) fn defaults(user: &str, has_password: bool) -> Vec<(String, String)> {
    let auth_type = if has_password { "scram-sha-256" } else { "trust" };
    [
        ("pool_mode", "transaction"),
        ("default_pool_size", "5"),
        // Several test processes, each with dozens of tasks holding a
        // handful of connections, may share one PgBouncer.
        ("max_client_conn", "4096"),
        ("auth_type", auth_type),
        ("admin_users", user),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .into()
}

/// Sets `name` to `value` in `settings`, in place if it is there.
pub(crate) fn set(settings: &mut Vec<(String, String)>, name: String, value: String) {
    match settings.iter_mut().find(|(existing, _)| *existing == name) {
        Some(slot) => slot.1 = value,
        None => settings.push((name, value)),
    }
}

/// Why `name = value` cannot go into the ini file, if it cannot.
pub(crate) fn invalid(name: &str, value: &str) -> Option<String> {
    let name_ok =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        return Some(format!("invalid PgBouncer setting name {name:?}"));
    }
    if MANAGED.contains(&name) {
        return Some(format!(
            "PgBouncer setting {name} is written by the test PgBouncer itself (it listens on \
             127.0.0.1 on a free port, without a Unix socket, and logs to its log_path())"
        ));
    }
    if value.contains(['\n', '\r', '\0']) {
        return Some(format!("the value of PgBouncer setting {name} contains a line break or NUL"));
    }
    None
}

/// Where the PgBouncer listens and what it fronts.
pub(crate) struct Placement<'a> {
    pub(crate) listen_port: u16,
    pub(crate) server_port: u16,
    pub(crate) auth_file: &'a Path,
}

/// The text of `pgbouncer.ini`: every database name maps to the server,
/// logging in as the client's user.
pub(crate) fn ini(placement: &Placement<'_>, settings: &[(String, String)]) -> String {
    let mut text = format!(
        "; Written by pool-postgres-test-server for one test's PgBouncer.\n\
         [databases]\n\
         * = host=127.0.0.1 port={server_port}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {listen_port}\n\
         unix_socket_dir =\n\
         auth_file = {auth_file}\n",
        server_port = placement.server_port,
        listen_port = placement.listen_port,
        auth_file = placement.auth_file.display(),
    );
    for (name, value) in settings {
        text.push_str(name);
        text.push_str(" = ");
        text.push_str(value);
        text.push('\n');
    }
    text
}

/// The auth file: the one user, with the server's password (PgBouncer
/// checks clients against it and logs in to the server with it), or an
/// empty one for a server that trusts everyone.
pub(crate) fn auth_file(user: &str, password: Option<&str>) -> String {
    format!("{} {}\n", quoted(user), quoted(password.unwrap_or_default()))
}

/// Double quotes, with inner double quotes doubled (the auth file's
/// escape).
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setting_replaces_its_default_in_place() {
        let mut settings = defaults("postgres", false);
        set(&mut settings, "pool_mode".into(), "session".into());
        set(&mut settings, "server_reset_query".into(), "DISCARD ALL".into());
        assert_eq!(settings[0], ("pool_mode".to_owned(), "session".to_owned()));
        assert_eq!(settings.iter().filter(|(name, _)| name == "pool_mode").count(), 1);
        assert_eq!(settings.last().unwrap().0, "server_reset_query");
    }

    #[test]
    fn ini_maps_every_database_to_the_server() {
        let placement =
            Placement { listen_port: 6001, server_port: 5001, auth_file: Path::new("/d/users.txt") };
        let text = ini(&placement, &defaults("app", true));
        assert!(text.contains("[databases]\n* = host=127.0.0.1 port=5001\n"), "{text}");
        assert!(text.contains("listen_port = 6001\n"), "{text}");
        assert!(text.contains("auth_file = /d/users.txt\n"), "{text}");
        assert!(text.contains("auth_type = scram-sha-256\n"), "{text}");
        assert!(text.contains("admin_users = app\n"), "{text}");
        assert!(!text.contains("ignore_startup_parameters"), "{text}");
    }

    #[test]
    fn auth_file_quotes_and_escapes() {
        assert_eq!(auth_file("postgres", None), "\"postgres\" \"\"\n");
        assert_eq!(auth_file("app", Some("say \"hi\"")), "\"app\" \"say \"\"hi\"\"\"\n");
    }

    #[test]
    fn managed_and_malformed_settings_are_refused() {
        assert!(invalid("listen_port", "1").is_some());
        assert!(invalid("Bad Name", "1").is_some());
        assert!(invalid("server_reset_query", "a\nb").is_some());
        assert_eq!(invalid("server_reset_query", "DISCARD ALL"), None);
    }
}

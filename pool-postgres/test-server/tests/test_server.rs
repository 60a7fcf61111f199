//! Tests of the throwaway server helper.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use pool_postgres_test_server::{Phase, TestServer};
use support::{
    CHILD_MODE, DIR_MARKER, accepts_tcp, assert_a_killed_child_leaves_nothing,
    assert_an_exited_child_leaves_nothing, assert_gone, processes_of,
};

fn run_psql(command: &mut Command, sql: &str) -> Output {
    command
        .args(["-X", "-w", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .expect("run psql")
}

/// Runs `sql` with psql and returns its trimmed output.
fn psql(server: &TestServer, sql: &str) -> String {
    let out = run_psql(&mut server.client_command("psql"), sql);
    assert!(
        out.status.success(),
        "psql -c {sql:?} failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_tail(20)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn servers_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<TestServer>();
    shareable::<pool_postgres_test_server::TestServerError>();
}

#[test]
fn binaries_are_available_here() {
    assert!(TestServer::binaries_available());
}

#[test]
fn max_connections_and_settings_are_applied() {
    let server = TestServer::builder().max_connections(20).setting("work_mem", "1234kB").start().unwrap();
    assert_eq!(psql(&server, "SHOW max_connections"), "20");
    assert_eq!(psql(&server, "SHOW work_mem"), "1234kB");
    assert_eq!(psql(&server, "SHOW fsync"), "off");
    assert_eq!(psql(&server, "SELECT current_user"), "postgres");
    assert!(psql(&server, "SELECT version()").starts_with("PostgreSQL"));
}

#[test]
fn urls_and_accessors() {
    let server = TestServer::start().unwrap();
    let port = server.port();
    assert_eq!(server.host(), "127.0.0.1");
    assert_eq!(server.user(), "postgres");
    assert_eq!(server.password(), None);
    assert_eq!(server.url(), format!("postgres://postgres@127.0.0.1:{port}/postgres"));
    assert_eq!(server.url_for("app"), format!("postgres://postgres@127.0.0.1:{port}/app"));
    assert_eq!(
        server.connection_string(),
        format!("host=127.0.0.1 port={port} user=postgres dbname=postgres")
    );
    assert!(server.data_dir().join("PG_VERSION").is_file());
    assert!(server.is_running());
    assert!(server.pid().is_some());
    assert!(accepts_tcp(port));
    let socket_dir = server.socket_dir().expect("short temp dir has a socket");
    assert!(socket_dir.join(format!(".s.PGSQL.{port}")).exists());
    assert!(server.log_path().is_file());
    assert!(server.log_tail(50).contains("ready to accept connections"), "{}", server.log_tail(50));
    assert!(format!("{server:?}").contains(&port.to_string()));
}

#[test]
fn two_servers_at_once_get_different_ports() {
    let a = TestServer::start().unwrap();
    let b = TestServer::start().unwrap();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.data_dir(), b.data_dir());
    psql(&a, "CREATE TABLE only_in_a (x int)");
    assert_eq!(psql(&a, "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'"), "1");
    assert_eq!(psql(&b, "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'"), "0");
}

#[test]
fn stop_and_start_again_keep_data_and_port() {
    let server = TestServer::start().unwrap();
    let port = server.port();
    psql(&server, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)");

    server.stop().unwrap();
    assert!(!server.is_running());
    assert_eq!(server.pid(), None);
    assert!(!accepts_tcp(port));
    server.stop().unwrap(); // stopping twice is fine

    server.start_again().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(psql(&server, "SELECT x FROM kept"), "42");
    server.start_again().unwrap(); // a running server is left alone

    server.restart().unwrap();
    assert_eq!(psql(&server, "SELECT x FROM kept"), "42");
}

#[test]
fn kill_simulates_a_crash_and_recovers() {
    let server = TestServer::start().unwrap();
    psql(&server, "CREATE TABLE survivor (x int); INSERT INTO survivor VALUES (7)");
    server.kill().unwrap();
    assert!(!server.is_running());
    assert!(processes_of(server.data_dir()).is_empty());
    server.start_again().unwrap();
    assert_eq!(psql(&server, "SELECT x FROM survivor"), "7");
    let log = server.log_tail(100);
    assert!(log.contains("not properly shut down"), "{log}");
}

#[test]
fn drop_leaves_no_process_and_no_directory() {
    let server = TestServer::start().unwrap();
    let data_dir = server.data_dir().to_owned();
    let pid = server.pid().unwrap();
    let running = processes_of(&data_dir);
    assert!(running.contains(&pid), "{running:?} should contain {pid}");
    assert!(running.len() > 1, "postmaster and its children: {running:?}");
    drop(server);
    assert_gone(&data_dir, Duration::from_secs(5));
}

#[test]
fn a_panicking_test_leaves_no_process() {
    let data_dir = Mutex::new(None::<PathBuf>);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let server = TestServer::start().unwrap();
        *data_dir.lock().unwrap() = Some(server.data_dir().to_owned());
        assert!(server.is_running());
        panic!("deliberate panic while a server runs");
    }));
    assert!(result.is_err());
    let data_dir = data_dir.into_inner().unwrap().expect("the server started");
    assert_gone(&data_dir, Duration::from_secs(5));
}

#[test]
fn password_auth_refuses_a_wrong_password() {
    let password = "s3cret 'quoted' p@ss";
    let server = TestServer::builder().password("postgres", password).start().unwrap();
    assert_eq!(server.password(), Some(password));
    assert_eq!(psql(&server, "SELECT current_user"), "postgres");
    assert_eq!(
        server.url(),
        format!("postgres://postgres:s3cret%20%27quoted%27%20p%40ss@127.0.0.1:{}/postgres", server.port())
    );
    assert!(server.connection_string().ends_with(r"password='s3cret \'quoted\' p@ss'"));
    assert!(!format!("{server:?}").contains("s3cret"));

    let mut wrong = server.client_command("psql");
    wrong.env("PGPASSWORD", "wrong");
    let out = run_psql(&mut wrong, "SELECT 1");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("password authentication failed"), "{stderr}");

    let mut none = server.client_command("psql");
    none.env_remove("PGPASSWORD").env("PGPASSFILE", "/dev/null");
    assert!(!run_psql(&mut none, "SELECT 1").status.success());
}

#[test]
fn password_for_another_user_creates_a_superuser() {
    let server = TestServer::builder().password("app_user", "app-pw").start().unwrap();
    assert_eq!(server.user(), "app_user");
    assert!(server.url().starts_with("postgres://app_user:app-pw@127.0.0.1:"));
    assert_eq!(
        psql(&server, "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"),
        "app_user|t"
    );
    let mut wrong = server.client_command("psql");
    wrong.env("PGPASSWORD", "nope");
    assert!(!run_psql(&mut wrong, "SELECT 1").status.success());
}

#[test]
fn a_bad_setting_fails_with_the_server_log() {
    let err = TestServer::builder().setting("shared_buffers", "not-a-size").start().unwrap_err();
    assert_eq!(err.phase(), Phase::Start);
    let text = err.to_string();
    assert!(text.contains("starting the server failed"), "{text}");
    assert!(text.contains("shared_buffers=not-a-size"), "{text}");
    assert!(text.contains("invalid value for parameter"), "{text}");
}

#[test]
fn a_start_timeout_fails_while_waiting_for_ready() {
    let err = TestServer::builder().start_timeout(Duration::from_millis(1)).start().unwrap_err();
    assert_eq!(err.phase(), Phase::WaitReady, "{err}");
    assert!(err.to_string().contains("did not accept connections"), "{err}");
}

#[test]
fn start_timings() {
    // Not an assertion on speed, just a record: run with --nocapture.
    for i in 0..3 {
        let started = Instant::now();
        let server = TestServer::start().unwrap();
        let took = started.elapsed();
        let stopping = Instant::now();
        drop(server);
        eprintln!("start #{i}: {took:?}, drop: {:?}", stopping.elapsed());
    }
}

/// Run by [`watchdog_cleans_up_after_a_killed_process`] and
/// [`watchdog_cleans_up_a_static_server`] in a child process; does nothing
/// in a normal test run.
#[test]
fn child_process_helper() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    match mode.as_str() {
        "static" => {
            // Statics are never dropped: only the watchdog can clean up.
            static SERVER: OnceLock<TestServer> = OnceLock::new();
            let server = SERVER.get_or_init(|| TestServer::start().unwrap());
            println!("{DIR_MARKER}{}", server.data_dir().display());
        }
        "killed" => {
            let server = TestServer::start().unwrap();
            println!("{DIR_MARKER}{}", server.data_dir().display());
            // Wait to be killed (bounded, in case the parent is gone).
            thread::sleep(Duration::from_secs(120));
        }
        other => panic!("unknown {CHILD_MODE}={other}"),
    }
}

#[test]
fn watchdog_cleans_up_after_a_killed_process() {
    assert_a_killed_child_leaves_nothing("killed");
}

#[test]
fn watchdog_cleans_up_a_static_server() {
    assert_an_exited_child_leaves_nothing("static");
}

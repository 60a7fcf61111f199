//! Tests of the test PgBouncer: it proxies, pools per transaction, passes
//! its settings on, and never outlives its owner.

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use pool_postgres_test_server::{Phase, PoolMode, TestPgBouncer, TestServer};
use support::{
    CHILD_MODE, DIR_MARKER, accepts_tcp, assert_a_killed_child_leaves_nothing,
    assert_an_exited_child_leaves_nothing, assert_gone, processes_of,
};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// Connects with `config` (a URL or key=value string) and drives the
/// connection in a task of its own.
async fn connect(config: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(config, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The rows of a simple-protocol query, as column name → text pairs.
async fn rows(client: &Client, sql: &str) -> Vec<Vec<(String, Option<String>)>> {
    let messages = client.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, column)| (column.name().to_owned(), row.get(i).map(str::to_owned)))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The one value of a one-row, one-column simple query.
async fn value(client: &Client, sql: &str) -> String {
    let rows = rows(client, sql).await;
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows[0][0].1.clone().unwrap_or_default()
}

/// The server backend that runs a transaction of `client`.
async fn backend_of_a_transaction(client: &Client) -> String {
    let rows = rows(client, "BEGIN; SELECT pg_backend_pid(); COMMIT").await;
    rows[0][0].1.clone().expect("a pid")
}

/// The directory a PgBouncer keeps its files in.
fn directory_of(bouncer: &TestPgBouncer) -> PathBuf {
    bouncer.config_path().parent().expect("the config file is in a directory").to_owned()
}

#[test]
fn bouncers_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<TestPgBouncer>();
}

#[test]
fn pgbouncer_is_available_here() {
    assert!(TestPgBouncer::available());
}

#[tokio::test]
async fn proxies_a_query_and_shows_its_pool_on_the_admin_console() {
    let server = TestServer::start().unwrap();
    let bouncer = TestPgBouncer::start(&server).unwrap();
    let port = bouncer.port();
    assert_ne!(port, server.port());
    assert_eq!(bouncer.host(), "127.0.0.1");
    assert_eq!(bouncer.user(), "postgres");
    assert_eq!(bouncer.url(), format!("postgres://postgres@127.0.0.1:{port}/postgres"));
    assert_eq!(bouncer.admin_url(), format!("postgres://postgres@127.0.0.1:{port}/pgbouncer"));
    assert!(bouncer.version().starts_with("PgBouncer 1."), "{}", bouncer.version());
    assert!(bouncer.is_running());

    let client = connect(&bouncer.connection_string()).await.unwrap();
    assert_eq!(value(&client, "SELECT 1").await, "1");

    let admin = connect(&bouncer.admin_url()).await.unwrap();
    let pools = rows(&admin, "SHOW POOLS").await;
    let pool = pools
        .iter()
        .find(|row| {
            row.iter().any(|(name, value)| name == "database" && value.as_deref() == Some("postgres"))
        })
        .unwrap_or_else(|| panic!("no pool for database postgres: {pools:?}"));
    let column = |wanted: &str| pool.iter().find(|(name, _)| name == wanted).and_then(|(_, v)| v.clone());
    assert_eq!(column("user").as_deref(), Some("postgres"), "{pool:?}");
    assert_eq!(column("pool_mode").as_deref(), Some("transaction"), "{pool:?}");
    assert!(!rows(&admin, "SHOW STATS").await.is_empty());
    assert!(bouncer.log_tail(50).contains("process up"), "{}", bouncer.log_tail(50));
}

#[tokio::test]
async fn transaction_mode_runs_two_clients_on_one_server_connection() {
    let server = TestServer::start().unwrap();
    let bouncer = TestPgBouncer::builder(&server).default_pool_size(1).start().unwrap();
    // Both clients stay connected: only the pool multiplexes them.
    let first = connect(&bouncer.url()).await.unwrap();
    let second = connect(&bouncer.url()).await.unwrap();
    let first_backend = backend_of_a_transaction(&first).await;
    let second_backend = backend_of_a_transaction(&second).await;
    assert_eq!(first_backend, second_backend);
    assert_eq!(backend_of_a_transaction(&first).await, first_backend);
}

#[tokio::test]
async fn session_mode_gives_each_client_its_own_server_connection() {
    let server = TestServer::start().unwrap();
    let bouncer =
        TestPgBouncer::builder(&server).pool_mode(PoolMode::Session).default_pool_size(2).start().unwrap();
    let first = connect(&bouncer.url()).await.unwrap();
    let second = connect(&bouncer.url()).await.unwrap();
    assert_ne!(backend_of_a_transaction(&first).await, backend_of_a_transaction(&second).await);
}

#[tokio::test]
async fn the_options_startup_parameter_is_refused_unless_ignored() {
    let server = TestServer::start().unwrap();
    let with_options =
        |bouncer: &TestPgBouncer| format!("{} options='-c work_mem=2MB'", bouncer.connection_string());

    let strict = TestPgBouncer::start(&server).unwrap();
    let refused = connect(&with_options(&strict)).await.expect_err("options are refused");
    let message = refused.as_db_error().map(tokio_postgres::error::DbError::message);
    assert_eq!(message, Some("unsupported startup parameter: options"), "{refused:?}");

    let lenient = TestPgBouncer::builder(&server).ignore_startup_parameters("options").start().unwrap();
    let client = connect(&with_options(&lenient)).await.unwrap();
    // Ignored means dropped, not passed on.
    assert_eq!(value(&client, "SHOW work_mem").await, "4MB");
}

#[tokio::test]
async fn a_password_server_is_reached_with_scram() {
    let password = "s3cret \"quoted\" p@ss";
    let server = TestServer::builder().password("app_user", password).start().unwrap();
    let bouncer = TestPgBouncer::start(&server).unwrap();
    assert_eq!(bouncer.user(), "app_user");
    let client = connect(&bouncer.url()).await.unwrap();
    assert_eq!(value(&client, "SELECT current_user").await, "app_user");

    let wrong = bouncer.url().replace("s3cret", "wrong");
    assert!(connect(&wrong).await.is_err());
    for shown in [
        format!("{bouncer:?}"),
        format!("{:?}", TestPgBouncer::builder(&server)),
        std::fs::read_to_string(bouncer.config_path()).unwrap(),
        bouncer.log_tail(1000),
    ] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

#[test]
fn settings_are_checked_and_a_refused_one_fails_with_the_log() {
    let server = TestServer::start().unwrap();
    let err = TestPgBouncer::builder(&server).setting("listen_port", "1").start().unwrap_err();
    assert_eq!(err.phase(), Phase::Configure, "{err}");

    let err = TestPgBouncer::builder(&server).setting("pool_mode", "sometimes").start().unwrap_err();
    assert_eq!(err.phase(), Phase::StartPgBouncer, "{err}");
    let text = err.to_string();
    assert!(text.contains("starting pgbouncer failed: pgbouncer exited during startup"), "{text}");
    assert!(text.contains("sometimes"), "{text}");
}

#[test]
fn a_start_timeout_fails_while_waiting_for_ready() {
    let server = TestServer::start().unwrap();
    let err = TestPgBouncer::builder(&server).start_timeout(Duration::ZERO).start().unwrap_err();
    assert_eq!(err.phase(), Phase::WaitPgBouncerReady, "{err}");
    assert!(err.to_string().contains("did not accept connections"), "{err}");
}

#[test]
fn drop_closes_the_port_and_leaves_no_process_and_no_directory() {
    let server = TestServer::start().unwrap();
    let bouncer = TestPgBouncer::start(&server).unwrap();
    let port = bouncer.port();
    let dir = directory_of(&bouncer);
    let pid = bouncer.pid().unwrap();
    assert_eq!(processes_of(&dir), [pid]);
    assert!(accepts_tcp(port));
    drop(bouncer);
    assert!(!accepts_tcp(port));
    assert_gone(&dir, Duration::from_secs(5));
}

#[tokio::test]
async fn stop_closes_the_port_and_kill_cuts_connections() {
    let server = TestServer::start().unwrap();
    let stopped = TestPgBouncer::start(&server).unwrap();
    let idle = connect(&stopped.url()).await.unwrap();
    assert_eq!(value(&idle, "SELECT 1").await, "1");
    stopped.stop().unwrap();
    assert!(!stopped.is_running());
    assert_eq!(stopped.pid(), None);
    assert!(!accepts_tcp(stopped.port()));
    stopped.stop().unwrap(); // stopping twice is fine

    let killed = TestPgBouncer::start(&server).unwrap();
    let client = connect(&killed.url()).await.unwrap();
    assert_eq!(value(&client, "SELECT 1").await, "1");
    killed.kill().unwrap();
    assert!(!killed.is_running());
    assert!(client.simple_query("SELECT 1").await.is_err());
    assert!(processes_of(&directory_of(&killed)).is_empty());
}

/// Run by [`the_watchdog_stops_the_bouncer_of_a_killed_process`] and
/// [`the_watchdog_stops_a_static_bouncer`] in a child process; does nothing
/// in a normal test run.
#[test]
fn child_process_helper() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    match mode.as_str() {
        "static" => {
            // Statics are never dropped: only the watchdogs can clean up.
            static SERVER: OnceLock<TestServer> = OnceLock::new();
            static BOUNCER: OnceLock<TestPgBouncer> = OnceLock::new();
            let server = SERVER.get_or_init(|| TestServer::start().unwrap());
            let bouncer = BOUNCER.get_or_init(|| TestPgBouncer::start(server).unwrap());
            println!("{DIR_MARKER}{}", directory_of(bouncer).display());
        }
        "killed" => {
            let server = TestServer::start().unwrap();
            let bouncer = TestPgBouncer::start(&server).unwrap();
            println!("{DIR_MARKER}{}", directory_of(&bouncer).display());
            // Wait to be killed (bounded, in case the parent is gone).
            thread::sleep(Duration::from_secs(120));
        }
        other => panic!("unknown {CHILD_MODE}={other}"),
    }
}

#[test]
fn the_watchdog_stops_the_bouncer_of_a_killed_process() {
    assert_a_killed_child_leaves_nothing("killed");
}

#[test]
fn the_watchdog_stops_a_static_bouncer() {
    assert_an_exited_child_leaves_nothing("static");
}

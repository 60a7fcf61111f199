//! Tests of streaming replicas: a replica reads what the primary wrote,
//! refuses writes until promoted, outlives a stopped primary, and never
//! outlives its owner.

mod support;

use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use pool_postgres_test_server::{Phase, TestServer};
use support::{
    CHILD_MODE, DIR_MARKER, accepts_tcp, assert_a_killed_child_leaves_nothing,
    assert_an_exited_child_leaves_nothing, assert_gone, processes_of,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// How long a replica may take to catch up in these tests.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(20);

/// Connects to `server` and drives the connection in a task of its own.
async fn connect(server: &TestServer) -> Client {
    let (client, connection) = tokio_postgres::connect(&server.connection_string(), NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {server:?}: {e}\nlog:\n{}", server.log_tail(20)));
    tokio::spawn(connection);
    client
}

/// The one text value of a one-row, one-column query.
async fn value(client: &Client, sql: &str) -> String {
    let row = client.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.get(0)
}

#[tokio::test(flavor = "current_thread")]
async fn a_write_on_the_primary_is_read_on_the_replica() {
    let primary = TestServer::builder().max_connections(30).setting("work_mem", "1234kB").start().unwrap();
    let client = connect(&primary).await;
    client
        .batch_execute("CREATE TABLE kv (k text PRIMARY KEY, v int); INSERT INTO kv VALUES ('before', 1)")
        .await
        .unwrap();

    let replica = primary.start_replica().unwrap();
    assert_ne!(replica.port(), primary.port());
    assert_ne!(replica.data_dir(), primary.data_dir());
    assert_eq!(replica.user(), primary.user());
    assert!(replica.is_running());
    assert!(replica.data_dir().join("standby.signal").is_file());

    client.execute("INSERT INTO kv VALUES ('after', 42)", &[]).await.unwrap();
    replica.wait_for_replay(&primary, REPLAY_TIMEOUT).unwrap();

    let standby = connect(&replica).await;
    assert_eq!(value(&standby, "SELECT pg_is_in_recovery()::text").await, "true");
    assert_eq!(value(&standby, "SELECT v::text FROM kv WHERE k = 'before'").await, "1");
    assert_eq!(value(&standby, "SELECT v::text FROM kv WHERE k = 'after'").await, "42");
    // The primary's settings, and hot_standby.
    assert_eq!(value(&standby, "SHOW max_connections").await, "30");
    assert_eq!(value(&standby, "SHOW work_mem").await, "1234kB");
    assert_eq!(value(&standby, "SHOW hot_standby").await, "on");
    // Streaming, not just a copy.
    assert_eq!(
        value(&client, "SELECT count(*)::text FROM pg_stat_replication WHERE state = 'streaming'").await,
        "1"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_replica_refuses_writes_with_25006() {
    let primary = TestServer::start().unwrap();
    let client = connect(&primary).await;
    client.batch_execute("CREATE TABLE t (x int)").await.unwrap();
    let replica = primary.start_replica().unwrap();
    replica.wait_for_replay(&primary, REPLAY_TIMEOUT).unwrap();

    let standby = connect(&replica).await;
    let err = standby.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION), "{err}");
    assert_eq!(SqlState::READ_ONLY_SQL_TRANSACTION.code(), "25006");
}

#[tokio::test(flavor = "current_thread")]
async fn a_promoted_replica_takes_writes() {
    let primary = TestServer::start().unwrap();
    let client = connect(&primary).await;
    client.batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)").await.unwrap();
    let replica = primary.start_replica().unwrap();
    replica.wait_for_replay(&primary, REPLAY_TIMEOUT).unwrap();

    replica.promote().unwrap();
    let promoted = connect(&replica).await;
    assert_eq!(value(&promoted, "SELECT pg_is_in_recovery()::text").await, "false");
    promoted.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
    assert_eq!(value(&promoted, "SELECT string_agg(x::text, ',' ORDER BY x) FROM t").await, "1,2");
    replica.promote().unwrap(); // promoting it again does nothing

    // It no longer follows the primary, and the primary is no replica.
    client.execute("INSERT INTO t VALUES (3)", &[]).await.unwrap();
    let err = replica.wait_for_replay(&primary, Duration::from_millis(300)).unwrap_err();
    assert_eq!(err.phase(), Phase::WaitReplay);
    assert!(err.to_string().contains("short of the primary's"), "{err}");
    assert_eq!(value(&promoted, "SELECT count(*)::text FROM t WHERE x = 3").await, "0");
    assert_eq!(primary.promote().unwrap_err().phase(), Phase::Promote);
}

#[tokio::test(flavor = "current_thread")]
async fn a_replica_of_a_stopped_primary_keeps_serving_reads() {
    let primary = TestServer::start().unwrap();
    let client = connect(&primary).await;
    client.batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (7)").await.unwrap();
    let replica = primary.start_replica().unwrap();
    replica.wait_for_replay(&primary, REPLAY_TIMEOUT).unwrap();

    primary.stop().unwrap();
    assert!(!accepts_tcp(primary.port()));
    assert!(replica.is_running());
    let standby = connect(&replica).await;
    assert_eq!(value(&standby, "SELECT x::text FROM t").await, "7");
    // A replica cannot be made of a stopped server.
    assert_eq!(primary.start_replica().unwrap_err().phase(), Phase::BaseBackup);

    // The replica restarts (still in recovery) and picks up streaming
    // when the primary is back.
    replica.kill().unwrap();
    replica.start_again().unwrap();
    primary.start_again().unwrap();
    let client = connect(&primary).await;
    client.execute("INSERT INTO t VALUES (8)", &[]).await.unwrap();
    replica.wait_for_replay(&primary, REPLAY_TIMEOUT).unwrap();
    let standby = connect(&replica).await;
    assert_eq!(value(&standby, "SELECT pg_is_in_recovery()::text").await, "true");
    assert_eq!(value(&standby, "SELECT sum(x)::text FROM t").await, "15");

    // Stopping or dropping the replica leaves the primary alone.
    replica.stop().unwrap();
    assert_eq!(value(&client, "SELECT sum(x)::text FROM t").await, "15");
    let data_dir = replica.data_dir().to_owned();
    replica.start_again().unwrap();
    drop(replica);
    assert_gone(&data_dir, Duration::from_secs(5));
    assert!(primary.is_running());
    assert_eq!(value(&client, "SELECT sum(x)::text FROM t").await, "15");
}

#[tokio::test(flavor = "current_thread")]
async fn a_password_is_used_for_the_copy_and_for_streaming() {
    let primary = TestServer::builder().password("app_user", "s3cret 'quoted' pw").start().unwrap();
    let replica = primary.start_replica().unwrap();
    assert_eq!(replica.user(), "app_user");
    assert_eq!(replica.password(), Some("s3cret 'quoted' pw"));

    let client = connect(&primary).await;
    client.batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (5)").await.unwrap();
    replica.wait_for_replay(&primary, REPLAY_TIMEOUT).unwrap();
    let standby = connect(&replica).await;
    assert_eq!(value(&standby, "SELECT x::text FROM t").await, "5");
    assert_eq!(value(&client, "SELECT usename::text FROM pg_stat_replication").await, "app_user");
}

#[test]
fn settings_that_rule_out_replication_are_refused() {
    let primary = TestServer::builder().setting("max_wal_senders", "0").start().unwrap();
    let err = primary.start_replica().unwrap_err();
    assert_eq!(err.phase(), Phase::Configure, "{err}");
    assert!(err.to_string().contains("max_wal_senders=0"), "{err}");
}

/// Run by the watchdog tests below in a child process; does nothing in a
/// normal test run.
#[test]
fn child_process_helper() {
    // Statics are never dropped: only the watchdogs can clean up.
    static SERVERS: OnceLock<(TestServer, TestServer)> = OnceLock::new();
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let (_, replica) = SERVERS.get_or_init(|| {
        let primary = TestServer::start().unwrap();
        let replica = primary.start_replica().unwrap();
        (primary, replica)
    });
    assert!(!processes_of(replica.data_dir()).is_empty());
    println!("{DIR_MARKER}{}", replica.data_dir().display());
    match mode.as_str() {
        "static" => {}
        // Wait to be killed (bounded, in case the parent is gone).
        "killed" => thread::sleep(Duration::from_secs(120)),
        other => panic!("unknown {CHILD_MODE}={other}"),
    }
}

#[test]
fn the_watchdog_stops_a_replica_of_a_killed_process() {
    assert_a_killed_child_leaves_nothing("killed");
}

#[test]
fn the_watchdog_stops_a_replica_kept_in_a_static() {
    assert_an_exited_child_leaves_nothing("static");
}

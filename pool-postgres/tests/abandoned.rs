//! Failure mode: statements nobody waits for any more. A caller's own
//! `timeout`, a cancelled request handler or `socket_timeout` gives up on a
//! statement the server is still running. The pool asks the server to
//! cancel it and drains the connection before anyone else gets it: the
//! next borrower finds the same connection, in step and outside any
//! transaction block, with nothing of the abandoned work left running,
//! nothing of an abandoned transaction written, and no stray `ROLLBACK`.

mod common;

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use pool_postgres::{ErrorKind, PgPool};

/// Long enough that only a cancel ends it within the test.
const ENDLESS: &str = "SELECT pg_sleep(600)";

/// A pool of exactly one connection, so the next borrower gets the same one.
fn one_connection(server: &pool_postgres_test_server::TestServer, app: &str, extra: &str) -> PgPool {
    common::pool(server, &format!("connection_limit=1&pool_timeout=10&application_name={app}{extra}"))
}

/// Cancels counted since the last look, by `(reason, outcome)` (a
/// snapshot of the debugging recorder takes its counters back to zero).
fn cancels(snapshotter: &Snapshotter) -> HashMap<(String, String), u64> {
    let mut seen = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != pool_postgres::CANCEL_METRIC {
            continue;
        }
        let label = |name: &str| {
            key.key().labels().find(|l| l.key() == name).map(|l| l.value().to_owned()).unwrap_or_default()
        };
        let DebugValue::Counter(n) = value else { panic!("the cancel metric is a counter, not {value:?}") };
        if n > 0 {
            *seen.entry((label("reason"), label("outcome"))).or_default() += n;
        }
    }
    seen
}

/// `(reason, outcome) => count` for [`cancels`]' result.
fn counted(pairs: &[(&str, &str, u64)]) -> HashMap<(String, String), u64> {
    pairs.iter().map(|&(reason, outcome, n)| ((reason.to_owned(), outcome.to_owned()), n)).collect()
}

#[tokio::test]
async fn a_query_dropped_in_flight_is_cancelled_and_the_connection_reused_in_step() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = common::server();
    let monitor = common::monitor(&server).await;
    let pool = one_connection(&server, "dropped_query", "");

    let client = pool.get().await.unwrap();
    let pid = common::backend_pid(&client).await.unwrap();
    let gave_up = tokio::time::timeout(Duration::from_millis(200), client.query_one(ENDLESS, &[])).await;
    assert!(gave_up.is_err(), "the caller's own timeout ended the query: {gave_up:?}");
    drop(client);

    // Without a cancel, the check before reuse would wait for the sleep
    // until recycle_timeout and close the connection: a new pid.
    let client = pool.get().await.unwrap();
    assert_eq!(common::backend_pid(&client).await.unwrap(), pid, "the same connection, kept");
    let value: i32 = client.query_one("SELECT $1::int + 1", &[&41]).await.unwrap().get(0);
    assert_eq!(value, 42, "the next borrower gets its own answer, not the abandoned one's");
    assert!(!common::in_transaction(&client).await);
    assert_eq!(
        common::running_statements(&monitor, "dropped_query").await,
        0,
        "nothing of the abandoned query runs on"
    );
    drop(client);
    assert_eq!(cancels(&snapshotter), counted(&[("dropped", "kept", 1)]));
    assert_eq!(common::stray_rollbacks(&server), 0);
}

#[tokio::test]
async fn a_transaction_dropped_during_a_statement_writes_nothing_and_leaves_no_block() {
    let server = common::server();
    let pool = one_connection(&server, "dropped_tx", "");
    pool.get().await.unwrap().batch_execute("CREATE TABLE t (id int)").await.unwrap();

    let mut client = pool.get().await.unwrap();
    let pid = common::backend_pid(&client).await.unwrap();
    let gave_up = tokio::time::timeout(Duration::from_millis(300), async {
        let tx = client.transaction().await?;
        tx.execute("INSERT INTO t VALUES (1)", &[]).await?;
        tx.query_one(ENDLESS, &[]).await?;
        tx.commit().await
    })
    .await;
    assert!(gave_up.is_err(), "the caller's own timeout ended the transaction: {gave_up:?}");
    drop(client);

    let client = pool.get().await.unwrap();
    assert_eq!(common::backend_pid(&client).await.unwrap(), pid, "the same connection, kept");
    assert!(!common::in_transaction(&client).await, "the next borrower inherited the block");
    client.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
    let ids: Vec<i32> =
        client.query("SELECT id FROM t ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![2], "nothing of the abandoned transaction was written");
    assert_eq!(common::stray_rollbacks(&server), 0, "one ROLLBACK at most, never a stray one");
}

#[tokio::test]
async fn a_statement_out_of_socket_timeout_is_cancelled_on_the_server_and_the_connection_kept() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = common::server();
    let monitor = common::monitor(&server).await;
    let pool = one_connection(&server, "socket_timeout", "&socket_timeout=300ms");
    pool.get().await.unwrap().batch_execute("CREATE TABLE t (id int)").await.unwrap();

    let mut client = pool.get().await.unwrap();
    let pid = common::backend_pid(&client).await.unwrap();
    let error = client.query_one(ENDLESS, &[]).await.expect_err("out of socket_timeout");
    assert!(matches!(error.kind(), ErrorKind::Timeout { cancelled: true, .. }), "{error:?}");
    assert!(error.to_string().contains("cancelled on the server"), "{error}");
    assert_eq!(
        common::running_statements(&monitor, "socket_timeout").await,
        0,
        "the server runs nothing of it"
    );
    let value: i32 = client.query_one("SELECT $1::int", &[&7]).await.unwrap().get(0);
    assert_eq!(value, 7, "the same guard goes on in step");

    // Inside a transaction, the cancel aborts the block, and commit says so.
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    let error = tx.query_one(ENDLESS, &[]).await.expect_err("out of socket_timeout");
    assert!(error.is_timeout(), "{error}");
    let commit = tx.commit().await.expect_err("the block was aborted by the cancel");
    assert!(matches!(commit.kind(), ErrorKind::TransactionAborted { .. }), "{commit:?}");
    drop(client);

    let client = pool.get().await.unwrap();
    assert_eq!(common::backend_pid(&client).await.unwrap(), pid, "the connection was kept");
    let rows: i64 = client.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(rows, 0, "nothing of the aborted transaction was written");
    assert_eq!(cancels(&snapshotter), counted(&[("socket_timeout", "kept", 2)]));
    assert_eq!(common::stray_rollbacks(&server), 0);
}

/// The next row of a stream.
async fn next_row(
    rows: &mut pool_postgres::RowStream<'_>,
) -> Option<Result<tokio_postgres::Row, pool_postgres::Error>> {
    poll_fn(|cx| Pin::new(&mut *rows).poll_next(cx)).await
}

#[tokio::test]
async fn a_row_stream_dropped_before_its_end_is_cancelled_and_one_read_to_the_end_is_not() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = common::server();
    let monitor = common::monitor(&server).await;
    let pool = one_connection(&server, "row_stream", "");
    // Rows enough to fill the server's send buffer at once, then a row a
    // minute: only a cancel ends it soon.
    let slow = "SELECT n, repeat('x', 1000) FROM generate_series(1, 1000) n \
                WHERE n < 200 OR pg_sleep(60) IS NOT NULL";

    let client = pool.get().await.unwrap();
    let pid = common::backend_pid(&client).await.unwrap();
    {
        let mut rows = client.query_raw(slow, std::iter::empty::<i32>()).await.unwrap();
        let first: i32 = next_row(&mut rows).await.unwrap().unwrap().get(0);
        assert_eq!(first, 1);
    }
    drop(client);
    let client = pool.get().await.unwrap();
    assert_eq!(common::backend_pid(&client).await.unwrap(), pid, "the same connection, kept");
    assert_eq!(
        common::running_statements(&monitor, "row_stream").await,
        0,
        "nothing of the dropped stream runs on"
    );
    assert_eq!(cancels(&snapshotter), counted(&[("dropped", "kept", 1)]));

    let mut rows = client.query_raw("SELECT generate_series(1, 3)", std::iter::empty::<i32>()).await.unwrap();
    let mut seen = Vec::new();
    while let Some(row) = next_row(&mut rows).await {
        seen.push(row.unwrap().get::<_, i32>(0));
    }
    assert_eq!(seen, vec![1, 2, 3]);
    assert_eq!(rows.rows_affected(), Some(3));
    drop(rows);
    drop(client);
    let client = pool.get().await.unwrap();
    assert_eq!(common::backend_pid(&client).await.unwrap(), pid);
    assert_eq!(cancels(&snapshotter), counted(&[]), "a stream read to its end needs no cancel");
}

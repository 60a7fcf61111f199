//! Transactions through the pool: committed writes are there, failed and
//! abandoned ones are not, savepoints nest, and exactly one `ROLLBACK` ends
//! an abandoned block.

mod common;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use pool_postgres::{ErrorKind, PgPool};

fn one_connection(server: &pool_postgres_test_server::TestServer) -> PgPool {
    common::pool(server, "connection_limit=1&pool_timeout=5")
}

async fn ids(pool: &PgPool) -> Vec<i32> {
    let client = pool.get().await.unwrap();
    client.query("SELECT id FROM t ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

async fn with_table(pool: &PgPool) {
    pool.get().await.unwrap().batch_execute("CREATE TABLE t (id int PRIMARY KEY)").await.unwrap();
}

#[tokio::test]
async fn commit_after_a_failed_statement_reports_the_rollback_instead_of_success() {
    let server = common::server();
    let pool = one_connection(&server);
    with_table(&pool).await;
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    assert!(tx.execute("INSERT INTO t VALUES (1)", &[]).await.is_err(), "duplicate key");
    let error = tx.commit().await.expect_err("a commit of an aborted transaction is no success");
    assert!(matches!(error.kind(), ErrorKind::TransactionAborted { .. }), "{error}");
    assert!(error.to_string().contains("duplicate key"), "names the first failure: {error}");
    assert!(!common::in_transaction(&client).await);
    drop(client);
    assert_eq!(ids(&pool).await, Vec::<i32>::new(), "nothing of the failed transaction was written");
}

#[tokio::test]
async fn a_rolled_back_savepoint_keeps_the_outer_writes() {
    let server = common::server();
    let pool = one_connection(&server);
    with_table(&pool).await;
    let mut client = pool.get().await.unwrap();
    let mut tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    {
        let inner = tx.savepoint().await.unwrap();
        inner.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
        assert!(inner.execute("INSERT INTO t VALUES (2)", &[]).await.is_err());
        let error = inner.commit().await.unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::TransactionAborted { .. }), "{error}");
    }
    {
        let inner = tx.savepoint().await.unwrap();
        inner.execute("INSERT INTO t VALUES (3)", &[]).await.unwrap();
        drop(inner); // rolled back at once
    }
    let inner = tx.savepoint().await.unwrap();
    inner.execute("INSERT INTO t VALUES (4)", &[]).await.unwrap();
    inner.commit().await.unwrap();
    tx.commit().await.unwrap();
    drop(client);
    assert_eq!(ids(&pool).await, vec![1, 4]);
    assert_eq!(common::stray_rollbacks(&server), 0);
}

#[tokio::test]
async fn a_dropped_transaction_is_rolled_back_at_once_on_the_same_client() {
    let server = common::server();
    let pool = one_connection(&server);
    with_table(&pool).await;
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    drop(tx);
    // No await between the drop and this statement: the ROLLBACK went out
    // in the drop, ahead of it on the same socket.
    client.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
    assert!(!common::in_transaction(&client).await);
    drop(client);
    assert_eq!(ids(&pool).await, vec![2]);
    assert_eq!(common::stray_rollbacks(&server), 0, "exactly one ROLLBACK for the abandoned block");
}

#[tokio::test]
async fn cancelled_transaction_futures_cause_one_rollback_each_and_no_server_warning() {
    let server = common::server();
    let pool = one_connection(&server);
    with_table(&pool).await;
    for id in 0..20 {
        let mut client = pool.get().await.unwrap();
        {
            let mut begin = pin!(client.transaction());
            let first = poll_fn(|cx| Poll::Ready(begin.as_mut().poll(cx).is_ready())).await;
            assert!(!first, "BEGIN cannot have been answered within the first poll");
        }
        client.execute("INSERT INTO t VALUES ($1)", &[&id]).await.unwrap();
        assert!(!common::in_transaction(&client).await);
    }
    assert_eq!(
        ids(&pool).await,
        (0..20).collect::<Vec<_>>(),
        "every autocommit write after a cancel is there"
    );
    assert_eq!(common::stray_rollbacks(&server), 0);
}

#[tokio::test]
async fn transaction_options_reach_the_server() {
    let server = common::server();
    let pool = one_connection(&server);
    let mut client = pool.get().await.unwrap();
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::Serializable)
        .read_only(true)
        .start()
        .await
        .unwrap();
    let level: String = tx.query_one("SHOW transaction_isolation", &[]).await.unwrap().get(0);
    let read_only: String = tx.query_one("SHOW transaction_read_only", &[]).await.unwrap().get(0);
    assert_eq!((level.as_str(), read_only.as_str()), ("serializable", "on"));
    assert!(tx.batch_execute("CREATE TABLE u (id int)").await.is_err(), "read-only");
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn statements_the_guard_wraps_leave_no_reset_behind() {
    let server = common::server();
    let pool = one_connection(&server);
    for i in 0..50_i32 {
        let client = pool.get().await.unwrap();
        let row = client.query_typed_one("SELECT $1::int4", &[(&i, tokio_postgres::types::Type::INT4)]).await;
        assert_eq!(row.unwrap().get::<_, i32>(0), i);
        assert_eq!(client.query_one("SELECT $1::int4 + 1", &[&i]).await.unwrap().get::<_, i32>(0), i + 1);
    }
    // Before, reaching query_typed through Deref marked the session and
    // queued a ROLLBACK per checkout, each logged by the server.
    assert_eq!(common::stray_rollbacks(&server), 0);
}

//! Session hygiene: a connection given back inside a transaction never
//! reaches the next borrower in that state.

mod common;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use pool_postgres::{PgPool, Recycling};

/// A pool of exactly one connection, so the next borrower gets the same one.
fn one_connection(server: &pool_postgres_test_server::TestServer, extra: &str) -> PgPool {
    common::pool(server, &format!("connection_limit=1&pool_timeout=5{extra}"))
}

async fn count_rows(pool: &PgPool) -> i64 {
    let client = pool.get().await.unwrap();
    client.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0)
}

async fn with_table(pool: &PgPool) {
    pool.get().await.unwrap().batch_execute("CREATE TABLE t (id int)").await.unwrap();
}

#[tokio::test]
async fn a_dropped_transaction_is_rolled_back_before_the_next_borrower() {
    let server = common::server();
    let pool = one_connection(&server, "");
    with_table(&pool).await;
    {
        let mut client = pool.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
        drop(tx);
    }
    let client = pool.get().await.unwrap();
    assert!(!common::in_transaction(&client).await);
    drop(client);
    assert_eq!(count_rows(&pool).await, 0);
}

#[tokio::test]
async fn a_transaction_future_cancelled_after_begin_leaves_no_open_transaction() {
    let server = common::server();
    let pool = one_connection(&server, "");
    with_table(&pool).await;
    {
        let mut client = pool.get().await.unwrap();
        {
            // Poll once (BEGIN goes out), then drop the future before it completes.
            let mut begin = pin!(client.transaction());
            let first = poll_fn(|cx| Poll::Ready(begin.as_mut().poll(cx).is_ready())).await;
            assert!(!first, "BEGIN cannot have been answered within the first poll");
        }
        // The borrower goes on (wrongly) assuming autocommit.
        client.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    }
    let client = pool.get().await.unwrap();
    assert!(!common::in_transaction(&client).await, "the next borrower inherited the half-begun transaction");
}

#[tokio::test]
async fn a_raw_begin_through_the_guard_is_rolled_back() {
    let server = common::server();
    let pool = one_connection(&server, "");
    with_table(&pool).await;
    {
        let client = pool.get().await.unwrap();
        client.batch_execute("BEGIN; INSERT INTO t VALUES (1)").await.unwrap();
    }
    let client = pool.get().await.unwrap();
    assert!(!common::in_transaction(&client).await);
    drop(client);
    assert_eq!(count_rows(&pool).await, 0, "the abandoned insert must not be committed");
}

#[tokio::test]
async fn a_raw_begin_through_the_tokio_postgres_client_is_rolled_back() {
    let server = common::server();
    let pool = one_connection(&server, "");
    with_table(&pool).await;
    {
        let client = pool.get().await.unwrap();
        let raw = client.raw_reset_on_return();
        raw.simple_query("START TRANSACTION").await.unwrap();
        raw.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    }
    let client = pool.get().await.unwrap();
    assert!(!common::in_transaction(&client).await);
    drop(client);
    assert_eq!(count_rows(&pool).await, 0);
}

#[tokio::test]
async fn a_failed_transaction_is_cleared_before_the_next_borrower() {
    let server = common::server();
    let pool = one_connection(&server, "");
    {
        let client = pool.get().await.unwrap();
        client.batch_execute("BEGIN").await.unwrap();
        assert!(client.query_one("SELECT 1 / 0", &[]).await.is_err());
    }
    let client = pool.get().await.unwrap();
    let one: i32 =
        client.query_one("SELECT 1", &[]).await.expect("no 'current transaction is aborted'").get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn a_committed_transaction_stays_committed() {
    let server = common::server();
    let pool = one_connection(&server, "");
    with_table(&pool).await;
    {
        let mut client = pool.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(count_rows(&pool).await, 1);
}

async fn time_zone_after_set(recycling: Recycling) -> String {
    let server = common::server();
    let pool = PgPool::builder(server.connection_string().parse().unwrap())
        .max_size(1)
        .recycling(recycling)
        .build()
        .unwrap();
    pool.get().await.unwrap().batch_execute("SET SESSION TimeZone = 'Asia/Tokyo'").await.unwrap();
    let client = pool.get().await.unwrap();
    client.query_one("SHOW TimeZone", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn clean_recycling_resets_session_settings() {
    assert_ne!(time_zone_after_set(Recycling::Clean).await, "Asia/Tokyo", "DISCARD ALL resets settings");
}

#[tokio::test]
async fn fast_recycling_leaves_session_settings_alone() {
    assert_eq!(time_zone_after_set(Recycling::Fast).await, "Asia/Tokyo", "documented: only clean resets");
}

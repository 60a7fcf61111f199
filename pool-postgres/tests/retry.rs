//! Transient or permanent, and may it have run: what each error says about
//! retrying, checked on real failures of a real server; and
//! `PgPool::retry`, which retries idempotent work on transient ones only.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pool_postgres::{PgPool, Retry, RetryError, Retryable};

/// Raises a real error with this SQLSTATE on the server.
fn raise(code: &str) -> String {
    format!("DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{code}'; END $$")
}

fn quick() -> Retry {
    Retry {
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        ..Retry::default()
    }
}

#[tokio::test]
async fn each_failure_says_whether_it_is_transient_and_whether_it_may_have_run() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=2&socket_timeout=300ms");
    let client = pool.get().await.unwrap();

    let serialization = client.batch_execute(&raise("40001")).await.unwrap_err();
    assert!(serialization.is_transient() && !serialization.may_have_run(), "{serialization}");
    let deadlock = client.batch_execute(&raise("40P01")).await.unwrap_err();
    assert!(deadlock.is_transient() && !deadlock.may_have_run(), "{deadlock}");
    let syntax = client.batch_execute("SELEC 1").await.unwrap_err();
    assert!(!syntax.is_transient() && !syntax.may_have_run(), "{syntax}");
    let cancelled = client.query_one("SELECT pg_sleep(600)", &[]).await.unwrap_err();
    assert!(cancelled.is_transient() && !cancelled.may_have_run(), "cancelled on the server: {cancelled}");

    // The session ends under a statement: it may have run.
    let terminated = client.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())").await.unwrap_err();
    assert!(terminated.is_transient() && terminated.may_have_run(), "{terminated}");
    common::wait_until(common::SLACK, "the guard sees its connection closed", || async {
        client.is_closed()
    })
    .await;
    // Sent on a connection already known closed: it never left.
    let not_sent = client.query_one("SELECT 1", &[]).await.unwrap_err();
    assert!(not_sent.is_transient() && !not_sent.may_have_run(), "{not_sent:?}");
}

#[tokio::test]
async fn transient_failures_are_retried_on_a_new_connection_and_the_write_lands_once() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=2");
    pool.get().await.unwrap().batch_execute("CREATE TABLE t (id int PRIMARY KEY)").await.unwrap();
    let calls = AtomicU32::new(0);
    let pids = std::sync::Mutex::new(Vec::new());
    let inserted = pool
        .retry(&quick(), |client| async {
            let client = client;
            let pid = common::backend_pid(&client).await?;
            pids.lock().unwrap().push(pid);
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => client.batch_execute(&raise("40001")).await?,
                1 => client.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())").await?,
                _ => {}
            }
            client.execute("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", &[]).await
        })
        .await
        .expect("the third attempt succeeds");
    assert_eq!(inserted, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let pids = pids.into_inner().unwrap();
    // A serialization failure leaves the session sound; a terminated one is never reused.
    assert_ne!(pids[1], pids[2], "the terminated session is not handed out again: {pids:?}");
    let rows: i64 = pool.get().await.unwrap().query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn a_permanent_failure_is_not_retried_and_a_spent_budget_says_so() {
    let server = common::server();
    let pool: PgPool = common::pool(&server, "connection_limit=1");
    let calls = AtomicU32::new(0);
    let error = pool
        .retry(&quick(), |client| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { client.batch_execute("SELEC 1").await }
        })
        .await
        .unwrap_err();
    assert_eq!(calls.swap(0, Ordering::SeqCst), 1, "a syntax error is not retried");
    assert!(matches!(error, RetryError::Work { attempts: 1, .. }), "{error:?}");
    assert!(error.to_string().contains("not transient"), "{error}");

    let error = pool
        .retry(&quick(), |client| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { client.batch_execute(&raise("40001")).await }
        })
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3, "max_attempts");
    let RetryError::Work { error: last, attempts: 3 } = &error else { panic!("{error:?}") };
    assert_eq!(last.code(), Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE));
    assert!(error.to_string().contains("budget is spent"), "{error}");
}

//! Failure mode: the server has no connection slot left. `get` fails within
//! `acquire_timeout` with the server's own message, the pool keeps no slot
//! for the failed creates, and once slots are free again it recovers.

mod common;

use std::time::Duration;

use common::{SLACK, display};
use pool_postgres::PgPool;
use pool_postgres_test_server::{TestServer, TestServerBuilder};
use tokio::time::Instant;
use tokio_postgres::Client;

const ACQUIRE: Duration = Duration::from_secs(3);

/// Opens `n` raw connections to `server` (holding server slots).
async fn hold_slots(server: &TestServer, n: usize) -> Vec<Client> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(common::monitor(server).await);
    }
    held
}

/// Runs `n` concurrent `get`s, each bounded by `ACQUIRE + SLACK`; every one
/// must fail within that bound with `needle` in its Display text.
async fn gets_fail_with(pool: &PgPool, n: usize, needle: &str) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let pool = pool.clone();
        tasks.spawn(async move {
            let started = Instant::now();
            let outcome = tokio::time::timeout(ACQUIRE + SLACK, pool.get()).await;
            (outcome.map(|r| r.map(drop)), started.elapsed())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (outcome, took) = joined.expect("a get task does not panic");
        let error = outcome
            .unwrap_or_else(|_| panic!("get() hung past acquire_timeout + slack ({:?})", ACQUIRE + SLACK))
            .expect_err("get() cannot succeed while the server is full");
        assert!(took <= ACQUIRE + SLACK, "get() took {took:?} to fail");
        let text = display(&error);
        assert!(text.contains(needle), "the error does not carry the server's message {needle:?}: {text}");
    }
}

/// Polls until a `get` plus a query succeeds; returns how long that took.
async fn recovers(pool: &PgPool) -> Duration {
    common::wait_until(ACQUIRE + SLACK * 2, "the pool connects again", || async {
        match pool.get().await {
            Ok(client) => client.query_one("SELECT 1", &[]).await.is_ok(),
            Err(_) => false,
        }
    })
    .await
}

/// Every slot held by superusers, none reserved: "sorry, too many clients already".
#[tokio::test]
async fn a_full_server_fails_get_with_its_message_and_the_pool_recovers() {
    let server = common::start(
        &TestServerBuilder::new().max_connections(5).setting("superuser_reserved_connections", "0"),
    );
    let app = "failures_server_full";
    let mut held = hold_slots(&server, 5).await;
    let pool = PgPool::from_url(&format!(
        "{}?connection_limit=3&pool_timeout={}&application_name={app}",
        server.url(),
        ACQUIRE.as_secs()
    ))
    .expect("a valid URL");

    gets_fail_with(&pool, 3, "too many clients").await;
    // Twice, so later gets (after backoff set in) are covered too.
    gets_fail_with(&pool, 3, "too many clients").await;
    let status = pool.status();
    common::assert_settled(&status);
    assert_eq!(status.size, 0, "failed creates left connections counted: {status:?}");

    // Free all but one slot (the monitor): the pool gets its connections.
    held.truncate(1);
    let monitor = &held[0];
    let took = recovers(&pool).await;
    eprintln!("recovered {took:?} after the slots were freed");
    let clients = take_all(&pool, 3).await;
    assert_eq!(clients.len(), 3);
    let status = pool.status();
    common::check_invariants(&status).unwrap();
    assert_eq!((status.size, status.in_use, status.creating), (3, 3, 0), "{status:?}");
    assert_eq!(common::backends(monitor, app).await.len(), 3, "the server's view differs from the pool's");
    drop(clients);
    common::assert_settled(&pool.status());
    assert_eq!(pool.status().idle, 3);
    pool.close_and_wait(Duration::from_secs(5)).await.expect("the pool closes");
    drop(held);
    drop(server);
}

/// Slots left only for superusers, the pool logs in as an ordinary role:
/// "remaining connection slots are reserved for ... superuser connections".
#[tokio::test]
async fn slots_reserved_for_superusers_fail_get_with_its_message_and_the_pool_recovers() {
    // max_connections=5 with superuser_reserved_connections=3 (the default):
    // ordinary roles get 2.
    let server = common::start(
        &TestServerBuilder::new().max_connections(5).setting("superuser_reserved_connections", "3"),
    );
    let app = "failures_reserved";
    let mut held = hold_slots(&server, 2).await;
    held[0].batch_execute("CREATE ROLE app LOGIN").await.expect("create an ordinary role");
    let url = format!(
        "postgres://app@127.0.0.1:{}/postgres?connection_limit=2&pool_timeout={}&application_name={app}",
        server.port(),
        ACQUIRE.as_secs()
    );
    let pool = PgPool::from_url(&url).expect("a valid URL");

    gets_fail_with(&pool, 2, "remaining connection slots are reserved").await;
    let status = pool.status();
    common::assert_settled(&status);
    assert_eq!(status.size, 0, "failed creates left connections counted: {status:?}");

    held.truncate(1);
    recovers(&pool).await;
    // One ordinary slot is free now (the monitor holds the other).
    let client = pool.get().await.expect("a connection");
    client.query_one("SELECT 1", &[]).await.expect("a live connection");
    let status = pool.status();
    common::check_invariants(&status).unwrap();
    assert_eq!((status.size, status.creating), (1, 0), "{status:?}");
    drop(client);
    pool.close_and_wait(Duration::from_secs(5)).await.expect("the pool closes");
    drop(held);
    drop(server);
}

/// Takes `n` connections at once (all must succeed) and checks each is live.
async fn take_all(pool: &PgPool, n: usize) -> Vec<pool_postgres::Client> {
    let mut clients = Vec::with_capacity(n);
    let deadline = Instant::now() + ACQUIRE + SLACK;
    for _ in 0..n {
        let client = tokio::time::timeout_at(deadline, pool.get())
            .await
            .expect("get() does not hang")
            .expect("a connection once slots are free");
        client.query_one("SELECT 1", &[]).await.expect("a live connection");
        clients.push(client);
    }
    clients
}

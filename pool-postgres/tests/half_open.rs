//! Failure mode: half-open connections. A network path dies silently (a
//! NAT table flushed, a firewall dropping state, a VM frozen): established
//! connections stop carrying bytes in both directions but are never closed
//! (no FIN, no RST), while new connections work. Reproduced with the
//! test server's fault proxy, which can "freeze" the connections it carries.
//!
//! The pool must not hand out a frozen connection (its check before reuse
//! is bounded by `recycle_timeout`), must not hang a caller past
//! `acquire_timeout`, must fail a query in flight after `socket_timeout`
//! and must not reuse that connection.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{SLACK, backend_pid, backends};
use pool_postgres::PgPool;
use pool_postgres_test_server::{FaultProxy, TestServerBuilder};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_postgres::Client;

const ACQUIRE: Duration = Duration::from_secs(5);
const RECYCLE: Duration = Duration::from_secs(1);
const SOCKET: Duration = Duration::from_secs(2);

/// Whether session `pid` is running a query now, seen from the server.
async fn is_active(monitor: &Client, pid: i32) -> bool {
    monitor
        .query_opt("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", &[&pid])
        .await
        .expect("look at pg_stat_activity")
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_connections_are_never_handed_out_and_a_query_on_one_times_out() {
    let server = common::start(&TestServerBuilder::new());
    let monitor = common::monitor(&server).await;
    let proxy = FaultProxy::in_front_of(&server).expect("start the fault proxy");
    let app = "failures_half_open";
    let pool = PgPool::from_url(&format!(
        "{}?connection_limit=6&pool_timeout={}&verify_idle_after=0.2\
         &recycle_timeout={}&socket_timeout={}&application_name={app}",
        proxy.url(),
        ACQUIRE.as_secs(),
        RECYCLE.as_secs(),
        SOCKET.as_secs(),
    ))
    .expect("a valid URL");
    let watch = common::StatusWatch::start(pool.clone());

    // Four connections through the proxy: three go back idle, one stays busy.
    let mut taken = Vec::new();
    for _ in 0..4 {
        let client = pool.get().await.expect("a connection through the proxy");
        let pid = backend_pid(&client).await.expect("a live connection");
        taken.push((client, pid));
    }
    let frozen_pids: HashSet<i32> = taken.iter().map(|(_, pid)| *pid).collect();
    let (busy, busy_pid) = taken.pop().expect("four were taken");
    drop(taken);
    assert_eq!(pool.status().idle, 3);

    // A query in flight when the path freezes: its answer never arrives.
    let in_flight = tokio::spawn(async move {
        let started = Instant::now();
        let outcome = busy.query_one("SELECT pg_sleep(5)", &[]).await;
        (busy, outcome, started.elapsed())
    });
    common::wait_until(SLACK * 2, "the busy connection runs pg_sleep", || is_active(&monitor, busy_pid))
        .await;
    proxy.freeze();

    let (busy, outcome, took) = tokio::time::timeout(SOCKET + SLACK, in_flight)
        .await
        .expect("a query on a frozen connection must end after socket_timeout")
        .expect("the query task does not panic");
    let error = outcome.expect_err("no answer can arrive through a frozen connection");
    assert!(error.to_string().contains("timeout"), "not a timeout: {error:?}");
    assert!(took + Duration::from_millis(100) >= SOCKET, "failed before socket_timeout: {took:?}");
    assert!(took <= SOCKET + SLACK, "socket_timeout not honoured: {took:?}");
    let before = pool.status();
    drop(busy);
    let after = pool.status();
    assert_eq!(
        (after.size, after.idle, after.in_use),
        (before.size - 1, before.idle, before.in_use - 1),
        "the connection whose query timed out went back to the pool: {before:?} -> {after:?}"
    );

    // The three idle ones have been idle longer than verify_idle_after
    // (the in-flight query alone took socket_timeout). Eight callers at
    // once: each gets a live connection (or at worst an error) in time.
    let mut callers = JoinSet::new();
    for _ in 0..8 {
        let pool = pool.clone();
        callers.spawn(async move {
            let started = Instant::now();
            let outcome = tokio::time::timeout(ACQUIRE + SLACK, async {
                let client = pool.get().await.map_err(|e| e.to_string())?;
                let pid = backend_pid(&client).await.map_err(|e| format!("query: {e}"))?;
                // Overlap with the other callers.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, String>(pid)
            })
            .await;
            (outcome, started.elapsed())
        });
    }
    let mut slowest = Duration::ZERO;
    while let Some(joined) = callers.join_next().await {
        let (outcome, took) = joined.expect("a caller does not panic");
        slowest = slowest.max(took);
        let outcome = outcome.unwrap_or_else(|_| panic!("a caller hung for {:?}", ACQUIRE + SLACK));
        assert!(took <= ACQUIRE + SLACK, "a caller took {took:?}");
        let pid = outcome.unwrap_or_else(|e| panic!("a caller got no live connection: {e}"));
        assert!(!frozen_pids.contains(&pid), "frozen session {pid} was handed out");
    }
    // The frozen idle ones were taken first (LIFO) and their checks ran
    // into recycle_timeout: the scenario really happened.
    assert!(
        slowest + Duration::from_millis(100) >= RECYCLE,
        "no caller met a frozen connection: {slowest:?}"
    );
    eprintln!("slowest of 8 callers after the freeze: {slowest:?}");

    // Later gets keep working, on fresh connections only.
    for _ in 0..10 {
        let client = tokio::time::timeout(ACQUIRE + SLACK, pool.get())
            .await
            .expect("get() does not hang")
            .expect("a connection");
        let pid = backend_pid(&client).await.expect("a live connection");
        assert!(!frozen_pids.contains(&pid), "frozen session {pid} was handed out");
    }
    watch.finish().await;
    let status = pool.status();
    common::assert_settled(&status);
    assert!(status.size <= 6, "{status:?}");

    // The frozen sessions were really half-open: the server still has them.
    let on_server: HashSet<i32> = backends(&monitor, app).await.into_iter().collect();
    assert!(
        frozen_pids.is_subset(&on_server),
        "the proxy closed frozen sessions: {frozen_pids:?} vs {on_server:?}"
    );

    pool.close_and_wait(Duration::from_secs(5)).await.expect("the pool closes");
    proxy.shutdown();
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_stuck_on_a_frozen_connection_ends_at_acquire_timeout() {
    // pool_timeout (1 s) shorter than recycle_timeout (the default 5 s):
    // the caller gets a timeout naming the check, in time, and the frozen
    // connection is destroyed, so the next get opens a fresh one.
    let server = common::start(&TestServerBuilder::new());
    let proxy = FaultProxy::in_front_of(&server).expect("start the fault proxy");
    let pool = PgPool::from_url(&format!(
        "{}?connection_limit=2&pool_timeout=1&verify_idle_after=0\
         &application_name=failures_half_open_stuck",
        proxy.url(),
    ))
    .expect("a valid URL");
    let frozen_pid = {
        let client = pool.get().await.expect("a connection through the proxy");
        backend_pid(&client).await.expect("a live connection")
    };
    proxy.freeze();

    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(1) + SLACK, pool.get())
        .await
        .expect("get() must give up at acquire_timeout");
    let took = started.elapsed();
    let error = outcome.expect_err("the only idle connection is frozen and the check outlasts pool_timeout");
    assert!(
        matches!(
            error,
            pool_postgres::PoolError::Timeout { phase: pool_postgres::pool_core::TimeoutPhase::Recycle, .. }
        ),
        "{error:?}"
    );
    assert!(took <= Duration::from_secs(1) + SLACK, "{took:?}");
    let status = pool.status();
    common::assert_settled(&status);
    assert_eq!(status.size, 0, "the frozen connection was kept: {status:?}");

    let client = tokio::time::timeout(Duration::from_secs(1) + SLACK, pool.get())
        .await
        .expect("get() does not hang")
        .expect("a fresh connection");
    let pid = backend_pid(&client).await.expect("a live connection");
    assert_ne!(pid, frozen_pid);
    drop(client);
    pool.close_and_wait(Duration::from_secs(5)).await.expect("the pool closes");
    proxy.shutdown();
    drop(server);
}

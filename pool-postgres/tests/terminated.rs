//! Failure mode: an operator (or a failover script) ends every session of
//! the service with `pg_terminate_backend`, idle and busy alike. The busy
//! query fails, and from then on the pool hands out only live connections.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{SLACK, backend_pid, backends};
use pool_postgres::PgPool;
use pool_postgres_test_server::TestServerBuilder;
use tokio::time::Instant;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

const ACQUIRE: Duration = Duration::from_secs(5);
const ROUNDS: usize = 3;

/// Takes `n` connections (holding each) and returns them with their server pids.
async fn take(pool: &PgPool, n: usize) -> Vec<(pool_postgres::Client, i32)> {
    let mut taken = Vec::with_capacity(n);
    for _ in 0..n {
        let client = tokio::time::timeout(ACQUIRE + SLACK, pool.get())
            .await
            .expect("get() does not hang")
            .expect("a connection");
        let pid = backend_pid(&client).await.expect("a live connection");
        taken.push((client, pid));
    }
    taken
}

/// Whether the session `pid` is running a query now.
async fn is_active(monitor: &Client, pid: i32) -> bool {
    monitor
        .query_opt("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", &[&pid])
        .await
        .expect("look at pg_stat_activity")
        .is_some()
}

/// One round: one connection busy in `pg_sleep(30)`, the others (three or
/// more) idle, all terminated from the side. The busy query fails at once,
/// and its connection, given back right after, is destroyed rather than
/// kept idle. Returns the terminated pids.
async fn terminate_busy_and_idle(pool: &PgPool, monitor: &Client, app: &str) -> HashSet<i32> {
    let mut taken = take(pool, 4).await;
    let (busy, busy_pid) = taken.pop().expect("four were taken");
    drop(taken); // three (or more, from earlier rounds) idle

    let sleeper = tokio::spawn(async move {
        let started = Instant::now();
        let outcome = busy.query_one("SELECT pg_sleep(30)", &[]).await;
        (busy, outcome, started.elapsed())
    });
    common::wait_until(SLACK * 2, "the busy connection runs pg_sleep", || is_active(monitor, busy_pid)).await;
    let status = pool.status();
    assert_eq!((status.in_use, status.idle), (1, status.size - 1), "{status:?}");
    assert!(status.size >= 4, "{status:?}");
    let dead: HashSet<i32> = backends(monitor, app).await.into_iter().collect();
    assert_eq!(dead.len(), status.size, "the server's view differs from the pool's");

    let terminated: i64 = monitor
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&app],
        )
        .await
        .expect("terminate the pool's sessions")
        .get(0);
    assert_eq!(terminated, dead.len() as i64, "every session of the pool is terminated");

    // The busy query fails at once (not after its 30 s).
    let (busy, outcome, took) = tokio::time::timeout(SLACK * 2, sleeper)
        .await
        .expect("the busy query ends when its session is terminated")
        .expect("the query task does not panic");
    let error = outcome.expect_err("a terminated session's query fails");
    assert!(
        error.code() == Some(&SqlState::ADMIN_SHUTDOWN) || error.is_closed(),
        "unexpected error for a terminated session: {error:?}"
    );
    assert!(took < SLACK * 3, "the busy query took {took:?} to fail");
    // Given back right away, the dead connection is destroyed, not kept
    // idle: its query failed with FATAL 57P01, whether or not its driver
    // task has seen the socket close yet.
    let before = pool.status();
    drop(busy);
    let after = pool.status();
    assert_eq!(
        (after.size, after.idle, after.in_use),
        (before.size - 1, before.idle, before.in_use - 1),
        "the connection whose session was terminated (its query failed with {error}) went back to \
         the pool as idle: {before:?} -> {after:?}"
    );
    common::wait_until(SLACK * 2, "the terminated sessions are gone from the server", || async {
        backends(monitor, app).await.is_empty()
    })
    .await;
    dead
}

/// Every `get` hands out a live connection, never one of `dead`; some at
/// once, some one after the other.
async fn only_live_connections(pool: &PgPool, dead: &HashSet<i32>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let pool = pool.clone();
        tasks.spawn(async move {
            let client = tokio::time::timeout(ACQUIRE + SLACK, pool.get()).await.expect("no hang")?;
            let pid = backend_pid(&client).await;
            // Hold it a moment so the five overlap.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(pid?)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let pid = done.expect("no panic").unwrap_or_else(|e| panic!("a dead connection was handed out: {e}"));
        assert!(!dead.contains(&pid), "terminated session {pid} handed out again");
    }
    for _ in 0..10 {
        let client = pool.get().await.expect("a connection");
        let pid =
            backend_pid(&client).await.unwrap_or_else(|e| panic!("a dead connection was handed out: {e}"));
        assert!(!dead.contains(&pid), "terminated session {pid} handed out again");
    }
    let status = pool.status();
    common::assert_settled(&status);
}

/// Waits until every idle connection of the pool has noticed, on its own
/// socket, that its session ended (what the default `Fast` recycling relies
/// on when the connection was used less than `verify_idle_after` ago).
async fn idle_connections_notice(pool: &PgPool) {
    common::wait_until(SLACK, "the idle connections notice their sessions ended", || async {
        let mut all_closed = true;
        pool.retain(|conn, _| {
            all_closed &= conn.is_closed();
            true
        });
        all_closed
    })
    .await;
}

#[tokio::test]
async fn terminated_sessions_idle_and_busy_are_replaced_with_default_recycling() {
    let server = common::start(&TestServerBuilder::new());
    let app = "failures_terminated";
    let pool = PgPool::from_url(&format!(
        "{}?connection_limit=5&pool_timeout={}&application_name={app}",
        server.url(),
        ACQUIRE.as_secs()
    ))
    .expect("a valid URL");
    let monitor = common::monitor(&server).await;
    let watch = common::StatusWatch::start(pool.clone());
    let mut all_dead = HashSet::new();
    for _ in 0..ROUNDS {
        let dead = terminate_busy_and_idle(&pool, &monitor, app).await;
        all_dead.extend(dead);
        // Fast recycling trusts a connection used within verify_idle_after
        // once its socket shows no end; give the sockets the moment it takes.
        idle_connections_notice(&pool).await;
        only_live_connections(&pool, &all_dead).await;
    }
    watch.finish().await;
    pool.close_and_wait(Duration::from_secs(5)).await.expect("the pool closes");
    drop(server);
}

#[tokio::test]
async fn terminated_sessions_are_never_handed_out_when_idle_ones_are_verified() {
    // verify_idle_after=0: every reuse is verified with a round trip, so a
    // terminated session is caught even before its socket says so.
    let server = common::start(&TestServerBuilder::new());
    let app = "failures_terminated_verified";
    let pool = PgPool::from_url(&format!(
        "{}?connection_limit=5&pool_timeout={}&verify_idle_after=0&application_name={app}",
        server.url(),
        ACQUIRE.as_secs()
    ))
    .expect("a valid URL");
    let monitor = common::monitor(&server).await;
    let watch = common::StatusWatch::start(pool.clone());
    let mut all_dead = HashSet::new();
    for _ in 0..ROUNDS {
        all_dead.extend(terminate_busy_and_idle(&pool, &monitor, app).await);
        only_live_connections(&pool, &all_dead).await;
    }
    watch.finish().await;
    pool.close_and_wait(Duration::from_secs(5)).await.expect("the pool closes");
    drop(server);
}

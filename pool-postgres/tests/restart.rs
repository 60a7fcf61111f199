//! Failure mode: the server restarts (a deploy, a failover, a crash) while
//! many tasks use the pool. Every operation ends, with a result or an
//! error, within `acquire_timeout`; no task hangs; the pool's counts stay
//! consistent throughout; and once the server is back the pool serves live
//! connections again within a few seconds.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{SLACK, backends};
use pool_postgres::PgPool;
use pool_postgres_test_server::{TestServer, TestServerBuilder};
use tokio::task::JoinSet;
use tokio::time::Instant;

const TASKS: usize = 50;
const POOL_SIZE: usize = 10;
const ACQUIRE: Duration = Duration::from_secs(3);
/// The longest one get + query may take.
const OP_BOUND: Duration = Duration::from_secs(6); // ACQUIRE + SLACK

/// Counters shared by the load tasks.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// What one load task saw.
#[derive(Default)]
struct Seen {
    ok: u64,
    failed: u64,
    slowest: Duration,
    /// Operations that did not end within `OP_BOUND`.
    hung: u64,
    /// Error texts (without digits), with counts.
    errors: BTreeMap<String, u64>,
}

/// One operation: borrow a connection and run a query on it.
async fn operation(pool: &PgPool) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| format!("get: {e}"))?;
    client.query_one("SELECT 1", &[]).await.map(drop).map_err(|e| format!("query: {e}"))
}

/// Loops `operation` until `done`, each bounded by `OP_BOUND`.
async fn load(pool: PgPool, done: Arc<AtomicBool>, tally: Arc<Tally>) -> Seen {
    let mut seen = Seen::default();
    while !done.load(Ordering::Relaxed) {
        let started = Instant::now();
        let outcome = tokio::time::timeout(OP_BOUND, operation(&pool)).await;
        seen.slowest = seen.slowest.max(started.elapsed());
        match outcome {
            Err(_) => {
                seen.hung += 1;
                break;
            }
            Ok(Ok(())) => {
                seen.ok += 1;
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(text)) => {
                seen.failed += 1;
                tally.failed.fetch_add(1, Ordering::Relaxed);
                // Digits out, so "timed out after 1.2s" and the like group.
                let kind: String = text.chars().filter(|c| !c.is_ascii_digit()).collect();
                *seen.errors.entry(kind).or_default() += 1;
                // A failed operation is retried at once: the worst case for
                // the pool (and its backoff).
            }
        }
    }
    seen
}

/// Runs a blocking server operation off the runtime's threads.
async fn blocking(
    server: &Arc<TestServer>,
    op: fn(&TestServer) -> Result<(), pool_postgres_test_server::TestServerError>,
) {
    let server = Arc::clone(server);
    tokio::task::spawn_blocking(move || op(&server))
        .await
        .expect("the server operation does not panic")
        .expect("the server operation succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_restart_under_load_ends_every_operation_in_time_and_the_pool_recovers() {
    restart_under_load(Duration::from_secs(1), "failures_restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_acquire_timeout_under_load_is_recovered_from_within_seconds() {
    // Down for longer than acquire_timeout: operations meanwhile fail (as
    // they should), and the pool must still connect again within a few
    // seconds of the server being back.
    restart_under_load(Duration::from_secs(5), "failures_long_outage").await;
}

/// 50 tasks loop get + `SELECT 1`; the server stops, stays down for `down`
/// (counted from the end of the stop) and starts again.
async fn restart_under_load(down: Duration, app: &str) {
    let server = Arc::new(common::start(&TestServerBuilder::new().max_connections(30)));
    let pool = PgPool::from_url(&format!(
        "{}?connection_limit={POOL_SIZE}&pool_timeout={}&application_name={app}",
        server.url(),
        ACQUIRE.as_secs()
    ))
    .expect("a valid URL");
    let watch = common::StatusWatch::start(pool.clone());
    let done = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        tasks.spawn(load(pool.clone(), Arc::clone(&done), Arc::clone(&tally)));
    }

    // Running normally first.
    common::wait_until(SLACK * 2, "the load runs", || {
        let ok = tally.ok.load(Ordering::Relaxed);
        async move { ok >= 500 }
    })
    .await;

    // Down for a while.
    blocking(&server, TestServer::stop).await;
    let stopped_at = Instant::now();
    let failed_before = tally.failed.load(Ordering::Relaxed);
    common::wait_until(SLACK * 2, "operations fail while the server is down", || {
        let failed = tally.failed.load(Ordering::Relaxed);
        async move { failed > failed_before }
    })
    .await;
    tokio::time::sleep(down.saturating_sub(stopped_at.elapsed())).await;
    blocking(&server, TestServer::start_again).await;
    let back_at = Instant::now();
    eprintln!("server down for {:?}", back_at - stopped_at);

    // New gets succeed again within a few seconds.
    let recovered = common::wait_until(ACQUIRE + SLACK * 2, "a get succeeds after the restart", || async {
        tokio::time::timeout(OP_BOUND, operation(&pool)).await.is_ok_and(|r| r.is_ok())
    })
    .await;
    eprintln!("first successful operation {recovered:?} after the server was back");
    // And the load itself gets through again.
    let ok_back = tally.ok.load(Ordering::Relaxed);
    common::wait_until(ACQUIRE + SLACK, "the load succeeds again", || {
        let ok = tally.ok.load(Ordering::Relaxed);
        async move { ok >= ok_back + 500 }
    })
    .await;

    done.store(true, Ordering::Relaxed);
    let mut total = Seen::default();
    let deadline = Instant::now() + OP_BOUND + SLACK;
    while let Some(joined) =
        tokio::time::timeout_at(deadline, tasks.join_next()).await.expect("every load task ends (none hangs)")
    {
        let seen = joined.expect("a load task does not panic");
        total.ok += seen.ok;
        total.failed += seen.failed;
        total.hung += seen.hung;
        total.slowest = total.slowest.max(seen.slowest);
        for (kind, n) in seen.errors {
            *total.errors.entry(kind).or_default() += n;
        }
    }
    eprintln!(
        "{} ok, {} failed, slowest operation {:?}; errors: {:#?}",
        total.ok, total.failed, total.slowest, total.errors
    );
    assert_eq!(total.hung, 0, "operations hung past {OP_BOUND:?}");
    assert!(total.slowest <= OP_BOUND, "an operation took {:?}", total.slowest);
    assert!(total.failed > 0, "the restart went unnoticed: did the server really stop?");
    watch.finish().await;
    common::assert_settled(&pool.status());

    // Every connection the pool hands out now is live: take all of them at
    // once (dead ones from before the restart are replaced on the way).
    let mut clients = Vec::new();
    for _ in 0..POOL_SIZE {
        let client = tokio::time::timeout(OP_BOUND, pool.get())
            .await
            .expect("get() does not hang")
            .expect("a connection after the restart");
        client.query_one("SELECT 1", &[]).await.expect("a live connection after the restart");
        clients.push(client);
    }
    let status = pool.status();
    common::check_invariants(&status).unwrap();
    assert_eq!((status.size, status.in_use, status.creating, status.waiting), (POOL_SIZE, POOL_SIZE, 0, 0));
    // The server agrees: exactly the pool's connections, nothing leaked.
    let monitor = common::monitor(&server).await;
    common::wait_until(SLACK, "the server sees exactly the pool's connections", || async {
        backends(&monitor, app).await.len() == POOL_SIZE
    })
    .await;
    drop(clients);
    common::assert_settled(&pool.status());
    pool.close_and_wait(Duration::from_secs(5)).await.expect("the pool closes");
    drop(monitor);
    drop(pool);
    drop(server);
}

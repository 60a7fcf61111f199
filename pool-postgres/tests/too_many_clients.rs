//! The problem this project exists for, reproduced and cured: 1,000 tasks
//! against a server allowing 20 connections.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use pool_postgres::PgPool;
use tokio::task::JoinSet;

const TASKS: usize = 1000;

/// The error's text with its sources (tokio-postgres puts the server's message in `source()`).
fn full_text(e: &dyn std::error::Error) -> String {
    pool_postgres::ErrorChain(e).to_string()
}

/// The connects the server refused for lack of slots, from its log.
fn refused_connects(server: &pool_postgres_test_server::TestServer) -> usize {
    let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    log.lines().filter(|line| is_too_many_clients(line)).count()
}

fn is_too_many_clients(text: &str) -> bool {
    text.contains("too many clients") || text.contains("remaining connection slots")
}

/// Samples the number of server connections with `application_name` until
/// stopped; returns the peak.
fn watch_peak(
    monitor: tokio_postgres::Client,
    application_name: &'static str,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<i64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicI64::new(0));
    let handle = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let now = common::connections_of(&monitor, application_name).await;
                peak.fetch_max(now, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak.load(Ordering::Relaxed)
        })
    };
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_each_opening_a_connection_hit_too_many_clients() {
    let server = common::server_with_max_connections(20);
    let config = format!("{} application_name=naive", server.connection_string());
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let config = config.clone();
        tasks.spawn(async move {
            let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client.query_one("SELECT pg_sleep(0.02)", &[]).await.map(drop)
        });
    }
    let mut too_many = 0;
    let mut other = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done.unwrap() {
            let text = full_text(&e);
            if is_too_many_clients(&text) {
                too_many += 1;
            } else {
                other.push(text);
            }
        }
    }
    assert!(
        too_many > 0,
        "1,000 connections at once must exceed max_connections=20; other errors: {} {:?}",
        other.len(),
        other.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_each_building_their_own_pool_hit_too_many_clients() {
    let server = common::server_with_max_connections(20);
    let url = common::url(&server, "connection_limit=10&pool_timeout=10&application_name=pool_per_call");
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let url = url.clone();
        tasks.spawn(async move {
            let pool = PgPool::from_url(&url).expect("valid URL");
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client.query_one("SELECT pg_sleep(0.02)", &[]).await.map(drop).map_err(|e| e.to_string())
        });
    }
    while let Some(done) = tasks.join_next().await {
        // Each pool waits out the server's refusals (a capacity cool-down),
        // so a call may still succeed in the end: what shows the problem is
        // the server refusing connects all along.
        let _ = done.unwrap();
    }
    assert!(refused_connects(&server) > 0, "a pool per call is no pool: it must hit the server's limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tasks_through_one_pool_of_ten_all_succeed_within_ten_connections() {
    let server = common::server_with_max_connections(20);
    let pool = common::pool(&server, "connection_limit=10&pool_timeout=60&application_name=shared");
    let (stop, peak) = watch_peak(common::monitor(&server).await, "shared");
    let mut tasks = JoinSet::new();
    for i in 0..TASKS {
        let pool = pool.clone();
        tasks.spawn(async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let n: i64 = client
                .query_one("SELECT $1::int8 + 1", &[&(i as i64)])
                .await
                .map_err(|e| e.to_string())?
                .get(0);
            assert_eq!(n, i as i64 + 1);
            let status = pool.status();
            assert!(status.size <= 10 && status.idle <= status.size, "{status:?}");
            Ok::<_, String>(())
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done.unwrap() {
            failures.push(e);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let peak = peak.await.unwrap();
    assert!(failures.is_empty(), "{} of {TASKS} failed, first: {:?}", failures.len(), failures.first());
    assert!((1..=10).contains(&peak), "the server saw {peak} connections from the pool");
    let status = pool.status();
    assert_eq!((status.waiting, status.in_use, status.creating), (0, 0, 0), "{status:?}");
    pool.close_and_wait(Duration::from_secs(10)).await.unwrap();
}

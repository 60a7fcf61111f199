//! Shared by the failure-mode tests (`restart`, `half_open`, `terminated`,
//! `server_full`, `connect_errors`): starting servers, a raw connection that
//! looks at the server from the side, polling with deadlines, error text,
//! and a watcher that checks the pool's `status()` invariants all along.

#![allow(dead_code, unreachable_pub)]

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pool_postgres::test_server::{TestServer, TestServerBuilder};
use pool_postgres::{PgPool, Status};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};

/// What every wall-clock bound in these tests allows on top of the
/// configured timeout: the machine may be loaded (2 cores, other builds).
pub const SLACK: Duration = Duration::from_secs(3);

/// Starts a throwaway server (blocking the calling thread briefly).
pub fn start(builder: &TestServerBuilder) -> TestServer {
    builder.start().expect("start a throwaway PostgreSQL server")
}

/// A plain tokio-postgres connection to `server`, outside any pool.
pub async fn monitor(server: &TestServer) -> Client {
    let (client, connection) =
        tokio_postgres::connect(&server.connection_string(), NoTls).await.expect("monitor connects");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Server process ids of the client sessions with this `application_name`.
pub async fn backends(monitor: &Client, application_name: &str) -> Vec<i32> {
    monitor
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid() \
             ORDER BY pid",
            &[&application_name],
        )
        .await
        .expect("list backends")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The server process id behind a pooled connection (one round trip).
pub async fn backend_pid(client: &pool_postgres::Client) -> Result<i32, tokio_postgres::Error> {
    Ok(client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0))
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` if
/// it does not within `timeout`. Returns how long it took.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        if condition().await {
            return started.elapsed();
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An error's `Display` text (what a service logs with `{}`).
pub fn display(error: &dyn StdError) -> String {
    error.to_string()
}

/// An error's `Display` text followed by every source's, joined by " <- ".
pub fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(" <- ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The invariants `Status` documents: `idle + in_use == size`,
/// `idle <= size` and `size + creating <= max_size` (no resize here).
pub fn check_invariants(status: &Status) -> Result<(), String> {
    let ok = status.idle + status.in_use == status.size
        && status.idle <= status.size
        && status.size + status.creating <= status.max_size;
    if ok { Ok(()) } else { Err(format!("{status:?}")) }
}

/// Asserts that nothing is in flight any more: no waiter, no create, no
/// connection out, and the invariants hold.
pub fn assert_settled(status: &Status) {
    check_invariants(status).unwrap_or_else(|s| panic!("status invariants broken: {s}"));
    assert_eq!((status.waiting, status.creating, status.in_use), (0, 0, 0), "not settled: {status:?}");
}

/// Samples a pool's `status()` in the background (every millisecond) and
/// keeps the samples that break the invariants.
pub struct StatusWatch {
    stop: Arc<AtomicBool>,
    task: JoinHandle<(u64, Vec<String>)>,
}

impl StatusWatch {
    pub fn start(pool: PgPool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut samples = 0_u64;
            let mut broken = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                samples += 1;
                if let Err(s) = check_invariants(&pool.status())
                    && broken.len() < 20
                {
                    broken.push(s);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (samples, broken)
        });
        Self { stop, task }
    }

    /// Stops sampling; panics if any sample broke an invariant.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let (samples, broken) = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the status watcher stops")
            .expect("the status watcher does not panic");
        assert!(
            broken.is_empty(),
            "status invariants broken in {} of {samples} samples: {broken:#?}",
            broken.len()
        );
        samples
    }
}

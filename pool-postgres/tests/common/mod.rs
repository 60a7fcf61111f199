//! Shared by the pool-postgres integration tests:
//!
//! - throwaway servers ([`start`], [`server`], [`server_with_max_connections`])
//!   and pools over them ([`pool`], [`url`]);
//! - a raw monitoring connection that looks at the server from the side
//!   ([`monitor`], [`connections_of`], [`backends`], [`backend_pid`]) and a
//!   probe for an open transaction ([`in_transaction`]);
//! - polling with deadlines ([`wait_until`], with [`SLACK`] for loaded
//!   machines);
//! - error text ([`display`]; with its sources, `pool_core::ErrorChain`) and
//!   the WARN events logged while something runs ([`warnings_during`]);
//! - the pool's `status()` invariants, checked once or all along by a
//!   background watcher ([`watch`]: [`check_invariants`], [`assert_settled`],
//!   [`StatusWatch`]);
//! - for long runs: failures counted by kind ([`failure_kind`]), the fate
//!   of every transaction and the check of the table against it
//!   ([`ledger`]), the process's memory ([`memory`]) and a seeded
//!   generator for think times and timeouts ([`rng`]).

#![allow(dead_code, unreachable_pub, reason = "each test file uses a different part of this module")]

pub mod failure_kind;
pub mod fleet;
pub mod ledger;
pub mod memory;
pub mod rng;
pub mod watch;
pub mod workload;

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use pool_postgres::PgPool;
use pool_postgres_test_server::{TestServer, TestServerBuilder};
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls};

#[allow(unused_imports, reason = "unused in the test files that never look at `status()`")]
pub use watch::{StatusWatch, assert_settled, check_invariants};

/// What every wall-clock bound in these tests allows on top of the
/// configured timeout: the machine may be loaded (2 cores, other builds).
pub const SLACK: Duration = Duration::from_secs(3);

/// Starts a throwaway server (blocking the calling thread briefly).
pub fn start(builder: &TestServerBuilder) -> TestServer {
    builder.start().expect("start a throwaway PostgreSQL server")
}

/// A fresh server with default settings.
pub fn server() -> TestServer {
    start(&TestServer::builder())
}

/// A fresh server allowing `max` connections (none reserved for superusers,
/// so `max` is exactly what clients get).
pub fn server_with_max_connections(max: u32) -> TestServer {
    start(&TestServer::builder().max_connections(max).setting("superuser_reserved_connections", "0"))
}

/// A pool over `server` with pool parameters in the URL's query string.
pub fn pool(server: &TestServer, params: &str) -> PgPool {
    PgPool::from_url(&url(server, params)).expect("a valid pool URL")
}

/// The server's URL with `params` as its query string.
pub fn url(server: &TestServer, params: &str) -> String {
    if params.is_empty() { server.url() } else { format!("{}?{params}", server.url()) }
}

/// A plain tokio-postgres connection, outside any pool, for looking at the
/// server from the side.
pub async fn monitor(server: &TestServer) -> Client {
    let (client, connection) =
        tokio_postgres::connect(&server.connection_string(), NoTls).await.expect("monitor connects");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Client connections on the server with this `application_name`.
pub async fn connections_of(monitor: &Client, application_name: &str) -> i64 {
    monitor
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", &[&application_name])
        .await
        .expect("count connections")
        .get(0)
}

/// Statements of the sessions with this `application_name` the server is
/// running now.
pub async fn running_statements(monitor: &Client, application_name: &str) -> i64 {
    monitor
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'",
            &[&application_name],
        )
        .await
        .expect("count running statements")
        .get(0)
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
pub async fn backend_pid(client: &pool_postgres::Client) -> Result<i32, pool_postgres::Error> {
    Ok(client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0))
}

/// Whether the session behind `client` is inside a transaction block.
pub async fn in_transaction(client: &pool_postgres::Client) -> bool {
    // now() is the transaction's start, statement_timestamp() this
    // statement's: with the simple protocol they differ only inside a block
    // begun by an earlier statement. The probe itself leaves nothing behind
    // (no statement prepared, nothing for the pool to reset).
    match client.simple_query("SELECT now() <> statement_timestamp()").await {
        Ok(messages) => messages
            .iter()
            .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(row) if row.get(0) == Some("t"))),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION) => true,
        Err(e) => panic!("unexpected error probing the transaction state: {e}"),
    }
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

/// Waits for every task in `tasks`, panicking with the first that
/// panicked; their outputs in the order they finished.
pub async fn join_all<T: 'static>(mut tasks: tokio::task::JoinSet<T>) -> Vec<T> {
    let mut outputs = Vec::with_capacity(tasks.len());
    while let Some(done) = tasks.join_next().await {
        outputs.push(done.expect("a task panicked"));
    }
    outputs
}

/// An error's `Display` text (what a service logs with `{}`).
pub fn display(error: &dyn StdError) -> String {
    error.to_string()
}

/// Runs `f` and returns the messages of the WARN events it logged through
/// `tracing` on this thread.
pub fn warnings_during(f: impl FnOnce()) -> Vec<String> {
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    #[derive(Default)]
    struct Warnings(Arc<Mutex<Vec<String>>>);
    struct Message(String);
    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            use std::fmt::Write as _;
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    impl Subscriber for Warnings {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            *metadata.level() <= Level::WARN
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().push(message.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    tracing::subscriber::with_default(Warnings(Arc::clone(&seen)), f);
    seen.lock().unwrap().clone()
}

/// How often the server has logged "there is no transaction in progress":
/// one `ROLLBACK` too many each (the pool's hygiene must never cause one).
pub fn stray_rollbacks(server: &TestServer) -> usize {
    std::fs::read_to_string(server.log_path())
        .unwrap_or_default()
        .matches("there is no transaction in progress")
        .count()
}

/// Waits until every idle connection of the pool has noticed, on its own
/// socket, that its session ended (what the default `Fast` recycling relies
/// on when the connection was used less than `verify_idle_after` ago).
pub async fn idle_connections_notice(pool: &PgPool) {
    wait_until(SLACK, "the idle connections notice their sessions ended", || async {
        let mut all_closed = true;
        pool.retain(|conn, _| {
            all_closed &= conn.is_closed();
            true
        });
        all_closed
    })
    .await;
}

//! Shared by the pool-postgres integration tests: throwaway servers, pools
//! over them, and a raw monitoring connection.

// Each test file uses a different part of this module.
#![allow(dead_code, unreachable_pub)]

use pool_postgres::PgPool;
use pool_postgres::test_server::TestServer;
use tokio_postgres::{Client, NoTls};

/// A fresh server with default settings.
pub fn server() -> TestServer {
    TestServer::start().expect("start a throwaway PostgreSQL server")
}

/// A fresh server allowing `max` connections (none reserved for superusers,
/// so `max` is exactly what clients get).
pub fn server_with_max_connections(max: u32) -> TestServer {
    TestServer::builder()
        .max_connections(max)
        .setting("superuser_reserved_connections", "0")
        .start()
        .expect("start a throwaway PostgreSQL server")
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

/// Whether the session behind `client` is inside a transaction block:
/// `SAVEPOINT` fails with `no_active_sql_transaction` outside one.
pub async fn in_transaction(client: &pool_postgres::Client) -> bool {
    match client.batch_execute("SAVEPOINT probe; RELEASE SAVEPOINT probe").await {
        Ok(()) => true,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::NO_ACTIVE_SQL_TRANSACTION) => false,
        Err(e) => panic!("unexpected error probing the transaction state: {e}"),
    }
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

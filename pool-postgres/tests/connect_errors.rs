//! Failure mode: the pool cannot connect at all. A wrong password, a server
//! that accepts TCP but never answers, a port nothing listens on, and bad
//! configuration each fail within the configured time with an error that
//! says what is wrong (and never shows the password).

mod common;

use std::time::Duration;

use common::{SLACK, display};
use pool_postgres::pool_core::{ErrorChain, TimeoutPhase};
use pool_postgres::{PgPool, PoolError};
use pool_postgres_test_server::TestServer;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;

/// Runs one `get` with an outer bound of `acquire + SLACK`, returning its
/// error and how long it took.
async fn failing_get(pool: &PgPool, acquire: Duration) -> (PoolError, Duration) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(acquire + SLACK, pool.get())
        .await
        .unwrap_or_else(|_| panic!("get() hung for more than {:?}", acquire + SLACK));
    let took = started.elapsed();
    match outcome {
        Ok(_) => panic!("get() succeeded where it cannot"),
        Err(e) => (e, took),
    }
}

#[tokio::test]
async fn a_wrong_password_fails_fast_naming_the_cause_and_not_the_password() {
    const SECRET: &str = "Wr0ng-Secret-4711";
    let server = common::start(&TestServer::builder().password("postgres", "right-pw-0815"));
    let url = format!(
        "postgres://postgres:{SECRET}@127.0.0.1:{}/postgres?connection_limit=2&pool_timeout=5",
        server.port()
    );
    let pool = PgPool::from_url(&url).expect("a valid URL");
    for attempt in 0..3 {
        let (error, took) = failing_get(&pool, Duration::from_secs(5)).await;
        assert!(took <= Duration::from_secs(5) + SLACK, "attempt {attempt} took {took:?}");
        let code = error.backend_error().and_then(tokio_postgres::Error::code);
        assert_eq!(code, Some(&SqlState::INVALID_PASSWORD), "attempt {attempt}: {error:?}");
        let (text, full) = (display(&error), ErrorChain(&error).to_string());
        assert!(!full.contains(SECRET) && !format!("{error:?}").contains(SECRET), "password leaked: {full}");
        assert!(full.contains("password authentication failed"), "not even in the source chain: {full}");
        assert!(
            text.contains("password authentication failed"),
            "Display of the error does not name the cause: {text:?} (full source chain: {full:?})"
        );
    }
    assert!(!format!("{pool:?}").contains(SECRET), "the pool's Debug shows the password");
    common::assert_settled(&pool.status());
    assert_eq!(pool.status().size, 0);
    drop(pool);
    drop(server);
}

/// A listener that accepts connections and never says a word: the closest
/// thing to an unreachable host available here. Sockets are kept open until
/// the returned task is aborted.
async fn silent_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_after_connect_timeout() {
    let (port, listener) = silent_listener().await;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?connect_timeout=1&pool_timeout=4");
    let pool = PgPool::from_url(&url).expect("a valid URL");
    let (error, took) = failing_get(&pool, Duration::from_secs(4)).await;
    let text = display(&error);
    assert!(error.is_timeout(), "not a timeout: {error:?}");
    assert!(matches!(error, PoolError::Timeout { phase: TimeoutPhase::Create, .. }), "{error:?}");
    assert!(text.contains("timed out"), "{text}");
    assert!(took >= Duration::from_millis(900), "gave up before connect_timeout: {took:?}");
    assert!(took <= Duration::from_secs(1) + SLACK, "connect_timeout=1 not honoured: took {took:?}");
    common::assert_settled(&pool.status());
    assert_eq!(pool.status().size, 0);
    drop(pool);
    listener.abort();
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_after_pool_timeout_without_connect_timeout() {
    let (port, listener) = silent_listener().await;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?pool_timeout=2");
    let pool = PgPool::from_url(&url).expect("a valid URL");
    let (error, took) = failing_get(&pool, Duration::from_secs(2)).await;
    assert!(matches!(error, PoolError::Timeout { phase: TimeoutPhase::Create, .. }), "{error:?}");
    assert!(display(&error).contains("timed out"), "{error}");
    assert!(took >= Duration::from_millis(1900), "gave up before pool_timeout: {took:?}");
    assert!(took <= Duration::from_secs(2) + SLACK, "pool_timeout=2 not honoured: took {took:?}");
    common::assert_settled(&pool.status());
    assert_eq!(pool.status().size, 0);
    drop(pool);
    listener.abort();
}

#[tokio::test]
async fn a_port_nothing_listens_on_is_refused_at_once() {
    // A port the kernel just handed out and that is closed again.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("local addr").port()
    };
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?pool_timeout=5");
    let pool = PgPool::from_url(&url).expect("a valid URL");
    let (error, took) = failing_get(&pool, Duration::from_secs(5)).await;
    let (text, full) = (display(&error), ErrorChain(&error).to_string());
    assert!(matches!(error, PoolError::Backend(_)), "{error:?}");
    assert!(took <= SLACK, "a refused connection took {took:?}");
    assert!(full.to_lowercase().contains("connection refused"), "not even in the source chain: {full}");
    assert!(
        text.to_lowercase().contains("refused"),
        "Display of the error does not say the connection was refused: {text:?} (full source chain: {full:?})"
    );
    common::assert_settled(&pool.status());
    assert_eq!(pool.status().size, 0);
}

/// `from_url` must refuse `url` with a `ConfigError` naming `parameter`
/// (and showing neither the password nor the rest of the URL).
fn refused(url: &str, parameter: &str) -> String {
    let started = std::time::Instant::now();
    let error = PgPool::from_url(url).expect_err(url);
    assert!(started.elapsed() < SLACK, "building a pool from {url:?} is slow");
    let text = error.to_string();
    assert!(!text.contains("s3cret"), "the password leaked: {text}");
    assert_eq!(error.parameter(), parameter, "{url}: {text}");
    assert!(text.contains(parameter), "{url}: the message does not name {parameter}: {text}");
    text
}

#[test]
fn malformed_urls_are_refused_naming_the_url() {
    let text = refused("mysql://root:s3cret@db/app", "url");
    assert!(text.contains("postgres://"), "{text}");
    refused("", "url");
    let text = refused("postgres://u:s3cret@db:notaport/app", "port");
    assert!(text.contains("notaport"), "names the bad port: {text}");
}

#[test]
fn bad_pool_parameters_are_refused_naming_the_parameter_and_the_value() {
    for (query, parameter, value) in [
        ("connection_limit=0", "connection_limit", "0"),
        ("connection_limit=many", "connection_limit", "many"),
        ("pool_timeout=abc", "pool_timeout", "abc"),
        ("pool_timeout=0", "pool_timeout", "0"),
        ("socket_timeout=-1", "socket_timeout", "-1"),
        ("recycle_timeout=5parsecs", "recycle_timeout", "5parsecs"),
        ("verify_idle_after=soon", "verify_idle_after", "soon"),
        ("min_idle=20&connection_limit=5", "min_idle", "20"),
    ] {
        let text = refused(&format!("postgres://u:s3cret@db/app?{query}"), parameter);
        assert!(text.contains(value), "{query}: the message does not show the value: {text}");
    }
    refused("postgres://u:s3cret@db/app?conection_limit=5", "conection_limit");
}

#[test]
fn a_bad_connect_timeout_is_refused_naming_connect_timeout() {
    // connect_timeout is a pool parameter too (it sets create_timeout), so
    // a bad value must be named like the others, not as "invalid connection
    // string" for the whole URL.
    let error =
        PgPool::from_url("postgres://u:s3cret@db/app?connect_timeout=soon").expect_err("soon is no duration");
    let text = error.to_string();
    assert!(!text.contains("s3cret"), "the password leaked: {text}");
    assert!(text.contains("connect_timeout"), "the message does not name connect_timeout: {text}");
}

#[tokio::test]
async fn a_fractional_connect_timeout_is_accepted_and_honoured() {
    // PoolSettings documents connect_timeout as a URL parameter taking a
    // duration like the others ("1.5", "500ms"); it must not be refused
    // because tokio-postgres, which also reads it, wants whole seconds.
    let (port, listener) = silent_listener().await;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?connect_timeout=1.5&pool_timeout=4");
    let pool = PgPool::from_url(&url).unwrap_or_else(|e| panic!("connect_timeout=1.5 refused: {e}"));
    let (error, took) = failing_get(&pool, Duration::from_secs(4)).await;
    assert!(matches!(error, PoolError::Timeout { phase: TimeoutPhase::Create, .. }), "{error:?}");
    assert!(took >= Duration::from_millis(1400), "gave up before connect_timeout: {took:?}");
    assert!(took <= Duration::from_millis(1500) + SLACK, "connect_timeout=1.5 not honoured: took {took:?}");
    drop(pool);
    listener.abort();
}

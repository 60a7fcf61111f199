//! Configuration from URLs, config files and the builder, against a real
//! server: what each setting does, and clear errors for bad input.

mod common;

use std::time::{Duration, Instant};

use pool_postgres::{ConfigError, ErrorChain, PgConfig, PgPool};
use pool_postgres_test_server::TestServer;
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn url_pool_parameters_configure_the_pool_and_are_not_sent_to_the_server() {
    let server = common::server();
    let pool =
        common::pool(&server, "connection_limit=3&pool_timeout=0.5&min_idle=1&application_name=cfgtest");
    let status = pool.status();
    assert_eq!((status.max_size, status.min_idle), (3, 1));
    let held = [pool.get().await.unwrap(), pool.get().await.unwrap(), pool.get().await.unwrap()];
    let started = Instant::now();
    let err = pool.get().await.expect_err("a fourth connection must wait and time out");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    let name: String = held[0].query_one("SHOW application_name", &[]).await.unwrap().get(0);
    assert_eq!(name, "cfgtest");
}

#[tokio::test]
async fn the_default_application_name_is_the_program_name() {
    let server = common::server();
    let pool = common::pool(&server, "");
    let client = pool.get().await.unwrap();
    let name: String = client.query_one("SHOW application_name", &[]).await.unwrap().get(0);
    // The test binary is called config-<hash>.
    assert!(name.starts_with("config"), "{name}");
}

#[tokio::test]
async fn statement_timeout_applies_to_every_session() {
    let server = common::server();
    let pool = common::pool(&server, "statement_timeout=200ms");
    let client = pool.get().await.unwrap();
    let err = client.query_one("SELECT pg_sleep(5)", &[]).await.expect_err("cancelled by statement_timeout");
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::QUERY_CANCELED), "{err}");
}

#[test]
fn bad_urls_and_parameters_are_named_in_the_error() {
    for (url, parameter, needle) in [
        ("postgres://u:hunter2@h/db?connection_limit=0", "connection_limit", "at least 1"),
        ("postgres://u:hunter2@h/db?pool_timeout=abc", "pool_timeout", "duration"),
        ("postgres://u:hunter2@h/db?pool_timeout=-3", "pool_timeout", "negative"),
        ("postgres://u:hunter2@h/db?idle_timeout=5fortnights", "idle_timeout", "unit"),
        ("postgres://u:hunter2@h/db?connection_limt=5", "connection_limt", "not a parameter"),
        ("postgres://u:hunter2@h/db?min_idle=20&connection_limit=10", "min_idle", "max_size"),
        ("http://u:hunter2@h/db", "url", "postgres://"),
        ("postgres://u:hunter2@h:notaport/db", "port", "notaport"),
        ("", "url", "postgres://"),
    ] {
        let err: ConfigError = PgPool::from_url(url).expect_err(url);
        let text = err.to_string();
        assert_eq!(err.parameter(), parameter, "{text}");
        assert!(text.contains(needle), "{url}: {text}");
        assert!(!text.contains("hunter2"), "the password leaked into: {text}");
        assert!(!format!("{err:?}").contains("hunter2"), "the password leaked into Debug");
    }
}

#[test]
fn the_password_never_appears_in_debug_output() {
    let pool = PgPool::from_url("postgres://app:hunter2@127.0.0.1:1/app").unwrap();
    let debug = format!("{pool:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("app"), "{debug}");
    let config: PgConfig = serde_json::from_str(r#"{"url": "postgres://app:hunter2@h/app"}"#).unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_config_file_section_builds_the_pool() {
    let server = common::server();
    let json = format!(
        r#"{{"url": "{}?connection_limit=2", "pool": {{"max_size": 4, "acquire_timeout": "2s", "idle_timeout": 0, "name": "from-file"}}}}"#,
        server.url()
    );
    let config: PgConfig = serde_json::from_str(&json).unwrap();
    let pool = PgPool::from_config(&config).unwrap();
    assert_eq!(pool.status().max_size, 4, "settings in the file win over the URL's");
    assert_eq!(pool.name(), "from-file");
    let client = pool.get().await.unwrap();
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
}

#[test]
fn a_config_file_with_an_unknown_or_bad_field_is_refused() {
    let unknown = serde_json::from_str::<PgConfig>(r#"{"url": "postgres://h/db", "pool": {"max_sise": 4}}"#);
    assert!(unknown.unwrap_err().to_string().contains("max_sise"));
    let bad = serde_json::from_str::<PgConfig>(
        r#"{"url": "postgres://h/db", "pool": {"acquire_timeout": "soon"}}"#,
    );
    assert!(bad.unwrap_err().to_string().contains("soon"));
}

#[tokio::test]
async fn a_second_pool_for_the_same_server_database_and_user_logs_a_warning_once() {
    let server = common::server();
    let mut pools = Vec::new();
    let warnings = common::warnings_during(|| {
        for _ in 0..3 {
            pools.push(common::pool(&server, ""));
        }
    });
    let duplicates: Vec<_> = warnings.iter().filter(|w| w.contains("more than one pool")).collect();
    assert_eq!(duplicates.len(), 1, "{warnings:?}");
    assert!(duplicates[0].contains(&server.port().to_string()), "names the server: {}", duplicates[0]);
    // Both still work: the warning is advice, not a refusal.
    for pool in &pools {
        assert_eq!(pool.get().await.unwrap().query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    }
}

/// A password holding every character that means something in a URL, and
/// others; each piece is marked so a leak of any part of it shows.
const PASSWORD: &str = "zq7?xw8@yv9/ut6#sr5%qp4:on3 ml2€kj1";
const PIECES: [&str; 9] = ["zq7", "xw8", "yv9", "ut6", "sr5", "qp4", "on3", "ml2", "kj1"];

fn assert_no_piece_of_the_password(text: &str) {
    for piece in PIECES {
        assert!(!text.contains(piece), "a piece of the password ({piece}) shows in: {text}");
    }
}

/// A server that requires `PASSWORD` from `postgres`.
fn password_server() -> TestServer {
    common::start(&TestServer::builder().password("postgres", PASSWORD))
}

/// `password` pasted into a URL as it is, but for `%` (which starts an escape).
fn pasted(server: &TestServer, password: &str) -> String {
    format!(
        "postgres://postgres:{}@127.0.0.1:{}/postgres?connection_limit=2&pool_timeout=5",
        password.replace('%', "%25"),
        server.port()
    )
}

/// Issue #14 (6): a `?` in a password used to end the URL's base there,
/// an `@` the credentials, so the password that reached the server was cut.
#[tokio::test]
async fn a_password_pasted_unencoded_with_url_delimiters_logs_in() {
    let server = password_server();
    let pool = PgPool::from_url(&pasted(&server, PASSWORD)).unwrap();
    assert_eq!(pool.name(), "postgres", "the database, and nothing of the password");
    assert_no_piece_of_the_password(&format!("{pool:?}"));
    let client = pool.get().await.unwrap();
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
}

/// Issue #14 (6): the rest of such a password used to become part of the
/// host or database name, and so of the pool's name (its logs and metric
/// labels), its errors and its `Debug`.
#[test]
fn no_piece_of_a_password_shows_in_errors_logs_debug_or_the_pool_name() {
    let server = password_server();
    let wrong = format!("{PASSWORD}-but-wrong");
    let mut seen = Vec::new();
    let logs = common::warnings_during(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let pool = PgPool::from_url(&pasted(&server, &wrong)).unwrap();
            seen.push(pool.name().to_owned());
            seen.push(format!("{pool:?}"));
            let error = pool.get().await.unwrap_err();
            let code = error.backend_error().and_then(tokio_postgres::Error::code);
            assert_eq!(code, Some(&SqlState::INVALID_PASSWORD), "{error:?}");
            seen.push(ErrorChain(&error).to_string());
            seen.push(format!("{error:?}"));
        });
    });
    assert!(!logs.is_empty(), "the failed connect is logged");
    for text in seen.iter().chain(&logs) {
        assert_no_piece_of_the_password(text);
    }
    assert_eq!(seen[0], "postgres");
}

/// Issue #14 (6): each of these used to be accepted and fail every `get`
/// (or, for the %-escape, send a password the user did not write).
#[test]
fn what_can_never_work_is_refused_at_from_url_naming_the_value() {
    for (url, parameter, value, rule) in [
        ("postgres://u:zq7@h:0/db", "port", "0", "1 to 65535"),
        ("postgres://u:zq7@h:99999/db", "port", "99999", "1 to 65535"),
        ("postgres://u:zq7@h/db?port=0", "port", "0", "1 to 65535"),
        ("postgres://u:zq7@/db?host=a,b&port=1,2,3", "port", "3 ports for 2 hosts", "one port per host"),
        ("postgres://u:zq7@h,i/db?port=1,2", "port", "4 ports for 2 hosts", "one port per host"),
        (
            "postgres://u:zq7@h/db?hostaddr=127.0.0.1,127.0.0.2",
            "hostaddr",
            "2 addresses for 1 host names",
            "one",
        ),
        ("postgres://u:zq7@h/db?statement_timeout=600h", "statement_timeout", "600h", "2147483647 ms"),
        ("postgres://u:zq7@h/db?application_name=a%00b", "application_name", "a\0b", "NUL"),
        ("postgres://u%00x:zq7@h/db", "user", "u\0x", "NUL"),
        ("postgres://u:zq7@h/d%00b", "dbname", "d\0b", "NUL"),
        ("postgres://u:zq7@h/db?options=-c%00x", "options", "-c\0x", "NUL"),
        ("postgres://u:zq7%00@h/db", "password", "(hidden)", "NUL"),
        ("postgres://u:zq7%zz@h/db", "password", "(hidden)", "%25"),
    ] {
        let err = PgPool::from_url(url).expect_err(url);
        let text = err.to_string();
        assert_eq!((err.parameter(), err.value()), (parameter, value), "{url}: {text}");
        assert!(text.contains(rule), "{url}: {text}");
        assert!(!text.contains("zq7") && !format!("{err:?}").contains("zq7"), "{url}: {text}");
    }
}

/// The builder and config files share the settings table and the checks.
#[test]
fn the_builder_and_config_files_refuse_what_can_never_work_too() {
    let with = |f: fn(&mut tokio_postgres::Config)| {
        let mut config = tokio_postgres::Config::new();
        config.host("h");
        f(&mut config);
        PgPool::builder(config)
    };
    for (builder, parameter) in [
        (
            with(|c| {
                c.port(0);
            }),
            "port",
        ),
        (
            with(|c| {
                c.application_name("a\0b");
            }),
            "application_name",
        ),
        (
            with(|c| {
                c.password("zq7\0");
            }),
            "password",
        ),
        (PgPool::builder(tokio_postgres::Config::new()), "host"),
        (with(|_| ()).statement_timeout(Duration::from_secs(25 * 24 * 3600)), "statement_timeout"),
        (
            with(|_| ()).postgres_config(|c| {
                c.port(0);
            }),
            "port",
        ),
    ] {
        let err = builder.build().expect_err(parameter);
        assert_eq!(err.parameter(), parameter, "{err}");
        assert!(!err.to_string().contains("zq7"), "{err}");
    }
    let file = serde_json::from_str::<PgConfig>(
        r#"{"url": "postgres://h/db", "pool": {"statement_timeout": "600h"}}"#,
    );
    let err = file.expect_err("refused as the file is read").to_string();
    assert!(err.contains("statement_timeout") && err.contains("2147483647"), "{err}");
    assert!(PgPool::from_url("postgres://h/db?statement_timeout=596h").is_ok(), "24.8 days is the most");
}

/// Issue #14 (6): tokio-postgres reads `host=a,b` as one host named "a,b",
/// so every `get` used to fail with "invalid number of ports"; libpq reads
/// it as a list, and so does the pool now (a pool over each host, the one
/// that does not answer skipped).
#[tokio::test]
async fn a_host_list_in_the_query_string_tries_each_host() {
    let server = common::server();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!(
        "postgres://{}@/postgres?host=127.0.0.1,127.0.0.1&port={closed},{}&connection_limit=2",
        server.user(),
        server.port()
    );
    let pool = PgPool::from_url(&url).unwrap();
    let client = pool.get().await.unwrap();
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
}

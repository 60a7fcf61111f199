//! Configuration from URLs, config files and the builder, against a real
//! server: what each setting does, and clear errors for bad input.

mod common;

use std::time::{Duration, Instant};

use pool_postgres::{ConfigError, PgConfig, PgPool};

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
        ("postgres://u:hunter2@h:notaport/db", "url", "port"),
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

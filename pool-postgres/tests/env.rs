//! `PgPool::from_env` and `shared_pool` read `DATABASE_URL`. The variable
//! is set for a child process running the `child_*` tests below (setting it
//! in this multi-threaded test process would race), so those are ignored
//! unless run that way.

mod common;

use std::process::Command;

/// Runs one `child_*` test of this binary in a child process with `DATABASE_URL` set.
fn run_child(test: &str, database_url: Option<&str>) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"]);
    match database_url {
        Some(url) => command.env("DATABASE_URL", url),
        None => command.env_remove("DATABASE_URL"),
    };
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{test} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("1 passed"), "{test} did not run:\n{stdout}");
}

#[test]
fn from_env_and_the_shared_pool_read_database_url() {
    let server = common::server();
    run_child(
        "child_shared_pool_is_one_pool_from_database_url",
        Some(&common::url(&server, "connection_limit=3")),
    );
}

#[test]
fn without_database_url_the_error_says_what_to_set() {
    run_child("child_missing_database_url_is_a_clear_error", None);
}

#[tokio::test]
#[ignore = "runs only in a child process started by from_env_and_the_shared_pool_read_database_url"]
async fn child_shared_pool_is_one_pool_from_database_url() {
    let own = pool_postgres::PgPool::from_env().unwrap();
    assert_eq!(own.status().max_size, 3);
    let shared = pool_postgres::shared_pool().unwrap();
    assert!(std::ptr::eq(shared, pool_postgres::shared_pool().unwrap()), "the same pool on every call");
    assert_eq!(shared.status().max_size, 3);
    let client = shared.get().await.unwrap();
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    drop(client);
    shared.close_and_wait(std::time::Duration::from_secs(5)).await.unwrap();
}

#[test]
#[ignore = "runs only in a child process started by without_database_url_the_error_says_what_to_set"]
fn child_missing_database_url_is_a_clear_error() {
    let err = pool_postgres::PgPool::from_env().unwrap_err();
    assert_eq!(err.parameter(), "DATABASE_URL");
    assert!(err.to_string().contains("postgres://"), "{err}");
    assert!(pool_postgres::shared_pool().is_err());
}

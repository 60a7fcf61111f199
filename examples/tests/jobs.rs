//! The script and custom_backend examples, run for real.

mod common;

use std::time::Duration;

use pool_postgres_test_server::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_records_its_runs_and_closes_its_connections() {
    let server = TestServer::start().expect("start a throwaway server");
    let url = format!("{}?application_name=script_under_test", server.url());
    for run in 1..=2 {
        let mut command = common::example("script");
        command.env("DATABASE_URL", &url);
        let (status, stdout, stderr) =
            tokio::task::spawn_blocking(move || common::run(command, Duration::from_secs(30))).await.unwrap();
        assert!(status.success(), "run {run}: {status}\n{stdout}\n{stderr}");
        assert!(stdout.contains(&format!("{run} run(s) so far")), "run {run}: {stdout}");
    }
    let monitor = common::monitor(&server.connection_string()).await;
    common::wait_for_connections(&monitor, "script_under_test", None, 0, Duration::from_secs(5)).await;
}

#[test]
fn the_script_fails_clearly_without_a_database() {
    let cases = [
        (Some("postgres://app:hunter2@127.0.0.1:1/app"), "Connection refused"),
        (Some("not a url"), "postgres://"),
        (None, "DATABASE_URL"),
    ];
    for (url, expected) in cases {
        let mut command = common::example("script");
        if let Some(url) = url {
            command.env("DATABASE_URL", url);
        }
        let (status, stdout, stderr) = common::run(command, Duration::from_secs(30));
        assert_eq!(status.code(), Some(1), "{url:?}: {stdout}\n{stderr}");
        assert!(stderr.starts_with("script: ") && stderr.contains(expected), "{url:?}: {stderr}");
        assert!(!stderr.contains("hunter2") && !stderr.contains("panicked"), "{url:?}: {stderr}");
    }
}

#[test]
fn the_custom_backend_serves_every_request_within_its_bound() {
    let (status, stdout, stderr) = common::run(common::example("custom_backend"), Duration::from_secs(30));
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(stdout.contains("every request was answered"), "{stdout}");
    let peak: usize = stdout
        .split("peak connections in use: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no peak in {stdout}"));
    assert!((1..=4).contains(&peak), "{stdout}");
    // The server hangs up every 25 requests: the manager noticed, and replaced them.
    assert!(stdout.contains("replaced:"), "{stdout}");
    assert!(stdout.contains("closed: true"), "the pool was not closed: {stdout}");
}

//! The quickstart example, run for real: the naive strategies hit "too many
//! clients", the shared pool does not and stays within its size.

mod common;

use std::time::Duration;

use pool_postgres_test_server::TestServer;

const TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn on_its_own_throwaway_server_only_the_shared_pool_never_fails() {
    let mut command = common::example("quickstart");
    command.args(["--json", "--tasks", "200"]);
    let (status, stdout, stderr) = common::run(command, TIMEOUT);
    assert!(status.success(), "quickstart failed ({status}):\n{stdout}\n{stderr}");
    assert!(stderr.contains("stopped the throwaway server"), "{stderr}");

    let results: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}"));
    let strategies = results.as_object().expect("an object keyed by strategy");
    assert_eq!(
        strategies.keys().map(String::as_str).collect::<Vec<_>>(),
        ["connection_per_call", "pool_per_call", "shared_pool"],
        "{results}"
    );
    for (name, r) in strategies {
        for field in
            ["ok", "errors", "too_many_clients", "peak_server_connections", "ops_per_sec", "p50_ms", "p99_ms"]
        {
            assert!(r.get(field).is_some(), "{name} lacks {field}: {results}");
        }
        let (ok, errors) = (r["ok"].as_u64().unwrap(), r["errors"].as_u64().unwrap());
        assert_eq!(ok + errors, 200, "{name}: every task is counted once: {results}");
        assert!(r["peak_server_connections"].as_i64().unwrap() <= 20, "{name}: {results}");
    }
    let naive_refused = ["connection_per_call", "pool_per_call"]
        .iter()
        .map(|s| results[s]["too_many_clients"].as_u64().unwrap());
    assert!(
        naive_refused.max().unwrap() > 0,
        "200 connections at once must exceed max_connections=20: {results}"
    );

    let shared = &results["shared_pool"];
    assert_eq!(shared["errors"], 0, "{results}");
    assert_eq!(shared["ok"], 200, "{results}");
    let peak = shared["peak_server_connections"].as_i64().unwrap();
    assert!((1..=10).contains(&peak), "the shared pool of 10 held {peak} connections: {results}");
    assert!(shared["ops_per_sec"].as_f64().unwrap() > 0.0, "{results}");
    assert!(shared["p50_ms"].as_f64().unwrap() <= shared["p99_ms"].as_f64().unwrap(), "{results}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_database_url_it_prints_a_table_and_leaves_no_connection() {
    let server = TestServer::builder().max_connections(20).start().expect("start a throwaway server");
    let mut command = common::example("quickstart");
    command.env("DATABASE_URL", server.url()).args(["--tasks", "60", "--pool-size", "4"]);
    let (status, stdout, stderr) =
        tokio::task::spawn_blocking(move || common::run(command, TIMEOUT)).await.unwrap();
    assert!(status.success(), "quickstart failed ({status}):\n{stdout}\n{stderr}");
    assert!(!stderr.contains("throwaway"), "DATABASE_URL given, yet it started a server: {stderr}");
    for expected in [
        "strategy",
        "too many clients",
        "peak conns",
        "p99 ms",
        "connection_per_call",
        "pool_per_call",
        "shared_pool",
        "max_connections=20",
        "latency is per task",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    let shared = stdout.lines().find(|l| l.starts_with("shared_pool")).expect("a shared_pool row");
    let cells: Vec<&str> = shared.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["60", "0", "0"], "completed, failed, too many clients: {shared}");
    let peak: i64 = cells[4].parse().unwrap();
    assert!(peak <= 4, "a pool of 4 held {peak}: {shared}");

    // A process's connections can outlive it by a moment, no more.
    let monitor = common::monitor(&server.connection_string()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left: i64 = monitor
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'quickstart%'", &[])
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "quickstart left {left} connection(s) behind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    for args in [&["--tasks", "abc"][..], &["--tasks", "0"], &["--seconds", "-1"], &["--frobnicate"]] {
        let mut command = common::example("quickstart");
        command.args(args);
        let (status, stdout, stderr) = common::run(command, Duration::from_secs(10));
        assert_eq!(status.code(), Some(2), "{args:?}: {stdout}\n{stderr}");
        assert!(stderr.contains("error:") && stderr.contains("--help"), "{args:?}: {stderr}");
        assert!(!stderr.contains("throwaway"), "{args:?}: started a server before checking its arguments");
    }
}

#[test]
fn ctrl_c_stops_its_server() {
    let mut command = common::example("quickstart");
    command.args(["--seconds", "60", "--tasks", "20"]);
    let mut running = common::Running::spawn(command);
    let stderr = running.wait_for_stderr("throwaway server listening on 127.0.0.1:", Duration::from_secs(30));
    let port: u16 = stderr
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {stderr:?}"));
    std::thread::sleep(Duration::from_millis(1500)); // well into the first strategy
    running.signal("INT");
    let status = running.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(130), "{}\n{}", running.stdout(), running.stderr());
    assert!(running.stderr().contains("stopped the throwaway server"), "{}", running.stderr());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the throwaway server on port {port} still accepts connections"
    );
}

//! The service example, run for real: every route, pool errors as 503s,
//! and a graceful shutdown under load that leaves no connection behind.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Running, http_get};
use pool_postgres_test_server::TestServer;

/// Starts the service on a free port; returns it and its address.
fn start_service(database_url: &str) -> (Running, SocketAddr) {
    let mut command = common::example("service");
    command.env("DATABASE_URL", database_url).env("LISTEN_ADDR", "127.0.0.1:0");
    let mut running = Running::spawn(command);
    let log = running.wait_for_stderr("listening on http://", Duration::from_secs(30));
    let addr = log
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in the log:\n{log}"));
    (running, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_every_route_and_shuts_down_gracefully_under_load() {
    let server = TestServer::start().expect("start a throwaway server");
    let app = "service_under_test";
    let url = format!("{}?connection_limit=5&pool_timeout=5&application_name={app}", server.url());
    let (mut service, addr) = start_service(&url);

    let health = http_get(addr, "/health").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert!(health.headers.contains("content-type: application/json"), "{health:?}");
    let body = health.json();
    assert_eq!(body["status"], "ok", "{body}");
    for field in ["total", "idle", "active", "waiting", "max", "utilisation_percent"] {
        assert!(body["pool"][field].is_number(), "no {field}: {body}");
    }
    assert_eq!(body["pool"]["max"], 5, "{body}");

    let time = http_get(addr, "/api/time").await;
    assert_eq!(time.status, 200, "{time:?}");
    assert!(time.json()["now"].as_str().is_some_and(|now| now.starts_with("20")), "{time:?}");

    let slept = http_get(addr, "/api/sleep?ms=50").await;
    assert_eq!((slept.status, slept.json()["slept_ms"].as_u64()), (200, Some(50)), "{slept:?}");

    for bad in ["/api/sleep?ms=abc", "/api/sleep?ms=600001", "/api/sleep?ms=-1", "/api/sleep"] {
        let response = http_get(addr, bad).await;
        assert_eq!(response.status, 400, "{bad}: {response:?}");
        assert!(response.json()["error"].as_str().is_some_and(|e| e.contains("ms")), "{bad}: {response:?}");
    }

    let metrics = http_get(addr, "/metrics").await;
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert!(metrics.headers.contains("content-type: text/plain"), "{metrics:?}");
    for gauge in [
        "pool_connections{pool=\"service\"}",
        "pool_connections_idle{pool=\"service\"}",
        "pool_connections_max{pool=\"service\"} 5",
    ] {
        assert!(metrics.body.contains(gauge), "no {gauge} in:\n{}", metrics.body);
    }

    // Five requests hold all five connections for 500 ms; SIGTERM arrives meanwhile.
    let monitor = common::monitor(&server.connection_string()).await;
    let in_flight: Vec<_> = (0..5).map(|_| tokio::spawn(http_get(addr, "/api/sleep?ms=500"))).collect();
    common::wait_for_connections(&monitor, app, Some("active"), 5, Duration::from_secs(5)).await;
    service.signal("TERM");
    for request in in_flight {
        let response = request.await.unwrap();
        assert_eq!(response.status, 200, "an in-flight request was cut short: {response:?}");
        assert_eq!(response.json()["slept_ms"], 500, "{response:?}");
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = service.wait(Duration::from_secs(15));
        (status, service.stderr())
    })
    .await
    .unwrap();
    let (status, log) = status;
    assert!(status.success(), "exit status {status}:\n{log}");
    for line in ["SIGTERM received", "closing the database pool", "shutdown complete"] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
    common::wait_for_connections(&monitor, app, None, 0, Duration::from_secs(5)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still listening after exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_is_a_503_within_the_acquire_timeout() {
    let server = TestServer::start().expect("start a throwaway server");
    let url =
        format!("{}?connection_limit=1&pool_timeout=0.5&application_name=service_exhausted", server.url());
    let (_service, addr) = start_service(&url);

    let holder = tokio::spawn(http_get(addr, "/api/sleep?ms=2000"));
    let monitor = common::monitor(&server.connection_string()).await;
    common::wait_for_connections(&monitor, "service_exhausted", Some("active"), 1, Duration::from_secs(5))
        .await;

    let started = std::time::Instant::now();
    let time = http_get(addr, "/api/time").await;
    let waited = started.elapsed();
    assert_eq!(time.status, 503, "{time:?}");
    assert!(time.json()["error"].as_str().is_some_and(|e| e.contains("timed out")), "{time:?}");
    assert!(waited < Duration::from_millis(1500), "took {waited:?}, beyond the 0.5 s acquire timeout");

    let health = http_get(addr, "/health").await;
    assert_eq!(health.status, 503, "{health:?}");
    let body = health.json();
    assert_eq!((body["pool"]["active"].as_u64(), body["pool"]["max"].as_u64()), (Some(1), Some(1)), "{body}");
    assert_eq!(body["pool"]["utilisation_percent"].as_f64(), Some(100.0), "{body}");
    assert!(body["error"].is_string(), "{body}");

    assert_eq!(holder.await.unwrap().status, 200);
}

#[test]
fn a_bad_database_url_exits_at_once_with_a_message_and_no_password() {
    let cases = [
        Some("postgres://app:hunter2@127.0.0.1:5432/app?connection_limit=lots"),
        Some("mysql://app:hunter2@127.0.0.1/app"),
        None,
    ];
    for url in cases {
        let mut command = common::example("service");
        command.env("LISTEN_ADDR", "127.0.0.1:0");
        if let Some(url) = url {
            command.env("DATABASE_URL", url);
        }
        let started = std::time::Instant::now();
        let (status, stdout, stderr) = common::run(command, Duration::from_secs(20));
        assert!(!status.success(), "{url:?}: {stdout}\n{stderr}");
        assert!(started.elapsed() < Duration::from_secs(10), "{url:?}: took {:?}", started.elapsed());
        assert!(stderr.contains("cannot set up the database pool"), "{url:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{url:?}: {stderr}");
        assert!(
            !stderr.contains("hunter2") && !stdout.contains("hunter2"),
            "{url:?}: the password leaked: {stderr}"
        );
        assert!(!stderr.contains("listening on"), "{url:?}: {stderr}");
    }
}

//! The service example, run for real: every route, pool errors as 503s,
//! a graceful shutdown under load that leaves no connection behind, and a
//! shutdown whose deadline cuts off a request that would never end.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Running, http_get};
use pool_postgres_test_server::TestServer;

/// Starts the service on a free port; returns it and its address.
fn start_service(database_url: &str) -> (Running, SocketAddr) {
    start_service_with(database_url, &[])
}

/// [`start_service`] with more environment variables.
fn start_service_with(database_url: &str, env: &[(&str, &str)]) -> (Running, SocketAddr) {
    let mut command = common::example("service");
    command.env("DATABASE_URL", database_url).env("LISTEN_ADDR", "127.0.0.1:0");
    command.envs(env.iter().copied());
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
    // Six: /api/time keeps one as its shared connection, five for the sleeps.
    let url = format!("{}?connection_limit=6&pool_timeout=5&application_name={app}", server.url());
    let (mut service, addr) = start_service(&url);

    let health = http_get(addr, "/health").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert!(health.headers.contains("content-type: application/json"), "{health:?}");
    let body = health.json();
    assert_eq!(body["status"], "ok", "{body}");
    for field in ["total", "idle", "active", "waiting", "max", "utilisation_percent"] {
        assert!(body["pool"][field].is_number(), "no {field}: {body}");
    }
    assert_eq!(body["pool"]["max"], 6, "{body}");

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
        "pool_connections_max{pool=\"service\"} 6",
    ] {
        assert!(metrics.body.contains(gauge), "no {gauge} in:\n{}", metrics.body);
    }

    // Five requests hold the other five connections for 500 ms; SIGTERM arrives meanwhile.
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
    for line in [
        "SIGTERM received: 5 in flight",
        "closing the database pool",
        "drain over: 5 in flight at SIGTERM: 5 answered, 0 cut off at the 10s deadline, 0 abandoned by their \
         clients; 0 new requests refused while draining",
        "shutdown complete",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
    common::wait_for_connections(&monitor, app, None, 0, Duration::from_secs(5)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still listening after exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outlasting_the_shutdown_grace_is_cut_off_and_reported() {
    let server = TestServer::start().expect("start a throwaway server");
    let app = "service_cut_off";
    let grace = Duration::from_secs(3);
    let url = format!("{}?connection_limit=5&pool_timeout=5&application_name={app}", server.url());
    let (mut service, addr) = start_service_with(&url, &[("SHUTDOWN_GRACE", "3")]);

    // One request that would run for ten minutes, three that end within the grace.
    let monitor = common::monitor(&server.connection_string()).await;
    let endless = tokio::spawn(http_get(addr, "/api/sleep?ms=600000"));
    let quick: Vec<_> = (0..3).map(|_| tokio::spawn(http_get(addr, "/api/sleep?ms=1500"))).collect();
    common::wait_for_connections(&monitor, app, Some("active"), 4, Duration::from_secs(5)).await;
    service.signal("TERM");
    let signalled = std::time::Instant::now();
    tokio::task::block_in_place(|| {
        service.wait_for_stderr("SIGTERM received: 4 in flight", Duration::from_secs(5));
    });

    // Draining: the load balancer is told to stop sending, at once.
    let health = http_get(addr, "/health").await;
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(health.json()["status"], "draining", "{health:?}");
    assert!(health.headers.contains("connection: close"), "{health:?}");

    for request in quick {
        let response = request.await.unwrap();
        assert_eq!(
            (response.status, response.json()["slept_ms"].as_u64()),
            (200, Some(1500)),
            "{response:?}"
        );
    }
    let cut = endless.await.unwrap();
    assert_eq!(cut.status, 503, "{cut:?}");
    assert_eq!(cut.json()["status"], "cut off", "{cut:?}");
    let cut_after = signalled.elapsed();
    assert!(cut_after >= grace, "cut off after {cut_after:?}, before the {grace:?} grace was over");

    // Generous (it takes milliseconds past the grace), but far from the ten
    // minutes the request alone would take.
    let (status, log) = tokio::task::block_in_place(|| {
        let status = service.wait(grace + Duration::from_secs(10));
        (status, service.stderr())
    });
    assert_eq!(status.code(), Some(1), "exit status {status}:\n{log}");
    for line in [
        "shutdown grace of 3s over with 1 still in flight: cutting them off",
        "drain over: 4 in flight at SIGTERM: 3 answered, 1 cut off at the 3s deadline, 0 abandoned by their \
         clients; 1 new requests refused while draining",
        "shutdown not clean: 1 requests cut off at the shutdown deadline",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
    assert!(!log.contains("shutdown complete"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // The cancelled statement's session is gone too, not left running on the server.
    common::wait_for_connections(&monitor, app, None, 0, Duration::from_secs(5)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still listening after exit");
}

#[test]
fn a_bad_shutdown_grace_exits_at_once_with_a_message() {
    for grace in ["soon", "-1", "inf", ""] {
        let mut command = common::example("service");
        command
            .env("DATABASE_URL", "postgres://app@127.0.0.1:9/app")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("SHUTDOWN_GRACE", grace);
        let (status, stdout, stderr) = common::run(command, Duration::from_secs(20));
        assert!(!status.success(), "{grace:?}: {stdout}\n{stderr}");
        assert!(stderr.contains(&format!("SHUTDOWN_GRACE={grace:?} is not a number of seconds")), "{stderr}");
        assert!(!stderr.contains("listening on"), "{grace:?}: {stderr}");
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_come_from_the_replica_when_the_url_lists_one() {
    let primary = TestServer::start().expect("start a throwaway primary");
    let replica = primary.start_replica().expect("a streaming replica");
    let url = format!(
        "postgres://{}@{}:{},{}:{}/postgres?connection_limit=4&pool_timeout=5",
        primary.user(),
        primary.host(),
        primary.port(),
        replica.host(),
        replica.port()
    );
    let (_service, addr) = start_service(&url);

    let health = http_get(addr, "/health").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.json()["pool"]["max"], 4, "{health:?}");
    let time = http_get(addr, "/api/time").await;
    assert_eq!(time.status, 200, "{time:?}");
    assert_eq!(time.json()["standby"], true, "/api/time was not served by the replica: {time:?}");

    let metrics = http_get(addr, "/metrics").await;
    let replica_pool =
        format!("pool_connections_max{{pool=\"service@{}:{}\"}} 2", replica.host(), replica.port());
    assert!(metrics.body.contains(&replica_pool), "no per-host gauge {replica_pool}:\n{}", metrics.body);

    replica.stop().expect("stop the replica");
    // Reads fall back to the primary once a check has seen the replica go.
    let mut served_by_primary = false;
    for _ in 0..100 {
        let time = http_get(addr, "/api/time").await;
        if time.status == 200 && time.json()["standby"] == false {
            served_by_primary = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served_by_primary, "reads never fell back to the primary");
}

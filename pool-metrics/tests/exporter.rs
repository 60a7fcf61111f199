//! `install_prometheus_exporter`: a clear error for an address it cannot
//! use, then an HTTP endpoint that serves the metrics. Its own test binary,
//! since a process has one global recorder.
#![cfg(feature = "prometheus")]

mod common;

use std::net::{SocketAddr, TcpListener};

use common::{Fake, http_get};
use pool_core::Pool;
use pool_metrics::InstallError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_reports_a_busy_address_then_serves_the_metrics() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap();
    let error = pool_metrics::install_prometheus_exporter(busy_addr).expect_err("the address is taken");
    let InstallError::Listen { addr, .. } = &error else { panic!("a Listen error, not {error:?}") };
    assert_eq!(*addr, busy_addr);
    let message = error.to_string();
    assert!(message.starts_with(&format!("cannot serve Prometheus metrics on {busy_addr}: ")), "{message}");
    assert!(message.contains("in use"), "{message}");

    // Nothing was installed by the failed call, so this one works.
    let addr = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let handle = pool_metrics::install_prometheus_exporter(addr).expect("a free address");
    let pool = Pool::builder(Fake::new())
        .name("served")
        .max_size(2)
        .observer(pool_metrics::observer())
        .build()
        .unwrap();
    let conn = pool.get().await.unwrap();

    let (status, body) = http_get(addr, "/metrics").await.expect("the endpoint answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#"pool_connections_active{pool="served"} 1"#), "{body}");
    assert!(body.contains("# TYPE pool_connections_acquire_seconds histogram"), "{body}");
    assert!(handle.render().contains(r#"pool_connections_max{pool="served"} 2"#));
    drop(conn);
}

//! `install_prometheus_recorder`: what `handle.render()` gives a `/metrics`
//! route. Its own test binary, since a process has one global recorder.
#![cfg(feature = "prometheus")]

mod common;

use std::time::Duration;

use common::{Fake, Outcome};
use pool_core::Pool;
use pool_metrics::{InstallError, SECONDS_BUCKETS};

#[tokio::test]
async fn the_recorder_renders_described_labelled_histograms_and_refuses_a_second_install() {
    let handle = pool_metrics::install_prometheus_recorder().expect("the first install succeeds");
    let fake = Fake::new();
    fake.script_create([Outcome::Slow(Duration::from_millis(20))]);
    let pool = Pool::builder(fake.clone())
        .name("orders")
        .max_size(3)
        .observer(pool_metrics::observer())
        .build()
        .unwrap();
    let other =
        Pool::builder(fake).name("reports").max_size(7).observer(pool_metrics::observer()).build().unwrap();
    let mut conn = pool.get().await.unwrap();
    let held = pool.get().await.unwrap();
    conn.broken = true;
    drop(conn);

    let text = handle.render();
    for expected in [
        "# HELP pool_connections_waiting Tasks waiting in get() for a connection.",
        "# TYPE pool_connections gauge",
        r#"pool_connections{pool="orders"} 1"#,
        r#"pool_connections_active{pool="orders"} 1"#,
        r#"pool_connections_max{pool="orders"} 3"#,
        r#"pool_connections_max{pool="reports"} 7"#,
        "# TYPE pool_connections_created_total counter",
        r#"pool_connections_created_total{pool="orders"} 2"#,
        r#"pool_connections_closed_total{pool="orders",reason="broken"} 1"#,
        r#"pool_connections_closed_total{pool="orders",reason="idle"} 0"#,
        r#"pool_connections_timeout_total{pool="reports",phase="wait"} 0"#,
        "# TYPE pool_connections_acquire_seconds histogram",
        r#"pool_connections_acquire_seconds_bucket{pool="orders",le="0.0001"}"#,
        r#"pool_connections_acquire_seconds_bucket{pool="orders",le="+Inf"} 2"#,
        r#"pool_connections_acquire_seconds_count{pool="orders"} 2"#,
        r#"pool_connections_creation_seconds_bucket{pool="orders",le="60"} 2"#,
        r#"pool_connections_usage_seconds_count{pool="orders"} 1"#,
    ] {
        assert!(text.contains(expected), "the rendered text has {expected:?}:\n{text}");
    }
    let buckets = text.matches(r#"pool_connections_acquire_seconds_bucket{pool="orders","#).count();
    assert_eq!(buckets, SECONDS_BUCKETS.len() + 1, "every bucket and +Inf");
    assert!(!text.contains("quantile="), "histograms, not summaries:\n{text}");

    let again = pool_metrics::install_prometheus_recorder().expect_err("a second recorder is refused");
    assert!(matches!(again, InstallError::AlreadyInstalled));
    assert_eq!(
        again.to_string(),
        "cannot install the Prometheus recorder: a global metrics recorder is already installed"
    );

    // The exporter binds its port, then finds the recorder taken: it says so
    // and leaves nothing listening.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let refused = pool_metrics::install_prometheus_exporter(addr).expect_err("the recorder is taken");
    assert!(matches!(refused, InstallError::AlreadyInstalled), "{refused:?}");
    std::net::TcpListener::bind(addr).expect("the exporter let its port go");

    drop((held, other));
}

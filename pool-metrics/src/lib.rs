#![cfg_attr(feature = "prometheus", doc = include_str!("../README.md"))]
#![cfg_attr(
    not(feature = "prometheus"),
    doc = "Metrics for `pool-core` pools through the `metrics` facade: attach [`observer()`] to a pool. \
           The `prometheus` feature adds the Prometheus helpers and the full documentation."
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod names;
mod observer;
#[cfg(feature = "prometheus")]
mod prometheus;

pub use observer::{PoolMetrics, Refresh, observer};

#[cfg(feature = "prometheus")]
pub use prometheus::{
    InstallError, SECONDS_BUCKETS, install_prometheus_exporter, install_prometheus_recorder,
    prometheus_builder,
};

/// The exporter crate, for settings [`prometheus_builder`] does not cover.
#[cfg(feature = "prometheus")]
pub use metrics_exporter_prometheus;
#[cfg(feature = "prometheus")]
pub use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};

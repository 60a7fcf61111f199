//! Helpers that install the Prometheus recorder from
//! [`metrics-exporter-prometheus`](metrics_exporter_prometheus).

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::names;

/// The histogram buckets (upper bounds, in seconds) used for this crate's
/// `*_seconds` histograms by [`prometheus_builder`]: 100 µs to one minute, so
/// that fast local connections and slow remote ones both get resolution.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0,
];

/// How often the recorder's maintenance (draining histogram samples) runs
/// when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A [`PrometheusBuilder`] set up for pool metrics: the `pool_connections_*`
/// histograms get [`SECONDS_BUCKETS`], so Prometheus receives real histograms
/// (`_bucket`, `_sum`, `_count`, fit for `histogram_quantile`) rather than
/// summaries. Other histograms of the application keep the builder's defaults.
///
/// Start here to add global labels, an allow-list or other settings, then
/// install it yourself. Leave `idle_timeout` unset: it drops series that
/// were not updated for a while, and [`PoolMetrics`](crate::PoolMetrics)
/// keeps its handles, so a dropped series would not come back.
///
/// ```no_run
/// let builder = pool_metrics::prometheus_builder()
///     .add_global_label("service", "billing")
///     .with_http_listener(([0, 0, 0, 0], 9187));
/// builder.install()?;
/// # Ok::<(), pool_metrics::BuildError>(())
/// ```
pub fn prometheus_builder() -> PrometheusBuilder {
    let prefix = names::CONNECTIONS.to_owned() + "_";
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Prefix(prefix), SECONDS_BUCKETS)
        .expect("SECONDS_BUCKETS is not empty")
        .upkeep_timeout(UPKEEP_INTERVAL)
}

/// Installs the Prometheus recorder as the global [`metrics`] recorder and
/// serves the metrics over HTTP on `addr` (any path answers; Prometheus
/// scrapes `http://<addr>/metrics`).
///
/// The listener runs on a background thread with its own small Tokio
/// runtime, so this works with or without a runtime and the endpoint keeps
/// answering however busy the application's runtime is. Call it once, early,
/// before building pools. The returned handle renders the same text the
/// endpoint serves.
///
/// ```no_run
/// let handle = pool_metrics::install_prometheus_exporter(([0, 0, 0, 0], 9187))?;
/// # let _ = handle;
/// # Ok::<(), pool_metrics::InstallError>(())
/// ```
///
/// # Errors
///
/// [`InstallError::Listen`] when `addr` cannot be bound (in use, not a local
/// address, no permission), [`InstallError::AlreadyInstalled`] when a global
/// recorder is already set (nothing is listening then),
/// [`InstallError::Runtime`] when the background thread or its runtime cannot
/// be started.
pub fn install_prometheus_exporter(addr: impl Into<SocketAddr>) -> Result<PrometheusHandle, InstallError> {
    let addr = addr.into();
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(InstallError::Runtime)?;
    let built = {
        let _entered = runtime.enter();
        prometheus_builder().with_http_listener(addr).build()
    };
    let installed = built
        .map_err(|error| match error {
            BuildError::FailedToCreateHTTPListener(message) => InstallError::Listen { addr, message },
            other => InstallError::Exporter(other),
        })
        .and_then(|(recorder, exporter)| {
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|_| InstallError::AlreadyInstalled)?;
            Ok((handle, exporter))
        });
    let (handle, exporter) = match installed {
        Ok(installed) => installed,
        Err(error) => {
            // Closes the listener; dropping the runtime instead would block,
            // which panics when called from async code.
            runtime.shutdown_background();
            return Err(error);
        }
    };
    std::thread::Builder::new()
        .name("pool-metrics-exporter".into())
        .spawn(move || {
            if let Err(error) = runtime.block_on(exporter) {
                tracing::error!(?error, %addr, "the Prometheus metrics endpoint stopped");
            }
        })
        .map_err(InstallError::Runtime)?;
    Ok(handle)
}

/// Installs the Prometheus recorder as the global [`metrics`] recorder
/// without any listener, for a service that already runs an HTTP server:
/// serve [`PrometheusHandle::render`] on its `/metrics` route, with the
/// content type `text/plain; version=0.0.4`.
///
/// A background thread runs the recorder's maintenance every few seconds,
/// so histogram samples do not pile up between scrapes.
///
/// ```
/// let handle = pool_metrics::install_prometheus_recorder()?;
/// // In the /metrics handler:
/// let body: String = handle.render();
/// # let _ = body;
/// # Ok::<(), pool_metrics::InstallError>(())
/// ```
///
/// # Errors
///
/// [`InstallError::AlreadyInstalled`] when a global recorder is already set,
/// [`InstallError::Runtime`] when the maintenance thread cannot be started.
pub fn install_prometheus_recorder() -> Result<PrometheusHandle, InstallError> {
    let recorder = prometheus_builder().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| InstallError::AlreadyInstalled)?;
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("pool-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep.run_upkeep();
            }
        })
        .map_err(InstallError::Runtime)?;
    Ok(handle)
}

/// Why [`install_prometheus_exporter`] or [`install_prometheus_recorder`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum InstallError {
    /// The HTTP listener could not bind its address.
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The system's reason (for instance "Address already in use").
        message: String,
    },
    /// A global `metrics` recorder was already installed (by an earlier call,
    /// or by another library); a process has only one.
    AlreadyInstalled,
    /// The background thread or its Tokio runtime could not be started.
    Runtime(std::io::Error),
    /// The exporter refused its configuration.
    Exporter(BuildError),
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Listen { addr, message } => {
                write!(f, "cannot serve Prometheus metrics on {addr}: {message}")
            }
            Self::AlreadyInstalled => f.write_str(
                "cannot install the Prometheus recorder: a global metrics recorder is already installed",
            ),
            Self::Runtime(error) => {
                write!(f, "cannot start the Prometheus exporter's background thread: {error}")
            }
            Self::Exporter(error) => write!(f, "cannot build the Prometheus exporter: {error}"),
        }
    }
}

impl std::error::Error for InstallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Runtime(error) => Some(error),
            Self::Exporter(error) => Some(error),
            Self::Listen { .. } | Self::AlreadyInstalled => None,
        }
    }
}

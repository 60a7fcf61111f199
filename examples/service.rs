//! A web service that keeps one `PgPool` in its state: the shape every
//! service should have.
//!
//! ```text
//! DATABASE_URL='postgres://app@localhost/app?connection_limit=10&pool_timeout=5' \
//!   LISTEN_ADDR=127.0.0.1:8080 cargo run --release --example service
//! curl localhost:8080/health
//! ```
//!
//! - `DATABASE_URL` (required) with the pool settings in its query string
//!   (`connection_limit`, `pool_timeout`, ...: see pool-postgres);
//!   `LISTEN_ADDR` (default `127.0.0.1:8080`; port 0 picks a free one, and
//!   the log says which).
//! - `GET /health`: the pool's counts as JSON; 200 when a connection can be
//!   had within 2 s (or the pool's own timeout, if shorter), 503 when not.
//! - `GET /metrics`: Prometheus text from pool-metrics.
//! - `GET /api/time`: the database server's time, as JSON.
//! - `GET /api/sleep?ms=N`: holds a connection for N ms (0 to 10000) with
//!   `pg_sleep`.
//!
//! A pool error (no connection within the pool's timeout, server down) is
//! a 503 with a JSON body, never a hang longer than the acquire timeout. On
//! SIGTERM or SIGINT it stops accepting, lets the requests in flight finish,
//! closes the pool (waiting up to 10 s for connections to come back) and
//! exits 0, leaving no connection on the server.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use examples::shutdown_signal;
use pool_core::ErrorChain;
use pool_metrics::{PoolMetrics, PrometheusHandle};
use pool_postgres::{PgPool, PgPoolBuilder, PoolError};
use serde_json::json;

/// How long `/health` waits for a connection at most.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long shutdown waits for borrowed connections to come back.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest `/api/sleep` accepted, in milliseconds.
const MAX_SLEEP_MS: u64 = 10_000;

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    pool: PgPool,
    metrics: Arc<PoolMetrics>,
    prometheus: PrometheusHandle,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), String> {
    // First of all, so that a SIGTERM from now on shuts down gracefully.
    let signal = shutdown_signal().map_err(|e| format!("cannot install the signal handlers: {e}"))?;

    let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listen: SocketAddr = listen
        .parse()
        .map_err(|e| format!("LISTEN_ADDR={listen:?} is not an address such as 127.0.0.1:8080: {e}"))?;

    // The recorder first, then the pool, so the pool's metrics reach it.
    let prometheus = pool_metrics::install_prometheus_recorder().map_err(|e| e.to_string())?;
    let metrics = Arc::new(PoolMetrics::new());
    let pool = PgPoolBuilder::from_env()
        .and_then(|builder| builder.name("service").observer(metrics.clone()).build())
        .map_err(|e| format!("cannot set up the database pool: {e}"))?;
    let status = pool.status();
    tracing::info!(max_size = status.max_size, "database pool ready (connections open on demand)");

    // Does this pool fit in what the server allows? Logged, not fatal: the
    // database may come up after us.
    let budget_pool = pool.clone();
    tokio::spawn(async move {
        if let Err(e) = budget_pool.check_budget(1).await {
            tracing::warn!("could not check the connection budget: {e}");
        }
    });

    let state = AppState { pool: pool.clone(), metrics, prometheus };
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/api/time", get(time))
        .route("/api/sleep", get(sleep))
        .fallback(not_found)
        .with_state(state);

    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("listening on http://{local}");

    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel();
    let shutdown = async move {
        let name = signal.await;
        tracing::info!("{name} received: no new connections; finishing the requests in flight");
        let _ = stopping_tx.send(());
    };
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    if let Err(e) = &served {
        tracing::error!("the HTTP server failed: {e}");
    }
    if stopping_rx.await.is_ok() {
        tracing::info!("every request answered; closing the database pool");
    }
    match pool.close_and_wait(CLOSE_TIMEOUT).await {
        Ok(()) => tracing::info!("shutdown complete"),
        Err(e) => tracing::warn!("database pool closed, but {e}"),
    }
    served.map_err(|e| format!("the HTTP server failed: {e}"))
}

/// A JSON error response.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A pool error: 503, the service cannot do its work now.
fn unavailable(e: &PoolError) -> Response {
    tracing::warn!("no database connection: {e}");
    error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// A query error: 500.
fn query_failed(e: &pool_postgres::Error) -> Response {
    let text = ErrorChain(e).to_string();
    tracing::warn!("query failed: {text}");
    error(StatusCode::INTERNAL_SERVER_ERROR, text)
}

async fn health(State(state): State<AppState>) -> Response {
    let status = state.pool.status();
    let utilisation =
        if status.max_size == 0 { 0.0 } else { status.in_use as f64 * 100.0 / status.max_size as f64 };
    let counts = json!({
        "total": status.size,
        "idle": status.idle,
        "active": status.in_use,
        "waiting": status.waiting,
        "max": status.max_size,
        "utilisation_percent": (utilisation * 10.0).round() / 10.0,
    });
    let checked = match tokio::time::timeout(HEALTH_TIMEOUT, state.pool.get()).await {
        Ok(Ok(client)) => {
            client.query_one("SELECT 1", &[]).await.map(drop).map_err(|e| ErrorChain(&e).to_string())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no connection within {HEALTH_TIMEOUT:?}: all {} in use", status.max_size)),
    };
    match checked {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok", "pool": counts }))).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": e, "pool": counts })),
        )
            .into_response(),
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    // Gauges exact at every scrape, also while a keepalive check runs
    // (events keep them current otherwise).
    state.metrics.record_status(state.pool.name(), &state.pool.status());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.prometheus.render()).into_response()
}

async fn time(State(state): State<AppState>) -> Response {
    let client = match state.pool.get().await {
        Ok(client) => client,
        Err(e) => return unavailable(&e),
    };
    match client.query_one("SELECT now()::text", &[]).await {
        Ok(row) => Json(json!({ "now": row.get::<_, String>(0) })).into_response(),
        Err(e) => query_failed(&e),
    }
}

async fn sleep(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let ms = match sleep_ms(query.as_deref()) {
        Ok(ms) => ms,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let client = match state.pool.get().await {
        Ok(client) => client,
        Err(e) => return unavailable(&e),
    };
    match client.query_one("SELECT pg_sleep($1)", &[&(ms as f64 / 1000.0)]).await {
        Ok(_) => Json(json!({ "slept_ms": ms })).into_response(),
        Err(e) => query_failed(&e),
    }
}

/// The `ms` parameter of `/api/sleep`: a whole number from 0 to 10000.
fn sleep_ms(query: Option<&str>) -> Result<u64, String> {
    let value =
        query.unwrap_or_default().split('&').find_map(|pair| pair.strip_prefix("ms=")).ok_or_else(|| {
            format!("missing parameter ms: use /api/sleep?ms=N with N from 0 to {MAX_SLEEP_MS}")
        })?;
    match value.parse::<u64>() {
        Ok(ms) if ms <= MAX_SLEEP_MS => Ok(ms),
        _ => {
            Err(format!("ms must be a whole number of milliseconds from 0 to {MAX_SLEEP_MS}, not {value:?}"))
        }
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route; try /health, /metrics, /api/time or /api/sleep?ms=100")
}

//! A web service that keeps one `PgPool` in its state: the shape every
//! service should have.
//!
//! ```text
//! DATABASE_URL='postgres://app@localhost/app?connection_limit=10&pool_timeout=5' \
//!   LISTEN_ADDR=127.0.0.1:8080 SHUTDOWN_GRACE=10 cargo run --release --example service
//! curl localhost:8080/health
//! ```
//!
//! - `DATABASE_URL` (required) with the pool settings in its query string
//!   (`connection_limit`, `pool_timeout`, ...: see pool-postgres);
//!   `LISTEN_ADDR` (default `127.0.0.1:8080`; port 0 picks a free one, and
//!   the log says which); `SHUTDOWN_GRACE` (seconds, default 10, fractions
//!   allowed): how long a shutdown waits for the requests in flight. Keep it
//!   below the time your orchestrator allows between SIGTERM and SIGKILL
//!   (Kubernetes: `terminationGracePeriodSeconds`), so the service, not the
//!   kill, decides how the drain ends and says so in its log.
//! - `GET /health`: the pool's counts as JSON; 200 when a connection can be
//!   had within 2 s (or the pool's own timeout, if shorter), 503 when not,
//!   and 503 `{"status":"draining"}` once shutdown has begun.
//! - `GET /metrics`: Prometheus text from pool-metrics.
//! - `GET /api/time`: the database server's time and whether a standby
//!   served it, as JSON. Reads go through shared mode
//!   (`PgPool::shared_read`: pipelined over a few connections): with a primary and
//!   a replica in `DATABASE_URL`
//!   (`postgres://app@primary:5432,replica:5432/app?connection_limit=10`),
//!   the replica serves them and the primary takes over when it cannot.
//! - `GET /api/sleep?ms=N`: holds a connection for N ms (0 to 600000) with
//!   `pg_sleep`; a long one shows what the shutdown deadline does.
//!
//! A pool error (no connection within the pool's timeout, server down) is
//! a 503 with a JSON body, never a hang longer than the acquire timeout.
//!
//! # Shutdown
//!
//! On SIGTERM or SIGINT (see [`drain`] for the mechanism):
//!
//! 1. Every new request, `/health` included, is answered 503 `draining`
//!    with `Connection: close`, so a load balancer stops sending; the
//!    listener stays open meanwhile, so it can see that.
//! 2. The requests in flight get up to `SHUTDOWN_GRACE` to finish.
//! 3. Those still running at the deadline are cut off: their handlers are
//!    stopped (the pool sends the server a cancel request for the statement
//!    each was running) and their clients get a 503.
//! 4. The listener closes, the last responses are written (up to 2 s), and
//!    the pool is closed (up to 2 s for its connections to come back).
//! 5. One line tells how many requests were in flight at the signal and how
//!    many of them were answered, cut off, or abandoned by their clients.
//!    The exit status is 0 only if none was cut off and every step finished
//!    within its bound.

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

use crate::drain::Drain;

/// How long `/health` waits for a connection at most.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// `SHUTDOWN_GRACE` when unset.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// After the deadline, how long the requests cut off get to let go. Their
/// handlers are dropped the next time their tasks run, so this is reached
/// only by a handler that blocks its thread.
const CUT_OFF_BOUND: Duration = Duration::from_secs(1);

/// How long the HTTP server gets to write the last responses and close its
/// connections once the listener is closed (a client that does not read
/// its response would hold it up otherwise).
const RESPONSES_BOUND: Duration = Duration::from_secs(2);

/// How long shutdown waits for borrowed connections to come back. Every
/// request has ended by then, so they come back at once; this bounds the
/// unexpected.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest `/api/sleep` accepted, in milliseconds: long enough to
/// outlast any sensible shutdown grace.
const MAX_SLEEP_MS: u64 = 600_000;

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    pool: PgPool,
    /// Shared mode for the read endpoints (`PgPool::shared_read`).
    shared_read: pool_postgres::Shared,
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
    let grace = shutdown_grace()?;

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

    let drain = Drain::new(grace);
    let state = AppState { pool: pool.clone(), shared_read: pool.shared_read(), metrics, prometheus };
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/api/time", get(time))
        .route("/api/sleep", get(sleep))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&drain), drain::track));

    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("listening on http://{local} (shutdown grace {grace:?})");

    // The listener stays open through the drain (step 1 of the module docs)
    // and closes when `close_listener` fires.
    let (close_listener, listener_closed) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = listener_closed.await;
            })
            .into_future(),
    );
    let name = tokio::select! {
        name = signal => name,
        served = &mut server => {
            pool.close();
            return Err(match served {
                Ok(Ok(())) => "the HTTP server stopped by itself".to_owned(),
                Ok(Err(e)) => format!("the HTTP server failed: {e}"),
                Err(e) => format!("the HTTP server failed: {e}"),
            });
        }
    };

    shut_down(name, grace, &drain, server, close_listener, &pool).await
}

/// The shutdown of the module docs, from step 1: returns what went wrong
/// (a request cut off, a step over its bound), if anything did.
async fn shut_down(
    name: &str,
    grace: Duration,
    drain: &Drain,
    mut server: tokio::task::JoinHandle<std::io::Result<()>>,
    close_listener: tokio::sync::oneshot::Sender<()>,
    pool: &PgPool,
) -> Result<(), String> {
    let mut problems = Vec::new();
    let at_signal = drain.begin();
    tracing::info!(
        "{name} received: {} in flight; answering new requests 503 draining; waiting up to {grace:?} \
         for those in flight",
        at_signal.in_flight
    );
    if !drain.wait_for_in_flight(grace).await {
        let left = drain.counts().in_flight;
        tracing::warn!("shutdown grace of {grace:?} over with {left} still in flight: cutting them off");
        if !drain.cut_off(CUT_OFF_BOUND).await {
            let left = drain.counts().in_flight;
            problems.push(format!("{left} requests did not stop within {CUT_OFF_BOUND:?} of being cut off"));
        }
    }

    let _ = close_listener.send(());
    match tokio::time::timeout(RESPONSES_BOUND, &mut server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => problems.push(format!("the HTTP server failed: {e}")),
        Ok(Err(e)) => problems.push(format!("the HTTP server failed: {e}")),
        Err(_) => {
            server.abort();
            problems
                .push(format!("HTTP connections still open {RESPONSES_BOUND:?} after the listener closed"));
        }
    }

    tracing::info!("closing the database pool");
    if let Err(e) = pool.close_and_wait(CLOSE_TIMEOUT).await {
        problems.push(format!("the database pool did not close: {e}"));
    }

    let counts = drain.counts();
    let summary = format!(
        "drain over: {} in flight at {name}: {} answered, {} cut off at the {grace:?} deadline, {} abandoned \
         by their clients; {} new requests refused while draining",
        counts.at_signal, counts.answered, counts.cut_off, counts.abandoned, counts.refused
    );
    if counts.cut_off > 0 {
        tracing::warn!("{summary}");
        problems.insert(0, format!("{} requests cut off at the shutdown deadline", counts.cut_off));
    } else {
        tracing::info!("{summary}");
    }
    if problems.is_empty() {
        tracing::info!("shutdown complete");
        Ok(())
    } else {
        Err(format!("shutdown not clean: {}", problems.join("; ")))
    }
}

/// `SHUTDOWN_GRACE`: seconds, such as `10` or `2.5`; `0` cuts off at once.
fn shutdown_grace() -> Result<Duration, String> {
    let text = match std::env::var("SHUTDOWN_GRACE") {
        Err(std::env::VarError::NotPresent) => return Ok(DEFAULT_SHUTDOWN_GRACE),
        Err(std::env::VarError::NotUnicode(_)) => return Err("SHUTDOWN_GRACE is not UTF-8".to_owned()),
        Ok(text) => text,
    };
    text.trim().parse::<f64>().ok().and_then(|secs| Duration::try_from_secs_f64(secs).ok()).ok_or_else(|| {
        format!("SHUTDOWN_GRACE={text:?} is not a number of seconds such as 10 or 2.5 (0 or more)")
    })
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
    if state.pool.hosts().len() > 1 {
        for host in state.pool.hosts() {
            state.metrics.record_status(&host.pool_name, &host.status);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.prometheus.render()).into_response()
}

async fn time(State(state): State<AppState>) -> Response {
    // A read, in shared mode: pipelined with every other request's reads
    // on a few connections, on a standby when the URL lists one.
    match state.shared_read.query_one("SELECT now()::text, pg_is_in_recovery()", &[]).await {
        Ok(row) => {
            Json(json!({ "now": row.get::<_, String>(0), "standby": row.get::<_, bool>(1) })).into_response()
        }
        Err(e) => match e.as_pool_error() {
            Some(pool_error) => unavailable(pool_error),
            None => query_failed(&e),
        },
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

/// The `ms` parameter of `/api/sleep`: a whole number from 0 to [`MAX_SLEEP_MS`].
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

mod drain {
    //! Shutdown with a deadline, and a true account of it.
    //!
    //! Every request passes [`track`], which counts it in flight from the
    //! moment it reaches the router until its handler returns (*answered*),
    //! it is stopped at the deadline (*cut off*), or its future is dropped
    //! because its client went away (*abandoned*). A drop guard, [`Ticket`],
    //! does the counting, so no way out of a request escapes it.
    //!
    //! [`Drain::begin`] (on the signal) records how many are in flight and
    //! from then on admits nothing: every new request is answered 503
    //! `draining` at once. So every request that ends afterwards was in
    //! flight at the signal, and once none is left, answered + cut off +
    //! abandoned equals the count taken at the signal. The counts live in a
    //! `watch` channel, so [`Drain::wait_for_in_flight`] wakes when the last
    //! one ends instead of polling.
    //!
    //! [`Drain::cut_off`] flips a second `watch` that every request in
    //! flight listens to: its handler future is dropped (which returns its
    //! database connection; the pool then sends the server a cancel request
    //! for a statement still running on it) and its client gets a 503 that
    //! says why. A separate channel, because it changes once, while the
    //! counts change with every request and would wake every listener.
    //!
    //! # Why a deadline
    //!
    //! A request can outlast any wait: a statement the server runs for
    //! minutes, a connection whose network path went silent. Without a
    //! deadline one such request holds up the whole shutdown until the
    //! orchestrator's SIGKILL ends the process, with nothing logged and the
    //! pool's connections left to the server's timeouts.

    use std::sync::Arc;
    use std::time::Duration;

    use axum::Json;
    use axum::extract::{Request, State};
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::middleware::Next;
    use axum::response::{IntoResponse, Response};
    use serde_json::json;
    use tokio::sync::watch;

    /// The requests of one process's life, as shutdown reports them.
    #[derive(Debug, Clone, Copy, Default)]
    pub(crate) struct Counts {
        /// Admitted and not ended.
        pub(crate) in_flight: u64,
        /// Whether the shutdown signal has arrived.
        pub(crate) draining: bool,
        /// `in_flight` when it did.
        pub(crate) at_signal: u64,
        /// Of those, how many handlers returned a response.
        pub(crate) answered: u64,
        /// Of those, how many were stopped at the deadline.
        pub(crate) cut_off: u64,
        /// Of those, how many were dropped by the HTTP server (client gone).
        pub(crate) abandoned: u64,
        /// Requests that arrived after the signal, answered 503 `draining`.
        pub(crate) refused: u64,
    }

    /// The shared state of [`track`] and shutdown; see the module docs.
    pub(crate) struct Drain {
        counts: watch::Sender<Counts>,
        /// Becomes `true` at the deadline.
        cut_off: watch::Sender<bool>,
        /// For the message of a request cut off.
        grace: Duration,
    }

    impl Drain {
        pub(crate) fn new(grace: Duration) -> Arc<Self> {
            Arc::new(Self {
                counts: watch::Sender::new(Counts::default()),
                cut_off: watch::Sender::new(false),
                grace,
            })
        }

        /// The counts now.
        pub(crate) fn counts(&self) -> Counts {
            *self.counts.borrow()
        }

        /// The signal has arrived: admits nothing from now on; returns the
        /// counts at this moment.
        pub(crate) fn begin(&self) -> Counts {
            self.counts.send_modify(|counts| {
                if !counts.draining {
                    counts.draining = true;
                    counts.at_signal = counts.in_flight;
                }
            });
            self.counts()
        }

        /// Waits up to `bound` for the requests in flight to end; `true`
        /// when none is left.
        pub(crate) async fn wait_for_in_flight(&self, bound: Duration) -> bool {
            let mut counts = self.counts.subscribe();
            let none_left = counts.wait_for(|counts| counts.in_flight == 0);
            matches!(tokio::time::timeout(bound, none_left).await, Ok(Ok(_)))
        }

        /// Stops every request in flight, then waits up to `bound` for them
        /// to let go; `true` when none is left.
        pub(crate) async fn cut_off(&self, bound: Duration) -> bool {
            self.cut_off.send_replace(true);
            self.wait_for_in_flight(bound).await
        }

        /// Counts a new request in flight, or `None` once draining (counted
        /// as refused).
        fn admit(self: &Arc<Self>) -> Option<Ticket> {
            let mut admitted = false;
            self.counts.send_modify(|counts| {
                if counts.draining {
                    counts.refused += 1;
                } else {
                    counts.in_flight += 1;
                    admitted = true;
                }
            });
            admitted.then(|| Ticket { drain: Arc::clone(self), outcome: Outcome::Abandoned })
        }
    }

    /// How a request admitted before the signal ended.
    #[derive(Debug, Clone, Copy)]
    enum Outcome {
        Answered,
        CutOff,
        Abandoned,
    }

    /// One request in flight; counts its end when dropped, as `Abandoned`
    /// unless [`track`] saw another outcome first.
    struct Ticket {
        drain: Arc<Drain>,
        outcome: Outcome,
    }

    impl Drop for Ticket {
        fn drop(&mut self) {
            let outcome = self.outcome;
            self.drain.counts.send_modify(|counts| {
                counts.in_flight -= 1;
                // Before the signal nobody reads the outcomes.
                if counts.draining {
                    match outcome {
                        Outcome::Answered => counts.answered += 1,
                        Outcome::CutOff => counts.cut_off += 1,
                        Outcome::Abandoned => counts.abandoned += 1,
                    }
                }
            });
        }
    }

    /// The middleware: counts every request, refuses new ones while
    /// draining, and stops those still running at the deadline.
    pub(crate) async fn track(State(drain): State<Arc<Drain>>, request: Request, next: Next) -> Response {
        let Some(mut ticket) = drain.admit() else {
            return shutting_down(
                "draining",
                "the service is shutting down; send this request to another instance",
            );
        };
        let mut cut_off = drain.cut_off.subscribe();
        // `select!` drops the losing future before its branch runs: a
        // request cut off has let go of its connection when it is counted.
        tokio::select! {
            biased;
            response = next.run(request) => {
                ticket.outcome = Outcome::Answered;
                response
            }
            Ok(()) = async { cut_off.wait_for(|cut| *cut).await.map(drop) } => {
                ticket.outcome = Outcome::CutOff;
                shutting_down(
                    "cut off",
                    &format!(
                        "the service is shutting down and this request was still running after the \
                         shutdown grace of {:?}",
                        drain.grace
                    ),
                )
            }
        }
    }

    /// A 503 that closes its connection, so the client goes elsewhere.
    fn shutting_down(status: &str, message: &str) -> Response {
        let mut response =
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": status, "error": message })))
                .into_response();
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

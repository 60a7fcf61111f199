//! The metric names, their descriptions and units.
//!
//! Every metric carries the label `pool` (the pool's
//! [`name`](pool_core::PoolBuilder::name)); the ones noted below carry one
//! more label.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Gauge: open connections, idle and in use together (`Status::size`).
pub const CONNECTIONS: &str = "pool_connections";
/// Gauge: open connections waiting in the pool to be handed out (`Status::idle`).
pub const IDLE: &str = "pool_connections_idle";
/// Gauge: connections handed out to callers (`Status::in_use`).
pub const ACTIVE: &str = "pool_connections_active";
/// Gauge: tasks waiting in `get` for a connection (`Status::waiting`).
pub const WAITING: &str = "pool_connections_waiting";
/// Gauge: connections being created right now (`Status::creating`).
pub const PENDING: &str = "pool_connections_pending";
/// Gauge: the most connections the pool may hold (`Status::max_size`).
pub const MAX: &str = "pool_connections_max";
/// Gauge: how many idle connections the pool keeps ready (`Status::min_idle`).
pub const MIN: &str = "pool_connections_min";

/// Counter: connections created.
pub const CREATED_TOTAL: &str = "pool_connections_created_total";
/// Counter: connections closed, with the label `reason` (`idle`, `lifetime`,
/// `broken`, `recycle_failed`, `evicted`, `closed`: see
/// [`DestroyReason::as_str`](pool_core::DestroyReason::as_str)).
pub const CLOSED_TOTAL: &str = "pool_connections_closed_total";
/// Counter: `get` calls that timed out, with the label `phase` (`wait`,
/// `create`, `recycle`: see [`TimeoutPhase::as_str`](pool_core::TimeoutPhase::as_str)).
pub const TIMEOUT_TOTAL: &str = "pool_connections_timeout_total";
/// Counter: connection creations that failed (backend error or `create_timeout`).
pub const ERRORS_TOTAL: &str = "pool_connections_errors_total";
/// Counter: `get` calls refused at once because `max_waiters` tasks were waiting.
pub const REJECTED_TOTAL: &str = "pool_connections_rejected_total";
/// Counter: connections reported as possible leaks (held longer than
/// `leak_detection_threshold`).
pub const LEAK_SUSPECTED_TOTAL: &str = "pool_connections_leak_suspected_total";
/// Counter: capacity cool-downs entered: the server refused a connection
/// for lack of free connection slots (its limit, shared with its other
/// clients, is reached), and the pool stopped opening connections for a
/// while ([`EventKind::CapacityRefused`](pool_core::EventKind::CapacityRefused)).
/// Each refused attempt also counts in [`ERRORS_TOTAL`].
pub const CAPACITY_REFUSALS_TOTAL: &str = "pool_connections_capacity_refusals_total";

/// Histogram (seconds): how long `get` took to hand out a connection.
pub const ACQUIRE_SECONDS: &str = "pool_connections_acquire_seconds";
/// Histogram (seconds): how long creating a connection took.
pub const CREATION_SECONDS: &str = "pool_connections_creation_seconds";
/// Histogram (seconds): how long callers held a connection.
pub const USAGE_SECONDS: &str = "pool_connections_usage_seconds";

/// Every metric name, gauges, counters and histograms.
pub const ALL: [&str; 17] = [
    CONNECTIONS,
    IDLE,
    ACTIVE,
    WAITING,
    PENDING,
    MAX,
    MIN,
    CREATED_TOTAL,
    CLOSED_TOTAL,
    TIMEOUT_TOTAL,
    ERRORS_TOTAL,
    REJECTED_TOTAL,
    LEAK_SUSPECTED_TOTAL,
    CAPACITY_REFUSALS_TOTAL,
    ACQUIRE_SECONDS,
    CREATION_SECONDS,
    USAGE_SECONDS,
];

/// Sends every metric's description (Prometheus `# HELP`) and unit to the
/// current recorder.
///
/// [`PoolMetrics`](crate::PoolMetrics) calls this by itself the first time it
/// sees a pool, so calling it is only needed to have the descriptions before
/// any pool exists.
pub fn describe() {
    describe_gauge!(CONNECTIONS, Unit::Count, "Open connections in the pool, idle and in use together.");
    describe_gauge!(IDLE, Unit::Count, "Open connections waiting in the pool to be handed out.");
    describe_gauge!(ACTIVE, Unit::Count, "Connections handed out to callers.");
    describe_gauge!(WAITING, Unit::Count, "Tasks waiting in get() for a connection.");
    describe_gauge!(PENDING, Unit::Count, "Connections being created right now.");
    describe_gauge!(MAX, Unit::Count, "The most connections the pool may hold (max_size).");
    describe_gauge!(MIN, Unit::Count, "Idle connections the pool keeps ready (min_idle).");
    describe_counter!(CREATED_TOTAL, Unit::Count, "Connections created.");
    describe_counter!(CLOSED_TOTAL, Unit::Count, "Connections closed, by reason.");
    describe_counter!(
        TIMEOUT_TOTAL,
        Unit::Count,
        "get() calls that timed out, by the phase that was running."
    );
    describe_counter!(ERRORS_TOTAL, Unit::Count, "Connection creations that failed or timed out.");
    describe_counter!(
        REJECTED_TOTAL,
        Unit::Count,
        "get() calls refused because max_waiters tasks were waiting."
    );
    describe_counter!(
        LEAK_SUSPECTED_TOTAL,
        Unit::Count,
        "Connections held longer than the leak detection threshold."
    );
    describe_counter!(
        CAPACITY_REFUSALS_TOTAL,
        Unit::Count,
        "Times the server refused a connection for lack of free slots and the pool stopped growing for a cool-down."
    );
    describe_histogram!(ACQUIRE_SECONDS, Unit::Seconds, "Time get() took to hand out a connection.");
    describe_histogram!(CREATION_SECONDS, Unit::Seconds, "Time taken to create a connection.");
    describe_histogram!(USAGE_SECONDS, Unit::Seconds, "Time callers held a connection.");
}

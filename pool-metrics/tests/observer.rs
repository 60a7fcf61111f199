//! `PoolMetrics` driven by a real `pool-core` pool through every event, read
//! back through `metrics-util`'s debugging recorder: each metric's value,
//! labels, unit and description.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fake, Metrics, Outcome, pool, run, until};
use metrics::Unit;
use metrics_util::MetricKind;
use pool_core::{Error, Pool, Pooled};
use pool_metrics::PoolMetrics;
use pool_metrics::names::{
    ACQUIRE_SECONDS, ACTIVE, ALL, CAPACITY_REFUSALS_TOTAL, CLOSED_TOTAL, CONNECTIONS, CREATED_TOTAL,
    CREATION_SECONDS, ERRORS_TOTAL, IDLE, LEAK_SUSPECTED_TOTAL, MAX, MIN, PENDING, REJECTED_TOTAL,
    TIMEOUT_TOTAL, USAGE_SECONDS, WAITING,
};

const REASONS: [&str; 6] = ["idle", "lifetime", "broken", "recycle_failed", "evicted", "closed"];
const PHASES: [&str; 3] = ["wait", "create", "recycle"];

fn secs(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

#[test]
fn every_metric_exists_labelled_described_and_at_zero_once_the_pool_is_built() {
    run(|snapshotter| async move {
        let _pool = pool(&Fake::new(), "orders", 3, pool_metrics::observer()).min_idle(2).build().unwrap();
        let metrics = Metrics::take(&snapshotter);

        for name in ALL {
            assert!(metrics.all().any(|(n, _, _)| n == name), "{name} is registered");
        }
        for (name, labels, metric) in metrics.all() {
            assert!(ALL.contains(&name), "unexpected metric {name}");
            assert_eq!(labels[..].iter().find(|(k, _)| k == "pool").map(|(_, v)| v.as_str()), Some("orders"));
            let description = metric.description.as_deref().unwrap_or_default();
            assert!(description.len() > 10, "{name} has a description: {description:?}");
            let expected_kind = if name.ends_with("_seconds") {
                MetricKind::Histogram
            } else if name.ends_with("_total") {
                MetricKind::Counter
            } else {
                MetricKind::Gauge
            };
            assert_eq!(metric.kind, expected_kind, "{name}");
            let expected_unit = if name.ends_with("_seconds") { Unit::Seconds } else { Unit::Count };
            assert_eq!(metric.unit, Some(expected_unit), "{name}");
        }

        assert_eq!(metrics.gauge(MAX, "orders"), 3);
        assert_eq!(metrics.gauge(MIN, "orders"), 2);
        assert_eq!(metrics.counts("orders"), [0; 5], "the min_idle refill has not run yet");
        for reason in REASONS {
            assert_eq!(metrics.counter(CLOSED_TOTAL, &[("pool", "orders"), ("reason", reason)]), 0);
        }
        for phase in PHASES {
            assert_eq!(metrics.counter(TIMEOUT_TOTAL, &[("pool", "orders"), ("phase", phase)]), 0);
        }
        for name in
            [CREATED_TOTAL, ERRORS_TOTAL, REJECTED_TOTAL, LEAK_SUSPECTED_TOTAL, CAPACITY_REFUSALS_TOTAL]
        {
            assert_eq!(metrics.counter(name, &[("pool", "orders")]), 0, "{name}");
        }
        for name in [ACQUIRE_SECONDS, CREATION_SECONDS, USAGE_SECONDS] {
            assert!(metrics.histogram(name, "orders").is_empty(), "{name}");
        }
    });
}

#[test]
fn gauges_counters_and_histograms_after_gets() {
    run(|snapshotter| async move {
        let fake = Fake::new();
        fake.script_create([Outcome::Slow(secs(0.25)), Outcome::Slow(secs(0.5))]);
        let pool = pool(&fake, "orders", 3, pool_metrics::observer()).build().unwrap();
        let _a = pool.get().await.unwrap();
        let _b = pool.get().await.unwrap();

        let metrics = Metrics::take(&snapshotter);
        let (size, idle, active, waiting, pending) = (2, 0, 2, 0, 0);
        assert_eq!(metrics.counts("orders"), [size, idle, active, waiting, pending]);
        assert_eq!(metrics.gauge(MAX, "orders"), 3);
        assert_eq!(metrics.counter(CREATED_TOTAL, &[("pool", "orders")]), 2);
        assert_eq!(metrics.histogram(CREATION_SECONDS, "orders"), [0.25, 0.5]);
        assert_eq!(metrics.histogram(ACQUIRE_SECONDS, "orders"), [0.25, 0.5], "waited for the creates");
        assert!(metrics.histogram(USAGE_SECONDS, "orders").is_empty());
    });
}

#[test]
fn gauges_and_usage_after_returns() {
    run(|snapshotter| async move {
        let pool = pool(&Fake::new(), "orders", 3, pool_metrics::observer()).build().unwrap();
        let a = pool.get().await.unwrap();
        let b = pool.get().await.unwrap();
        tokio::time::sleep(secs(1.5)).await;
        drop(a);
        tokio::time::sleep(secs(1.0)).await;
        drop(b);
        let again = pool.get().await.unwrap();

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counts("orders"), [2, 1, 1, 0, 0]);
        assert_eq!(metrics.histogram(USAGE_SECONDS, "orders"), [1.5, 2.5]);
        assert_eq!(metrics.histogram(ACQUIRE_SECONDS, "orders"), [0.0, 0.0, 0.0]);
        assert_eq!(metrics.counter(CREATED_TOTAL, &[("pool", "orders")]), 2, "the third get reused one");
        assert_eq!(metrics.histogram(CREATION_SECONDS, "orders").len(), 2);
        drop(again);
    });
}

/// A pool with every connection held and two tasks queued behind them.
async fn full_pool_with_two_waiters(
    observer: Arc<dyn pool_core::Observer>,
) -> (Pool<Fake>, Vec<Pooled<Fake>>) {
    let pool = pool(&Fake::new(), "orders", 3, observer).acquire_timeout(secs(60.0)).build().unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.get().await.unwrap());
    }
    for _ in 0..2 {
        let pool = pool.clone();
        tokio::spawn(async move { drop(pool.get().await) });
    }
    until(|| pool.status().waiting == 2).await;
    (pool, held)
}

#[test]
fn record_status_shows_tasks_that_started_waiting_since_the_last_event() {
    run(|snapshotter| async move {
        let metrics = Arc::new(PoolMetrics::new());
        let (pool, _held) = full_pool_with_two_waiters(metrics.clone()).await;
        metrics.record_status(pool.name(), &pool.status());

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counts("orders"), [3, 0, 3, 2, 0]);
    });
}

#[test]
fn refresh_every_keeps_the_gauges_current_without_events() {
    run(|snapshotter| async move {
        let metrics = Arc::new(PoolMetrics::new());
        let (pool, _held) = full_pool_with_two_waiters(metrics.clone()).await;
        let refresh = metrics.refresh_every(&pool, secs(1.0));
        tokio::time::sleep(secs(1.5)).await;
        drop(refresh);

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counts("orders"), [3, 0, 3, 2, 0]);
    });
}

#[test]
fn a_served_waiter_records_its_wait() {
    run(|snapshotter| async move {
        let metrics = Arc::new(PoolMetrics::new());
        let pool = pool(&Fake::new(), "orders", 1, metrics.clone()).build().unwrap();
        let held = pool.get().await.unwrap();
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.get().await.map(|conn| conn.id) }
        });
        until(|| pool.status().waiting == 1).await;
        tokio::time::sleep(secs(0.75)).await;
        drop(held);
        assert_eq!(waiter.await.unwrap().unwrap(), 0);
        // The last event (the waiter's `Released`) predates the return.
        metrics.record_status(pool.name(), &pool.status());

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.histogram(ACQUIRE_SECONDS, "orders"), [0.0, 0.75]);
        assert_eq!(metrics.histogram(USAGE_SECONDS, "orders"), [0.75, 0.0]);
        assert_eq!(metrics.counts("orders"), [1, 1, 0, 0, 0]);
    });
}

#[test]
fn min_idle_refills_show_as_idle_connections() {
    run(|snapshotter| async move {
        let pool = pool(&Fake::new(), "orders", 4, pool_metrics::observer()).min_idle(2).build().unwrap();
        tokio::time::sleep(secs(1.0)).await;
        assert_eq!(pool.status().idle, 2);

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counts("orders"), [2, 2, 0, 0, 0]);
        assert_eq!([MAX, MIN].map(|name| metrics.gauge(name, "orders")), [4, 2]);
        assert_eq!(metrics.counter(CREATED_TOTAL, &[("pool", "orders")]), 2);
        assert!(metrics.histogram(ACQUIRE_SECONDS, "orders").is_empty());
    });
}

/// Events alone, without `record_status`: what `pool-core` would have to
/// send for the gauges never to lag.
#[test]
fn gauges_are_current_right_after_a_return() {
    run(|snapshotter| async move {
        let pool = pool(&Fake::new(), "orders", 3, pool_metrics::observer()).build().unwrap();
        drop(pool.get().await.unwrap());
        assert_eq!(pool.status().idle, 1);

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counts("orders"), [1, 1, 0, 0, 0]);
    });
}

/// Events alone, without `record_status`: what `pool-core` would have to
/// send for the gauges never to lag.
#[test]
fn gauges_count_tasks_as_soon_as_they_wait() {
    run(|snapshotter| async move {
        let (_pool, _held) = full_pool_with_two_waiters(pool_metrics::observer()).await;

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counts("orders"), [3, 0, 3, 2, 0]);
    });
}

/// Events alone, without `record_status`: a connection being opened shows
/// as pending while `create` runs.
#[test]
fn gauges_count_a_connection_as_pending_while_it_opens() {
    run(|snapshotter| async move {
        let fake = Fake::new();
        fake.script_create([Outcome::Slow(secs(5.0))]);
        let pool = pool(&fake, "orders", 3, pool_metrics::observer()).build().unwrap();
        let opening = {
            let pool = pool.clone();
            tokio::spawn(async move { drop(pool.get().await) })
        };
        until(|| pool.status().creating == 1).await;

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counts("orders"), [0, 0, 0, 0, 1]);
        opening.await.unwrap();
    });
}

/// Events alone, without `record_status`: `resize` moves the max gauge.
#[test]
fn gauges_follow_a_resize() {
    run(|snapshotter| async move {
        let pool = pool(&Fake::new(), "orders", 3, pool_metrics::observer()).build().unwrap();
        pool.resize(7).unwrap();

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.gauge(MAX, "orders"), 7);
    });
}

/// Events reach the observer on the tasks where they happened, so an older
/// status can arrive after a newer one: the gauges keep the newer.
#[test]
fn an_older_status_arriving_last_does_not_turn_the_gauges_back() {
    run(|snapshotter| async move {
        let metrics = Arc::new(PoolMetrics::new());
        let pool = pool(&Fake::new(), "orders", 3, metrics.clone()).build().unwrap();
        let older = pool.status();
        let held = pool.get().await.unwrap();
        let newer = pool.status();
        metrics.record_status("orders", &newer);
        metrics.record_status("orders", &older);

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counts("orders"), [1, 0, 1, 0, 0], "the counts after the get");
        drop(held);
    });
}

/// A pool built to replace one of the same name is not mistaken for an
/// older status of it.
#[test]
fn a_replacement_pool_with_the_same_name_takes_over_the_gauges() {
    run(|snapshotter| async move {
        let metrics = Arc::new(PoolMetrics::new());
        let first = pool(&Fake::new(), "orders", 3, metrics.clone()).build().unwrap();
        let held = [first.get().await.unwrap(), first.get().await.unwrap()];
        drop(held);
        first.close_and_wait(secs(1.0)).await.unwrap();
        let second = pool(&Fake::new(), "orders", 5, metrics.clone()).build().unwrap();
        assert!(second.status().sequence < 10, "its snapshots count from the start again");

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counts("orders"), [0; 5]);
        assert_eq!(metrics.gauge(MAX, "orders"), 5);
    });
}

#[test]
fn a_failed_create_counts_an_error_and_no_creation() {
    run(|snapshotter| async move {
        let fake = Fake::new();
        fake.script_create([Outcome::Fail]);
        let pool = pool(&fake, "orders", 2, pool_metrics::observer()).build().unwrap();
        assert!(matches!(pool.get().await, Err(Error::Backend(_))));
        let _conn = pool.get().await.unwrap();

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counter(ERRORS_TOTAL, &[("pool", "orders")]), 1);
        assert_eq!(metrics.counter(CREATED_TOTAL, &[("pool", "orders")]), 1);
        assert_eq!(metrics.histogram(CREATION_SECONDS, "orders").len(), 1);
        assert_eq!(metrics.counts("orders"), [1, 0, 1, 0, 0]);
    });
}

#[test]
fn timeouts_are_counted_by_phase() {
    run(|snapshotter| async move {
        let observer = pool_metrics::observer();

        // wait: the only connection is held for longer than the acquire timeout.
        let waits = pool(&Fake::new(), "waits", 1, observer.clone()).build().unwrap();
        let _held = waits.get().await.unwrap();
        assert!(matches!(waits.get().await, Err(Error::Timeout { .. })));

        // create: `create` takes longer than `create_timeout`.
        let fake = Fake::new();
        fake.script_create([Outcome::Slow(secs(5.0))]);
        let creates = pool(&fake, "creates", 1, observer.clone())
            .create_timeout(secs(0.5))
            .acquire_timeout(secs(10.0))
            .build()
            .unwrap();
        assert!(matches!(creates.get().await, Err(Error::Timeout { .. })));

        // recycle: checking the idle connection outlasts the acquire timeout.
        let fake = Fake::new();
        fake.script_recycle([Outcome::Slow(secs(5.0))]);
        let recycles = pool(&fake, "recycles", 1, observer.clone()).build().unwrap();
        drop(recycles.get().await.unwrap());
        assert!(matches!(recycles.get().await, Err(Error::Timeout { .. })));

        let metrics = Metrics::take(&snapshotter);
        for (pool, timed_out) in [("waits", "wait"), ("creates", "create"), ("recycles", "recycle")] {
            for phase in PHASES {
                let expected = u64::from(phase == timed_out);
                let labels = [("pool", pool), ("phase", phase)];
                assert_eq!(metrics.counter(TIMEOUT_TOTAL, &labels), expected, "{labels:?}");
            }
        }
        assert_eq!(metrics.counter(ERRORS_TOTAL, &[("pool", "creates")]), 1, "a create timeout is a failure");
        assert_eq!(metrics.counter(ERRORS_TOTAL, &[("pool", "waits")]), 0);
        assert_eq!(metrics.gauge(WAITING, "waits"), 0);
    });
}

#[test]
fn closed_connections_are_counted_by_reason() {
    run(|snapshotter| async move {
        let observer = pool_metrics::observer();
        let fake = Fake::new();
        let build = |name: &str| pool(&fake, name, 2, observer.clone());

        let idle = build("idle").idle_timeout(secs(10.0)).build().unwrap();
        drop(idle.get().await.unwrap());
        let lifetime = build("lifetime").idle_timeout(None).max_lifetime(secs(100.0)).build().unwrap();
        drop(lifetime.get().await.unwrap());
        tokio::time::sleep(secs(200.0)).await;
        assert_eq!(idle.status().size, 0, "reaped as idle");
        assert_eq!(lifetime.status().size, 0, "retired at the end of its lifetime");

        let broken = build("broken").build().unwrap();
        let mut conn = broken.get().await.unwrap();
        conn.broken = true;
        drop(conn);
        Pooled::discard(broken.get().await.unwrap());

        let recycle_failed = build("recycle_failed").build().unwrap();
        let first = recycle_failed.get().await.unwrap().id;
        fake.script_recycle([Outcome::Fail]);
        let replacement = recycle_failed.get().await.unwrap();
        assert_ne!(replacement.id, first, "the connection that failed its check was replaced");

        let evicted = build("evicted").build().unwrap();
        let (a, b) = (evicted.get().await.unwrap(), evicted.get().await.unwrap());
        drop((a, b));
        evicted.evict_all();

        let closed = build("closed").build().unwrap();
        drop(closed.get().await.unwrap());
        closed.close();

        let metrics = Metrics::take(&snapshotter);
        for (pool, expected) in [
            ("idle", 1),
            ("lifetime", 1),
            ("broken", 2),
            ("recycle_failed", 1),
            ("evicted", 2),
            ("closed", 1),
        ] {
            for reason in REASONS {
                let labels = [("pool", pool), ("reason", reason)];
                let expected = if reason == pool { expected } else { 0 };
                assert_eq!(metrics.counter(CLOSED_TOTAL, &labels), expected, "{labels:?}");
            }
        }
        assert_eq!(metrics.counts("evicted"), [0; 5]);
        assert_eq!(metrics.counts("closed"), [0; 5]);
        assert_eq!(metrics.counts("recycle_failed"), [1, 0, 1, 0, 0]);
    });
}

#[test]
fn a_capacity_refusal_counts_one_cool_down_and_one_error() {
    run(|snapshotter| async move {
        let fake = Fake::new();
        fake.script_create([Outcome::Ok, Outcome::Full]);
        let pool =
            pool(&fake, "orders", 2, pool_metrics::observer()).acquire_timeout(secs(60.0)).build().unwrap();
        let held = pool.get().await.unwrap();
        // The pool's second connection is refused: it cools down, and the
        // caller gets the first one when it comes back.
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.get().await.map(drop) }
        });
        until(|| pool.status().cooling_down && pool.status().waiting == 1).await;
        drop(held);
        waiter.await.unwrap().unwrap();

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counter(CAPACITY_REFUSALS_TOTAL, &[("pool", "orders")]), 1);
        assert_eq!(metrics.counter(ERRORS_TOTAL, &[("pool", "orders")]), 1);
    });
}

#[test]
fn rejected_gets_and_suspected_leaks_are_counted() {
    run(|snapshotter| async move {
        let pool = pool(&Fake::new(), "orders", 1, pool_metrics::observer())
            .max_waiters(1)
            .leak_detection_threshold(secs(5.0))
            .acquire_timeout(secs(60.0))
            .build()
            .unwrap();
        let held = pool.get().await.unwrap();
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { drop(pool.get().await) }
        });
        until(|| pool.status().waiting == 1).await;
        assert!(matches!(pool.get().await, Err(Error::Overloaded { .. })));
        tokio::time::sleep(secs(10.0)).await;
        drop(held);
        waiter.await.unwrap();

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counter(REJECTED_TOTAL, &[("pool", "orders")]), 1);
        assert_eq!(metrics.counter(LEAK_SUSPECTED_TOTAL, &[("pool", "orders")]), 1);
    });
}

#[test]
fn several_pools_stay_apart() {
    run(|snapshotter| async move {
        let shared = Arc::new(PoolMetrics::new());
        let fake = Fake::new();
        let a = pool(&fake, "a", 4, shared.clone()).build().unwrap();
        let b = pool(&fake, "b", 5, shared.clone()).build().unwrap();
        let c = pool(&fake, "c", 6, pool_metrics::observer()).build().unwrap();
        let _a = (a.get().await.unwrap(), a.get().await.unwrap());
        let _b = b.get().await.unwrap();
        let _c = (c.get().await.unwrap(), c.get().await.unwrap(), c.get().await.unwrap());

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.counts("a"), [2, 0, 2, 0, 0]);
        assert_eq!(metrics.counts("b"), [1, 0, 1, 0, 0]);
        assert_eq!(metrics.counts("c"), [3, 0, 3, 0, 0]);
        assert_eq!([MAX, MIN].map(|name| metrics.gauge(name, "a")), [4, 0]);
        assert_eq!([MAX, MIN].map(|name| metrics.gauge(name, "b")), [5, 0]);
        assert_eq!([MAX, MIN].map(|name| metrics.gauge(name, "c")), [6, 0]);
        assert_eq!(metrics.counter(CREATED_TOTAL, &[("pool", "a")]), 2);
        assert_eq!(metrics.counter(CREATED_TOTAL, &[("pool", "b")]), 1);
        assert_eq!(metrics.counter(CREATED_TOTAL, &[("pool", "c")]), 3);
        assert_eq!(metrics.histogram(ACQUIRE_SECONDS, "c").len(), 3);
    });
}

#[test]
fn connections_being_created_are_pending() {
    run(|snapshotter| async move {
        let fake = Fake::new();
        fake.script_create([Outcome::Slow(secs(10.0)), Outcome::Slow(secs(1.0))]);
        let pool =
            pool(&fake, "orders", 3, pool_metrics::observer()).acquire_timeout(secs(30.0)).build().unwrap();
        let slow = tokio::spawn({
            let pool = pool.clone();
            async move { drop(pool.get().await) }
        });
        until(|| pool.status().creating == 1).await;
        // A second, quicker create finishes (an event) while the first still runs.
        let _quick = pool.get().await.unwrap();
        assert_eq!(pool.status().creating, 1);

        let metrics = Metrics::take(&snapshotter);
        assert_eq!(metrics.gauge(PENDING, "orders"), 1);
        assert_eq!([CONNECTIONS, IDLE, ACTIVE].map(|name| metrics.gauge(name, "orders")), [1, 0, 1]);
        slow.abort();
    });
}

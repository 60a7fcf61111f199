//! Background housekeeping: idle reaping (never below `min_idle`),
//! lifetimes with jitter, `min_idle` refills, keepalive checks, leak
//! detection, and the end of maintenance when the last handle is dropped.

mod common;

use std::time::Duration;

use common::{Fake, Logs, Outcome, Recorder, Seen, counts, settle};
use pool_core::{DestroyReason, Pool, PoolBuilder, Pooled};
use tokio::time::sleep;

const SECOND: Duration = Duration::from_secs(1);

/// A builder with no housekeeping at all; each test switches on what it checks.
fn builder(fake: &Fake, max_size: usize) -> PoolBuilder<Fake> {
    Pool::builder(fake.clone()).max_size(max_size).idle_timeout(None).max_lifetime(None)
}

async fn get_many(pool: &Pool<Fake>, n: usize) -> Vec<Pooled<Fake>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.get().await.unwrap());
    }
    held
}

#[tokio::test(start_paused = true)]
async fn idle_resources_are_reaped_after_idle_timeout() {
    let fake = Fake::new();
    let pool = builder(&fake, 3).idle_timeout(60 * SECOND).build().unwrap();
    drop(get_many(&pool, 3).await);
    sleep(59 * SECOND).await;
    assert_eq!(counts(&pool), (3, 3, 0, 0, 0), "not idle long enough yet");
    sleep(2 * SECOND).await;
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    assert_eq!(fake.destroyed(DestroyReason::Idle), 3);
}

#[tokio::test(start_paused = true)]
async fn a_resource_used_again_is_not_reaped() {
    let fake = Fake::new();
    let pool = builder(&fake, 2).idle_timeout(60 * SECOND).build().unwrap();
    drop(get_many(&pool, 2).await);
    for _ in 0..5 {
        sleep(40 * SECOND).await;
        drop(pool.get().await.unwrap()); // LIFO: always the same one
    }
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::Idle)]);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn reaping_never_goes_below_min_idle() {
    let fake = Fake::new();
    let pool = builder(&fake, 5).min_idle(2).idle_timeout(60 * SECOND).build().unwrap();
    drop(get_many(&pool, 5).await);
    assert_eq!(counts(&pool), (5, 5, 0, 0, 0));
    sleep(61 * SECOND).await;
    assert_eq!(counts(&pool), (2, 2, 0, 0, 0));
    sleep(3600 * SECOND).await;
    assert_eq!(counts(&pool), (2, 2, 0, 0, 0), "min_idle resources stay however long they idle");
    assert_eq!(fake.destroyed(DestroyReason::Idle), 3);
    assert_eq!(fake.created(), 5);
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_retires_idle_resources() {
    let fake = Fake::new();
    let pool = builder(&fake, 2).max_lifetime(100 * SECOND).build().unwrap();
    drop(get_many(&pool, 2).await);
    sleep(97 * SECOND).await; // jitter takes at most 2.5 s off
    assert_eq!(counts(&pool), (2, 2, 0, 0, 0));
    sleep(3 * SECOND).await;
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    assert_eq!(fake.destroyed(DestroyReason::Lifetime), 2);
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_retires_in_use_resources_when_they_come_back() {
    let fake = Fake::new();
    let pool = builder(&fake, 1).max_lifetime(100 * SECOND).build().unwrap();
    let conn = pool.get().await.unwrap();
    sleep(200 * SECOND).await;
    assert_eq!(fake.destroyed_total(), 0, "never taken from its holder");
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0));
    drop(conn);
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::Lifetime)]);
    assert_eq!(pool.get().await.unwrap().id, 1);
}

#[tokio::test(start_paused = true)]
async fn lifetimes_are_jittered_by_at_most_two_and_a_half_percent() {
    let fake = Fake::new();
    let lifetime = 400 * SECOND;
    let pool = builder(&fake, 50).max_lifetime(lifetime).build().unwrap();
    let held = get_many(&pool, 50).await;
    let mut lifetimes: Vec<Duration> = held
        .iter()
        .map(|c| {
            let info = Pooled::info(c);
            info.expires_at().expect("a lifetime is set") - info.created_at()
        })
        .collect();
    for &l in &lifetimes {
        assert!((390 * SECOND..=lifetime).contains(&l), "{l:?} outside [390 s, 400 s]");
    }
    lifetimes.sort();
    lifetimes.dedup();
    assert!(lifetimes.len() >= 45, "expiries are spread: only {} distinct", lifetimes.len());
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_filled_after_start() {
    let fake = Fake::new();
    let pool = builder(&fake, 4).min_idle(2).build().unwrap();
    settle().await;
    assert_eq!(counts(&pool), (2, 2, 0, 0, 0));
    assert_eq!(fake.created(), 2);
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_refilled_after_a_destroy() {
    let fake = Fake::new();
    let pool = builder(&fake, 4).min_idle(2).build().unwrap();
    settle().await;
    Pooled::discard(pool.get().await.unwrap());
    settle().await;
    assert_eq!(counts(&pool), (2, 2, 0, 0, 0), "refilled after the destroy");
    assert_eq!(fake.created(), 3);
}

#[tokio::test(start_paused = true)]
async fn taking_an_idle_resource_below_min_idle_tops_the_idle_ones_up_at_once() {
    let fake = Fake::new();
    let pool = builder(&fake, 4).min_idle(2).idle_timeout(60 * SECOND).build().unwrap();
    settle().await;
    assert_eq!(counts(&pool), (2, 2, 0, 0, 0));
    let _held = pool.get().await.unwrap();
    settle().await;
    // The get woke maintenance, which refilled without waiting for a round.
    assert_eq!(counts(&pool), (3, 2, 1, 0, 0), "idle ones are kept ready beside the one in use");
}

#[tokio::test(start_paused = true)]
async fn min_idle_refill_retries_with_backoff_after_failures() {
    let fake = Fake::new();
    fake.script_create([Outcome::Fail("connection refused"), Outcome::Fail("connection refused")]);
    let pool = builder(&fake, 2).min_idle(1).build().unwrap();
    sleep(SECOND).await;
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
    assert_eq!(fake.create_calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn keepalive_validates_idle_resources_and_destroys_failing_ones() {
    let fake = Fake::new();
    let pool = builder(&fake, 2).keepalive_interval(30 * SECOND).build().unwrap();
    drop(get_many(&pool, 2).await);
    fake.script_recycle([Outcome::Ok, Outcome::Fail("server closed the connection")]);
    sleep(29 * SECOND).await;
    assert_eq!(fake.recycle_calls(), 0, "not due yet");
    sleep(2 * SECOND).await;
    assert_eq!(fake.recycle_calls(), 2);
    assert_eq!(fake.destroyed_total(), 1);
    assert_eq!(fake.destroyed(DestroyReason::RecycleFailed), 1);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
    sleep(30 * SECOND).await;
    assert_eq!(fake.recycle_calls(), 3, "the survivor is checked again one interval later");
}

#[tokio::test(start_paused = true)]
async fn keepalive_check_that_hangs_is_bounded_and_destroys() {
    let fake = Fake::new();
    let pool = builder(&fake, 1).keepalive_interval(30 * SECOND).recycle_timeout(5 * SECOND).build().unwrap();
    drop(pool.get().await.unwrap());
    fake.script_recycle([Outcome::Never]);
    sleep(31 * SECOND).await;
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0), "being checked counts as in use");
    sleep(5 * SECOND).await;
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::RecycleFailed)]);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn leak_detection_reports_the_source_line_of_the_get() {
    let logs = Logs::default();
    let _logging = tracing::subscriber::set_default(logs.clone());
    let fake = Fake::new();
    let recorder = Recorder::new();
    let pool =
        builder(&fake, 2).leak_detection_threshold(10 * SECOND).observer(recorder.clone()).build().unwrap();
    let (conn, line) = (pool.get().await.unwrap(), line!());
    drop(pool.get().await.unwrap()); // returned in time: never reported
    sleep(9 * SECOND).await;
    assert_eq!(recorder.count(|s| matches!(s, Seen::LeakSuspected { .. })), 0);
    sleep(2 * SECOND).await;
    let leaks: Vec<Seen> =
        recorder.seen().into_iter().filter(|s| matches!(s, Seen::LeakSuspected { .. })).collect();
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    let Seen::LeakSuspected { held, file, line: reported } = &leaks[0] else { unreachable!() };
    assert!(file.ends_with("tests/maintenance.rs"), "{file}");
    assert_eq!(*reported, line);
    assert!(*held >= 10 * SECOND && *held <= 11 * SECOND, "{held:?}");

    let warning = logs.lines().iter().find(|l| l.contains("leak_detection_threshold")).cloned();
    let warning = warning.expect("a warning is logged");
    assert!(warning.starts_with("WARN"), "{warning}");
    assert!(warning.contains(&format!("tests/maintenance.rs:{line}:")), "{warning}");

    sleep(60 * SECOND).await;
    assert_eq!(recorder.count(|s| matches!(s, Seen::LeakSuspected { .. })), 1, "reported once");
    drop(conn);
    assert!(logs.lines().iter().any(|l| l.contains("possible leak was returned")));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_closes_the_pool_and_stops_maintenance() {
    let fake = Fake::new();
    let pool = builder(&fake, 4).min_idle(2).idle_timeout(60 * SECOND).build().unwrap();
    settle().await;
    let held = pool.get().await.unwrap();
    assert_eq!(counts(&pool), (2, 1, 1, 0, 0));

    let clone = pool.clone();
    drop(pool);
    assert!(!clone.is_closed(), "another handle is still alive");
    drop(clone);
    assert_eq!(fake.destroyed(DestroyReason::Closed), 1, "idle ones are destroyed at once");
    drop(held);
    assert_eq!(fake.destroyed(DestroyReason::Closed), 2, "in-use ones when they come back");

    settle().await;
    assert!(fake.only_handle_left(), "the pool (and its manager) is gone: maintenance let go of it");
    let created = fake.created();
    sleep(3600 * SECOND).await;
    assert_eq!(fake.created(), created, "no refill after close");
    assert_eq!(fake.live(), 0);
}

#[test]
fn maintenance_starts_again_on_a_new_runtime_after_its_runtime_shut_down() {
    let fake = Fake::new();
    let paused =
        || tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    // A pool that outlives the runtime its maintenance started on, as one
    // kept in a static and used by one test runtime after another.
    let first = paused();
    let pool = first.block_on(async {
        let pool = builder(&fake, 2).idle_timeout(60 * SECOND).build().unwrap();
        drop(get_many(&pool, 1).await);
        pool
    });
    drop(first);
    paused().block_on(async {
        drop(get_many(&pool, 2).await);
        sleep(61 * SECOND).await;
        assert_eq!(counts(&pool), (0, 0, 0, 0, 0), "reaped by a maintenance task on this runtime");
    });
    assert_eq!(fake.destroyed(DestroyReason::Idle), 2);
}

fn leaks_reported(recorder: &Recorder) -> usize {
    recorder.count(|s| matches!(s, Seen::LeakSuspected { .. }))
}

/// Issue #14 (3): housekeeping used to wait for the background's calls to
/// the backend, so a refill that hung (bounded only by `acquire_timeout`)
/// held leak reports, reaping and retirement up until it timed out.
#[tokio::test(start_paused = true)]
async fn a_hanging_min_idle_refill_does_not_hold_up_leak_reports() {
    let fake = Fake::new();
    fake.script_create([Outcome::Never]);
    let recorder = Recorder::new();
    let pool = builder(&fake, 2)
        .min_idle(1)
        .acquire_timeout(60 * SECOND)
        .leak_detection_threshold(10 * SECOND)
        .observer(recorder.clone())
        .build()
        .unwrap();
    settle().await;
    assert_eq!((fake.create_calls(), counts(&pool)), (1, (0, 0, 0, 1, 0)), "the refill hangs");
    let _leaked = pool.get().await.unwrap();
    sleep(11 * SECOND).await;
    assert_eq!(leaks_reported(&recorder), 1, "reported while the refill still hangs");
    assert_eq!(counts(&pool).3, 1, "it does");
}

/// Issue #14 (3), for a keepalive check that hangs.
#[tokio::test(start_paused = true)]
async fn a_hanging_keepalive_check_does_not_hold_up_leak_reports() {
    let fake = Fake::new();
    let recorder = Recorder::new();
    let pool = builder(&fake, 2)
        .keepalive_interval(30 * SECOND)
        .acquire_timeout(60 * SECOND)
        .leak_detection_threshold(40 * SECOND)
        .observer(recorder.clone())
        .build()
        .unwrap();
    let (checked, _leaked) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    drop(checked);
    fake.script_recycle([Outcome::Never]);
    sleep(31 * SECOND).await;
    assert_eq!(fake.recycle_calls(), 1, "the keepalive check hangs");
    sleep(10 * SECOND).await;
    assert_eq!(leaks_reported(&recorder), 1, "reported while the check still hangs");
    assert_eq!(counts(&pool), (2, 0, 2, 0, 0), "it does");
}

/// Issue #14 (3), for idle reaping and lifetime retirement: both used to
/// wait until the hanging refill timed out.
#[tokio::test(start_paused = true)]
async fn a_hanging_min_idle_refill_does_not_hold_up_reaping_or_retirement() {
    let fake = Fake::new();
    fake.script_create([Outcome::Never]);
    let pool = builder(&fake, 4)
        .min_idle(1)
        .acquire_timeout(120 * SECOND)
        .idle_timeout(10 * SECOND)
        .max_lifetime(30 * SECOND)
        .build()
        .unwrap();
    settle().await;
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0), "the refill hangs");
    drop(get_many(&pool, 2).await);
    assert_eq!(counts(&pool), (2, 2, 0, 1, 0));
    sleep(11 * SECOND).await;
    assert_eq!(fake.destroyed(DestroyReason::Idle), 1, "reaped down to min_idle while the refill hangs");
    sleep(20 * SECOND).await;
    assert_eq!(fake.destroyed(DestroyReason::Lifetime), 1, "retired while the refill hangs");
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0), "it does");
}

/// Issue #14 (3), for idle reaping and lifetime retirement behind a
/// hanging keepalive check.
#[tokio::test(start_paused = true)]
async fn a_hanging_keepalive_check_does_not_hold_up_reaping_or_retirement() {
    let fake = Fake::new();
    let pool = builder(&fake, 3)
        .min_idle(1)
        .keepalive_interval(30 * SECOND)
        .acquire_timeout(120 * SECOND)
        .recycle_timeout(120 * SECOND)
        .idle_timeout(5 * SECOND)
        .max_lifetime(45 * SECOND)
        .build()
        .unwrap();
    let mut held = get_many(&pool, 3).await;
    drop(held.remove(0));
    fake.script_recycle([Outcome::Never]);
    sleep(31 * SECOND).await;
    assert_eq!(fake.recycle_calls(), 1, "the keepalive check of the one idle resource hangs");
    drop(held);
    assert_eq!(counts(&pool), (3, 2, 1, 0, 0), "two more idle, not due for a check yet");
    sleep(6 * SECOND).await;
    assert_eq!(fake.destroyed(DestroyReason::Idle), 1, "reaped down to min_idle while the check hangs");
    sleep(9 * SECOND).await;
    assert_eq!(fake.destroyed(DestroyReason::Lifetime), 1, "retired while the check hangs");
    assert_eq!((fake.recycle_calls(), counts(&pool)), (1, (1, 0, 1, 0, 0)), "it does");
}

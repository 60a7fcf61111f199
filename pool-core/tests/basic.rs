//! The everyday path: get, return, reuse, counts, reuse order, detach,
//! discard, `try_get`, settings validation, and the size of `get`'s future.

mod common;

use std::time::Duration;

use common::{Conn, Fake, Outcome, Recorder, Seen, counts};
use pool_core::{DestroyReason, Error, Pool, Pooled, Reuse};

fn pool(fake: &Fake, max_size: usize) -> Pool<Fake> {
    Pool::builder(fake.clone()).name("basic").max_size(max_size).build().expect("valid settings")
}

#[tokio::test(start_paused = true)]
async fn a_returned_resource_is_reused() {
    let fake = Fake::new();
    let pool = pool(&fake, 2);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));

    let first = pool.get().await.unwrap();
    assert_eq!(first.id, 0);
    let first_checkouts = Pooled::info(&first).checkouts();
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0));
    drop(first);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));

    let again = pool.get().await.unwrap();
    assert_eq!(again.id, 0, "the idle resource is handed out again");
    assert_eq!(Pooled::info(&again).checkouts(), first_checkouts + 1);
    assert_eq!(fake.created(), 1);
    assert_eq!(fake.recycle_calls(), 1, "an idle resource is checked before reuse");
    drop(again);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn status_counts_creating_and_waiting_at_each_step() {
    let fake = Fake::new();
    fake.script_create([Outcome::Slow(Duration::from_secs(1))]);
    let pool = pool(&fake, 1);

    let creator = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(Pooled::detach) }
    });
    common::settle().await;
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0), "one create in flight");

    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    common::settle().await;
    assert_eq!(counts(&pool), (0, 0, 0, 1, 1), "the second caller waits: the only slot is taken");

    let detached: Conn = creator.await.unwrap().unwrap();
    assert_eq!(detached.id, 0);
    // Detaching freed the slot, so the waiter creates its own.
    assert_eq!(waiter.await.unwrap().unwrap(), 1);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn lifo_hands_out_the_most_recently_returned() {
    let fake = Fake::new();
    let pool = pool(&fake, 3);
    let (a, b, c) = (pool.get().await.unwrap(), pool.get().await.unwrap(), pool.get().await.unwrap());
    drop((a, b, c)); // returned in order 0, 1, 2
    assert_eq!(pool.get().await.unwrap().id, 2);
}

#[tokio::test(start_paused = true)]
async fn fifo_hands_out_the_least_recently_returned() {
    let fake = Fake::new();
    let pool = Pool::builder(fake.clone()).max_size(3).reuse(Reuse::Fifo).build().unwrap();
    let (a, b, c) = (pool.get().await.unwrap(), pool.get().await.unwrap(), pool.get().await.unwrap());
    drop((a, b, c));
    let ids: Vec<usize> = {
        let first = pool.get().await.unwrap();
        let second = pool.get().await.unwrap();
        vec![first.id, second.id]
    };
    assert_eq!(ids, [0, 1]);
}

#[tokio::test(start_paused = true)]
async fn detach_frees_the_slot_and_the_pool_forgets_the_resource() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let conn = Pooled::detach(pool.get().await.unwrap());
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    let next = pool.get().await.unwrap();
    assert_ne!(next.id, conn.id, "the slot was reused for a new resource");
    assert_eq!(fake.destroyed_total(), 0, "a detached resource is not destroyed");
}

#[tokio::test(start_paused = true)]
async fn discard_destroys_as_broken_and_frees_the_slot() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    Pooled::discard(pool.get().await.unwrap());
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::Broken)]);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    assert_eq!(pool.get().await.unwrap().id, 1);
}

#[tokio::test(start_paused = true)]
async fn a_resource_broken_on_return_is_destroyed_not_kept() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let conn = pool.get().await.unwrap();
    conn.break_it();
    drop(conn);
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::Broken)]);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_failed_check_replaces_the_idle_resource_transparently() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    drop(pool.get().await.unwrap());
    fake.script_recycle([Outcome::Fail("connection reset")]);
    let conn = pool.get().await.expect("the caller gets a fresh one");
    assert_eq!(conn.id, 1);
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::RecycleFailed)]);
}

#[tokio::test(start_paused = true)]
async fn try_get_is_exhausted_when_full_and_never_queues() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let held = pool.try_get().await.expect("a free slot");
    let err = pool.try_get().await.unwrap_err();
    assert!(matches!(err, Error::Exhausted { max_size: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("try_get does not wait"), "{err}");
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0), "try_get did not queue");

    // Also exhausted while others wait, even at the instant something frees up.
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    common::settle().await;
    assert_eq!(pool.status().waiting, 1);
    drop(held);
    assert!(matches!(pool.try_get().await, Err(Error::Exhausted { .. })));
    assert_eq!(waiter.await.unwrap().unwrap(), 0);
    assert_eq!(pool.try_get().await.unwrap().id, 0, "idle again: try_get takes it");
}

#[tokio::test(start_paused = true)]
async fn max_waiters_refuses_at_once_with_overloaded() {
    let fake = Fake::new();
    let recorder = Recorder::new();
    let pool =
        Pool::builder(fake.clone()).max_size(1).max_waiters(1).observer(recorder.clone()).build().unwrap();
    let _held = pool.get().await.unwrap();
    let queued = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    common::settle().await;
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, Error::Overloaded { max_waiters: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("max_waiters"), "{err}");
    assert_eq!(recorder.count(|s| *s == Seen::Rejected), 1);
    assert_eq!(pool.status().waiting, 1);
    queued.abort();
}

#[test]
fn builder_errors_name_the_setting_and_the_value() {
    let build = |f: fn(pool_core::PoolBuilder<Fake>) -> pool_core::PoolBuilder<Fake>| {
        f(Pool::builder(Fake::new())).build().map(drop).unwrap_err()
    };
    let cases: [(pool_core::BuildError, &str, &str); 9] = [
        (build(|b| b.max_size(0)), "max_size", "0"),
        (build(|b| b.max_size(2).min_idle(3)), "min_idle", "3"),
        (build(|b| b.name("")), "name", "\"\""),
        (build(|b| b.acquire_timeout(Duration::ZERO)), "acquire_timeout", "0ns"),
        (build(|b| b.create_timeout(Duration::ZERO)), "create_timeout", "0ns"),
        (build(|b| b.recycle_timeout(Duration::ZERO)), "recycle_timeout", "0ns"),
        (build(|b| b.idle_timeout(Duration::ZERO)), "idle_timeout", "0ns"),
        (build(|b| b.max_lifetime(Duration::ZERO)), "max_lifetime", "0ns"),
        (build(|b| b.max_waiters(0)), "max_waiters", "0"),
    ];
    for (err, setting, value) in cases {
        assert_eq!((err.setting(), err.value()), (setting, value));
        let text = err.to_string();
        assert!(text.contains(&format!("{setting} = {value}")), "{text}");
    }
    let more = [
        (build(|b| b.keepalive_interval(Duration::ZERO)), "keepalive_interval"),
        (build(|b| b.leak_detection_threshold(Duration::ZERO)), "leak_detection_threshold"),
    ];
    for (err, setting) in more {
        assert_eq!(err.setting(), setting);
    }
}

#[test]
fn optional_settings_switched_off_with_none_are_valid() {
    let pool = Pool::builder(Fake::new())
        .max_size(1)
        .min_idle(1)
        .create_timeout(None)
        .recycle_timeout(None)
        .idle_timeout(None)
        .max_lifetime(None)
        .keepalive_interval(None)
        .max_waiters(None)
        .leak_detection_threshold(None)
        .build();
    assert!(pool.is_ok());
}

#[tokio::test(start_paused = true)]
async fn resize_to_zero_is_refused_and_changes_nothing() {
    let pool = pool(&Fake::new(), 2);
    let err = pool.resize(0).unwrap_err();
    assert_eq!((err.setting(), err.value()), ("max_size", "0"));
    assert_eq!(pool.status().max_size, 2);
}

#[tokio::test(start_paused = true)]
async fn debug_shows_the_name_and_counts() {
    let pool = pool(&Fake::new(), 2);
    let _held = pool.get().await.unwrap();
    let text = format!("{pool:?}");
    assert!(text.starts_with("Pool { name: \"basic\", status: Status {"), "{text}");
    assert!(text.contains("max_size: 2") && text.contains("size: 1") && text.contains("in_use: 1"), "{text}");
    assert_eq!(pool.name(), "basic");
}

#[tokio::test(start_paused = true)]
async fn events_trace_a_get_and_a_return() {
    let fake = Fake::new();
    let recorder = Recorder::new();
    let pool = Pool::builder(fake.clone()).observer(recorder.clone()).build().unwrap();
    let conn = pool.get().await.unwrap();
    tokio::time::advance(Duration::from_millis(5)).await;
    drop(conn);
    assert_eq!(
        recorder.seen(),
        [
            Seen::Started,
            Seen::Creating,
            Seen::Created,
            Seen::Acquired(Duration::ZERO),
            Seen::Released(Duration::from_millis(5))
        ]
    );
}

#[test]
fn outside_a_runtime_get_works_until_it_must_wait_then_fails_with_no_runtime() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let std::task::Poll::Ready(Ok(held)) = common::poll_once(std::pin::pin!(pool.get())) else {
        panic!("an instant create needs no runtime");
    };
    let std::task::Poll::Ready(err) = common::poll_once(std::pin::pin!(pool.get())) else {
        panic!("a get that must wait fails at once outside a runtime");
    };
    assert!(matches!(err, Err(Error::NoRuntime)), "{err:?}");
    assert!(err.unwrap_err().to_string().contains("inside a Tokio runtime"));
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0), "its place in the queue was given up");
    drop(held);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
}

/// A manager whose resources cost nothing, so the size of `get`'s future
/// below is the pool's own.
struct Noop;

impl pool_core::Manager for Noop {
    type Resource = u8;
    type Error = std::io::Error;

    async fn create(&self) -> Result<u8, std::io::Error> {
        Ok(0)
    }
}

#[tokio::test]
async fn the_get_future_carries_only_the_fast_path() {
    let pool = Pool::builder(Noop).build().expect("valid settings");
    let get = pool.get();
    let size = std::mem::size_of_val(&get);
    // 672 bytes with the slow path inline, whose moves cost the
    // uncontended get more than boxing it costs a get that waits.
    assert!(size <= 320, "get's future is {size} bytes: is the slow path inline again?");
    drop(get.await.expect("a resource"));
}

#[tokio::test(start_paused = true)]
async fn snapshots_are_numbered_per_pool_and_events_carry_them_in_order() {
    let fake = Fake::new();
    let recorder = Recorder::new();
    let pool = Pool::builder(fake.clone()).observer(recorder.clone()).build().unwrap();
    let other = self::pool(&fake, 1);
    let (first, second) = (pool.status(), pool.status());
    assert!(second.sequence > first.sequence);
    assert_eq!(first.pool_id, second.pool_id);
    assert_ne!(first.pool_id, other.status().pool_id, "each pool has a number of its own");

    drop(pool.get().await.unwrap());
    let sequences: Vec<u64> = recorder.statuses().iter().map(|status| status.sequence).collect();
    assert!(sequences.windows(2).all(|pair| pair[0] < pair[1]), "{sequences:?}");
    assert!(pool.status().sequence > *sequences.last().unwrap());
}

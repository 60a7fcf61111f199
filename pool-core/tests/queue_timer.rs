//! The queue's one timer: waiters time out in order, each after exactly
//! `acquire_timeout`, with no timer of their own; a waiter served at the
//! last moment gets the resource, not a timeout; and the timer task comes
//! back on another runtime when the one it ran on shuts down.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{Fake, counts};
use pool_core::{Error, Pool, TimeoutPhase};
use tokio::time::Instant;

const ACQUIRE: Duration = Duration::from_secs(5);

fn pool(fake: &Fake) -> Pool<Fake> {
    Pool::builder(fake.clone()).max_size(1).acquire_timeout(ACQUIRE).build().unwrap()
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
}

/// How long a `get` that timed out waited; panics on anything else.
fn waited<T: std::fmt::Debug>(result: Result<T, Error<common::FakeError>>) -> Duration {
    match result {
        Err(Error::Timeout { phase: TimeoutPhase::Wait, elapsed, .. }) => elapsed,
        other => panic!("expected a wait timeout, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn waiters_that_joined_at_different_times_each_time_out_after_exactly_acquire_timeout() {
    let fake = Fake::new();
    let pool = pool(&fake);
    let _held = pool.get().await.unwrap();
    let start = Instant::now();
    let mut waiters = Vec::new();
    for i in 0..200u64 {
        let pool = pool.clone();
        waiters.push(tokio::spawn(async move {
            let result = pool.get().await;
            (waited(result), Instant::now())
        }));
        // Joins spread over more than one timeout, so the timer is re-armed
        // for later deadlines while earlier waiters are still queued.
        tokio::time::sleep(Duration::from_millis(37 * (i % 5 + 1))).await;
    }
    let mut previous = start;
    for waiter in waiters {
        let (elapsed, at) = waiter.await.unwrap();
        assert_eq!(elapsed, ACQUIRE, "every waiter waits its whole timeout, no more");
        assert!(at >= previous, "they time out in the order they joined");
        previous = at;
    }
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0), "no place is left in the queue");
}

#[tokio::test(start_paused = true)]
async fn a_waiter_served_just_before_its_deadline_gets_the_resource() {
    let fake = Fake::new();
    let pool = pool(&fake);
    let held = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|conn| conn.id) }
    });
    tokio::time::sleep(Duration::from_millis(4_999)).await;
    drop(held);
    assert_eq!(waiter.await.unwrap().unwrap(), 0, "served, not timed out");
    tokio::time::sleep(ACQUIRE * 2).await;
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_joins_after_the_queue_emptied_still_times_out() {
    // The timer stays armed for an old deadline after the queue empties;
    // a later waiter must not be forgotten when it fires early for it.
    let fake = Fake::new();
    let pool = pool(&fake);
    let held = pool.get().await.unwrap();
    let first = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(held);
    first.await.unwrap().unwrap();
    let _held = pool.get().await.unwrap();
    let joined = Instant::now();
    let result = pool.get().await;
    assert_eq!((waited(result), joined.elapsed()), (ACQUIRE, ACQUIRE));
}

#[test]
fn the_queue_timer_starts_again_on_a_new_runtime_after_its_runtime_shut_down() {
    let fake = Fake::new();
    // A pool that outlives the runtime it was first used on, as one kept in
    // a static and used by one test runtime after another.
    let first = paused_runtime();
    let (pool, held) = first.block_on(async {
        let pool = pool(&fake);
        let held = pool.get().await.unwrap();
        waited(pool.get().await);
        (pool, held)
    });
    drop(first);
    let second = paused_runtime();
    second.block_on(async {
        let started = Instant::now();
        // Bounded, so a timer that never comes back fails the test instead of hanging it.
        let result = tokio::time::timeout(ACQUIRE * 2, pool.get()).await.expect("the waiter timed out");
        assert_eq!(waited(result), ACQUIRE);
        assert_eq!(started.elapsed(), ACQUIRE);
    });
    drop(held);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
}

#[test]
fn a_waiter_on_another_runtime_still_times_out_when_the_timer_runtime_shuts_down() {
    let fake = Fake::new();
    let timer_runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let pool = pool(&fake);
    // The timer task starts on `timer_runtime`: its first waiter times out there.
    let held = timer_runtime.block_on(async {
        let held = pool.get().await.unwrap();
        let short = pool.clone();
        // Joins, starts the timer here, and is cancelled at once.
        let _ = tokio::time::timeout(Duration::from_millis(1), short.get()).await;
        held
    });
    // A waiter on a second runtime, in its own thread, whose deadline the
    // timer on the first runtime watches.
    let (joined_tx, joined_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn({
        let pool = pool.clone();
        move || {
            let result = paused_runtime().block_on(async move {
                let mut get = std::pin::pin!(pool.get());
                assert!(common::poll_once(get.as_mut()).is_pending());
                joined_tx.send(()).unwrap();
                get.await.map(drop)
            });
            done_tx.send(result).unwrap();
        }
    });
    joined_rx.recv().unwrap();
    assert_eq!(counts(&pool).4, 1, "the second runtime's task waits");
    timer_runtime.shutdown_background();
    // Without a restart the waiter would wait forever (nothing comes back):
    // the dying timer wakes it, and it starts the timer on its own runtime,
    // whose paused clock then runs to the deadline.
    let result = done_rx.recv_timeout(Duration::from_secs(60)).expect("the waiter timed out");
    assert_eq!(waited(result), ACQUIRE);
    drop(held);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
}

#[test]
fn without_timers_a_get_that_must_wait_panics_with_tokios_message_and_no_task_is_respawned() {
    let fake = Fake::new();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let pool = runtime.block_on(async { pool(&fake) });
    // Maintenance starts with the pool and dies at its first sleep.
    runtime.block_on(tokio::task::yield_now());
    let alive = || runtime.handle().metrics().num_alive_tasks();
    assert_eq!(alive(), 0);
    let held = runtime.block_on(async { pool.get().await }).unwrap();
    assert_eq!(alive(), 0, "a task that panicked is not started again");
    for _ in 0..2 {
        // As a `get` arming its own timer would; and again the second time,
        // rather than waiting without a deadline.
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async { pool.get().await.map(drop) })
        }))
        .expect_err("a get that must wait needs timers");
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .map(str::to_owned)
            .or_else(|| panic.downcast_ref::<String>().cloned());
        assert!(message.as_deref().is_some_and(|m| m.contains("timers are disabled")), "{message:?}");
        assert_eq!(counts(&pool).4, 0, "its place in the queue was given up");
    }
    drop(held);
    let id = runtime.block_on(async { pool.get().await.map(|conn| conn.id) });
    assert_eq!(id.unwrap(), 0, "the fast path still works");
}

#[test]
fn timeouts_cancellations_and_handoffs_race_on_two_threads_without_losing_anything() {
    // Real time on a two-thread runtime: the queue's timer, returns and
    // cancellations really race. Only the outcome is checked, never a time.
    let fake = Fake::new();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let served = runtime.block_on(async {
        let pool = Pool::builder(fake.clone())
            .max_size(2)
            .acquire_timeout(Duration::from_millis(2))
            .build()
            .unwrap();
        let mut tasks = Vec::new();
        for seed in 0..32u64 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let mut served = 0;
                let mut n = seed;
                for _ in 0..1000 {
                    n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    let patience = Duration::from_micros(300 + (n >> 60) * 200);
                    match tokio::time::timeout(patience, pool.get()).await {
                        Ok(Ok(conn)) => {
                            served += 1;
                            if n & 4 == 0 {
                                tokio::task::yield_now().await;
                            }
                            drop(conn);
                        }
                        Ok(Err(Error::Timeout { phase: TimeoutPhase::Wait, .. })) | Err(_) => {}
                        Ok(Err(other)) => panic!("unexpected error: {other}"),
                    }
                    let status = pool.status();
                    assert!(status.idle <= status.size && status.size <= status.max_size, "{status:?}");
                }
                served
            }));
        }
        let mut served = 0;
        for task in tasks {
            served += task.await.unwrap();
        }
        assert_eq!(counts(&pool), (2, 2, 0, 0, 0), "nothing lost, nobody left waiting");
        served
    });
    assert!(served > 0);
    assert_eq!(fake.created(), 2, "no resource was lost and replaced");
}

//! Closing: new and waiting gets fail at once, idle resources go at once,
//! in-use ones as they come back, and `close_and_wait` waits for them.

mod common;

use std::time::Duration;

use common::{Fake, Outcome, Recorder, Seen, counts, settle, slow};
use pool_core::{CloseTimedOut, DestroyReason, Error, Pool, Pooled};
use tokio::time::{Instant, sleep};

fn pool(fake: &Fake, max_size: usize) -> Pool<Fake> {
    Pool::builder(fake.clone()).max_size(max_size).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn get_fails_with_closed_after_close() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    pool.close();
    assert!(pool.is_closed());
    assert!(matches!(pool.get().await, Err(Error::Closed)));
    assert!(matches!(pool.try_get().await, Err(Error::Closed)));
    assert_eq!(
        Error::<common::FakeError>::Closed.to_string(),
        "the pool is closed and hands out nothing more"
    );
    assert_eq!(fake.create_calls(), 0);
    assert!(pool.status().closed);
}

#[tokio::test(start_paused = true)]
async fn waiting_gets_fail_with_closed_at_once() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let _held = pool.get().await.unwrap();
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let pool = pool.clone();
        waiters.push(tokio::spawn(async move { pool.get().await.map(|_| ()) }));
    }
    settle().await;
    assert_eq!(pool.status().waiting, 3);
    let start = Instant::now();
    pool.close();
    assert_eq!(pool.status().waiting, 0);
    for waiter in waiters {
        assert!(matches!(waiter.await.unwrap(), Err(Error::Closed)));
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn close_destroys_idle_resources_at_once_and_in_use_ones_on_return() {
    let fake = Fake::new();
    let recorder = Recorder::new();
    let pool = Pool::builder(fake.clone()).max_size(3).observer(recorder.clone()).build().unwrap();
    let (a, b, c) = (pool.get().await.unwrap(), pool.get().await.unwrap(), pool.get().await.unwrap());
    drop((a, b));
    pool.close();
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::Closed), (1, DestroyReason::Closed)]);
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0));
    drop(c);
    assert_eq!(fake.destroyed(DestroyReason::Closed), 3);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    pool.close(); // idempotent
    assert_eq!(recorder.count(|s| *s == Seen::Closed), 1);
}

#[tokio::test(start_paused = true)]
async fn close_and_wait_returns_once_everything_in_use_is_back() {
    let fake = Fake::new();
    let pool = pool(&fake, 2);
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    tokio::spawn(async move {
        sleep(Duration::from_secs(3)).await;
        drop(a);
        sleep(Duration::from_secs(2)).await;
        drop(b);
    });
    let start = Instant::now();
    pool.close_and_wait(Duration::from_secs(60)).await.expect("both come back in time");
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(fake.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn close_and_wait_times_out_naming_how_many_are_still_out() {
    let fake = Fake::new();
    let pool = pool(&fake, 3);
    let held = (pool.get().await.unwrap(), pool.get().await.unwrap());
    drop(pool.get().await.unwrap()); // idle: destroyed by the close
    let err = pool.close_and_wait(Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(err, CloseTimedOut { outstanding: 2, resource: "connection" });
    assert!(err.to_string().contains("2 connection(s) were still checked out"), "{err}");
    assert!(pool.is_closed());
    drop(held);
    assert_eq!(fake.live(), 0);
    pool.close_and_wait(Duration::from_secs(1)).await.expect("nothing left");
}

#[tokio::test(start_paused = true)]
async fn close_while_a_create_is_in_flight_destroys_the_new_resource() {
    let fake = Fake::new();
    fake.script_create([slow(2000)]);
    let pool = pool(&fake, 1);
    let getter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    settle().await;
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0));
    let start = Instant::now();
    pool.close_and_wait(Duration::from_secs(60)).await.expect("the create finishes in time");
    assert_eq!(start.elapsed(), Duration::from_secs(2), "close_and_wait waited for the create");
    assert!(matches!(getter.await.unwrap(), Err(Error::Closed)));
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::Closed)]);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn close_while_a_create_hangs_ends_when_the_get_times_out() {
    let fake = Fake::new();
    fake.create_always(Outcome::Never);
    let pool =
        Pool::builder(fake.clone()).max_size(1).acquire_timeout(Duration::from_secs(5)).build().unwrap();
    let getter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    settle().await;
    let start = Instant::now();
    pool.close_and_wait(Duration::from_secs(60)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert!(getter.await.unwrap().unwrap_err().is_timeout());
}

#[tokio::test(start_paused = true)]
async fn close_and_wait_ends_as_soon_as_the_last_resource_is_detached() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let held = pool.get().await.unwrap();
    let closing = tokio::spawn({
        let pool = pool.clone();
        async move { pool.close_and_wait(Duration::from_secs(60)).await }
    });
    settle().await;
    assert!(!closing.is_finished());
    let start = Instant::now();
    let _conn = Pooled::detach(held);
    closing.await.unwrap().expect("nothing is left in the pool");
    assert_eq!(start.elapsed(), Duration::ZERO, "not only when the 60 s pass");
}

#[tokio::test(start_paused = true)]
async fn close_and_wait_ends_when_a_waiter_granted_a_slot_is_cancelled() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let held = pool.get().await.unwrap();
    let mut waiter = Box::pin(pool.get());
    assert!(common::poll_once(waiter.as_mut()).is_pending());
    assert_eq!(pool.status().waiting, 1);
    Pooled::discard(held); // the freed slot is granted to the waiter, not yet polled
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0));

    let closing = tokio::spawn({
        let pool = pool.clone();
        async move { pool.close_and_wait(Duration::from_secs(60)).await }
    });
    settle().await;
    assert!(!closing.is_finished(), "the granted slot is outstanding");
    let start = Instant::now();
    drop(waiter); // cancelled before it ever created anything
    closing.await.unwrap().expect("nothing is left in the pool");
    assert_eq!(start.elapsed(), Duration::ZERO, "not only when the 60 s pass");
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_granted_a_resource_before_close_still_gets_it() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let held = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    settle().await;
    drop(held); // handed to the waiter before it runs again
    pool.close();
    assert_eq!(waiter.await.unwrap().unwrap(), 0, "it was already the waiter's");
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::Closed)], "and destroyed when it came back");
}

#[tokio::test(start_paused = true)]
async fn background_tasks_end_with_close_and_gets_on_a_closed_pool_start_none() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let held = pool.get().await.unwrap();
    // A waiter that times out starts the queue's timer beside maintenance.
    let waited = tokio::time::timeout(Duration::from_secs(1), pool.get()).await;
    assert!(waited.is_err());
    let alive = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    assert_eq!(alive(), 2, "maintenance and the queue timer");
    pool.close();
    drop(held);
    // Let both tasks see the close and end.
    sleep(Duration::from_millis(1)).await;
    assert_eq!(alive(), 0);
    for _ in 0..10 {
        // Fails at once: a task it spawned would not have run yet.
        assert!(matches!(pool.get().await, Err(Error::Closed)));
    }
    assert_eq!(alive(), 0, "a closed pool starts no task again");
}

/// Fails `n` gets in a row, so the next create has to wait out a backoff.
async fn fail_creates(pool: &Pool<Fake>, fake: &Fake, n: usize) {
    fake.script_create(std::iter::repeat_n(Outcome::Fail("refused"), n));
    for _ in 0..n {
        assert!(matches!(pool.get().await, Err(Error::Backend(_))));
    }
}

/// Issue #14 (2): a get waiting out a create backoff used to sleep on
/// through a close, then open a new connection for a closed pool, and
/// `close_and_wait` waited for it.
#[tokio::test(start_paused = true)]
async fn close_stops_a_get_waiting_out_a_create_backoff() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    fail_creates(&pool, &fake, 6).await;
    let calls = fake.create_calls();
    let getter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    settle().await;
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0), "backing off, its slot reserved");
    let start = Instant::now();
    pool.close_and_wait(Duration::from_secs(60)).await.expect("nothing is left in the pool");
    assert_eq!(start.elapsed(), Duration::ZERO, "not only when the backoff is over");
    assert!(matches!(getter.await.unwrap(), Err(Error::Closed)));
    sleep(Duration::from_secs(5)).await;
    assert_eq!(fake.create_calls(), calls, "nothing opened after the close");
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
}

/// Issue #14 (2), the background refill's side of it.
#[tokio::test(start_paused = true)]
async fn close_stops_a_min_idle_refill_waiting_out_a_create_backoff() {
    let fake = Fake::new();
    fake.create_always(Outcome::Fail("refused"));
    let pool = Pool::builder(fake.clone()).max_size(2).min_idle(1).build().unwrap();
    // Long enough for the delay between refills to reach its cap.
    sleep(Duration::from_secs(10)).await;
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0), "a refill waits for its next turn");
    fake.create_always(Outcome::Ok);
    let calls = fake.create_calls();
    let start = Instant::now();
    pool.close_and_wait(Duration::from_secs(60)).await.expect("nothing is left in the pool");
    assert_eq!(start.elapsed(), Duration::ZERO, "not only when the backoff is over");
    sleep(Duration::from_secs(5)).await;
    assert_eq!(fake.create_calls(), calls, "nothing opened after the close");
    assert_eq!(fake.live(), 0);
}

//! `max_concurrent_creates`: at most that many creates run at once, for
//! callers of `get` and `min_idle` refills together; a `get` that would
//! create beyond it waits in the queue, in turn, for a returned resource or
//! for a create's turn, within its own deadline.

mod common;

use std::time::Duration;

use common::{Fake, Invariants, Outcome, counts, settle, spawn_get};
use pool_core::{DEFAULT_MAX_CONCURRENT_CREATES, Error, Pool, PoolBuilder, TimeoutPhase};

const ACQUIRE: Duration = Duration::from_secs(5);

fn builder(fake: &Fake, max_size: usize, max_concurrent_creates: usize) -> PoolBuilder<Fake> {
    Pool::builder(fake.clone())
        .max_size(max_size)
        .max_concurrent_creates(max_concurrent_creates)
        .acquire_timeout(ACQUIRE)
        .idle_timeout(None)
        .max_lifetime(None)
}

#[test]
fn max_concurrent_creates_defaults_to_two_and_must_be_at_least_one() {
    assert_eq!(DEFAULT_MAX_CONCURRENT_CREATES, 2);
    let error = builder(&Fake::new(), 4, 0).build().expect_err("0 is refused");
    assert_eq!(error.setting(), "max_concurrent_creates");
    assert_eq!(error.to_string(), "invalid pool setting max_concurrent_creates = 0: must be at least 1");
}

#[tokio::test(start_paused = true)]
async fn creates_in_flight_never_exceed_max_concurrent_creates_for_gets_and_refills_together() {
    let fake = Fake::new();
    fake.create_always(Outcome::Gated);
    let invariants = Invariants::new(10);
    let pool = builder(&fake, 10, 2).min_idle(4).observer(invariants.clone()).build().unwrap();
    let gets: Vec<_> = (0..8).map(|_| spawn_get(&pool)).collect();
    settle().await;
    assert_eq!(fake.creates_in_flight(), 2);
    let status = pool.status();
    assert_eq!(status.creating, 2, "{status:?}");
    assert!(status.waiting >= 6, "the others wait for a turn: {status:?}");
    // Let them through one at a time: every finished create passes its
    // turn on, and never more than two run.
    for _ in 0..12 {
        fake.release_creates(1);
        settle().await;
        assert!(fake.creates_in_flight() <= 2);
    }
    for get in gets {
        get.await.unwrap().unwrap();
    }
    fake.release_creates(100);
    settle().await;
    assert_eq!(fake.most_creates_in_flight(), 2);
    assert_eq!(invariants.violations(), Vec::<String>::new());
    assert!(pool.status().idle >= 4, "min_idle refilled: {:?}", pool.status());
}

#[tokio::test(start_paused = true)]
async fn a_get_waiting_for_a_create_turn_takes_a_returned_connection() {
    let fake = Fake::new();
    let pool = builder(&fake, 3, 1).build().unwrap();
    let held = pool.get().await.unwrap();
    fake.script_create([Outcome::Gated]);
    let creating = spawn_get(&pool);
    let waiting = spawn_get(&pool);
    settle().await;
    assert_eq!(counts(&pool), (1, 0, 1, 1, 1), "a slot is free, but the one create allowed runs");
    drop(held);
    assert_eq!(waiting.await.unwrap().unwrap(), 0, "served with the returned connection");
    fake.release_creates(1);
    assert_eq!(creating.await.unwrap().unwrap(), 1);
    assert_eq!(fake.create_calls(), 2);
    assert_eq!(fake.most_creates_in_flight(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_get_waiting_for_a_create_turn_times_out_in_the_wait_phase() {
    let fake = Fake::new();
    fake.create_always(Outcome::Never);
    // A min_idle refill takes the one turn, for longer than a get may wait.
    let pool = builder(&fake, 3, 1).min_idle(1).create_timeout(4 * ACQUIRE).build().unwrap();
    settle().await;
    assert_eq!(fake.creates_in_flight(), 1);
    let waited = pool.get().await;
    assert!(matches!(waited, Err(Error::Timeout { phase: TimeoutPhase::Wait, .. })), "{waited:?}");
    assert_eq!(fake.create_calls(), 1, "the waiter never got a turn");
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_failed_check_while_the_creates_are_at_the_limit_waits_for_a_turn() {
    let fake = Fake::new();
    let pool = builder(&fake, 3, 1).build().unwrap();
    let held = pool.get().await.unwrap();
    fake.script_create([Outcome::Gated]);
    let first = spawn_get(&pool);
    settle().await;
    drop(held);
    // Connection 0 is idle; its check fails while the one create allowed runs.
    fake.script_recycle([Outcome::Fail("reset by peer")]);
    let second = spawn_get(&pool);
    settle().await;
    assert_eq!(counts(&pool), (0, 0, 0, 1, 1), "the failed check gave its slot up and waits");
    fake.release_creates(1);
    assert_eq!(first.await.unwrap().unwrap(), 1);
    assert_eq!(second.await.unwrap().unwrap(), 2, "created once the turn was free");
    assert_eq!(fake.most_creates_in_flight(), 1);
}

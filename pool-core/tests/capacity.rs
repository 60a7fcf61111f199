//! A backend that is full (`Manager::is_capacity_error`): the pool enters a
//! capacity cool-down in which it opens nothing new, serves its waiters
//! with returned connections, and says so once per cool-down (an event,
//! `Status::cooling_down`; the warning is `capacity_log.rs`'s) and in the
//! timeout error of a caller whose own deadline passes meanwhile.

mod common;

use std::time::Duration;

use common::{FULL, Fake, Invariants, Outcome, Recorder, Seen, counts, settle, spawn_get};
use pool_core::{Error, Pool, PoolBuilder, TimeoutPhase};
use tokio::time::Instant;

const SECOND: Duration = Duration::from_secs(1);

fn builder(fake: &Fake, max_size: usize) -> PoolBuilder<Fake> {
    Pool::builder(fake.clone())
        .name("orders")
        .max_size(max_size)
        .acquire_timeout(60 * SECOND)
        .idle_timeout(None)
        .max_lifetime(None)
}

/// The lengths of the cool-downs entered so far.
fn cool_downs(recorder: &Recorder) -> Vec<Duration> {
    recorder
        .seen()
        .into_iter()
        .filter_map(|seen| match seen {
            Seen::CapacityRefused(cooldown) => Some(cooldown),
            _ => None,
        })
        .collect()
}

/// Whether `length` is the `n`th cool-down in a row: 1 s doubling, +-25 %.
fn is_nth_cool_down(length: Duration, n: u32) -> bool {
    let base = SECOND * 2u32.pow(n - 1);
    length >= base * 3 / 4 && length <= base * 5 / 4
}

#[tokio::test(start_paused = true)]
async fn a_waiter_is_served_by_a_returned_connection_during_a_cool_down_without_failing() {
    let fake = Fake::new();
    let recorder = Recorder::new();
    let invariants = Invariants::new(3);
    let pool = builder(&fake, 3).observer(recorder.clone()).observer(invariants.clone()).build().unwrap();
    let held = pool.get().await.unwrap();
    fake.script_create([Outcome::Full]);
    let waiter = spawn_get(&pool);
    settle().await;
    let status = pool.status();
    assert!(status.cooling_down, "{status:?}");
    assert_eq!(counts(&pool), (1, 0, 1, 0, 1), "the refused caller waits again");
    drop(held);
    assert_eq!(waiter.await.unwrap().unwrap(), 0, "served with the returned connection");
    assert_eq!(fake.create_calls(), 2, "nothing was opened during the cool-down");
    assert_eq!(recorder.count(|s| matches!(s, Seen::CreateFailed(e) if e == FULL)), 1);
    assert_eq!(cool_downs(&recorder).len(), 1);
    assert_eq!(invariants.violations(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn the_cool_down_grows_while_refusals_continue_and_resets_after_a_success() {
    let fake = Fake::new();
    let recorder = Recorder::new();
    let pool = builder(&fake, 1).observer(recorder.clone()).build().unwrap();
    fake.script_create([Outcome::Full, Outcome::Full, Outcome::Full]);
    let start = Instant::now();
    let conn = pool.get().await.expect("opened once the server had room again");
    let lengths = cool_downs(&recorder);
    assert_eq!(lengths.len(), 3, "{lengths:?}");
    for (n, length) in (1..).zip(&lengths) {
        assert!(is_nth_cool_down(*length, n), "cool-down {n}: {length:?}");
    }
    assert!(start.elapsed() >= lengths.iter().sum(), "no create ran during a cool-down");
    assert!(!pool.status().cooling_down);

    // The success reset the count: the next refusal cools down for 1 s again.
    pool_core::Pooled::discard(conn);
    fake.script_create([Outcome::Full]);
    drop(pool.get().await.unwrap());
    let lengths = cool_downs(&recorder);
    assert_eq!(lengths.len(), 4, "{lengths:?}");
    assert!(is_nth_cool_down(lengths[3], 1), "{:?}", lengths[3]);
}

#[tokio::test(start_paused = true)]
async fn a_get_that_times_out_during_cool_downs_says_the_backend_is_full_and_what_to_do() {
    let fake = Fake::new();
    let pool = builder(&fake, 5).acquire_timeout(3 * SECOND).build().unwrap();
    let held = [pool.get().await.unwrap(), pool.get().await.unwrap()];
    fake.create_always(Outcome::Full);
    let error = pool.get().await.expect_err("the server never has room");
    let Error::Timeout { phase, refused_at_size, .. } = &error else { panic!("{error:?}") };
    assert_eq!((*phase, *refused_at_size), (TimeoutPhase::Wait, Some(2)));
    let text = error.to_string();
    for part in [
        "timed out after 3s waiting for a free connection",
        "the backend has no free connection slots",
        "this pool held 2 of its max_size 5",
        "max_connections",
        "shared with every other client",
        "lower max_size",
        "run fewer instances",
        "check_budget",
        "PgBouncer",
        FULL,
    ] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
    assert_eq!(error.backend_error().map(|e| e.0.as_str()), Some(FULL));
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn try_get_refused_for_capacity_fails_at_once_with_the_backend_error() {
    let fake = Fake::new();
    let pool = builder(&fake, 2).build().unwrap();
    fake.script_create([Outcome::Full]);
    let error = pool.try_get().await.expect_err("refused");
    assert!(matches!(&error, Error::Backend(e) if e.0 == FULL), "{error:?}");
    assert!(pool.status().cooling_down);
}

#[tokio::test(start_paused = true)]
async fn min_idle_is_refilled_once_the_cool_down_ends() {
    let fake = Fake::new();
    let recorder = Recorder::new();
    fake.script_create([Outcome::Full]);
    let pool = builder(&fake, 4).min_idle(2).observer(recorder.clone()).build().unwrap();
    settle().await;
    assert!(pool.status().cooling_down);
    assert_eq!(fake.create_calls(), 1, "no refill during the cool-down");
    tokio::time::sleep(2 * SECOND).await;
    assert!(!pool.status().cooling_down);
    assert_eq!(counts(&pool), (2, 2, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn close_during_a_cool_down_ends_promptly() {
    let fake = Fake::new();
    let pool = builder(&fake, 3).build().unwrap();
    let held = pool.get().await.unwrap();
    fake.create_always(Outcome::Full);
    let waiter = spawn_get(&pool);
    settle().await;
    assert!(pool.status().cooling_down);
    let start = Instant::now();
    pool.close();
    assert!(matches!(waiter.await.unwrap(), Err(Error::Closed)));
    drop(held);
    pool.close_and_wait(60 * SECOND).await.unwrap();
    assert_eq!(Instant::now(), start, "nothing waited for the cool-down");
    assert_eq!(fake.live(), 0);
}

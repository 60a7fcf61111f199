//! Timeouts and backend failures: `acquire_timeout` holds in every phase,
//! `create_timeout` and `recycle_timeout` bound single calls, errors carry
//! the backend's last error, failures do not strand waiters, and repeated
//! failures back off.

mod common;

use std::error::Error as _;
use std::time::Duration;

use common::{Fake, FakeError, Outcome, Recorder, Seen, counts, settle};
use pool_core::{DestroyReason, Error, Pool, PoolBuilder, Pooled, TimeoutPhase};
use tokio::time::Instant;

const ACQUIRE: Duration = Duration::from_secs(5);
const AUTH: &str = "password authentication failed for user \"app\"";

fn builder(fake: &Fake) -> PoolBuilder<Fake> {
    Pool::builder(fake.clone()).max_size(1).acquire_timeout(ACQUIRE)
}

/// The phase and elapsed time of a timeout; panics on any other error.
fn timeout_of<T>(result: Result<T, Error<FakeError>>) -> (TimeoutPhase, Duration, Error<FakeError>) {
    match result {
        Err(e @ Error::Timeout { phase, elapsed, .. }) => (phase, elapsed, e),
        Err(other) => panic!("expected a timeout, got {other:?}"),
        Ok(_) => panic!("expected a timeout, got a resource"),
    }
}

#[tokio::test(start_paused = true)]
async fn acquire_timeout_holds_when_create_hangs() {
    let fake = Fake::new();
    fake.create_always(Outcome::Never);
    let recorder = Recorder::new();
    let pool = builder(&fake).observer(recorder.clone()).build().unwrap();
    let start = Instant::now();
    let (phase, elapsed, err) = timeout_of(pool.get().await);
    assert_eq!((phase, elapsed, start.elapsed()), (TimeoutPhase::Create, ACQUIRE, ACQUIRE));
    assert!(err.is_timeout());
    assert!(err.to_string().contains("opening a new connection"), "{err}");
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0), "the slot is freed");
    assert_eq!(recorder.count(|s| *s == Seen::TimedOut(TimeoutPhase::Create)), 1);
    assert_eq!(recorder.count(|s| matches!(s, Seen::CreateFailed(_))), 1);
}

#[tokio::test(start_paused = true)]
async fn acquire_timeout_holds_when_recycle_hangs() {
    let fake = Fake::new();
    let pool = builder(&fake).build().unwrap();
    drop(pool.get().await.unwrap());
    fake.recycle_always(Outcome::Never);
    let (phase, elapsed, err) = timeout_of(pool.get().await);
    assert_eq!((phase, elapsed), (TimeoutPhase::Recycle, ACQUIRE));
    assert!(err.to_string().contains("checking an idle connection"), "{err}");
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::RecycleFailed)], "its state is unknown");
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn acquire_timeout_holds_when_everything_is_in_use() {
    let fake = Fake::new();
    let pool = builder(&fake).build().unwrap();
    let _held = pool.get().await.unwrap();
    let (phase, elapsed, err) = timeout_of(pool.get().await);
    assert_eq!((phase, elapsed), (TimeoutPhase::Wait, ACQUIRE));
    assert!(matches!(err, Error::Timeout { max_size: 1, last_error: None, .. }));
    assert!(err.to_string().contains("waiting for a free connection (all 1 in use)"), "{err}");
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0), "its place in the queue is gone");
}

#[tokio::test(start_paused = true)]
async fn create_timeout_bounds_a_single_create() {
    let fake = Fake::new();
    fake.create_always(Outcome::Never);
    let pool = builder(&fake).create_timeout(Duration::from_secs(1)).build().unwrap();
    let (phase, elapsed, _) = timeout_of(pool.get().await);
    assert_eq!((phase, elapsed), (TimeoutPhase::Create, Duration::from_secs(1)));
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn recycle_timeout_destroys_and_replaces_and_the_caller_still_succeeds() {
    let fake = Fake::new();
    let pool = builder(&fake).recycle_timeout(Duration::from_secs(1)).build().unwrap();
    drop(pool.get().await.unwrap());
    fake.script_recycle([Outcome::Never]);
    let start = Instant::now();
    let conn = pool.get().await.expect("a replacement is created");
    assert_eq!((conn.id, start.elapsed()), (1, Duration::from_secs(1)));
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::RecycleFailed)]);
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_create_failure_is_returned_at_once_as_a_backend_error() {
    let fake = Fake::new();
    fake.script_create([Outcome::Fail(AUTH)]);
    let recorder = Recorder::new();
    let pool = builder(&fake).observer(recorder.clone()).build().unwrap();
    let start = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(matches!(&err, Error::Backend(e) if e.0 == AUTH), "{err:?}");
    assert_eq!(err.to_string(), format!("the backend's create failed for this call: {AUTH}"));
    assert_eq!(err.backend_error().map(|e| e.0.as_str()), Some(AUTH));
    assert_eq!(recorder.count(|s| *s == Seen::CreateFailed(AUTH.to_owned())), 1);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_create_timeout_names_the_last_backend_error() {
    let fake = Fake::new();
    fake.script_create([Outcome::Fail(AUTH), Outcome::Never]);
    let pool = builder(&fake).build().unwrap();
    assert!(matches!(pool.get().await, Err(Error::Backend(_))));

    let (phase, _, err) = timeout_of(pool.get().await);
    assert_eq!(phase, TimeoutPhase::Create);
    let text = err.to_string();
    assert!(text.contains(&format!("last error from the backend: {AUTH}")), "{text}");
    assert_eq!(err.backend_error().map(|e| e.0.as_str()), Some(AUTH));
    let source = err.source().expect("the backend error is the source");
    assert_eq!(source.downcast_ref::<FakeError>().map(|e| e.0.as_str()), Some(AUTH));
}

#[tokio::test(start_paused = true)]
async fn a_recycle_timeout_names_the_last_failed_check() {
    let fake = Fake::new();
    let pool = builder(&fake).build().unwrap();
    drop(pool.get().await.unwrap());
    fake.script_recycle([Outcome::Fail("server closed the connection unexpectedly")]);
    fake.script_create([Outcome::Never]);
    let (phase, _, err) = timeout_of(pool.get().await);
    assert_eq!(phase, TimeoutPhase::Create, "the check failed, then the replacement hung");
    assert!(
        err.to_string().ends_with("last error from the backend: server closed the connection unexpectedly")
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiter_whose_create_fails_does_not_strand_the_others() {
    let fake = Fake::new();
    fake.script_create([Outcome::Ok, Outcome::Fail(AUTH), Outcome::Ok]);
    let pool = builder(&fake).build().unwrap();
    let held = pool.get().await.unwrap();
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let pool = pool.clone();
        waiters.push(tokio::spawn(async move { pool.get().await.map(|c| c.id) }));
        settle().await;
    }
    assert_eq!(pool.status().waiting, 3);
    Pooled::discard(held); // the first waiter creates, and fails
    let results: Vec<_> = join_all(waiters).await;
    assert!(matches!(&results[0], Err(Error::Backend(e)) if e.0 == AUTH), "{:?}", results[0]);
    assert_eq!(results[1].as_ref().ok(), Some(&1));
    assert_eq!(results[2].as_ref().ok(), Some(&1), "the third gets the second's resource");
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
}

async fn join_all<T: 'static>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn repeated_create_failures_back_off() {
    let fake = Fake::new();
    fake.create_always(Outcome::Fail("connection refused"));
    let pool = builder(&fake).acquire_timeout(Duration::from_secs(30)).build().unwrap();
    let start = Instant::now();
    let window = Duration::from_secs(10);
    while start.elapsed() < window {
        assert!(matches!(pool.get().await, Err(Error::Backend(_))));
    }
    // Without backoff a caller retrying in a loop would create without end
    // (no time passes); with it: 10 ms doubling to 1 s, so about 16 in 10 s.
    let calls = fake.create_calls();
    assert!((10..=20).contains(&calls), "{calls} creates in {window:?}");

    // One success resets the backoff: later creates start at once.
    fake.create_always(Outcome::Ok);
    drop(pool.get().await.unwrap());
    Pooled::discard(pool.get().await.unwrap());
    let before = Instant::now();
    drop(pool.get().await.unwrap());
    assert_eq!(before.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_after_a_failure_are_spaced_apart() {
    let fake = Fake::new();
    fake.create_always(Outcome::Fail("connection refused"));
    let pool = builder(&fake).max_size(8).build().unwrap();
    assert!(pool.get().await.is_err()); // one failure arms the backoff
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move { (pool.get().await.is_err(), Instant::now()) }));
    }
    let mut finished: Vec<Duration> = Vec::new();
    for (failed, at) in join_all(tasks).await {
        assert!(failed);
        finished.push(at - start);
    }
    finished.sort();
    finished.dedup();
    assert_eq!(finished.len(), 8, "no two creates at the same instant: {finished:?}");
    assert!(finished[0] >= Duration::from_millis(10), "{finished:?}");
}

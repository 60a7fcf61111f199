//! Failure mode: the backend refuses creates for a moment (PostgreSQL's
//! "the database system is starting up" during a restart). A caller is not
//! failed at once: it waits again within its own `acquire_timeout` and gets
//! a resource once the backend takes creates again, or times out naming
//! the passing error. Other create errors still fail their caller at once.

mod common;

use std::time::Duration;

use common::{Fake, Outcome, STARTING_UP, counts};
use pool_core::{Error, Pool, TimeoutPhase};

fn pool(fake: &Fake) -> Pool<Fake> {
    Pool::builder(fake.clone()).max_size(2).acquire_timeout(Duration::from_secs(5)).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_create_refused_while_the_backend_starts_up_is_retried_within_the_callers_deadline() {
    let fake = Fake::new();
    fake.script_create([Outcome::Fail(STARTING_UP), Outcome::Fail(STARTING_UP), Outcome::Ok]);
    let pool = pool(&fake);
    let conn = pool.get().await.expect("served once the backend takes creates again");
    assert_eq!(conn.id, 0);
    assert_eq!(fake.create_calls(), 3, "two refusals, then the create that worked");
    drop(conn);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_backend_that_keeps_starting_up_times_out_the_caller_naming_it() {
    let fake = Fake::new();
    fake.create_always(Outcome::Fail(STARTING_UP));
    let pool = pool(&fake);
    let started = tokio::time::Instant::now();
    let error = pool.get().await.expect_err("never served");
    assert_eq!(started.elapsed(), Duration::from_secs(5), "at acquire_timeout, not before");
    let Error::Timeout { phase, last_error, .. } = &error else { panic!("{error:?}") };
    assert_eq!(*phase, TimeoutPhase::Create, "waiting for its turn to create: {error}");
    assert_eq!(last_error.as_ref().map(|e| e.0.as_str()), Some(STARTING_UP));
    assert!(error.to_string().contains(STARTING_UP), "{error}");
    assert!(fake.create_calls() > 1, "it kept trying, after the backoff");
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn other_create_errors_still_fail_the_caller_at_once() {
    let fake = Fake::new();
    fake.script_create([Outcome::Fail("password authentication failed")]);
    let pool = pool(&fake);
    let started = tokio::time::Instant::now();
    let error = pool.get().await.expect_err("fails");
    assert!(matches!(error, Error::Backend(_)), "{error:?}");
    assert_eq!(started.elapsed(), Duration::ZERO);
}

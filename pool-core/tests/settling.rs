//! Failure mode: a resource comes back with work its borrower left behind
//! (for PostgreSQL, a statement whose future was dropped). It is settled on
//! a task of the pool's before anyone may have it again: counted in use
//! meanwhile, put back idle once settled, destroyed if settling fails or
//! outlasts its bound; `close_and_wait` waits for it.

mod common;

use std::time::Duration;

use common::{Fake, Outcome, counts, settle, slow, spawn_get};
use pool_core::{DestroyReason, Pool};

fn pool(fake: &Fake) -> Pool<Fake> {
    Pool::builder(fake.clone()).max_size(1).recycle_timeout(Duration::from_secs(1)).build().unwrap()
}

/// Gets the one resource, leaves work behind on it and returns it.
async fn return_unsettled(pool: &Pool<Fake>) -> usize {
    let mut conn = pool.get().await.unwrap();
    conn.leave_work_behind();
    conn.id
}

#[tokio::test(start_paused = true)]
async fn a_resource_returned_unsettled_is_settled_before_the_next_borrower_gets_it() {
    let fake = Fake::new();
    fake.settle_always(slow(200));
    let pool = pool(&fake);
    let id = return_unsettled(&pool).await;
    settle().await;
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0), "in use while it settles");
    let next = spawn_get(&pool);
    settle().await;
    assert_eq!(pool.status().waiting, 1, "the next borrower waits for the settling");
    tokio::time::advance(Duration::from_millis(200)).await;
    assert_eq!(next.await.unwrap().unwrap(), id, "the same resource, settled");
    assert_eq!(fake.settle_calls(), 1);
    assert_eq!(fake.destroyed_total(), 0);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_resource_returned_settled_is_not_settled_again() {
    let fake = Fake::new();
    let pool = pool(&fake);
    drop(pool.get().await.unwrap());
    settle().await;
    assert_eq!(fake.settle_calls(), 0);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_settle_that_fails_or_outlasts_recycle_timeout_destroys_the_resource() {
    for outcome in [Outcome::Fail("reset"), Outcome::Never] {
        let fake = Fake::new();
        fake.settle_always(outcome.clone());
        let pool = pool(&fake);
        return_unsettled(&pool).await;
        // Paused clock: the bound (recycle_timeout, 1 s) passes at once when idle.
        let next = spawn_get(&pool);
        assert_eq!(next.await.unwrap().unwrap(), 1, "{outcome:?}: a new resource in its place");
        assert_eq!(fake.destroyed(DestroyReason::RecycleFailed), 1, "{outcome:?}");
        assert_eq!(counts(&pool), (1, 1, 0, 0, 0), "{outcome:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn close_and_wait_waits_for_a_resource_being_settled() {
    let fake = Fake::new();
    fake.settle_always(slow(300));
    let pool = pool(&fake);
    return_unsettled(&pool).await;
    let started = tokio::time::Instant::now();
    pool.close_and_wait(Duration::from_secs(5)).await.expect("it comes back once settled");
    assert!(started.elapsed() >= Duration::from_millis(300), "closed before it was settled");
    assert_eq!(fake.live(), 0);
    assert_eq!(fake.settle_calls(), 1);
}

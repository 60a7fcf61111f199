//! Panics: in the task holding a resource, and in the manager's own code.
//! Whatever panics, the slot is freed, nothing is counted twice, and the pool
//! keeps working.

mod common;

use std::time::Duration;

use common::{Fake, Outcome, counts, settle};
use pool_core::{DestroyReason, Pool, Pooled};

fn pool(fake: &Fake, max_size: usize) -> Pool<Fake> {
    Pool::builder(fake.clone()).max_size(max_size).build().unwrap()
}

/// Spawns `pool.get()` and returns whether that task panicked.
async fn get_panics(pool: &Pool<Fake>) -> bool {
    let pool = pool.clone();
    let joined = tokio::spawn(async move { pool.get().await.map(drop) }).await;
    joined.is_err_and(|e| e.is_panic())
}

#[tokio::test(start_paused = true)]
async fn a_task_panicking_while_holding_a_resource_gives_up_the_resource() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let task = tokio::spawn({
        let pool = pool.clone();
        async move {
            let _conn = pool.get().await.unwrap();
            panic!("injected panic while holding a connection");
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::Broken)], "its state is unknown");
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0), "the slot is free");
    assert_eq!(pool.get().await.unwrap().id, 1, "the pool keeps working");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_create_frees_its_slot() {
    let fake = Fake::new();
    fake.script_create([Outcome::Panic]);
    let pool = pool(&fake, 1);
    assert!(get_panics(&pool).await);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    assert_eq!(pool.get().await.unwrap().id, 0);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_create_passes_its_slot_to_the_next_waiter() {
    let fake = Fake::new();
    fake.script_create([Outcome::Ok, Outcome::Panic, Outcome::Ok]);
    let pool = pool(&fake, 1);
    let held = pool.get().await.unwrap();
    let spawn_get = || {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await.map(|c| c.id) })
    };
    let (first, second) = (spawn_get(), spawn_get());
    settle().await;
    Pooled::discard(held); // the first waiter creates, and panics
    assert!(first.await.unwrap_err().is_panic());
    assert_eq!(second.await.unwrap().unwrap(), 1);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_recycle_destroys_the_resource_and_frees_the_slot() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    drop(pool.get().await.unwrap());
    fake.script_recycle([Outcome::Panic]);
    assert!(get_panics(&pool).await);
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::RecycleFailed)]);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    assert_eq!(pool.get().await.unwrap().id, 1);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_keepalive_check_does_not_stop_maintenance() {
    let fake = Fake::new();
    let pool = Pool::builder(fake.clone())
        .max_size(2)
        .keepalive_interval(Duration::from_secs(30))
        .idle_timeout(Duration::from_secs(100))
        .max_lifetime(None)
        .build()
        .unwrap();
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    drop((a, b));
    fake.script_recycle([Outcome::Panic]);
    tokio::time::sleep(Duration::from_secs(31)).await;
    // The round ended at the panic: the one being checked and the one not
    // yet checked are both destroyed, and neither slot is lost.
    assert_eq!(fake.destroyed(DestroyReason::RecycleFailed), 2);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));

    drop(pool.get().await.unwrap());
    tokio::time::sleep(Duration::from_secs(101)).await;
    assert_eq!(fake.destroyed(DestroyReason::Idle), 1, "maintenance still runs");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_is_broken_check_still_frees_the_slot() {
    struct PanickyBroken(Fake);
    impl pool_core::Manager for PanickyBroken {
        type Resource = common::Conn;
        type Error = common::FakeError;
        async fn create(&self) -> Result<common::Conn, common::FakeError> {
            self.0.create().await
        }
        fn is_broken(&self, _: &mut common::Conn) -> bool {
            panic!("injected panic in is_broken")
        }
        fn destroy(&self, conn: common::Conn, reason: DestroyReason) {
            self.0.destroy(conn, reason);
        }
    }
    let fake = Fake::new();
    let pool = Pool::builder(PanickyBroken(fake.clone())).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(conn)));
    assert!(dropped.is_err());
    let s = pool.status();
    assert_eq!((s.size, s.in_use, s.idle), (0, 0, 0), "the slot is free");
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::Broken)]);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_refill_frees_its_slot_and_is_retried() {
    let fake = Fake::new();
    fake.script_create([Outcome::Panic]);
    let pool = Pool::builder(fake.clone()).max_size(2).min_idle(1).build().unwrap();
    settle().await;
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0), "the refill's slot is free");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0), "maintenance carried on");
    assert_eq!(fake.create_calls(), 2);
}

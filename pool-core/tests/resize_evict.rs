//! Changing the pool at run time: `resize` up and down (also under load),
//! `evict_all` and `retain`.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{Fake, Recorder, Seen, counts, settle, slow};
use pool_core::{DestroyReason, Pool, Pooled};

fn pool(fake: &Fake, max_size: usize) -> Pool<Fake> {
    Pool::builder(fake.clone()).max_size(max_size).build().unwrap()
}

async fn get_many(pool: &Pool<Fake>, n: usize) -> Vec<Pooled<Fake>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(pool.get().await.unwrap());
    }
    held
}

fn spawn_get(pool: &Pool<Fake>) -> tokio::task::JoinHandle<Pooled<Fake>> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.get().await.expect("served") })
}

#[tokio::test(start_paused = true)]
async fn resize_up_serves_waiting_tasks_at_once() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let _held = pool.get().await.unwrap();
    let waiters = [spawn_get(&pool), spawn_get(&pool)];
    settle().await;
    assert_eq!(pool.status().waiting, 2);
    pool.resize(3).unwrap();
    assert_eq!(counts(&pool), (1, 0, 1, 2, 0), "both waiters were granted a slot");
    let mut ids = Vec::new();
    for waiter in waiters {
        ids.push(waiter.await.unwrap().id);
    }
    assert_eq!(ids, [1, 2]);
    assert_eq!(pool.status().max_size, 3);
}

#[tokio::test(start_paused = true)]
async fn resize_down_destroys_idle_resources_above_the_new_size() {
    let fake = Fake::new();
    let pool = pool(&fake, 4);
    drop(get_many(&pool, 4).await); // returned in order 0, 1, 2, 3
    pool.resize(1).unwrap();
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
    let evicted: Vec<usize> = fake
        .destroyed_ids()
        .into_iter()
        .map(|(id, r)| {
            assert_eq!(r, DestroyReason::Evicted);
            id
        })
        .collect();
    assert_eq!(evicted, [0, 1, 2], "the longest idle go first");
}

#[tokio::test(start_paused = true)]
async fn resize_down_under_load_converges_and_never_hands_on_surplus_slots() {
    let fake = Fake::new();
    let pool = pool(&fake, 4);
    let mut held = get_many(&pool, 4).await;
    let waiters = [spawn_get(&pool), spawn_get(&pool)];
    settle().await;
    pool.resize(2).unwrap();
    let s = pool.status();
    assert_eq!((s.max_size, s.size, s.waiting), (2, 4, 2), "in-use ones stay with their holders");

    drop(held.pop());
    assert_eq!(counts(&pool), (3, 0, 3, 0, 2), "above the size: destroyed, the waiters keep waiting");
    Pooled::discard(held.pop().unwrap());
    assert_eq!(counts(&pool), (2, 0, 2, 0, 2), "a freed slot above the size is not handed on");
    drop(held.pop());
    assert_eq!(counts(&pool), (2, 0, 2, 0, 1), "at the size: handed to the first waiter");
    drop(held.pop());
    assert_eq!(counts(&pool), (2, 0, 2, 0, 0));
    for waiter in waiters {
        drop(waiter.await.unwrap());
    }
    assert_eq!(counts(&pool), (2, 2, 0, 0, 0));
    assert_eq!(fake.destroyed(DestroyReason::Evicted), 1);
    assert_eq!(fake.destroyed(DestroyReason::Broken), 1);
    assert_eq!(fake.created(), 4, "the waiters got returned resources, nothing new");
}

#[tokio::test(start_paused = true)]
async fn evict_all_destroys_idle_now_and_in_use_on_return() {
    let fake = Fake::new();
    let pool = pool(&fake, 3);
    let mut held = get_many(&pool, 3).await;
    drop(held.drain(..2));
    pool.evict_all();
    assert_eq!(fake.destroyed(DestroyReason::Evicted), 2);
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0));
    drop(held);
    assert_eq!(fake.destroyed(DestroyReason::Evicted), 3);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    assert_eq!(pool.get().await.unwrap().id, 3, "every later get gets a fresh resource");
}

#[tokio::test(start_paused = true)]
async fn a_resource_created_across_evict_all_is_used_once_then_evicted() {
    let fake = Fake::new();
    fake.script_create([slow(1000)]);
    let pool = pool(&fake, 1);
    let getter = spawn_get(&pool);
    settle().await;
    pool.evict_all();
    let conn = getter.await.unwrap();
    assert_eq!(conn.id, 0);
    drop(conn);
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::Evicted)]);
}

#[tokio::test(start_paused = true)]
async fn retain_keeps_only_the_matching_idle_resources() {
    let fake = Fake::new();
    let pool = pool(&fake, 5);
    let mut held = get_many(&pool, 5).await;
    let in_use = held.pop().unwrap();
    drop(held);
    let mut seen = Vec::new();
    pool.retain(|conn, info| {
        seen.push(conn.id);
        assert_eq!(info.checkouts(), 1);
        conn.id.is_multiple_of(2)
    });
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2, 3], "only idle ones are judged");
    let mut destroyed = fake.destroyed_ids();
    destroyed.sort_unstable_by_key(|&(id, _)| id);
    assert_eq!(destroyed, [(1, DestroyReason::Evicted), (3, DestroyReason::Evicted)]);
    assert_eq!(counts(&pool), (3, 2, 1, 0, 0));
    drop(in_use);
    assert_eq!(counts(&pool), (3, 3, 0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn retain_with_a_panicking_predicate_loses_no_resource() {
    let fake = Fake::new();
    let pool = pool(&fake, 4);
    drop(get_many(&pool, 4).await);
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        pool.retain(|conn, _| {
            assert_ne!(conn.id, 1, "injected panic in a retain predicate");
            true
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(fake.destroyed_total(), 0);
    assert_eq!(counts(&pool), (4, 4, 0, 0, 0), "every resource is idle again, none is lost");
    assert_eq!(get_many(&pool, 4).await.len(), 4);
    assert_eq!(fake.created(), 4);
}

#[tokio::test(start_paused = true)]
async fn resize_tells_observers_the_new_max_size() {
    let recorder = Recorder::new();
    let pool = Pool::builder(Fake::new()).max_size(2).observer(recorder.clone()).build().unwrap();
    let held = get_many(&pool, 2).await;
    drop(held);
    pool.resize(1).unwrap();
    let (seen, status) = recorder.last().expect("events were sent");
    assert_eq!(seen, Seen::Resized);
    assert_eq!((status.max_size, status.idle), (1, 1), "sent after the idle resource above the size went");
}

/// Issue #14 (1): a shrink below `min_idle` used to lower `min_idle` for
/// good, so growing back kept fewer idle resources ready than configured.
#[tokio::test(start_paused = true)]
async fn resize_below_min_idle_and_back_restores_min_idle() {
    let fake = Fake::new();
    let pool = Pool::builder(fake.clone()).max_size(4).min_idle(2).build().unwrap();
    settle().await;
    assert_eq!(counts(&pool), (2, 2, 0, 0, 0));
    pool.resize(1).unwrap();
    settle().await;
    assert_eq!(pool.status().min_idle, 1, "capped at the new max_size");
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0));
    pool.resize(4).unwrap();
    settle().await;
    assert_eq!(pool.status().min_idle, 2, "the configured min_idle is back");
    assert_eq!(counts(&pool), (2, 2, 0, 0, 0), "and kept ready again");
}

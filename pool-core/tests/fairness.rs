//! First come, first served: waiters are served in arrival order, nobody
//! barges ahead of a queued waiter, and a huge queue drains completely.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{Fake, counts, settle};
use pool_core::{Error, Pool, Pooled};

fn pool(fake: &Fake, max_size: usize) -> Pool<Fake> {
    Pool::builder(fake.clone()).max_size(max_size).build().unwrap()
}

/// Spawns a task that gets a resource, records `label` and the resource id
/// in `order`, yields once and gives the resource back.
fn spawn_recording_get(
    pool: &Pool<Fake>,
    order: &Arc<Mutex<Vec<(usize, usize)>>>,
    label: usize,
) -> tokio::task::JoinHandle<()> {
    let (pool, order) = (pool.clone(), Arc::clone(order));
    tokio::spawn(async move {
        let conn = pool.get().await.expect("every waiter is served");
        order.lock().unwrap().push((label, conn.id));
        tokio::task::yield_now().await;
    })
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_strictly_in_arrival_order() {
    let fake = Fake::new();
    let pool = pool(&fake, 2);
    let held = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for label in 0..20 {
        tasks.push(spawn_recording_get(&pool, &order, label));
        settle().await; // queued before the next one arrives
    }
    assert_eq!(counts(&pool), (2, 0, 2, 0, 20));
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    let labels: Vec<usize> = order.lock().unwrap().iter().map(|&(label, _)| label).collect();
    assert_eq!(labels, (0..20).collect::<Vec<_>>());
    assert_eq!(counts(&pool), (2, 2, 0, 0, 0));
    assert_eq!(fake.created(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_newcomer_cannot_take_a_resource_returned_for_a_queued_waiter() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let held = pool.get().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let queued = spawn_recording_get(&pool, &order, 1);
    settle().await;
    assert_eq!(pool.status().waiting, 1);

    // Returned while the waiter has not run yet: it is already the waiter's.
    drop(held);
    assert!(matches!(pool.try_get().await, Err(Error::Exhausted { .. })));
    let newcomer = spawn_recording_get(&pool, &order, 2);
    queued.await.unwrap();
    newcomer.await.unwrap();
    assert_eq!(*order.lock().unwrap(), [(1, 0), (2, 0)]);
}

#[tokio::test(start_paused = true)]
async fn a_newcomer_cannot_take_a_slot_freed_for_a_queued_waiter() {
    let fake = Fake::new();
    let pool = pool(&fake, 1);
    let held = pool.get().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let queued = spawn_recording_get(&pool, &order, 1);
    settle().await;

    Pooled::discard(held); // frees the slot: the waiter creates in it
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0), "the slot went straight to the waiter");
    assert!(matches!(pool.try_get().await, Err(Error::Exhausted { .. })));
    let newcomer = spawn_recording_get(&pool, &order, 2);
    queued.await.unwrap();
    newcomer.await.unwrap();
    assert_eq!(*order.lock().unwrap(), [(1, 1), (2, 1)]);
}

#[tokio::test(start_paused = true)]
async fn twenty_five_thousand_waiters_on_three_resources_all_get_one() {
    const TASKS: usize = 25_000;
    let fake = Fake::new();
    let invariants = common::Invariants::new(3);
    let pool = Pool::builder(fake.clone()).max_size(3).observer(invariants.clone()).build().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let (pool, served) = (pool.clone(), Arc::clone(&served));
        tasks.push(tokio::spawn(async move {
            let conn = pool.get().await.expect("every waiter is served");
            served.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
            drop(conn);
        }));
    }
    let checker = tokio::spawn({
        let pool = pool.clone();
        let served = Arc::clone(&served);
        async move {
            let mut max_waiting = 0;
            while served.load(Ordering::Relaxed) < TASKS {
                let s = pool.status();
                common::assert_consistent(&s, 3);
                max_waiting = max_waiting.max(s.waiting);
                tokio::task::yield_now().await;
            }
            max_waiting
        }
    });
    for task in tasks {
        task.await.unwrap();
    }
    let max_waiting = checker.await.unwrap();
    assert!(max_waiting > TASKS / 2, "most tasks really queued (peak {max_waiting})");
    assert_eq!(served.load(Ordering::Relaxed), TASKS);
    assert_eq!(counts(&pool), (3, 3, 0, 0, 0));
    assert_eq!(fake.created(), 3);
    assert_eq!(invariants.violations(), Vec::<String>::new());
}

//! Cancel safety, exhaustively: for every combination of backend outcomes,
//! many tasks race `get` under short timeouts, some are aborted at various
//! points, and afterwards (and all along) the books must balance: nothing
//! leaked, nothing counted twice, never more than `max_size`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{Fake, Invariants, Outcome, counts, poll_once, slow};
use pool_core::{DestroyReason, Error, Pool, Pooled};
use tokio::time::{sleep, timeout};

const MAX: usize = 3;
const TASKS: u64 = 24;
const ROUNDS: u64 = 3;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn outcomes() -> [(&'static str, Outcome); 5] {
    [
        ("ok", Outcome::Ok),
        ("error", Outcome::Fail("injected")),
        ("full", Outcome::Full),
        ("slow", Outcome::Slow(ms(30))),
        ("never", Outcome::Never),
    ]
}

/// Every worker's abort handle, for workers to abort each other.
type Victims = Arc<OnceLock<Vec<tokio::task::AbortHandle>>>;

/// How the gets of all scenarios ended, to show every path was taken.
#[derive(Default)]
struct Tally {
    got: AtomicUsize,
    failed: AtomicUsize,
    cut_short: AtomicUsize,
    aborted: AtomicUsize,
    detached: AtomicUsize,
}

/// One task: a few rounds of `get` under a timeout, holding what it gets
/// for a while, then returning, breaking, discarding or detaching it.
async fn worker(pool: Pool<Fake>, i: u64, break_on_return: bool, tally: Arc<Tally>, victims: Victims) {
    sleep(ms(i * 7 % 40)).await;
    for round in 0..ROUNDS {
        let k = i * ROUNDS + round;
        let patience = ms(20 + k * 13 % 150);
        let got = if k.is_multiple_of(2) {
            timeout(patience, pool.get()).await.ok()
        } else {
            // Gives up even when the get was served at that same instant.
            tokio::select! {
                biased;
                () = sleep(patience) => None,
                got = pool.get() => Some(got),
            }
        };
        let conn = match got {
            Some(Ok(conn)) => conn,
            Some(Err(_)) => {
                tally.failed.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            None => {
                tally.cut_short.fetch_add(1, Ordering::SeqCst);
                continue;
            }
        };
        tally.got.fetch_add(1, Ordering::SeqCst);
        sleep(ms(k * 17 % 60)).await;
        if break_on_return && k.is_multiple_of(2) {
            conn.break_it();
        }
        match k % 9 {
            3 => {
                drop(Pooled::detach(conn));
                tally.detached.fetch_add(1, Ordering::SeqCst);
            }
            5 => Pooled::discard(conn),
            _ => drop(conn),
        }
        // Right after giving something back (maybe to the next waiter, which
        // has not run yet), abort another task: the likeliest victim has
        // just been handed what this one returned.
        if k % 8 == 4 {
            let victims = victims.get().expect("set before the workers run");
            victims[(i as usize + 1) % victims.len()].abort();
        }
    }
}

async fn scenario(label: &str, create: Outcome, recycle: Outcome, break_on_return: bool, tally: &Arc<Tally>) {
    let fake = Fake::new();
    // Every other call has the injected outcome, so both paths run.
    fake.create_then(move |n| if n.is_multiple_of(2) { create.clone() } else { Outcome::Ok });
    fake.recycle_then(move |n| if n.is_multiple_of(2) { recycle.clone() } else { Outcome::Ok });
    let invariants = Invariants::new(MAX);
    let pool = Pool::builder(fake.clone())
        .max_size(MAX)
        .acquire_timeout(ms(100))
        .idle_timeout(ms(200))
        .observer(invariants.clone())
        .build()
        .unwrap();
    let detached_before = tally.detached.load(Ordering::SeqCst);
    let detached = || tally.detached.load(Ordering::SeqCst) - detached_before;

    let victims: Victims = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let checker = tokio::spawn({
        let (pool, done) = (pool.clone(), Arc::clone(&done));
        async move {
            while !done.load(Ordering::SeqCst) {
                common::check_consistent(&pool.status(), MAX)?;
                sleep(ms(1)).await;
            }
            Ok::<(), String>(())
        }
    });

    let workers: Vec<_> = (0..TASKS)
        .map(|i| {
            tokio::spawn(worker(pool.clone(), i, break_on_return, Arc::clone(tally), Arc::clone(&victims)))
        })
        .collect();
    victims.set(workers.iter().map(tokio::task::JoinHandle::abort_handle).collect()).unwrap();
    // Abort every third task at some point: queued, creating, checking, holding or sleeping.
    for (i, handle) in (0u64..).zip(&workers).filter(|(i, _)| i % 3 == 1) {
        let abort = handle.abort_handle();
        tokio::spawn(async move {
            sleep(ms(i * 11 % 120)).await;
            abort.abort();
        });
    }
    for handle in workers {
        if let Err(e) = handle.await {
            assert!(e.is_cancelled(), "{label}: a worker panicked: {e}");
            tally.aborted.fetch_add(1, Ordering::SeqCst);
        }
    }
    done.store(true, Ordering::SeqCst);
    checker.await.unwrap().unwrap_or_else(|v| panic!("{label}: {v}"));

    // Let every pending create, check and timeout end.
    sleep(Duration::from_secs(1)).await;
    let s = pool.status();
    assert_eq!((s.waiting, s.creating, s.in_use), (0, 0, 0), "{label}: settled {s:?}");
    assert!(s.size <= MAX, "{label}: {s:?}");
    assert_eq!(fake.live() - detached(), s.size, "{label}: live resources == size");
    assert_eq!(invariants.violations(), Vec::<String>::new(), "{label}");

    fake.create_always(Outcome::Ok);
    fake.recycle_always(Outcome::Ok);
    drop(pool.get().await.unwrap_or_else(|e| panic!("{label}: a final get failed: {e}")));
    pool.close_and_wait(Duration::from_secs(1)).await.unwrap();
    assert_eq!(fake.live(), detached(), "{label}: everything destroyed on close");
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0), "{label}");
}

#[tokio::test(start_paused = true)]
async fn cancelled_and_timed_out_gets_leak_nothing_whatever_the_backend_does() {
    let tally = Arc::new(Tally::default());
    for (create_name, create) in outcomes() {
        for (recycle_name, recycle) in outcomes() {
            for break_on_return in [false, true] {
                let label = format!("create {create_name}, recycle {recycle_name}, broken {break_on_return}");
                scenario(&label, create.clone(), recycle.clone(), break_on_return, &tally).await;
            }
        }
    }
    for (path, count) in [
        ("got a resource", &tally.got),
        ("failed", &tally.failed),
        ("cut short by the timeout", &tally.cut_short),
        ("aborted", &tally.aborted),
        ("detached", &tally.detached),
    ] {
        let count = count.load(Ordering::SeqCst);
        assert!(count >= 20, "only {count} gets {path}: the scenarios miss a path");
    }
}

/// Real threads, no timers: tasks on two workers get, return, discard,
/// detach and cancel gets at arbitrary points (a `select!` against a yield).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_gets_on_two_threads_leaks_nothing() {
    let fake = Fake::new();
    fake.recycle_then(|n| if n.is_multiple_of(5) { Outcome::Fail("reset") } else { Outcome::Ok });
    let invariants = Invariants::new(MAX);
    let pool = Pool::builder(fake.clone()).max_size(MAX).observer(invariants.clone()).build().unwrap();
    let (detached, cancelled) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let tasks: Vec<_> = (0..16u64)
        .map(|t| {
            let (pool, detached, cancelled) = (pool.clone(), Arc::clone(&detached), Arc::clone(&cancelled));
            tokio::spawn(async move {
                for i in 0..300u64 {
                    let conn = tokio::select! {
                        biased;
                        got = pool.get() => got.unwrap(),
                        () = async { for _ in 0..(i + t) % 3 { tokio::task::yield_now().await } } => {
                            cancelled.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                    };
                    tokio::task::yield_now().await;
                    match (i + t) % 13 {
                        0 => Pooled::discard(conn),
                        1 => drop(Pooled::detach(conn)),
                        2 => conn.break_it(),
                        _ => {}
                    }
                    if (i + t) % 13 == 1 {
                        detached.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let s = pool.status();
    assert_eq!((s.waiting, s.creating, s.in_use), (0, 0, 0), "{s:?}");
    assert_eq!(fake.live() - detached.load(Ordering::SeqCst), s.size);
    assert_eq!(invariants.violations(), Vec::<String>::new());
    assert!(cancelled.load(Ordering::SeqCst) > 100, "gets were really cancelled");
    drop(pool.get().await.unwrap());
}

/// A `get` future polled by hand, so a test can drop it at an exact point.
type Get<'a> = std::pin::Pin<Box<dyn Future<Output = Result<Pooled<Fake>, Error<common::FakeError>>> + 'a>>;

fn start(pool: &Pool<Fake>) -> Get<'_> {
    let mut get: Get<'_> = Box::pin(pool.get());
    assert!(poll_once(get.as_mut()).is_pending(), "the get should have to wait");
    get
}

fn finish(mut get: Get<'_>) -> Pooled<Fake> {
    match poll_once(get.as_mut()) {
        std::task::Poll::Ready(got) => got.expect("served"),
        std::task::Poll::Pending => panic!("the get should be done"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_get_cancelled_after_being_handed_a_resource_passes_it_to_the_next_waiter() {
    let fake = Fake::new();
    let pool = Pool::builder(fake.clone()).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let (first, second) = (start(&pool), start(&pool));
    drop(held); // handed to the first waiter, which has not picked it up
    assert_eq!(counts(&pool), (1, 0, 1, 0, 1));
    drop(first);
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0), "passed straight on to the second");
    assert_eq!(finish(second).id, 0);
    assert_eq!(fake.created(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_get_cancelled_after_being_granted_a_slot_passes_the_slot_on() {
    let fake = Fake::new();
    let pool = Pool::builder(fake.clone()).max_size(1).build().unwrap();
    let held = pool.get().await.unwrap();
    let (first, second) = (start(&pool), start(&pool));
    Pooled::discard(held); // the slot is granted to the first waiter
    assert_eq!(counts(&pool), (0, 0, 0, 1, 1));
    drop(first);
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0), "the slot went to the second");
    assert_eq!(finish(second).id, 1);
}

#[tokio::test(start_paused = true)]
async fn a_get_cancelled_while_creating_frees_its_slot_for_the_next_waiter() {
    let fake = Fake::new();
    fake.script_create([Outcome::Never]);
    let pool = Pool::builder(fake.clone()).max_size(1).build().unwrap();
    let (creating, waiting) = (start(&pool), start(&pool));
    assert_eq!(counts(&pool), (0, 0, 0, 1, 1));
    drop(creating);
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0), "the slot went to the waiter");
    assert_eq!(finish(waiting).id, 0);
    assert_eq!(fake.create_calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_get_cancelled_while_checking_destroys_the_resource_and_passes_the_slot_on() {
    let fake = Fake::new();
    let pool = Pool::builder(fake.clone()).max_size(1).build().unwrap();
    drop(pool.get().await.unwrap());
    fake.script_recycle([slow(1000)]);
    let (checking, waiting) = (start(&pool), start(&pool));
    assert_eq!(counts(&pool), (1, 0, 1, 0, 1));
    drop(checking);
    assert_eq!(fake.destroyed_ids(), [(0, DestroyReason::RecycleFailed)], "its state is unknown");
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0));
    assert_eq!(finish(waiting).id, 1);
}

#[tokio::test(start_paused = true)]
async fn a_get_cancelled_while_backing_off_frees_its_slot() {
    let fake = Fake::new();
    fake.script_create([Outcome::Fail("refused")]);
    let pool = Pool::builder(fake.clone()).max_size(1).build().unwrap();
    assert!(pool.get().await.is_err());
    let backing_off = start(&pool);
    assert_eq!(counts(&pool), (0, 0, 0, 1, 0));
    assert_eq!(fake.create_calls(), 1, "still waiting for its turn");
    drop(backing_off);
    assert_eq!(counts(&pool), (0, 0, 0, 0, 0));
    assert_eq!(pool.get().await.unwrap().id, 0);
}

#[tokio::test(start_paused = true)]
async fn a_get_cancelled_while_waiting_out_a_cool_down_gives_up_its_place() {
    let fake = Fake::new();
    let pool = Pool::builder(fake.clone()).max_size(2).build().unwrap();
    let held = pool.get().await.unwrap();
    fake.script_create([Outcome::Full]);
    let refused = start(&pool);
    assert!(pool.status().cooling_down);
    assert_eq!(counts(&pool), (1, 0, 1, 0, 1), "refused, it waits again");
    drop(refused);
    assert_eq!(counts(&pool), (1, 0, 1, 0, 0));
    drop(held);
    assert_eq!(counts(&pool), (1, 1, 0, 0, 0), "the return went to the idle list");
    let [first, second] = [pool.get().await.unwrap(), pool.get().await.unwrap()];
    assert_eq!((first.id, second.id), (0, 1), "a create after the cool-down");
}

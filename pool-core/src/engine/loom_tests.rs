//! Model check of the engine with loom: every interleaving of a few
//! threads returning, waiting for, cancelling, closing, finishing creates
//! and ending cool-downs, checked against the invariants in the module docs.
//!
//! Run with `RUSTFLAGS="--cfg pool_loom" cargo test -p pool-core --lib --release -- loom`
//! (the test command does this in its own target directory).

use std::future::poll_fn;
use std::task::{Poll, Waker};

use loom::sync::Arc;
use loom::thread;
use tokio::time::Instant;

use super::{Checkout, Core, Entry, EntryData, Grant, Join, Returned};
use crate::config::{Reuse, Sizes};
use crate::info::ResourceInfo;

fn entry(id: u32) -> Entry<u32> {
    Box::new(EntryData {
        resource: id,
        info: ResourceInfo::new(tokio::time::Instant::now(), None, 0),
        lease: super::Lease::default(),
    })
}

fn settle(returned: Returned<u32>) -> Option<u32> {
    match returned {
        Returned::Kept(waker) => {
            if let Some(w) = waker {
                w.wake();
            }
            None
        }
        Returned::Destroy(entry, _, waker) => {
            if let Some(w) = waker {
                w.wake();
            }
            Some(entry.resource)
        }
    }
}

/// Takes a resource the way `get` does: an idle one, or a slot to fill with
/// a new one, or a place in the queue to wait for either.
fn take(core: &Core<u32>, new_id: u32) -> Option<Entry<u32>> {
    let grant = loom::future::block_on(async {
        let checkout = poll_fn(|cx| {
            Poll::Ready(core.checkout(Some(Join { waker: cx.waker(), deadline: || None }), None))
        })
        .await;
        match checkout {
            Checkout::Resource(entry, _) => Some(Grant::Resource(entry)),
            Checkout::Slot => Some(Grant::Slot),
            Checkout::Wait { key, .. } => Some(poll_fn(|cx| core.poll_grant(key, cx)).await),
            Checkout::Closed => None,
            Checkout::Overloaded | Checkout::Exhausted => unreachable!("unbounded queue, waiting allowed"),
        }
    })?;
    match grant {
        Grant::Resource(entry) => Some(entry),
        Grant::Slot => {
            let (booked, wake_next) = core.fill_slot(entry(new_id));
            if let Some(w) = wake_next {
                w.wake();
            }
            booked.ok()
        }
        Grant::Closed => None,
        Grant::TimedOut => unreachable!("no deadline was set"),
    }
}

/// A thread that takes a resource (creating it as `new_id` if it gets a
/// slot) and returns it healthy; joins with what the return destroyed.
fn spawn_take_and_return(core: &Arc<Core<u32>>, new_id: u32) -> thread::JoinHandle<Option<u32>> {
    let core = Arc::clone(core);
    thread::spawn(move || {
        let entry = take(&core, new_id).expect("the pool is open");
        assert!(core.status().creating <= 1, "invariant 6, with max_creates 1 or one slot free");
        settle(core.put_back(entry, None))
    })
}

/// Reserves a slot for a create the way `get` does when it need not wait.
fn reserve_slot(core: &Core<u32>) {
    let no_join: Option<Join<'_, fn() -> Option<Instant>>> = None;
    assert!(matches!(core.checkout(no_join, None), Checkout::Slot));
}

/// Joins the queue of an exhausted pool without blocking, with `deadline`.
fn join_queue(core: &Core<u32>, deadline: Option<Instant>) -> (usize, bool) {
    match core.checkout(Some(Join { waker: Waker::noop(), deadline: || deadline }), None) {
        Checkout::Wait { key, wake_timer } => (key, wake_timer),
        _ => panic!("the only slot is taken"),
    }
}

fn assert_settled(core: &Core<u32>, max_size: usize) {
    let status = core.status();
    assert_eq!(status.waiting, 0, "{status:?}");
    assert_eq!(status.in_use, 0, "{status:?}");
    assert_eq!(status.creating, 0, "{status:?}");
    assert!(status.size <= max_size, "{status:?}");
    assert_eq!(status.idle, status.size, "{status:?}");
}

#[test]
fn loom_two_tasks_share_one_slot_without_loss() {
    loom::model(|| {
        let core = Arc::new(Core::new(Sizes { max_size: 1, min_idle: 0 }, Reuse::Lifo, None, 1));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let core = Arc::clone(&core);
                thread::spawn(move || {
                    let entry = take(&core, i).expect("the pool is open");
                    assert!(core.status().size <= 1);
                    assert_eq!(settle(core.put_back(entry, None)), None);
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_settled(&core, 1);
        assert_eq!(core.status().size, 1, "the slot's resource was kept");
    });
}

#[test]
fn loom_cancelled_waiter_passes_its_grant_on() {
    loom::model(|| {
        let core = Arc::new(Core::new(Sizes { max_size: 1, min_idle: 0 }, Reuse::Lifo, None, 1));
        let held = take(&core, 0).expect("open");
        let (key, _) = join_queue(&core, None);
        let returner = {
            let core = Arc::clone(&core);
            thread::spawn(move || settle(core.put_back(held, None)))
        };
        // The waiter gives up while the resource may be coming back to it.
        let canceller = {
            let core = Arc::clone(&core);
            thread::spawn(move || settle(core.cancel_wait(key)))
        };
        assert_eq!(returner.join().unwrap(), None);
        assert_eq!(canceller.join().unwrap(), None);
        assert_settled(&core, 1);
        assert_eq!(core.status().idle, 1, "the resource was not lost");
    });
}

#[test]
fn loom_freed_slot_reaches_a_waiter_or_stays_free() {
    loom::model(|| {
        let core = Arc::new(Core::new(Sizes { max_size: 1, min_idle: 0 }, Reuse::Lifo, None, 1));
        let _held = take(&core, 0).expect("open");
        let destroyer = {
            let core = Arc::clone(&core);
            thread::spawn(move || {
                if let Some(w) = core.remove_in_use() {
                    w.wake();
                }
            })
        };
        let waiter = spawn_take_and_return(&core, 1);
        destroyer.join().unwrap();
        assert_eq!(waiter.join().unwrap(), None);
        assert_settled(&core, 1);
    });
}

#[test]
fn loom_close_wakes_every_waiter_and_loses_nothing() {
    loom::model(|| {
        let core = Arc::new(Core::new(Sizes { max_size: 1, min_idle: 0 }, Reuse::Lifo, None, 1));
        let held = take(&core, 0).expect("open");
        let waiter = {
            let core = Arc::clone(&core);
            thread::spawn(move || take(&core, 1).map(|entry| settle(core.put_back(entry, None))))
        };
        let closer = {
            let core = Arc::clone(&core);
            thread::spawn(move || core.close().map(|removed| removed.wake.into_iter().for_each(|w| w.wake())))
        };
        let returned = settle(core.put_back(held, None));
        closer.join().unwrap();
        let waited = waiter.join().unwrap();
        let status = core.status();
        assert!(status.closed);
        // Nothing is left: idle resources were drained by close, and one
        // returned after it was destroyed by its returner.
        let expected = crate::status::Status { max_size: 1, closed: true, ..Default::default() };
        assert_eq!(crate::status::Status { pool_id: 0, sequence: 0, ..status }, expected);
        assert_eq!(core.outstanding(), 0);
        // The one resource ended exactly once: drained by close (neither
        // returner saw it destroyed), or destroyed on return by one of them.
        let destroyed_on_return =
            usize::from(returned.is_some()) + usize::from(matches!(waited, Some(Some(_))));
        assert!(destroyed_on_return <= 1);
    });
}

#[test]
fn loom_timed_out_waiter_gets_a_timeout_or_the_resource_never_both() {
    loom::model(|| {
        let core = Arc::new(Core::new(Sizes { max_size: 1, min_idle: 0 }, Reuse::Lifo, None, 1));
        let held = take(&core, 0).expect("open");
        let deadline = Instant::now();
        let (key, wake_timer) = join_queue(&core, Some(deadline));
        assert!(wake_timer, "the first deadline wakes the idle timer");
        let returner = {
            let core = Arc::clone(&core);
            thread::spawn(move || settle(core.put_back(held, None)))
        };
        // The queue's timer finds the deadline passed while the resource may
        // be coming back to the same waiter.
        let timer = {
            let core = Arc::clone(&core);
            thread::spawn(move || {
                let expired = core.expire(deadline);
                assert_eq!(expired.next, None, "nobody else waits");
                expired.wake.len()
            })
        };
        assert_eq!(returner.join().unwrap(), None);
        let timed_out = timer.join().unwrap();
        match loom::future::block_on(poll_fn(|cx| core.poll_grant(key, cx))) {
            Grant::TimedOut => {
                assert_eq!(timed_out, 1);
                assert_eq!(core.status().idle, 1, "the resource went to the idle list");
            }
            Grant::Resource(entry) => {
                assert_eq!(timed_out, 0, "a served waiter is not timed out too");
                assert_eq!(settle(core.put_back(entry, None)), None);
            }
            Grant::Slot | Grant::Closed => panic!("the resource was returned healthy"),
        }
        assert_settled(&core, 1);
    });
}

#[test]
fn loom_a_finished_create_hands_its_turn_to_a_waiter() {
    loom::model(|| {
        let core = Arc::new(Core::new(Sizes { max_size: 2, min_idle: 0 }, Reuse::Lifo, None, 1));
        reserve_slot(&core);
        let creator = {
            let core = Arc::clone(&core);
            thread::spawn(move || {
                let (booked, wake_next) = core.fill_slot(entry(0));
                if let Some(w) = wake_next {
                    w.wake();
                }
                let Ok(created) = booked else { panic!("the pool is open") };
                settle(core.put_back(created, None))
            })
        };
        // A free slot, but the one create allowed is under way: it waits
        // for that create's turn or its resource (and would hang without).
        let waiter = spawn_take_and_return(&core, 1);
        assert_eq!(creator.join().unwrap(), None);
        assert_eq!(waiter.join().unwrap(), None);
        assert_settled(&core, 2);
    });
}

#[test]
fn loom_a_cool_down_serves_its_waiter_by_a_return_or_by_its_end() {
    loom::model(|| {
        let core = Arc::new(Core::new(Sizes { max_size: 2, min_idle: 0 }, Reuse::Lifo, None, 2));
        let held = take(&core, 0).expect("open");
        // A create is refused for capacity: the pool cools down, then the
        // refused slot is given up without reaching anyone.
        reserve_slot(&core);
        let now = Instant::now();
        let refused = core.refused(now, 0);
        assert_eq!(refused.held, 1);
        assert!(refused.cool_down.is_some(), "the first refusal enters a cool-down");
        assert!(core.refused(now, 0).cool_down.is_none(), "one cool-down at a time");
        assert!(core.abandon_slot().is_none(), "nobody waits");
        let waiter = spawn_take_and_return(&core, 1);
        let returner = {
            let core = Arc::clone(&core);
            thread::spawn(move || settle(core.put_back(held, None)))
        };
        // The queue's timer ends the cool-down meanwhile.
        let timer = {
            let core = Arc::clone(&core);
            thread::spawn(move || {
                let expired = core.expire(now + std::time::Duration::from_secs(60));
                assert!(expired.cooled);
                for w in expired.wake {
                    w.wake();
                }
            })
        };
        assert_eq!(returner.join().unwrap(), None);
        timer.join().unwrap();
        assert_eq!(waiter.join().unwrap(), None);
        assert_settled(&core, 2);
        assert!(!core.status().cooling_down);
    });
}

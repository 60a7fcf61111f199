//! Random sequences of operations, driven by hand on a paused clock: after
//! every step the pool's books must balance.
//!
//! `get` futures are polled by hand with a no-op waker, so a step can leave
//! a waiter granted a resource it has not picked up yet, and a later step
//! can cancel it right then: the cancellation paths the engine must get right.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{Fake, FakeError, Outcome};
use pool_core::{Error, Pool, Pooled};
use proptest::prelude::*;

const MAX: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    StartGet,
    PollAll,
    DropGuard(usize),
    BreakGuard(usize),
    CancelGet(usize),
    Resize(usize),
    Close,
    Advance(u64),
    EvictAll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => Just(Op::StartGet),
        3 => Just(Op::PollAll),
        3 => any::<usize>().prop_map(Op::DropGuard),
        1 => any::<usize>().prop_map(Op::BreakGuard),
        2 => any::<usize>().prop_map(Op::CancelGet),
        1 => (1..=5usize).prop_map(Op::Resize),
        1 => Just(Op::Close),
        2 => (0..1500u64).prop_map(Op::Advance),
        1 => Just(Op::EvictAll),
    ]
}

fn create_outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Ok),
        1 => Just(Outcome::Fail("refused")),
        1 => Just(Outcome::Full),
        2 => (1..800u64).prop_map(|ms| Outcome::Slow(Duration::from_millis(ms))),
        1 => Just(Outcome::Never),
    ]
}

/// Recycles finish at once, so a pending `get` is always queued or creating.
fn recycle_outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![3 => Just(Outcome::Ok), 1 => Just(Outcome::Fail("reset"))]
}

type GetFuture<'a> = Pin<Box<dyn Future<Output = Result<Pooled<Fake>, Error<FakeError>>> + 'a>>;

/// The hand-driven side: futures still pending and guards held.
struct Driver<'a> {
    pool: &'a Pool<Fake>,
    pending: Vec<GetFuture<'a>>,
    guards: Vec<Pooled<Fake>>,
}

impl Driver<'_> {
    /// Polls `pending[i]` once; a finished get is removed (its guard kept).
    fn poll(&mut self, i: usize) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(result) = self.pending[i].as_mut().poll(&mut cx) else { return false };
        drop(self.pending.remove(i));
        match result {
            Ok(guard) => self.guards.push(guard),
            Err(Error::Timeout { .. } | Error::Backend(_) | Error::Closed) => {}
            Err(other) => panic!("unexpected error from get: {other:?}"),
        }
        true
    }

    fn start_get(&mut self) {
        self.pending.push(Box::pin(self.pool.get()));
        self.poll(self.pending.len() - 1);
    }

    /// Polls everything until a whole pass finishes nothing.
    fn poll_all(&mut self) {
        loop {
            let mut finished = false;
            let mut i = 0;
            while i < self.pending.len() {
                if self.poll(i) {
                    finished = true;
                } else {
                    i += 1;
                }
            }
            if !finished {
                return;
            }
        }
    }
}

fn run(ops: &[Op], creates: Vec<Outcome>, recycles: Vec<Outcome>) {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    runtime.block_on(async {
        let fake = Fake::new();
        fake.create_then(move |n| creates[n % creates.len()].clone());
        fake.recycle_then(move |n| recycles[n % recycles.len()].clone());
        let pool = Pool::builder(fake.clone())
            .max_size(MAX)
            .acquire_timeout(Duration::from_secs(1))
            .idle_timeout(Duration::from_secs(2))
            .max_lifetime(Duration::from_secs(5))
            .keepalive_interval(Duration::from_millis(700))
            .build()
            .unwrap();
        let mut driver = Driver { pool: &pool, pending: Vec::new(), guards: Vec::new() };
        let mut max_bound = MAX;
        let mut shrink_pending = false;

        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::StartGet => driver.start_get(),
                Op::PollAll => driver.poll_all(),
                Op::DropGuard(i) if !driver.guards.is_empty() => {
                    let i = i % driver.guards.len();
                    drop(driver.guards.swap_remove(i));
                }
                Op::CancelGet(i) if !driver.pending.is_empty() => {
                    let i = i % driver.pending.len();
                    drop(driver.pending.swap_remove(i));
                }
                Op::BreakGuard(i) if !driver.guards.is_empty() => {
                    let i = i % driver.guards.len();
                    let guard = driver.guards.swap_remove(i);
                    guard.break_it(); // destroyed on return: its slot is freed
                }
                Op::DropGuard(_) | Op::BreakGuard(_) | Op::CancelGet(_) => {}
                Op::Resize(n) => {
                    shrink_pending |= n < pool.status().max_size;
                    max_bound = max_bound.max(n);
                    pool.resize(n).unwrap();
                }
                Op::Close => pool.close(),
                Op::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                Op::EvictAll => pool.evict_all(),
            }
            // Let the maintenance task and fired timers run.
            common::settle().await;

            let s = pool.status();
            let at = format!("after step {step} ({op:?}): {s:?}");
            if let Err(violation) = common::check_consistent(&s, max_bound) {
                panic!("{violation}, {at}");
            }
            if s.size + s.creating > s.max_size {
                assert!(shrink_pending, "over max_size without a shrink, {at}");
            } else {
                shrink_pending = false;
            }
            assert_eq!(fake.live(), s.size, "live resources == size, {at}");
            // Each pending get is queued, creating in its slot, holding a
            // resource granted but not picked up yet, or done but not polled.
            assert!(s.in_use >= driver.guards.len(), "every guard counts as in use, {at}");
            let granted = s.in_use - driver.guards.len();
            assert!(s.waiting + s.creating + granted <= driver.pending.len(), "nothing held by nobody, {at}");
            if matches!(op, Op::PollAll) {
                assert_eq!(granted, 0, "every grant was picked up, {at}");
                assert_eq!(
                    s.waiting + s.creating,
                    driver.pending.len(),
                    "pending gets are queued or creating, {at}"
                );
            }
        }

        drop(driver);
        pool.close_and_wait(Duration::from_secs(5)).await.expect("everything comes back");
        assert_eq!(fake.live(), 0);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_books_balanced(
        ops in prop::collection::vec(op(), 1..60),
        creates in prop::collection::vec(create_outcome(), 1..6),
        recycles in prop::collection::vec(recycle_outcome(), 1..4),
    ) {
        run(&ops, creates, recycles);
    }
}

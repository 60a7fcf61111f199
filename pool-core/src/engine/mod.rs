//! The engine: who gets which resource, and when.
//!
//! # Implementation details
//!
//! All shared state sits in one [`State`] behind one mutex: the idle
//! resources (a `VecDeque`, taken from the back for LIFO or the front for
//! FIFO), the queue of waiting tasks ([`WaiterQueue`]), and three counts —
//! `in_use` (resources out of the idle list: handed out, handed to a waiter
//! that has not picked them up yet, or being checked), `creating` (slots
//! reserved for a resource being created), and the pool's live sizes,
//! `max_size` and `min_idle` (the only copy of either once the pool is
//! built; `min_idle` is kept as configured and capped at `max_size` where
//! it is read, so a shrink and a regrowth give the configured value back).
//! A *slot* is the
//! right to hold one resource; `idle.len() + in_use + creating` is the number
//! of slots taken. Two more fields gate creating: `max_creates` (the
//! builder's `max_concurrent_creates`) and `cooling_until`, set while the
//! pool is in a capacity cool-down (`cooldown.rs`): the backend refused a
//! create for lack of free slots, so the pool stops growing until then. A
//! slot may be *reserved for a create* only when fewer than `max_creates`
//! are reserved and the pool is not cooling down ([`State::may_create`]).
//! Every critical section is a few field updates: no allocation in the
//! common case, no I/O, no user code, no await.
//!
//! ## Invariants (checked by the property and model tests)
//!
//! 1. `idle.len() + in_use + creating <= max_size`, except after a resize
//!    shrank `max_size` below the resources in use; slots above the limit are
//!    then given up as they are freed, never handed on.
//! 2. Nobody waits while something is free: if the queue is not empty, the
//!    idle list is empty and no slot may be reserved for a create (every
//!    slot is taken, or `max_creates` creates are under way, or the pool is
//!    cooling down). A task that frees a slot, ends a create, returns a
//!    resource or ends a cool-down therefore hands it *directly* to the
//!    first waiter (a [`Grant`]) instead of making it available to whoever
//!    comes next.
//! 3. First come, first served: a new `get` takes an idle resource or a free
//!    slot only when nobody is queued; otherwise it queues behind the others.
//!    Grants go to the front of the queue, so no task can barge ahead of one
//!    that has waited longer.
//! 4. Once `closed` is set, the queue is empty and stays empty, the idle list
//!    is empty and stays empty, and no slot is handed on.
//! 5. Deadlines grow from the front of the queue to the back: a waiter's
//!    deadline is read under the lock as it joins, and every pool waits the
//!    same `acquire_timeout`. A caller that gives its slot up to wait again
//!    (its idle resource failed its check and no create may start, or its
//!    create was refused for capacity; see [`Core::rejoin`]) is placed by
//!    the deadline it already has. The first waiter therefore always has the
//!    earliest deadline, which is all the queue's timer has to watch.
//! 6. At most `max_creates` slots are reserved for creates (`creating <=
//!    max_creates`), and none is newly reserved while the pool cools down.
//!    A cool-down is entered at most once at a time, and only
//!    [`Core::expire`], called by the queue's timer at `cooling_until`,
//!    ends it, granting the slots it held back to the waiters at the front.
//!
//! ## Timeouts: one timer for the whole queue
//!
//! A waiter does not arm a timer of its own. [`Core::expire`], called by the
//! pool's timer task (`expiry.rs`), serves every waiter at the front whose
//! deadline has passed with [`Grant::TimedOut`], ends a cool-down that is
//! over, and names the next moment either is due. `timer_at` is the moment
//! the timer task will next call it: a new waiter whose deadline is earlier
//! (in practice: the first one after the timer went idle), or a cool-down
//! that ends earlier, sets it and tells the caller to wake the task; every
//! other waiter costs the timer nothing. Because a timeout is a grant like any
//! other, decided under the lock, a waiter is either served or timed out,
//! never both.
//!
//! ## Cancellation
//!
//! A waiter's node stays allocated until its owner releases it. If a waiter
//! is cancelled after it was served but before it picked the grant up, the
//! release returns the grant and [`Core::cancel_wait`] passes it on to the
//! next waiter (or back to the idle list, or frees the slot) in the same
//! critical section, so no resource or slot is ever lost to a cancellation.
//!
//! ## Wake-ups
//!
//! Operations return the wakers to wake instead of waking under the lock;
//! callers wake them after the lock is released.

mod waiters;

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use tokio::time::Instant;

use crate::config::{Reuse, Sizes};
use crate::info::ResourceInfo;
use crate::manager::DestroyReason;
use crate::status::Status;
use crate::sync::Mutex;
use waiters::{NodeState, WaiterQueue};

/// A resource with its book-keeping, boxed once when the resource is
/// created: the hot path moves an entry several times (idle list, check,
/// guard), and a pointer is cheaper to move than the resource with its
/// timestamps.
pub(crate) type Entry<T> = Box<EntryData<T>>;

/// What an [`Entry`] holds.
pub(crate) struct EntryData<T> {
    pub(crate) resource: T,
    pub(crate) info: ResourceInfo,
    /// The current checkout's book-keeping. Kept here rather than in the
    /// guard so the guard is two pointers, cheap to move through the
    /// `Result`s of `get`'s result on the uncontended path.
    pub(crate) lease: Lease,
}

/// Book-keeping of one checkout, for timed pools (observers, leak detection).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Lease {
    /// When it was handed out.
    pub(crate) acquired_at: Option<Instant>,
    /// Its key in the leak registry.
    pub(crate) leak: Option<usize>,
}

/// What a waiter is served with.
pub(crate) enum Grant<T> {
    /// An idle resource, already counted in `in_use`.
    Resource(Entry<T>),
    /// A free slot, already counted in `creating`: the waiter creates the resource.
    Slot,
    /// The pool was closed while it waited.
    Closed,
    /// Its deadline passed first (see [`Core::expire`]).
    TimedOut,
}

/// How a caller that may wait joins the queue.
pub(crate) struct Join<'a, D> {
    /// The waker of the task that waits: registered as it joins, so the
    /// first poll after joining need not take the lock again.
    pub(crate) waker: &'a Waker,
    /// Asked under the lock, only if the caller really has to wait.
    pub(crate) deadline: D,
}

/// The outcome of [`Core::checkout`].
pub(crate) enum Checkout<T> {
    /// An idle resource, now counted in `in_use`; the flag says that fewer
    /// than `min_idle` are idle now, so the upkeep task should refill.
    Resource(Entry<T>, bool),
    /// A free slot, now counted in `creating`.
    Slot,
    /// Queued under `key`; poll with [`Core::poll_grant`]. `wake_timer`: the
    /// timer task must be woken to watch this waiter's deadline.
    Wait {
        key: usize,
        wake_timer: bool,
    },
    Closed,
    /// The queue already holds `max_waiters` tasks.
    Overloaded,
    /// Nothing free and the caller does not wait.
    Exhausted,
}

/// What became of a returned resource.
pub(crate) enum Returned<T> {
    /// Kept idle or handed to a waiter.
    Kept(Option<Waker>),
    /// Not kept: the caller destroys it for this reason, then wakes the waker.
    Destroy(Entry<T>, DestroyReason, Option<Waker>),
}

/// Resources removed from the pool by an operation, and the tasks to wake.
pub(crate) struct Removed<T> {
    pub(crate) destroy: Vec<(Entry<T>, DestroyReason)>,
    pub(crate) wake: Vec<Waker>,
}

impl<T> Removed<T> {
    fn new() -> Self {
        Self { destroy: Vec::new(), wake: Vec::new() }
    }
}

/// The backend calls the upkeep task should make; see [`Core::upkeep`].
pub(crate) struct Upkeep<T> {
    /// Idle resources due for a keepalive check, now counted in `in_use`.
    pub(crate) check: Vec<Entry<T>>,
    /// Whether a slot was reserved (in `creating`) for a refill.
    pub(crate) refill: bool,
}

/// What [`Core::expire`] did.
pub(crate) struct Expired {
    /// The timed-out waiters, and those granted a slot as a cool-down
    /// ended, to wake.
    pub(crate) wake: Vec<Waker>,
    /// When to call `expire` next (`None`: no waiter has a deadline and
    /// the pool is not cooling down).
    pub(crate) next: Option<Instant>,
    /// Whether a cool-down ended (so `min_idle` may need refilling).
    pub(crate) cooled: bool,
}

/// What [`Core::refused`] did about a create refused for capacity.
pub(crate) struct Refused {
    /// Resources the pool held (idle and in use) when it was refused.
    pub(crate) held: usize,
    /// The cool-down it entered, unless it was cooling down already.
    pub(crate) cool_down: Option<CoolDown>,
}

/// A cool-down just entered.
pub(crate) struct CoolDown {
    /// How long no create may start.
    pub(crate) length: std::time::Duration,
    /// The timer task must be woken to end it (see [`Core::expire`]).
    pub(crate) wake_timer: bool,
}

/// The fields' order is fixed (`repr(C)`) and chosen for the two runtime
/// threads that take turns at the lock, in 64-byte cache lines (the
/// [`Mutex`] is cache-line aligned):
///
/// 1. the lock word, the idle list's header, `in_use`, `creating` and the
///    queue's length: all that a `get` that finds a resource and a return
///    with nobody waiting write;
/// 2. the rest of the queue and `timer_at`, written only while tasks wait;
/// 3. the fields that change rarely (`max_size`, `closed`, the cool-down, ...), which thus
///    stay cached on both threads;
/// 4. the snapshot counter, written by observed checkouts and returns.
///
/// So the hot fields of one thread's critical section never share a line
/// with fields the other thread writes for an unrelated reason.
#[repr(C)]
pub(crate) struct State<T> {
    idle: VecDeque<Entry<T>>,
    in_use: usize,
    creating: usize,
    waiters: WaiterQueue<T>,
    /// When the timer task calls [`Core::expire`] next (`None`: it sleeps
    /// until woken).
    timer_at: Option<Instant>,
    max_size: usize,
    /// As configured; read through [`State::min_idle`], which caps it at
    /// the live `max_size`.
    min_idle: usize,
    /// The most slots reserved for creates at once (invariant 6).
    max_creates: usize,
    /// While cooling down: when the cool-down ends (invariant 6).
    cooling_until: Option<Instant>,
    /// Cool-downs entered since the last successful create, which sets
    /// the next one's length (`cooldown.rs`).
    cool_downs_in_a_row: u32,
    closed: bool,
    generation: u64,
    /// `Status::pool_id`.
    pool_id: u64,
    /// The last snapshot's `Status::sequence`: on a line of its own, as
    /// observed pools write it on every checkout and return.
    snapshots: OwnLine,
}

/// Pools built so far in this process: the next `Status::pool_id`.
static POOLS_BUILT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A counter on a cache line of its own.
#[repr(align(64))]
struct OwnLine(u64);

impl<T> State<T> {
    fn slots(&self) -> usize {
        self.idle.len() + self.in_use + self.creating
    }

    /// How many idle resources the pool keeps ready now: the configured
    /// `min_idle`, but never more than the live `max_size`.
    fn min_idle(&self) -> usize {
        self.min_idle.min(self.max_size)
    }

    /// Whether a slot may be reserved for a create now (invariant 6).
    fn may_create(&self) -> bool {
        self.creating < self.max_creates && self.cooling_until.is_none()
    }

    /// A slot or a create's turn was just given up (already subtracted from
    /// its count), or a cool-down ended: hand a slot to the first waiter if
    /// the pool may still use it and may create now.
    fn slot_freed(&mut self) -> Option<Waker> {
        if self.closed || self.waiters.is_empty() || self.slots() >= self.max_size || !self.may_create() {
            return None;
        }
        self.creating += 1;
        match self.waiters.grant_front(Grant::Slot) {
            Ok(waker) => waker,
            Err(_) => unreachable!("the queue was not empty"),
        }
    }

    /// A healthy resource counted in `in_use` goes back: to the first
    /// waiter, or to the idle list, or (closed, evicted, over the size) away.
    fn put_back(&mut self, entry: Entry<T>) -> Returned<T> {
        let reason = if self.closed {
            Some(DestroyReason::Closed)
        } else if entry.info.generation != self.generation || self.slots() > self.max_size {
            Some(DestroyReason::Evicted)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.in_use -= 1;
            let wake = self.slot_freed();
            return Returned::Destroy(entry, reason, wake);
        }
        match self.waiters.grant_front(Grant::Resource(entry)) {
            Ok(waker) => Returned::Kept(waker),
            Err(Grant::Resource(entry)) => {
                self.in_use -= 1;
                self.idle.push_back(entry);
                Returned::Kept(None)
            }
            Err(_) => unreachable!("grant_front returns the grant it was given"),
        }
    }

    /// A snapshot of the counts, numbered (see `Status::sequence`).
    fn status(&mut self) -> Status {
        self.snapshots.0 += 1;
        Status {
            max_size: self.max_size,
            min_idle: self.min_idle(),
            size: self.idle.len() + self.in_use,
            idle: self.idle.len(),
            in_use: self.in_use,
            creating: self.creating,
            waiting: self.waiters.len(),
            cooling_down: self.cooling_until.is_some(),
            closed: self.closed,
            pool_id: self.pool_id,
            sequence: self.snapshots.0,
        }
    }
}

/// The engine: the state behind its lock, and the operations on it.
pub(crate) struct Core<T> {
    state: Mutex<State<T>>,
    reuse: Reuse,
    max_waiters: usize,
}

impl<T> Core<T> {
    pub(crate) fn new(sizes: Sizes, reuse: Reuse, max_waiters: Option<usize>, max_creates: usize) -> Self {
        let Sizes { max_size, min_idle } = sizes;
        Self {
            state: Mutex::new(State {
                idle: VecDeque::with_capacity(max_size.min(1024)),
                waiters: WaiterQueue::new(),
                in_use: 0,
                creating: 0,
                max_size,
                min_idle,
                max_creates,
                cooling_until: None,
                cool_downs_in_a_row: 0,
                closed: false,
                generation: 0,
                timer_at: None,
                pool_id: POOLS_BUILT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                snapshots: OwnLine(0),
            }),
            reuse,
            max_waiters: max_waiters.unwrap_or(usize::MAX),
        }
    }

    /// Takes an idle resource or a free slot, or queues the caller (when it
    /// may `join` the queue), in first-come-first-served order. With
    /// `snapshot`, also reads the counts right after, in the same critical
    /// section.
    pub(crate) fn checkout<D: FnOnce() -> Option<Instant>>(
        &self,
        join: Option<Join<'_, D>>,
        snapshot: Option<&mut Status>,
    ) -> Checkout<T> {
        let mut state = self.state.lock();
        let out = self.checkout_locked(&mut state, join, false);
        if let Some(snapshot) = snapshot {
            *snapshot = state.status();
        }
        out
    }

    /// A caller that held a slot and gave it up (its resource failed its
    /// check while no create may start, or its create was refused for
    /// capacity) tries again: like [`Core::checkout`], but placed in the
    /// queue by `deadline` (its own, from when it first called `get`;
    /// invariant 5) rather than at the back, and never refused for
    /// `max_waiters`, as it was admitted once already.
    pub(crate) fn rejoin<D: FnOnce() -> Option<Instant>>(&self, join: Option<Join<'_, D>>) -> Checkout<T> {
        let mut state = self.state.lock();
        self.checkout_locked(&mut state, join, true)
    }

    fn checkout_locked<D: FnOnce() -> Option<Instant>>(
        &self,
        state: &mut State<T>,
        join: Option<Join<'_, D>>,
        rejoining: bool,
    ) -> Checkout<T> {
        if state.closed {
            return Checkout::Closed;
        }
        if state.waiters.is_empty() {
            let idle = match self.reuse {
                Reuse::Lifo => state.idle.pop_back(),
                Reuse::Fifo => state.idle.pop_front(),
            };
            if let Some(entry) = idle {
                state.in_use += 1;
                let low = state.idle.len() < state.min_idle();
                return Checkout::Resource(entry, low);
            }
            if state.slots() < state.max_size && state.may_create() {
                state.creating += 1;
                return Checkout::Slot;
            }
        }
        let Some(join) = join else { return Checkout::Exhausted };
        if state.waiters.len() >= self.max_waiters && !rejoining {
            return Checkout::Overloaded;
        }
        let deadline = (join.deadline)();
        let key = if rejoining {
            state.waiters.insert_by_deadline(join.waker.clone(), deadline)
        } else {
            state.waiters.push_back(join.waker.clone(), deadline)
        };
        let wake_timer = deadline.is_some_and(|d| state.timer_at.is_none_or(|at| d < at));
        if wake_timer {
            state.timer_at = deadline;
        }
        Checkout::Wait { key, wake_timer }
    }

    /// The wakers of every queued waiter (to make them look again).
    pub(crate) fn waiting_wakers(&self) -> Vec<Waker> {
        self.state.lock().waiters.wakers()
    }

    /// Times out every waiter at the front whose deadline is `now` or
    /// earlier, then ends the cool-down if it is over (granting the slots
    /// it held back to the waiters left, invariant 6), and says when to
    /// look again: the new first waiter's deadline or the cool-down's end.
    /// Timeouts come first, so no slot goes to a waiter whose time is up.
    pub(crate) fn expire(&self, now: Instant) -> Expired {
        let mut state = self.state.lock();
        let mut wake = Vec::new();
        while state.waiters.front_deadline().is_some_and(|at| at <= now) {
            match state.waiters.grant_front(Grant::TimedOut) {
                Ok(waker) => wake.extend(waker),
                Err(_) => unreachable!("the queue has a first waiter"),
            }
        }
        let cooled = state.cooling_until.is_some_and(|until| until <= now);
        if cooled {
            state.cooling_until = None;
            while let Some(waker) = state.slot_freed() {
                wake.push(waker);
            }
        }
        state.timer_at = match (state.waiters.front_deadline(), state.cooling_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Expired { wake, next: state.timer_at, cooled }
    }

    /// A create was refused because the backend has no free slots: enters
    /// a cool-down of `cooldown::length` (jittered by `random`) unless the
    /// pool is cooling down already or closed (invariant 6). Call before
    /// the refused create's slot is given up, so the slot cannot go to a
    /// waiter that would create again at once.
    pub(crate) fn refused(&self, now: Instant, random: u64) -> Refused {
        let mut state = self.state.lock();
        let held = state.idle.len() + state.in_use;
        if state.closed || state.cooling_until.is_some() {
            return Refused { held, cool_down: None };
        }
        state.cool_downs_in_a_row = state.cool_downs_in_a_row.saturating_add(1);
        let length = crate::cooldown::length(state.cool_downs_in_a_row, random);
        let until = now.checked_add(length).unwrap_or(now);
        state.cooling_until = Some(until);
        let wake_timer = state.timer_at.is_none_or(|at| until < at);
        if wake_timer {
            state.timer_at = Some(until);
        }
        Refused { held, cool_down: Some(CoolDown { length, wake_timer }) }
    }

    /// Polls a queued waiter; on `Ready` its key is released.
    pub(crate) fn poll_grant(&self, key: usize, cx: &mut Context<'_>) -> Poll<Grant<T>> {
        let mut state = self.state.lock();
        match state.waiters.state_mut(key) {
            NodeState::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            NodeState::Granted(_) => match state.waiters.release(key) {
                Some(grant) => Poll::Ready(grant),
                None => unreachable!("a granted node holds its grant"),
            },
            NodeState::Free => unreachable!("a waiter polled a released key"),
        }
    }

    /// A queued waiter gives up (timed out or cancelled). Whatever it had
    /// been granted meanwhile is passed on at once.
    pub(crate) fn cancel_wait(&self, key: usize) -> Returned<T> {
        let mut state = self.state.lock();
        match state.waiters.release(key) {
            None | Some(Grant::Closed | Grant::TimedOut) => Returned::Kept(None),
            Some(Grant::Resource(entry)) => state.put_back(entry),
            Some(Grant::Slot) => {
                state.creating -= 1;
                Returned::Kept(state.slot_freed())
            }
        }
    }

    /// A checked-out resource comes back healthy. With `snapshot`, also
    /// reads the counts right after, in the same critical section.
    pub(crate) fn put_back(&self, entry: Entry<T>, snapshot: Option<&mut Status>) -> Returned<T> {
        let mut state = self.state.lock();
        let out = state.put_back(entry);
        if let Some(snapshot) = snapshot {
            *snapshot = state.status();
        }
        out
    }

    /// A checked-out resource is gone for good (destroyed or detached).
    pub(crate) fn remove_in_use(&self) -> Option<Waker> {
        let mut state = self.state.lock();
        state.in_use -= 1;
        state.slot_freed()
    }

    /// A reserved slot is given up: its create failed or was cancelled. The
    /// turn to create it held goes to the first waiter (invariant 6).
    pub(crate) fn abandon_slot(&self) -> Option<Waker> {
        let mut state = self.state.lock();
        state.creating -= 1;
        state.slot_freed()
    }

    /// The caller's reserved slot now holds a resource it keeps. Returns the
    /// entry back (to destroy) when the pool was closed meanwhile. Either
    /// way the create's turn is over, and may go to the first waiter
    /// (invariant 6): the waker to wake.
    pub(crate) fn fill_slot(&self, entry: Entry<T>) -> (Result<Entry<T>, Entry<T>>, Option<Waker>) {
        let mut state = self.state.lock();
        state.creating -= 1;
        state.cool_downs_in_a_row = 0;
        if state.closed {
            return (Err(entry), None);
        }
        state.in_use += 1;
        let wake = state.slot_freed();
        (Ok(entry), wake)
    }

    /// A resource created in the background joins the pool: to the first
    /// waiter or the idle list. The create's turn may go to the next
    /// waiter (invariant 6): the second waker to wake.
    pub(crate) fn add_created(&self, entry: Entry<T>) -> (Returned<T>, Option<Waker>) {
        let mut state = self.state.lock();
        state.creating -= 1;
        state.in_use += 1;
        state.cool_downs_in_a_row = 0;
        let returned = state.put_back(entry);
        let wake = state.slot_freed();
        (returned, wake)
    }

    /// A checked-out resource failed its check and is destroyed. If a
    /// create may start, the caller keeps its slot to create a replacement
    /// (`true`); otherwise the slot is given up (`false`: no one else may
    /// use it either, invariant 6) and the caller waits again with
    /// [`Core::rejoin`].
    pub(crate) fn swap_for_slot(&self) -> bool {
        let mut state = self.state.lock();
        state.in_use -= 1;
        if state.may_create() {
            state.creating += 1;
            true
        } else {
            false
        }
    }

    /// The current generation; resources from older ones are evicted on return.
    pub(crate) fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    pub(crate) fn status(&self) -> Status {
        self.state.lock().status()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Closes the pool: every waiter is served `Closed`, every idle resource
    /// is removed. Returns `None` if it was closed already.
    pub(crate) fn close(&self) -> Option<Removed<T>> {
        let mut state = self.state.lock();
        if state.closed {
            return None;
        }
        state.closed = true;
        let mut removed = Removed::new();
        while let Ok(waker) = state.waiters.grant_front(Grant::Closed) {
            removed.wake.extend(waker);
        }
        removed.destroy.extend(state.idle.drain(..).map(|e| (e, DestroyReason::Closed)));
        Some(removed)
    }

    /// Slots still taken (resources in use or being created); zero once a
    /// closed pool has drained.
    pub(crate) fn outstanding(&self) -> usize {
        let state = self.state.lock();
        state.slots()
    }

    /// Changes `max_size`. Growing serves waiters with the new slots;
    /// shrinking removes idle resources above the new size at once.
    pub(crate) fn resize(&self, max_size: usize) -> Removed<T> {
        let mut state = self.state.lock();
        state.max_size = max_size;
        let mut removed = Removed::new();
        while state.slots() > max_size {
            let Some(entry) = state.idle.pop_front() else { break };
            removed.destroy.push((entry, DestroyReason::Evicted));
        }
        while let Some(waker) = state.slot_freed() {
            removed.wake.push(waker);
        }
        removed
    }

    /// Removes every idle resource now, and marks the ones in use so they are
    /// removed when they come back.
    pub(crate) fn evict_all(&self) -> Removed<T> {
        let mut state = self.state.lock();
        state.generation += 1;
        let mut removed = Removed::new();
        removed.destroy.extend(state.idle.drain(..).map(|e| (e, DestroyReason::Evicted)));
        removed
    }

    /// Takes every idle resource out (counted in `in_use`), for a predicate
    /// that must not run under the lock; see [`Core::put_back`].
    pub(crate) fn take_idle(&self) -> Vec<Entry<T>> {
        let mut state = self.state.lock();
        let taken: Vec<_> = state.idle.drain(..).collect();
        state.in_use += taken.len();
        taken
    }

    /// One maintenance round's bookkeeping, all under one lock: removes idle
    /// resources evicted, whose lifetime is over, and those idle too long
    /// above `min_idle`, for the caller to destroy.
    pub(crate) fn retire(
        &self,
        expired: impl Fn(&ResourceInfo) -> bool,
        idle_too_long: impl Fn(&ResourceInfo) -> bool,
    ) -> Vec<(Entry<T>, DestroyReason)> {
        let mut state = self.state.lock();
        let mut retired = Vec::new();
        if state.closed {
            return retired;
        }
        let generation = state.generation;
        let min_idle = state.min_idle();
        let mut kept = VecDeque::with_capacity(state.idle.len());
        // Oldest-returned first, so reaping removes the longest idle.
        let mut idle_count = state.idle.len();
        for entry in state.idle.drain(..) {
            let reason = if entry.info.generation != generation {
                DestroyReason::Evicted
            } else if expired(&entry.info) {
                DestroyReason::Lifetime
            } else if idle_count > min_idle && idle_too_long(&entry.info) {
                DestroyReason::Idle
            } else {
                kept.push_back(entry);
                continue;
            };
            retired.push((entry, reason));
            idle_count -= 1;
        }
        state.idle = kept;
        retired
    }

    /// One upkeep round's bookkeeping, all under one lock: takes out the
    /// idle resources due for a keepalive check, and reserves a slot for a
    /// refill if fewer than `min_idle` are idle (counting those being
    /// checked) and nobody waits (a waiter gets the free slot instead).
    pub(crate) fn upkeep(&self, check_due: impl Fn(&ResourceInfo) -> bool) -> Upkeep<T> {
        let mut state = self.state.lock();
        let mut upkeep = Upkeep { check: Vec::new(), refill: false };
        if state.closed {
            return upkeep;
        }
        if state.idle.iter().any(|entry| check_due(&entry.info)) {
            let (check, kept): (VecDeque<_>, _) =
                state.idle.drain(..).partition(|entry| check_due(&entry.info));
            upkeep.check = check.into();
            state.idle = kept;
            state.in_use += upkeep.check.len();
        }
        if state.idle.len() + upkeep.check.len() < state.min_idle()
            && state.slots() < state.max_size
            && state.may_create()
            && state.waiters.is_empty()
        {
            state.creating += 1;
            upkeep.refill = true;
        }
        upkeep
    }

    /// Calls `f` with every idle resource's info, under the lock (for
    /// computing when a background task is next due; `f` must be trivial).
    pub(crate) fn for_each_idle(&self, mut f: impl FnMut(&ResourceInfo)) {
        let state = self.state.lock();
        for entry in &state.idle {
            f(&entry.info);
        }
    }

    /// Whether fewer than `min_idle` resources are idle and a slot may be
    /// reserved for a create.
    pub(crate) fn needs_refill(&self) -> bool {
        let state = self.state.lock();
        !state.closed
            && state.idle.len() < state.min_idle()
            && state.slots() < state.max_size
            && state.may_create()
    }

    /// Whether the pool keeps idle resources ready at all (`min_idle` > 0),
    /// so a destroyed resource may have to be replaced in the background.
    pub(crate) fn keeps_idle(&self) -> bool {
        self.state.lock().min_idle() > 0
    }
}

#[cfg(all(test, pool_loom))]
mod loom_tests;

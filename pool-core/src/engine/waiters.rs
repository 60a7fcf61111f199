//! The FIFO queue of tasks waiting in `get`.
//!
//! A doubly linked list threaded through a slab (a `Vec` of nodes whose free
//! ones are chained through their `next` link), so a waiter is appended,
//! served from the front, or removed from anywhere (when its `get` is
//! cancelled) in O(1), and no node is allocated per wait once the slab has
//! grown to the largest queue seen. Joining and leaving touch only the node
//! and the queue's header: the free chain lives in the nodes themselves, so
//! there is no separate free-list buffer for the two runtime threads to pass
//! back and forth.
//!
//! A node belongs to its waiter from `push_back` until the waiter calls
//! [`WaiterQueue::release`]; serving a waiter unlinks the node and stores the
//! grant in it, but leaves the node allocated so the waiter can pick the
//! grant up (or hand it back if it was cancelled meanwhile). Keys are
//! therefore never reused while their owner still holds them.

use std::task::Waker;

use tokio::time::Instant;

use super::Grant;

const NIL: usize = usize::MAX;

pub(crate) enum NodeState<T> {
    Free,
    Waiting(Option<Waker>),
    Granted(Grant<T>),
}

struct Node<T> {
    prev: usize,
    next: usize,
    /// When the waiter gives up; see `Core::expire`.
    deadline: Option<Instant>,
    state: NodeState<T>,
}

/// `len` comes first so that, placed right after the idle list and counts
/// in [`State`](super::State), it shares their cache line: a `get` that finds
/// a resource reads it without touching the rest of the queue.
#[repr(C)]
pub(crate) struct WaiterQueue<T> {
    len: usize,
    head: usize,
    tail: usize,
    /// The first free node; free nodes are chained through `next`.
    free: usize,
    nodes: Vec<Node<T>>,
}

impl<T> WaiterQueue<T> {
    pub(crate) const fn new() -> Self {
        Self { len: 0, head: NIL, tail: NIL, free: NIL, nodes: Vec::new() }
    }

    /// Tasks queued and not yet served.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a new waiter that `waker` wakes and that gives up at
    /// `deadline`, and returns its key.
    pub(crate) fn push_back(&mut self, waker: Waker, deadline: Option<Instant>) -> usize {
        let node = Node { prev: self.tail, next: NIL, deadline, state: NodeState::Waiting(Some(waker)) };
        let key = if self.free == NIL {
            self.nodes.push(node);
            self.nodes.len() - 1
        } else {
            let key = self.free;
            self.free = self.nodes[key].next;
            self.nodes[key] = node;
            key
        };
        if self.tail == NIL {
            self.head = key;
        } else {
            self.nodes[self.tail].next = key;
        }
        self.tail = key;
        self.len += 1;
        key
    }

    /// Inserts a new waiter before the first one whose deadline is later
    /// than `deadline` (`None`: never), so the deadlines stay in order
    /// front to back, and returns its key. Walks the queue from the back:
    /// a caller that waits again is usually among the last to have come.
    pub(crate) fn insert_by_deadline(&mut self, waker: Waker, deadline: Option<Instant>) -> usize {
        let later = |node: &Node<T>| match (node.deadline, deadline) {
            (None, Some(_)) => true,
            (Some(theirs), Some(ours)) => theirs > ours,
            (_, None) => false,
        };
        // The waiter to insert after (NIL: at the front).
        let mut after = self.tail;
        while let Some(node) = self.nodes.get(after) {
            if !later(node) {
                break;
            }
            after = node.prev;
        }
        if after == self.tail {
            return self.push_back(waker, deadline);
        }
        let next = if after == NIL { self.head } else { self.nodes[after].next };
        let key = self.push_back(waker, deadline);
        // Move it from the back to between `after` and `next`.
        self.unlink(key);
        self.len += 1;
        self.nodes[key].prev = after;
        self.nodes[key].next = next;
        self.nodes[next].prev = key;
        if after == NIL {
            self.head = key;
        } else {
            self.nodes[after].next = key;
        }
        key
    }

    /// Serves the first waiter with `grant` and returns its waker, or gives
    /// the grant back when nobody waits.
    pub(crate) fn grant_front(&mut self, grant: Grant<T>) -> Result<Option<Waker>, Grant<T>> {
        let key = self.head;
        if key == NIL {
            return Err(grant);
        }
        self.unlink(key);
        let previous = std::mem::replace(&mut self.nodes[key].state, NodeState::Granted(grant));
        match previous {
            NodeState::Waiting(waker) => Ok(waker),
            // Only waiting nodes are linked.
            NodeState::Free | NodeState::Granted(_) => unreachable!("a linked waiter was not waiting"),
        }
    }

    /// The deadline of the first waiter, if one waits and has one.
    pub(crate) fn front_deadline(&self) -> Option<Instant> {
        self.nodes.get(self.head).and_then(|node| node.deadline)
    }

    /// The wakers of every queued waiter, front to back.
    pub(crate) fn wakers(&self) -> Vec<Waker> {
        let mut wakers = Vec::with_capacity(self.len);
        let mut key = self.head;
        while let Some(node) = self.nodes.get(key) {
            if let NodeState::Waiting(Some(waker)) = &node.state {
                wakers.push(waker.clone());
            }
            key = node.next;
        }
        wakers
    }

    /// The state of the node behind `key`, which its owner still holds.
    pub(crate) fn state_mut(&mut self, key: usize) -> &mut NodeState<T> {
        &mut self.nodes[key].state
    }

    /// Frees `key`, unlinking it first if it is still queued, and returns what
    /// it held: `None` if it was still waiting, the grant if it had been served.
    pub(crate) fn release(&mut self, key: usize) -> Option<Grant<T>> {
        let state = std::mem::replace(&mut self.nodes[key].state, NodeState::Free);
        let grant = match state {
            NodeState::Waiting(_) => {
                self.unlink(key);
                None
            }
            NodeState::Granted(grant) => Some(grant),
            NodeState::Free => unreachable!("a waiter key was released twice"),
        };
        self.nodes[key].next = self.free;
        self.free = key;
        grant
    }

    fn unlink(&mut self, key: usize) {
        let Node { prev, next, .. } = self.nodes[key];
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next].prev = prev;
        }
        self.nodes[key].prev = NIL;
        self.nodes[key].next = NIL;
        self.len -= 1;
    }
}

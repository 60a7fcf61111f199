//! [`Registry`]: the connections the proxy relays right now, for the counts
//! a test asks for and for `reset`'s wait until the reset ones have closed.
//!
//! Invariant: a connection is registered (with the generation it was
//! accepted in) under the same lock under which `freeze` and `reset` start
//! a new generation, so every registered connection is either below a
//! fault's line and counted by it, or above it and untouched: never
//! counted one way and treated the other. A connection leaves the registry
//! when its relay task ends (its [`Ticket`] is dropped), after both of its
//! sockets are closed.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::faults::Faults;

/// The open connections, and the fault settings changed under their lock.
pub(crate) struct Registry {
    open: Mutex<Open>,
    /// Signalled whenever a connection leaves.
    closed: Condvar,
    faults: watch::Sender<Faults>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    connections: HashMap<u64, Connection>,
}

struct Connection {
    generation: u64,
    /// Open when `freeze` was called (it may forward again since).
    caught_by_freeze: bool,
}

/// A connection's place in the registry, held by its relay task; dropping
/// it takes the connection out.
pub(crate) struct Ticket {
    registry: Arc<Registry>,
    id: u64,
    /// The generation the connection was accepted in.
    pub(crate) generation: u64,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self { open: Mutex::default(), closed: Condvar::new(), faults: watch::Sender::new(Faults::default()) }
    }

    /// A receiver of the fault settings, for a relay.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Faults> {
        self.faults.subscribe()
    }

    /// Registers a connection just accepted, in the current generation.
    pub(crate) fn admit(self: &Arc<Self>) -> Ticket {
        let mut open = self.lock();
        let generation = self.faults.borrow().generation;
        let id = open.next_id;
        open.next_id += 1;
        open.connections.insert(id, Connection { generation, caught_by_freeze: false });
        Ticket { registry: Arc::clone(self), id, generation }
    }

    /// Freezes every connection open now.
    pub(crate) fn freeze(&self) {
        let mut open = self.lock();
        self.faults.send_modify(|f| f.frozen_below = f.next_generation());
        for connection in open.connections.values_mut() {
            connection.caught_by_freeze = true;
        }
    }

    /// Resets every connection open now and waits, up to `patience`, until
    /// they have closed. Returns how many there were.
    pub(crate) fn reset(&self, patience: Duration) -> usize {
        let mut open = self.lock();
        let mut line = 0;
        self.faults.send_modify(|f| {
            line = f.next_generation();
            f.reset_below = line;
        });
        let doomed = |open: &Open| open.connections.values().filter(|c| c.generation < line).count();
        let count = doomed(&open);
        let deadline = Instant::now() + patience;
        while doomed(&open) > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            open = self.closed.wait_timeout(open, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        count
    }

    /// Changes the settings that need no generation (delay, thaw, shutdown).
    pub(crate) fn modify(&self, change: impl FnOnce(&mut Faults)) {
        let _open = self.lock();
        self.faults.send_modify(change);
    }

    pub(crate) fn live(&self) -> usize {
        self.lock().connections.len()
    }

    pub(crate) fn caught_by_freeze(&self) -> usize {
        self.lock().connections.values().filter(|c| c.caught_by_freeze).count()
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.registry.lock().connections.remove(&self.id);
        self.registry.closed.notify_all();
    }
}

//! The undo-on-cancel drop guards: each holds one thing of the pool's while
//! a task awaits something that may never finish, and gives it back if the
//! task's future is dropped (cancelled, timed out, panicked, or its runtime
//! shut down) before it was done with it.
//!
//! - [`QueuePlace`]: a place in the queue. Dropped while still queued, it
//!   gives the place up and passes on anything granted to it meanwhile.
//! - [`Checking`]: an idle resource taken out to be checked. Dropped
//!   unfinished, it destroys the resource (its state is unknown) and frees
//!   its slot.
//! - [`Slot`]: a slot reserved for a resource being created. Dropped
//!   unfilled, it frees the slot for the next waiter.
//! - [`Retaining`]: the idle resources taken out for `Pool::retain`'s
//!   predicate. Dropped unjudged (the predicate panicked), they go back.
//!
//! `get`, the upkeep task and `retain` all hold what they take in one
//! of these, so no await point can lose a slot or count one twice.

use crate::engine::Entry;
use crate::manager::{DestroyReason, Manager};
use crate::observer::EventKind;
use crate::shared::{Shared, wake};

/// A place in the queue under `key`; see the module docs.
pub(crate) struct QueuePlace<'a, M: Manager> {
    pub(crate) shared: &'a Shared<M>,
    /// `None` once the place was left with a grant in hand.
    pub(crate) key: Option<usize>,
}

impl<M: Manager> Drop for QueuePlace<'_, M> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let returned = self.shared.core.cancel_wait(key);
            self.shared.settle(returned);
            // A slot granted to it may have been the last one a closed pool had.
            self.shared.notify_if_drained();
            self.shared.emit(EventKind::Cancelled);
        }
    }
}

/// An idle resource being checked, counted in `in_use`; see the module docs.
pub(crate) struct Checking<'a, M: Manager> {
    shared: &'a Shared<M>,
    entry: Option<Entry<M::Resource>>,
}

impl<'a, M: Manager> Checking<'a, M> {
    pub(crate) fn new(shared: &'a Shared<M>, entry: Entry<M::Resource>) -> Self {
        Self { shared, entry: Some(entry) }
    }

    /// The resource being checked, with its book-keeping.
    pub(crate) fn entry_mut(&mut self) -> &mut Entry<M::Resource> {
        self.entry.as_mut().expect("a Checking holds its entry until it is consumed")
    }

    /// The check passed: the resource is the caller's again.
    #[allow(
        clippy::unnecessary_box_returns,
        reason = "entries live boxed from creation on; see engine::Entry"
    )]
    pub(crate) fn passed(mut self) -> Entry<M::Resource> {
        self.entry.take().expect("a Checking holds its entry until it is consumed")
    }

    /// The check failed, and the caller would create a replacement:
    /// destroys the resource, and keeps its slot, now counted in
    /// `creating`, if a create may start now (`true`); otherwise the slot
    /// is given up and the caller waits again (`Core::swap_for_slot`).
    pub(crate) fn replace(mut self) -> bool {
        let Some(entry) = self.entry.take() else { return false };
        let kept = self.shared.core.swap_for_slot();
        self.shared.destroy(entry, DestroyReason::RecycleFailed);
        kept
    }
}

impl<M: Manager> Drop for Checking<'_, M> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            wake(self.shared.core.remove_in_use());
            self.shared.destroy(entry, DestroyReason::RecycleFailed);
        }
    }
}

/// A slot reserved for a resource being created, counted in `creating`;
/// see the module docs.
pub(crate) struct Slot<'a, M: Manager> {
    shared: &'a Shared<M>,
    filled: bool,
}

impl<'a, M: Manager> Slot<'a, M> {
    /// Takes charge of a slot the engine has just reserved.
    pub(crate) fn reserved(shared: &'a Shared<M>) -> Self {
        Self { shared, filled: false }
    }

    /// The slot is about to be booked with its new resource (which takes
    /// it out of `creating`): nothing is left to undo.
    pub(crate) fn fill(mut self) {
        self.filled = true;
    }
}

impl<M: Manager> Drop for Slot<'_, M> {
    fn drop(&mut self) {
        if !self.filled {
            wake(self.shared.core.abandon_slot());
            self.shared.notify_if_drained();
        }
    }
}

/// Idle entries taken out for `Pool::retain`, counted in `in_use`; see the
/// module docs.
pub(crate) struct Retaining<'a, M: Manager> {
    pub(crate) shared: &'a Shared<M>,
    /// The one the predicate is looking at.
    pub(crate) judging: Option<Entry<M::Resource>>,
    /// Those not judged yet.
    pub(crate) entries: std::vec::IntoIter<Entry<M::Resource>>,
}

impl<M: Manager> Drop for Retaining<'_, M> {
    fn drop(&mut self) {
        for entry in self.judging.take().into_iter().chain(self.entries.by_ref()) {
            let returned = self.shared.core.put_back(entry, None);
            self.shared.settle(returned);
        }
    }
}

//! The synchronisation primitives the engine uses: `std`'s normally, loom's
//! when built with `--cfg pool_loom` so the model checker can explore every
//! interleaving of the engine (the model tests are in
//! `src/engine/loom_tests.rs`; `.ci/test` runs them).

#[cfg(pool_loom)]
pub(crate) use loom::sync::{Mutex as RawMutex, MutexGuard};
#[cfg(not(pool_loom))]
pub(crate) use std::sync::{Mutex as RawMutex, MutexGuard};

/// A mutex that ignores poisoning, aligned to a cache line so the lock word
/// and the first fields of the state behind it share one (see
/// `engine::State`).
///
/// It ignores poisoning: the engine never runs user code while
/// holding it, and every critical section leaves the state consistent before
/// anything that could panic, so a poisoned lock carries a valid state.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Mutex<T>(RawMutex<T>);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(RawMutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

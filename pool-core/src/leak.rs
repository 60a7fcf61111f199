//! Leak detection: remembers when and where each resource was taken, so the
//! maintenance task can name the source line of a `get` whose resource has
//! been held longer than `leak_detection_threshold`. Only exists when that
//! setting is on; each entry is reported once.

use std::panic::Location;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

struct Held {
    acquired_at: Instant,
    location: &'static Location<'static>,
    reported: bool,
}

/// A suspected leak found by [`LeakRegistry::scan`].
pub(crate) struct Suspect {
    pub(crate) held: Duration,
    pub(crate) location: &'static Location<'static>,
}

pub(crate) struct LeakRegistry {
    pub(crate) threshold: Duration,
    held: Mutex<(Vec<Option<Held>>, Vec<usize>)>,
}

impl LeakRegistry {
    pub(crate) fn new(threshold: Duration) -> Self {
        Self { threshold, held: Mutex::new((Vec::new(), Vec::new())) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<Option<Held>>, Vec<usize>)> {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn register(&self, acquired_at: Instant, location: &'static Location<'static>) -> usize {
        let mut guard = self.lock();
        let (slots, free) = &mut *guard;
        let held = Some(Held { acquired_at, location, reported: false });
        if let Some(key) = free.pop() {
            slots[key] = held;
            key
        } else {
            slots.push(held);
            slots.len() - 1
        }
    }

    /// Forgets `key`; returns where it was taken if it had been reported.
    pub(crate) fn unregister(&self, key: usize) -> Option<&'static Location<'static>> {
        let mut guard = self.lock();
        let (slots, free) = &mut *guard;
        let held = slots.get_mut(key)?.take()?;
        free.push(key);
        held.reported.then_some(held.location)
    }

    /// Marks and returns the newly overdue entries, and when the next one
    /// falls due.
    pub(crate) fn scan(&self, now: Instant) -> (Vec<Suspect>, Option<Instant>) {
        let mut guard = self.lock();
        let mut suspects = Vec::new();
        let mut next: Option<Instant> = None;
        for held in guard.0.iter_mut().flatten().filter(|h| !h.reported) {
            let due = held.acquired_at.checked_add(self.threshold);
            match due {
                Some(due) if due > now => next = Some(next.map_or(due, |n| n.min(due))),
                None => {}
                Some(_) => {
                    held.reported = true;
                    suspects.push(Suspect { held: now - held.acquired_at, location: held.location });
                }
            }
        }
        (suspects, next)
    }
}

//! The per-connection statement cache: SQL text to prepared statement,
//! bounded, least recently used out first.
//!
//! Used by the client guard's `query`/`query_one`/`query_opt`/`execute` when
//! they are given SQL text, so repeating a query costs one round trip
//! (bind + execute) instead of two (parse, then bind + execute). Evicting a
//! statement drops it, and tokio-postgres then closes it on the server.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use tokio_postgres::Statement;

use crate::error::Error;
use crate::hygiene::Traits;

/// A cached statement, or one being prepared: callers who want the same
/// text meanwhile wait for the one `PREPARE` in flight instead of sending
/// their own. If the preparer is cancelled (or fails), the next waiter
/// prepares in its place, so nobody is stranded.
type Slot = Arc<OnceCell<(Statement, Traits)>>;

pub(crate) struct StatementCache {
    capacity: usize,
    tick: u64,
    /// SQL text to (statement slot, last use). The slot holds the statement
    /// and what the text does to a session (decided once, when the
    /// statement is prepared).
    entries: HashMap<Box<str>, (Slot, u64)>,
    hits: u64,
    misses: u64,
}

impl StatementCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { capacity, tick: 0, entries: HashMap::with_capacity(capacity.min(64)), hits: 0, misses: 0 }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The slot for `sql`; `None` (counted as a miss) with the cache off.
    fn enabled_slot(&mut self, sql: &str) -> Option<Slot> {
        if self.enabled() {
            Some(self.slot(sql))
        } else {
            self.misses += 1;
            None
        }
    }

    /// The slot for `sql`, made (and room made for it) if there is none.
    fn slot(&mut self, sql: &str) -> Slot {
        self.tick += 1;
        let tick = self.tick;
        if let Some((slot, used)) = self.entries.get_mut(sql) {
            *used = tick;
            return Arc::clone(slot);
        }
        if self.entries.len() >= self.capacity
            && let Some(oldest) =
                self.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        let slot = Slot::default();
        self.entries.insert(sql.into(), (Arc::clone(&slot), tick));
        slot
    }

    /// Forgets `sql` if its slot is still `slot` (a failed prepare leaves
    /// nothing behind; a slot made since is kept).
    fn forget(&mut self, sql: &str, slot: &Slot) {
        if self.entries.get(sql).is_some_and(|(kept, _)| Arc::ptr_eq(kept, slot)) {
            self.entries.remove(sql);
        }
    }

    pub(crate) fn remove(&mut self, sql: &str) {
        self.entries.remove(sql);
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats { len: self.entries.len(), capacity: self.capacity, hits: self.hits, misses: self.misses }
    }
}

fn lock(cache: &Mutex<StatementCache>) -> std::sync::MutexGuard<'_, StatementCache> {
    cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The statement cached for `sql`, or the one `prepare` makes (then cached),
/// with what the text does to a session ([`Traits`]). In shared mode
/// (`shared`) text that needs a connection of its own is refused before
/// anything is sent; the cache decides that once per text, not per call.
/// The lock is not held while preparing; callers racing for the same text
/// share one prepare (see [`Slot`]), and `prepare` is not polled at all
/// when another caller's prepare delivered the statement first. Pinned by
/// the caller, so this future holds a reference to it, not a copy.
pub(crate) async fn prepare_cached(
    cache: &Mutex<StatementCache>,
    sql: &str,
    shared: bool,
    prepare: Pin<&mut impl Future<Output = Result<Statement, Error>>>,
) -> Result<(Statement, Traits), Error> {
    let admit = |traits: Traits| match traits.needs_exclusive {
        Some(operation) if shared => Err(Error::needs_exclusive(operation)),
        _ => Ok(traits),
    };
    let Some(slot) = lock(cache).enabled_slot(sql) else {
        let traits = admit(Traits::of(sql))?;
        return prepare.await.map(|statement| (statement, traits));
    };
    if let Some((statement, traits)) = slot.get() {
        let traits = admit(*traits)?;
        lock(cache).hits += 1;
        return Ok((statement.clone(), traits));
    }
    let traits = match admit(Traits::of(sql)) {
        Ok(traits) => traits,
        Err(refused) => {
            lock(cache).forget(sql, &slot);
            return Err(refused);
        }
    };
    let mut prepared_here = false;
    let out = slot
        .get_or_try_init(|| {
            prepared_here = true;
            async move { prepare.await.map(|statement| (statement, traits)) }
        })
        .await
        .cloned();
    let mut cache = lock(cache);
    match (&out, prepared_here) {
        (Err(_), _) => cache.forget(sql, &slot),
        (Ok(_), true) => cache.misses += 1,
        (Ok(_), false) => cache.hits += 1,
    }
    out
}

/// How one connection's statement cache has done; see
/// [`Client::statement_cache_stats`](crate::Client::statement_cache_stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Statements cached now.
    pub len: usize,
    /// The most it holds (0: the cache is off).
    pub capacity: usize,
    /// Lookups that found a prepared statement (or waited for another
    /// caller's prepare of the same text).
    pub hits: u64,
    /// Lookups that prepared.
    pub misses: u64,
}

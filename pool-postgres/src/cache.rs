//! The per-connection statement cache: SQL text to prepared statement,
//! bounded, least recently used out first.
//!
//! Used by the client guard's `query`/`query_one`/`query_opt`/`execute` when
//! they are given SQL text, so repeating a query costs one round trip
//! (bind + execute) instead of two (parse, then bind + execute). Evicting a
//! statement drops it, and tokio-postgres then closes it on the server.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use tokio_postgres::Statement;

use crate::hygiene;

pub(crate) struct StatementCache {
    capacity: usize,
    tick: u64,
    /// SQL text to (statement, last use, whether the text may leave the
    /// session dirty: decided once, when the statement is prepared).
    entries: HashMap<Box<str>, (Statement, u64, bool)>,
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

    fn get(&mut self, sql: &str) -> Option<(Statement, bool)> {
        self.tick += 1;
        let tick = self.tick;
        if let Some((statement, used, dirties)) = self.entries.get_mut(sql) {
            *used = tick;
            self.hits += 1;
            Some((statement.clone(), *dirties))
        } else {
            self.misses += 1;
            None
        }
    }

    fn insert(&mut self, sql: &str, statement: Statement, dirties: bool) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity
            && !self.entries.contains_key(sql)
            && let Some(oldest) =
                self.entries.iter().min_by_key(|(_, (_, used, _))| *used).map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        self.tick += 1;
        self.entries.insert(sql.into(), (statement, self.tick, dirties));
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
/// with whether `sql` may leave the session dirty (see [`hygiene`]). The
/// lock is not held while preparing.
pub(crate) async fn prepare_cached<E>(
    cache: &Mutex<StatementCache>,
    sql: &str,
    prepare: impl Future<Output = Result<Statement, E>>,
) -> Result<(Statement, bool), E> {
    if let Some(hit) = lock(cache).get(sql) {
        return Ok(hit);
    }
    let statement = prepare.await?;
    let dirties = hygiene::may_dirty(sql);
    lock(cache).insert(sql, statement.clone(), dirties);
    Ok((statement, dirties))
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
    /// Lookups that found a prepared statement.
    pub hits: u64,
    /// Lookups that had to prepare.
    pub misses: u64,
}

//! [`Status`]: a consistent snapshot of a pool's counts.

/// A snapshot of the pool's counts, all read at the same instant under the
/// pool's lock, so they always agree with each other.
///
/// At every instant `idle + in_use == size` and `size + creating <= max_size`
/// (except just after [`Pool::resize`](crate::Pool::resize) shrank the pool
/// below the number of resources in use: those are destroyed as they come
/// back). `waiting` counts the tasks queued in `get`; it is zero whenever
/// nobody waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Status {
    /// The most resources the pool may hold (open and being created).
    pub max_size: usize,
    /// How many idle resources the pool keeps ready.
    pub min_idle: usize,
    /// Open resources: `idle + in_use` (node-postgres's `totalCount`).
    pub size: usize,
    /// Open resources waiting in the pool to be handed out (`idleCount`).
    pub idle: usize,
    /// Open resources handed out, or being checked by the pool.
    pub in_use: usize,
    /// Resources being created right now.
    pub creating: usize,
    /// Tasks waiting in `get` for a resource (`waitingCount`).
    pub waiting: usize,
    /// Whether [`Pool::close`](crate::Pool::close) was called.
    pub closed: bool,
}

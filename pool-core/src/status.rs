//! [`Status`]: a consistent snapshot of a pool's counts.

/// A snapshot of the pool's counts, all read at the same instant under the
/// pool's lock, so they always agree with each other.
///
/// At every instant `idle + in_use == size` and `size + creating <= max_size`
/// (except just after [`Pool::resize`](crate::Pool::resize) shrank the pool
/// below the number of resources in use: those are destroyed as they come
/// back). `waiting` counts the tasks queued in `get`; it is zero whenever
/// nobody waits, or when nothing can be handed out: every slot is taken, or
/// `max_concurrent_creates` creates are under way, or the pool is
/// `cooling_down`.
///
/// Two snapshots compare equal when their counts are equal (`max_size`,
/// `min_idle`, `size`, `idle`, `in_use`, `creating`, `waiting`,
/// `cooling_down`, `closed`):
/// `pool_id` and `sequence` say which pool and which moment a snapshot is
/// of, not what it counts, so `==` ignores them, and an observer can ask
/// whether anything changed since the last snapshot it kept.
#[derive(Debug, Clone, Copy, Default)]
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
    /// Whether the pool is in a capacity cool-down: the backend refused a
    /// create for lack of free slots
    /// ([`Manager::is_capacity_error`](crate::Manager::is_capacity_error)),
    /// so the pool opens nothing new for a while and serves waiters with
    /// the resources returned to it.
    pub cooling_down: bool,
    /// Whether [`Pool::close`](crate::Pool::close) was called.
    pub closed: bool,
    /// Which pool this is a snapshot of: a number of its own for every pool
    /// built in this process, so two pools with the same name (one built
    /// to replace the other, say) can be told apart. Not compared by `==`.
    pub pool_id: u64,
    /// Grows with every snapshot the pool takes (events' and
    /// [`Pool::status`](crate::Pool::status)'s alike): of two snapshots of
    /// one pool, the one with the larger `sequence` is the newer. Events
    /// reach observers on the tasks where they happened, so two of them can
    /// arrive out of order; an observer that keeps counts (a gauge) keeps
    /// the newest by comparing this. Not compared by `==`.
    pub sequence: u64,
}

impl PartialEq for Status {
    fn eq(&self, other: &Self) -> bool {
        self.counts() == other.counts()
    }
}

impl Eq for Status {}

impl Status {
    /// Every field that `==` compares.
    #[allow(clippy::type_complexity, reason = "a tuple of the fields, in their order, to compare")]
    fn counts(&self) -> (usize, usize, usize, usize, usize, usize, usize, bool, bool) {
        let Self {
            max_size,
            min_idle,
            size,
            idle,
            in_use,
            creating,
            waiting,
            cooling_down,
            closed,
            pool_id: _,
            sequence: _,
        } = *self;
        (max_size, min_idle, size, idle, in_use, creating, waiting, cooling_down, closed)
    }
}

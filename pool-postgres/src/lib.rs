//! PostgreSQL backend for `pool-core` (work in progress).

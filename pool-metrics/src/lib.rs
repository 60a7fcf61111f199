//! Metrics for `pool-core` pools (work in progress).

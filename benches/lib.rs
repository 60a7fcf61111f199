//! Shared code for the benchmarks: no-op managers for pool-core, deadpool
//! and bb8, one small trait ([`BenchPool`]) that lets the same workload code
//! drive all three (and a no-pool baseline and a bare Tokio semaphore), the
//! workloads of the three scenarios, the interleaved sample loop behind the
//! printed tables ([`interleave`]), and the statistics and Markdown tables
//! themselves.
//!
//! The bench target itself is `benches/pool_core.rs`; see `README.md` in
//! this package for how to run it and for the last recorded results.

pub mod interleave;
pub mod managers;
pub mod report;
pub mod workload;

pub use managers::{Baseline, Bb8Noop, CoreNoop, DeadpoolNoop, Local, Permit, Semaphore};
pub use workload::{BenchPool, CYCLES};

//! The invariants a pool's `status()` documents, checked on one snapshot
//! ([`check_invariants`], [`assert_settled`]) or all along by a background
//! watcher ([`StatusWatch`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pool_postgres::{PgPool, Status};
use tokio::task::JoinHandle;

/// The invariants `Status` documents: `idle + in_use == size`,
/// `idle <= size` and `size + creating <= max_size` (no resize here).
pub fn check_invariants(status: &Status) -> Result<(), String> {
    let ok = status.idle + status.in_use == status.size
        && status.idle <= status.size
        && status.size + status.creating <= status.max_size;
    if ok { Ok(()) } else { Err(format!("{status:?}")) }
}

/// Asserts that nothing is in flight any more: no waiter, no create, no
/// connection out, and the invariants hold.
pub fn assert_settled(status: &Status) {
    check_invariants(status).unwrap_or_else(|s| panic!("status invariants broken: {s}"));
    assert_eq!((status.waiting, status.creating, status.in_use), (0, 0, 0), "not settled: {status:?}");
}

/// Samples a pool's `status()` in the background (every millisecond) and
/// keeps the samples that break the invariants.
pub struct StatusWatch {
    stop: Arc<AtomicBool>,
    task: JoinHandle<(u64, Vec<String>)>,
}

impl StatusWatch {
    pub fn start(pool: PgPool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut samples = 0_u64;
            let mut broken = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                samples += 1;
                if let Err(s) = check_invariants(&pool.status())
                    && broken.len() < 20
                {
                    broken.push(s);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (samples, broken)
        });
        Self { stop, task }
    }

    /// Stops sampling; panics if any sample broke an invariant.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let (samples, broken) = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the status watcher stops")
            .expect("the status watcher does not panic");
        assert!(
            broken.is_empty(),
            "status invariants broken in {} of {samples} samples: {broken:#?}",
            broken.len()
        );
        samples
    }
}

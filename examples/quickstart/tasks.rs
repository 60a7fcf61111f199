//! One strategy's run: its concurrent tasks, each doing one unit of work or
//! looping until the deadline, summed into an [`Outcome`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::monitor::Monitor;
use crate::outcome::Outcome;
use crate::progress::{self, Progress};
use crate::strategies::Unit;

/// Runs `tasks` concurrent tasks the strategy's way: one unit each, or
/// units in a loop until `duration` has passed. Returns once the server has
/// seen the strategy's connections end, so the next strategy starts clean.
pub(crate) async fn run_strategy(
    unit: Arc<Unit>,
    tasks: u32,
    duration: Option<Duration>,
    monitor: &Monitor,
) -> Outcome {
    let progress = Arc::new(Progress::default());
    let sampling = monitor.sample(unit.strategy.application_name());
    let reporter = progress::show(unit.strategy, tasks, duration, Arc::clone(&progress));
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);

    let mut set = JoinSet::new();
    for _ in 0..tasks {
        set.spawn(one_task(Arc::clone(&unit), deadline, Arc::clone(&progress)));
    }
    let mut total = Outcome::default();
    while let Some(done) = set.join_next().await {
        if let Ok(task) = done {
            total.add_task(task);
        }
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    reporter.finish();
    total.peak_server_connections = sampling.stop().await;
    // Let the server see this strategy's connections end before the next one.
    monitor.wait_until_gone(&unit.strategy.application_name(), Duration::from_secs(5)).await;
    total
}

/// One task: a unit of work, or units back to back until `deadline`.
async fn one_task(unit: Arc<Unit>, deadline: Option<Instant>, progress: Arc<Progress>) -> Outcome {
    let mut outcome = Outcome::default();
    loop {
        let began = Instant::now();
        match unit.once().await {
            Ok(()) => {
                outcome.record_ok(began.elapsed());
                progress.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(failure) => {
                outcome.record_failure(failure);
                progress.failed.fetch_add(1, Ordering::Relaxed);
                if deadline.is_some() {
                    // Do not spin on a server that refuses us.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        match deadline {
            Some(deadline) if Instant::now() < deadline => {}
            _ => break,
        }
    }
    outcome
}

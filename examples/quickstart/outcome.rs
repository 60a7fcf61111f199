//! [`Outcome`]: what one strategy did, summed over its tasks.

use std::time::Duration;

use crate::strategies::{Failure, QUERIES};

/// What one strategy (or one of its tasks) did.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) too_many_clients: u64,
    pub(crate) peak_server_connections: i64,
    pub(crate) elapsed: Duration,
    /// Per successful unit of work: from its start (connecting or borrowing
    /// included) to its last query's answer.
    pub(crate) latencies: Vec<Duration>,
    /// The first error that was not "too many clients", if any.
    pub(crate) other_error: Option<String>,
}

impl Outcome {
    /// Counts a unit of work that succeeded after `latency`.
    pub(crate) fn record_ok(&mut self, latency: Duration) {
        self.ok += 1;
        self.latencies.push(latency);
    }

    /// Counts a unit of work that failed, keeping the first error that was
    /// not "too many clients".
    pub(crate) fn record_failure(&mut self, failure: Failure) {
        self.errors += 1;
        if failure.too_many_clients {
            self.too_many_clients += 1;
        } else if self.other_error.is_none() {
            self.other_error = Some(failure.text);
        }
    }

    /// Adds a task's counts and latencies to this total.
    pub(crate) fn add_task(&mut self, task: Outcome) {
        self.ok += task.ok;
        self.errors += task.errors;
        self.too_many_clients += task.too_many_clients;
        self.latencies.extend(task.latencies);
        if self.other_error.is_none() {
            self.other_error = task.other_error;
        }
    }

    /// Queries answered per second of the strategy's run.
    pub(crate) fn queries_per_sec(&self) -> f64 {
        (self.ok * QUERIES) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

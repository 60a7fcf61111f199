//! One cell (strategy × workload × concurrency) of the benchmark, run in a
//! child process of this same binary (`e2e --cell '<json>'`), so that its
//! peak memory (`VmHWM`) is its own and no cell inherits another's
//! connections, threads or allocator state.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::measurement::{
    ErrorTally, Latency, Recorder, TICKS_PER_SECOND, own_cpu_ticks, proc_status_kib, server_cpu_ticks,
};
use crate::strategies::{Runner, Strategy};
use crate::workloads::{Keys, Workload};

/// What the parent asks a child to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CellSpec {
    pub(crate) strategy: Strategy,
    pub(crate) workload: Workload,
    /// Concurrent tasks, each running operations back to back.
    pub(crate) concurrency: usize,
    /// `max_size` of the pools.
    pub(crate) pool_size: usize,
    /// Unmeasured seconds at the start (pools fill up, caches warm).
    pub(crate) warmup_s: f64,
    /// Measured seconds after the warm-up.
    pub(crate) seconds: f64,
    /// The server.
    pub(crate) url: String,
    /// Rows in the table (keys are drawn from `1..=rows`).
    pub(crate) rows: i32,
    /// The server's postmaster, when it runs on this machine (for its CPU time).
    pub(crate) postmaster: Option<u32>,
}

/// What a cell measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CellOutcome {
    /// Successful operations completed in the measurement window.
    pub(crate) ok_ops: u64,
    /// `ok_ops` per second of the window.
    pub(crate) ops_per_sec: f64,
    /// Latency of those operations (from before getting a connection to
    /// after the result was read).
    pub(crate) latency: Latency,
    /// Failed operations completed in the window, by kind.
    pub(crate) errors: BTreeMap<String, ErrorTally>,
    /// The child's resident memory once its runtime was up, before the
    /// strategy was set up (KiB).
    pub(crate) rss_idle_kib: Option<u64>,
    /// The child's peak resident memory over its whole life (`VmHWM`, KiB).
    pub(crate) rss_peak_kib: Option<u64>,
    /// Length of the measurement window in seconds.
    pub(crate) measured_s: f64,
    /// This process's CPU time (all threads, user + system) during the
    /// window, per successful operation, in microseconds.
    pub(crate) client_cpu_us_per_op: Option<f64>,
    /// The server's CPU time (all its processes) during the window, per
    /// successful operation, in microseconds; local servers only.
    pub(crate) server_cpu_us_per_op: Option<f64>,
    /// Tasks that completed no successful operation in the window (starved
    /// by an unfair pool, or stuck connecting): their waits are missing
    /// from the latency figures, which cover completed operations only.
    pub(crate) starved_tasks: usize,
    /// Tasks still busy (stuck in an operation) 2 s after the window closed.
    pub(crate) unfinished_tasks: usize,
    /// pgbench's own summary lines, for pgbench cells.
    pub(crate) pgbench: Option<crate::pgbench::Summary>,
    /// Why the cell did not run, or anything unusual.
    pub(crate) note: Option<String>,
}

impl CellOutcome {
    /// A cell that did not run (or whose process failed), with the reason.
    pub(crate) fn failed(note: impl Into<String>) -> Self {
        Self { note: Some(note.into()), ..Self::default() }
    }

    /// Total errors of every kind.
    pub(crate) fn error_total(&self) -> u64 {
        self.errors.values().map(|t| t.count).sum()
    }

    /// Errors of one kind.
    pub(crate) fn errors_of(&self, kind: &str) -> u64 {
        self.errors.get(kind).map_or(0, |t| t.count)
    }
}

/// The connection config for `url`, with `application_name` set to `name`
/// so the sessions are recognizable in `pg_stat_activity`.
pub(crate) fn client_config(url: &str, name: &str) -> Result<tokio_postgres::Config, String> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(|e| format!("bad database URL: {e}"))?;
    config.application_name(name);
    Ok(config)
}

/// Runs the cell in this process (the child side) and returns what it measured.
pub(crate) fn run_here(spec: &CellSpec) -> Result<CellOutcome, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the Tokio runtime: {e}"))?;
    let rss_idle_kib = proc_status_kib("VmRSS");
    let outcome = runtime.block_on(drive(spec))?;
    // Tasks still stuck in an operation are dropped here.
    runtime.shutdown_timeout(Duration::from_millis(200));
    Ok(CellOutcome { rss_idle_kib, rss_peak_kib: proc_status_kib("VmHWM"), ..outcome })
}

async fn drive(spec: &CellSpec) -> Result<CellOutcome, String> {
    let config = client_config(&spec.url, &format!("e2e-{}", spec.strategy.name()))?;
    let runner = Arc::new(Runner::new(spec.strategy, &config, spec.pool_size).await?);
    let started = Instant::now();
    let window_start = started + Duration::from_secs_f64(spec.warmup_s);
    let window_end = window_start + Duration::from_secs_f64(spec.seconds);
    let recorder = Arc::new(Recorder::new(window_start, window_end));
    let stop = Arc::new(AtomicBool::new(false));
    let served: Arc<[AtomicBool]> = (0..spec.concurrency).map(|_| AtomicBool::new(false)).collect();

    let mut tasks = Vec::with_capacity(spec.concurrency);
    for i in 0..spec.concurrency {
        let (runner, recorder, stop) = (Arc::clone(&runner), Arc::clone(&recorder), Arc::clone(&stop));
        let served = Arc::clone(&served);
        let (workload, rows) = (spec.workload, spec.rows);
        tasks.push(tokio::spawn(async move {
            let mut keys = Keys::new(i as u64 + 1, rows);
            while !stop.load(Ordering::Relaxed) {
                let key = keys.next_key();
                let start = Instant::now();
                let outcome = runner.op(workload, key).await;
                if recorder.record(start, Instant::now(), outcome) {
                    served[i].store(true, Ordering::Relaxed);
                }
            }
        }));
    }
    // CPU times at the start and end of the window (10 ms resolution; a
    // window of seconds on two cores makes that 1% or better).
    tokio::time::sleep_until(window_start.into()).await;
    let cpu_start = (own_cpu_ticks(), spec.postmaster.and_then(server_cpu_ticks));
    tokio::time::sleep_until(window_end.into()).await;
    let cpu_end = (own_cpu_ticks(), spec.postmaster.and_then(server_cpu_ticks));
    stop.store(true, Ordering::Relaxed);
    // Let tasks finish the operation they are in (it no longer counts), so
    // pools and connections close normally; a stuck one is left behind.
    let finish = async {
        for task in &mut tasks {
            let _ = task.await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), finish).await;
    let unfinished_tasks = tasks.iter().filter(|t| !t.is_finished()).count();
    let starved_tasks = served.iter().filter(|s| !s.load(Ordering::Relaxed)).count();
    if let Runner::Pool { pool, .. } = &*runner {
        pool.close();
    }

    let ok_ops = recorder.ok_ops();
    let per_op = |start: Option<u64>, end: Option<u64>| {
        let ticks = end?.checked_sub(start?)?;
        (ok_ops > 0).then(|| ticks as f64 / TICKS_PER_SECOND * 1e6 / ok_ops as f64)
    };
    Ok(CellOutcome {
        client_cpu_us_per_op: per_op(cpu_start.0, cpu_end.0),
        server_cpu_us_per_op: per_op(cpu_start.1, cpu_end.1),
        ok_ops,
        ops_per_sec: ok_ops as f64 / spec.seconds,
        latency: recorder.latency(),
        errors: recorder.errors(),
        measured_s: spec.seconds,
        starved_tasks,
        unfinished_tasks,
        ..CellOutcome::default()
    })
}

/// The parent side: runs `spec` in a child process of this binary and
/// reads the outcome it prints (one JSON line on stdout).
pub(crate) fn run_in_child(spec: &CellSpec) -> CellOutcome {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return CellOutcome::failed(format!("cannot find this program to run the cell: {e}")),
    };
    let json = match serde_json::to_string(spec) {
        Ok(json) => json,
        Err(e) => return CellOutcome::failed(format!("cannot encode the cell: {e}")),
    };
    // E2E_CELL_WRAPPER runs the cell under a profiler, for instance
    // "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p".
    let wrapper = std::env::var("E2E_CELL_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = std::process::Command::new(program);
            command.args(words).arg(exe);
            command
        }
        None => std::process::Command::new(exe),
    };
    let output = match command.arg("--cell").arg(json).output() {
        Ok(output) => output,
        Err(e) => return CellOutcome::failed(format!("cannot start the cell's process: {e}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let parsed = stdout.lines().rev().find_map(|line| serde_json::from_str::<CellOutcome>(line).ok());
    match parsed {
        Some(outcome) if output.status.success() => outcome,
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            CellOutcome::failed(format!("the cell's process failed ({}): {tail}", output.status))
        }
    }
}

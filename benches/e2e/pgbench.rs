//! pgbench as the reference: what the server itself can do with the same
//! SQL, from a C client with persistent connections (`pgbench`) and with a
//! new connection per transaction (`pgbench -C`).
//!
//! pgbench runs with `-M prepared` (like the cached strategies; `-M simple`
//! through PgBouncer in transaction mode, `pgbench_simple`), `-j 2`
//! threads (this machine's core count), `-l` (a line per transaction), and
//! for `-T` whole seconds covering the warm-up and the window. The
//! throughput and percentiles come from its per-transaction log, over the
//! same window as the Rust cells (completions between `warmup` and
//! `warmup + seconds` after the process started), so both sides are
//! measured the same way. pgbench's own summary (`tps = ...`, `latency
//! average = ...`) is kept alongside.
//!
//! With `-C`, pgbench's logged latency starts *after* the connection is
//! made, so it is not comparable with the naive strategies' (whose latency
//! includes connecting): the percentiles are left out for `pgbench_c`, and
//! pgbench's "latency average" (run time × clients ÷ transactions, which
//! does include connecting) is shown as its mean.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::cell::CellOutcome;
use crate::measurement::{
    ErrorTally, Histogram, Latency, TICKS_PER_SECOND, TOO_MANY_CLIENTS, process_cpu_ticks, server_cpu_ticks,
};
use crate::workloads::Workload;

/// pgbench's own summary of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// The command line (without the URL).
    pub(crate) command: String,
    /// The `tps = ...` figure.
    pub(crate) tps: Option<f64>,
    /// The `latency average = ... ms` figure.
    pub(crate) latency_average_ms: Option<f64>,
    /// Its summary lines (tps, latency, connection time, failures).
    pub(crate) lines: Vec<String>,
    /// Clients pgbench reported as aborted.
    pub(crate) aborted_clients: u64,
    /// The exit status (0: fine; 2: some clients failed).
    pub(crate) exit_status: Option<i32>,
}

/// One pgbench run.
pub(crate) struct Run {
    /// `-C`: a new connection per transaction.
    pub(crate) connect_each: bool,
    /// `-M simple` instead of `-M prepared` (through a transaction pooler).
    pub(crate) simple: bool,
    pub(crate) workload: Workload,
    pub(crate) concurrency: usize,
    pub(crate) warmup_s: f64,
    pub(crate) seconds: f64,
    /// Quick mode: `-t N` transactions per client instead of a timed run,
    /// and every transaction counts.
    pub(crate) transactions: Option<u32>,
    pub(crate) url: String,
    pub(crate) rows: i32,
    /// The server's postmaster, when it runs on this machine (for its CPU time).
    pub(crate) postmaster: Option<u32>,
}

/// pgbench's version line, if it is on `PATH`.
pub(crate) fn version() -> Option<String> {
    let out = Command::new("pgbench").arg("--version").output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn scratch_dir() -> std::io::Result<PathBuf> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "e2e-pgbench-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn epoch_s(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Run {
    /// Runs pgbench and turns what it wrote into a [`CellOutcome`].
    pub(crate) fn run(&self) -> CellOutcome {
        let dir = match scratch_dir() {
            Ok(dir) => dir,
            Err(e) => return CellOutcome::failed(format!("pgbench: no scratch directory: {e}")),
        };
        let outcome = self.run_in(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        outcome
    }

    fn args(&self, script: &Path, log_prefix: &Path) -> Vec<String> {
        let mut args = vec![
            "-n".to_owned(),
            "-M".to_owned(),
            if self.simple { "simple" } else { "prepared" }.to_owned(),
            "-c".to_owned(),
            self.concurrency.to_string(),
            "-j".to_owned(),
            self.concurrency.min(2).to_string(),
            "-f".to_owned(),
            script.display().to_string(),
            "-l".to_owned(),
            format!("--log-prefix={}", log_prefix.display()),
        ];
        if let Some(n) = self.transactions {
            args.extend(["-t".to_owned(), n.to_string()]);
        } else {
            let secs = (self.warmup_s + self.seconds + 0.25).ceil().max(1.0) as u64;
            args.extend(["-T".to_owned(), secs.to_string()]);
        }
        if self.connect_each {
            args.push("-C".to_owned());
        }
        args
    }

    fn run_in(&self, dir: &Path) -> CellOutcome {
        let script = dir.join("script.sql");
        if let Err(e) = std::fs::write(&script, self.workload.pgbench_script(self.rows)) {
            return CellOutcome::failed(format!("pgbench: cannot write the script: {e}"));
        }
        let log_prefix = dir.join("pgbench_log");
        let args = self.args(&script, &log_prefix);
        // Its output goes to files: a pipe nobody reads while we wait for
        // the window could fill up with "too many clients" lines and stall it.
        let (stdout_path, stderr_path) = (dir.join("stdout"), dir.join("stderr"));
        let files =
            std::fs::File::create(&stdout_path).and_then(|o| Ok((o, std::fs::File::create(&stderr_path)?)));
        let child = files.and_then(|(out, err)| {
            Command::new("pgbench").args(&args).arg(&self.url).stdout(out).stderr(err).spawn()
        });
        let started_at = Instant::now();
        let started = epoch_s(SystemTime::now());
        let mut child = match child {
            Ok(child) => child,
            Err(e) => return CellOutcome::failed(format!("pgbench did not start: {e}")),
        };
        // CPU times (pgbench's own, the server's) at the start and end of the window.
        let cpu = |at: Duration| {
            std::thread::sleep(at.saturating_sub(started_at.elapsed()));
            (process_cpu_ticks(child.id()), self.postmaster.and_then(server_cpu_ticks))
        };
        let cpu_window = self.transactions.is_none().then(|| {
            let start = cpu(Duration::from_secs_f64(self.warmup_s));
            (start, cpu(Duration::from_secs_f64(self.warmup_s + self.seconds)))
        });
        let status = match child.wait() {
            Ok(status) => status,
            Err(e) => return CellOutcome::failed(format!("pgbench: {e}")),
        };
        let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let mut summary = parse_summary(&stdout);
        summary.command = format!("pgbench {}", args.join(" ")).replace(&dir.display().to_string(), "$TMP");
        summary.exit_status = status.code();
        let mut errors = stderr_errors(&stderr, &mut summary);
        if summary.aborted_clients == 0 && !status.success() && errors.is_empty() {
            let tally = errors.entry("pgbench_exit".to_owned()).or_default();
            tally.count = 1;
            tally.example = format!("pgbench exited with {status}: {}", stderr.trim());
        }

        let transactions = match read_logs(dir) {
            Ok(t) => t,
            Err(e) => {
                return CellOutcome { note: Some(format!("pgbench log: {e}")), ..CellOutcome::default() };
            }
        };
        let (from, to) = match self.transactions {
            Some(_) => {
                let first = transactions.iter().map(|t| t.end_s).fold(f64::INFINITY, f64::min);
                let last = transactions.iter().map(|t| t.end_s).fold(0.0, f64::max);
                (first, last.max(first + 1e-3))
            }
            None => (started + self.warmup_s, started + self.warmup_s + self.seconds),
        };
        let histogram = Histogram::new();
        let mut failed = 0;
        for t in transactions.iter().filter(|t| t.end_s >= from && t.end_s <= to) {
            match t.latency_us {
                Some(us) => histogram.record(us * 1000),
                None => failed += 1,
            }
        }
        if failed > 0 {
            let tally = errors.entry("pgbench_failed_transaction".to_owned()).or_default();
            tally.count += failed;
            "a transaction pgbench logged as failed".clone_into(&mut tally.example);
        }
        let ok_ops = histogram.count();
        let measured_s = to - from;
        let per_op = |start: Option<u64>, end: Option<u64>| {
            let ticks = end?.checked_sub(start?)?;
            (ok_ops > 0).then(|| ticks as f64 / TICKS_PER_SECOND * 1e6 / ok_ops as f64)
        };
        let (client_cpu_us_per_op, server_cpu_us_per_op) =
            cpu_window.map_or((None, None), |(start, end)| (per_op(start.0, end.0), per_op(start.1, end.1)));
        let latency = if self.connect_each {
            Latency { mean_us: summary.latency_average_ms.map(|ms| ms * 1000.0), ..Latency::default() }
        } else {
            histogram.summary()
        };
        let note = (ok_ops == 0)
            .then(|| format!("pgbench completed no transaction; stderr: {}", first_line(&stderr)));
        CellOutcome {
            ok_ops,
            ops_per_sec: ok_ops as f64 / measured_s,
            latency,
            errors,
            measured_s,
            client_cpu_us_per_op,
            server_cpu_us_per_op,
            pgbench: Some(summary),
            note,
            ..CellOutcome::default()
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

/// One line of pgbench's per-transaction log.
struct Transaction {
    /// Latency in microseconds, `None` for a failed or skipped transaction.
    latency_us: Option<u64>,
    /// When it completed, in seconds since the epoch.
    end_s: f64,
}

/// Reads every `pgbench_log.*` file in `dir`. A line is `client_id
/// transaction_no time script_no time_epoch time_us [...]`.
fn read_logs(dir: &Path) -> std::io::Result<Vec<Transaction>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().starts_with("pgbench_log") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())?;
        out.extend(text.lines().filter_map(parse_log_line));
    }
    Ok(out)
}

fn parse_log_line(line: &str) -> Option<Transaction> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 6 {
        return None;
    }
    let secs: u64 = fields[4].parse().ok()?;
    let micros: u64 = fields[5].parse().ok()?;
    Some(Transaction { latency_us: fields[2].parse().ok(), end_s: secs as f64 + micros as f64 / 1e6 })
}

/// The figures of pgbench's summary on stdout.
fn parse_summary(stdout: &str) -> Summary {
    let mut summary = Summary::default();
    let number = |rest: &str| rest.split_whitespace().next().and_then(|n| n.parse::<f64>().ok());
    for line in stdout.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("tps = ") {
            summary.tps = number(rest);
        } else if let Some(rest) = line.strip_prefix("latency average = ") {
            summary.latency_average_ms = number(rest);
        } else if !(line.contains("connection time") || line.starts_with("number of failed")) {
            continue;
        }
        summary.lines.push(line.to_owned());
    }
    summary
}

/// Errors from pgbench's stderr: each refused connection ("too many
/// clients") counts once; other error lines by their text; "client N
/// aborted" lines are counted in the summary, not as separate errors.
fn stderr_errors(stderr: &str, summary: &mut Summary) -> BTreeMap<String, ErrorTally> {
    let mut errors: BTreeMap<String, ErrorTally> = BTreeMap::new();
    for line in stderr.lines() {
        let kind = if line.contains("too many clients") {
            TOO_MANY_CLIENTS
        } else if line.contains("aborted") {
            summary.aborted_clients += 1;
            continue;
        } else if line.contains("error") || line.contains("FATAL") {
            "pgbench_error"
        } else {
            continue;
        };
        let tally = errors.entry(kind.to_owned()).or_default();
        if tally.count == 0 {
            line.trim().clone_into(&mut tally.example);
        }
        tally.count += 1;
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_summary_and_log_lines() {
        let stdout = "transaction type: script.sql\nnumber of failed transactions: 0 (0.000%)\n\
                      latency average = 0.512 ms\ninitial connection time = 3.456 ms\n\
                      tps = 1953.125000 (without initial connection time)\n";
        let s = parse_summary(stdout);
        assert_eq!(s.tps, Some(1953.125));
        assert_eq!(s.latency_average_ms, Some(0.512));
        assert_eq!(s.lines.len(), 4);
        let t = parse_log_line("0 199 2553 0 1732262400 123456").unwrap();
        assert_eq!(t.latency_us, Some(2553));
        assert!((t.end_s - 1_732_262_400.123_456).abs() < 1e-6);
        assert!(parse_log_line("0 1 failed 0 1732262400 5").unwrap().latency_us.is_none());
    }

    #[test]
    fn counts_refused_connections() {
        let stderr = "pgbench: error: connection to server at \"127.0.0.1\", port 5 failed: FATAL:  sorry, too many clients already\n\
                      pgbench: error: client 3 aborted while establishing connection\n";
        let mut s = Summary::default();
        let e = stderr_errors(stderr, &mut s);
        assert_eq!(e[TOO_MANY_CLIENTS].count, 1);
        assert_eq!(s.aborted_clients, 1);
    }
}

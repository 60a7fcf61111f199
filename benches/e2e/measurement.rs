//! What a cell measures and how: a lock-free latency histogram, error
//! classification, the operation recorder with its measurement window, the
//! sampler of server connections (`pg_stat_activity`), the client's memory
//! (`/proc/self/status`) and the machine's load average.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pool_core::ErrorChain;
use serde::{Deserialize, Serialize};
use tokio_postgres::error::{DbError, SqlState};

/// Sub-buckets per power of two: values are kept to within 1/64 (1.6%).
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// A log-linear histogram of nanosecond values with atomic buckets, shared
/// by every task of a cell: recording is one relaxed `fetch_add`, and the
/// whole thing is 30 KiB however many tasks there are (per-task vectors of
/// samples would have grown the memory being measured).
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }

    fn index(ns: u64) -> usize {
        if ns < SUB as u64 {
            return ns as usize;
        }
        let msb = ns.ilog2();
        let shift = msb - SUB_BITS;
        let sub = (ns >> shift) as usize - SUB;
        SUB + shift as usize * SUB + sub
    }

    /// The middle of the values bucket `index` holds.
    fn value(index: usize) -> f64 {
        if index < SUB {
            return index as f64;
        }
        let shift = (index - SUB) / SUB;
        let sub = (index - SUB) % SUB;
        let low = ((SUB + sub) as u64) << shift;
        low as f64 + ((1u64 << shift) as f64 - 1.0) / 2.0
    }

    pub(crate) fn record(&self, ns: u64) {
        self.buckets[Self::index(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `q`-quantile (nearest rank) in nanoseconds, `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(Self::value(i));
            }
        }
        None
    }

    pub(crate) fn summary(&self) -> Latency {
        let count = self.count();
        let us = |ns: Option<f64>| ns.map(|v| v / 1000.0);
        Latency {
            p50_us: us(self.quantile(0.50)),
            p99_us: us(self.quantile(0.99)),
            p999_us: us(self.quantile(0.999)),
            mean_us: (count > 0).then(|| self.sum_ns.load(Ordering::Relaxed) as f64 / count as f64 / 1000.0),
            max_us: (count > 0).then(|| self.max_ns.load(Ordering::Relaxed) as f64 / 1000.0),
        }
    }
}

/// Latency of the successful operations of a cell, in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[allow(clippy::struct_field_names, reason = "the unit is in the names so that the JSON says it")]
pub(crate) struct Latency {
    pub(crate) p50_us: Option<f64>,
    pub(crate) p99_us: Option<f64>,
    pub(crate) p999_us: Option<f64>,
    pub(crate) mean_us: Option<f64>,
    pub(crate) max_us: Option<f64>,
}

/// How many errors of one kind, and the text of the first one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ErrorTally {
    pub(crate) count: u64,
    pub(crate) example: String,
}

/// The error kind counted separately: the server refused the connection
/// because `max_connections` was reached (SQLSTATE 53300).
pub(crate) const TOO_MANY_CLIENTS: &str = "too_many_clients";

/// Names the kind of an error by walking its `source()` chain:
/// `too_many_clients` (SQLSTATE 53300, whatever wraps it), `db_<SQLSTATE>`
/// for other server errors, `io_<kind>` for socket errors, `timeout`, or
/// `other`. tokio-postgres displays every server error as just "db error";
/// the `DbError` with the real code is its source.
pub(crate) fn classify(error: &(dyn std::error::Error + 'static)) -> String {
    let mut db_code = None;
    let mut io_kind = None;
    let mut text = String::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(db) = e.downcast_ref::<DbError>() {
            db_code.get_or_insert_with(|| db.code().clone());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        text.push_str(&e.to_string());
        text.push_str(": ");
        next = e.source();
    }
    if db_code.as_ref() == Some(&SqlState::TOO_MANY_CONNECTIONS) || text.contains("too many clients") {
        return TOO_MANY_CLIENTS.to_owned();
    }
    if let Some(code) = db_code {
        return format!("db_{}", code.code());
    }
    if let Some(kind) = io_kind {
        return format!("io_{kind:?}").to_lowercase();
    }
    if text.contains("timed out") || text.contains("timeout") {
        return "timeout".to_owned();
    }
    "other".to_owned()
}

/// A failed operation: its kind (see [`classify`]) and message.
#[derive(Debug)]
pub(crate) struct OpError {
    pub(crate) kind: String,
    pub(crate) message: String,
}

impl OpError {
    /// Classifies `error`.
    pub(crate) fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        Self { kind: classify(error), message: ErrorChain(error).to_string() }
    }

    /// An error of a kind the caller names.
    pub(crate) fn new(kind: &str, message: impl Into<String>) -> Self {
        Self { kind: kind.to_owned(), message: message.into() }
    }
}

/// Counts a cell's operations that complete inside its measurement window
/// (after the warm-up): successes with their latency, failures by kind.
pub(crate) struct Recorder {
    window_start: Instant,
    window_end: Instant,
    histogram: Histogram,
    errors: Mutex<BTreeMap<String, ErrorTally>>,
}

impl Recorder {
    pub(crate) fn new(window_start: Instant, window_end: Instant) -> Self {
        Self { window_start, window_end, histogram: Histogram::new(), errors: Mutex::new(BTreeMap::new()) }
    }

    fn in_window(&self, end: Instant) -> bool {
        end >= self.window_start && end <= self.window_end
    }

    /// Records an operation that ran from `start` to `end`; says whether it
    /// was a success inside the window.
    pub(crate) fn record(&self, start: Instant, end: Instant, outcome: Result<(), OpError>) -> bool {
        if !self.in_window(end) {
            return false;
        }
        match outcome {
            Ok(()) => {
                self.histogram.record(end.duration_since(start).as_nanos() as u64);
                true
            }
            Err(error) => {
                let mut errors = self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let tally = errors.entry(error.kind).or_default();
                if tally.count == 0 {
                    tally.example = error.message;
                }
                tally.count += 1;
                false
            }
        }
    }

    pub(crate) fn ok_ops(&self) -> u64 {
        self.histogram.count()
    }

    pub(crate) fn latency(&self) -> Latency {
        self.histogram.summary()
    }

    pub(crate) fn errors(&self) -> BTreeMap<String, ErrorTally> {
        self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`), if readable.
pub(crate) fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Clock ticks per second of the CPU times in `/proc/<pid>/stat` (`USER_HZ`,
/// 100 on every Linux platform this runs on).
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

/// From `/proc/<pid>/stat`: the parent's pid, the process's own CPU time
/// (user + system) and that of its reaped children, in clock ticks.
fn stat_ticks(pid: &str) -> Option<(u32, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; it ends at the last ')'.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 1..)?.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // Fields 4 (ppid), 14-17 (utime, stime, cutime, cstime), counted from 1.
    Some((field(1)? as u32, field(11)? + field(12)?, field(13)? + field(14)?))
}

/// This process's CPU time so far (all threads), in clock ticks.
pub(crate) fn own_cpu_ticks() -> Option<u64> {
    stat_ticks("self").map(|(_, own, _)| own)
}

/// Process `pid`'s CPU time so far (all threads), in clock ticks.
pub(crate) fn process_cpu_ticks(pid: u32) -> Option<u64> {
    stat_ticks(&pid.to_string()).map(|(_, own, _)| own)
}

/// The PostgreSQL server's CPU time so far, in clock ticks: the postmaster's
/// own and its reaped children's (backends that have exited), plus that of
/// its children still running (backends, background workers). `None` if the
/// server does not run on this machine.
pub(crate) fn server_cpu_ticks(postmaster: u32) -> Option<u64> {
    let (_, own, reaped) = stat_ticks(&postmaster.to_string())?;
    let mut total = own + reaped;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        if let Some((ppid, own, _)) = stat_ticks(name)
            && ppid == postmaster
        {
            total += own;
        }
    }
    Some(total)
}

/// The postmaster of the backend `backend_pid`, if it runs on this machine.
pub(crate) fn postmaster_of(backend_pid: i32) -> Option<u32> {
    let comm = std::fs::read_to_string(format!("/proc/{backend_pid}/comm")).ok()?;
    if comm.trim() != "postgres" {
        return None;
    }
    stat_ticks(&backend_pid.to_string()).map(|(ppid, _, _)| ppid)
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg`.
pub(crate) fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some([fields.next()?.ok()?, fields.next()?.ok()?, fields.next()?.ok()?])
}

/// Connections to the local TCP port `port` that the server may still
/// accept, and so fork a backend for: those waiting in its listening
/// socket's accept queue (the `rx_queue` of the `LISTEN` line of
/// `/proc/net/tcp`), half-open ones (`SYN_RECV`), and client sockets to it
/// still connecting or closing (`SYN_SENT`, `FIN_WAIT1`, `CLOSING`). `None`
/// if nothing listens on `port` on this machine.
///
/// When a cell that flooded the server with connection attempts ends (its
/// process exits), the attempts it leaves behind do not vanish: the kernel
/// keeps the orphaned client sockets retrying for seconds (`FIN_WAIT1`),
/// and when the server's accept queue overflowed it answered with SYN
/// cookies and kept no state of its own. Each such attempt that gets
/// through later becomes a backend the server forks and tears down, which
/// would land in the next cell's measurement (as a connection more than
/// the pool holds, and a worse p99, for the pool measured after a `naive`
/// cell) unless waited out.
pub(crate) fn pending_connections(port: u16) -> Option<u64> {
    let hex_port = |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    let mut listening = false;
    let mut pending = 0;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(&state), Some(queues)) =
                (fields.get(1), fields.get(2), fields.get(3), fields.get(4))
            else {
                continue;
            };
            if hex_port(local) == Some(port) {
                match state {
                    "0A" => {
                        listening = true;
                        pending += queues
                            .split(':')
                            .nth(1)
                            .and_then(|q| u64::from_str_radix(q, 16).ok())
                            .unwrap_or(0);
                    }
                    "03" => pending += 1,
                    _ => {}
                }
            } else if hex_port(remote) == Some(port) && matches!(state, "02" | "04" | "0B") {
                pending += 1;
            }
        }
    }
    listening.then_some(pending)
}

/// Counts the server's client connections every `interval`, from its own
/// connection (which it leaves out of the count).
pub(crate) struct Sampler {
    client: tokio_postgres::Client,
    statement: tokio_postgres::Statement,
    driver: tokio::task::JoinHandle<()>,
    config: tokio_postgres::Config,
    /// The server's port, if it listens on this machine.
    local_port: Option<u16>,
}

/// The sampler's query: client backends, including ones still
/// authenticating, other than the sampler itself.
const COUNT_SQL: &str = "SELECT count(*)::int8 FROM pg_stat_activity \
                         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";

/// Samples taken while one cell ran.
#[derive(Debug, Clone, Default)]
pub(crate) struct Samples {
    /// (milliseconds since the cell started, connections).
    pub(crate) points: Vec<(f64, i64)>,
    /// Samples that failed (the sampler reconnects after a failure).
    pub(crate) failures: u64,
}

impl Samples {
    pub(crate) fn peak(&self) -> Option<i64> {
        self.points.iter().map(|&(_, n)| n).max()
    }
}

impl Sampler {
    /// Connects to the server `config` points at.
    pub(crate) async fn connect(config: &tokio_postgres::Config) -> Result<Self, tokio_postgres::Error> {
        let mut config = config.clone();
        config.application_name("e2e-sampler");
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let statement = client.prepare(COUNT_SQL).await?;
        let local = config.get_hosts().iter().all(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => {
                matches!(name.as_str(), "127.0.0.1" | "localhost" | "::1")
            }
            tokio_postgres::config::Host::Unix(_) => false,
        });
        let local_port = config.get_ports().first().copied().filter(|_| local);
        Ok(Self { client, statement, driver, config, local_port })
    }

    /// The sampler's own backend's pid.
    pub(crate) async fn backend_pid(&self) -> Result<i32, tokio_postgres::Error> {
        Ok(self.client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0))
    }

    /// The number of client connections other than the sampler's.
    pub(crate) async fn count(&self) -> Result<i64, tokio_postgres::Error> {
        Ok(self.client.query_one(&self.statement, &[]).await?.get(0))
    }

    /// Reconnects after a failure (for instance the sampler's own session
    /// was lost while the server was flooded).
    async fn reconnect(&mut self) {
        if let Ok(fresh) = Self::connect(&self.config).await {
            self.driver.abort();
            *self = fresh;
        }
    }

    /// Samples every `interval` until `done` says so; the first sample is
    /// taken at once.
    pub(crate) async fn watch(&mut self, interval: Duration, done: impl Fn() -> bool) -> Samples {
        let started = Instant::now();
        let mut samples = Samples::default();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !done() {
            ticker.tick().await;
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), self.count()).await {
                samples.points.push((started.elapsed().as_secs_f64() * 1000.0, n));
            } else {
                samples.failures += 1;
                if self.client.is_closed() {
                    self.reconnect().await;
                }
            }
        }
        samples
    }

    /// Waits until at most `target` client connections are left (the
    /// previous cell's sessions ending) and no connection waits to be
    /// accepted (see [`pending_connections`]), three samples in a row 5 ms apart, for up to `limit`;
    /// returns the last count.
    pub(crate) async fn drain(&mut self, target: i64, limit: Duration) -> Option<i64> {
        let deadline = Instant::now() + limit;
        let mut quiet = 0;
        loop {
            let count = self.count().await.ok();
            if count.is_none() {
                self.reconnect().await;
            }
            let queued = self.local_port.and_then(pending_connections).unwrap_or(0);
            quiet = if count.is_some_and(|n| n <= target) && queued == 0 { quiet + 1 } else { 0 };
            if quiet >= 3 || Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, exact) in [(0.5, 50_000_000.0), (0.99, 99_000_000.0), (0.999, 99_900_000.0)] {
            let got = h.quantile(q).unwrap();
            assert!((got - exact).abs() / exact < 0.02, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.count(), 100_000);
        assert!(Histogram::new().quantile(0.5).is_none());
    }

    #[test]
    fn histogram_indexes_are_monotonic_and_in_range() {
        let mut last = 0;
        let mut v = 0u64;
        while v < u64::MAX / 2 {
            let i = Histogram::index(v);
            assert!(i < BUCKETS && i >= last, "{v}: {i} after {last}");
            assert!(
                Histogram::value(i) <= v as f64 * 1.02 + 1.0 && Histogram::value(i) >= v as f64 * 0.98 - 1.0
            );
            last = i;
            v = v + 1 + v / 37;
        }
        assert!(Histogram::index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn classify_walks_the_source_chain() {
        #[derive(Debug)]
        struct Wrapper(std::io::Error);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("db error")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(classify(&io), "io_connectionrefused");
        let wrapped = Wrapper(std::io::Error::other("FATAL: sorry, too many clients already"));
        assert_eq!(classify(&wrapped), TOO_MANY_CLIENTS);
    }

    #[test]
    fn recorder_counts_only_inside_the_window() {
        let t0 = Instant::now();
        let r = Recorder::new(t0 + Duration::from_millis(10), t0 + Duration::from_millis(20));
        assert!(!r.record(t0, t0 + Duration::from_millis(5), Ok(())));
        assert!(r.record(t0, t0 + Duration::from_millis(15), Ok(())));
        assert!(!r.record(t0, t0 + Duration::from_millis(16), Err(OpError::new("x", "boom"))));
        assert!(!r.record(t0, t0 + Duration::from_millis(25), Ok(())));
        assert_eq!(r.ok_ops(), 1);
        assert_eq!(r.errors()["x"].count, 1);
    }
}

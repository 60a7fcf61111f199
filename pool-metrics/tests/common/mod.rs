//! Shared test support: a scriptable fake [`Manager`], a runner that gives
//! each test its own debugging recorder and a paused Tokio clock, and a
//! snapshot reader.
#![allow(dead_code)] // every test file uses a different part of this

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::{SharedString, Unit};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};
use pool_core::{Manager, Pool, ResourceInfo};

/// What one call to `create` or `recycle` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Succeeds at once.
    Ok,
    /// Fails at once.
    Fail,
    /// Fails at once, refused because the backend is full
    /// (`Manager::is_capacity_error` says so).
    Full,
    /// Succeeds after this long.
    Slow(Duration),
}

/// A fake backend whose `create` and `recycle` follow a script (then
/// succeed at once). A cheap handle: clone it before giving it to the
/// builder and keep the clone to script it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fake(Arc<Script>);

#[derive(Debug, Default)]
pub(crate) struct Script {
    creates: Mutex<VecDeque<Outcome>>,
    recycles: Mutex<VecDeque<Outcome>>,
    created: AtomicUsize,
}

/// A fake connection; `broken` is what `Manager::is_broken` reports.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: usize,
    pub(crate) broken: bool,
}

impl Fake {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The next `create` calls do these, in order.
    pub(crate) fn script_create(&self, outcomes: impl IntoIterator<Item = Outcome>) {
        lock(&self.0.creates).extend(outcomes);
    }

    /// The next `recycle` calls do these, in order.
    pub(crate) fn script_recycle(&self, outcomes: impl IntoIterator<Item = Outcome>) {
        lock(&self.0.recycles).extend(outcomes);
    }

    fn next(script: &Mutex<VecDeque<Outcome>>) -> Outcome {
        lock(script).pop_front().unwrap_or(Outcome::Ok)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The error of [`Outcome::Full`].
const FULL: &str = "sorry, too many clients already (scripted)";

async fn play(outcome: Outcome, what: &str) -> io::Result<()> {
    match outcome {
        Outcome::Ok => Ok(()),
        Outcome::Fail => Err(io::Error::other(format!("{what} failed (scripted)"))),
        Outcome::Full => Err(io::Error::other(FULL)),
        Outcome::Slow(took) => {
            tokio::time::sleep(took).await;
            Ok(())
        }
    }
}

impl Manager for Fake {
    type Resource = Conn;
    type Error = io::Error;

    async fn create(&self) -> io::Result<Conn> {
        let outcome = Self::next(&self.0.creates);
        play(outcome, "create").await?;
        Ok(Conn { id: self.0.created.fetch_add(1, Ordering::Relaxed), broken: false })
    }

    async fn recycle(&self, _conn: &mut Conn, _info: &ResourceInfo) -> io::Result<()> {
        let outcome = Self::next(&self.0.recycles);
        play(outcome, "recycle").await
    }

    fn is_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
    }

    fn is_capacity_error(&self, error: &io::Error) -> bool {
        error.to_string() == FULL
    }
}

/// Runs `test` on a current-thread runtime with a paused clock, with a fresh
/// [`DebuggingRecorder`] as this thread's recorder (so tests running in
/// parallel do not see each other's metrics). `test` gets the snapshotter.
pub(crate) fn run<F: Future<Output = ()>>(test: impl FnOnce(Snapshotter) -> F) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime")
            .block_on(test(snapshotter));
    });
}

/// Lets spawned tasks run until `done` holds (at most 1000 yields).
pub(crate) async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition never held");
}

/// A pool over `fake` named `name` with at most `max_size` connections and
/// a 1 s acquire timeout, observed by `observer`.
pub(crate) fn pool(
    fake: &Fake,
    name: &str,
    max_size: usize,
    observer: Arc<dyn pool_core::Observer>,
) -> pool_core::PoolBuilder<Fake> {
    Pool::builder(fake.clone())
        .name(name)
        .max_size(max_size)
        .acquire_timeout(Duration::from_secs(1))
        .observer(observer)
}

/// One metric in a snapshot.
#[derive(Debug)]
pub(crate) struct Metric {
    pub(crate) kind: MetricKind,
    pub(crate) unit: Option<Unit>,
    pub(crate) description: Option<SharedString>,
    pub(crate) value: DebugValue,
}

/// A snapshot, keyed by name and sorted labels.
///
/// `DebuggingRecorder` hands out counters since the previous snapshot and
/// resets gauges to zero when it takes one, so each test takes one snapshot,
/// at the point it checks.
#[derive(Debug)]
pub(crate) struct Metrics(HashMap<(String, Vec<(String, String)>), Metric>);

impl Metrics {
    pub(crate) fn take(snapshotter: &Snapshotter) -> Self {
        let metrics = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, unit, description, value): (CompositeKey, _, _, _)| {
                let mut labels: Vec<(String, String)> = key
                    .key()
                    .labels()
                    .map(|label| (label.key().to_owned(), label.value().to_owned()))
                    .collect();
                labels.sort();
                let metric = Metric { kind: key.kind(), unit, description, value };
                ((key.key().name().to_owned(), labels), metric)
            })
            .collect();
        Self(metrics)
    }

    /// Every metric, as `(name, labels, metric)`.
    pub(crate) fn all(&self) -> impl Iterator<Item = (&str, &[(String, String)], &Metric)> {
        self.0.iter().map(|((name, labels), metric)| (name.as_str(), labels.as_slice(), metric))
    }

    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> &Metric {
        let mut labels: Vec<(String, String)> =
            labels.iter().map(|&(key, value)| (key.to_owned(), value.to_owned())).collect();
        labels.sort();
        let key = (name.to_owned(), labels);
        self.0.get(&key).unwrap_or_else(|| panic!("no metric {key:?} in {:#?}", self.0.keys()))
    }

    /// A gauge's value, which for pool metrics is always a count.
    pub(crate) fn gauge(&self, name: &str, pool: &str) -> u64 {
        match self.get(name, &[("pool", pool)]).value {
            DebugValue::Gauge(value) => {
                let value = value.into_inner();
                assert!(value >= 0.0 && value.fract() == 0.0, "{name} is a count, not {value}");
                value as u64
            }
            ref other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    /// `pool_connections`, `_idle`, `_active`, `_waiting`, `_pending` of `pool`.
    pub(crate) fn counts(&self, pool: &str) -> [u64; 5] {
        use pool_metrics::names::{ACTIVE, CONNECTIONS, IDLE, PENDING, WAITING};
        [CONNECTIONS, IDLE, ACTIVE, WAITING, PENDING].map(|name| self.gauge(name, pool))
    }

    pub(crate) fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(name, labels).value {
            DebugValue::Counter(value) => value,
            ref other => panic!("{name} is not a counter: {other:?}"),
        }
    }

    pub(crate) fn histogram(&self, name: &str, pool: &str) -> Vec<f64> {
        match &self.get(name, &[("pool", pool)]).value {
            DebugValue::Histogram(values) => values.iter().map(|value| value.into_inner()).collect(),
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }
}

/// The path of `name` (`prometheus` or `promtool`): `$PROMETHEUS` or
/// `$PROMTOOL` if set, else the first on `PATH`, else `/usr/bin/<name>`.
/// Panics with what to install when it is missing: these tests must fail,
/// not skip, on a machine without Prometheus.
pub(crate) fn prometheus_binary(name: &str) -> std::path::PathBuf {
    let variable = name.to_uppercase();
    if let Some(path) = std::env::var_os(&variable) {
        let path = std::path::PathBuf::from(path);
        assert!(
            path.is_file(),
            "${variable} is {}, which is not a file. `{name}` comes with Debian's `prometheus` package: \
             run `apt-get install prometheus` (.ci/test installs it).",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` was not found on PATH or in /usr/bin, and ${variable} is not set. It comes with \
                 Debian's `prometheus` package: run `apt-get install prometheus` (.ci/test installs it)."
            )
        })
}

/// A directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(std::path::PathBuf);

impl TempDir {
    pub(crate) fn new(prefix: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|error| panic!("create {}: {error}", path.display()));
        Self(path)
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A directory of this crate (`prometheus`, `grafana`).
pub(crate) fn crate_dir(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// A free TCP port on 127.0.0.1 (free when this returns, at least).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).unwrap().port()
}

/// A minimal HTTP/1.1 GET: the status code and the body (de-chunked).
pub(crate) async fn http_get(addr: std::net::SocketAddr, path: &str) -> io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange).await.map_err(|_| {
        io::Error::new(io::ErrorKind::TimedOut, format!("GET http://{addr}{path} timed out"))
    })??;
    let response = String::from_utf8_lossy(&response).into_owned();
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {response:?}"));
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| invalid("no end of headers"))?;
    let status =
        head.split(' ').nth(1).and_then(|code| code.parse().ok()).ok_or_else(|| invalid("no status code"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body =
        if chunked { dechunk(body).ok_or_else(|| invalid("bad chunked body"))? } else { body.to_owned() };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// `text` percent-encoded for a URL's query string.
pub(crate) fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

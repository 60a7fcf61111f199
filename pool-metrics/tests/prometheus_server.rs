//! End to end: a real Prometheus server (Debian's `prometheus` package)
//! scrapes the exporter of a process whose pool is full with tasks queued,
//! and its query API reports the pool's counts. Also loads the shipped
//! alert rules. Fails, with what to install, when Prometheus is missing.
#![cfg(feature = "prometheus")]

mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Fake, TempDir, crate_dir, free_port, http_get, prometheus_binary, url_encode};
use pool_core::Pool;
use pool_metrics::PoolMetrics;

const POOL: &str = "scrape-test";
const JOB: &str = "pool-metrics-test";

/// A Prometheus server of our own (its own config, data directory and
/// port), killed and reaped when dropped, also when the test panics.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, with the shipped
    /// alert rules loaded.
    fn start(target: SocketAddr) -> Self {
        let binary = prometheus_binary("prometheus");
        let dir = TempDir::new("pool-metrics-prometheus");
        // A JSON string is a valid YAML one, quotes and escapes included.
        let rules = serde_json::to_string(&crate_dir("prometheus").join("alerts.yml")).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: ['{target}']\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("prometheus.log");
        let log_file = File::create(&log).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|error| panic!("could not start {}: {error}", binary.display()));
        Self { child, addr, log, _dir: dir }
    }

    /// Panics with Prometheus's log.
    fn fail(&mut self, why: &str) -> ! {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let exit = self.child.try_wait().ok().flatten();
        panic!("{why} (Prometheus at {}, exited: {exit:?}); its log:\n{log}", self.addr);
    }

    /// Waits until Prometheus answers its readiness probe.
    async fn ready(&mut self, deadline: Instant) {
        loop {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                self.fail("Prometheus exited");
            }
            if let Ok((200, _)) = http_get(self.addr, "/-/ready").await {
                return;
            }
            if Instant::now() > deadline {
                self.fail("Prometheus did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of the instant query `query`, or `None` if it has no result.
    async fn query(&mut self, query: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", url_encode(query));
        let (status, body) = match http_get(self.addr, &path).await {
            Ok(response) => response,
            Err(error) => self.fail(&format!("query {query}: {error}")),
        };
        if status != 200 {
            self.fail(&format!("query {query}: HTTP {status}: {body}"));
        }
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "success", "{body}");
        let results = json["data"]["result"].as_array().unwrap();
        assert!(results.len() <= 1, "one series for {query}: {body}");
        results.first().map(|result| result["value"][1].as_str().unwrap().parse().unwrap())
    }

    /// Polls `query` until it gives `expected`.
    async fn wait_for(&mut self, query: &str, expected: f64, deadline: Instant) {
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(query).await;
            if last == Some(expected) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.fail(&format!("{query} was still {last:?}, not {expected}, at the deadline"));
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_counts_of_a_full_pool_with_waiting_tasks() {
    let exporter = SocketAddr::from(([127, 0, 0, 1], free_port()));
    pool_metrics::install_prometheus_exporter(exporter).expect("install the exporter");

    // max_size 3, all 3 held, 2 tasks queued: waiting 2, idle 0, size 3.
    let metrics = Arc::new(PoolMetrics::new());
    let pool = Pool::builder(Fake::new())
        .name(POOL)
        .max_size(3)
        .acquire_timeout(Duration::from_secs(300))
        .observer(metrics.clone())
        .build()
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.get().await.unwrap());
    }
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.map(drop) })
        })
        .collect();
    let queued = Instant::now() + Duration::from_secs(10);
    while pool.status().waiting < 2 {
        assert!(Instant::now() < queued, "the two tasks did not queue: {:?}", pool.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // No event marks a task starting to wait; the refresh reports it.
    let refresh = metrics.refresh_every(&pool, Duration::from_millis(200));

    let mut prometheus = Prometheus::start(exporter);
    let deadline = Instant::now() + Duration::from_secs(60);
    prometheus.ready(deadline).await;
    let status = pool.status();
    assert_eq!((status.waiting, status.idle, status.size), (2, 0, 3));
    let selector = format!(r#"{{pool="{POOL}",job="{JOB}"}}"#);
    prometheus
        .wait_for(&format!("pool_connections_waiting{selector}"), status.waiting as f64, deadline)
        .await;
    assert_eq!(prometheus.query(&format!("pool_connections_idle{selector}")).await, Some(status.idle as f64));
    assert_eq!(prometheus.query(&format!("pool_connections{selector}")).await, Some(status.size as f64));
    assert_eq!(
        prometheus.query(&format!("pool_connections_active{selector}")).await,
        Some(status.in_use as f64)
    );
    assert_eq!(prometheus.query(&format!("pool_connections_max{selector}")).await, Some(3.0));
    assert_eq!(prometheus.query(&format!("up{{job=\"{JOB}\"}}")).await, Some(1.0));
    // Real histograms: one bucket series per bound, counting the three gets.
    let inf = format!(r#"pool_connections_acquire_seconds_bucket{{pool="{POOL}",le="+Inf"}}"#);
    assert_eq!(prometheus.query(&inf).await, Some(3.0));
    let buckets = format!(r#"count(pool_connections_acquire_seconds_bucket{{pool="{POOL}"}})"#);
    assert_eq!(prometheus.query(&buckets).await, Some((pool_metrics::SECONDS_BUCKETS.len() + 1) as f64));

    // The shipped rules loaded into a real server.
    let (status, rules) = http_get(prometheus.addr, "/api/v1/rules").await.unwrap();
    assert_eq!(status, 200, "{rules}");
    for alert in [
        "PoolTasksWaitingTooLong",
        "PoolNearlyExhausted",
        "PoolNoIdleConnections",
        "PoolAcquireTimeouts",
        "PoolBrokenConnections",
    ] {
        assert!(rules.contains(alert), "Prometheus loaded {alert}: {rules}");
    }

    drop(prometheus);
    drop(refresh);
    drop(held);
    for waiter in waiters {
        waiter.await.unwrap().expect("each waiter gets a connection once they are returned");
    }
}

//! [`Monitor`]: a connection of its own that counts, from
//! `pg_stat_activity`, the server connections each strategy holds.
//!
//! Each strategy's connections carry its own `application_name`, so one
//! count query tells them apart. A [`Sampling`] repeats that query while a
//! strategy runs and keeps the peak.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use pool_core::ErrorChain;
use tokio_postgres::NoTls;

use crate::abort_on_drop::AbortOnDrop;

const COUNT_SQL: &str = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1";

/// A connection of its own that watches `pg_stat_activity`.
pub(crate) struct Monitor {
    client: Arc<tokio_postgres::Client>,
    _driver: AbortOnDrop,
}

impl Monitor {
    /// Connects to the server of `base` as `quickstart_monitor`.
    pub(crate) async fn connect(base: &tokio_postgres::Config) -> Result<Self, String> {
        let mut config = base.clone();
        config.application_name("quickstart_monitor");
        let (client, connection) = config.connect(NoTls).await.map_err(|e| {
            format!("cannot connect to {}: {}", examples::describe_target(base), ErrorChain(&e))
        })?;
        let driver = tokio::spawn(connection);
        Ok(Self { client: Arc::new(client), _driver: AbortOnDrop(driver.abort_handle()) })
    }

    /// The server's `max_connections`.
    pub(crate) async fn max_connections(&self) -> Result<i64, String> {
        pool_postgres::insight::server_limits(&*self.client)
            .await
            .map(|limits| limits.max_connections)
            .map_err(|e| ErrorChain(&e).to_string())
    }

    async fn count(&self, application_name: &str) -> Option<i64> {
        self.client.query_one(COUNT_SQL, &[&application_name]).await.ok().map(|row| row.get(0))
    }

    /// Samples the connections of `application_name` until stopped.
    pub(crate) fn sample(&self, application_name: String) -> Sampling {
        let client = Arc::clone(&self.client);
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicI64::new(0));
        let task = {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            tokio::spawn(async move {
                let Ok(statement) = client.prepare(COUNT_SQL).await else { return };
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(row) = client.query_one(&statement, &[&application_name]).await {
                        peak.fetch_max(row.get(0), Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        Sampling { stop, peak, task }
    }

    /// Returns once the server shows no connection of `application_name`,
    /// or after `timeout`.
    pub(crate) async fn wait_until_gone(&self, application_name: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.count(application_name).await.unwrap_or(0) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A running sampler.
pub(crate) struct Sampling {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampling {
    /// Stops sampling and returns the peak seen.
    pub(crate) async fn stop(self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

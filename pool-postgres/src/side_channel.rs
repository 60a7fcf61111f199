//! [`SideChannel`]: how the pool reaches the server outside its pooled
//! connections — cancel requests (`drain.rs`) and liveness probes
//! (`liveness.rs`) — encrypted when the pool's connections are.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{CancelToken, Client, NoTls};

/// Longest wait for one side-channel exchange: a cancel request delivered,
/// or a probe connection opened and answered.
pub(crate) const SIDE_BOUND: Duration = Duration::from_secs(2);

/// The TLS setting of the pool's connections, for the side channel.
#[derive(Clone, Default)]
pub(crate) enum SideChannel {
    #[default]
    Plain,
    #[cfg(feature = "tls")]
    Tls(crate::tls::MakeRustlsConnect),
}

impl std::fmt::Debug for SideChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain => f.write_str("Plain"),
            #[cfg(feature = "tls")]
            Self::Tls(_) => f.write_str("Tls"),
        }
    }
}

impl SideChannel {
    /// Sends one cancel request, within [`SIDE_BOUND`]; whether it was
    /// delivered.
    pub(crate) async fn cancel(&self, token: CancelToken) -> bool {
        let sent = async {
            match self {
                Self::Plain => token.cancel_query(NoTls).await,
                #[cfg(feature = "tls")]
                Self::Tls(tls) => token.cancel_query(tls.clone()).await,
            }
        };
        match tokio::time::timeout(SIDE_BOUND, sent).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::debug!(%error, "a cancel request failed");
                false
            }
            Err(_) => {
                tracing::debug!("a cancel request was not delivered within {SIDE_BOUND:?}");
                false
            }
        }
    }

    /// Opens a connection outside the pool; its socket is driven by a task
    /// that ends when the returned client is dropped.
    pub(crate) async fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<Client, tokio_postgres::Error> {
        match self {
            Self::Plain => {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(connection);
                Ok(client)
            }
            #[cfg(feature = "tls")]
            Self::Tls(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                tokio::spawn(connection);
                Ok(client)
            }
        }
    }
}

/// The side-channel tasks of one pool still running (cancel requests sent
/// from a task of their own), so that closing the pool can wait for them:
/// a process that exits with a cancel still unsent leaves its statement
/// running on the server, its session with it.
#[derive(Debug, Default)]
pub(crate) struct SideTasks {
    running: AtomicUsize,
    ended: Notify,
}

/// Counts one task as running until it ends, however it ends.
struct Running<'a>(&'a SideTasks);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
        self.0.ended.notify_waiters();
    }
}

impl SideTasks {
    /// Spawns `task` on `runtime`, counted until it ends.
    pub(crate) fn spawn(
        self: &std::sync::Arc<Self>,
        runtime: &tokio::runtime::Handle,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        self.running.fetch_add(1, Ordering::AcqRel);
        let tasks = std::sync::Arc::clone(self);
        runtime.spawn(async move {
            let _running = Running(&tasks);
            task.await;
        })
    }

    /// Completes once no task is running.
    pub(crate) async fn settled(&self) {
        loop {
            let ended = self.ended.notified();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            ended.await;
        }
    }
}

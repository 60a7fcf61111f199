//! [`PgConnection`]: one pooled PostgreSQL session — the tokio-postgres
//! client, the task driving its socket, its statement cache and what the
//! pool knows about its session state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client};

use crate::backlog::Backlog;
use crate::cache::StatementCache;
use crate::policy::StatementPolicy;

/// A pooled connection, reached through the [`Client`](crate::Client) guard.
pub struct PgConnection {
    pub(crate) client: Client,
    pub(crate) cache: Mutex<StatementCache>,
    driver: JoinHandle<()>,
    /// The session may be inside a transaction block (or hold a cursor or
    /// lock): a `ROLLBACK` is queued before the next borrower gets it.
    pub(crate) dirty: AtomicBool,
    /// A query through the guard timed out (`socket_timeout`): the
    /// connection's state is unknown, so it is destroyed on return.
    pub(crate) broken: AtomicBool,
    /// How statements are sent (`socket_timeout`, pooler mode).
    pub(crate) policy: Arc<StatementPolicy>,
    /// Requests sent and no longer awaited by anyone; drained before reuse.
    pub(crate) backlog: Backlog,
    /// The server process behind it, when the liveness check needs it.
    pub(crate) backend_pid: Option<i32>,
}

impl PgConnection {
    /// Wraps a freshly connected client; spawns the task that drives its
    /// socket (server notices are logged at debug level, not printed).
    pub(crate) fn new<S, T>(
        client: Client,
        mut connection: tokio_postgres::Connection<S, T>,
        cache_size: usize,
        policy: Arc<StatementPolicy>,
    ) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notice(notice))) => {
                        tracing::debug!(
                            severity = notice.severity(),
                            message = notice.message(),
                            "server notice"
                        );
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        tracing::debug!(%error, "connection ended with an error");
                        break;
                    }
                    None => break,
                }
            }
        });
        Self {
            client,
            cache: Mutex::new(StatementCache::new(cache_size)),
            driver,
            dirty: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            policy,
            backlog: Backlog::default(),
            backend_pid: None,
        }
    }

    /// Whether the socket is closed or the task driving it has ended.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed() || self.driver.is_finished()
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    pub(crate) fn mark_broken(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_marked_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// On return: a connection with a backlog is drained before reuse
    /// ([`crate::drain`], which also ends any block left open, so nothing
    /// else is queued). Otherwise, if the session may be inside a
    /// transaction, a `ROLLBACK` is sent without waiting for it (it runs
    /// before anything the next borrower sends, on the same socket, in
    /// order; see [`crate::queued`]). Returns `false` if the session could
    /// not be reset.
    pub(crate) fn reset_on_return(&self) -> bool {
        let dirty = self.dirty.swap(false, Ordering::Relaxed);
        self.backlog.abandoned() > 0 || !dirty || crate::queued::queue(&self.client, "ROLLBACK")
    }

    pub(crate) fn cache(&self) -> std::sync::MutexGuard<'_, StatementCache> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        // Dropping the client sends Terminate and closes the socket; the
        // driver task then ends by itself. Abort it anyway in case the
        // socket is stuck (a half-open connection never answers).
        self.driver.abort();
        // The server does not notice a closed socket while it runs a
        // statement that sends nothing: abandoned work is cancelled, or it
        // runs on (and keeps its session) after the connection is gone.
        if self.backlog.abandoned() > 0 {
            crate::drain::cancel_backlog(self);
        }
    }
}

impl std::fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnection")
            .field("closed", &self.is_closed())
            .field("dirty", &self.dirty.load(Ordering::Relaxed))
            .field("abandoned", &self.backlog.abandoned())
            .finish_non_exhaustive()
    }
}

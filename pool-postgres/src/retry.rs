//! Whether a failure is worth retrying, and [`PgPool::retry`], which
//! retries idempotent work on the failures that are.
//!
//! Two questions decide a retry, and [`Retryable`] answers both for the
//! pool's two error types:
//! - **transient**: the same work may succeed if tried again (the
//!   connection was lost, the server restarts or is full, a serialization
//!   failure or deadlock, a pool timeout);
//! - **may have run**: the statement may have taken effect on the server
//!   (its connection died with it in flight, no answer came). Work that is
//!   not idempotent may be retried only when this is `false`.
//!
//! [`PgPool::retry`] is for idempotent work, so it retries every transient
//! failure, up to a budget of attempts and time, with a jittered
//! exponential backoff between attempts, each on a connection it gets from
//! the pool anew (a session that failed is closed, never handed out again).

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::error::SqlState;

use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::pool::{PgPool, PoolError};

/// Whether a failure is worth retrying; see the module docs.
pub trait Retryable {
    /// The same work may succeed if tried again.
    fn is_transient(&self) -> bool;
    /// The statement may have taken effect on the server.
    fn may_have_run(&self) -> bool;
}

/// Server states that pass, for the SQLSTATEs that report them: the server
/// restarts or shuts down, is full, or the transaction lost a race.
fn transient_code(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
        ]
        .contains(code)
}

impl Retryable for Error {
    fn is_transient(&self) -> bool {
        match self.kind() {
            ErrorKind::Timeout { .. } | ErrorKind::Unanswered { .. } => true,
            ErrorKind::Acquire => self.as_pool_error().is_some_and(Retryable::is_transient),
            ErrorKind::Postgres => match self.code() {
                Some(code) => transient_code(code),
                // No answer from the server: the connection or socket failed.
                None => true,
            },
            _ => false,
        }
    }

    fn may_have_run(&self) -> bool {
        match self.kind() {
            ErrorKind::Timeout { cancelled, .. } => !cancelled,
            ErrorKind::Unanswered { .. } => true,
            // The server answered with an error: the statement failed, and
            // its transaction (in autocommit, the statement alone) did not
            // commit, unless the session itself ended mid-way.
            ErrorKind::Postgres => match self.as_db_error() {
                Some(db) => matches!(db.severity(), "FATAL" | "PANIC"),
                None => !self.was_not_sent(),
            },
            _ => false,
        }
    }
}

impl Retryable for PoolError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. }
            | Self::Overloaded { .. }
            | Self::Exhausted { .. }
            | Self::NoneEligible { .. } => true,
            Self::Backend(error) => error.code().is_none_or(transient_code),
            _ => false,
        }
    }

    /// `get` sends no statement.
    fn may_have_run(&self) -> bool {
        false
    }
}

/// The budget and backoff of [`PgPool::retry`].
#[derive(Debug, Clone)]
pub struct Retry {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// No attempt starts this long after the first began.
    pub max_elapsed: Duration,
    /// The wait after the first failure; it doubles after each, up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for Retry {
    /// 3 attempts within 10 s, waiting about 50 ms, then 100 ms (each ±50 %).
    fn default() -> Self {
        Self {
            max_attempts: 3,
            max_elapsed: Duration::from_secs(10),
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// [`PgPool::retry`] gave up: the last failure, and how many attempts it made.
#[derive(Debug)]
pub enum RetryError {
    /// Getting a connection failed.
    Get {
        /// The last failure.
        error: PoolError,
        /// Attempts made.
        attempts: u32,
    },
    /// The work failed.
    Work {
        /// The last failure.
        error: Error,
        /// Attempts made.
        attempts: u32,
    },
}

impl std::fmt::Display for RetryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (attempts, transient) = match self {
            Self::Get { error, attempts } => (attempts, error.is_transient()),
            Self::Work { error, attempts } => (attempts, error.is_transient()),
        };
        let why = if transient { "the retry budget is spent" } else { "the failure is not transient" };
        write!(f, "gave up after {attempts} attempt(s) ({why}): ")?;
        match self {
            Self::Get { error, .. } => {
                write!(f, "getting a connection failed: {}", pool_core::ErrorChain(error))
            }
            Self::Work { error, .. } => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for RetryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Get { error, .. } => Some(error),
            Self::Work { error, .. } => Some(error),
        }
    }
}

impl PgPool {
    /// Runs idempotent `work` on a connection it is given, and again on a
    /// new one after a [transient](Retryable::is_transient) failure, within
    /// `retry`'s budget, waiting a jittered, doubling backoff in between.
    /// A connection whose session failed is closed, never reused.
    ///
    /// ```no_run
    /// # async fn example(pool: &pool_postgres::PgPool) -> Result<(), pool_postgres::RetryError> {
    /// use pool_postgres::Retry;
    /// let balance: i64 = pool
    ///     .retry(&Retry::default(), |client| async move {
    ///         let row = client.query_one("SELECT balance FROM accounts WHERE id = $1", &[&7_i64]).await?;
    ///         Ok(row.get(0))
    ///     })
    ///     .await?;
    /// # let _ = balance; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`RetryError`] with the last failure: one that is not transient at
    /// once, a transient one when the budget is spent.
    ///
    /// # Cancel safety
    ///
    /// As the work's: dropped mid-attempt, the attempt is abandoned like any
    /// statement (cancelled on the server and its connection drained).
    pub async fn retry<T, F, Fut>(&self, retry: &Retry, mut work: F) -> Result<T, RetryError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let started = Instant::now();
        let mut backoff = retry.first_backoff;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match self.get().await {
                // A session that failed was marked broken by the statement
                // that saw it, so it is closed as `client` is dropped.
                Ok(client) => match work(client).await {
                    Ok(done) => return Ok(done),
                    Err(error) => RetryError::Work { error, attempts },
                },
                Err(error) => RetryError::Get { error, attempts },
            };
            let transient = match &failure {
                RetryError::Get { error, .. } => error.is_transient(),
                RetryError::Work { error, .. } => error.is_transient(),
            };
            let wait = jittered(backoff);
            if !transient
                || attempts >= retry.max_attempts.max(1)
                || started.elapsed() + wait > retry.max_elapsed
            {
                return Err(failure);
            }
            tracing::debug!(attempts, ?wait, error = %failure, "retrying after a transient failure");
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(retry.max_backoff);
        }
    }
}

/// `backoff` ±50 %, so that callers failed by one event do not retry in step.
fn jittered(backoff: Duration) -> Duration {
    let random = RandomState::new().hash_one(Instant::now());
    // 0..1000 permille of the spread.
    let permille = u32::try_from(random % 1000).unwrap_or(500);
    backoff / 2 + backoff * permille / 1000
}

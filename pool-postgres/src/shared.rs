//! The process-wide pool, for code with no natural place to keep one
//! (scripts, tests, handlers of frameworks without shared state).

use std::sync::{Mutex, OnceLock};

use crate::config_error::ConfigError;
use crate::pool::PgPool;

static SHARED: OnceLock<PgPool> = OnceLock::new();
static BUILDING: Mutex<()> = Mutex::new(());

/// The process-wide pool, built from `DATABASE_URL` (with any pool
/// parameters in its query string) on first use; every later call returns
/// the same pool.
///
/// Its background tasks live on the Tokio runtime of the first call, so use
/// it from one runtime. Being in a `static`, it is never dropped: a script
/// should call [`PgPool::close_and_wait`] on it before exiting so the server
/// sees its connections end cleanly.
///
/// # Errors
///
/// A [`ConfigError`] if `DATABASE_URL` is unset or invalid; the next call
/// tries again.
pub fn shared_pool() -> Result<&'static PgPool, ConfigError> {
    if let Some(pool) = SHARED.get() {
        return Ok(pool);
    }
    let _building = BUILDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(pool) = SHARED.get() {
        return Ok(pool);
    }
    let pool = PgPool::from_env()?;
    Ok(SHARED.get_or_init(|| pool))
}

//! Helpers shared by the runnable examples in this directory:
//!
//! | example | run it with | what it shows |
//! |---|---|---|
//! | `quickstart` | `cargo run --release --example quickstart` | "too many clients" reproduced with a connection per call and a pool per call, and cured by one shared pool |
//! | `service` | `DATABASE_URL=... cargo run --release --example service` | an axum service with one pool in its state, `/health`, `/metrics`, and a shutdown with a deadline (`SHUTDOWN_GRACE`) that reports what it answered and what it cut off |
//! | `script` | `DATABASE_URL=... cargo run --release --example script` | a short-lived job on `shared_pool()` that closes the pool before exiting |
//! | `custom_backend` | `cargo run --release --example custom_backend` | pool-core over a backend that is not PostgreSQL: a TCP line protocol |

use std::error::Error;
use std::time::Duration;

use pool_core::ErrorChain;
use tokio_postgres::error::SqlState;

/// Whether `error`, or any error beneath it, is the server refusing a
/// connection because all its slots are taken (SQLSTATE 53300, "sorry, too
/// many clients already" or "remaining connection slots are reserved").
pub fn is_too_many_clients(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(pg) = current.downcast_ref::<tokio_postgres::Error>()
            && pg.code() == Some(&SqlState::TOO_MANY_CONNECTIONS)
        {
            return true;
        }
        next = current.source();
    }
    let text = ErrorChain(error).to_string();
    text.contains("too many clients") || text.contains("remaining connection slots")
}

/// The `pct` percentile (0 to 100) of `sorted` (ascending), in milliseconds,
/// by the nearest-rank method; `None` when there are no samples.
pub fn percentile_ms(sorted: &[Duration], pct: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[index].as_secs_f64() * 1000.0)
}

/// Completes when the process receives SIGTERM (what container runtimes and
/// systemd send) or SIGINT (Ctrl-C), and returns the signal's name.
///
/// The handlers are installed when this is called, not when the future is
/// first polled, so call it early: a signal that arrives before then would
/// end the process the default way.
///
/// # Errors
///
/// The system's error if a signal handler cannot be installed.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        })
    }
}

/// Where a PostgreSQL URL points, without its password: `host:port/dbname`
/// as `user`, for messages.
pub fn describe_target(config: &tokio_postgres::Config) -> String {
    let host = config.get_hosts().first().map_or_else(
        || String::from("localhost"),
        |host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        },
    );
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    let user = config.get_user().unwrap_or("(default user)");
    format!("{host}:{port}/{dbname} as {user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&samples, 50.0), Some(50.0));
        assert_eq!(percentile_ms(&samples, 99.0), Some(99.0));
        assert_eq!(percentile_ms(&samples, 100.0), Some(100.0));
        assert_eq!(percentile_ms(&samples[..1], 99.0), Some(1.0));
        assert_eq!(percentile_ms(&[], 50.0), None);
    }

    #[test]
    fn too_many_clients_is_found_beneath_a_wrapper() {
        let inner = std::io::Error::other("FATAL: sorry, too many clients already");
        let outer = std::io::Error::other(Wrapper(inner));
        assert!(is_too_many_clients(&outer));
        assert!(!is_too_many_clients(&std::io::Error::other("connection refused")));
    }

    #[derive(Debug)]
    struct Wrapper(std::io::Error);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("db error")
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }
}

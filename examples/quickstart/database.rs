//! Which server the quickstart runs against: `DATABASE_URL`, or a throwaway
//! one it starts and stops itself.
//!
//! This is the only file that knows about the throwaway-server helper.

use pool_postgres_test_server::TestServer;

/// `max_connections` of the throwaway server.
const THROWAWAY_MAX_CONNECTIONS: u32 = 20;

/// The server to run against. A throwaway server is stopped by
/// [`stop`](Self::stop), or by its own drop if the program panics first.
pub(crate) struct Database {
    url: String,
    throwaway: Option<TestServer>,
}

impl Database {
    /// `DATABASE_URL` if it is set and not blank; otherwise a throwaway
    /// server allowing [`THROWAWAY_MAX_CONNECTIONS`], announced on stderr.
    pub(crate) fn from_env_or_throwaway() -> Result<Self, String> {
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.trim().is_empty()
        {
            return Ok(Self { url, throwaway: None });
        }
        eprintln!(
            "DATABASE_URL is not set: starting a throwaway PostgreSQL server with \
             max_connections={THROWAWAY_MAX_CONNECTIONS}..."
        );
        let server =
            TestServer::builder().max_connections(THROWAWAY_MAX_CONNECTIONS).start().map_err(|e| {
                format!(
                    "could not start a throwaway server: {e}\n\
                 (or point DATABASE_URL at a PostgreSQL server you may connect 200 times to)"
                )
            })?;
        eprintln!(
            "throwaway server listening on 127.0.0.1:{} (stopped on exit, Ctrl-C included)",
            server.port()
        );
        Ok(Self { url: server.url(), throwaway: Some(server) })
    }

    /// The connection URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Stops the throwaway server, if there is one, and says so.
    pub(crate) fn stop(self) {
        if let Some(server) = self.throwaway {
            drop(server);
            eprintln!("stopped the throwaway server");
        }
    }
}

//! [`FaultProxy`]: a TCP proxy in front of a test server (or anything else
//! on TCP) that injects network faults on command.
//!
//! The API, what each fault does and an example are on [`FaultProxy`],
//! where users of the crate read them.
//!
//! Implementation details:
//! * **Its own thread and runtime.** The proxy runs on a thread of its own
//!   with a single-threaded Tokio runtime, so it works under any client
//!   (async or not, any runtime), its API is synchronous, and a test that
//!   loads its own runtime cannot slow the proxy down: a fault is the
//!   proxy's doing, never a side effect of a starved relay.
//! * **Faults as data.** The settings ([`faults::Faults`]) travel to every
//!   relay in a `watch` channel; a relay waits on its I/O and on a change
//!   of the settings at once, so a fault takes effect wherever the relay
//!   is waiting (see the `relay` module). `freeze` and `reset` apply to
//!   the connections open at the call through generations, and the
//!   [`registry`] keeps the counts consistent with them.
//! * **Ending.** The accepting task owns every relay task (a `JoinSet`); a
//!   shutdown makes each relay close its sockets and the accepting task
//!   waits for all of them before the thread ends, which `shutdown` joins.
//!   A proxy never outlives its [`FaultProxy`] value, and being in-process
//!   it cannot outlive the test process either.

mod faults;
mod registry;
mod relay;

use std::fmt;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::TestServer;
use crate::address::{HOST, Login};
use crate::error::{Phase, TestServerError};
use registry::Registry;

/// How long [`FaultProxy::reset`] waits for the reset connections to close
/// (they close within milliseconds: nothing else runs on the proxy's thread).
const RESET_PATIENCE: Duration = Duration::from_secs(5);

/// How long the accepting loop pauses after a failed `accept` (out of file
/// descriptors, say), so that it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// A TCP proxy on a free port of 127.0.0.1 in front of an upstream address
/// (usually a [`TestServer`]), with faults injected on command.
///
/// The faults are the ones a pool meets in production and cannot produce
/// on its own:
///
/// | call | what the connections through the proxy see |
/// |---|---|
/// | [`freeze`](Self::freeze) | every connection open now silently stops carrying bytes, both ways: no FIN, no RST, not even the end of stream of a peer that closed (a dead NAT entry, a firewall dropping state, a frozen VM). New connections work. |
/// | [`reset`](Self::reset) | every connection open now is closed with RST on both sides (`SO_LINGER` 0); new ones work. |
/// | [`delay(d)`](Self::delay) | every chunk, on every connection and in both directions, is passed on `d` late. |
/// | [`back_to_normal`](Self::back_to_normal) | no delay, and frozen connections forward again, starting with what they held (the path healed: TCP would retransmit). |
///
/// [`live_connections`](Self::live_connections) counts the
/// connections relayed now, [`connections_caught_by_freeze`](Self::connections_caught_by_freeze)
/// those of them a freeze caught: the server may hold a session for each
/// that its client has long given up on. [`shutdown`](Self::shutdown)
/// (and `Drop`) closes everything and returns once every relay has ended.
///
/// ```
/// use pool_postgres_test_server::{FaultProxy, TestServer};
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let server = TestServer::start()?;
///     let proxy = FaultProxy::in_front_of(&server)?;
///     // proxy.url() and proxy.connection_string() are the server's, with the proxy's port.
///     let (client, connection) = tokio_postgres::connect(&proxy.connection_string(), tokio_postgres::NoTls).await?;
///     let driver = tokio::spawn(connection);
///     client.simple_query("SELECT 1").await?;
///     assert_eq!(proxy.live_connections(), 1);
///
///     assert_eq!(proxy.reset(), 1); // returns once the connection is closed
///     assert!(client.simple_query("SELECT 1").await.is_err());
///     assert!(driver.await?.is_err(), "the driver saw the reset");
///     assert_eq!(proxy.live_connections(), 0);
///     Ok(()) // dropping the proxy shuts it down, then the server stops
/// }
/// ```
///
/// All methods take `&self` and return at once, except
/// [`reset`](Self::reset) (until the reset connections have closed) and
/// [`shutdown`](Self::shutdown). Dropping the proxy shuts it down.
/// `Debug` does not show the password.
pub struct FaultProxy {
    port: u16,
    upstream: SocketAddr,
    /// The login of the server behind it, for the URLs (`in_front_of`).
    user: String,
    password: Option<String>,
    registry: Arc<Registry>,
    /// The proxy's thread, until it has been joined.
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `server`; its [`url`](Self::url) and
    /// [`connection_string`](Self::connection_string) are the server's,
    /// with the proxy's port. It keeps working across the server's
    /// restarts (the server keeps its port); while the server is down, the
    /// proxy resets the connections it cannot pass on.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn in_front_of(server: &TestServer) -> Result<Self, TestServerError> {
        let upstream = SocketAddr::from(([127, 0, 0, 1], server.port()));
        Self::launch(upstream, server.user().to_owned(), server.password().map(str::to_owned))
    }

    /// Starts a proxy to `upstream` and returns once it listens (it accepts
    /// as soon as its thread runs). Its [`url`](Self::url) logs in as
    /// `postgres` without a password.
    ///
    /// # Errors
    ///
    /// [`Phase::StartFaultProxy`] if the port, the runtime or the thread
    /// could not be had.
    pub fn start(upstream: SocketAddr) -> Result<Self, TestServerError> {
        Self::launch(upstream, String::from(crate::template::SUPERUSER), None)
    }

    fn launch(upstream: SocketAddr, user: String, password: Option<String>) -> Result<Self, TestServerError> {
        let fail = |what: &str, e| TestServerError::io(Phase::StartFaultProxy, what, e);
        let listener =
            StdListener::bind((HOST, 0)).map_err(|e| fail("could not bind a port on 127.0.0.1", e))?;
        let port = listener.local_addr().map_err(|e| fail("could not read the proxy's address", e))?.port();
        listener.set_nonblocking(true).map_err(|e| fail("could not make the listener non-blocking", e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| fail("could not build the proxy's runtime", e))?;
        let registry = Arc::new(Registry::new());
        let thread = {
            let registry = Arc::clone(&registry);
            std::thread::Builder::new()
                .name(format!("fault-proxy-{port}"))
                .spawn(move || runtime.block_on(serve(listener, upstream, registry)))
                .map_err(|e| fail("could not spawn the proxy's thread", e))?
        };
        Ok(Self { port, upstream, user, password, registry, thread: Some(thread) })
    }

    /// The host the proxy listens on: `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the proxy connects to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// `postgres://USER[:PASSWORD]@127.0.0.1:PORT/postgres`, through the proxy.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// Like [`url`](Self::url), for database `dbname`.
    pub fn url_for(&self, dbname: &str) -> String {
        self.login().url(dbname)
    }

    /// A key=value connection string through the proxy:
    /// `host=127.0.0.1 port=PORT user=USER dbname=postgres [password=...]`.
    pub fn connection_string(&self) -> String {
        self.connection_string_for("postgres")
    }

    /// Like [`connection_string`](Self::connection_string), for database `dbname`.
    pub fn connection_string_for(&self, dbname: &str) -> String {
        self.login().connection_string(dbname)
    }

    /// Every connection open now silently stops forwarding, both ways (no
    /// FIN, no RST, no end of stream passed on), until
    /// [`back_to_normal`](Self::back_to_normal), a [`reset`](Self::reset)
    /// or the shutdown. Connections made later are not affected.
    pub fn freeze(&self) {
        self.registry.freeze();
    }

    /// Closes every connection open now with a reset (RST to the client and
    /// to the server, no FIN), frozen ones included, and returns how many
    /// there were once they are closed. Connections made later are not
    /// affected.
    pub fn reset(&self) -> usize {
        self.registry.reset(RESET_PATIENCE)
    }

    /// From now on every chunk, in both directions and on every connection
    /// (open now or later), is passed on `per_chunk` late, until
    /// [`back_to_normal`](Self::back_to_normal). `Duration::ZERO` removes
    /// the delay alone.
    pub fn delay(&self, per_chunk: Duration) {
        self.registry.modify(|f| f.delay = per_chunk);
    }

    /// Ends the faults that last: no more delay, and frozen connections
    /// forward again, starting with the bytes they held (a peer that closed
    /// meanwhile is seen to have closed now).
    pub fn back_to_normal(&self) {
        self.registry.modify(|f| {
            f.delay = Duration::ZERO;
            f.frozen_below = 0;
        });
    }

    /// How many connections the proxy relays now (each is a client socket
    /// and, once connected, a server socket).
    pub fn live_connections(&self) -> usize {
        self.registry.live()
    }

    /// How many of the [live](Self::live_connections) connections were open
    /// at a [`freeze`](Self::freeze), whether or not they forward again
    /// since: the server may keep a session for each of them after its
    /// client gave up, until the connection is thawed (and the client's
    /// close gets through) or reset.
    pub fn connections_caught_by_freeze(&self) -> usize {
        self.registry.caught_by_freeze()
    }

    /// Stops accepting, closes every connection (normally, with FIN) and
    /// returns once every relay has ended and the proxy's thread is gone.
    /// `Drop` does the same.
    ///
    /// # Panics
    ///
    /// If the proxy's thread panicked (a bug in the proxy).
    pub fn shutdown(mut self) {
        if let Err(panic) = self.stop() {
            std::panic::resume_unwind(panic);
        }
    }

    fn stop(&mut self) -> std::thread::Result<()> {
        let Some(thread) = self.thread.take() else { return Ok(()) };
        self.registry.modify(|f| f.shutdown = true);
        thread.join()
    }

    fn login(&self) -> Login<'_> {
        Login { port: self.port, user: &self.user, password: self.password.as_deref() }
    }
}

/// Accepts connections and relays each in a task of its own until the
/// shutdown; then waits for every relay to end.
async fn serve(listener: StdListener, upstream: SocketAddr, registry: Arc<Registry>) {
    let mut faults = registry.subscribe();
    let Ok(listener) = TcpListener::from_std(listener) else { return };
    let mut relays = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    let ticket = registry.admit();
                    relays.spawn(relay::relay(client, upstream, registry.subscribe(), ticket));
                }
                Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
            },
            Some(_) = relays.join_next(), if !relays.is_empty() => {}
            _ = faults.wait_for(|f| f.shutdown) => break,
        }
    }
    drop(listener);
    // Each relay sees the shutdown too and closes its sockets.
    while relays.join_next().await.is_some() {}
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("host", &HOST)
            .field("port", &self.port)
            .field("upstream", &self.upstream)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("live_connections", &self.live_connections())
            .finish_non_exhaustive()
    }
}

//! Tests of the fault proxy, byte by byte over plain TCP (the upstream is
//! a listener in the test, so each side of a connection can be watched),
//! and with a real server where the driver's view matters: connections
//! are relayed as they are; a freeze passes nothing on, not even a close,
//! until it is lifted; a reset reaches both sides as RST; a delay holds
//! every chunk; a refused upstream connect reaches the client as a reset;
//! the counts follow the connections; shutdown closes everything first.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use pool_postgres_test_server::{FaultProxy, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

/// Longer than anything here takes on a loaded machine: only a hang breaks it.
const HANG: Duration = Duration::from_secs(10);

/// A plain TCP endpoint behind the proxy, and the proxy.
struct Fixture {
    upstream: TcpListener,
    proxy: FaultProxy,
}

impl Fixture {
    async fn new() -> Self {
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind the upstream");
        let proxy = FaultProxy::start(upstream.local_addr().unwrap()).expect("start the proxy");
        Self { upstream, proxy }
    }

    /// A connection through the proxy: the client's end and the upstream's end.
    async fn connect(&self) -> (TcpStream, TcpStream) {
        let client =
            TcpStream::connect(("127.0.0.1", self.proxy.port())).await.expect("connect to the proxy");
        let (server, _) = timeout(HANG, self.upstream.accept()).await.expect("the proxy connects").unwrap();
        (client, server)
    }
}

/// Writes `bytes` to `from` and reads them back from `to`.
async fn carries(from: &mut TcpStream, to: &mut TcpStream, bytes: &[u8]) {
    from.write_all(bytes).await.expect("write");
    let mut got = vec![0; bytes.len()];
    timeout(HANG, to.read_exact(&mut got)).await.expect("the bytes arrive").expect("read");
    assert_eq!(got, bytes);
}

/// Proof that the proxy's thread has relayed everything sent before this
/// call: a round trip on a fresh connection (the proxy handles its
/// connections in the order their bytes come in, on one thread).
async fn barrier(fixture: &Fixture) {
    let (mut client, mut server) = fixture.connect().await;
    carries(&mut client, &mut server, b"barrier").await;
}

/// Reads from `socket` and expects nothing to be there yet.
fn nothing_arrived(socket: &TcpStream) {
    let mut buf = [0; 64];
    match socket.try_read(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("something crossed a frozen connection: {other:?}"),
    }
}

/// What a read on a reset socket returns.
async fn read_error(socket: &mut TcpStream) -> ErrorKind {
    let mut buf = [0; 64];
    match timeout(HANG, socket.read(&mut buf)).await.expect("the read ends") {
        Ok(n) => panic!("read {n} bytes (0 is a FIN) instead of seeing a reset"),
        Err(e) => e.kind(),
    }
}

#[tokio::test]
async fn relays_both_ways_and_passes_a_close_on() {
    let fixture = Fixture::new().await;
    let (mut client, mut server) = fixture.connect().await;
    carries(&mut client, &mut server, b"hello upstream").await;
    carries(&mut server, &mut client, &vec![7; 100_000]).await;
    assert_eq!(fixture.proxy.live_connections(), 1);

    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    timeout(HANG, server.read_to_end(&mut rest)).await.expect("the FIN is passed on").unwrap();
    assert!(rest.is_empty());
    // Half closed: the other direction still works.
    carries(&mut server, &mut client, b"still open this way").await;
    drop(server);
    let mut rest = Vec::new();
    timeout(HANG, client.read_to_end(&mut rest)).await.expect("the second FIN is passed on").unwrap();
    fixture.proxy.shutdown();
}

#[tokio::test]
async fn a_freeze_passes_nothing_on_until_back_to_normal_and_spares_new_connections() {
    let fixture = Fixture::new().await;
    let (mut client, mut server) = fixture.connect().await;
    carries(&mut client, &mut server, b"before").await;
    fixture.proxy.freeze();
    assert_eq!(fixture.proxy.connections_caught_by_freeze(), 1);

    // Bytes and then a close, in both directions: none of it crosses.
    client.write_all(b"during").await.unwrap();
    client.shutdown().await.unwrap();
    server.write_all(b"answer").await.unwrap();
    assert_eq!(fixture.proxy.live_connections(), 1, "the frozen connection stays open");
    barrier(&fixture).await;
    nothing_arrived(&server);
    nothing_arrived(&client);

    // A connection made after the freeze works.
    let (mut fresh_client, mut fresh_server) = fixture.connect().await;
    carries(&mut fresh_client, &mut fresh_server, b"new ones work").await;
    assert_eq!(fixture.proxy.connections_caught_by_freeze(), 1, "a new connection is not caught");

    // Thawed: what was held arrives, then the close.
    fixture.proxy.back_to_normal();
    let mut got = Vec::new();
    timeout(HANG, server.read_to_end(&mut got)).await.expect("the held bytes and the FIN arrive").unwrap();
    assert_eq!(got, b"during");
    let mut answer = [0; 6];
    timeout(HANG, client.read_exact(&mut answer)).await.expect("the held answer arrives").unwrap();
    assert_eq!(&answer, b"answer");
    fixture.proxy.shutdown();
}

#[tokio::test]
async fn a_reset_reaches_both_sides_as_rst_and_spares_later_connections() {
    let fixture = Fixture::new().await;
    let (mut client, mut server) = fixture.connect().await;
    let (mut frozen_client, mut frozen_server) = fixture.connect().await;
    carries(&mut client, &mut server, b"before").await;
    carries(&mut frozen_client, &mut frozen_server, b"before").await;
    fixture.proxy.freeze();

    assert_eq!(fixture.proxy.reset(), 2, "both connections, the frozen one too");
    assert_eq!(fixture.proxy.live_connections(), 0, "reset returns once they are closed");
    assert_eq!(fixture.proxy.connections_caught_by_freeze(), 0);
    for socket in [&mut client, &mut server, &mut frozen_client, &mut frozen_server] {
        assert_eq!(read_error(socket).await, ErrorKind::ConnectionReset);
    }

    let (mut later_client, mut later_server) = fixture.connect().await;
    carries(&mut later_client, &mut later_server, b"after").await;
    fixture.proxy.shutdown();
}

#[tokio::test]
async fn a_delay_holds_every_chunk_until_back_to_normal() {
    let fixture = Fixture::new().await;
    let (mut client, mut server) = fixture.connect().await;
    let delay = Duration::from_millis(150);
    fixture.proxy.delay(delay);

    let started = Instant::now();
    carries(&mut client, &mut server, b"ping").await;
    carries(&mut server, &mut client, b"pong").await;
    let round_trip = started.elapsed();
    assert!(round_trip >= delay * 2, "a round trip took {round_trip:?} under a {delay:?} delay per chunk");

    // Also on connections made during the delay.
    let (mut late_client, mut late_server) = fixture.connect().await;
    let started = Instant::now();
    carries(&mut late_client, &mut late_server, b"ping").await;
    assert!(started.elapsed() >= delay);

    fixture.proxy.back_to_normal();
    // No lower bound can show the delay is gone; it must at least still relay.
    carries(&mut client, &mut server, b"normal").await;
    fixture.proxy.shutdown();
}

#[tokio::test]
async fn a_refused_upstream_connect_reaches_the_client_as_a_reset() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let proxy = FaultProxy::start(closed_port).expect("start the proxy");
    let mut client = TcpStream::connect(("127.0.0.1", proxy.port())).await.unwrap();
    assert_eq!(read_error(&mut client).await, ErrorKind::ConnectionReset);
    proxy.shutdown();
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_fin_before_it_returns() {
    let fixture = Fixture::new().await;
    let (mut client, mut server) = fixture.connect().await;
    let (mut frozen_client, mut frozen_server) = fixture.connect().await;
    carries(&mut frozen_client, &mut frozen_server, b"before").await;
    fixture.proxy.freeze();
    let Fixture { upstream, proxy } = fixture;
    let port = proxy.port();
    proxy.shutdown();

    for socket in [&mut client, &mut server, &mut frozen_client, &mut frozen_server] {
        let mut rest = Vec::new();
        timeout(HANG, socket.read_to_end(&mut rest)).await.expect("closed").expect("a FIN, not a reset");
    }
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err(), "the proxy still accepts");
    drop(upstream);
}

#[tokio::test]
async fn a_frozen_postgres_session_stays_open_on_the_server() {
    let server = TestServer::start().expect("a server");
    let proxy = FaultProxy::in_front_of(&server).expect("start the proxy");
    assert_eq!(proxy.upstream(), SocketAddr::from(([127, 0, 0, 1], server.port())));
    let (client, connection) = tokio_postgres::connect(&proxy.url(), tokio_postgres::NoTls)
        .await
        .expect("connect through the proxy");
    let driver = tokio::spawn(connection);
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    proxy.freeze();
    // The client ends its session (Terminate, then its socket closes): it
    // reaches the proxy and stops there.
    drop(client);
    driver.abort();
    assert!(driver.await.expect_err("aborted").is_cancelled(), "the driver is gone with its socket");

    // A session made after the freeze works, and what it sees comes after
    // everything the proxy received before.
    let (monitor, connection) =
        tokio_postgres::connect(&proxy.url(), tokio_postgres::NoTls).await.expect("a new connection works");
    tokio::spawn(connection);
    let alive: i64 = monitor
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert_eq!(alive, 1, "the end of the frozen session got through to the server");
    assert_eq!(proxy.connections_caught_by_freeze(), 1);

    // A reset ends it on the server too (and the new session with it).
    let (monitor, connection) =
        tokio_postgres::connect(&server.connection_string(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    assert_eq!(proxy.reset(), 2);
    let started = Instant::now();
    loop {
        let alive: i64 = monitor
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&pid])
            .await
            .unwrap()
            .get(0);
        if alive == 0 {
            break;
        }
        assert!(started.elapsed() < HANG, "the server kept the reset session");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.shutdown();
}

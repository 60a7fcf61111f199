//! One relayed connection: the client's socket, a socket to the upstream
//! server, and two pumps between them, each obeying the [`Faults`].
//!
//! A pump reads a chunk, holds it for the delay, and writes it on; it
//! waits at each of these steps for either its I/O or a change of the
//! faults, so a fault takes effect at once wherever the pump is. While its
//! connection is frozen it neither reads nor writes (a chunk read before
//! the freeze is kept and written after a thaw, as TCP would retransmit
//! it), so nothing at all crosses and no end of stream is seen or passed
//! on. A reset, a shutdown or a broken socket ends the relay; the end of
//! stream on one side is passed on (a half close) and the relay ends once
//! both directions have ended.
//!
//! How the sockets close: a reset, and an error on either side, close both
//! with `SO_LINGER` 0, which makes the kernel send RST and no FIN (so a
//! peer's reset is passed on as a reset); everything else closes them
//! normally. A client whose upstream connect fails is reset too: the
//! closest a proxy comes to passing on "connection refused".

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::watch;

use super::faults::{Fate, Faults};
use super::registry::Ticket;

/// How much a pump reads at once.
const CHUNK: usize = 16 * 1024;

/// Why a pump (or the whole relay) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Its source closed (end of stream), which was passed on.
    Eof,
    /// A read or write failed: the connection is broken.
    Broken,
    /// A reset hit the connection.
    Reset,
    /// The proxy is shutting down.
    Shutdown,
}

/// Relays `client` to `upstream` until the connection ends; `ticket` keeps
/// the connection registered until then.
pub(crate) async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut faults: watch::Receiver<Faults>,
    ticket: Ticket,
) {
    let generation = ticket.generation;
    let connected = tokio::select! {
        connected = TcpStream::connect(upstream) => connected.map_err(|_| End::Broken),
        end = ending(&mut faults, generation) => Err(end),
    };
    let mut server = match connected {
        Ok(server) => server,
        Err(end) => {
            close(&client, end);
            return;
        }
    };
    // The proxy must not add Nagle delays the client and server did not ask for.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let end = forward(&mut client, &mut server, &faults, generation).await;
    close(&client, end);
    close(&server, end);
    drop((client, server));
    drop(ticket);
}

/// Arranges for `socket` to be reset when it is dropped, if `end` calls
/// for that.
fn close(socket: &TcpStream, end: End) {
    if matches!(end, End::Reset | End::Broken) {
        let _ = socket.set_zero_linger();
    }
}

/// Runs both directions until both have seen the end of stream, or until
/// either ends otherwise.
async fn forward(
    client: &mut TcpStream,
    server: &mut TcpStream,
    faults: &watch::Receiver<Faults>,
    generation: u64,
) -> End {
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    let up = pump(client_read, server_write, faults.clone(), generation);
    let down = pump(server_read, client_write, faults.clone(), generation);
    tokio::pin!(up, down);
    tokio::select! {
        end = &mut up => if end == End::Eof { down.await } else { end },
        end = &mut down => if end == End::Eof { up.await } else { end },
    }
}

/// Copies `from` to `to`, chunk by chunk, as the faults allow.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    mut faults: watch::Receiver<Faults>,
    generation: u64,
) -> End {
    let mut chunk = vec![0_u8; CHUNK];
    loop {
        let read = loop {
            if let Err(end) = flowing(&mut faults, generation).await {
                return end;
            }
            tokio::select! {
                // Cancel-safe: a read that loses the race has read nothing.
                read = from.read(&mut chunk) => break read,
                changed = faults.changed() => if changed.is_err() { return End::Shutdown },
            }
        };
        let len = match read {
            Ok(0) => {
                let _ = to.shutdown().await;
                return End::Eof;
            }
            Ok(len) => len,
            Err(_) => return End::Broken,
        };
        let delay = match flowing(&mut faults, generation).await {
            Ok(delay) => delay,
            Err(end) => return end,
        };
        if !delay.is_zero()
            && let Err(end) = hold(delay, &mut faults, generation).await
        {
            return end;
        }
        let mut written = 0;
        while written < len {
            if let Err(end) = flowing(&mut faults, generation).await {
                return end;
            }
            tokio::select! {
                // Cancel-safe: a write that loses the race has written nothing.
                wrote = to.write(&chunk[written..len]) => match wrote {
                    Ok(0) | Err(_) => return End::Broken,
                    Ok(n) => written += n,
                },
                changed = faults.changed() => if changed.is_err() { return End::Shutdown },
            }
        }
    }
}

/// Returns the delay in force once the connection may flow (at once unless
/// it is frozen), or how it ends instead.
async fn flowing(faults: &mut watch::Receiver<Faults>, generation: u64) -> Result<Duration, End> {
    loop {
        let fate = faults.borrow_and_update().fate(generation);
        match fate {
            Fate::Flow { delay } => return Ok(delay),
            Fate::Frozen => {}
            Fate::Reset => return Err(End::Reset),
            Fate::Shutdown => return Err(End::Shutdown),
        }
        if faults.changed().await.is_err() {
            return Err(End::Shutdown);
        }
    }
}

/// Waits `delay`, unless the connection ends meanwhile.
async fn hold(delay: Duration, faults: &mut watch::Receiver<Faults>, generation: u64) -> Result<(), End> {
    tokio::select! {
        () = tokio::time::sleep(delay) => Ok(()),
        end = ending(faults, generation) => Err(end),
    }
}

/// Resolves when the connection must end (reset or shutdown).
async fn ending(faults: &mut watch::Receiver<Faults>, generation: u64) -> End {
    loop {
        let fate = faults.borrow_and_update().fate(generation);
        match fate {
            Fate::Reset => return End::Reset,
            Fate::Shutdown => return End::Shutdown,
            Fate::Flow { .. } | Fate::Frozen => {}
        }
        if faults.changed().await.is_err() {
            return End::Shutdown;
        }
    }
}

//! Picking free TCP ports on 127.0.0.1.
//!
//! The kernel hands out a free port for a listener bound to port 0; the
//! listener is closed again before `postgres` binds the port, so another
//! process may grab it in between (the caller then retries with a new
//! port). Ports of this process's live servers are remembered so two
//! servers never get the same one.

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, PoisonError};

static IN_USE: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A currently free port, reserved in this process until [`release`].
pub(crate) fn reserve() -> io::Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        if IN_USE.lock().unwrap_or_else(PoisonError::into_inner).insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "the kernel kept handing out ports that are already in use by this process's servers",
    ))
}

/// Forgets a reservation (0 is ignored).
pub(crate) fn release(port: u16) {
    if port != 0 {
        IN_USE.lock().unwrap_or_else(PoisonError::into_inner).remove(&port);
    }
}

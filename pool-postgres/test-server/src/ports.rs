//! Picking free TCP ports on 127.0.0.1.
//!
//! The kernel hands out a free port for a listener bound to port 0; the
//! listener is closed again before `postgres` or `pgbouncer` binds the
//! port, so another process may grab it in between (then
//! [`launch_on_free_port`] retries with a new port). Ports of this
//! process's live servers and PgBouncers are remembered so two of them
//! never get the same one; a replica holds its primary's port too (see
//! [`hold`]).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, PoisonError};

use crate::error::{Phase, TestServerError};

/// The reserved ports and how many owners each has.
static IN_USE: Mutex<BTreeMap<u16, u32>> = Mutex::new(BTreeMap::new());

/// A currently free port, reserved in this process until [`release`].
pub(crate) fn reserve() -> io::Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let mut in_use = IN_USE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Entry::Vacant(entry) = in_use.entry(port) {
            entry.insert(1);
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "the kernel kept handing out ports that are already in use by this process's servers",
    ))
}

/// Adds an owner to a reserved port, so it stays reserved until every
/// owner has called [`release`] (0 is ignored).
pub(crate) fn hold(port: u16) {
    if port != 0 {
        *IN_USE.lock().unwrap_or_else(PoisonError::into_inner).entry(port).or_insert(0) += 1;
    }
}

/// Drops one owner of a reservation, and the reservation with its last
/// owner (0 is ignored).
pub(crate) fn release(port: u16) {
    if port == 0 {
        return;
    }
    let mut in_use = IN_USE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(owners) = in_use.get_mut(&port) {
        *owners -= 1;
        if *owners == 0 {
            in_use.remove(&port);
        }
    }
}

/// Why a launch on a port failed, and whether the port was the reason.
pub(crate) struct LaunchFailure {
    pub(crate) error: TestServerError,
    /// Another process had bound the port first.
    pub(crate) port_taken: bool,
}

/// Calls `launch` with a newly reserved port until it succeeds, fails for
/// another reason than a taken port, or `attempts` ports were taken.
///
/// `launch` records the port in its owner, whose drop releases it. A
/// taken port is released here, so on such a failure `launch` must reset
/// its owner's port to 0 (else the owner's drop could release the same
/// number after another server of this process has reserved it).
pub(crate) fn launch_on_free_port(
    attempts: u32,
    phase: Phase,
    mut launch: impl FnMut(u16) -> Result<(), LaunchFailure>,
) -> Result<(), TestServerError> {
    let mut attempt = 1;
    loop {
        let port = reserve().map_err(|e| TestServerError::io(phase, "could not find a free TCP port", e))?;
        match launch(port) {
            Ok(()) => return Ok(()),
            Err(failure) if failure.port_taken => {
                release(port);
                if attempt >= attempts {
                    return Err(failure.error);
                }
                attempt += 1;
            }
            Err(failure) => return Err(failure.error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(port: u16) -> Option<u32> {
        IN_USE.lock().unwrap_or_else(PoisonError::into_inner).get(&port).copied()
    }

    #[test]
    fn a_held_port_stays_reserved_until_its_last_owner_releases_it() {
        let port = reserve().unwrap();
        assert_eq!(owners(port), Some(1));
        hold(port);
        assert_eq!(owners(port), Some(2));
        release(port);
        assert_eq!(owners(port), Some(1));
        release(port);
        assert_eq!(owners(port), None);
        release(port); // an extra release is harmless
        hold(0);
        release(0);
        assert_eq!(owners(0), None);
    }
}

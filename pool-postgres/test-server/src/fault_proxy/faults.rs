//! [`Faults`]: the proxy's fault settings as every relay sees them, and the
//! [`Fate`] they give one connection.
//!
//! The settings travel in a `watch` channel: the proxy changes them, every
//! relay waits on the channel and re-reads them whenever they change, so a
//! fault reaches a connection wherever it is waiting (for the upstream
//! connect, for bytes to read, for a write, in a delay).
//!
//! Faults that hit only the connections established at the time (`freeze`,
//! `reset`) are expressed with generations, not with a list of
//! connections: each connection remembers the generation it was accepted
//! in, and such a fault starts a new generation and applies to every older
//! one. New connections are therefore never touched by a fault that came
//! before them.

use std::time::Duration;

/// What the proxy currently does to the connections it relays.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    /// The generation new connections are accepted in; `freeze` and
    /// `reset` start a new one.
    pub(crate) generation: u64,
    /// Connections of a generation below this are frozen (0: none is).
    pub(crate) frozen_below: u64,
    /// Connections of a generation below this are reset (only ever grows:
    /// a reset connection is gone).
    pub(crate) reset_below: u64,
    /// Added before each chunk is passed on, in both directions, on every
    /// connection.
    pub(crate) delay: Duration,
    /// The proxy is shutting down: every connection closes (normally).
    pub(crate) shutdown: bool,
}

/// What the faults mean for one connection right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Forward, waiting `delay` before passing each chunk on.
    Flow { delay: Duration },
    /// Forward nothing, read nothing, close nothing: wait for a change.
    Frozen,
    /// Close both sockets with a reset (`SO_LINGER` 0, so RST, no FIN).
    Reset,
    /// Close both sockets normally (FIN): the proxy is shutting down.
    Shutdown,
}

impl Faults {
    /// The fate of a connection accepted in `generation`. A shutdown wins
    /// over a reset, a reset over a freeze.
    pub(crate) fn fate(&self, generation: u64) -> Fate {
        if self.shutdown {
            Fate::Shutdown
        } else if generation < self.reset_below {
            Fate::Reset
        } else if generation < self.frozen_below {
            Fate::Frozen
        } else {
            Fate::Flow { delay: self.delay }
        }
    }

    /// Starts a new generation: the connections accepted so far are below
    /// the returned line, later ones are not.
    pub(crate) fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freeze_or_reset_hits_only_older_connections() {
        let mut faults = Faults::default();
        let old = faults.generation;
        faults.frozen_below = faults.next_generation();
        let new = faults.generation;
        assert_eq!(faults.fate(old), Fate::Frozen);
        assert_eq!(faults.fate(new), Fate::Flow { delay: Duration::ZERO });

        faults.reset_below = faults.next_generation();
        assert_eq!(faults.fate(old), Fate::Reset, "a reset wins over a freeze");
        assert_eq!(faults.fate(new), Fate::Reset);
        assert_eq!(faults.fate(faults.generation), Fate::Flow { delay: Duration::ZERO });

        faults.shutdown = true;
        assert_eq!(faults.fate(faults.generation), Fate::Shutdown, "a shutdown wins over everything");
    }

    #[test]
    fn a_delay_applies_to_every_flowing_connection() {
        let faults = Faults { delay: Duration::from_millis(5), ..Faults::default() };
        assert_eq!(faults.fate(0), Fate::Flow { delay: Duration::from_millis(5) });
    }
}

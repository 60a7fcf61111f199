//! A process this crate started and its watchdog, and the two ways they
//! end that a server and a PgBouncer share: a stop on request, which
//! reports a shutdown that had to be escalated, and the teardown in `Drop`.
//!
//! Invariant: while `child` holds a process that has not been reaped, the
//! watchdog knows its pid; once it has been reaped here, the watchdog is
//! told at once (`unwatch`), so it never signals a pid that may have been
//! recycled. The owner's directory is removed only after the process has
//! been reaped; if either fails, the watchdog is left armed, and dropping
//! it makes it finish the job.

use std::io;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use crate::dirs;
use crate::error::{Phase, TestServerError};
use crate::process::Shutdown;
use crate::watchdog::Watchdog;

/// A process and its watchdog; both absent until started.
#[derive(Debug, Default)]
pub(crate) struct Supervised {
    pub(crate) child: Option<Child>,
    pub(crate) watchdog: Option<Watchdog>,
}

/// What a failed [`Supervised::stop`] says: the phase, who did not stop,
/// the first signal and its grace, and which log to quote.
pub(crate) struct StopReport<'a> {
    pub(crate) phase: Phase,
    /// `the server`, `pgbouncer`.
    pub(crate) who: &'a str,
    pub(crate) first_signal: &'a str,
    pub(crate) grace: Duration,
    /// `server log`, `pgbouncer log`.
    pub(crate) log_label: &'a str,
    pub(crate) log_path: &'a Path,
}

impl Supervised {
    /// The process id while the process runs.
    pub(crate) fn running_pid(&mut self) -> Option<u32> {
        let child = self.child.as_mut()?;
        matches!(child.try_wait(), Ok(None)).then(|| child.id())
    }

    /// Forgets a process that has exited by itself (and been reaped by
    /// `try_wait`).
    pub(crate) fn forget_exited(&mut self) {
        if self.child.take().is_some()
            && let Some(watchdog) = &mut self.watchdog
        {
            watchdog.unwatch();
        }
    }

    /// Stops the process with `shut_down` (a ladder of signals from the
    /// `process` module) and waits until it has exited. Stopping a stopped
    /// process does nothing.
    ///
    /// A shutdown that needed a later signal than the first is an error in
    /// `report.phase`, with the end of the log; so is a failure to signal,
    /// in which case the process is kept.
    pub(crate) fn stop(
        &mut self,
        shut_down: impl FnOnce(&mut Child) -> io::Result<Shutdown>,
        report: &StopReport<'_>,
    ) -> Result<(), TestServerError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let outcome = match shut_down(&mut child) {
            Ok(outcome) => outcome,
            Err(e) => {
                let pid = child.id();
                self.child = Some(child);
                let what = format!("could not signal {} (pid {pid})", report.who);
                return Err(TestServerError::io(report.phase, what, e));
            }
        };
        if let Some(watchdog) = &mut self.watchdog {
            watchdog.unwatch();
        }
        let Shutdown::Escalated(how) = outcome else {
            return Ok(());
        };
        let log = dirs::read_end(report.log_path).unwrap_or_default();
        Err(TestServerError::new(
            report.phase,
            format!(
                "{} did not exit within {:?} after SIG{}; it was stopped with SIG{how}",
                report.who, report.grace, report.first_signal
            ),
        )
        .with_output(format!("{} {}", report.log_label, report.log_path.display()), &log))
    }

    /// For `Drop`: stops the process with `shut_down`, removes `root`, and
    /// disarms the watchdog if both worked; otherwise the watchdog, which
    /// is dropped here, stops whatever still runs and removes `root`.
    pub(crate) fn tear_down(
        &mut self,
        shut_down: impl FnOnce(&mut Child) -> io::Result<Shutdown>,
        root: &Path,
    ) {
        let stopped = match self.child.take() {
            None => true,
            Some(mut child) => shut_down(&mut child).is_ok(),
        };
        let removed = stopped && dirs::remove_tree(root).is_ok();
        if let Some(mut watchdog) = self.watchdog.take() {
            if stopped {
                watchdog.unwatch();
            }
            if removed {
                watchdog.disarm();
            }
        }
    }
}

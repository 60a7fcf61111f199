//! A progress line on stderr while a strategy runs, redrawn in place, when
//! stderr is a terminal (never in tests or pipes, so the output stays clean).

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::abort_on_drop::AbortOnDrop;
use crate::strategies::Strategy;

/// Counts shared by the tasks of one strategy, for the progress line.
#[derive(Default)]
pub(crate) struct Progress {
    pub(crate) ok: AtomicU64,
    pub(crate) failed: AtomicU64,
}

/// The task redrawing the progress line, if stderr is a terminal.
pub(crate) struct Reporter {
    task: Option<AbortOnDrop>,
}

impl Reporter {
    /// Stops redrawing and clears the line.
    pub(crate) fn finish(self) {
        if self.task.is_some() {
            drop(self.task);
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}

/// Starts redrawing `strategy`'s progress line from `progress`.
pub(crate) fn show(
    strategy: Strategy,
    tasks: u32,
    duration: Option<Duration>,
    progress: Arc<Progress>,
) -> Reporter {
    const SPINNER: [char; 4] = ['|', '/', '-', '\\'];
    if !std::io::stderr().is_terminal() {
        return Reporter { task: None };
    }
    let started = Instant::now();
    let task = tokio::spawn(async move {
        let mut tick = 0usize;
        loop {
            let ok = progress.ok.load(Ordering::Relaxed);
            let failed = progress.failed.load(Ordering::Relaxed);
            let done = match duration {
                Some(d) => format!("{:.1}/{:.0} s", started.elapsed().as_secs_f64(), d.as_secs_f64()),
                None => format!("{}/{tasks} tasks", ok + failed),
            };
            eprint!(
                "\r\x1b[2K{} {:<20} {done}, {ok} ok, {failed} failed",
                SPINNER[tick % 4],
                strategy.name()
            );
            let _ = std::io::stderr().flush();
            tick += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Reporter { task: Some(AbortOnDrop(task.abort_handle())) }
}

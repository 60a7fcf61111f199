//! Telling a statement the server is still running from one whose answer
//! can never arrive.
//!
//! A network path can die without a sound (a NAT entry or firewall state
//! dropped, a proxy or VM frozen): no FIN, no RST, and the kernel's own
//! timers take many minutes, if they notice at all. A statement sent on such
//! a connection waits for ever, and from the client alone it looks exactly
//! like a long query. The server knows the difference, so the pool asks it.
//!
//! # Algorithm
//!
//! Each connection learns its server process id when it is opened. A round
//! trip not answered within `liveness_check_after` gets a *probe*: a
//! connection of its own (the side channel, closed right after; probes of
//! one pool take turns, so they hold at most one server slot) reads the
//! session's row in `pg_stat_activity`.
//!
//! - `active` and waiting on anything but the client: the server is running
//!   the statement. The next probe comes after twice the wait, up to
//!   [`MAX_WAIT`], so a long query costs a probe now and then, never its
//!   result.
//! - not `active` (`idle`, `idle in transaction`), or no such session: the
//!   server has finished the statement, or never received it, and its
//!   answer is not arriving. Seen twice, [`GRACE`] apart (an answer may be
//!   on its way), the path is dead: the statement fails and the connection
//!   is closed.
//! - `active` but blocked reading from or writing to the client: the
//!   statement is stuck on the socket. Seen on two probes in a row, the
//!   path is dead too.
//! - anything the probe cannot tell (it could not connect, the server does
//!   not track activity): no verdict; the statement waits on.
//!
//! The round trip is raced against every probe, so an answer that arrives
//! meanwhile is taken at once. Behind a transaction pooler the session a
//! statement runs in is the pooler's to choose, so there the check is off
//! and only `socket_timeout` bounds a statement.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use crate::side_channel::{SIDE_BOUND, SideChannel};

/// The longest wait between two probes of one statement.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// How long after a probe that found the statement not running the next
/// one looks again.
const GRACE: Duration = Duration::from_secs(1);

/// A pool's liveness check; see the module docs.
#[derive(Debug)]
pub(crate) struct Liveness {
    /// `liveness_check_after`: the first probe's wait.
    after: Duration,
    /// The pool's connection config, under an application name of its own.
    probe_config: tokio_postgres::Config,
    side_channel: SideChannel,
    /// One probe at a time per pool.
    turn: tokio::sync::Mutex<()>,
}

/// What a probe saw of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Running,
    OnTheSocket,
    NotRunning,
    Unknown,
}

impl Liveness {
    pub(crate) fn new(after: Duration, config: &tokio_postgres::Config, side_channel: SideChannel) -> Self {
        let mut probe_config = config.clone();
        let name = format!("{} liveness probe", config.get_application_name().unwrap_or("pool"));
        probe_config.application_name(&name);
        probe_config.connect_timeout(SIDE_BOUND);
        Self { after, probe_config, side_channel, turn: tokio::sync::Mutex::new(()) }
    }

    /// Awaits `round_trip` on the session with server process id `pid`.
    /// `Err` with the time waited when the path to the server is dead.
    pub(crate) async fn watch<F: Future>(
        &self,
        pid: i32,
        mut round_trip: Pin<&mut F>,
    ) -> Result<F::Output, Duration> {
        let started = Instant::now();
        let mut wait = self.after;
        let mut last = Seen::Unknown;
        loop {
            if let Ok(out) = tokio::time::timeout(wait, round_trip.as_mut()).await {
                return Ok(out);
            }
            let seen = tokio::select! {
                biased;
                out = round_trip.as_mut() => return Ok(out),
                // Boxed: connecting makes a large future, and it would sit
                // inline in the future of every statement.
                seen = Box::pin(self.look(pid)) => seen,
            };
            if seen == last && matches!(seen, Seen::NotRunning | Seen::OnTheSocket) {
                tracing::warn!(
                    pid,
                    waited = ?started.elapsed(),
                    "a statement's connection is dead: the server is not running it and its answer is not arriving"
                );
                return Err(started.elapsed());
            }
            wait = match seen {
                Seen::NotRunning => GRACE,
                Seen::Running | Seen::OnTheSocket | Seen::Unknown => (wait * 2).min(MAX_WAIT),
            };
            last = seen;
        }
    }

    /// One probe of session `pid`.
    async fn look(&self, pid: i32) -> Seen {
        let _turn = self.turn.lock().await;
        let probe = async {
            let client = self.side_channel.connect(&self.probe_config).await?;
            // A number, not text from anywhere: safe to put in the query.
            let sql = format!("SELECT state, wait_event FROM pg_stat_activity WHERE pid = {pid}");
            client.simple_query(&sql).await
        };
        let Ok(Ok(messages)) = tokio::time::timeout(SIDE_BOUND, probe).await else { return Seen::Unknown };
        let row = messages.iter().find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some((row.get(0), row.get(1))),
            _ => None,
        });
        match row {
            None => Seen::NotRunning,
            Some((Some("active"), Some("ClientRead" | "ClientWrite"))) => Seen::OnTheSocket,
            Some((Some("active"), _)) => Seen::Running,
            Some((Some(state), _)) if state.starts_with("idle") => Seen::NotRunning,
            // "disabled" (track_activities off), NULL, anything new.
            Some(_) => Seen::Unknown,
        }
    }
}

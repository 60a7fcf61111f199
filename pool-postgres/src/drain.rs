//! Stopping abandoned work on the server and getting its connection back
//! in step before anyone else uses it.
//!
//! Two paths end here:
//!
//! - **A statement runs out of `socket_timeout`** ([`cancel_in_place`]):
//!   the server is asked to cancel it (a cancel request on a connection of
//!   its own, tokio-postgres's `CancelToken`), and its answer is awaited a
//!   while longer, [`SIDE_BOUND`](crate::side_channel::SIDE_BOUND) in all. An answer — the server's
//!   `57014 canceling statement`, or the result, if it finished first —
//!   means the session is in step again and the connection is kept;
//!   no answer means the path to the server is dead, and it is closed.
//! - **A connection comes back with a [backlog](crate::backlog)** (requests
//!   whose futures were dropped): before anyone may have it again, the pool
//!   settles it on a task of its own (`Manager::settle`; before reuse if no
//!   runtime runs one), so neither the borrower that left nor the next one
//!   waits. [`drain`] sends a sync probe behind the backlog; if the probe is
//!   not answered within [`PATIENCE`], the abandoned work is still running
//!   and a cancel request stops it. The drain is bounded by
//!   `recycle_timeout`; one that does not finish closes the connection. A
//!   connection closed with a backlog gets a cancel request too
//!   ([`cancel_backlog`]): the server would otherwise run the statement to
//!   its end, the session with it.
//!
//! # Why the sync asks whether a transaction block is open
//!
//! The abandoned work may have left the session inside a block (a dropped
//! `BEGIN`), and the cancel may have landed on the `ROLLBACK` queued for
//! it. The sync's query, `SELECT now() = statement_timestamp()`, is true
//! outside a block (each statement is its own transaction, so both read
//! the same start) and false inside one; in a failed block it fails with
//! `25P02`. Only then is a `ROLLBACK` sent, so a drained connection gets at
//! most one, and the server never warns "there is no transaction in
//! progress". A cancel that arrives late fails the sync itself with
//! `57014`; the sync is then sent once more. A cancel that arrives while
//! the session is idle is ignored by the server.

use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::SqlState;

use crate::connection::PgConnection;

/// How long a drain waits for the backlog to end by itself before it asks
/// the server to cancel it: most abandoned statements are short, and a
/// cancel request costs the server a process.
const PATIENCE: Duration = Duration::from_millis(50);

/// True outside a transaction block, false inside one; see the module docs.
const IN_BLOCK_PROBE: &str = "SELECT now() = statement_timestamp()";

/// The counter of statements the pool cancelled on the server, labelled
/// `pool`, `reason` (`dropped`: the caller's future was dropped;
/// `socket_timeout`) and `outcome` (`kept`: the session was back in step
/// within the bound; `closed`: it was not, and the connection was closed).
pub const CANCEL_METRIC: &str = "pool_statement_cancels_total";

/// Why the pool cancelled a statement; the metric's `reason`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reason {
    Dropped,
    SocketTimeout,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Self::Dropped => "dropped",
            Self::SocketTimeout => "socket_timeout",
        }
    }
}

/// Counts one cancelled statement once its outcome is known: `closed`
/// unless [`Outcome::kept`] is called first (a drain cut short by its
/// deadline ends here too).
struct Outcome<'a> {
    conn: &'a PgConnection,
    reason: Reason,
    kept: bool,
}

impl Outcome<'_> {
    fn kept(mut self) {
        self.kept = true;
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        let outcome = if self.kept { "kept" } else { "closed" };
        metrics::counter!(
            CANCEL_METRIC,
            "pool" => self.conn.policy.pool_name.clone(),
            "reason" => self.reason.label(),
            "outcome" => outcome,
        )
        .increment(1);
    }
}

/// A statement ran out of `socket_timeout`: cancels it on the server and
/// waits for its answer, [`crate::side_channel::SIDE_BOUND`] in all. `Some` with the answer
/// if it came (the session is in step again); `None` if not (the caller
/// marks the connection broken).
pub(crate) async fn cancel_in_place<T>(
    conn: &PgConnection,
    mut round_trip: Pin<&mut impl Future<Output = T>>,
) -> Option<T> {
    let outcome = Outcome { conn, reason: Reason::SocketTimeout, kept: false };
    let until = tokio::time::Instant::now() + crate::side_channel::SIDE_BOUND;
    let token = conn.client.cancel_token();
    let cancelled = tokio::time::timeout_at(until, conn.policy.side_channel.cancel(token));
    // The statement may finish while the cancel is on its way.
    let answer = tokio::select! {
        biased;
        answer = round_trip.as_mut() => Some(answer),
        _ = cancelled => tokio::time::timeout_at(until, round_trip).await.ok(),
    };
    if answer.is_some() {
        outcome.kept();
    }
    answer
}

/// The connection is being closed with a backlog: sends a cancel request
/// for it now, from a task of its own (counted in
/// the pool's side tasks, which `close_and_wait` waits for), unless one is
/// on its way already. Without a Tokio runtime to run it on, [`drain`]
/// sends it instead.
pub(crate) fn cancel_backlog(conn: &PgConnection) {
    if conn.backlog.has_cancel() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let side_channel = conn.policy.side_channel.clone();
    let token = conn.client.cancel_token();
    conn.backlog.set_cancel(conn.policy.side_tasks.spawn(&runtime, async move {
        side_channel.cancel(token).await;
    }));
}

/// A connection with a backlog, on the pool's own task when it comes back
/// (`Manager::settle`), or else before reuse: sends the sync probe behind
/// the backlog, and if it is not answered within [`PATIENCE`] (the
/// abandoned work is still running), a cancel request; then waits for the
/// probe and ends any transaction block left open (see the module docs).
/// An error means the connection must not be reused.
pub(crate) async fn drain(conn: &PgConnection) -> Result<(), tokio_postgres::Error> {
    // A cancel sent when the connection was closed with a backlog, or by
    // an earlier drain cut short: wait for it, so it cannot land later.
    if let Some(cancel) = conn.backlog.take_cancel() {
        drop(cancel.await);
    }
    let mut outcome = None;
    let mut late_cancel_seen = false;
    loop {
        let mut probe = pin!(conn.client.simple_query(IN_BLOCK_PROBE));
        let answer = match tokio::time::timeout(PATIENCE, probe.as_mut()).await {
            Ok(answer) => answer,
            Err(_) if outcome.is_none() => {
                outcome = Some(Outcome { conn, reason: Reason::Dropped, kept: false });
                conn.policy.side_channel.cancel(conn.client.cancel_token()).await;
                probe.await
            }
            Err(_) => probe.await,
        };
        let in_block = match answer {
            Ok(messages) => !outside_block(&messages),
            Err(error) if error.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => true,
            // The cancel landed on the probe itself: the backlog is over.
            Err(error) if error.code() == Some(&SqlState::QUERY_CANCELED) && !late_cancel_seen => {
                late_cancel_seen = true;
                continue;
            }
            Err(error) => return Err(error),
        };
        if in_block {
            conn.client.batch_execute("ROLLBACK").await?;
        }
        conn.backlog.cleared();
        if let Some(outcome) = outcome {
            outcome.kept();
        }
        return Ok(());
    }
}

/// Whether the probe's one value says the session is outside a block.
fn outside_block(messages: &[SimpleQueryMessage]) -> bool {
    messages.iter().any(|message| match message {
        SimpleQueryMessage::Row(row) => row.get(0) == Some("t"),
        _ => false,
    })
}

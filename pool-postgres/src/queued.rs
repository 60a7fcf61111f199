//! Sending a statement without waiting for its answer, so a session can be
//! reset the moment a transaction guard is dropped or a connection comes
//! back, in a `Drop` or another place that cannot await.
//!
//! tokio-postgres sends a simple-protocol query when its future is first
//! polled: `simple_query_raw` encodes the query and hands it to the
//! connection's task before its first await, then returns the response
//! stream. Polling it once and dropping the stream therefore puts the
//! statement on the socket, in order with everything sent before and after
//! it, and the task discards the answer. Whether that still holds is pinned
//! by a test (`tests/hygiene.rs`); if a future release awaits before
//! sending, [`queue`] returns `false` and the caller gives the connection up
//! instead of reusing it unreset.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Puts `sql` on the connection's socket without waiting for its answer.
/// Returns whether it was sent; `false` means the session could not be reset
/// and must not be reused.
pub(crate) fn queue(client: &tokio_postgres::Client, sql: &str) -> bool {
    let send = pin!(client.simple_query_raw(sql));
    let mut cx = Context::from_waker(Waker::noop());
    matches!(send.poll(&mut cx), Poll::Ready(Ok(_)))
}

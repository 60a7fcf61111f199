//! [`RowStream`]: the rows of a `query_raw`, streamed, with the statement
//! tracked in the connection's [backlog](crate::backlog) until its last row.
//!
//! The stream borrows the guard it came from, so the connection cannot go
//! back to the pool (and to another borrower) while its rows are still
//! arriving. Dropped before its end, the rest of the statement counts as
//! abandoned: the server is asked to cancel it and the connection is
//! drained before reuse.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio_postgres::Row;

use crate::backlog::Sent;
use crate::error::Error;
use crate::session::Session;

/// Rows of a statement, as they arrive; from `query_raw` and `query_typed_raw`.
pub struct RowStream<'a> {
    rows: Pin<Box<tokio_postgres::RowStream>>,
    session: Session<'a>,
    /// Until the last row (or an error) has been read.
    unfinished: Option<Sent<'a>>,
}

impl<'a> RowStream<'a> {
    pub(crate) fn new(session: Session<'a>, rows: tokio_postgres::RowStream) -> Self {
        let unfinished = Some(session.conn().backlog.track());
        Self { rows: Box::pin(rows), session, unfinished }
    }

    /// The number of rows the statement changed, once the stream has ended.
    pub fn rows_affected(&self) -> Option<u64> {
        self.rows.rows_affected()
    }

    fn finished(&mut self) {
        if let Some(sent) = self.unfinished.take() {
            sent.answered();
        }
    }
}

impl Stream for RowStream<'_> {
    type Item = Result<Row, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.rows.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(row))) => Poll::Ready(Some(Ok(row))),
            Poll::Ready(Some(Err(error))) => {
                this.finished();
                Poll::Ready(Some(Err(this.session.book(error))))
            }
            Poll::Ready(None) => {
                this.finished();
                Poll::Ready(None)
            }
        }
    }
}

impl std::fmt::Debug for RowStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStream").field("finished", &self.unfinished.is_none()).finish_non_exhaustive()
    }
}

//! [`Query`] (what the query methods take) and the query methods
//! themselves, written once and expanded into both [`Client`](crate::Client)
//! and [`Transaction`](crate::Transaction), each of which supplies its
//! [`Session`](crate::session::Session).

use tokio_postgres::Statement;

/// Query text or a prepared statement: what the query methods take.
pub trait Query: sealed::Sealed + Sync {
    #[doc(hidden)]
    fn as_query(&self) -> QueryRef<'_>;
}

#[doc(hidden)]
pub enum QueryRef<'a> {
    Text(&'a str),
    Prepared(&'a Statement),
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for str {}
    impl Sealed for String {}
    impl Sealed for tokio_postgres::Statement {}
}

impl Query for str {
    fn as_query(&self) -> QueryRef<'_> {
        QueryRef::Text(self)
    }
}

impl Query for String {
    fn as_query(&self) -> QueryRef<'_> {
        QueryRef::Text(self)
    }
}

impl Query for Statement {
    fn as_query(&self) -> QueryRef<'_> {
        QueryRef::Prepared(self)
    }
}

/// The query methods of [`Client`](crate::Client) and
/// [`Transaction`](crate::Transaction); `$session` is the session of the
/// type they are expanded into.
macro_rules! query_methods {
    () => {
        /// The statement cached for `sql` on this connection, or a new one
        /// (prepared, then cached). With the cache off, prepares every time.
        ///
        /// # Errors
        ///
        /// The server's error if the statement does not parse.
        ///
        /// # Cancel safety
        ///
        /// Cancel-safe: a statement prepared by a dropped call is simply not cached.
        pub async fn prepare_cached(&self, sql: &str) -> Result<tokio_postgres::Statement, crate::Error> {
            self.session().prepare_cached(sql).await
        }

        /// Prepares a statement without caching it.
        ///
        /// # Errors
        ///
        /// The server's error if the statement does not parse.
        ///
        /// # Cancel safety
        ///
        /// Cancel-safe.
        pub async fn prepare(&self, sql: &str) -> Result<tokio_postgres::Statement, crate::Error> {
            let session = self.session();
            session.prepare(sql, std::pin::pin!(session.client().prepare(sql))).await
        }

        /// Prepares a statement with the parameter types given (uncached).
        ///
        /// # Errors
        ///
        /// As [`prepare`](Self::prepare).
        ///
        /// # Cancel safety
        ///
        /// Cancel-safe.
        pub async fn prepare_typed(
            &self,
            sql: &str,
            types: &[tokio_postgres::types::Type],
        ) -> Result<tokio_postgres::Statement, crate::Error> {
            let session = self.session();
            session.prepare(sql, std::pin::pin!(session.client().prepare_typed(sql, types))).await
        }

        /// Runs a query and returns all its rows. SQL text goes through the
        /// connection's statement cache.
        ///
        /// # Errors
        ///
        /// The server's error, or [`ErrorKind::Timeout`](crate::ErrorKind::Timeout)
        /// after `socket_timeout`.
        ///
        /// # Cancel safety
        ///
        /// Cancel-safe: the server may still run the query; its answer is discarded.
        pub async fn query(
            &self,
            query: &(impl crate::Query + ?Sized),
            params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        ) -> Result<Vec<tokio_postgres::Row>, crate::Error> {
            self.session().query(query, params).await
        }

        /// Runs a query that returns exactly one row.
        ///
        /// # Errors
        ///
        /// As [`query`](Self::query), and an error when the query returns no row or more than one.
        ///
        /// # Cancel safety
        ///
        /// As [`query`](Self::query).
        pub async fn query_one(
            &self,
            query: &(impl crate::Query + ?Sized),
            params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        ) -> Result<tokio_postgres::Row, crate::Error> {
            self.session().query_one(query, params).await
        }

        /// Runs a query that returns at most one row.
        ///
        /// # Errors
        ///
        /// As [`query`](Self::query), and an error when the query returns more than one row.
        ///
        /// # Cancel safety
        ///
        /// As [`query`](Self::query).
        pub async fn query_opt(
            &self,
            query: &(impl crate::Query + ?Sized),
            params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        ) -> Result<Option<tokio_postgres::Row>, crate::Error> {
            self.session().query_opt(query, params).await
        }

        /// Runs a statement and returns how many rows it changed.
        ///
        /// # Errors
        ///
        /// As [`query`](Self::query).
        ///
        /// # Cancel safety
        ///
        /// As [`query`](Self::query).
        pub async fn execute(
            &self,
            query: &(impl crate::Query + ?Sized),
            params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        ) -> Result<u64, crate::Error> {
            self.session().execute(query, params).await
        }

        /// Runs a query and streams its rows; parameters as an iterator.
        /// A stale cached statement is dropped from the cache but not retried
        /// (the iterator is spent).
        ///
        /// # Errors
        ///
        /// As [`query`](Self::query).
        ///
        /// # Cancel safety
        ///
        /// As [`query`](Self::query).
        pub async fn query_raw<P, I>(
            &self,
            query: &(impl crate::Query + ?Sized),
            params: I,
        ) -> Result<crate::RowStream<'_>, crate::Error>
        where
            P: tokio_postgres::types::BorrowToSql,
            I: IntoIterator<Item = P>,
            I::IntoIter: ExactSizeIterator,
        {
            let session = self.session();
            if let Some(sql) = session.unnamed(query)? {
                let params: Vec<P> = params.into_iter().collect();
                let refs: Vec<&dyn tokio_postgres::types::ToSql> =
                    params.iter().map(tokio_postgres::types::BorrowToSql::borrow_to_sql).collect();
                let typed = crate::param_types::typed_borrowed(&refs)?;
                let rows =
                    session.bounded(std::pin::pin!(session.client().query_typed_raw(sql, typed))).await?;
                return Ok(session.stream(rows));
            }
            let (statement, cached) = session.statement(query).await?;
            let out = session.bounded(std::pin::pin!(session.client().query_raw(&statement, params))).await;
            session.forget_if_stale(&out, cached);
            out.map(|rows| session.stream(rows))
        }

        /// Runs a statement with parameters as an iterator; returns how many rows it changed.
        ///
        /// # Errors
        ///
        /// As [`query_raw`](Self::query_raw).
        ///
        /// # Cancel safety
        ///
        /// As [`query`](Self::query).
        pub async fn execute_raw<P, I>(
            &self,
            query: &(impl crate::Query + ?Sized),
            params: I,
        ) -> Result<u64, crate::Error>
        where
            P: tokio_postgres::types::BorrowToSql,
            I: IntoIterator<Item = P>,
            I::IntoIter: ExactSizeIterator,
        {
            let session = self.session();
            if let Some(sql) = session.unnamed(query)? {
                let params: Vec<P> = params.into_iter().collect();
                let refs: Vec<&dyn tokio_postgres::types::ToSql> =
                    params.iter().map(tokio_postgres::types::BorrowToSql::borrow_to_sql).collect();
                let typed = crate::param_types::typed_borrowed(&refs)?;
                let rows =
                    session.bounded(std::pin::pin!(session.client().query_typed_raw(sql, typed))).await?;
                return session.bounded(std::pin::pin!(crate::param_types::rows_affected(rows))).await;
            }
            let (statement, cached) = session.statement(query).await?;
            let out = session.bounded(std::pin::pin!(session.client().execute_raw(&statement, params))).await;
            session.forget_if_stale(&out, cached);
            out
        }

        /// Runs SQL text with parameters of the types given, as an unnamed
        /// statement in one round trip (nothing is prepared or cached).
        ///
        /// # Errors
        ///
        /// As [`query`](Self::query).
        ///
        /// # Cancel safety
        ///
        /// As [`query`](Self::query).
        pub async fn query_typed(
            &self,
            sql: &str,
            params: &[(&(dyn tokio_postgres::types::ToSql + Sync), tokio_postgres::types::Type)],
        ) -> Result<Vec<tokio_postgres::Row>, crate::Error> {
            self.session().query_typed(sql, params).await
        }

        /// As [`query_typed`](Self::query_typed), for exactly one row.
        ///
        /// # Errors
        ///
        /// As [`query_typed`](Self::query_typed), and an error when there is no row or more than one.
        ///
        /// # Cancel safety
        ///
        /// As [`query`](Self::query).
        pub async fn query_typed_one(
            &self,
            sql: &str,
            params: &[(&(dyn tokio_postgres::types::ToSql + Sync), tokio_postgres::types::Type)],
        ) -> Result<tokio_postgres::Row, crate::Error> {
            self.session().query_typed_one(sql, params).await
        }

        /// As [`query_typed`](Self::query_typed), for at most one row.
        ///
        /// # Errors
        ///
        /// As [`query_typed`](Self::query_typed), and an error when there is more than one row.
        ///
        /// # Cancel safety
        ///
        /// As [`query`](Self::query).
        pub async fn query_typed_opt(
            &self,
            sql: &str,
            params: &[(&(dyn tokio_postgres::types::ToSql + Sync), tokio_postgres::types::Type)],
        ) -> Result<Option<tokio_postgres::Row>, crate::Error> {
            self.session().query_typed_opt(sql, params).await
        }

        /// As [`query_typed`](Self::query_typed), returning how many rows it changed.
        ///
        /// # Errors
        ///
        /// As [`query_typed`](Self::query_typed).
        ///
        /// # Cancel safety
        ///
        /// As [`query`](Self::query).
        pub async fn execute_typed(
            &self,
            sql: &str,
            params: &[(&(dyn tokio_postgres::types::ToSql + Sync), tokio_postgres::types::Type)],
        ) -> Result<u64, crate::Error> {
            self.session().execute_typed(sql, params).await
        }

        /// As [`query_typed`](Self::query_typed), streaming the rows; parameters as an iterator.
        ///
        /// # Errors
        ///
        /// As [`query_typed`](Self::query_typed).
        ///
        /// # Cancel safety
        ///
        /// As [`query`](Self::query).
        pub async fn query_typed_raw<P, I>(
            &self,
            sql: &str,
            params: I,
        ) -> Result<crate::RowStream<'_>, crate::Error>
        where
            P: tokio_postgres::types::BorrowToSql,
            I: IntoIterator<Item = (P, tokio_postgres::types::Type)>,
        {
            let session = self.session();
            let rows = session
                .unprepared(sql, std::pin::pin!(session.client().query_typed_raw(sql, params)))
                .await?;
            Ok(session.stream(rows))
        }

        /// Runs one or more statements with the simple protocol, returning nothing.
        ///
        /// # Errors
        ///
        /// The server's error for the first statement that fails.
        ///
        /// # Cancel safety
        ///
        /// Cancel-safe; if the text may open a transaction, the connection is
        /// reset before reuse either way.
        pub async fn batch_execute(&self, sql: &str) -> Result<(), crate::Error> {
            let session = self.session();
            session.unprepared(sql, std::pin::pin!(session.client().batch_execute(sql))).await
        }

        /// Runs one or more statements with the simple protocol, returning text rows.
        ///
        /// # Errors
        ///
        /// As [`batch_execute`](Self::batch_execute).
        ///
        /// # Cancel safety
        ///
        /// As [`batch_execute`](Self::batch_execute).
        pub async fn simple_query(
            &self,
            sql: &str,
        ) -> Result<Vec<tokio_postgres::SimpleQueryMessage>, crate::Error> {
            let session = self.session();
            session.unprepared(sql, std::pin::pin!(session.client().simple_query(sql))).await
        }

        /// Starts `COPY ... FROM STDIN`; write the data to the sink and
        /// `finish` it.
        ///
        /// # Errors
        ///
        /// As [`query`](Self::query).
        ///
        /// # Cancel safety
        ///
        /// As [`query`](Self::query).
        pub async fn copy_in<U>(
            &self,
            query: &(impl crate::Query + ?Sized),
        ) -> Result<tokio_postgres::CopyInSink<U>, crate::Error>
        where
            U: bytes::Buf + 'static + Send,
        {
            let session = self.session();
            session.needs_named("copy_in")?;
            let (statement, _) = session.statement(query).await?;
            let sink = session.bounded(std::pin::pin!(session.client().copy_in(&statement))).await?;
            session.conn().backlog.assume_unfinished();
            Ok(sink)
        }

        /// Starts `COPY ... TO STDOUT` and streams the data.
        ///
        /// # Errors
        ///
        /// As [`query`](Self::query).
        ///
        /// # Cancel safety
        ///
        /// As [`query`](Self::query).
        pub async fn copy_out(
            &self,
            query: &(impl crate::Query + ?Sized),
        ) -> Result<tokio_postgres::CopyOutStream, crate::Error> {
            let session = self.session();
            session.needs_named("copy_out")?;
            let (statement, _) = session.statement(query).await?;
            let stream = session.bounded(std::pin::pin!(session.client().copy_out(&statement))).await?;
            session.conn().backlog.assume_unfinished();
            Ok(stream)
        }

        /// A token that asks the server to cancel what this connection is running.
        pub fn cancel_token(&self) -> tokio_postgres::CancelToken {
            self.session().client().cancel_token()
        }

        /// Forgets every statement cached on this connection (they are closed
        /// on the server). For after `DEALLOCATE ALL` or `DISCARD ALL` sent
        /// some other way; the pool also recovers by itself, statement by
        /// statement, when the server says one is missing.
        pub fn clear_statement_cache(&self) {
            self.session().conn().cache().clear();
        }

        /// The statement cache's size and hit counts for this connection.
        pub fn statement_cache_stats(&self) -> crate::CacheStats {
            self.session().conn().cache().stats()
        }
    };
}

pub(crate) use query_methods;

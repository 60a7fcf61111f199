//! The statements every front end offers, written once on [`Session`]: the
//! client guard and a transaction expand them through
//! [`query_methods!`](crate::query), and shared mode
//! ([`crate::pipelined`]) calls them on the connection it picked.

use std::pin::pin;

use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use crate::error::Error;
use crate::param_types;
use crate::query::Query;
use crate::session::Session;

/// Parameters as the query methods take them.
pub(crate) type Params<'p> = &'p [&'p (dyn ToSql + Sync)];
/// Parameters with their types, as the `_typed` methods take them.
pub(crate) type TypedParams<'p> = &'p [(&'p (dyn ToSql + Sync), Type)];

impl Session<'_> {
    /// All rows of `query`; see `Client::query`.
    pub(crate) async fn query(
        &self,
        query: &(impl Query + ?Sized),
        params: Params<'_>,
    ) -> Result<Vec<Row>, Error> {
        if let Some(sql) = self.unnamed(query)? {
            let typed = param_types::typed(params)?;
            return self.bounded(pin!(self.client().query_typed(sql, &typed))).await;
        }
        self.run(query, |client, s| async move { client.query(&s, params).await }).await
    }

    /// Exactly one row of `query`.
    pub(crate) async fn query_one(
        &self,
        query: &(impl Query + ?Sized),
        params: Params<'_>,
    ) -> Result<Row, Error> {
        if let Some(sql) = self.unnamed(query)? {
            let typed = param_types::typed(params)?;
            return self.bounded(pin!(self.client().query_typed_one(sql, &typed))).await;
        }
        self.run(query, |client, s| async move { client.query_one(&s, params).await }).await
    }

    /// At most one row of `query`.
    pub(crate) async fn query_opt(
        &self,
        query: &(impl Query + ?Sized),
        params: Params<'_>,
    ) -> Result<Option<Row>, Error> {
        if let Some(sql) = self.unnamed(query)? {
            let typed = param_types::typed(params)?;
            return self.bounded(pin!(self.client().query_typed_opt(sql, &typed))).await;
        }
        self.run(query, |client, s| async move { client.query_opt(&s, params).await }).await
    }

    /// How many rows `query` changed.
    pub(crate) async fn execute(
        &self,
        query: &(impl Query + ?Sized),
        params: Params<'_>,
    ) -> Result<u64, Error> {
        if let Some(sql) = self.unnamed(query)? {
            let typed = param_types::typed(params)?;
            return self.bounded(pin!(self.client().execute_typed(sql, &typed))).await;
        }
        self.run(query, |client, s| async move { client.execute(&s, params).await }).await
    }

    /// All rows of an unnamed statement with declared parameter types.
    pub(crate) async fn query_typed(&self, sql: &str, params: TypedParams<'_>) -> Result<Vec<Row>, Error> {
        self.unprepared(sql, pin!(self.client().query_typed(sql, params))).await
    }

    /// Exactly one row of an unnamed statement.
    pub(crate) async fn query_typed_one(&self, sql: &str, params: TypedParams<'_>) -> Result<Row, Error> {
        self.unprepared(sql, pin!(self.client().query_typed_one(sql, params))).await
    }

    /// At most one row of an unnamed statement.
    pub(crate) async fn query_typed_opt(
        &self,
        sql: &str,
        params: TypedParams<'_>,
    ) -> Result<Option<Row>, Error> {
        self.unprepared(sql, pin!(self.client().query_typed_opt(sql, params))).await
    }

    /// How many rows an unnamed statement changed.
    pub(crate) async fn execute_typed(&self, sql: &str, params: TypedParams<'_>) -> Result<u64, Error> {
        self.unprepared(sql, pin!(self.client().execute_typed(sql, params))).await
    }
}

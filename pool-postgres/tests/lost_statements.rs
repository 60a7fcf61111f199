//! Cached statements the server no longer has (after `DEALLOCATE ALL`, or
//! behind a transaction pooler nobody told the pool about): dropped from the
//! cache, re-prepared where that is safe, and reported with the likely
//! cause where it is not.

mod common;

#[tokio::test]
async fn after_deallocate_all_cached_queries_recover_by_themselves() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1");
    let client = pool.get().await.unwrap();
    assert_eq!(client.query_one("SELECT $1::int4 * 2", &[&2_i32]).await.unwrap().get::<_, i32>(0), 4);
    client.batch_execute("DEALLOCATE ALL").await.unwrap();
    for i in 0..3_i32 {
        assert_eq!(client.query_one("SELECT $1::int4 * 2", &[&i]).await.unwrap().get::<_, i32>(0), i * 2);
    }
    assert_eq!(client.statement_cache_stats().len, 1);
}

#[tokio::test]
async fn a_lost_statement_inside_a_transaction_names_the_pooler_setting() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1");
    let mut client = pool.get().await.unwrap();
    client.query_one("SELECT 1", &[]).await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("DEALLOCATE ALL").await.unwrap();
    let error = tx.query_one("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(error.code(), Some(&tokio_postgres::error::SqlState::INVALID_SQL_STATEMENT_NAME), "{error}");
    assert!(error.to_string().contains("pgbouncer=true"), "{error}");
    assert!(tx.commit().await.is_err(), "the failure aborted the transaction");
    assert_eq!(client.statement_cache_stats().len, 0, "the lost statement left the cache");
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
}

#[tokio::test]
async fn clear_statement_cache_forgets_every_statement() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1");
    let client = pool.get().await.unwrap();
    client.query_one("SELECT 1", &[]).await.unwrap();
    client.query_one("SELECT 2", &[]).await.unwrap();
    client.clear_statement_cache();
    assert_eq!(client.statement_cache_stats().len, 0);
    let left: i64 =
        client.query_typed_one("SELECT count(*) FROM pg_prepared_statements", &[]).await.unwrap().get(0);
    assert_eq!(left, 0, "the statements were closed on the server");
}

/// The ways the server forgets every prepared statement of a session.
const FORGET_ALL: [&str; 2] = ["DEALLOCATE ALL", "DISCARD ALL"];

/// Runs `sql` (one `int4` parameter, one row back) through the named method
/// of the client guard or a transaction, with the value it returns.
macro_rules! call {
    ($on:expr, $method:expr, $sql:expr, $n:expr) => {{
        let n: i32 = $n;
        match $method {
            "query" => $on.query($sql, &[&n]).await.map(|rows| rows[0].get::<_, i32>(0)),
            "query_one" => $on.query_one($sql, &[&n]).await.map(|row| row.get::<_, i32>(0)),
            "query_opt" => $on.query_opt($sql, &[&n]).await.map(|row| row.unwrap().get::<_, i32>(0)),
            "execute" => $on.execute($sql, &[&n]).await.map(|rows| i32::try_from(rows).unwrap()),
            other => unreachable!("{other}"),
        }
    }};
}

const METHODS: [&str; 4] = ["query", "query_one", "query_opt", "execute"];

/// Issue #14 (4): after `DEALLOCATE ALL` or `DISCARD ALL`, every cached
/// call with the same text must recover on the same connection (26000: the
/// entry is stale, prepared again and the call retried once).
#[tokio::test]
async fn every_cached_call_recovers_after_the_server_forgets_its_statements() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1");
    let client = pool.get().await.unwrap();
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    for forget in FORGET_ALL {
        for method in METHODS {
            let sql = "SELECT $1::int4 + 1";
            let expected = if method == "execute" { 1 } else { 8 };
            assert_eq!(call!(client, method, sql, 7).unwrap(), expected, "{method}, warming the cache");
            client.batch_execute(forget).await.unwrap();
            let after = call!(client, method, sql, 7);
            assert_eq!(after.unwrap_or_else(|e| panic!("{method} after {forget}: {e}")), expected);
            assert_eq!(call!(client, method, sql, 7).unwrap(), expected, "{method}, again after {forget}");
        }
    }
    let same: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_eq!(same, pid, "recovered on the same connection");
}

/// Issue #14 (4), inside a transaction: the failure has aborted the block,
/// so it surfaces, but the stale entry leaves the cache and the next call
/// in autocommit works.
#[tokio::test]
async fn a_statement_lost_before_a_transaction_fails_in_it_and_works_after_it() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1");
    let mut client = pool.get().await.unwrap();
    for forget in FORGET_ALL {
        for method in ["query", "query_one", "execute"] {
            let sql = "SELECT $1::int4 * 3";
            let expected = if method == "execute" { 1 } else { 6 };
            assert_eq!(call!(client, method, sql, 2).unwrap(), expected, "{method}, warming the cache");
            client.batch_execute(forget).await.unwrap();
            let tx = client.transaction().await.unwrap();
            let error = call!(tx, method, sql, 2).expect_err("the server has no such statement");
            assert_eq!(
                error.code(),
                Some(&tokio_postgres::error::SqlState::INVALID_SQL_STATEMENT_NAME),
                "{method} after {forget}: {error}"
            );
            assert!(tx.commit().await.is_err(), "{method}: the failure aborted the transaction");
            assert_eq!(client.statement_cache_stats().len, 0, "{method}: the lost statement left the cache");
            assert_eq!(call!(client, method, sql, 2).unwrap(), expected, "{method} after the transaction");
        }
    }
}

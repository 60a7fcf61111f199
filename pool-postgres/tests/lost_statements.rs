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

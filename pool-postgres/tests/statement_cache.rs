//! The per-connection statement cache: hits, eviction, off, and statements
//! made stale by a schema change.

mod common;

async fn prepared_on_server(client: &pool_postgres::Client) -> i64 {
    // An unnamed statement, so counting adds nothing to the count.
    client.query_typed_one("SELECT count(*) FROM pg_prepared_statements", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn repeating_sql_text_prepares_once_and_then_hits_the_cache() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1");
    let client = pool.get().await.unwrap();
    for i in 0..3_i32 {
        let row = client.query_one("SELECT $1::int4 * 2", &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), i * 2);
    }
    let stats = client.statement_cache_stats();
    assert_eq!((stats.len, stats.hits, stats.misses), (1, 2, 1), "{stats:?}");
    // One statement prepared on the server (the monitoring query adds its own while it runs).
    assert_eq!(prepared_on_server(&client).await, 2);
    drop(client);
    // The cache belongs to the connection: the next borrower hits it too.
    let client = pool.get().await.unwrap();
    client.query_one("SELECT $1::int4 * 2", &[&5_i32]).await.unwrap();
    assert_eq!(client.statement_cache_stats().hits, 3);
}

#[tokio::test]
async fn the_least_recently_used_statement_is_evicted_and_closed_on_the_server() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1&statement_cache_size=2");
    let client = pool.get().await.unwrap();
    for sql in ["SELECT 1", "SELECT 2", "SELECT 1", "SELECT 3"] {
        client.query_one(sql, &[]).await.unwrap();
    }
    // "SELECT 2" was least recently used when "SELECT 3" came in.
    let stats = client.statement_cache_stats();
    assert_eq!((stats.len, stats.capacity, stats.hits, stats.misses), (2, 2, 1, 3), "{stats:?}");
    client.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(client.statement_cache_stats().hits, 2, "SELECT 1 stayed cached");
    client.query_one("SELECT 2", &[]).await.unwrap();
    assert_eq!(client.statement_cache_stats().misses, 4, "SELECT 2 had been evicted");
    // Evicted statements are closed on the server: only the 2 cached ones
    // (plus the counting query's own) remain.
    assert_eq!(prepared_on_server(&client).await, 3);
}

#[tokio::test]
async fn with_the_cache_off_queries_work_and_nothing_stays_prepared() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1&statement_cache_size=0");
    let client = pool.get().await.unwrap();
    for _ in 0..3 {
        assert_eq!(client.query_one("SELECT 7", &[]).await.unwrap().get::<_, i32>(0), 7);
        assert_eq!(client.execute("SELECT 1", &[]).await.unwrap(), 1);
    }
    let stats = client.statement_cache_stats();
    assert_eq!((stats.len, stats.capacity, stats.hits), (0, 0, 0), "{stats:?}");
    assert_eq!(prepared_on_server(&client).await, 1, "only the counting query's own statement");
}

#[tokio::test]
async fn a_schema_change_under_a_cached_statement_is_handled_transparently() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1");
    let client = pool.get().await.unwrap();
    client.batch_execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1)").await.unwrap();
    let before = client.query_one("SELECT * FROM t", &[]).await.unwrap();
    assert_eq!(before.len(), 1);
    client.batch_execute("ALTER TABLE t ADD COLUMN b text DEFAULT 'x'").await.unwrap();
    let after =
        client.query_one("SELECT * FROM t", &[]).await.expect("the stale statement is prepared again");
    assert_eq!(after.len(), 2);
    assert_eq!(after.get::<_, String>(1), "x");
}

#[tokio::test]
async fn a_prepared_statement_runs_as_is() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1");
    let client = pool.get().await.unwrap();
    let statement = client.prepare("SELECT $1::text").await.unwrap();
    let row = client.query_one(&statement, &[&"hi"]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "hi");
    assert_eq!(client.statement_cache_stats().len, 0, "explicitly prepared statements are not cached");
}

#[tokio::test]
async fn sql_text_inside_transactions_uses_the_cache_too() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1");
    pool.get()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 0)")
        .await
        .unwrap();
    for round in 1..=3_i32 {
        let mut client = pool.get().await.unwrap();
        let tx = client.transaction().await.unwrap();
        tx.execute("UPDATE kv SET v = v + 1 WHERE k = $1", &[&1_i32]).await.unwrap();
        let v: i32 = tx.query_one("SELECT v FROM kv WHERE k = $1", &[&1_i32]).await.unwrap().get(0);
        assert_eq!(v, round);
        tx.commit().await.unwrap();
        let stats = client.statement_cache_stats();
        assert_eq!((stats.len, stats.misses), (2, 2), "prepared once, in the first transaction: {stats:?}");
        assert_eq!(stats.hits, 2 * (round as u64 - 1));
    }
}

//! The transaction-pooler mode's own rules, checked against a real server
//! directly (what reaches the server is what a pooler would pass on):
//! statements go out unnamed, nothing named is ever prepared, session state
//! is refused before it is sent, settings a pooler cannot take are refused
//! at build. `through_pgbouncer.rs` runs the same code through a real
//! PgBouncer.

mod common;

use pool_postgres::{ErrorKind, PgPool};

async fn prepared_on_server(client: &pool_postgres::Client) -> i64 {
    client.query_typed_one("SELECT count(*) FROM pg_prepared_statements", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn ordinary_queries_work_and_nothing_named_is_prepared() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1&pgbouncer=true");
    let mut client = pool.get().await.unwrap();
    client.batch_execute("CREATE TABLE t (id int8 PRIMARY KEY, name text, at timestamptz)").await.unwrap();
    for i in 0..5_i64 {
        let name = format!("n{i}");
        assert_eq!(client.execute("INSERT INTO t VALUES ($1, $2, now())", &[&i, &name]).await.unwrap(), 1);
    }
    let one: i32 = client.query_one("SELECT $1::int4 + 1", &[&41_i32]).await.unwrap().get(0);
    assert_eq!(one, 42);
    // An int4 parameter against an int8 column, a text one against text.
    let row = client.query_opt("SELECT name FROM t WHERE id = $1", &[&3_i32]).await.unwrap();
    assert_eq!(row.map(|r| r.get::<_, String>(0)).as_deref(), Some("n3"));
    let none: Option<String> = None;
    assert!(client.query_opt("SELECT id FROM t WHERE name = $1", &[&none]).await.unwrap().is_none());
    let ids: Vec<i64> =
        client.query("SELECT id FROM t ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    {
        let tx = client.transaction().await.unwrap();
        tx.execute("UPDATE t SET name = $1 WHERE id = $2", &[&"renamed", &4_i64]).await.unwrap();
        let name: String = tx.query_one("SELECT name FROM t WHERE id = $1", &[&4_i64]).await.unwrap().get(0);
        assert_eq!(name, "renamed");
        tx.commit().await.unwrap();
    }
    let n = client
        .execute_raw("DELETE FROM t WHERE id > $1", [&2_i64 as &(dyn tokio_postgres::types::ToSql + Sync)])
        .await;
    assert_eq!(n.unwrap(), 2);
    assert_eq!(prepared_on_server(&client).await, 0, "no named statement was ever left on the server");
    assert_eq!(client.statement_cache_stats().len, 0);
    drop(client);
    let client = pool.get().await.unwrap();
    let names: Vec<String> =
        client.query("SELECT name FROM t ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["n0", "n1", "n2"], "every acknowledged write is there, the deleted ones are not");
}

#[tokio::test]
async fn what_needs_a_named_statement_is_refused_by_name() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1&pgbouncer=true");
    let client = pool.get().await.unwrap();
    for error in [
        client.prepare("SELECT 1").await.unwrap_err(),
        client.prepare_cached("SELECT 1").await.unwrap_err(),
        client.copy_out("COPY (SELECT 1) TO STDOUT").await.map(drop).unwrap_err(),
    ] {
        assert!(matches!(error.kind(), ErrorKind::NeedsNamedStatement { .. }), "{error}");
        let text = error.to_string();
        assert!(text.contains("pgbouncer=true") && text.contains("transaction-prepared"), "{text}");
    }
}

#[tokio::test]
async fn session_state_is_refused_before_it_is_sent() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1&pgbouncer=true");
    let client = pool.get().await.unwrap();
    for (sql, statement, instead) in [
        ("SET search_path = elsewhere", "SET", "SET LOCAL"),
        ("LISTEN jobs", "LISTEN", "direct connection"),
        ("SELECT pg_advisory_lock(7)", "advisory lock", "pg_advisory_xact_lock"),
        ("CREATE TEMP TABLE scratch (id int)", "CREATE TEMP TABLE", "ON COMMIT DROP"),
        ("PREPARE q AS SELECT 1", "PREPARE", "text each time"),
        ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "WITH HOLD", "without WITH HOLD"),
    ] {
        for error in
            [client.batch_execute(sql).await.unwrap_err(), client.execute(sql, &[]).await.unwrap_err()]
        {
            assert!(matches!(error.kind(), ErrorKind::SessionState { .. }), "{sql}: {error}");
            let text = error.to_string();
            assert!(text.contains(statement) && text.contains(instead), "{sql}: {text}");
        }
    }
    // Nothing of it reached the server.
    let path: String = client.query_one("SHOW search_path", &[]).await.unwrap().get(0);
    assert!(!path.contains("elsewhere"), "{path}");
    let locks: i64 = client
        .query_one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(locks, 0);
    // The transaction-scoped alternatives pass.
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL statement_timeout = '1s'").await.unwrap();
    tx.query_one("SELECT pg_advisory_xact_lock(7)", &[]).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_can_be_sent_with_a_warning_instead() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1&pgbouncer=true&pooler_session_state=warn");
    let client = pool.get().await.unwrap();
    let runtime = tokio::runtime::Handle::current();
    let warnings = tokio::task::block_in_place(|| {
        common::warnings_during(|| {
            runtime.block_on(client.batch_execute("SET search_path = public")).unwrap();
        })
    });
    assert!(warnings.iter().any(|w| w.contains("session state")), "{warnings:?}");
    let path: String = client.query_one("SHOW search_path", &[]).await.unwrap().get(0);
    assert_eq!(path, "public", "sent, as the setting asks");
}

#[test]
fn settings_a_transaction_pooler_cannot_take_are_refused_at_build() {
    for (params, setting, needle) in [
        ("pgbouncer=true&statement_timeout=5", "statement_timeout", "ALTER ROLE"),
        ("pgbouncer=true&options=-c%20work_mem%3D64MB", "options", "startup parameter"),
        ("pooler=transaction&recycling=clean", "recycling", "DISCARD ALL"),
        ("pooler=transaction-prepared&statement_timeout=5", "statement_timeout", "options"),
    ] {
        let error = PgPool::from_url(&format!("postgres://app:hunter2@localhost/app?{params}")).unwrap_err();
        let text = error.to_string();
        assert_eq!(error.parameter(), setting, "{text}");
        assert!(text.contains(needle) && !text.contains("hunter2"), "{text}");
    }
}

#[tokio::test]
async fn a_value_of_no_nameable_type_is_refused_with_the_way_out() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1&pgbouncer=true");
    let client = pool.get().await.unwrap();
    let map: std::collections::HashMap<String, Option<String>> = std::collections::HashMap::new();
    let error = client.query("SELECT $1::hstore", &[&map]).await.unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::UnknownParameterType { position: 1 }), "{error}");
    assert!(error.to_string().contains("query_typed"), "{error}");
}

#[tokio::test]
async fn behind_a_pooler_that_keeps_prepared_statements_the_cache_stays_on() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1&pooler=transaction-prepared");
    let client = pool.get().await.unwrap();
    for i in 0..3_i32 {
        assert_eq!(client.query_one("SELECT $1::int4", &[&i]).await.unwrap().get::<_, i32>(0), i);
    }
    assert_eq!(client.statement_cache_stats().hits, 2);
    client.prepare("SELECT 2").await.expect("named statements are allowed here");
    let error = client.batch_execute("LISTEN jobs").await.unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::SessionState { .. }),
        "session state is still guarded: {error}"
    );
}

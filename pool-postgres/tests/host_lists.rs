//! A pool over several hosts, written every way users write one: a URL
//! host list, the query-string host list, a libpq key=value string; what
//! each host is seen as; and a host that goes down. The servers here are
//! two independent primaries (the primary-and-standby cases are in
//! replicas.rs).

mod common;

use std::time::Duration;

use pool_postgres::{PgPool, Role, TargetSessionAttrs};
use pool_postgres_test_server::TestServer;

fn two_servers() -> (TestServer, TestServer) {
    (common::server(), common::server())
}

/// `host:port` of a server, as a host list entry and as [`pool_postgres::HostStatus::host`].
fn entry(server: &TestServer) -> String {
    format!("{}:{}", server.host(), server.port())
}

async fn port_behind(client: &pool_postgres::Client) -> u16 {
    let port: i32 = client.query_one("SELECT inet_server_port()", &[]).await.expect("server port").get(0);
    u16::try_from(port).expect("a port")
}

async fn roles_are_learned(pool: &PgPool, a: &TestServer, b: &TestServer) {
    // The first checkout waits for the first round of role checks.
    let client = pool.get().await.expect("a connection from one of the hosts");
    let port = port_behind(&client).await;
    assert!(port == a.port() || port == b.port(), "connected to port {port}");
    drop(client);
    let hosts = pool.hosts();
    assert_eq!(hosts.iter().map(|h| h.host.clone()).collect::<Vec<_>>(), [entry(a), entry(b)]);
    for host in &hosts {
        assert_eq!(host.role, Some(Role::Primary { read_only: false }), "{host:?}");
        assert!(!host.down, "{host:?}");
        assert!(host.pool_name.ends_with(&host.host), "{host:?}");
    }
    assert_eq!(hosts.iter().map(|h| h.status.max_size).sum::<usize>(), pool.status().max_size);
}

#[tokio::test]
async fn a_url_host_list_makes_one_pool_per_host_under_one_budget() {
    let (a, b) = two_servers();
    let url = format!("postgres://{}@{},{}/postgres?connection_limit=5", a.user(), entry(&a), entry(&b));
    let pool = PgPool::from_url(&url).expect("a host list");
    assert_eq!(pool.status().max_size, 5);
    roles_are_learned(&pool, &a, &b).await;
    let shares: Vec<usize> = pool.hosts().iter().map(|h| h.status.max_size).collect();
    assert_eq!(shares, [3, 2]);
    // try_get takes what is free and, with all five in use, refuses at once.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(pool.try_get().await.expect("a free slot on one of the hosts"));
    }
    let refused = pool.try_get().await.expect_err("all five in use");
    assert!(matches!(refused, pool_postgres::PoolError::Exhausted { .. }), "{refused}");
}

#[tokio::test]
async fn the_query_string_host_list_works() {
    let (a, b) = two_servers();
    let url = format!(
        "postgres:///postgres?host={},{}&port={},{}&user={}",
        a.host(),
        b.host(),
        a.port(),
        b.port(),
        a.user()
    );
    let pool = PgPool::from_url(&url).expect("a query-string host list");
    roles_are_learned(&pool, &a, &b).await;
}

#[tokio::test]
async fn a_libpq_key_value_string_works_with_pool_settings_in_it() {
    let (a, b) = two_servers();
    let text = format!(
        "host={},{} port={},{} user={} dbname=postgres connection_limit=4 pool_timeout=5",
        a.host(),
        b.host(),
        a.port(),
        b.port(),
        a.user()
    );
    let pool = PgPool::from_url(&text).expect("a key=value string");
    assert_eq!(pool.status().max_size, 4);
    roles_are_learned(&pool, &a, &b).await;
}

#[tokio::test]
async fn bad_host_lists_and_targets_are_refused_at_build_naming_the_value() {
    let refused = |url: &str| PgPool::from_url(url).expect_err(url).to_string();
    let error = refused("postgres://u@a:1,b:2/db?target_session_attrs=replica");
    assert!(error.contains("target_session_attrs") && error.contains("replica"), "{error}");
    let error = refused("postgres://u@a:1,b:2,c:3/db?connection_limit=2");
    assert!(error.contains("connection_limit") && error.contains("number of hosts (3)"), "{error}");
    let error = refused("postgres:///db?host=a,b,c&port=1,2");
    assert!(error.contains("port"), "{error}");
    let error = refused("host=a dbname");
    assert!(error.contains("without `=value`"), "{error}");
    let error = refused("postgres://u@a:1,b:2/db?load_balance_hosts=sometimes");
    assert!(error.contains("load_balance_hosts") && error.contains("sometimes"), "{error}");
}

#[tokio::test]
async fn every_libpq_target_is_accepted_in_urls() {
    for target in ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"] {
        let pool = PgPool::from_url(&format!("postgres://u@a:1,b:2/db?target_session_attrs={target}"))
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        assert!(format!("{pool:?}").contains("target"), "{target}");
    }
}

#[tokio::test]
async fn a_host_that_goes_down_is_skipped_and_its_share_goes_to_the_others() {
    let (a, b) = two_servers();
    let url = format!(
        "postgres://{}@{},{}/postgres?connection_limit=6&host_recheck_interval=1&load_balance_hosts=disable",
        a.user(),
        entry(&a),
        entry(&b)
    );
    let pool = PgPool::from_url(&url).expect("a host list");
    let client = pool.get().await.expect("a connection");
    assert_eq!(port_behind(&client).await, a.port(), "load_balance_hosts=disable takes the first");
    client.execute("CREATE TABLE marks (host int)", &[]).await.expect("create on a");
    drop(client);

    a.stop().expect("stop the first host");
    // Checkouts route to b once a check has found a down; until then one
    // may fail on a's dead connection (that failure triggers the check).
    let mut wrote_on_b = false;
    let mut failures = 0;
    for _ in 0..20 {
        let Ok(client) = pool.get().await else {
            failures += 1;
            continue;
        };
        let Ok(row) = client.query_one("SELECT inet_server_port()", &[]).await else {
            failures += 1;
            continue;
        };
        if i64::from(row.get::<_, i32>(0)) == i64::from(b.port()) {
            client.execute("CREATE TABLE IF NOT EXISTS marks (host int)", &[]).await.expect("create on b");
            client.execute("INSERT INTO marks VALUES (2)", &[]).await.expect("write on b");
            wrote_on_b = true;
            break;
        }
    }
    assert!(wrote_on_b, "never routed to the host that is up: {:?}", pool.hosts());
    assert!(
        failures <= 1,
        "{failures} checkouts failed after the host went down; the first should have told"
    );
    // The failed connect woke the check, which marks a down.
    common::wait_until(Duration::from_secs(5), "the stopped host is seen down", || async {
        pool.hosts()[0].down
    })
    .await;
    let hosts = pool.hosts();
    assert!(hosts[0].last_error.is_some(), "{hosts:?}");
    assert_eq!(hosts.iter().map(|h| h.status.max_size).collect::<Vec<_>>(), [1, 5], "{hosts:?}");
    let monitor = common::monitor(&b).await;
    let rows: Vec<i32> = monitor
        .query("SELECT host FROM marks", &[])
        .await
        .expect("read b")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, [2], "the acknowledged write is there once");

    a.start_again().expect("start the first host again");
    common::wait_until(Duration::from_secs(10), "the first host is up again", || async {
        !pool.hosts()[0].down
    })
    .await;
    assert_eq!(pool.hosts().iter().map(|h| h.status.max_size).collect::<Vec<_>>(), [3, 3]);
}

#[tokio::test]
async fn one_host_without_a_target_does_not_pretend_to_know_roles() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=2");
    let client = pool.read().await.expect("read() on one host is get()");
    assert_eq!(port_behind(&client).await, server.port());
    drop(client);
    let error = pool.get_for(TargetSessionAttrs::Standby).await.expect_err("roles are not checked");
    assert!(error.to_string().contains("target_session_attrs"), "{error}");
    assert_eq!(pool.hosts().len(), 1);
    assert_eq!(pool.hosts()[0].role, None);
}

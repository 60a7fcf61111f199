//! The pool behind a real PgBouncer 1.18 in transaction mode (pool_size 5),
//! in front of a real server: natural code from several processes loses no
//! write and reports no failure; what a transaction pooler cannot take is
//! refused when the pool is built; the 26000/42P05 failures of the default
//! path name the setting that avoids them.

mod common;

use std::time::Duration;

use common::{fleet, workload};
use pool_postgres::PgPool;
use pool_postgres_test_server::{TestPgBouncer, TestServer};

/// A throwaway server and a PgBouncer in transaction mode in front of it,
/// with the workload's tables made directly on the server.
fn server_and_bouncer() -> (TestServer, TestPgBouncer) {
    let server = common::server_with_max_connections(50);
    let bouncer = TestPgBouncer::builder(&server).default_pool_size(5).start().expect("start PgBouncer");
    (server, bouncer)
}

fn through(bouncer: &TestPgBouncer, params: &str) -> String {
    format!("{}?{params}", bouncer.url())
}

/// How long each instance runs; `POOL_FLEET_SECONDS` makes it longer.
fn run_for() -> Duration {
    let seconds = std::env::var("POOL_PGBOUNCER_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4.0);
    Duration::from_secs_f64(seconds)
}

#[test]
fn four_processes_of_64_tasks_through_pgbouncer_lose_no_write_and_fail_nothing() {
    let (server, bouncer) = server_and_bouncer();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let direct = common::pool(&server, "connection_limit=2");
    runtime.block_on(async { direct.get().await.unwrap().batch_execute(workload::SCHEMA).await.unwrap() });

    let url = through(&bouncer, "connection_limit=10&pool_timeout=5&pgbouncer=true&application_name=fleet");
    let outcomes = fleet::run("one_instance_through_pgbouncer", 4, &url, 64, run_for());
    fleet::assert_no_errors(&outcomes);
    for (instance, outcome) in &outcomes {
        assert!(outcome.ok > 0 && outcome.committed > 0, "instance {instance} did work: {outcome:?}");
    }
    runtime.block_on(async {
        let client = direct.get().await.unwrap();
        workload::check(&client, &outcomes).await;
    });
}

#[test]
#[ignore = "one instance of the fleet above; started by it as a child process"]
fn one_instance_through_pgbouncer() {
    let Some(orders) = fleet::orders() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime.block_on(async {
        let pool = PgPool::from_url(&orders.url).expect("a pooler-mode pool");
        let mut outcome = workload::run(&pool, orders.instance, orders.tasks, orders.duration).await;
        // Server insight and the start-up budget check work through the pooler too.
        let client = pool.get().await.expect("a connection for insight");
        match pool_postgres::insight::server_limits(&client).await {
            Ok(limits) if limits.max_connections == 50 => outcome.ok += 1,
            Ok(limits) => {
                outcome.errors.push(format!("server_limits read max_connections {}", limits.max_connections));
            }
            Err(e) => outcome.errors.push(format!("server_limits: {e}")),
        }
        drop(client);
        match pool.check_budget(4).await {
            Ok(budget) if budget.behind_pooler => outcome.ok += 1,
            Ok(budget) => outcome.errors.push(format!("check_budget did not notice the pooler: {budget}")),
            Err(e) => outcome.errors.push(format!("check_budget: {e}")),
        }
        pool.close_and_wait(Duration::from_secs(10)).await.expect("close");
        outcome
    });
    fleet::report(&orders, &outcome);
}

#[tokio::test]
async fn startup_parameters_fail_every_connect_through_pgbouncer_so_pooler_mode_refuses_them_at_build() {
    let (_server, bouncer) = server_and_bouncer();
    // What happens without the pooler setting: every connect is refused.
    let plain = PgPool::from_url(&through(&bouncer, "connection_limit=1&pool_timeout=2&statement_timeout=5"))
        .unwrap();
    let error = plain.get().await.unwrap_err();
    let text = pool_postgres::ErrorChain(&error).to_string();
    assert!(text.contains("unsupported startup parameter"), "{text}");
    // With it, the pool is never built.
    let refused = PgPool::from_url(&through(&bouncer, "pgbouncer=true&statement_timeout=5")).unwrap_err();
    assert_eq!(refused.parameter(), "statement_timeout", "{refused}");
    // And the way the error points to works.
    let pool = PgPool::from_url(&through(&bouncer, "connection_limit=1&pgbouncer=true")).unwrap();
    let client = pool.get().await.unwrap();
    let tx_timeout: String = {
        let mut client = client;
        let tx = client.transaction().await.unwrap();
        tx.batch_execute("SET LOCAL statement_timeout = '5s'").await.unwrap();
        tx.query_one("SHOW statement_timeout", &[]).await.unwrap().get(0)
    };
    assert_eq!(tx_timeout, "5s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_path_behind_pgbouncer_names_the_setting_it_needs() {
    let (_server, bouncer) = server_and_bouncer();
    // Named statements (s0, s1, ...) prepared through one server connection
    // and used through another: with tasks running side by side, PgBouncer
    // hands them different server connections, and the default path fails.
    let pool = PgPool::from_url(&through(&bouncer, "connection_limit=16&pool_timeout=5")).unwrap();
    let tasks: Vec<_> = (0..16_i64)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for round in 0..100_i64 {
                    let client = pool.get().await.unwrap();
                    let sql = format!("SELECT $1::int8 + {}", (task + round) % 8);
                    if let Err(error) = client.query_one(sql.as_str(), &[&round]).await {
                        return Some(error);
                    }
                }
                None
            })
        })
        .collect();
    let mut hinted = None;
    for task in tasks {
        if let Some(error) = task.await.unwrap() {
            hinted.get_or_insert(error);
        }
    }
    let error = hinted.expect("named statements through a transaction pooler collide");
    assert!(
        matches!(error.code().map(tokio_postgres::error::SqlState::code), Some("26000" | "42P05"))
            || error.to_string().contains("pgbouncer=true"),
        "{error}"
    );
    assert!(error.to_string().contains("pgbouncer=true"), "the error names the setting: {error}");
}

#[tokio::test]
async fn session_state_is_refused_through_pgbouncer_and_never_reaches_another_client() {
    let (_server, bouncer) = server_and_bouncer();
    let pool = PgPool::from_url(&through(&bouncer, "connection_limit=8&pgbouncer=true")).unwrap();
    let client = pool.get().await.unwrap();
    let error = client.batch_execute("SET search_path = elsewhere").await.unwrap_err();
    assert!(error.to_string().contains("SET LOCAL"), "{error}");
    drop(client);
    for _ in 0..20 {
        let client = pool.get().await.unwrap();
        let path: String = client.query_one("SHOW search_path", &[]).await.unwrap().get(0);
        assert!(!path.contains("elsewhere"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_mode_pipelines_unnamed_statements_through_pgbouncer_and_loses_no_write() {
    let (server, bouncer) = server_and_bouncer();
    let direct = common::pool(&server, "connection_limit=2");
    direct.get().await.unwrap().batch_execute("CREATE TABLE shared_t (id int PRIMARY KEY)").await.unwrap();
    let pool = PgPool::from_url(&through(&bouncer, "connection_limit=4&pgbouncer=true")).unwrap();
    let shared = pool.shared();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..64_i32 {
        let shared = shared.clone();
        tasks.spawn(async move {
            for i in 0..40_i32 {
                let id = task * 40 + i;
                let row = shared.query_one("SELECT $1::int4 * 2", &[&id]).await.unwrap();
                assert_eq!(row.get::<_, i32>(0), id * 2);
                assert_eq!(shared.execute("INSERT INTO shared_t VALUES ($1)", &[&id]).await.unwrap(), 1);
            }
        });
    }
    common::join_all(tasks).await;
    let row = direct
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*), count(DISTINCT id) FROM shared_t", &[])
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (2560, 2560));
}

//! Shared mode (`PgPool::shared`) against a real server: many tasks on a
//! few pipelined connections with every value checked, one prepare per
//! text, what it refuses, and failures that stay with their caller.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use pool_postgres::{ErrorKind, PgPool, Retryable};

/// A pool whose sessions the monitor can find by `app`.
fn shared_pool(server: &pool_postgres_test_server::TestServer, app: &str, params: &str) -> PgPool {
    common::pool(server, &format!("application_name={app}&{params}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_share_four_connections_and_every_value_is_right() {
    let server = common::server();
    let pool = shared_pool(&server, "shared_many", "connection_limit=10");
    let shared = pool.shared();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..64_i32 {
        let shared = shared.clone();
        tasks.spawn(async move {
            for i in 0..100_i32 {
                let n = task * 1000 + i;
                let row = shared.query_one("SELECT $1::int4 * 2", &[&n]).await.unwrap();
                assert_eq!(row.get::<_, i32>(0), n * 2);
                let row = shared
                    .query_typed_one(
                        "SELECT $1::text",
                        &[(&n.to_string(), tokio_postgres::types::Type::TEXT)],
                    )
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, String>(0), n.to_string());
            }
        });
    }
    common::join_all(tasks).await;
    let status = shared.status();
    assert!(status.connections <= 4 && status.connections >= 1, "{status:?}");
    assert_eq!((status.max_connections, status.max_in_flight_per_connection), (4, 32), "{status:?}");
    assert_eq!(status.in_flight, 0, "{status:?}");
    // The shared connections are the pool's: in use, within max_size.
    assert_eq!(pool.status().in_use, status.connections, "{:?}", pool.status());
    let monitor = common::monitor(&server).await;
    assert!(common::connections_of(&monitor, "shared_many").await <= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_is_there_exactly_once() {
    let server = common::server();
    let pool = shared_pool(&server, "shared_writes", "connection_limit=4");
    pool.get().await.unwrap().batch_execute("CREATE TABLE t (id int PRIMARY KEY, task int)").await.unwrap();
    let shared = pool.shared();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..64_i32 {
        let shared = shared.clone();
        tasks.spawn(async move {
            for i in 0..50_i32 {
                let id = task * 50 + i;
                assert_eq!(shared.execute("INSERT INTO t VALUES ($1, $2)", &[&id, &task]).await.unwrap(), 1);
            }
        });
    }
    common::join_all(tasks).await;
    let client = pool.get().await.unwrap();
    let row =
        client.query_one("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM t", &[]).await.unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, i32>(2), row.get::<_, i32>(3)),
        (3200, 3200, 0, 3199)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_racing_for_new_text_prepare_it_once() {
    let server = common::server();
    let pool = shared_pool(&server, "shared_prepare", "connection_limit=2&shared_connections=1");
    let shared = pool.shared();
    // The lane is open before the race, so all 64 find it.
    shared.query_typed_one("SELECT 1", &[]).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..64_i32 {
        let shared = shared.clone();
        tasks.spawn(async move {
            let row = shared.query_one("SELECT $1::int4 + 7", &[&task]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), task + 7);
        });
    }
    common::join_all(tasks).await;
    // Unnamed, so counting adds nothing; one lane, so this is its session.
    let prepared: i64 =
        shared.query_typed_one("SELECT count(*) FROM pg_prepared_statements", &[]).await.unwrap().get(0);
    assert_eq!(prepared, 1, "one PREPARE for 64 racing tasks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_preparer_does_not_strand_the_tasks_waiting_for_its_prepare() {
    let server = common::server();
    let pool = shared_pool(&server, "shared_cancelled_prepare", "connection_limit=2&shared_connections=1");
    let shared = pool.shared();
    // Everything pipelined behind this waits 300 ms, the first prepare too.
    let sleeper = {
        let shared = shared.clone();
        tokio::spawn(async move { shared.execute("SELECT pg_sleep(0.3)", &[]).await })
    };
    common::wait_until(common::SLACK, "the sleep is in flight", || async { shared.status().in_flight == 1 })
        .await;
    let preparer = {
        let shared = shared.clone();
        tokio::spawn(async move { shared.query_one("SELECT $1::int4 * 3", &[&1_i32]).await })
    };
    common::wait_until(common::SLACK, "the preparer is in flight", || async {
        shared.status().in_flight == 2
    })
    .await;
    let waiter = {
        let shared = shared.clone();
        tokio::spawn(async move { shared.query_one("SELECT $1::int4 * 3", &[&5_i32]).await })
    };
    common::wait_until(common::SLACK, "the waiter is in flight", || async { shared.status().in_flight == 3 })
        .await;
    preparer.abort();
    assert!(preparer.await.unwrap_err().is_cancelled());
    let row = tokio::time::timeout(common::SLACK, waiter)
        .await
        .expect("the waiter is not stranded")
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 15);
    sleeper.await.unwrap().unwrap();
    assert_eq!(shared.query_one("SELECT $1::int4 * 3", &[&7_i32]).await.unwrap().get::<_, i32>(0), 21);
}

#[tokio::test]
async fn what_would_leave_state_on_a_shared_connection_is_refused_before_it_is_sent() {
    let server = common::server();
    let pool = shared_pool(&server, "shared_refused", "connection_limit=2");
    let shared = pool.shared();
    let client = pool.get().await.unwrap();
    let prepared = client.prepare("SELECT 1").await.unwrap();
    for (sql, named) in [
        ("BEGIN", "BEGIN"),
        ("start transaction", "START"),
        ("SET search_path = x", "SET"),
        ("LISTEN ch", "LISTEN"),
        ("DECLARE c CURSOR FOR SELECT 1", "DECLARE"),
        ("LOCK TABLE pg_class", "LOCK"),
        ("COPY pg_class TO STDOUT", "COPY"),
        ("SELECT set_config('a.b', 'c', false)", "set_config"),
    ] {
        let error = shared.execute(sql, &[]).await.unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::NeedsExclusive { .. }), "{sql}: {error:?}");
        let text = error.to_string();
        assert!(text.contains(named) && text.contains("PgPool::get()"), "{sql}: {text}");
    }
    let error = shared.query_one(&prepared, &[]).await.unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::NeedsExclusive { operation: "a prepared Statement" }),
        "{error:?}"
    );
    // Nothing of it reached the server: no setting changed.
    let row = shared.query_one("SELECT current_setting('search_path')", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "\"$user\", public");
}

#[tokio::test]
async fn text_an_exclusive_checkout_cached_is_still_refused_on_the_shared_connection() {
    let server = common::server();
    // One connection: the shared lane is the one the exclusive checkout used.
    let pool = shared_pool(&server, "shared_cached_refusal", "connection_limit=1&shared_connections=1");
    let client = pool.get().await.unwrap();
    client.prepare_cached("COPY (SELECT 1) TO STDOUT").await.unwrap();
    assert_eq!(client.statement_cache_stats().len, 1);
    drop(client);
    let error = pool.shared().execute("COPY (SELECT 1) TO STDOUT", &[]).await.unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::NeedsExclusive { operation: "COPY" }), "{error:?}");
    // Refused, the cached statement stays for exclusive checkouts.
    assert_eq!(pool.shared().query_one("SELECT 3", &[]).await.unwrap().get::<_, i32>(0), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_statements_error_reaches_only_its_caller() {
    let server = common::server();
    let pool = shared_pool(&server, "shared_isolation", "connection_limit=4&shared_connections=2");
    let shared = pool.shared();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..64_i32 {
        let shared = shared.clone();
        tasks.spawn(async move {
            let mut failed = 0;
            for i in 0..50_i32 {
                if (task + i) % 5 == 0 {
                    let error =
                        shared.query_one("SELECT 1 / ($1::int4 - $1::int4)", &[&i]).await.unwrap_err();
                    assert_eq!(error.code(), Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO));
                    failed += 1;
                } else {
                    let row = shared.query_one("SELECT $1::int4 - 1", &[&i]).await.unwrap();
                    assert_eq!(row.get::<_, i32>(0), i - 1);
                }
            }
            failed
        });
    }
    let failed: i32 = common::join_all(tasks).await.into_iter().sum();
    assert_eq!(failed, 64 * 10);
    // Errors end their own statement only: the connections stayed.
    assert!(shared.status().connections >= 1);
    assert_eq!(pool.status().size, shared.status().connections, "no connection was replaced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_callers_leave_the_pipeline_to_the_others() {
    let server = common::server();
    let pool = shared_pool(&server, "shared_cancelled", "connection_limit=4&shared_connections=2");
    let shared = pool.shared();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..64_u64 {
        let shared = shared.clone();
        tasks.spawn(async move {
            let mut rng = common::rng::Rng::new(task);
            for i in 0..40_i32 {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&i];
                let work = shared.query_one("SELECT $1::int4, pg_sleep(0.001)", &params);
                if task % 2 == 0 {
                    let within = Duration::from_micros(rng.below(2_000));
                    let _ = tokio::time::timeout(within, work).await;
                } else {
                    assert_eq!(work.await.unwrap().get::<_, i32>(0), i);
                }
            }
        });
    }
    common::join_all(tasks).await;
    assert_eq!(shared.status().in_flight, 0, "every cancelled caller gave its room back");
    assert_eq!(shared.query_one("SELECT 42", &[]).await.unwrap().get::<_, i32>(0), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_under_load_fails_only_its_in_flight_statements_and_loses_no_write() {
    let server = common::server();
    let pool = shared_pool(&server, "shared_killed", "connection_limit=4&shared_connections=2");
    pool.get().await.unwrap().batch_execute("CREATE TABLE t (id int PRIMARY KEY)").await.unwrap();
    let shared = pool.shared();
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let never_ran = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..32_i32 {
        let (shared, acknowledged, never_ran) =
            (shared.clone(), Arc::clone(&acknowledged), Arc::clone(&never_ran));
        tasks.spawn(async move {
            let mut failures = Vec::new();
            for i in 0..200_i32 {
                let id = task * 200 + i;
                match shared.execute("INSERT INTO t VALUES ($1)", &[&id]).await {
                    Ok(1) => acknowledged.lock().unwrap().push(id),
                    Ok(n) => panic!("inserted {n} rows"),
                    Err(error) => {
                        if !error.may_have_run() {
                            never_ran.lock().unwrap().push(id);
                        }
                        failures.push(error.to_string());
                    }
                }
            }
            failures
        });
    }
    let monitor = common::monitor(&server).await;
    common::wait_until(common::SLACK, "writes are under way", || async {
        acknowledged.lock().unwrap().len() > 500
    })
    .await;
    let victim = common::backends(&monitor, "shared_killed").await[0];
    monitor.execute("SELECT pg_terminate_backend($1)", &[&victim]).await.unwrap();
    let failures: Vec<String> = common::join_all(tasks).await.into_iter().flatten().collect();
    let acknowledged: HashSet<i32> = acknowledged.lock().unwrap().iter().copied().collect();
    let never_ran: HashSet<i32> = never_ran.lock().unwrap().iter().copied().collect();
    // Only the statements in flight on the killed connection can fail.
    assert!(
        failures.len() <= 2 * 32,
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(acknowledged.len() + failures.len() == 32 * 200);
    let client = pool.get().await.unwrap();
    let rows: HashSet<i32> =
        client.query("SELECT id FROM t", &[]).await.unwrap().iter().map(|row| row.get(0)).collect();
    assert!(acknowledged.is_subset(&rows), "every acknowledged write is there");
    assert!(rows.is_disjoint(&never_ran), "no write from a statement that never ran");
    assert!(!common::backends(&monitor, "shared_killed").await.contains(&victim));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_timeout_retires_the_connection_without_cancelling_the_others() {
    let server = common::server();
    let pool = shared_pool(
        &server,
        "shared_timeout",
        "connection_limit=2&shared_connections=1&socket_timeout=300ms",
    );
    let shared = pool.shared();
    let first_pid: i32 = shared.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let slow = {
        let shared = shared.clone();
        tokio::spawn(async move { shared.execute("SELECT pg_sleep(0.6)", &[]).await })
    };
    common::wait_until(common::SLACK, "the slow statement is in flight", || async {
        shared.status().in_flight == 1
    })
    .await;
    // Pipelined behind the slow one: answered after it, past its own limit
    // too, since nothing is cancelled.
    let behind = shared.query_one("SELECT 5", &[]).await;
    let error = slow.await.unwrap().unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Timeout { cancelled: false, .. }), "{error:?}");
    assert!(error.to_string().contains("no cancel is sent"), "{error}");
    // Nothing was cancelled while callers waited on the connection: the
    // statement behind was answered or ran out of time, never stopped.
    match behind {
        Ok(row) => assert_eq!(row.get::<_, i32>(0), 5),
        Err(error) => {
            assert!(matches!(error.kind(), ErrorKind::Timeout { cancelled: false, .. }), "{error:?}");
            assert_ne!(error.code(), Some(&tokio_postgres::error::SqlState::QUERY_CANCELED));
        }
    }
    // The retired lane's connection is not used again.
    let pid: i32 = shared.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    assert_ne!(pid, first_pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_and_exclusive_connections_share_one_budget() {
    let server = common::server();
    let pool =
        shared_pool(&server, "shared_budget", "connection_limit=3&shared_connections=2&pool_timeout=1");
    let shared = pool.shared();
    // Enough at once that a second lane opens.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32_i32 {
        let shared = shared.clone();
        tasks.spawn(async move {
            shared.query_one("SELECT $1::int4, pg_sleep(0.05)", &[&i]).await.unwrap().get::<_, i32>(0)
        });
    }
    let sum: i32 = common::join_all(tasks).await.into_iter().sum();
    assert_eq!(sum, (0..32).sum::<i32>());
    let lanes = shared.status().connections;
    assert_eq!(lanes, 2, "{:?}", shared.status());
    let status = pool.status();
    assert_eq!((status.size, status.in_use), (2, 2), "{status:?}");
    let exclusive = pool.get().await.unwrap();
    let error = pool.try_get().await.unwrap_err();
    assert!(matches!(error, pool_postgres::pool_core::Error::Exhausted { .. }), "{error:?}");
    drop(exclusive);
    let monitor = common::monitor(&server).await;
    assert!(common::connections_of(&monitor, "shared_budget").await <= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_shared_mode_and_gives_its_connections_back() {
    let server = common::server();
    let pool = shared_pool(&server, "shared_close", "connection_limit=3");
    let shared = pool.shared();
    assert_eq!(shared.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    pool.close_and_wait(common::SLACK).await.expect("the shared connections came back");
    let error = shared.query_one("SELECT 1", &[]).await.unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Acquire), "{error:?}");
    assert!(matches!(error.as_pool_error(), Some(pool_postgres::pool_core::Error::Closed)), "{error:?}");
    let monitor = common::monitor(&server).await;
    common::wait_until(common::SLACK, "the sessions end", || async {
        common::connections_of(&monitor, "shared_close").await == 0
    })
    .await;
}

//! Failure mode: every established connection silently stops forwarding (a
//! NAT entry or firewall state dropped, a proxy or VM frozen): no FIN, no
//! RST, while new connections work. Reproduced with the test server crate's
//! fault proxy.
//!
//! With nothing but `connection_limit` and `pool_timeout` set, the pool's
//! defaults must bound it: an idle connection is checked before reuse when
//! it sat idle a second, a statement nobody answers is found out by the
//! liveness check, and a statement the server is merely taking long over
//! is left alone. Each request succeeds on a fresh connection or fails
//! within `pool_timeout` plus a few seconds, and the ones after it succeed.

mod common;

use std::time::Duration;

use common::SLACK;
use pool_postgres::{ErrorKind, PgPool};
use pool_postgres_test_server::{FaultProxy, TestServer};
use tokio::time::Instant;

const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool through `proxy` with the documented settings and nothing else.
fn pool_through(proxy: &FaultProxy, app: &str) -> PgPool {
    let url = format!("{}?connection_limit=10&pool_timeout=5&application_name={app}", proxy.url());
    PgPool::from_url(&url).expect("a valid pool URL")
}

/// Opens `n` connections at once and gives them back, all idle.
async fn warm_up(pool: &PgPool, n: usize) {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.get().await.expect("warm-up"));
    }
    for client in &held {
        let one: i32 = client.query_one("SELECT 1", &[]).await.expect("warm-up query").get(0);
        assert_eq!(one, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_after_every_connection_froze_end_in_time_and_then_succeed() {
    let server = TestServer::start().expect("start a server");
    let proxy = FaultProxy::in_front_of(&server).expect("start the proxy");
    let pool = pool_through(&proxy, "frozen_idle");
    warm_up(&pool, 10).await;
    assert_eq!(pool.status().idle, 10);
    proxy.freeze();

    let bound = POOL_TIMEOUT + SLACK;
    let mut outcomes = Vec::new();
    for request in 0..20_i32 {
        let started = Instant::now();
        let answer = tokio::time::timeout(bound + SLACK, async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let value: i32 =
                client.query_one("SELECT $1::int", &[&request]).await.map_err(|e| e.to_string())?.get(0);
            Ok::<i32, String>(value)
        })
        .await
        .unwrap_or_else(|_| panic!("request {request} hung past {:?}", bound + SLACK));
        let took = started.elapsed();
        assert!(took <= bound, "request {request} took {took:?}, over pool_timeout + {SLACK:?}: {answer:?}");
        if let Ok(value) = &answer {
            assert_eq!(*value, request, "request {request} got another request's answer");
        }
        outcomes.push(answer);
    }
    let first_success = outcomes.iter().position(Result::is_ok).expect("some request succeeds");
    assert!(first_success <= 2, "only the first requests may meet a dead connection: {outcomes:?}");
    assert!(
        outcomes[first_success..].iter().all(Result::is_ok),
        "once a request succeeded, every later one did: {outcomes:?}"
    );
    for failure in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(failure.contains("network path to the server is dead"), "{failure}");
    }
    drop(pool);
    proxy.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_in_flight_when_the_path_dies_fails_in_seconds_and_says_it_may_have_run() {
    let server = TestServer::start().expect("start a server");
    let monitor = common::monitor(&server).await;
    monitor.batch_execute("CREATE TABLE t (id int)").await.unwrap();
    let proxy = FaultProxy::in_front_of(&server).expect("start the proxy");
    let pool = pool_through(&proxy, "frozen_busy");

    let client = pool.get().await.unwrap();
    let insert = client.execute("INSERT INTO t SELECT 7 FROM pg_sleep(1)", &[]);
    let freeze = async {
        common::wait_until(SLACK, "the insert runs", || async {
            common::running_statements(&monitor, "frozen_busy").await == 1
        })
        .await;
        proxy.freeze();
    };
    let started = Instant::now();
    let (inserted, ()) = tokio::join!(insert, freeze);
    let error = inserted.expect_err("the answer cannot arrive");
    assert!(started.elapsed() <= POOL_TIMEOUT + SLACK, "found out after {:?}", started.elapsed());
    assert!(matches!(error.kind(), ErrorKind::Unanswered { .. }), "{error:?}");
    assert!(error.to_string().contains("may or may not have taken effect"), "{error}");
    drop(client);

    // The server did finish it: the error was right not to say it failed.
    let ids: Vec<i32> =
        monitor.query("SELECT id FROM t", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![7]);
    let client = pool.get().await.expect("a fresh connection");
    let value: i32 = client.query_one("SELECT 8", &[]).await.unwrap().get(0);
    assert_eq!(value, 8);
    drop(client);
    drop(pool);
    proxy.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_statement_on_a_live_path_is_left_to_finish() {
    let server = TestServer::start().expect("start a server");
    let proxy = FaultProxy::in_front_of(&server).expect("start the proxy");
    let pool = pool_through(&proxy, "long_statement");
    let client = pool.get().await.unwrap();
    // Longer than liveness_check_after (2 s): the probe finds it running.
    let value: i32 = client.query_one("SELECT 5 FROM pg_sleep(3)", &[]).await.expect("finishes").get(0);
    assert_eq!(value, 5);
    drop(client);
    drop(pool);
    proxy.shutdown();
}

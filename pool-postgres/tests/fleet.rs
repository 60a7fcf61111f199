//! Many instances sharing one server that cannot hold them all: eight
//! processes with `connection_limit=10` against `max_connections=40`. The
//! pools that find the server full stop growing for a while and serve their
//! tasks from the connections they have, so no request fails, every
//! acknowledged write is there, and the server is asked for a connection
//! it cannot give only a few times per pool instead of all along.

mod common;

use std::time::Duration;

use common::{fleet, workload};
use pool_postgres::PgPool;

const INSTANCES: i32 = 8;
const TASKS: usize = 16;

fn run_for() -> Duration {
    let seconds = std::env::var("POOL_FLEET_RUN_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4.0);
    Duration::from_secs_f64(seconds)
}

/// The connects the server refused for lack of slots, from its log.
fn refused_connects(server: &pool_postgres_test_server::TestServer) -> usize {
    let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    log.lines()
        .filter(|l| {
            l.contains("sorry, too many clients already")
                || l.contains("remaining connection slots are reserved")
        })
        .count()
}

#[test]
fn eight_instances_of_ten_against_forty_slots_wait_instead_of_failing() {
    let server = common::server_with_max_connections(40);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let setup = common::pool(&server, "connection_limit=1");
    runtime.block_on(async { setup.get().await.unwrap().batch_execute(workload::SCHEMA).await.unwrap() });
    runtime.block_on(setup.close_and_wait(Duration::from_secs(5))).unwrap();

    let url = common::url(&server, "connection_limit=10&pool_timeout=10&application_name=fleet");
    let outcomes = fleet::run("one_instance_of_the_fleet", INSTANCES, &url, TASKS, run_for());
    fleet::assert_no_errors(&outcomes);
    for (instance, outcome) in &outcomes {
        assert!(outcome.ok > 0, "instance {instance} did work");
    }
    let check = common::pool(&server, "connection_limit=1");
    runtime.block_on(async { workload::check(&check.get().await.unwrap(), &outcomes).await });

    // Each pool is refused about once per cool-down (1 s, doubling), with at
    // most max_concurrent_creates (2) connects in flight when it is; twice
    // that allows for a pool that got a slot (and so started over) as the
    // others finished. A pool that kept trying would be refused thousands
    // of times in the same run.
    let refused = refused_connects(&server);
    let cooldowns_per_pool = 1 + (1.0 + run_for().as_secs_f64()).log2().ceil() as usize;
    let bound = INSTANCES as usize * 2 * 2 * cooldowns_per_pool;
    println!("the server refused {refused} connects (bound {bound})");
    assert!(refused <= bound, "{refused} refused connects: the pools kept trying to grow (bound {bound})");
}

#[test]
#[ignore = "one instance of the fleet above; started by it as a child process"]
fn one_instance_of_the_fleet() {
    let Some(orders) = fleet::orders() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime.block_on(async {
        let pool = PgPool::from_url(&orders.url).expect("a pool");
        let outcome = workload::run(&pool, orders.instance, orders.tasks, orders.duration).await;
        pool.close_and_wait(Duration::from_secs(10)).await.expect("close");
        outcome
    });
    fleet::report(&orders, &outcome);
}

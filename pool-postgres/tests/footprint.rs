//! The size of the futures every statement builds: they are moved on each
//! poll and sit in the caller's own future, so a rare path (a cancel, a
//! liveness probe, a backlog wait) inlined into them costs every statement
//! (measured on the e2e benchmark: benches/results/).

mod common;

/// 2,136 bytes for `query_one` here (debug build); 3,952 when the cache's
/// shared prepare took the prepare future by value, 7,400 when the
/// statement's future was moved by value through two nested async functions
/// (each kept a copy) and 4,752 before the backlog and liveness checks
/// existed. The bound leaves
/// room for a driver upgrade, not for another copy of the driver's future.
const BUDGET: usize = 3_200;

/// For `PgPool::get`, whose future holds pool-core's (which holds a
/// connect's, in case it must open one).
const GET_BUDGET: usize = 7_000;

#[tokio::test]
async fn a_statement_future_carries_only_the_common_path() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=1");
    let client = pool.get().await.expect("a connection");
    let sizes = [
        ("query_one", std::mem::size_of_val(&client.query_one("SELECT 1", &[]))),
        ("query", std::mem::size_of_val(&client.query("SELECT 1", &[]))),
        ("execute", std::mem::size_of_val(&client.execute("SELECT 1", &[]))),
    ];
    eprintln!("{sizes:?}");
    for (name, size) in sizes {
        assert!(
            size <= BUDGET,
            "{name}'s future is {size} bytes (budget {BUDGET}): is a rare path inline again?"
        );
    }
    let one: i32 = client.query_one("SELECT 1", &[]).await.expect("SELECT 1").get(0);
    assert_eq!(one, 1);
    drop(client);
    // 5,792 bytes in a debug build, 11,544 when PgPool::get moved pool-core's
    // future into a second one; the waits of a pool over several hosts are
    // boxed out of it.
    let get = std::mem::size_of_val(&pool.get());
    assert!(get <= GET_BUDGET, "get's future is {get} bytes (budget {GET_BUDGET}): is it moved twice again?");
}

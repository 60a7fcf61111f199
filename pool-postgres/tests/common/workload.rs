//! The natural workload of a service, run by many tasks against one pool,
//! with every acknowledged write recorded so that a test can check the
//! table afterwards: every acknowledged write there exactly once, nothing
//! from a failed one.
//!
//! Each task loops until the deadline over: `query_one` with a parameter,
//! `query_opt`, `query`, an `execute` that inserts a unique id, and a
//! three-statement transaction (insert a unique id, bump the instance's
//! counter, read it back) committed. Ids are `instance * 10^9 + task * 10^6
//! + n`, so instances and tasks never collide.

use std::time::Duration;

use pool_postgres::PgPool;
use tokio::time::Instant;

/// The tables the workload writes; run once per database.
pub const SCHEMA: &str = "CREATE TABLE writes (id int8 PRIMARY KEY, instance int4 NOT NULL, in_tx bool NOT NULL); \
                          CREATE TABLE counters (instance int4 PRIMARY KEY, n int8 NOT NULL)";

/// What one instance did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Operations that succeeded (a transaction counts once).
    pub ok: u64,
    /// The failures, as text (a test expects none).
    pub errors: Vec<String>,
    /// Ids whose write was acknowledged (an `execute` returned 1, or the
    /// transaction's commit succeeded).
    pub acknowledged: Vec<i64>,
    /// Transactions whose commit succeeded (each bumped the counter once).
    pub committed: i64,
}

/// Runs `tasks` tasks on `pool` for `duration`, as `instance`.
pub async fn run(pool: &PgPool, instance: i32, tasks: usize, duration: Duration) -> Outcome {
    pool.get()
        .await
        .expect("a connection for the counter row")
        .execute("INSERT INTO counters VALUES ($1, 0) ON CONFLICT DO NOTHING", &[&instance])
        .await
        .expect("the counter row");
    let deadline = Instant::now() + duration;
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move { one_task(&pool, instance, task as i64, deadline).await })
        })
        .collect();
    let mut outcome = Outcome::default();
    for handle in handles {
        let task = handle.await.expect("a workload task panicked");
        outcome.ok += task.ok;
        outcome.errors.extend(task.errors);
        outcome.acknowledged.extend(task.acknowledged);
        outcome.committed += task.committed;
    }
    outcome
}

async fn one_task(pool: &PgPool, instance: i32, task: i64, deadline: Instant) -> Outcome {
    let mut outcome = Outcome::default();
    let mut n = 0_i64;
    while Instant::now() < deadline {
        n += 1;
        let id = i64::from(instance) * 1_000_000_000 + task * 1_000_000 + n;
        let step = match n % 5 {
            0 => read_one(pool, id).await,
            1 => read_opt(pool, id).await,
            2 => read_many(pool).await,
            3 => insert(pool, id, instance).await.map(|()| outcome.acknowledged.push(id)),
            _ => transaction(pool, id, instance).await.map(|()| {
                outcome.acknowledged.push(id);
                outcome.committed += 1;
            }),
        };
        match step {
            Ok(()) => outcome.ok += 1,
            Err(error) => outcome.errors.push(error),
        }
    }
    outcome
}

type Step = Result<(), String>;

fn text(error: &dyn std::error::Error) -> String {
    pool_postgres::ErrorChain(error).to_string()
}

async fn read_one(pool: &PgPool, id: i64) -> Step {
    let client = pool.get().await.map_err(|e| text(&e))?;
    let back: i64 = client.query_one("SELECT $1::int8", &[&id]).await.map_err(|e| text(&e))?.get(0);
    if back == id { Ok(()) } else { Err(format!("SELECT $1 returned {back}, sent {id}")) }
}

async fn read_opt(pool: &PgPool, id: i64) -> Step {
    let client = pool.get().await.map_err(|e| text(&e))?;
    // Not written yet (ids only grow): no row.
    match client.query_opt("SELECT id FROM writes WHERE id = $1", &[&id]).await.map_err(|e| text(&e))? {
        None => Ok(()),
        Some(_) => Err(format!("id {id} found before it was written")),
    }
}

async fn read_many(pool: &PgPool) -> Step {
    let client = pool.get().await.map_err(|e| text(&e))?;
    let rows = client.query("SELECT generate_series(1, $1::int4)", &[&3_i32]).await.map_err(|e| text(&e))?;
    let values: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    if values == [1, 2, 3] { Ok(()) } else { Err(format!("generate_series(1, 3) returned {values:?}")) }
}

async fn insert(pool: &PgPool, id: i64, instance: i32) -> Step {
    let client = pool.get().await.map_err(|e| text(&e))?;
    let n = client
        .execute("INSERT INTO writes VALUES ($1, $2, false)", &[&id, &instance])
        .await
        .map_err(|e| text(&e))?;
    if n == 1 { Ok(()) } else { Err(format!("INSERT of {id} changed {n} rows")) }
}

async fn transaction(pool: &PgPool, id: i64, instance: i32) -> Step {
    let mut client = pool.get().await.map_err(|e| text(&e))?;
    let tx = client.transaction().await.map_err(|e| text(&e))?;
    let inserted = tx
        .execute("INSERT INTO writes VALUES ($1, $2, true)", &[&id, &instance])
        .await
        .map_err(|e| text(&e))?;
    let bumped = tx
        .execute("UPDATE counters SET n = n + 1 WHERE instance = $1", &[&instance])
        .await
        .map_err(|e| text(&e))?;
    let seen: i64 =
        tx.query_one("SELECT count(*) FROM writes WHERE id = $1", &[&id]).await.map_err(|e| text(&e))?.get(0);
    if (inserted, bumped, seen) != (1, 1, 1) {
        return Err(format!("transaction {id}: inserted {inserted}, bumped {bumped}, saw {seen}"));
    }
    tx.commit().await.map_err(|e| text(&e))
}

/// Checks the tables against what the instances acknowledged: every
/// acknowledged id once, no other id, and each instance's counter equal to
/// its committed transactions.
pub async fn check(client: &pool_postgres::Client, outcomes: &[(i32, Outcome)]) {
    let mut expected: Vec<i64> = outcomes.iter().flat_map(|(_, o)| o.acknowledged.iter().copied()).collect();
    expected.sort_unstable();
    let written: Vec<i64> = client
        .query("SELECT id FROM writes ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(written.len(), expected.len(), "acknowledged writes vs rows in the table");
    assert!(written == expected, "the table holds exactly the acknowledged writes");
    for (instance, outcome) in outcomes {
        let n: i64 =
            client.query_one("SELECT n FROM counters WHERE instance = $1", &[instance]).await.unwrap().get(0);
        assert_eq!(n, outcome.committed, "instance {instance}: counter vs committed transactions");
    }
}

//! Failure mode: callers that give up, thousands of times a second. 500
//! tasks share a pool of 10 for 10 s (`POOL_STORM_SECS` for longer), each
//! looping over `tokio::time::timeout(random 0–5 ms, ...)` (one attempt in
//! 20 a calm one, with 500 ms) around either
//! a `get` plus `SELECT pg_sleep(0.001), $1` or a `get`, `transaction()`,
//! an `INSERT` of a unique id and `commit`. Most of these futures are
//! dropped somewhere in the middle: waiting for a connection, with a
//! statement queued or sent, between `BEGIN` and `COMMIT`, with `COMMIT`
//! on the wire.
//!
//! A dropped future must leave nothing behind. Afterwards:
//! - the process's memory has grown by less than 64 MiB;
//! - the pool serves at once: ten concurrent `get`s plus a query all
//!   succeed, each `get` within `pool_timeout`, no query running into
//!   `socket_timeout` (a connection returned with abandoned requests still
//!   queued on it would make its next borrower wait for them);
//! - within 3 s of the storm's end the server runs no statement for the
//!   pool (`pg_stat_activity`, `state = 'active'`): abandoned statements do
//!   not run on;
//! - the server logged no "there is no transaction in progress" (one
//!   `ROLLBACK` per abandoned transaction, not two);
//! - every id whose `COMMIT` was acknowledged is in the table exactly once
//!   and none whose transaction was dropped before `commit` was called;
//!   those dropped during `commit` are counted as indeterminate;
//! - every answer was the one asked for, and `status()` ends with nothing
//!   in use and nobody waiting.
//!
//! All figures are printed before the assertions, and every condition
//! that fails is reported at once.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::SLACK;
use common::failure_kind::{of_get, of_statement};
use common::ledger::{Audit, Ledger};
use common::memory::{mib, resident_bytes};
use common::rng::Rng;
use pool_postgres::{ErrorKind, PgPool};
use pool_postgres_test_server::TestServer;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};
use tokio_postgres::Client;

const TASKS: i32 = 500;
const POOL_SIZE: usize = 10;
const ACQUIRE: Duration = Duration::from_secs(5);
const SOCKET: Duration = Duration::from_secs(3);
const APP: &str = "storm";
const DEFAULT_SECS: u64 = 10;
/// The longest an impatient caller waits before giving up.
const PATIENCE: Duration = Duration::from_millis(5);
/// One attempt in `CALM_ONE_IN` is a calm caller's, which waits up to
/// `CALM`: under a fair (first come, first served) queue, a connection
/// always goes to the caller that has waited longest, which in a crowd of
/// 5 ms callers is one about to give up; the calm ones are what gets
/// through and makes the data check mean something.
const CALM_ONE_IN: u64 = 20;
const CALM: Duration = Duration::from_millis(500);
/// How long after the storm the server may still run the pool's statements.
const DRAIN_BOUND: Duration = SLACK;
/// How long the test keeps watching beyond that, to report the figure.
const DRAIN_WATCH: Duration = Duration::from_secs(20);
/// How far the process's memory may grow during the storm.
const MEMORY_SLACK: u64 = 64 * 1024 * 1024;

/// What one storm task saw.
#[derive(Default)]
struct Seen {
    attempts: u64,
    ok: u64,
    /// Futures dropped by their timeout.
    cancelled: u64,
    failures: BTreeMap<String, u64>,
    wrong: Vec<String>,
    ledger: Ledger,
}

impl Seen {
    fn absorb(&mut self, other: Self) {
        self.attempts += other.attempts;
        self.ok += other.ok;
        self.cancelled += other.cancelled;
        for (kind, n) in other.failures {
            *self.failures.entry(kind).or_default() += n;
        }
        self.wrong.extend(other.wrong);
        self.ledger.absorb(other.ledger);
    }
}

/// Even tasks query, odd ones run transactions, until `deadline`.
async fn storm(task: i32, pool: PgPool, deadline: Instant) -> Seen {
    let mut rng = Rng::new(u64::from(task.unsigned_abs()) + 1);
    let mut seen = Seen::default();
    let mut n = 0_i64;
    while Instant::now() < deadline {
        n += 1;
        seen.attempts += 1;
        let limit = if rng.below(CALM_ONE_IN) == 0 { CALM } else { rng.between(Duration::ZERO, PATIENCE) };
        let outcome = if task % 2 == 0 {
            timeout(limit, async {
                let client = pool.get().await.map_err(|e| of_get(&e))?;
                let row = client
                    .query_one("SELECT pg_sleep(0.001), $1::int8", &[&n])
                    .await
                    .map_err(|e| of_statement(&e))?;
                let back: i64 = row.get(1);
                if back != n {
                    seen.wrong.push(format!("asked for {n}, got {back}"));
                }
                Ok::<_, String>(())
            })
            .await
        } else {
            let id = i64::from(task) * 10_000_000 + n;
            let mut commit_called = false;
            let outcome = timeout(limit, async {
                let mut client = pool.get().await.map_err(|e| of_get(&e))?;
                let tx = client.transaction().await.map_err(|e| format!("begin: {}", of_statement(&e)))?;
                tx.execute("INSERT INTO storm_writes (id) VALUES ($1)", &[&id])
                    .await
                    .map_err(|e| format!("insert: {}", of_statement(&e)))?;
                commit_called = true;
                tx.commit().await.map_err(|e| format!("commit: {}", of_statement(&e)))
            })
            .await;
            match (&outcome, commit_called) {
                (Ok(Ok(())), _) => seen.ledger.acknowledged.push(id),
                (_, false) => seen.ledger.not_committed.push(id),
                (_, true) => seen.ledger.indeterminate.push(id),
            }
            outcome
        };
        match outcome {
            Err(_) => seen.cancelled += 1,
            Ok(Ok(())) => seen.ok += 1,
            Ok(Err(kind)) => *seen.failures.entry(kind).or_default() += 1,
        }
    }
    seen
}

/// How the first borrowers after the storm fared.
#[derive(Debug)]
struct Served {
    /// Errors, with how long the borrower had been at it.
    errors: Vec<(String, Duration)>,
    socket_timeouts: usize,
    slowest_get: Duration,
    slowest: Duration,
}

/// `POOL_SIZE` concurrent borrowers, each a `get` and a query.
async fn serve_at_once(pool: &PgPool) -> Served {
    let mut borrowers = JoinSet::new();
    for n in 0..POOL_SIZE as i64 {
        let pool = pool.clone();
        borrowers.spawn(async move {
            let started = Instant::now();
            let client = match timeout(ACQUIRE + SLACK, pool.get()).await {
                Err(_) => return (Err(String::from("get hung")), started.elapsed(), started.elapsed()),
                Ok(Err(e)) => return (Err(of_get(&e)), started.elapsed(), started.elapsed()),
                Ok(Ok(client)) => client,
            };
            let got = started.elapsed();
            let outcome = match timeout(SOCKET + SLACK, client.query_one("SELECT $1::int8", &[&n])).await {
                Err(_) => Err(String::from("query hung")),
                Ok(Err(e)) if matches!(e.kind(), ErrorKind::Timeout { .. }) => {
                    Err(String::from("socket timeout"))
                }
                Ok(Err(e)) => Err(of_statement(&e)),
                Ok(Ok(row)) if row.get::<_, i64>(0) == n => Ok(()),
                Ok(Ok(row)) => Err(format!("asked for {n}, got {}", row.get::<_, i64>(0))),
            };
            (outcome, got, started.elapsed())
        });
    }
    let mut served = Served {
        errors: Vec::new(),
        socket_timeouts: 0,
        slowest_get: Duration::ZERO,
        slowest: Duration::ZERO,
    };
    while let Some(joined) = borrowers.join_next().await {
        let (outcome, got, took) = joined.expect("a borrower does not panic");
        served.slowest_get = served.slowest_get.max(got);
        served.slowest = served.slowest.max(took);
        if let Err(kind) = outcome {
            served.socket_timeouts += usize::from(kind == "socket timeout");
            served.errors.push((kind, took));
        }
    }
    served
}

/// Polls until the server runs nothing for the pool; returns how long
/// after `since` that was, or `None` if not within `DRAIN_WATCH`.
async fn drained(monitor: &Client, since: Instant) -> Option<Duration> {
    while since.elapsed() < DRAIN_WATCH {
        if common::running_statements(monitor, APP).await == 0 {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Everything measured after the storm.
struct Aftermath {
    seen: Seen,
    /// The pool's statements the server was running as the storm ended.
    active_at_end: i64,
    memory_before: u64,
    memory_after: u64,
    served: Served,
    drained_after: Option<Duration>,
    status: pool_postgres::Status,
    stray_rollbacks: usize,
    audit: Audit,
}

fn print_summary(aftermath: &Aftermath) {
    let Aftermath {
        seen,
        active_at_end,
        memory_before,
        memory_after,
        served,
        drained_after,
        status,
        stray_rollbacks,
        audit,
    } = aftermath;
    let failed: u64 = seen.failures.values().sum();
    eprintln!(
        "storm: {} attempts, {} ok, {} cancelled, {failed} failed, {} wrong answers",
        seen.attempts,
        seen.ok,
        seen.cancelled,
        seen.wrong.len()
    );
    for (kind, n) in &seen.failures {
        eprintln!("storm:   {n:>7}  {kind}");
    }
    eprintln!(
        "storm: memory {:.1} MiB before, {:.1} MiB after the storm",
        mib(*memory_before),
        mib(*memory_after)
    );
    eprintln!(
        "storm: first {POOL_SIZE} borrowers after it: slowest get {:?}, slowest get + query {:?}, errors {:?}",
        served.slowest_get, served.slowest, served.errors
    );
    eprintln!(
        "storm: {active_at_end} statements of the pool active on the server as the storm ended, \
         none any more {drained_after:?} after it"
    );
    eprintln!("storm: {stray_rollbacks} \"there is no transaction in progress\" warnings in the server log");
    eprintln!(
        "storm: transactions: {} acknowledged, {} dropped before commit, {} dropped or failed in commit \
         ({} of them committed, {} not); status at the end {status:?}",
        seen.ledger.acknowledged.len(),
        seen.ledger.not_committed.len(),
        seen.ledger.indeterminate.len(),
        audit.indeterminate_present,
        audit.indeterminate_absent
    );
}

/// Every condition of the module docs that does not hold.
fn problems(aftermath: &Aftermath) -> Vec<String> {
    let Aftermath {
        seen,
        memory_before,
        memory_after,
        served,
        drained_after,
        status,
        stray_rollbacks,
        audit,
        ..
    } = aftermath;
    let mut problems = Vec::new();
    if *memory_after > memory_before + MEMORY_SLACK {
        problems.push(format!(
            "memory grew from {:.1} MiB to {:.1} MiB",
            mib(*memory_before),
            mib(*memory_after)
        ));
    }
    if !served.errors.is_empty() || served.slowest_get > ACQUIRE {
        problems.push(format!(
            "the pool did not serve at once after the storm: {} of {POOL_SIZE} borrowers failed ({} socket \
             timeouts), slowest get {:?}: {:?}",
            served.errors.len(),
            served.socket_timeouts,
            served.slowest_get,
            served.errors
        ));
    }
    match drained_after {
        Some(drained) if *drained <= DRAIN_BOUND => {}
        other => problems.push(format!(
            "the server still ran the pool's statements {DRAIN_BOUND:?} after the storm (nothing active after {other:?})"
        )),
    }
    if *stray_rollbacks > 0 {
        problems.push(format!("{stray_rollbacks} ROLLBACKs with no transaction in progress"));
    }
    if !seen.wrong.is_empty() {
        problems.push(format!("wrong answers: {:?}", &seen.wrong[..seen.wrong.len().min(10)]));
    }
    if seen.ledger.acknowledged.is_empty() {
        problems.push(String::from("no transaction committed: the storm proves nothing about the data"));
    }
    problems.extend(audit.problems(seen.ledger.acknowledged.len()));
    if common::check_invariants(status).is_err() || (status.in_use, status.waiting) != (0, 0) {
        problems.push(format!("not settled at the end: {status:?}"));
    }
    problems
}

fn duration() -> Duration {
    let secs = match std::env::var("POOL_STORM_SECS") {
        Ok(text) => {
            text.parse().unwrap_or_else(|_| panic!("POOL_STORM_SECS={text:?} is not a number of seconds"))
        }
        Err(_) => DEFAULT_SECS,
    };
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_give_up_at_random_leave_nothing_behind() {
    let server: TestServer = common::server();
    let monitor = common::monitor(&server).await;
    let drain_monitor = common::monitor(&server).await;
    monitor.batch_execute("CREATE TABLE storm_writes (id int8 NOT NULL)").await.expect("the table");
    let pool = common::pool(
        &server,
        &format!(
            "connection_limit={POOL_SIZE}&pool_timeout={}&socket_timeout={}&application_name={APP}",
            ACQUIRE.as_secs(),
            SOCKET.as_secs()
        ),
    );
    // Warm, so that the baseline has the connections.
    let mut clients = Vec::new();
    for _ in 0..POOL_SIZE {
        clients.push(pool.get().await.expect("a connection before the storm"));
    }
    drop(clients);
    let memory_before = resident_bytes();

    let deadline = Instant::now() + duration();
    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        tasks.spawn(storm(task, pool.clone(), deadline));
    }
    let mut seen = Seen::default();
    // Each attempt gives up within CALM, so every task ends right after the deadline.
    while let Some(joined) = tokio::time::timeout_at(deadline + SLACK, tasks.join_next())
        .await
        .unwrap_or_else(|_| panic!("storm tasks still running {SLACK:?} after the storm's end"))
    {
        seen.absorb(joined.expect("a storm task does not panic"));
    }
    let ended = Instant::now();
    let memory_after = resident_bytes();
    let active_at_end = common::running_statements(&monitor, APP).await;
    // Watched while the first borrowers are served: both must hold at once.
    let drain = tokio::spawn(async move { drained(&drain_monitor, ended).await });
    let served = serve_at_once(&pool).await;
    let drained_after = drain.await.expect("the drain watcher does not panic");
    let status = pool.status();
    let stray_rollbacks = common::stray_rollbacks(&server);
    let audit = seen.ledger.audit(&monitor, "storm_writes").await;

    let aftermath = Aftermath {
        seen,
        active_at_end,
        memory_before,
        memory_after,
        served,
        drained_after,
        status,
        stray_rollbacks,
        audit,
    };
    print_summary(&aftermath);
    let problems = problems(&aftermath);
    assert!(problems.is_empty(), "after the cancellation storm:\n- {}", problems.join("\n- "));

    pool.close_and_wait(Duration::from_secs(5)).await.expect("the pool closes");
}

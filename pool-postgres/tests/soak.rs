//! Failure mode: a long run with every fault a service meets, one after
//! another, under steady load. 150 tasks share a pool of 10 (the README's
//! `connection_limit` and `pool_timeout`, plus `socket_timeout`) that
//! reaches a server with `max_connections = 20` through the test server's
//! fault proxy. Each task loops: a think-time sleep, then a read of a
//! table through a cached `SELECT *`, an echo, or a three-statement
//! transaction (`BEGIN; INSERT` a unique id`; UPDATE` the task's counter`;
//! COMMIT`) through `transaction()`. Every 10 s the next fault of a cycle
//! hits: an immediate stop and start, `pg_terminate_backend` of all the
//! pool's sessions, a proxy freeze (then back to normal), a proxy reset, a
//! full server (other clients take every free slot, and three of the
//! pool's sessions are terminated so that it must compete for them), an
//! `ALTER TABLE` on the cached `SELECT *`'s table, a fast restart.
//! The default 75 s runs all seven; `POOL_SOAK_SECS` runs longer.
//!
//! Failures are allowed (and counted by kind); what must hold:
//! - no request takes longer than `pool_timeout + socket_timeout` plus
//!   slack, and none hangs;
//! - every read returns the value asked for;
//! - after every fault the load gets through again within that bound;
//! - every id whose `COMMIT` was acknowledged is in the table exactly once,
//!   no id of a transaction that failed before `commit` was called is
//!   there, and each task's counter matches its rows (a transaction's two
//!   writes land together or not at all); commits whose answer was lost
//!   are counted as indeterminate, not asserted;
//! - the server never holds more sessions of the pool than the pool's
//!   size (sampled four times a second), besides the half-open ones a
//!   freeze left behind;
//! - `status()` keeps its invariants throughout and ends with nothing in
//!   use and nobody waiting;
//! - the process's memory ends within 64 MiB of where it started.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::SLACK;
use common::failure_kind::{of_get, of_statement};
use common::ledger::{Audit, Ledger};
use common::memory::{mib, resident_bytes};
use common::rng::Rng;
use pool_postgres::PgPool;
use pool_postgres_test_server::{FaultProxy, TestServer, TestServerBuilder};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};
use tokio_postgres::{Client, NoTls};

const POOL_SIZE: usize = 10;
const MAX_CONNECTIONS: u32 = 20;
const ACQUIRE: Duration = Duration::from_secs(5);
const SOCKET: Duration = Duration::from_secs(3);
const TASKS: i32 = 150;
const APP: &str = "soak";

/// The longest any request may take: a `get` that waits out
/// `pool_timeout`, then one statement that runs into `socket_timeout`.
const REQUEST_BOUND: Duration = ACQUIRE.saturating_add(SOCKET).saturating_add(SLACK);
/// A request still running after this has hung.
const HANG: Duration = REQUEST_BOUND.saturating_add(SLACK);

const DEFAULT_SECS: u64 = 75;
const FIRST_FAULT: Duration = Duration::from_secs(3);
const FAULT_EVERY: Duration = Duration::from_secs(10);
/// No fault starts later than this before the end: the load must be seen
/// to recover from each.
const LAST_FAULT_BEFORE_END: Duration = Duration::from_secs(5);
/// After a fault, this many requests must succeed again...
const RECOVERED_AFTER: u64 = 50;
/// ... within this long.
const RECOVERY_BOUND: Duration = HANG;

const THINK_MIN: Duration = Duration::from_millis(5);
const THINK_MAX: Duration = Duration::from_millis(60);
const ITEMS: i32 = 1000;
/// How long a freeze lasts: longer than `socket_timeout`, so statements in
/// flight on frozen connections run into it.
const FREEZE_FOR: Duration = SOCKET.saturating_add(Duration::from_secs(1));
/// How long the server stays full.
const FULL_FOR: Duration = Duration::from_secs(5);
/// How long the server stays down after an immediate stop.
const DOWN_FOR: Duration = Duration::from_secs(1);
/// How far the process's memory may end above where it started.
const MEMORY_SLACK: u64 = 64 * 1024 * 1024;

const SCHEMA: &str = "CREATE TABLE items (id int4 PRIMARY KEY, v int8 NOT NULL); \
                      INSERT INTO items SELECT i, i * 7 FROM generate_series(1, 1000) i; \
                      CREATE TABLE writes (id int8 NOT NULL, task int4 NOT NULL); \
                      CREATE INDEX ON writes (id); \
                      CREATE TABLE counters (task int4 PRIMARY KEY, n int8 NOT NULL)";

/// The faults, in the order they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    ImmediateStop,
    TerminateAll,
    Freeze,
    Reset,
    ServerFull,
    AlterTable,
    FastRestart,
}

const CYCLE: [Fault; 7] = [
    Fault::ImmediateStop,
    Fault::TerminateAll,
    Fault::Freeze,
    Fault::Reset,
    Fault::ServerFull,
    Fault::AlterTable,
    Fault::FastRestart,
];

/// Counters the load tasks share with the fault driver.
#[derive(Default)]
struct Progress {
    ok: AtomicU64,
}

/// How a request failed.
enum Failure {
    /// An error from the pool or the server, by kind.
    Error(String),
    /// A result that is not the one asked for: always a bug.
    Wrong(String),
}

type Outcome = Result<(), Failure>;

/// What one load task saw.
#[derive(Default)]
struct Seen {
    requests: u64,
    ok: u64,
    failures: BTreeMap<String, u64>,
    wrong: Vec<String>,
    hung: u64,
    slowest: Duration,
    ledger: Ledger,
}

impl Seen {
    fn absorb(&mut self, other: Self) {
        self.requests += other.requests;
        self.ok += other.ok;
        for (kind, n) in other.failures {
            *self.failures.entry(kind).or_default() += n;
        }
        self.wrong.extend(other.wrong);
        self.hung += other.hung;
        self.slowest = self.slowest.max(other.slowest);
        self.ledger.absorb(other.ledger);
    }
}

/// Loops requests with think times until `deadline`.
async fn load(task: i32, pool: PgPool, deadline: Instant, progress: Arc<Progress>) -> Seen {
    let mut rng = Rng::new(u64::from(task.unsigned_abs()) + 1);
    let mut seen = Seen::default();
    let mut n = 0_i64;
    while Instant::now() < deadline {
        tokio::time::sleep(rng.between(THINK_MIN, THINK_MAX)).await;
        n += 1;
        let started = Instant::now();
        let outcome = match rng.below(10) {
            0..=3 => timeout(HANG, read_item(&pool, 1 + rng.below(ITEMS as u64) as i32)).await,
            4..=5 => timeout(HANG, echo(&pool, n)).await,
            _ => {
                let id = i64::from(task) * 10_000_000 + n;
                let mut commit_called = false;
                let outcome = timeout(HANG, transaction(&pool, task, id, &mut commit_called)).await;
                match (&outcome, commit_called) {
                    (Ok(Ok(())), _) => seen.ledger.acknowledged.push(id),
                    (_, false) => seen.ledger.not_committed.push(id),
                    (_, true) => seen.ledger.indeterminate.push(id),
                }
                outcome
            }
        };
        seen.requests += 1;
        seen.slowest = seen.slowest.max(started.elapsed());
        match outcome {
            Err(_) => {
                seen.hung += 1;
                *seen.failures.entry(String::from("hung")).or_default() += 1;
            }
            Ok(Ok(())) => {
                seen.ok += 1;
                progress.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(Failure::Error(kind))) => *seen.failures.entry(kind).or_default() += 1,
            Ok(Err(Failure::Wrong(what))) => seen.wrong.push(what),
        }
    }
    seen
}

fn get_failed(what: &str) -> impl FnOnce(pool_postgres::PoolError) -> Failure + '_ {
    move |e| Failure::Error(format!("{what}: {}", of_get(&e)))
}

fn failed(what: &str) -> impl FnOnce(pool_postgres::Error) -> Failure + '_ {
    move |e| Failure::Error(format!("{what}: {}", of_statement(&e)))
}

/// The cached `SELECT *` whose table the `ALTER TABLE` fault changes.
async fn read_item(pool: &PgPool, id: i32) -> Outcome {
    let client = pool.get().await.map_err(get_failed("read"))?;
    let row = client.query_one("SELECT * FROM items WHERE id = $1", &[&id]).await.map_err(failed("read"))?;
    let v: i64 = row.get("v");
    if v == i64::from(id) * 7 { Ok(()) } else { Err(Failure::Wrong(format!("item {id} read as {v}"))) }
}

async fn echo(pool: &PgPool, n: i64) -> Outcome {
    let client = pool.get().await.map_err(get_failed("echo"))?;
    let back: i64 = client.query_one("SELECT $1::int8 + 1", &[&n]).await.map_err(failed("echo"))?.get(0);
    if back == n + 1 { Ok(()) } else { Err(Failure::Wrong(format!("{n} + 1 came back as {back}"))) }
}

/// Inserts `id` and bumps the task's counter in one transaction; sets
/// `commit_called` just before `commit`.
async fn transaction(pool: &PgPool, task: i32, id: i64, commit_called: &mut bool) -> Outcome {
    let mut client = pool.get().await.map_err(get_failed("tx get"))?;
    let tx = client.transaction().await.map_err(failed("tx begin"))?;
    let inserted = tx
        .execute("INSERT INTO writes (id, task) VALUES ($1, $2)", &[&id, &task])
        .await
        .map_err(failed("tx insert"))?;
    let bumped = tx
        .execute("UPDATE counters SET n = n + 1 WHERE task = $1", &[&task])
        .await
        .map_err(failed("tx update"))?;
    if (inserted, bumped) != (1, 1) {
        return Err(Failure::Wrong(format!("transaction {id}: inserted {inserted}, bumped {bumped}")));
    }
    *commit_called = true;
    tx.commit().await.map_err(failed("tx commit"))
}

/// A raw connection to the server (not through the proxy), reopened when
/// a restart has closed it.
struct Monitor {
    server: Arc<TestServer>,
    client: Mutex<Option<Arc<Client>>>,
}

impl Monitor {
    fn new(server: Arc<TestServer>) -> Self {
        Self { server, client: Mutex::new(None) }
    }

    async fn client(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref()
            && !client.is_closed()
        {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(connect(&self.server, "soak_monitor").await?);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }
}

/// A raw connection with `application_name`, its driver in a task.
async fn connect(server: &TestServer, application_name: &str) -> Result<Client, tokio_postgres::Error> {
    let config = format!("{} application_name={application_name}", server.connection_string());
    let (client, connection) = tokio_postgres::connect(&config, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Sessions of the pool on the server, sampled against the bound.
#[derive(Debug, Default)]
struct Sessions {
    samples: u64,
    /// Samples not taken because the server was down.
    skipped: u64,
    most: i64,
    /// (seconds into the run, sessions, bound) of each sample over it.
    over: Vec<(f64, i64, usize)>,
}

/// Counts the pool's sessions on the server every 250 ms until `stop`.
async fn sample_sessions(
    monitor: Arc<Monitor>,
    proxy: Arc<FaultProxy>,
    stop: Arc<AtomicBool>,
    t0: Instant,
) -> Sessions {
    let mut sessions = Sessions::default();
    while !stop.load(Ordering::Relaxed) {
        // Read before the count: a half-open session a freeze left ends
        // (and leaves this number) no sooner than it leaves the server.
        let half_open = proxy.connections_caught_by_freeze();
        let counted = match monitor.client().await {
            Ok(client) => client
                .query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", &[&APP])
                .await
                .ok()
                .map(|row| row.get::<_, i64>(0)),
            Err(_) => None,
        };
        match counted {
            None => sessions.skipped += 1,
            Some(n) => {
                sessions.samples += 1;
                sessions.most = sessions.most.max(n);
                let bound = POOL_SIZE + half_open;
                if n > bound as i64 {
                    sessions.over.push((t0.elapsed().as_secs_f64(), n, bound));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    sessions
}

/// What the fault driver needs.
struct Faults {
    server: Arc<TestServer>,
    proxy: Arc<FaultProxy>,
    monitor: Arc<Monitor>,
    progress: Arc<Progress>,
    altered: u32,
}

/// One fault that hit, and how the load came back from it.
struct Hit {
    fault: Fault,
    at: Duration,
    took: Duration,
    detail: String,
    /// From the end of the fault until `RECOVERED_AFTER` more requests
    /// succeeded; `None` if that did not happen within `RECOVERY_BOUND`.
    recovered_after: Option<Duration>,
}

impl fmt::Display for Hit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>5.1}s {:?} ({}, {:.1}s), recovered after {}",
            self.at.as_secs_f64(),
            self.fault,
            self.detail,
            self.took.as_secs_f64(),
            self.recovered_after
                .map_or_else(|| String::from("NEVER"), |d| format!("{:.2}s", d.as_secs_f64())),
        )
    }
}

impl Faults {
    /// Injects faults on schedule until none fits before `deadline`.
    async fn run(mut self, t0: Instant, deadline: Instant) -> Vec<Hit> {
        let mut hits = Vec::new();
        let mut next = t0 + FIRST_FAULT;
        for fault in CYCLE.iter().cycle().copied() {
            if next + LAST_FAULT_BEFORE_END > deadline {
                break;
            }
            tokio::time::sleep_until(next).await;
            let started = Instant::now();
            let detail = self.inject(fault).await;
            let ended = Instant::now();
            let recovered_after = self.recovery(ended).await;
            hits.push(Hit { fault, at: started - t0, took: ended - started, detail, recovered_after });
            eprintln!("soak: {}", hits.last().unwrap());
            next = (next + FAULT_EVERY).max(Instant::now());
        }
        hits
    }

    /// Waits until the load has succeeded `RECOVERED_AFTER` more times.
    async fn recovery(&self, since: Instant) -> Option<Duration> {
        let base = self.progress.ok.load(Ordering::Relaxed);
        while since.elapsed() < RECOVERY_BOUND {
            if self.progress.ok.load(Ordering::Relaxed) >= base + RECOVERED_AFTER {
                return Some(since.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Injects one fault; returns what it did, for the summary.
    async fn inject(&mut self, fault: Fault) -> String {
        match fault {
            Fault::FastRestart => {
                blocking(&self.server, TestServer::restart).await;
                String::from("pg_ctl restart -m fast")
            }
            Fault::ImmediateStop => {
                blocking(&self.server, TestServer::kill).await;
                // Down for a while: part of the fault.
                tokio::time::sleep(DOWN_FOR).await;
                blocking(&self.server, TestServer::start_again).await;
                format!("down {DOWN_FOR:?}")
            }
            Fault::TerminateAll => format!("{} sessions terminated", self.terminate(None).await),
            Fault::Freeze => {
                self.proxy.freeze();
                let caught = self.proxy.connections_caught_by_freeze();
                // The freeze lasts: part of the fault.
                tokio::time::sleep(FREEZE_FOR).await;
                self.proxy.back_to_normal();
                format!("{caught} connections frozen for {FREEZE_FOR:?}")
            }
            Fault::Reset => {
                let proxy = Arc::clone(&self.proxy);
                let reset = tokio::task::spawn_blocking(move || proxy.reset()).await.unwrap();
                format!("{reset} connections reset")
            }
            Fault::ServerFull => self.fill_server().await,
            Fault::AlterTable => {
                self.altered += 1;
                let n = self.altered;
                let monitor = self.monitor.client().await.expect("the monitor connects");
                monitor
                    .batch_execute(&format!(
                        "SET lock_timeout = '5s'; ALTER TABLE items ADD COLUMN extra_{n} int8 NOT NULL DEFAULT {n}"
                    ))
                    .await
                    .expect("ALTER TABLE items");
                format!("items has {n} extra columns")
            }
        }
    }

    /// Terminates the pool's sessions (at most `limit`); returns how many.
    async fn terminate(&self, limit: Option<i64>) -> i64 {
        let monitor = self.monitor.client().await.expect("the monitor connects");
        monitor
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM \
                 (SELECT pid FROM pg_stat_activity WHERE application_name = $1 LIMIT $2) s",
                &[&APP, &limit],
            )
            .await
            .expect("terminate the pool's sessions")
            .get(0)
    }

    /// Other clients take every free slot and keep taking the ones that
    /// come free, for `FULL_FOR`; three of the pool's sessions are
    /// terminated meanwhile, so the pool has to compete for slots.
    async fn fill_server(&self) -> String {
        let mut held = Vec::new();
        take_free_slots(&self.server, &mut held).await;
        let first = held.len();
        let terminated = self.terminate(Some(3)).await;
        let until = Instant::now() + FULL_FOR;
        while Instant::now() < until {
            take_free_slots(&self.server, &mut held).await;
            // Another client retrying its connect: part of the fault.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        format!(
            "{first} slots taken, {terminated} of the pool's sessions terminated, {} slots held at the end",
            held.len()
        )
    }
}

/// Opens raw connections until the server refuses one.
async fn take_free_slots(server: &TestServer, held: &mut Vec<Client>) {
    while let Ok(client) = connect(server, "soak_filler").await {
        held.push(client);
    }
}

/// Runs a blocking server operation off the runtime's threads.
async fn blocking(
    server: &Arc<TestServer>,
    op: fn(&TestServer) -> Result<(), pool_postgres_test_server::TestServerError>,
) {
    let server = Arc::clone(server);
    tokio::task::spawn_blocking(move || op(&server))
        .await
        .expect("the server operation does not panic")
        .expect("the server operation succeeds");
}

fn duration() -> Duration {
    let secs = match std::env::var("POOL_SOAK_SECS") {
        Ok(text) => {
            text.parse().unwrap_or_else(|_| panic!("POOL_SOAK_SECS={text:?} is not a number of seconds"))
        }
        Err(_) => DEFAULT_SECS,
    };
    Duration::from_secs(secs)
}

/// Everything a run produced, for the summary and the assertions.
struct Run {
    ran: Duration,
    seen: Seen,
    hits: Vec<Hit>,
    sessions: Sessions,
    status: pool_postgres::Status,
    audit: Audit,
    /// (task, counter, rows) where they differ.
    counters_off: Vec<(i32, i64, i64)>,
    memory_before: u64,
    memory_after: u64,
}

/// The server with its schema, its monitor, the proxy and a warm pool
/// through it.
async fn setup() -> (Arc<TestServer>, Arc<Monitor>, Arc<FaultProxy>, PgPool) {
    let server = Arc::new(common::start(
        &TestServerBuilder::new()
            .max_connections(MAX_CONNECTIONS)
            .setting("superuser_reserved_connections", "0"),
    ));
    let monitor = Arc::new(Monitor::new(Arc::clone(&server)));
    let client = monitor.client().await.expect("the monitor connects");
    client.batch_execute(SCHEMA).await.expect("the schema");
    client
        .execute("INSERT INTO counters SELECT t, 0 FROM generate_series(0, $1 - 1) t", &[&TASKS])
        .await
        .expect("the counters");
    let proxy = Arc::new(FaultProxy::in_front_of(&server).expect("start the fault proxy"));
    let pool = PgPool::from_url(&format!(
        "{}?connection_limit={POOL_SIZE}&pool_timeout={}&socket_timeout={}&application_name={APP}",
        proxy.url(),
        ACQUIRE.as_secs(),
        SOCKET.as_secs()
    ))
    .expect("a valid URL");
    // Warm: every connection opened once, so the memory baseline has them.
    let mut clients = Vec::new();
    for _ in 0..POOL_SIZE {
        clients.push(pool.get().await.expect("a connection before the run"));
    }
    drop(clients);
    (server, monitor, proxy, pool)
}

/// Runs the load and the faults for `duration`, then reads the table.
async fn soak(
    duration: Duration,
    server: &Arc<TestServer>,
    monitor: &Arc<Monitor>,
    proxy: &Arc<FaultProxy>,
    pool: &PgPool,
) -> Run {
    let memory_before = resident_bytes();
    let t0 = Instant::now();
    let deadline = t0 + duration;
    let watch = common::StatusWatch::start(pool.clone());
    let progress = Arc::new(Progress::default());
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler =
        tokio::spawn(sample_sessions(Arc::clone(monitor), Arc::clone(proxy), Arc::clone(&stop_sampling), t0));
    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        tasks.spawn(load(task, pool.clone(), deadline, Arc::clone(&progress)));
    }
    let faults = Faults {
        server: Arc::clone(server),
        proxy: Arc::clone(proxy),
        monitor: Arc::clone(monitor),
        progress: Arc::clone(&progress),
        altered: 0,
    };
    let hits = faults.run(t0, deadline).await;

    let mut seen = Seen::default();
    let join_by = deadline + HANG + SLACK;
    while let Some(joined) =
        tokio::time::timeout_at(join_by, tasks.join_next()).await.expect("every load task ends (none hangs)")
    {
        seen.absorb(joined.expect("a load task does not panic"));
    }
    let ran = t0.elapsed();
    stop_sampling.store(true, Ordering::Relaxed);
    let sessions = sampler.await.expect("the sampler does not panic");
    watch.finish().await;
    let status = pool.status();

    let client = monitor.client().await.expect("the monitor connects");
    let audit = seen.ledger.audit(&client, "writes").await;
    let counters_off = client
        .query(
            "SELECT c.task, c.n, (SELECT count(*) FROM writes w WHERE w.task = c.task) FROM counters c \
             WHERE c.n <> (SELECT count(*) FROM writes w WHERE w.task = c.task) ORDER BY c.task",
            &[],
        )
        .await
        .expect("compare the counters")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let memory_after = resident_bytes();
    Run { ran, seen, hits, sessions, status, audit, counters_off, memory_before, memory_after }
}

fn print_summary(run: &Run) {
    let Run { ran, seen, hits, sessions, status, audit, memory_before, memory_after, .. } = run;
    let failed: u64 = seen.failures.values().sum();
    eprintln!(
        "soak: {:.1}s, {} requests, {} ok, {failed} failed, {} wrong, {} hung, slowest {:.2}s (bound {REQUEST_BOUND:?})",
        ran.as_secs_f64(),
        seen.requests,
        seen.ok,
        seen.wrong.len(),
        seen.hung,
        seen.slowest.as_secs_f64(),
    );
    eprintln!("soak: failures by kind:");
    for (kind, n) in &seen.failures {
        eprintln!("soak:   {n:>6}  {kind}");
    }
    eprintln!("soak: {} faults:", hits.len());
    for hit in hits {
        eprintln!("soak:   {hit}");
    }
    eprintln!(
        "soak: transactions: {} acknowledged, {} failed before commit, {} indeterminate commits \
         ({} of them committed, {} not)",
        seen.ledger.acknowledged.len(),
        seen.ledger.not_committed.len(),
        seen.ledger.indeterminate.len(),
        audit.indeterminate_present,
        audit.indeterminate_absent,
    );
    eprintln!(
        "soak: server sessions of the pool: at most {} in {} samples ({} skipped while the server was down), \
         {} over the bound",
        sessions.most,
        sessions.samples,
        sessions.skipped,
        sessions.over.len()
    );
    eprintln!(
        "soak: memory {:.1} MiB before, {:.1} MiB after; status at the end {status:?}",
        mib(*memory_before),
        mib(*memory_after)
    );
}

fn assert_held(run: &Run) {
    let Run { seen, hits, sessions, status, audit, counters_off, memory_before, memory_after, .. } = run;
    assert!(seen.wrong.is_empty(), "wrong results: {:?}", &seen.wrong[..seen.wrong.len().min(10)]);
    assert_eq!(seen.hung, 0, "requests hung past {HANG:?}");
    assert!(seen.slowest <= REQUEST_BOUND, "a request took {:?} (bound {REQUEST_BOUND:?})", seen.slowest);
    assert!(!hits.is_empty(), "no fault was injected (POOL_SOAK_SECS too short?)");
    let unrecovered: Vec<String> =
        hits.iter().filter(|hit| hit.recovered_after.is_none()).map(ToString::to_string).collect();
    assert!(
        unrecovered.is_empty(),
        "the load did not get through again within {RECOVERY_BOUND:?}: {unrecovered:#?}"
    );
    assert!(seen.failures.values().sum::<u64>() > 0, "no request failed: did the faults really hit?");
    audit.assert_consistent(seen.ledger.acknowledged.len());
    assert!(
        counters_off.is_empty(),
        "counters that disagree with their rows (task, n, rows): {counters_off:?}"
    );
    assert!(
        sessions.over.is_empty(),
        "the server held more sessions of the pool than its size (seconds, sessions, bound): {:?}",
        sessions.over
    );
    common::check_invariants(status).unwrap_or_else(|s| panic!("status invariants broken at the end: {s}"));
    assert_eq!((status.in_use, status.waiting), (0, 0), "not settled at the end: {status:?}");
    assert!(
        *memory_after <= memory_before + MEMORY_SLACK,
        "memory grew from {:.1} MiB to {:.1} MiB",
        mib(*memory_before),
        mib(*memory_after)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_under_load_through_every_fault_stays_bounded_correct_and_recovers() {
    let (server, monitor, proxy, pool) = setup().await;
    let run = soak(duration(), &server, &monitor, &proxy, &pool).await;
    print_summary(&run);
    assert_held(&run);
    pool.close_and_wait(Duration::from_secs(5)).await.expect("the pool closes");
    Arc::try_unwrap(proxy).expect("nothing else holds the proxy").shutdown();
}

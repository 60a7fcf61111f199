//! A primary and a streaming replica (made with `pg_basebackup -R`) behind
//! one pool: reads on the replica, writes on the primary, the replica
//! stopped (reads fall back), the replica behind (skipped past
//! `max_replica_lag`), and a failover (the primary stopped, the replica
//! promoted: writes move to it, and every acknowledged write is there once).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use pool_postgres::{PgPool, Retryable, Role, TargetSessionAttrs};
use pool_postgres_test_server::TestServer;
use tokio::time::Instant;

/// How long a replica may take to replay what the primary wrote.
const REPLAY: Duration = Duration::from_secs(20);

fn primary_and_replica() -> (TestServer, TestServer) {
    let primary = common::server();
    let replica = primary.start_replica().expect("a streaming replica of the primary");
    (primary, replica)
}

fn entry(server: &TestServer) -> String {
    format!("{}:{}", server.host(), server.port())
}

/// A pool over both, primary first, rechecking roles every second.
fn pool_over(primary: &TestServer, replica: &TestServer, params: &str) -> PgPool {
    let url = format!(
        "postgres://{}@{},{}/postgres?host_recheck_interval=1&{params}",
        primary.user(),
        entry(primary),
        entry(replica)
    );
    PgPool::from_url(&url).expect("a pool over a primary and a replica")
}

async fn in_recovery(client: &pool_postgres::Client) -> Result<bool, pool_postgres::Error> {
    Ok(client.query_one("SELECT pg_is_in_recovery()", &[]).await?.get(0))
}

async fn ids(client: &tokio_postgres::Client) -> Vec<i64> {
    client
        .query("SELECT id FROM writes ORDER BY id", &[])
        .await
        .expect("read ids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn reads_land_on_the_replica_and_writes_on_the_primary() {
    let (primary, replica) = primary_and_replica();
    let pool = pool_over(&primary, &replica, "connection_limit=4");
    let writer = pool.get().await.expect("get() is for writes");
    assert!(!in_recovery(&writer).await.unwrap(), "get() landed on the standby");
    writer.execute("CREATE TABLE writes (id bigint PRIMARY KEY)", &[]).await.expect("create");
    for id in 1..=20_i64 {
        writer.execute("INSERT INTO writes VALUES ($1)", &[&id]).await.expect("write on the primary");
    }
    drop(writer);
    replica.wait_for_replay(&primary, REPLAY).expect("the replica replays the writes");

    let reader = pool.read().await.expect("read()");
    assert!(in_recovery(&reader).await.unwrap(), "read() landed on the primary with a replica up");
    let count: i64 = reader.query_one("SELECT count(*) FROM writes", &[]).await.expect("read").get(0);
    assert_eq!(count, 20, "the replica has every write");
    let refused =
        reader.execute("INSERT INTO writes VALUES (99)", &[]).await.expect_err("a standby takes no write");
    assert_eq!(refused.code(), Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION));
    drop(reader);

    for (target, standby) in [
        (TargetSessionAttrs::Standby, true),
        (TargetSessionAttrs::ReadOnly, true),
        (TargetSessionAttrs::Primary, false),
        (TargetSessionAttrs::ReadWrite, false),
    ] {
        let client = pool.get_for(target).await.unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(in_recovery(&client).await.unwrap(), standby, "{target}");
    }
    let hosts = pool.hosts();
    assert_eq!(hosts[0].role, Some(Role::Primary { read_only: false }), "{hosts:?}");
    assert!(matches!(hosts[1].role, Some(Role::Standby { .. })), "{hosts:?}");
    let monitor = common::monitor(&primary).await;
    assert_eq!(ids(&monitor).await, (1..=20).collect::<Vec<_>>(), "no write but the 20, each once");
}

#[tokio::test]
async fn reads_fall_back_to_the_primary_when_the_replica_stops() {
    let (primary, replica) = primary_and_replica();
    let pool = pool_over(&primary, &replica, "connection_limit=4&pool_timeout=3");
    let reader = pool.read().await.expect("read()");
    assert!(in_recovery(&reader).await.unwrap());
    drop(reader);

    replica.stop().expect("stop the replica");
    let stopped = Instant::now();
    let mut failed = 0;
    let fell_back = loop {
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "reads never moved to the primary: {:?}",
            pool.hosts()
        );
        match pool.read().await {
            Ok(client) => match in_recovery(&client).await {
                Ok(false) => break stopped.elapsed(),
                Ok(true) => {}
                Err(_) => failed += 1,
            },
            Err(_) => failed += 1,
        }
    };
    eprintln!("reads on the primary {fell_back:?} after the replica stopped; {failed} failed reads");
    assert!(failed <= 2, "{failed} reads failed while the replica went away");
    let error = pool.get_for(TargetSessionAttrs::Standby).await.expect_err("no standby is up");
    let text = error.to_string();
    assert!(text.contains("standby") && text.contains("down"), "{text}");
    assert!(error.is_transient(), "{text}");
}

#[tokio::test]
async fn a_replica_behind_max_replica_lag_is_skipped_until_it_catches_up() {
    let (primary, replica) = primary_and_replica();
    let pool = pool_over(&primary, &replica, "connection_limit=4&max_replica_lag=1");
    let writer = pool.get().await.expect("get()");
    writer.execute("CREATE TABLE writes (id bigint PRIMARY KEY)", &[]).await.expect("create");
    replica.wait_for_replay(&primary, REPLAY).expect("replayed");
    let standby = common::monitor(&replica).await;
    standby.execute("SELECT pg_wal_replay_pause()", &[]).await.expect("pause replay");
    writer.execute("INSERT INTO writes VALUES (1)", &[]).await.expect("write");

    common::wait_until(Duration::from_secs(20), "the replica is seen behind", || async {
        matches!(pool.hosts()[1].role, Some(Role::Standby { lag: Some(lag) }) if lag > Duration::from_secs(1))
    })
    .await;
    let reader = pool.read().await.expect("read()");
    assert!(!in_recovery(&reader).await.unwrap(), "a lagging replica served a read");
    let count: i64 = reader.query_one("SELECT count(*) FROM writes", &[]).await.expect("read").get(0);
    assert_eq!(count, 1, "the primary has the write the replica has not replayed");
    drop(reader);

    standby.execute("SELECT pg_wal_replay_resume()", &[]).await.expect("resume replay");
    replica.wait_for_replay(&primary, REPLAY).expect("caught up");
    common::wait_until(Duration::from_secs(20), "reads back on the replica", || async {
        let client = pool.read().await.expect("read()");
        in_recovery(&client).await.unwrap()
    })
    .await;
    let reader = pool.read().await.expect("read()");
    let count: i64 = reader.query_one("SELECT count(*) FROM writes", &[]).await.expect("read").get(0);
    assert_eq!(count, 1);
}

/// The writer: ids 1, 2, 3... through `get()`, each acknowledged or not.
struct Ledger {
    acknowledged: BTreeSet<i64>,
    never_ran: BTreeSet<i64>,
    unknown: BTreeSet<i64>,
}

#[tokio::test]
async fn a_promoted_replica_takes_the_writes_and_none_is_lost() {
    let (primary, replica) = primary_and_replica();
    let pool = pool_over(&primary, &replica, "connection_limit=4&pool_timeout=2");
    let client = pool.get().await.expect("get()");
    client.execute("CREATE TABLE writes (id bigint PRIMARY KEY)", &[]).await.expect("create");
    drop(client);

    let mut ledger =
        Ledger { acknowledged: BTreeSet::new(), never_ran: BTreeSet::new(), unknown: BTreeSet::new() };
    let mut next = 1_i64;
    let write = async |ledger: &mut Ledger, id: i64| -> bool {
        let Ok(client) = pool.get().await else {
            ledger.never_ran.insert(id);
            return false;
        };
        match client.execute("INSERT INTO writes VALUES ($1)", &[&id]).await {
            Ok(_) => {
                ledger.acknowledged.insert(id);
                true
            }
            Err(error) if error.may_have_run() => {
                ledger.unknown.insert(id);
                false
            }
            Err(_) => {
                ledger.never_ran.insert(id);
                false
            }
        }
    };
    for _ in 0..50 {
        assert!(write(&mut ledger, next).await, "a write before the failover failed");
        next += 1;
    }

    // A planned failover: a clean stop (the primary sends its standbys all
    // it has before it exits), then the promotion.
    primary.stop().expect("stop the primary");
    let stopped = Instant::now();
    replica.promote().expect("promote the replica");
    let promoted = stopped.elapsed();
    let resumed = loop {
        assert!(stopped.elapsed() < Duration::from_secs(60), "writes never resumed: {:?}", pool.hosts());
        let id = next;
        next += 1;
        if write(&mut ledger, id).await {
            break stopped.elapsed();
        }
    };
    for _ in 0..50 {
        assert!(write(&mut ledger, next).await, "a write after the failover failed");
        next += 1;
    }
    eprintln!(
        "promotion took {promoted:?}; the first write on the new primary was acknowledged {resumed:?} after the \
         old one stopped; {} writes failed in between ({} may have run)",
        ledger.never_ran.len() + ledger.unknown.len(),
        ledger.unknown.len()
    );

    let hosts = pool.hosts();
    assert!(hosts[0].down, "{hosts:?}");
    assert_eq!(hosts[1].role, Some(Role::Primary { read_only: false }), "{hosts:?}");
    let monitor = common::monitor(&replica).await;
    let present: BTreeSet<i64> = ids(&monitor).await.into_iter().collect();
    let count: i64 = monitor.query_one("SELECT count(*) FROM writes", &[]).await.unwrap().get(0);
    assert_eq!(usize::try_from(count).unwrap(), present.len(), "an id twice");
    for id in &ledger.acknowledged {
        assert!(present.contains(id), "acknowledged write {id} is lost");
    }
    for id in &ledger.never_ran {
        assert!(!present.contains(id), "write {id} failed without running, yet it is there");
    }
    for id in &present {
        assert!(
            ledger.acknowledged.contains(id) || ledger.unknown.contains(id),
            "write {id} came from nowhere"
        );
    }
}

/// Checks counted per host pool and role, from a debugging recorder.
fn checks(snapshotter: &metrics_util::debugging::Snapshotter) -> (Vec<(String, String)>, Vec<String>) {
    let mut counted = Vec::new();
    let mut lags = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let label = |name: &str| {
            key.key().labels().find(|l| l.key() == name).map(|l| l.value().to_owned()).unwrap_or_default()
        };
        match value {
            metrics_util::debugging::DebugValue::Counter(n)
                if key.key().name() == pool_postgres::HOST_CHECK_METRIC && n > 0 =>
            {
                counted.push((label("pool"), label("role")));
            }
            metrics_util::debugging::DebugValue::Gauge(_)
                if key.key().name() == pool_postgres::REPLICA_LAG_METRIC =>
            {
                lags.push(label("pool"));
            }
            _ => {}
        }
    }
    (counted, lags)
}

#[tokio::test]
async fn two_replicas_share_the_reads_and_every_check_is_counted_per_host() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let primary = common::server();
    let first = primary.start_replica().expect("a first replica");
    let second = primary.start_replica().expect("a second replica");
    let url = format!(
        "postgres://{}@{},{},{}/postgres?connection_limit=6",
        primary.user(),
        entry(&primary),
        entry(&first),
        entry(&second)
    );
    let pool = PgPool::from_url(&url).expect("a pool over three servers");

    // Least-loaded: with a connection held on one replica, the next read
    // goes to the other.
    let one = pool.read().await.expect("a read");
    let other = pool.read().await.expect("another read");
    let port = async |client: &pool_postgres::Client| -> i32 {
        client.query_one("SELECT inet_server_port()", &[]).await.expect("port").get(0)
    };
    let (a, b) = (port(&one).await, port(&other).await);
    let replicas = [i32::from(first.port()), i32::from(second.port())];
    assert!(
        replicas.contains(&a) && replicas.contains(&b) && a != b,
        "reads on {a} and {b}, replicas {replicas:?}"
    );
    assert!(in_recovery(&one).await.unwrap() && in_recovery(&other).await.unwrap());

    let (counted, lags) = checks(&snapshotter);
    let name = |server: &TestServer| format!("postgres@{}", entry(server));
    assert!(counted.contains(&(name(&primary), "primary".to_owned())), "{counted:?}");
    assert!(counted.contains(&(name(&first), "standby".to_owned())), "{counted:?}");
    assert!(counted.contains(&(name(&second), "standby".to_owned())), "{counted:?}");
    assert!(lags.contains(&name(&first)) && lags.contains(&name(&second)), "{lags:?}");
    assert!(!lags.contains(&name(&primary)), "a primary has no replay lag: {lags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_reads_pipeline_on_the_replica_and_shared_writes_on_the_primary() {
    let (primary, replica) = primary_and_replica();
    let pool = pool_over(&primary, &replica, "connection_limit=4&shared_connections=1");
    let (writes, reads) = (pool.shared(), pool.shared_read());
    writes.execute("CREATE TABLE shared_writes (id bigint PRIMARY KEY)", &[]).await.expect("create");
    for id in 0..100_i64 {
        assert_eq!(writes.execute("INSERT INTO shared_writes VALUES ($1)", &[&id]).await.unwrap(), 1);
    }
    replica.wait_for_replay(&primary, REPLAY).expect("the replica replays the writes");
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..32_i64 {
        let reads = reads.clone();
        tasks.spawn(async move {
            let row = reads
                .query_one("SELECT pg_is_in_recovery(), count(*) FROM shared_writes WHERE id <= $1", &[&task])
                .await
                .unwrap();
            assert!(row.get::<_, bool>(0), "a shared read landed on the primary");
            assert_eq!(row.get::<_, i64>(1), task + 1);
        });
    }
    common::join_all(tasks).await;
    let on_primary: bool = writes.query_one("SELECT pg_is_in_recovery()", &[]).await.unwrap().get(0);
    assert!(!on_primary, "shared() follows get(): the primary");
    // One lane per host, both inside the pool's budget.
    assert_eq!(reads.status().connections, 2, "{:?}", reads.status());
    assert_eq!(pool.status().in_use, 2, "{:?}", pool.status());
}

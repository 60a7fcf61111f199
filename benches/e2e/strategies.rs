//! The strategies: how each one gets a connection and runs one operation of
//! a workload on it.
//!
//! Every Rust strategy runs the same operation code (the workload's SQL,
//! a random key, the row read back), so the only difference between them is
//! where the connection comes from and whether the statement is prepared
//! per call or cached.

use pool_core::ErrorChain;
use serde::{Deserialize, Serialize};
use tokio_postgres::NoTls;

use crate::measurement::OpError;
use crate::workloads::Workload;

/// A way of getting connections, compared in the same run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Strategy {
    /// A new tokio-postgres connection per operation.
    Naive,
    /// A new `PgPool` built (and dropped) per operation: the broken pattern.
    NaivePool,
    /// deadpool-postgres with SQL text (`client.query_one(sql, ..)`).
    Deadpool,
    /// deadpool-postgres with `prepare_cached`.
    DeadpoolCached,
    /// bb8-postgres with SQL text.
    Bb8,
    /// pool-postgres with SQL text (its statement cache serves it).
    Pool,
    /// pool-postgres with a statement prepared once per connection
    /// (`prepare_cached`, then `query_one(&stmt)`).
    PoolPrepared,
    /// pool-postgres in shared mode (`pool.shared().query_one(sql, ..)`):
    /// statements pipelined over at most `shared_connections` (4) of the
    /// pool's connections; `short_tx` takes an exclusive `get()`, as shared
    /// mode refuses transactions.
    PoolShared,
    /// The reference for shared mode: 4 tokio-postgres clients shared by
    /// every task, round robin, each statement prepared once per client;
    /// `short_tx` as one simple-protocol `BEGIN; ...; COMMIT` batch.
    SharedClient,
    /// pgbench with persistent connections (`-M prepared`).
    Pgbench,
    /// pgbench with a new connection per transaction (`-C -M prepared`).
    PgbenchC,
    /// Through PgBouncer in transaction mode: pool-postgres in pooler mode
    /// (`pgbouncer=true`) with SQL text and bound parameters.
    PoolPgbouncer,
    /// Through PgBouncer: deadpool-postgres with `simple_query` and the key
    /// written into the SQL text, the usual way to use it behind a
    /// transaction pooler.
    DeadpoolSimple,
    /// Through PgBouncer: pgbench with `-M simple`.
    PgbenchSimple,
}

impl Strategy {
    /// Every strategy, in table order.
    pub(crate) const ALL: [Strategy; 11] = [
        Strategy::Naive,
        Strategy::NaivePool,
        Strategy::Deadpool,
        Strategy::DeadpoolCached,
        Strategy::Bb8,
        Strategy::Pool,
        Strategy::PoolPrepared,
        Strategy::PoolShared,
        Strategy::SharedClient,
        Strategy::Pgbench,
        Strategy::PgbenchC,
    ];

    /// The name used on the command line and in the output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Naive => "naive",
            Self::NaivePool => "naive_pool",
            Self::Deadpool => "deadpool",
            Self::DeadpoolCached => "deadpool_cached",
            Self::Bb8 => "bb8",
            Self::Pool => "pool",
            Self::PoolPrepared => "pool_prepared",
            Self::PoolShared => "pool_shared",
            Self::SharedClient => "shared_client",
            Self::Pgbench => "pgbench",
            Self::PgbenchC => "pgbench_c",
            Self::PoolPgbouncer => "pool_pgbouncer",
            Self::DeadpoolSimple => "deadpool_simple",
            Self::PgbenchSimple => "pgbench_simple",
        }
    }

    /// The strategies of the through-PgBouncer part, in table order.
    pub(crate) const THROUGH_PGBOUNCER: [Strategy; 3] =
        [Strategy::PoolPgbouncer, Strategy::DeadpoolSimple, Strategy::PgbenchSimple];

    /// Parses a name from [`Strategy::name`].
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().chain(Self::THROUGH_PGBOUNCER).find(|s| s.name() == name)
    }

    /// Whether this is one of the pgbench reference runs.
    pub(crate) fn is_pgbench(self) -> bool {
        matches!(self, Self::Pgbench | Self::PgbenchC | Self::PgbenchSimple)
    }

    /// Whether this strategy runs in the through-PgBouncer part.
    pub(crate) fn through_pgbouncer(self) -> bool {
        Self::THROUGH_PGBOUNCER.contains(&self)
    }
}

type Bb8Pool = bb8::Pool<bb8_postgres::PostgresConnectionManager<NoTls>>;

/// A strategy set up for a cell, shared by all its tasks.
pub(crate) enum Runner {
    Naive { config: tokio_postgres::Config },
    NaivePool { config: tokio_postgres::Config, pool_size: usize },
    Deadpool { pool: deadpool_postgres::Pool, cached: bool },
    DeadpoolSimple { pool: deadpool_postgres::Pool },
    Bb8 { pool: Bb8Pool },
    Pool { pool: pool_postgres::PgPool, prepared: bool },
    PoolShared { pool: pool_postgres::PgPool, shared: pool_postgres::Shared },
    SharedClient { clients: Vec<HandShared>, turn: std::sync::atomic::AtomicUsize },
}

/// How many clients [`Strategy::SharedClient`] shares: as many as shared
/// mode's default `shared_connections`.
const SHARED_CLIENTS: usize = pool_postgres::DEFAULT_SHARED_CONNECTIONS;

/// One hand-shared client and its statements, prepared on first use.
pub(crate) struct HandShared {
    client: tokio_postgres::Client,
    statements: [tokio::sync::OnceCell<tokio_postgres::Statement>; 3],
}

impl Runner {
    /// Sets up `strategy` against the server `config` points at. Pools are
    /// built empty: they connect during the warm-up.
    pub(crate) async fn new(
        strategy: Strategy,
        config: &tokio_postgres::Config,
        pool_size: usize,
    ) -> Result<Self, String> {
        Ok(match strategy {
            Strategy::Naive => Self::Naive { config: config.clone() },
            Strategy::NaivePool => Self::NaivePool { config: config.clone(), pool_size },
            Strategy::Deadpool | Strategy::DeadpoolCached => {
                let pool = deadpool(config, pool_size)?;
                Self::Deadpool { pool, cached: strategy == Strategy::DeadpoolCached }
            }
            Strategy::DeadpoolSimple => Self::DeadpoolSimple { pool: deadpool(config, pool_size)? },
            Strategy::Bb8 => {
                // bb8's defaults apart from max_size (including
                // test_on_check_out, which runs an empty query per get).
                let manager = bb8_postgres::PostgresConnectionManager::new(config.clone(), NoTls);
                let pool = bb8::Pool::builder()
                    .max_size(pool_size as u32)
                    .build(manager)
                    .await
                    .map_err(|e| format!("bb8: {e}"))?;
                Self::Bb8 { pool }
            }
            Strategy::Pool | Strategy::PoolPrepared | Strategy::PoolPgbouncer => {
                let pooler = if strategy == Strategy::PoolPgbouncer {
                    pool_postgres::Pooler::Transaction
                } else {
                    pool_postgres::Pooler::None
                };
                let pool = pool_postgres::PgPool::builder(config.clone())
                    .max_size(pool_size)
                    .pooler(pooler)
                    .build()
                    .map_err(|e| format!("pool-postgres: {e}"))?;
                Self::Pool { pool, prepared: strategy == Strategy::PoolPrepared }
            }
            Strategy::PoolShared => {
                let pool = pool_postgres::PgPool::builder(config.clone())
                    .max_size(pool_size)
                    .build()
                    .map_err(|e| format!("pool-postgres: {e}"))?;
                let shared = pool.shared();
                Self::PoolShared { pool, shared }
            }
            Strategy::SharedClient => {
                let mut clients = Vec::with_capacity(SHARED_CLIENTS);
                for _ in 0..SHARED_CLIENTS {
                    let (client, connection) =
                        config.connect(NoTls).await.map_err(|e| format!("connect: {e}"))?;
                    tokio::spawn(connection);
                    clients.push(HandShared { client, statements: Default::default() });
                }
                Self::SharedClient { clients, turn: std::sync::atomic::AtomicUsize::new(0) }
            }
            Strategy::Pgbench | Strategy::PgbenchC | Strategy::PgbenchSimple => {
                return Err(format!("{} runs as its own process", strategy.name()));
            }
        })
    }

    /// Runs one operation of `workload` with `key`.
    pub(crate) async fn op(&self, workload: Workload, key: i32) -> Result<(), OpError> {
        match self {
            Self::Naive { config } => {
                let (mut client, connection) = config.connect(NoTls).await.map_err(|e| OpError::of(&e))?;
                let driver = tokio::spawn(connection);
                let out = raw_op(&mut client, workload.sql(), workload, key).await;
                // Close the session and wait for the socket to go, as a
                // program that connects per call does when the client drops.
                drop(client);
                let _ = driver.await;
                out
            }
            Self::NaivePool { config, pool_size } => {
                let pool = pool_postgres::PgPool::builder(config.clone())
                    .max_size(*pool_size)
                    .build()
                    .map_err(|e| OpError::new("config", e.to_string()))?;
                let mut client = pool.get().await.map_err(|e| pool_error(&e))?;
                let out = pool_op(&mut client, workload.sql(), workload, key).await;
                drop(client);
                drop(pool);
                out
            }
            Self::Deadpool { pool, cached } => {
                let mut client = pool.get().await.map_err(|e| deadpool_error(&e))?;
                if *cached {
                    let statement =
                        client.prepare_cached(workload.sql()).await.map_err(|e| OpError::of(&e))?;
                    raw_op(&mut client, &statement, workload, key).await
                } else {
                    raw_op(&mut client, workload.sql(), workload, key).await
                }
            }
            Self::DeadpoolSimple { pool } => {
                let client = pool.get().await.map_err(|e| deadpool_error(&e))?;
                simple_op(&client, workload, key).await
            }
            Self::Bb8 { pool } => {
                let mut client = pool.get().await.map_err(|e| match e {
                    bb8::RunError::User(e) => OpError::of(&e),
                    bb8::RunError::TimedOut => {
                        OpError::new("timeout", "bb8: timed out waiting for a connection")
                    }
                })?;
                raw_op(&mut client, workload.sql(), workload, key).await
            }
            Self::Pool { pool, prepared } => {
                let mut client = pool.get().await.map_err(|e| pool_error(&e))?;
                if *prepared {
                    let statement =
                        client.prepare_cached(workload.sql()).await.map_err(|e| OpError::of(&e))?;
                    pool_op(&mut client, &statement, workload, key).await
                } else {
                    pool_op(&mut client, workload.sql(), workload, key).await
                }
            }
            Self::PoolShared { pool, shared } => match workload {
                Workload::Select1 => check_row(
                    workload,
                    &shared.query_one(workload.sql(), &[]).await.map_err(|e| db(&e))?,
                    key,
                ),
                Workload::PointRead => check_row(
                    workload,
                    &shared.query_one(workload.sql(), &[&key]).await.map_err(|e| db(&e))?,
                    key,
                ),
                Workload::ShortTx => {
                    let mut client = pool.get().await.map_err(|e| pool_error(&e))?;
                    pool_op(&mut client, workload.sql(), workload, key).await
                }
            },
            Self::SharedClient { clients, turn } => {
                let at = turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % clients.len();
                let HandShared { client, statements } = &clients[at];
                if workload == Workload::ShortTx {
                    return simple_op(client, workload, key).await;
                }
                let index = Workload::ALL.iter().position(|w| *w == workload).unwrap_or(0);
                let statement = statements[index]
                    .get_or_try_init(|| client.prepare(workload.sql()))
                    .await
                    .map_err(|e| db(&e))?;
                let row = match workload {
                    Workload::Select1 => client.query_one(statement, &[]).await,
                    _ => client.query_one(statement, &[&key]).await,
                };
                check_row(workload, &row.map_err(|e| db(&e))?, key)
            }
        }
    }
}

/// A deadpool-postgres pool as its README sets one up: a Manager with
/// `RecyclingMethod::Fast` (its default) on the Tokio runtime, default pool
/// settings apart from `max_size`.
fn deadpool(config: &tokio_postgres::Config, pool_size: usize) -> Result<deadpool_postgres::Pool, String> {
    let manager = deadpool_postgres::Manager::from_config(
        config.clone(),
        NoTls,
        deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(pool_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| format!("deadpool: {e}"))
}

fn pool_error(error: &pool_postgres::PoolError) -> OpError {
    if error.is_timeout() {
        OpError::new("timeout", ErrorChain(error).to_string())
    } else {
        OpError::of(error)
    }
}

fn deadpool_error(error: &deadpool_postgres::PoolError) -> OpError {
    match error {
        deadpool_postgres::PoolError::Timeout(_) => OpError::new("timeout", error.to_string()),
        _ => OpError::of(error),
    }
}

fn db(e: &(dyn std::error::Error + 'static)) -> OpError {
    OpError::of(e)
}

fn one_row_changed(n: u64) -> Result<(), OpError> {
    if n == 1 { Ok(()) } else { Err(OpError::new("other", format!("UPDATE changed {n} rows, expected 1"))) }
}

fn check_row(workload: Workload, row: &tokio_postgres::Row, key: i32) -> Result<(), OpError> {
    let value = match workload {
        Workload::Select1 => row.try_get::<_, i32>(0).ok().map(i64::from),
        _ => row.try_get::<_, i64>(0).ok(),
    };
    check_value(workload, value, key)
}

/// Checks the first column of the row a read got back: 1 for `select1`,
/// at least the key for `point_read` (the value starts at the key and
/// `short_tx` only adds to it).
fn check_value(workload: Workload, value: Option<i64>, key: i32) -> Result<(), OpError> {
    match (workload, value) {
        (Workload::Select1, Some(1)) => Ok(()),
        (Workload::PointRead, Some(v)) if v >= i64::from(key) => Ok(()),
        _ => Err(OpError::new("other", format!("unexpected row for {}", workload.name()))),
    }
}

/// One operation on a plain tokio-postgres client, with SQL text (each
/// statement is then prepared, one round trip, and executed, another) or
/// with a prepared statement.
async fn raw_op<Q>(
    client: &mut tokio_postgres::Client,
    query: &Q,
    workload: Workload,
    key: i32,
) -> Result<(), OpError>
where
    Q: tokio_postgres::ToStatement + ?Sized + Sync,
{
    match workload {
        Workload::Select1 => {
            check_row(workload, &client.query_one(query, &[]).await.map_err(|e| db(&e))?, key)
        }
        Workload::PointRead => {
            check_row(workload, &client.query_one(query, &[&key]).await.map_err(|e| db(&e))?, key)
        }
        Workload::ShortTx => {
            let tx = client.transaction().await.map_err(|e| db(&e))?;
            let n = tx.execute(query, &[&key]).await.map_err(|e| db(&e))?;
            tx.commit().await.map_err(|e| db(&e))?;
            one_row_changed(n)
        }
    }
}

/// One operation through pool-postgres's client guard, with SQL text
/// (prepared once per connection by its statement cache, also inside
/// `transaction()`) or with a prepared statement.
async fn pool_op<Q>(
    client: &mut pool_postgres::Client,
    query: &Q,
    workload: Workload,
    key: i32,
) -> Result<(), OpError>
where
    Q: pool_postgres::Query + ?Sized,
{
    match workload {
        Workload::Select1 => {
            check_row(workload, &client.query_one(query, &[]).await.map_err(|e| db(&e))?, key)
        }
        Workload::PointRead => {
            check_row(workload, &client.query_one(query, &[&key]).await.map_err(|e| db(&e))?, key)
        }
        Workload::ShortTx => {
            let tx = client.transaction().await.map_err(|e| db(&e))?;
            let n = tx.execute(query, &[&key]).await.map_err(|e| db(&e))?;
            tx.commit().await.map_err(|e| db(&e))?;
            one_row_changed(n)
        }
    }
}

/// One operation with the simple protocol, the key written into the
/// workload's SQL text (an `i32` we drew, so no quoting is needed), as code
/// behind a transaction pooler without a pooler mode is written: one round
/// trip (for `short_tx` one `BEGIN; ...; COMMIT` batch), text results parsed
/// back.
async fn simple_op(client: &tokio_postgres::Client, workload: Workload, key: i32) -> Result<(), OpError> {
    let statement = workload.sql().replace("$1", &key.to_string());
    let sql = if workload == Workload::ShortTx { format!("BEGIN; {statement}; COMMIT") } else { statement };
    let messages = client.simple_query(&sql).await.map_err(|e| db(&e))?;
    if workload == Workload::ShortTx {
        // BEGIN, UPDATE, COMMIT: the UPDATE's row count is the second.
        let mut counts = messages.iter().filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        });
        return one_row_changed(counts.nth(1).unwrap_or(0));
    }
    let value = messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse::<i64>().ok()),
        _ => None,
    });
    check_value(workload, value, key)
}

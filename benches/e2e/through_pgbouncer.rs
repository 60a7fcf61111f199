//! The through-PgBouncer part: the same workloads through a throwaway
//! PgBouncer in transaction mode in front of a throwaway server, for the
//! three ways to be correct there: pool-postgres in pooler mode (SQL text
//! with bound parameters, sent as unnamed statements), deadpool-postgres
//! with `simple_query` (the key written into the text), and pgbench with
//! `-M simple` as the reference.
//!
//! The sampler counts the server's connections (PgBouncer's pool), not the
//! clients' connections to PgBouncer.

use pool_postgres_test_server::{TestPgBouncer, TestServer};

use crate::strategies::Strategy;
use crate::workloads::Workload;
use crate::{CellRecord, Part, Run, Settings, prepare, run_part};

/// What the part measured.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) cells: Vec<CellRecord>,
    /// PgBouncer's version line, when the part ran.
    pub(crate) pgbouncer_version: Option<String>,
    /// The server's version, when the part ran (empty otherwise).
    pub(crate) server_version: String,
}

/// A running PgBouncer and the server behind it, kept alive for the part.
struct Stack {
    /// Where the cells connect: PgBouncer.
    url: String,
    /// The server itself (for the setup and the sampler).
    server_url: String,
    version: String,
    // Field order: PgBouncer stops before its server.
    _pooler: TestPgBouncer,
    _server: TestServer,
}

/// The part's cells: every workload × its concurrency levels × its strategies.
pub(crate) fn cells(settings: &Settings) -> Vec<(Workload, usize, Strategy)> {
    let mut cells = Vec::new();
    for &w in &settings.workloads {
        for &c in &settings.pgbouncer_concurrency {
            cells.extend(settings.pgbouncer_strategies.iter().map(|&s| (w, c, s)));
        }
    }
    cells
}

/// Runs `cells` through a fresh PgBouncer; a machine without PgBouncer (or
/// without server binaries) skips the part with a line on stderr.
pub(crate) fn run(
    run: &Run<'_>,
    runtime: &tokio::runtime::Runtime,
    cells: Vec<(Workload, usize, Strategy)>,
    done: &mut usize,
    total: usize,
) -> Result<Outcome, String> {
    if cells.is_empty() {
        return Ok(Outcome::default());
    }
    let settings = run.settings;
    let stack = match start(settings) {
        Ok(stack) => stack,
        Err(reason) => {
            eprintln!("e2e: the through-PgBouncer part is skipped: {reason}");
            return Ok(Outcome::default());
        }
    };
    let (server_version, _) = runtime.block_on(prepare(&stack.server_url, settings.rows))?;
    eprintln!("e2e: through {} (transaction mode)", stack.version);
    let part = Part {
        url: &stack.url,
        server_url: &stack.server_url,
        // PgBouncer keeps its server connections between cells.
        lingering: i64::from(settings.pgbouncer_pool_size),
        cells,
        keep_timeline: false,
    };
    let cells = runtime.block_on(run_part(run, part, done, total))?;
    Ok(Outcome { cells, pgbouncer_version: Some(stack.version.clone()), server_version })
}

/// Starts a throwaway server and a PgBouncer in transaction mode in front
/// of it, with `default_pool_size` from the settings and room for every
/// client connection the cells open.
fn start(settings: &Settings) -> Result<Stack, String> {
    if !TestPgBouncer::available() {
        return Err("no pgbouncer binary (install Debian's pgbouncer package)".into());
    }
    if !TestServer::binaries_available() {
        return Err("no PostgreSQL server binaries for its own server".into());
    }
    let pool_size = settings.pgbouncer_pool_size;
    let server = TestServer::builder()
        .max_connections(pool_size + 20)
        .start()
        .map_err(|e| format!("could not start a throwaway PostgreSQL server: {e}"))?;
    let most_clients = settings.pgbouncer_concurrency.iter().copied().max().unwrap_or(1);
    let pooler = TestPgBouncer::builder(&server)
        .default_pool_size(pool_size)
        .max_client_conn(u32::try_from(most_clients.max(settings.pool_size) + 50).unwrap_or(u32::MAX))
        .start()
        .map_err(|e| format!("could not start PgBouncer: {e}"))?;
    Ok(Stack {
        url: pooler.url(),
        server_url: server.url(),
        version: pooler.version().to_owned(),
        _pooler: pooler,
        _server: server,
    })
}

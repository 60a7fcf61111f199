//! `pgpool`: an operator's view of a PostgreSQL server's connections.
//!
//! ```text
//! cargo install --path pool-postgres/cli   # or, from a registry: cargo install pool-postgres-cli
//!
//! pgpool stat                        # who holds the connections, against the limits
//! pgpool stat --watch 2              # the same, refreshed every 2 s until Ctrl-C
//! pgpool budget --instances 4 --pool-size 20
//! pgpool cleanup --idle-longer-than 10m --application billing --dry-run
//! ```
//!
//! It connects to `--url` or `$DATABASE_URL` (pool parameters in the URL's
//! query string are accepted and ignored) with one connection whose
//! `application_name` is `pgpool`, and prints a table, or JSON with
//! `--json`.
//!
//! Exit codes: 0 success; 1 an error (cannot connect, no permission, ...),
//! with a message on stderr that never shows the password; 2 bad arguments;
//! 3 `budget` found that the pools do not fit.

mod duration;
mod table;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pool_postgres::insight::{self, Budget, ConnectionGroup, IdleFilter, IdleSession, ServerLimits};
use pool_postgres::pool_core::ErrorChain;
use pool_postgres::tokio_postgres;
use pool_postgres::{Client, PgPool, PgPoolBuilder};
use serde_json::{Value, json};

use crate::table::Table;

/// Connections of a PostgreSQL server: who holds them, whether a
/// deployment's pools fit, and ending idle ones.
///
/// Connects to --url or $DATABASE_URL.
#[derive(Parser, Debug)]
#[command(name = "pgpool", version)]
struct Cli {
    /// The server, as postgres://user:password@host:port/database (default: $DATABASE_URL).
    #[arg(long, global = true, value_name = "URL")]
    url: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Connections by state and application, against max_connections and the reserved slots.
    Stat {
        /// Refresh every SECONDS (e.g. 2, 0.5, 10s) until Ctrl-C.
        #[arg(long, value_name = "SECONDS", value_parser = duration::parse_interval)]
        watch: Option<Duration>,
    },
    /// Whether N instances of a service, each with a pool of M connections, fit.
    Budget {
        /// Instances of the service (N).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        instances: u32,
        /// Each instance's pool size (M, its max_size or connection_limit).
        #[arg(long, value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
        pool_size: u32,
        /// The service's application_name: connections it already holds count
        /// as its own, not as others'.
        #[arg(long, value_name = "NAME")]
        application: Option<String>,
    },
    /// Terminate idle connections of the current database (never superusers' unless asked, never our own).
    Cleanup {
        /// Only connections idle longer than this (500ms, 30s, 5m, 1h).
        #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
        idle_longer_than: Duration,
        /// Only connections with this application_name.
        #[arg(long, value_name = "NAME")]
        application: Option<String>,
        /// Also superusers' connections.
        #[arg(long)]
        include_superusers: bool,
        /// List what would be terminated, terminate nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Why the command did not succeed.
enum Failure {
    /// An error: exit code 1.
    Error(String),
    /// `budget` found the pools do not fit: exit code 3.
    DoesNotFit,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::Error(message)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pgpool: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::DoesNotFit) => ExitCode::from(3),
        Err(Failure::Error(message)) => {
            eprintln!("pgpool: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let url = match cli.url.or_else(|| std::env::var("DATABASE_URL").ok()) {
        Some(url) if !url.trim().is_empty() => url,
        _ => {
            return Err(Failure::Error(
                "no server given: pass --url postgres://user:password@host:port/database or set DATABASE_URL"
                    .to_owned(),
            ));
        }
    };
    let db = Db::connect(&url).await?;
    if let Some(note) = db.visibility_note().await {
        eprintln!("pgpool: {note}");
    }
    let outcome = match cli.command {
        Command::Stat { watch: None } => stat(&db, cli.json).await,
        Command::Stat { watch: Some(every) } => watch(&db, cli.json, every).await,
        Command::Budget { instances, pool_size, application } => {
            budget(&db, cli.json, instances, pool_size, application.as_deref()).await
        }
        Command::Cleanup { idle_longer_than, application, include_superusers, dry_run } => {
            let filter =
                IdleFilter { idle_longer_than, application_name: application, include_superusers, dry_run };
            cleanup(&db, cli.json, &filter).await
        }
    };
    db.close().await;
    outcome
}

/// One connection to the server, through a pool of one (for its timeouts,
/// TLS per `sslmode` and error messages).
struct Db {
    pool: PgPool,
    client: Client,
    target: String,
}

impl Db {
    async fn connect(url: &str) -> Result<Self, String> {
        let pool = PgPoolBuilder::from_url(url)
            .and_then(|builder| {
                builder.name("pgpool").max_size(1).acquire_timeout(Duration::from_secs(10)).build()
            })
            .map_err(|e| e.to_string())?;
        let target = describe_target(pool.postgres_config());
        let client = pool.get().await.map_err(|e| format!("cannot connect to {target}: {e}"))?;
        Ok(Self { pool, client, target })
    }

    /// A note for stderr when this user cannot see other users' sessions in
    /// `pg_stat_activity` (their state shows as NULL, "unknown" here), so
    /// an empty or partial answer is not taken for the truth.
    async fn visibility_note(&self) -> Option<String> {
        let row = self
            .client
            .query_one(
                "SELECT current_user::text, \
                        coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) \
                        OR pg_has_role(current_user, 'pg_read_all_stats', 'member')",
                &[],
            )
            .await
            .ok()?;
        let (user, sees_all): (String, bool) = (row.get(0), row.get(1));
        (!sees_all).then(|| {
            format!(
                "note: user {user} sees only its own sessions' state in pg_stat_activity; others' show as \
                 \"unknown\" and cannot be matched as idle (GRANT pg_read_all_stats TO {user}, and \
                 pg_signal_backend to terminate them)"
            )
        })
    }

    async fn close(self) {
        drop(self.client);
        let _ = self.pool.close_and_wait(Duration::from_secs(2)).await;
    }
}

/// `host:port/dbname as user`, never the password.
fn describe_target(config: &tokio_postgres::Config) -> String {
    let host = config.get_hosts().first().map_or_else(
        || "localhost".to_owned(),
        |host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        },
    );
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let dbname = config.get_dbname().unwrap_or(user);
    format!("{host}:{port}/{dbname} as {user}")
}

async fn read_stat(db: &Db) -> Result<(ServerLimits, Vec<ConnectionGroup>), String> {
    let limits = insight::server_limits(&db.client)
        .await
        .map_err(|e| format!("cannot read the server's limits: {}", ErrorChain(&e)))?;
    let groups = insight::connections_by_state(&db.client)
        .await
        .map_err(|e| format!("cannot read pg_stat_activity: {}", ErrorChain(&e)))?;
    Ok((limits, groups))
}

fn limits_json(limits: &ServerLimits) -> Value {
    json!({
        "max_connections": limits.max_connections,
        "superuser_reserved_connections": limits.superuser_reserved,
        "reserved_connections": limits.reserved,
        "usable": limits.usable(),
        "in_use": limits.in_use,
        "available": limits.available(),
    })
}

fn stat_json(limits: &ServerLimits, groups: &[ConnectionGroup]) -> Value {
    json!({
        "server": limits_json(limits),
        "connections": groups.iter().map(|g| json!({
            "state": g.state,
            "application_name": g.application_name,
            "count": g.count,
        })).collect::<Vec<_>>(),
    })
}

fn stat_text(target: &str, limits: &ServerLimits, groups: &[ConnectionGroup]) -> String {
    let mut out = format!(
        "{target}\nmax_connections {}, reserved {} (superuser) + {}, usable {}; in use {}, available {}\n\n",
        limits.max_connections,
        limits.superuser_reserved,
        limits.reserved,
        limits.usable(),
        limits.in_use,
        limits.available(),
    );
    let mut table = Table::new(&["STATE", "APPLICATION", "#CONNECTIONS"]);
    for group in groups {
        let application = if group.application_name.is_empty() {
            "(none)".to_owned()
        } else {
            group.application_name.clone()
        };
        table.row(vec![group.state.clone(), application, group.count.to_string()]);
    }
    table.row(vec![
        "total".to_owned(),
        String::new(),
        groups.iter().map(|g| g.count).sum::<i64>().to_string(),
    ]);
    out.push_str(&table.render());
    out
}

async fn stat(db: &Db, json: bool) -> Result<(), Failure> {
    let (limits, groups) = read_stat(db).await?;
    if json {
        println!("{}", stat_json(&limits, &groups));
    } else {
        print!("{}", stat_text(&db.target, &limits, &groups));
    }
    Ok(())
}

/// `stat` again and again, redrawn in place, until Ctrl-C (or SIGTERM).
async fn watch(db: &Db, json: bool, every: Duration) -> Result<(), Failure> {
    let mut stop = std::pin::pin!(stop_signal()?);
    loop {
        let (limits, groups) = read_stat(db).await?;
        if json {
            println!("{}", stat_json(&limits, &groups));
        } else {
            // Clear the screen and go home, then draw.
            print!(
                "\x1b[2J\x1b[H{}\nevery {} - Ctrl-C to stop\n",
                stat_text(&db.target, &limits, &groups),
                duration::show(every)
            );
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = &mut stop => return Ok(()),
        }
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed
/// now, so a signal from here on is caught.
fn stop_signal() -> Result<impl Future<Output = ()>, String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let installed = |kind| signal(kind).map_err(|e| format!("cannot install a signal handler: {e}"));
        let mut interrupt = installed(SignalKind::interrupt())?;
        let mut terminate = installed(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

async fn budget(
    db: &Db,
    json: bool,
    instances: u32,
    pool_size: u32,
    application: Option<&str>,
) -> Result<(), Failure> {
    let limits = insight::server_limits(&db.client)
        .await
        .map_err(|e| format!("cannot read the server's limits: {}", ErrorChain(&e)))?;
    // Our own connection is not part of anyone's deployment; the service's
    // connections already open are part of what it needs, not others'.
    let mut own = 1;
    if let Some(name) = application {
        let row = db
            .client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND application_name = $1",
                &[&name],
            )
            .await
            .map_err(|e| format!("cannot read pg_stat_activity: {}", ErrorChain(&e)))?;
        own += row.get::<_, i64>(0);
    }
    let budget = Budget::compute(&limits, instances, pool_size as usize, own);
    if json {
        println!(
            "{}",
            json!({
                "instances": budget.instances,
                "pool_size": budget.pool_size,
                "needed": budget.needed,
                "usable": budget.usable,
                "others": budget.others,
                "headroom": budget.headroom,
                "fits": budget.fits(),
                "server": limits_json(&limits),
                "explanation": budget.to_string(),
            })
        );
    } else {
        println!("{}", db.target);
        println!("{budget}");
        println!(
            "  usable = max_connections {} - superuser_reserved_connections {} - reserved_connections {} = {}",
            limits.max_connections,
            limits.superuser_reserved,
            limits.reserved,
            limits.usable()
        );
        println!(
            "  headroom = usable {} - held by others {} - needed {} = {}",
            budget.usable, budget.others, budget.needed, budget.headroom
        );
        if !budget.fits() {
            println!(
                "  to fit: lower the pool size (connection_limit) to {} or less, run fewer instances, \
                 or put a pooler such as PgBouncer in between",
                (budget.usable - budget.others).max(0) / i64::from(instances)
            );
        }
    }
    if budget.fits() { Ok(()) } else { Err(Failure::DoesNotFit) }
}

async fn cleanup(db: &Db, json: bool, filter: &IdleFilter) -> Result<(), Failure> {
    let sessions = insight::terminate_idle(&db.client, filter).await.map_err(|e| {
        format!(
            "cannot terminate idle connections: {} (ending other users' sessions needs a superuser \
             or the pg_signal_backend role)",
            ErrorChain(&e)
        )
    })?;
    let scope = format!(
        "idle longer than {} in database {}, {}, {}",
        duration::show(filter.idle_longer_than),
        db.client
            .query_one("SELECT current_database()::text", &[])
            .await
            .map_or_else(|_| "(current)".to_owned(), |row| row.get::<_, String>(0)),
        filter
            .application_name
            .as_ref()
            .map_or_else(|| "any application".to_owned(), |a| format!("application {a}")),
        if filter.include_superusers { "superusers included" } else { "superusers spared" },
    );
    if json {
        println!("{}", cleanup_json(filter, &sessions));
        return Ok(());
    }
    if sessions.is_empty() {
        println!("no idle connection matches ({scope})");
        return Ok(());
    }
    let verb = if filter.dry_run { "would terminate" } else { "terminated" };
    let ended = sessions.iter().filter(|s| s.terminated || filter.dry_run).count();
    println!("{verb} {ended} idle connection(s) ({scope}){}", if filter.dry_run { " [dry run]" } else { "" });
    let mut table = Table::new(&["#PID", "APPLICATION", "USER", "#IDLE FOR", "ACTION"]);
    for session in &sessions {
        let action = match (filter.dry_run, session.terminated) {
            (true, _) => "would terminate",
            (false, true) => "terminated",
            (false, false) => "already gone",
        };
        table.row(vec![
            session.pid.to_string(),
            if session.application_name.is_empty() {
                "(none)".to_owned()
            } else {
                session.application_name.clone()
            },
            session.user.clone(),
            duration::show(session.idle_for),
            action.to_owned(),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

fn cleanup_json(filter: &IdleFilter, sessions: &[IdleSession]) -> Value {
    json!({
        "dry_run": filter.dry_run,
        "idle_longer_than_seconds": filter.idle_longer_than.as_secs_f64(),
        "application_name": filter.application_name,
        "include_superusers": filter.include_superusers,
        "sessions": sessions.iter().map(|s| json!({
            "pid": s.pid,
            "application_name": s.application_name,
            "user": s.user,
            "idle_seconds": (s.idle_for.as_secs_f64() * 1000.0).round() / 1000.0,
            "terminated": s.terminated,
        })).collect::<Vec<_>>(),
    })
}

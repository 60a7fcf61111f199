//! The project's main job: "too many clients" reproduced, and cured.
//!
//! The same workload (by default 200 concurrent tasks, each running five
//! queries, one of which sleeps 20 ms so connections are held a moment) runs
//! three ways, one after another, against a server allowing 20 connections:
//!
//! - `connection_per_call`: every task opens its own tokio-postgres connection;
//! - `pool_per_call`: every task builds its own `PgPool` (the broken pattern);
//! - `shared_pool`: one `PgPool` of 10 shared by every task.
//!
//! A monitor with its own connection samples `pg_stat_activity` meanwhile
//! (each strategy connects with its own `application_name`), and a table
//! shows what each strategy completed, how often the server refused it, the
//! peak of server connections it held, its throughput and its latency.
//!
//! ```text
//! cargo run --release --example quickstart                 # a throwaway server
//! DATABASE_URL=postgres://... cargo run --release --example quickstart
//! cargo run --release --example quickstart -- --json --tasks 500 --seconds 5
//! ```
//!
//! Without `DATABASE_URL` it starts a throwaway PostgreSQL server (the
//! `pool-postgres-test-server` crate; needs the server binaries, e.g.
//! `apt-get install postgresql`) with `max_connections=20`, and stops it on
//! exit, Ctrl-C included.
//!
//! Read in this order: this file (the whole run), `strategies.rs` (the three
//! ways of getting a connection), `tasks.rs` (one strategy's concurrent
//! tasks), `monitor.rs` (counting server connections), `report.rs` (the
//! table and the JSON). `args.rs`, `database.rs`, `outcome.rs`,
//! `progress.rs` and `abort_on_drop.rs` hold the plumbing.

mod abort_on_drop;
mod args;
mod database;
mod monitor;
mod outcome;
mod progress;
mod report;
mod strategies;
mod tasks;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use pool_postgres::PgPoolBuilder;

use crate::args::Args;
use crate::database::Database;
use crate::monitor::Monitor;
use crate::strategies::{Strategy, Unit};

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("quickstart: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let database = match Database::from_env_or_throwaway() {
        Ok(database) => database,
        Err(e) => {
            eprintln!("quickstart: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            result = run(&args, database.url()) => match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("quickstart: {e}");
                    ExitCode::FAILURE
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\nquickstart: interrupted; stopping");
                ExitCode::from(130)
            }
        }
    });
    // Ends every task (and their connections) before the server goes.
    runtime.shutdown_timeout(Duration::from_secs(2));
    database.stop();
    code
}

/// Runs the workload each strategy's way, one after another, and prints
/// what each did.
async fn run(args: &Args, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let shared = PgPoolBuilder::from_url(url)?
        .max_size(args.pool_size as usize)
        .name("quickstart")
        .postgres_config(|c| {
            c.application_name(Strategy::SharedPool.application_name());
        })
        .build()?;
    // The same server, user and options for raw connections (pool
    // parameters of the URL already taken out).
    let base = shared.postgres_config().clone();
    let monitor = Monitor::connect(&base).await?;
    let max_connections = monitor.max_connections().await?;
    let duration = args.seconds.map(Duration::from_secs_f64);

    let mut results = Vec::new();
    for strategy in Strategy::ALL {
        let unit = Arc::new(Unit {
            strategy,
            url: url.to_owned(),
            base: base.clone(),
            shared: shared.clone(),
            sleep: f64::from(args.sleep_ms) / 1000.0,
        });
        let outcome = tasks::run_strategy(unit, args.tasks, duration, &monitor).await;
        results.push((strategy, outcome));
    }
    shared.close_and_wait(Duration::from_secs(10)).await?;

    if args.json {
        report::print_json(&results);
    } else {
        report::print_table(args, max_connections, &results);
    }
    Ok(())
}

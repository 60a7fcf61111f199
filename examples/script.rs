//! A short-lived job (a cron script, a migration step, a one-off fix) on
//! the process-wide pool.
//!
//! ```text
//! DATABASE_URL=postgres://app@localhost/app cargo run --release --example script
//! ```
//!
//! It creates a table if missing, records this run in it, counts the runs,
//! and closes the pool before exiting so the server sees its connections end
//! cleanly (`shared_pool()` lives in a `static`, which is never dropped). A
//! database error is a clear message and exit code 1.

use std::process::ExitCode;
use std::time::Duration;

use pool_core::ErrorChain;
use pool_postgres::shared_pool;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let pool = match shared_pool() {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("script: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = work().await;
    // Always, also after a failure: nothing else would close it.
    if let Err(e) = pool.close_and_wait(Duration::from_secs(10)).await {
        eprintln!("script: {e}");
    }
    match outcome {
        Ok(runs) => {
            println!("recorded this run; {runs} run(s) so far");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("script: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Records a run and returns how many there have been.
async fn work() -> Result<i64, String> {
    let pool = shared_pool().map_err(|e| e.to_string())?;
    let client = pool.get().await.map_err(|e| format!("no database connection: {e}"))?;
    let step = |what: &'static str| move |e: pool_postgres::Error| format!("{what}: {}", ErrorChain(&e));
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS script_runs (
                 id bigserial PRIMARY KEY,
                 ran_at timestamptz NOT NULL DEFAULT now(),
                 note text NOT NULL
             )",
        )
        .await
        .map_err(step("creating table script_runs"))?;
    client
        .execute("INSERT INTO script_runs (note) VALUES ($1)", &[&"hello from the script example"])
        .await
        .map_err(step("recording the run"))?;
    let row =
        client.query_one("SELECT count(*) FROM script_runs", &[]).await.map_err(step("counting the runs"))?;
    Ok(row.get(0))
}

//! The results, as a table for people or one JSON object for programs.

use examples::percentile_ms;
use serde_json::{Map, Value, json};

use crate::args::Args;
use crate::outcome::Outcome;
use crate::strategies::{QUERIES, Strategy};

/// One JSON object keyed by strategy name, on one line of stdout.
pub(crate) fn print_json(results: &[(Strategy, Outcome)]) {
    let round = |v: f64| (v * 100.0).round() / 100.0;
    let mut object = Map::new();
    for (strategy, o) in results {
        let fields = json!({
            "ok": o.ok,
            "errors": o.errors,
            "too_many_clients": o.too_many_clients,
            "peak_server_connections": o.peak_server_connections,
            "ops_per_sec": round(o.queries_per_sec()),
            "p50_ms": percentile_ms(&o.latencies, 50.0).map(round),
            "p99_ms": percentile_ms(&o.latencies, 99.0).map(round),
        });
        object.insert(strategy.name().to_owned(), fields);
    }
    println!("{}", Value::Object(object));
}

/// A heading that repeats the settings, a row per strategy, and what the
/// columns count.
pub(crate) fn print_table(args: &Args, max_connections: i64, results: &[(Strategy, Outcome)]) {
    let round = match args.seconds {
        Some(s) => format!("{} tasks looping for {s} s", args.tasks),
        None => format!("{} concurrent tasks", args.tasks),
    };
    println!(
        "{round}, {QUERIES} queries each (one sleeps {} ms), against a server with \
         max_connections={max_connections}; shared pool of {}",
        args.sleep_ms, args.pool_size
    );
    println!();
    println!(
        "{:<20}  {:>9}  {:>6}  {:>16}  {:>10}  {:>9}  {:>7}  {:>7}",
        "strategy", "completed", "failed", "too many clients", "peak conns", "queries/s", "p50 ms", "p99 ms"
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    for (strategy, o) in results {
        println!(
            "{:<20}  {:>9}  {:>6}  {:>16}  {:>10}  {:>9.0}  {:>7}  {:>7}",
            strategy.name(),
            o.ok,
            o.errors,
            o.too_many_clients,
            o.peak_server_connections,
            o.queries_per_sec(),
            ms(percentile_ms(&o.latencies, 50.0)),
            ms(percentile_ms(&o.latencies, 99.0)),
        );
    }
    println!();
    println!(
        "completed/failed count tasks; latency is per task (connecting or waiting for a pooled \
         connection included); peak conns is the most server connections the strategy held at once \
         (sampled from pg_stat_activity)."
    );
    for (strategy, o) in results {
        if let Some(error) = &o.other_error {
            println!("{}: other failures, e.g. {error}", strategy.name());
        }
    }
}

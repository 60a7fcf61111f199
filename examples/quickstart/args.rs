//! The command line.

/// "Too many clients" reproduced with a connection per call and a pool per
/// call, and cured by one shared pool.
///
/// Uses DATABASE_URL if set; otherwise starts a throwaway PostgreSQL server
/// allowing 20 connections.
#[derive(clap::Parser, Debug)]
#[command(name = "quickstart")]
pub(crate) struct Args {
    /// Concurrent tasks per strategy.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) tasks: u32,
    /// Connections in the shared pool.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) pool_size: u32,
    /// How long one of each task's queries sleeps on the server (pg_sleep), holding its connection.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub(crate) sleep_ms: u32,
    /// Run each strategy for this many seconds (every task loops) instead of one round.
    #[arg(long, value_parser = parse_seconds)]
    pub(crate) seconds: Option<f64>,
    /// Print the results as one JSON object keyed by strategy instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!("`{text}` is not a number of seconds between 0 and 86400 (e.g. 5 or 0.5)")),
    }
}

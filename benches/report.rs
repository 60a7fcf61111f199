//! Statistics over the bench's own samples and the Markdown tables it
//! prints at the end of a run.
//!
//! criterion reports each benchmark on its own; these tables put the five
//! columns of a cell side by side, subtract the no-pool baseline, and add
//! the p99 `get` wait that criterion cannot see.

use std::fmt::Write as _;

/// The columns of a cell: the baseline, the three pools and the bare
/// semaphore reference, in table order.
pub const COLUMNS: [&str; 5] = ["baseline", "pool-core", "deadpool", "bb8", "semaphore"];

/// Index of the baseline in [`COLUMNS`].
pub const BASELINE: usize = 0;
/// Index of pool-core in [`COLUMNS`].
pub const POOL_CORE: usize = 1;
/// Index of deadpool in [`COLUMNS`].
pub const DEADPOOL: usize = 2;
/// Index of bb8 in [`COLUMNS`].
pub const BB8: usize = 3;
/// Index of the bare Tokio semaphore (`managers::Semaphore`) in [`COLUMNS`].
pub const SEMAPHORE: usize = 4;

/// The columns measured against the baseline: the three pools and the
/// semaphore (their shares, p99 waits and scenario-3 times).
const POOLS: [usize; 4] = [POOL_CORE, DEADPOOL, BB8, SEMAPHORE];

/// The median of `values` (the mean of the two middle ones for an even
/// count), or `None` when empty. Reorders `values`.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] } else { f64::midpoint(values[mid - 1], values[mid]) })
}

/// The `q`-quantile (0 < q <= 1) of `values` by the nearest-rank method
/// (the smallest value with at least `q` of all values at or below it), or
/// `None` when empty. Reorders `values`.
pub fn quantile(values: &mut [u64], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    let index = rank.clamp(1, values.len()) - 1;
    Some(*values.select_nth_unstable(index).1)
}

/// What one benchmark (one column of one cell) measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Median time per round (scenarios 1 and 2) or per cycle (scenario 3), in ns.
    pub median_ns: f64,
    /// Samples behind the median (rounds, or batches for scenario 3).
    pub samples: usize,
    /// p99 of the single `get` waits (scenario 2 only), in ns.
    pub p99_wait_ns: Option<u64>,
}

/// One row: a cell of the grid and its five columns (`None`: not run,
/// e.g. filtered out).
#[derive(Debug, Clone)]
pub struct Row {
    /// The cell, e.g. `4 × 16` (pool size × workers).
    pub cell: String,
    /// Indexed like [`COLUMNS`].
    pub columns: [Option<Measured>; 5],
}

/// The rows of one scenario.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// The rows, in the order they ran.
    pub rows: Vec<Row>,
}

/// Formats nanoseconds as microseconds with two decimals.
fn us(ns: f64) -> String {
    format!("{:.2} µs", ns / 1_000.0)
}

/// Formats a signed difference in nanoseconds as microseconds.
fn us_signed(ns: f64) -> String {
    format!("{:+.2} µs", ns / 1_000.0)
}

/// Formats a wait (ns) in a unit that fits it.
fn wait(ns: u64) -> String {
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1_000.0)
    } else {
        format!("{:.2} ms", ns as f64 / 1_000_000.0)
    }
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "—".to_owned())
}

impl Row {
    fn median(&self, column: usize) -> Option<f64> {
        self.columns[column].map(|m| m.median_ns)
    }

    /// The time a pool adds above the baseline, in ns.
    fn share(&self, column: usize) -> Option<f64> {
        Some(self.median(column)? - self.median(BASELINE)?)
    }

    /// `column`'s share over deadpool's, when deadpool's is positive.
    fn share_ratio(&self, column: usize) -> Option<f64> {
        let deadpool = self.share(DEADPOOL)?;
        (deadpool > 0.0).then(|| self.share(column).map(|share| share / deadpool))?
    }

    fn p99(&self, column: usize) -> Option<u64> {
        self.columns[column]?.p99_wait_ns
    }

    fn sample_counts(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns.iter().flatten().map(|m| m.samples)
    }
}

fn yes_no(ok: bool) -> String {
    if ok { "yes".to_owned() } else { "**no**".to_owned() }
}

fn samples_note(table: &Table, what: &str) -> String {
    let counts: Vec<usize> = table.rows.iter().flat_map(Row::sample_counts).collect();
    match (counts.iter().min(), counts.iter().max()) {
        (Some(min), Some(max)) => format!("Medians over {min}–{max} {what} per column (warm-up excluded).\n"),
        _ => String::new(),
    }
}

impl Table {
    /// Whether nothing of this scenario ran.
    pub fn is_empty(&self) -> bool {
        self.rows.iter().all(|row| row.columns.iter().all(Option::is_none))
    }

    /// Renders a grid scenario (1 or 2): median per round for the baseline,
    /// each pool and the semaphore, each one's share above the baseline,
    /// pool-core's and the semaphore's share over deadpool's, and (with
    /// `waits`) the p99 `get` wait of each.
    pub fn render_grid(&self, waits: bool) -> String {
        let mut out = String::new();
        let mut header = String::from("| pool size × workers |");
        let mut rule = String::from("|---|");
        for name in COLUMNS {
            let _ = write!(header, " {name} |");
            rule.push_str("---:|");
        }
        for column in POOLS {
            let _ = write!(header, " {} share |", COLUMNS[column]);
            rule.push_str("---:|");
        }
        header.push_str(" pool-core / deadpool share | ≤ 0.5×? | semaphore / deadpool share |");
        rule.push_str("---:|:---:|---:|");
        if waits {
            for column in POOLS {
                let _ = write!(header, " p99 wait {} |", COLUMNS[column]);
                rule.push_str("---:|");
            }
            header.push_str(" p99 ≤ deadpool? |");
            rule.push_str(":---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        let times = |r: Option<f64>| or_dash(r.map(|r| format!("{r:.2}×")));
        for row in &self.rows {
            let mut line = format!("| {} |", row.cell);
            for column in 0..COLUMNS.len() {
                let _ = write!(line, " {} |", or_dash(row.median(column).map(us)));
            }
            for column in POOLS {
                let _ = write!(line, " {} |", or_dash(row.share(column).map(us_signed)));
            }
            let target = match (row.share(POOL_CORE), row.share(DEADPOOL)) {
                (Some(core), Some(deadpool)) => Some(yes_no(core <= 0.5 * deadpool)),
                _ => None,
            };
            let _ = write!(
                line,
                " {} | {} | {} |",
                times(row.share_ratio(POOL_CORE)),
                or_dash(target),
                times(row.share_ratio(SEMAPHORE))
            );
            if waits {
                for column in POOLS {
                    let _ = write!(line, " {} |", or_dash(row.p99(column).map(wait)));
                }
                let target = match (row.p99(POOL_CORE), row.p99(DEADPOOL)) {
                    (Some(core), Some(deadpool)) => Some(yes_no(core <= deadpool)),
                    _ => None,
                };
                let _ = write!(line, " {} |", or_dash(target));
            }
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
        out.push_str(&samples_note(self, "rounds"));
        out
    }

    /// Renders scenario 3: ns per get + drop cycle for each pool and the
    /// semaphore (the baseline column is not used), pool-core over
    /// deadpool, and whether pool-core is under 60 ns.
    pub fn render_cycles(&self) -> String {
        let mut out = String::from("| cell |");
        for column in POOLS {
            let _ = write!(out, " {} |", COLUMNS[column]);
        }
        out.push_str(" pool-core / deadpool | pool-core < 60 ns? |\n|---|");
        out.push_str(&"---:|".repeat(POOLS.len()));
        out.push_str("---:|:---:|\n");
        for row in &self.rows {
            let ratio = match (row.median(POOL_CORE), row.median(DEADPOOL)) {
                (Some(core), Some(deadpool)) if deadpool > 0.0 => Some(format!("{:.2}×", core / deadpool)),
                _ => None,
            };
            let target = row.median(POOL_CORE).map(|core| yes_no(core < 60.0));
            let _ = write!(out, "| {} |", row.cell);
            for column in POOLS {
                let _ = write!(out, " {} |", or_dash(row.median(column).map(|v| format!("{v:.1} ns"))));
            }
            let _ = writeln!(out, " {} | {} |", or_dash(ratio), or_dash(target));
        }
        out.push('\n');
        out.push_str(&samples_note(self, "batches (ns/cycle = batch time / batch cycles)"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn quantile_nearest_rank() {
        let mut values: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(quantile(&mut values, 0.99), Some(99));
        assert_eq!(quantile(&mut values, 1.0), Some(100));
        assert_eq!(quantile(&mut [7], 0.99), Some(7));
        assert_eq!(quantile(&mut [], 0.99), None);
    }

    #[test]
    fn shares_and_ratio() {
        let m = |ns: f64| Some(Measured { median_ns: ns, samples: 1, p99_wait_ns: Some(5) });
        let row = Row { cell: "4 × 4".into(), columns: [m(100.0), m(130.0), m(160.0), m(200.0), m(115.0)] };
        assert_eq!(row.share(POOL_CORE), Some(30.0));
        assert_eq!(row.share_ratio(POOL_CORE), Some(0.5));
        assert_eq!(row.share_ratio(SEMAPHORE), Some(0.25));
        let table = Table { rows: vec![row] };
        let text = table.render_grid(true);
        assert!(
            text.contains("| 4 × 4 | 0.10 µs | 0.13 µs | 0.16 µs | 0.20 µs | 0.12 µs | +0.03 µs"),
            "{text}"
        );
        assert!(text.contains("+0.01 µs | 0.50× | yes | 0.25× |"), "{text}");
    }

    #[test]
    fn cycles_table_has_every_pool_and_the_semaphore() {
        let m = |ns: f64| Some(Measured { median_ns: ns, samples: 1, p99_wait_ns: None });
        let row = Row { cell: "1 task".into(), columns: [None, m(55.0), m(110.0), m(120.0), m(30.0)] };
        let text = Table { rows: vec![row] }.render_cycles();
        assert!(
            text.starts_with("| cell | pool-core | deadpool | bb8 | semaphore | pool-core / deadpool |"),
            "{text}"
        );
        assert!(text.contains("\n|---|---:|---:|---:|---:|---:|:---:|\n"), "{text}");
        assert!(
            text.contains("| 1 task | 55.0 ns | 110.0 ns | 120.0 ns | 30.0 ns | 0.50× | yes |"),
            "{text}"
        );
    }
}

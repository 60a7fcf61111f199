//! The results: `e2e.json` (everything), `e2e.md` (the tables and the
//! targets), and the plots (see [`crate::plots`]).

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::measurement::TOO_MANY_CLIENTS;
use crate::strategies::Strategy;
use crate::workloads::Workload;
use crate::{CellRecord, Report};

/// One of the targets, checked against the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Target {
    pub(crate) name: String,
    /// `None` when the run lacks the cells to tell.
    pub(crate) met: Option<bool>,
    pub(crate) detail: String,
}

/// Writes `e2e.json`, `e2e.md` and the SVG plots into `dir`.
pub(crate) fn write(report: &Report, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))
    };
    write("e2e.json", &(json + "\n"))?;
    write("e2e.md", &markdown(report))?;
    crate::plots::write_all(report, dir)
}

/// `2026-11-22 08:03 UTC` for a time.
pub(crate) fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

fn find(cells: &[CellRecord], w: Workload, c: usize, s: Strategy) -> Option<&CellRecord> {
    cells
        .iter()
        .find(|r| r.workload == w && r.concurrency == c && r.strategy == s && r.outcome.ok_ops > 0)
        .or_else(|| cells.iter().find(|r| r.workload == w && r.concurrency == c && r.strategy == s))
}

fn ran(r: &CellRecord) -> bool {
    !r.outcome.note.as_deref().is_some_and(|n| n.starts_with("skipped"))
}

/// The cells a ratio is taken over: the grid's or the through-PgBouncer part's.
#[derive(Clone, Copy)]
enum Over {
    Grid,
    PgBouncer,
}

impl Over {
    fn cells(self, report: &Report) -> &[CellRecord] {
        match self {
            Self::Grid => &report.cells,
            Self::PgBouncer => &report.pgbouncer,
        }
    }

    fn concurrency(self, report: &Report) -> &[usize] {
        match self {
            Self::Grid => &report.settings.concurrency,
            Self::PgBouncer => &report.settings.pgbouncer_concurrency,
        }
    }

    fn strategies(self, report: &Report) -> &[Strategy] {
        match self {
            Self::Grid => &report.settings.strategies,
            Self::PgBouncer => &report.settings.pgbouncer_strategies,
        }
    }
}

/// Ratios `a / b` of throughput for every (workload, concurrency) where
/// both ran; checks each against `min`, and that `a` had no errors (a pool
/// that is fast because it fails is not meeting the target).
fn ratio_target(
    report: &Report,
    over: Over,
    name: String,
    a: Strategy,
    bs: &[Strategy],
    min: f64,
    from_c: usize,
) -> Target {
    let mut met = None;
    let mut parts = Vec::new();
    let cells = over.cells(report);
    for &w in &report.settings.workloads {
        let mut row = Vec::new();
        for &c in over.concurrency(report).iter().filter(|&&c| c >= from_c) {
            let Some(num) = find(cells, w, c, a).filter(|r| ran(r)) else { continue };
            let denoms: Vec<_> = bs.iter().filter_map(|&b| find(cells, w, c, b)).filter(|r| ran(r)).collect();
            if denoms.len() != bs.len() {
                continue;
            }
            let best = denoms.iter().map(|r| r.outcome.ops_per_sec).fold(0.0, f64::max);
            let ratio = if best > 0.0 { num.outcome.ops_per_sec / best } else { f64::INFINITY };
            let errors = num.outcome.error_total();
            let ok = ratio >= min && errors == 0;
            met = Some(met.unwrap_or(true) && ok);
            let shown = if ratio.is_finite() { format!("{ratio:.2}×") } else { "∞ (0 ops)".to_owned() };
            row.push(format!("c={c}: {shown}, {errors} errors{}", if ok { "" } else { " ✗" }));
        }
        if !row.is_empty() {
            parts.push(format!("{}: {}", w.name(), row.join(", ")));
        }
    }
    Target { name, met, detail: parts.join("; ") }
}

/// The targets, each with the measured figures behind the verdict.
pub(crate) fn targets(report: &Report) -> Vec<Target> {
    use Strategy::{Deadpool, DeadpoolCached, DeadpoolSimple, Naive, NaivePool, Pool, PoolPgbouncer};
    let mut out = vec![
        ratio_target(
            report,
            Over::Grid,
            "pool ≥ 3× deadpool (both SQL text), every concurrency".into(),
            Pool,
            &[Deadpool],
            3.0,
            0,
        ),
        ratio_target(
            report,
            Over::Grid,
            "pool ≥ 1.0× deadpool_cached (prepare_cached), every concurrency".into(),
            Pool,
            &[DeadpoolCached],
            1.0,
            0,
        ),
        ratio_target(
            report,
            Over::Grid,
            "pool ≥ 50× the naive strategies (the better of naive, naive_pool), every concurrency above 1"
                .into(),
            Pool,
            &[Naive, NaivePool],
            50.0,
            2,
        ),
        ratio_target(
            report,
            Over::PgBouncer,
            "through PgBouncer (transaction mode): pool_pgbouncer (SQL text, bound parameters) ≥ 0.9× \
             deadpool_simple (simple_query) with 0 errors, every concurrency"
                .into(),
            PoolPgbouncer,
            &[DeadpoolSimple],
            0.9,
            0,
        ),
    ];

    // Tight case.
    let pool_size = report.settings.pool_size as i64;
    let tight = |s: Strategy| report.tight.iter().find(|r| r.strategy == s && ran(r));
    let mut detail = Vec::new();
    let mut met = None;
    if let Some(r) = tight(Pool) {
        let errors = r.outcome.error_total();
        let peak = r.peak_server_connections.unwrap_or(i64::MAX);
        let ok = errors == 0 && peak <= pool_size && r.outcome.ok_ops > 0;
        met = Some(ok);
        detail.push(format!("pool: {errors} errors, peak {peak} server connections (pool size {pool_size})"));
    }
    for s in [Naive, NaivePool] {
        if let Some(r) = tight(s) {
            let n = r.outcome.errors_of(TOO_MANY_CLIENTS);
            met = Some(met.unwrap_or(true) && n > 0);
            detail.push(format!("{}: {n} \"too many clients\"", s.name()));
        }
    }
    out.push(Target {
        name: "tight case: pool has zero errors and peak server connections ≤ pool size, while the naive \
                 strategies get \"too many clients\""
            .into(),
        met,
        detail: detail.join("; "),
    });

    // p99 at the highest concurrency.
    let top = report.settings.concurrency.iter().copied().max().unwrap_or(0);
    let mut met = None;
    let mut parts = Vec::new();
    for &w in &report.settings.workloads {
        let (Some(p), Some(d)) = (find(&report.cells, w, top, Pool), find(&report.cells, w, top, Deadpool))
        else {
            continue;
        };
        if let (Some(pp), Some(dp)) = (p.outcome.latency.p99_us, d.outcome.latency.p99_us) {
            let ok = pp <= dp;
            met = Some(met.unwrap_or(true) && ok);
            parts.push(format!(
                "{}: {} vs {}{}",
                w.name(),
                ms(Some(pp)),
                ms(Some(dp)),
                if ok { "" } else { " ✗" }
            ));
        }
    }
    out.push(Target {
        name: format!("p99 of pool at {top} tasks no worse than deadpool's"),
        met,
        detail: parts.join("; "),
    });
    out
}

fn ms(us: Option<f64>) -> String {
    match us {
        None => "–".to_owned(),
        Some(us) if us < 1000.0 => format!("{:.3} ms", us / 1000.0),
        Some(us) if us < 100_000.0 => format!("{:.2} ms", us / 1000.0),
        Some(us) => format!("{:.0} ms", us / 1000.0),
    }
}

fn ops(v: f64) -> String {
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn other_errors(r: &CellRecord) -> String {
    let others: Vec<_> = r.outcome.errors.iter().filter(|(k, _)| k.as_str() != TOO_MANY_CLIENTS).collect();
    let total: u64 = others.iter().map(|(_, t)| t.count).sum();
    if total == 0 {
        return "0".to_owned();
    }
    let kinds: Vec<_> = others.iter().map(|(k, t)| format!("{k} {}", t.count)).collect();
    format!("{total} ({})", kinds.join(", "))
}

fn cpu(us: Option<f64>) -> String {
    us.map_or_else(|| "–".to_owned(), |us| format!("{us:.0} µs"))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "–".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn cell_row(out: &mut String, first: &str, r: &CellRecord) {
    let o = &r.outcome;
    let note = o.note.as_deref().map_or_else(String::new, |n| format!(" ({n})"));
    let _ = writeln!(
        out,
        "| {first} | {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        r.strategy.name(),
        ops(o.ops_per_sec),
        note.replace('|', "/"),
        ms(o.latency.p50_us),
        ms(o.latency.p99_us),
        ms(o.latency.p999_us),
        ms(o.latency.mean_us),
        if r.strategy.is_pgbench() { "–".to_owned() } else { o.starved_tasks.to_string() },
        o.errors_of(TOO_MANY_CLIENTS),
        other_errors(r),
        r.peak_server_connections.map_or_else(|| "–".to_owned(), |n| n.to_string()),
        mib(o.rss_peak_kib),
        cpu(o.client_cpu_us_per_op),
        cpu(o.server_cpu_us_per_op),
    );
}

const DETAIL_HEADER: &str = "| strategy | ops/s | p50 | p99 | p99.9 | mean | starved tasks | too many clients | \
                             other errors | peak server conns | peak RSS (MiB) | client CPU/op | server CPU/op |";

/// The Markdown report.
pub(crate) fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let s = &report.settings;
    let m = &report.machine;
    let _ = writeln!(out, "# End-to-end benchmark (PostgreSQL), {} run\n", report.mode);
    let _ = writeln!(out, "- Command: `{}`", report.command);
    let _ = writeln!(out, "- Started {}, wall time {:.0} s", report.started_utc, report.wall_s);
    let _ = writeln!(
        out,
        "- Machine: {} cores ({}), {} GiB, Linux {}; {}",
        m.cores, m.cpu, m.memory_gib, m.kernel, m.rustc
    );
    let load = |l: Option<[f64; 3]>| {
        l.map_or_else(|| "?".to_owned(), |l| format!("{:.2} / {:.2} / {:.2}", l[0], l[1], l[2]))
    };
    let _ = writeln!(
        out,
        "- Load average (1 / 5 / 15 min): {} at the start, {} at the end",
        load(m.load_average_start),
        load(m.load_average_end)
    );
    let sv = &report.server;
    let _ = writeln!(
        out,
        "- PostgreSQL {} ({}), max_connections {} for the grid{}; {}",
        sv.version,
        sv.source,
        sv.grid_max_connections,
        sv.tight_max_connections.map_or_else(String::new, |t| format!(", {t} for the tight case")),
        sv.pgbench.as_deref().unwrap_or("pgbench not found"),
    );
    let _ = writeln!(
        out,
        "- Each cell: {} s warm-up, then {} s measured; pools of {}; table of {} rows; connections sampled every {} ms",
        s.warmup_s, s.seconds, s.pool_size, s.rows, s.sample_ms
    );

    if !s.strategies.is_empty() {
        let _ = writeln!(out, "\n## Throughput (successful ops/s)\n");
        matrix(&mut out, report, Over::Grid, |r| ops(r.outcome.ops_per_sec));
        let _ = writeln!(out, "\n## p99 latency\n");
        matrix(&mut out, report, Over::Grid, |r| ms(r.outcome.latency.p99_us));
    }
    if !report.pgbouncer.is_empty() {
        let _ = writeln!(
            out,
            "\n## Through PgBouncer ({}, transaction mode, default_pool_size {})\n",
            sv.pgbouncer.as_deref().unwrap_or("PgBouncer"),
            s.pgbouncer_pool_size
        );
        let _ = writeln!(out, "Throughput (successful ops/s):\n");
        matrix(&mut out, report, Over::PgBouncer, |r| ops(r.outcome.ops_per_sec));
        let _ = writeln!(out, "p99 latency:\n");
        matrix(&mut out, report, Over::PgBouncer, |r| ms(r.outcome.latency.p99_us));
    }

    if !report.tight.is_empty() {
        let r0 = &report.tight[0];
        let _ = writeln!(
            out,
            "\n## Tight case: {} tasks, max_connections {}, {}\n",
            r0.concurrency,
            sv.tight_max_connections.unwrap_or(0),
            r0.workload.name()
        );
        let _ = writeln!(out, "| case {DETAIL_HEADER}");
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|");
        for r in &report.tight {
            cell_row(&mut out, "tight", r);
        }
    }

    let _ = writeln!(out, "\n## Targets\n");
    for t in &report.targets {
        let verdict = match t.met {
            Some(true) => "**met**",
            Some(false) => "**missed**",
            None => "not measured",
        };
        let _ = writeln!(out, "- {verdict}: {}. {}", t.name, t.detail);
    }

    let _ = writeln!(out, "\n## All cells\n");
    for &w in &s.workloads {
        let _ = writeln!(out, "### {}\n", w.name());
        let _ = writeln!(out, "| tasks {DETAIL_HEADER}");
        let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|");
        for &c in &s.concurrency {
            for r in report.cells.iter().filter(|r| r.workload == w && r.concurrency == c) {
                cell_row(&mut out, &c.to_string(), r);
            }
        }
        for &c in &s.pgbouncer_concurrency {
            for r in report.pgbouncer.iter().filter(|r| r.workload == w && r.concurrency == c) {
                cell_row(&mut out, &format!("{c}, via PgBouncer"), r);
            }
        }
        out.push('\n');
    }
    out
}

/// One table per workload: strategies down, concurrency across.
fn matrix(out: &mut String, report: &Report, over: Over, value: impl Fn(&CellRecord) -> String) {
    let s = &report.settings;
    let (concurrency, records, strategies) =
        (over.concurrency(report), over.cells(report), over.strategies(report));
    for &w in &s.workloads {
        let _ = writeln!(out, "**{}**\n", w.name());
        let header: Vec<_> = concurrency.iter().map(|c| format!("{c} tasks")).collect();
        let _ = writeln!(out, "| strategy | {} |", header.join(" | "));
        let _ = writeln!(out, "|---|{}", "---:|".repeat(concurrency.len()));
        for &st in strategies {
            let cells: Vec<_> = concurrency
                .iter()
                .map(|&c| {
                    find(records, w, c, st).map_or_else(
                        || "–".to_owned(),
                        |r| if ran(r) { value(r) } else { "skipped".to_owned() },
                    )
                })
                .collect();
            let _ = writeln!(out, "| {} | {} |", st.name(), cells.join(" | "));
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(ops(1_234_567.4), "1,234,567");
        assert_eq!(ops(999.0), "999");
        assert_eq!(ms(Some(512.0)), "0.512 ms");
        assert_eq!(
            utc(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_334_400)),
            "2026-11-22 08:00 UTC"
        );
    }
}

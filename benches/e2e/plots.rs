//! SVG plots with plotters: throughput and p99 latency against concurrency
//! (one panel per workload, one line per strategy, both axes logarithmic),
//! and the server's connections over time during the tight case.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::strategies::Strategy;
use crate::{CellRecord, Report};

/// The throughput plot (the README's headline).
pub(crate) const THROUGHPUT: &str = "e2e_throughput.svg";
/// The p99 latency plot.
pub(crate) const P99: &str = "e2e_p99.svg";
/// Server connections over time in the tight case.
pub(crate) const TIGHT: &str = "e2e_tight_connections.svg";

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A fixed color per strategy, so every plot agrees.
fn color(s: Strategy) -> RGBColor {
    match s {
        Strategy::Naive => RGBColor(214, 39, 40),
        Strategy::NaivePool => RGBColor(255, 127, 14),
        Strategy::Deadpool => RGBColor(31, 119, 180),
        Strategy::DeadpoolCached => RGBColor(23, 190, 207),
        Strategy::Bb8 => RGBColor(148, 103, 189),
        Strategy::Pool => RGBColor(44, 160, 44),
        Strategy::PoolPrepared => RGBColor(0, 90, 0),
        Strategy::PoolShared => RGBColor(227, 119, 194),
        Strategy::SharedClient => RGBColor(247, 182, 210),
        Strategy::Pgbench => RGBColor(90, 90, 90),
        Strategy::PgbenchC => RGBColor(170, 170, 170),
        Strategy::PoolPgbouncer => RGBColor(188, 189, 34),
        Strategy::DeadpoolSimple => RGBColor(140, 86, 75),
        Strategy::PgbenchSimple => RGBColor(127, 127, 127),
    }
}

fn width(s: Strategy) -> u32 {
    if matches!(s, Strategy::Pool | Strategy::PoolPrepared | Strategy::PoolShared) { 3 } else { 2 }
}

fn err(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}

/// Writes every plot into `dir`.
pub(crate) fn write_all(report: &Report, dir: &Path) -> Result<(), String> {
    let panel_count = report.settings.workloads.len().max(1) as u32;
    let size = ((470 * panel_count).max(1060), 440);
    let path = dir.join(THROUGHPUT);
    against_concurrency(report, &SVGBackend::new(&path, size).into_drawing_area(), "ops/s", |r| {
        Some(r.outcome.ops_per_sec).filter(|&v| v > 0.0)
    })?;
    let path = dir.join(P99);
    against_concurrency(
        report,
        &SVGBackend::new(&path, size).into_drawing_area(),
        "p99 latency (ms)",
        |r| r.outcome.latency.p99_us.map(|us| us / 1000.0).filter(|&v| v > 0.0),
    )?;
    if report.tight.iter().any(|r| r.timeline.as_ref().is_some_and(|t| !t.is_empty())) {
        let path = dir.join(TIGHT);
        tight(report, &SVGBackend::new(&path, (900, 440)).into_drawing_area())?;
    }
    Ok(())
}

/// A legend strip: a short line and the name of each strategy.
fn legend(area: &Area<'_>, strategies: &[Strategy]) -> Result<(), String> {
    let mut x = 10;
    for &s in strategies {
        area.draw(&PathElement::new(vec![(x, 15), (x + 22, 15)], color(s).stroke_width(width(s))))
            .map_err(err)?;
        area.draw(&Text::new(s.name(), (x + 27, 8), ("sans-serif", 14))).map_err(err)?;
        x += 27 + 8 * s.name().len() as i32 + 24;
    }
    Ok(())
}

fn log_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    (lo.is_finite() && hi > 0.0).then(|| (lo / 1.6, hi * 1.6))
}

fn against_concurrency(
    report: &Report,
    root: &Area<'_>,
    y_desc: &str,
    value: impl Fn(&CellRecord) -> Option<f64>,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let (plots, strip) = root.split_vertically(root.dim_in_pixel().1 - 30);
    let strategies = &report.settings.strategies;
    legend(&strip, strategies)?;
    let workloads = &report.settings.workloads;
    let panels = plots.split_evenly((1, workloads.len().max(1)));
    // x is log2(tasks) on a linear axis, so the ticks can sit on the
    // concurrency levels themselves and be labelled with them.
    let conc = &report.settings.concurrency;
    let log2 = |c: usize| (c.max(1) as f64).log2();
    let (x_lo, x_hi) = (
        log2(conc.iter().copied().min().unwrap_or(1)).floor() - 0.5,
        log2(conc.iter().copied().max().unwrap_or(1)).ceil() + 0.5,
    );
    let x_label = |x: &f64| {
        conc.iter().find(|&&c| (log2(c) - x).abs() < 0.05).map_or_else(String::new, ToString::to_string)
    };
    // One y range for all panels, so they compare at a glance.
    let Some((y_lo, y_hi)) = log_range(report.cells.iter().filter_map(&value)) else {
        return root.present().map_err(err);
    };
    for (panel, &w) in panels.iter().zip(workloads) {
        let mut chart = ChartBuilder::on(panel)
            .caption(w.name(), ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(62)
            .build_cartesian_2d(x_lo..x_hi, (y_lo..y_hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("concurrent tasks")
            .y_desc(y_desc)
            .x_labels(((x_hi - x_lo) as usize + 1) * 2)
            .x_label_formatter(&x_label)
            .y_label_formatter(&|y| short(*y))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for &s in strategies {
            let points: Vec<(f64, f64)> = conc
                .iter()
                .filter_map(|&c| {
                    let r = report
                        .cells
                        .iter()
                        .find(|r| r.workload == w && r.concurrency == c && r.strategy == s)?;
                    Some((log2(c), value(r)?))
                })
                .collect();
            let style = color(s).stroke_width(width(s));
            chart.draw_series(LineSeries::new(points.clone(), style)).map_err(err)?;
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 3, color(s).filled())))
                .map_err(err)?;
        }
    }
    root.present().map_err(err)
}

/// `12k`, `1.5M`, `0.25`: axis labels that fit.
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn tight(report: &Report, root: &Area<'_>) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let (plot, strip) = root.split_vertically(root.dim_in_pixel().1 - 30);
    let strategies: Vec<Strategy> = report.tight.iter().map(|r| r.strategy).collect();
    legend(&strip, &strategies)?;
    let max_conn = report.server.tight_max_connections.unwrap_or(0);
    let t_hi = report
        .tight
        .iter()
        .filter_map(|r| r.timeline.as_ref()?.last().map(|&(ms, _)| ms / 1000.0))
        .fold(0.1, f64::max);
    let y_hi = report
        .tight
        .iter()
        .flat_map(|r| r.timeline.iter().flatten().map(|&(_, n)| n))
        .max()
        .unwrap_or(0)
        .max(max_conn) as f64
        * 1.15
        + 1.0;
    let tasks = report.tight.first().map_or(0, |r| r.concurrency);
    let caption = format!(
        "server connections, tight case: {tasks} tasks, max_connections {max_conn}, pool size {}",
        report.settings.pool_size
    );
    let mut chart = ChartBuilder::on(&plot)
        .caption(caption, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..t_hi, 0.0..y_hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the cell started (warm-up included)")
        .y_desc("client connections")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    let dashed =
        |y: f64, c: RGBColor| DashedLineSeries::new(vec![(0.0, y), (t_hi, y)], 6, 4, c.stroke_width(1));
    chart.draw_series(dashed(max_conn as f64, BLACK)).map_err(err)?;
    chart.draw_series(dashed(report.settings.pool_size as f64, RGBColor(44, 160, 44))).map_err(err)?;
    for r in &report.tight {
        let points: Vec<(f64, f64)> =
            r.timeline.iter().flatten().map(|&(ms, n)| (ms / 1000.0, n as f64)).collect();
        chart
            .draw_series(LineSeries::new(points, color(r.strategy).stroke_width(width(r.strategy))))
            .map_err(err)?;
    }
    root.present().map_err(err)
}

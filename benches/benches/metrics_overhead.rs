//! What the metrics observer adds to the cheapest pool operation: an
//! uncontended `get` + drop of a `pool-core` pool whose manager does nothing.
//!
//! Four pools are timed in alternating runs, so that machine noise hits them
//! alike, and the medians (ns per get+drop cycle) are printed with their
//! ratio to the pool without an observer:
//!
//! - no observer: the baseline;
//! - an observer that does nothing: what `pool-core` itself spends once any
//!   observer is attached (two clock reads and two status snapshots per cycle);
//! - `pool-metrics` with its handles on the no-op recorder: the observer's
//!   own work (finding the pool's handles, change detection, dispatch);
//! - `pool-metrics` with the Prometheus recorder installed: the real thing.
//!
//! `cargo bench -p benches --bench metrics_overhead`
//!
//! It lives here rather than in `pool-metrics` because a crate's benches
//! are built with its dev-dependencies: `pool-metrics` tests with Tokio's
//! `test-util`, under which every clock read also takes the runtime
//! clock's lock, which no service pays.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use benches::managers::CoreNoop;
use pool_core::{Event, Observer, Pool};

/// An observer that does nothing.
struct Ignore;

impl Observer for Ignore {
    fn on_event(&self, event: &Event<'_>) {
        black_box(event);
    }
}

const CYCLES: u32 = 200_000;
const RUNS: usize = 21;

/// Nanoseconds per get+drop cycle (the `s3` loop of the pool-core bench).
async fn cycles(pool: &Pool<CoreNoop>) -> f64 {
    let started = Instant::now();
    benches::workload::cycles(pool, CYCLES.into()).await;
    per_cycle(started)
}

/// Nanoseconds per cycle of `f` (run `CYCLES` times).
fn each_cycle(mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..CYCLES {
        f();
    }
    per_cycle(started)
}

/// Nanoseconds per cycle of `CYCLES` cycles that began at `started`.
fn per_cycle(started: Instant) -> f64 {
    started.elapsed().as_nanos() as f64 / f64::from(CYCLES)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn pool(name: &str, observer: Option<Arc<dyn Observer>>) -> Pool<CoreNoop> {
    let builder = Pool::builder(CoreNoop).name(name).max_size(4);
    let builder = match observer {
        Some(observer) => builder.observer(observer),
        None => builder,
    };
    builder.build().expect("valid settings")
}

fn main() {
    let handle = pool_metrics::install_prometheus_recorder().expect("install the Prometheus recorder");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        // The observer registers a pool's handles at its first event (`Started`,
        // sent by `build`), with the recorder current then.
        let noop_recorder = metrics::NoopRecorder;
        let pools = [
            ("without observer", pool("plain", None)),
            ("no-op observer", pool("ignored", Some(Arc::new(Ignore)))),
            (
                "pool-metrics, no-op recorder",
                metrics::with_local_recorder(&noop_recorder, || {
                    pool("muted", Some(pool_metrics::observer()))
                }),
            ),
            ("pool-metrics, Prometheus recorder", pool("observed", Some(pool_metrics::observer()))),
        ];

        // Warm up: create the resources, fault the code in.
        for (_, pool) in &pools {
            cycles(pool).await;
        }
        let floor_histogram = metrics::histogram!("bench_floor_seconds");
        let (mut sampled, mut clocked) = (Vec::new(), Vec::new());
        let mut samples = vec![Vec::new(); pools.len()];
        for _ in 0..RUNS {
            for ((_, pool), samples) in pools.iter().zip(&mut samples) {
                samples.push(cycles(pool).await);
            }
            // What the Prometheus recorder alone charges an observed cycle
            // for its two histogram samples (`acquire_seconds` and
            // `usage_seconds`), with no pool involved; and the one more
            // clock read an observed cycle makes.
            sampled.push(each_cycle(|| {
                floor_histogram.record(black_box(0.0));
                floor_histogram.record(black_box(0.0));
            }));
            clocked.push(each_cycle(|| {
                black_box(tokio::time::Instant::now());
            }));
            // Drain the histogram samples outside the timed part, as a scrape would.
            black_box(handle.render());
        }

        println!("uncontended get+drop, median of {RUNS} runs of {CYCLES} cycles each:");
        let medians: Vec<f64> = samples.into_iter().map(median).collect();
        let baseline = medians[0];
        for ((label, _), median) in pools.iter().zip(&medians) {
            println!(
                "  {label:<36} {median:7.1} ns/cycle  {:+7.1} ns  ratio {:.3}",
                median - baseline,
                median / baseline
            );
        }
        // What no observer can avoid: the recorder's price for two samples,
        // and the second clock read that times the checkout.
        let (sampled, clocked) = (median(sampled), median(clocked));
        println!("the floor under any observer feeding the two histograms from the clock:");
        println!("  Prometheus recorder, 2 histogram samples {sampled:7.1} ns/cycle");
        println!("  one more clock read                     {clocked:7.1} ns/cycle");
        println!(
            "  together                                {:7.1} ns/cycle  {:.0}% of the bare cycle (target: 25%)",
            sampled + clocked,
            100.0 * (sampled + clocked) / baseline
        );
        assert!(handle.render().contains(r#"pool_connections_created_total{pool="observed"} 1"#));
        assert!(!handle.render().contains(r#"pool="muted""#));
    });
}

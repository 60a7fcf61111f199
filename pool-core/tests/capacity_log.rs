//! The warning a capacity cool-down logs: once per cool-down, naming the
//! pool, the backend's error and the cool-down's length.
//!
//! On its own in this binary: `tracing` caches per call site, for the
//! whole process, whether anyone listens, so a test reading logs through a
//! thread-local subscriber must not share the call site with tests running
//! on other threads without one.

mod common;

use std::time::Duration;

use common::{FULL, Fake, Logs, Outcome, Recorder, Seen, spawn_get};
use pool_core::Pool;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn one_warning_and_one_event_per_cool_down_not_per_refused_create() {
    let logs = Logs::default();
    let _logging = tracing::subscriber::set_default(logs.clone());
    let fake = Fake::new();
    let recorder = Recorder::new();
    let pool = Pool::builder(fake.clone())
        .name("orders")
        .max_size(4)
        .max_concurrent_creates(2)
        .observer(recorder.clone())
        .build()
        .unwrap();
    // Two creates run together and are both refused.
    fake.script_create([Outcome::FullAfter(SECOND / 10), Outcome::FullAfter(SECOND / 10)]);
    let gets: Vec<_> = (0..2).map(|_| spawn_get(&pool)).collect();
    for get in gets {
        get.await.unwrap().unwrap();
    }
    assert_eq!(recorder.count(|s| matches!(s, Seen::CreateFailed(e) if e == FULL)), 2);
    let lengths: Vec<Duration> = recorder
        .seen()
        .into_iter()
        .filter_map(|seen| match seen {
            Seen::CapacityRefused(cooldown) => Some(cooldown),
            _ => None,
        })
        .collect();
    assert_eq!(lengths.len(), 1, "{lengths:?}");
    let warnings: Vec<String> =
        logs.lines().into_iter().filter(|line| line.contains("no free connection slots")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = &warnings[0];
    assert!(warning.starts_with("WARN"), "{warning}");
    assert!(warning.contains("pool=orders"), "{warning}");
    assert!(warning.contains(FULL), "{warning}");
    assert!(warning.contains(&format!("cooldown={:?}", lengths[0])), "{warning}");
}

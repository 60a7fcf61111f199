//! Every setting through every path (URL query string, config file,
//! builder setter) ends in the same effective configuration, zero and off
//! values included.

use std::time::Duration;

use pool_core::Reuse;

use super::{Effective, PARAMETERS, PoolSettings};
use crate::builder::PgPoolBuilder;
use crate::hosts::LoadBalance;
use crate::pooler::{Pooler, SessionStatePolicy};
use crate::recycling::Recycling;
use crate::target::TargetSessionAttrs;

/// One setting given three ways: URL text, a config-file value (JSON, as
/// any serde format would give it) and a builder call.
struct Case {
    url: &'static str,
    file: serde_json::Value,
    builder: fn(PgPoolBuilder) -> PgPoolBuilder,
}

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

#[allow(clippy::too_many_lines, reason = "one row per setting and value")]
fn cases() -> Vec<(&'static str, Case)> {
    use serde_json::json;
    vec![
        (
            "target_session_attrs",
            Case {
                url: "target_session_attrs=prefer-standby",
                file: json!({"target_session_attrs": "prefer-standby"}),
                builder: |b| b.target_session_attrs(TargetSessionAttrs::PreferStandby),
            },
        ),
        (
            "load_balance_hosts",
            Case {
                url: "load_balance_hosts=random",
                file: json!({"load_balance_hosts": "random"}),
                builder: |b| b.load_balance_hosts(LoadBalance::Random),
            },
        ),
        (
            "host_recheck_interval",
            Case {
                url: "host_recheck_seconds=2",
                file: json!({"host_recheck_interval": "2s"}),
                builder: |b| b.host_recheck_interval(s(2)),
            },
        ),
        (
            "max_replica_lag",
            Case {
                url: "max_replica_lag=off",
                file: json!({"max_replica_lag": 0}),
                builder: |b| b.max_replica_lag(None),
            },
        ),
        (
            "max_replica_lag",
            Case {
                url: "max_replica_lag=5s",
                file: json!({"max_replica_lag": 5}),
                builder: |b| b.max_replica_lag(s(5)),
            },
        ),
        (
            "shared_connections",
            Case {
                url: "shared_connections=2",
                file: json!({"shared_connections": 2}),
                builder: |b| b.shared_connections(2),
            },
        ),
        (
            "shared_in_flight",
            Case {
                url: "shared_in_flight=8",
                file: json!({"shared_in_flight": 8}),
                builder: |b| b.shared_in_flight(8),
            },
        ),
        (
            "max_size",
            Case { url: "connection_limit=7", file: json!({"max_size": 7}), builder: |b| b.max_size(7) },
        ),
        (
            "max_concurrent_creates",
            Case {
                url: "max_concurrent_creates=4",
                file: json!({"max_concurrent_creates": 4}),
                builder: |b| b.max_concurrent_creates(4),
            },
        ),
        ("min_idle", Case { url: "min_idle=0", file: json!({"min_idle": 0}), builder: |b| b.min_idle(0) }),
        ("min_idle", Case { url: "min_idle=2", file: json!({"min_idle": "2"}), builder: |b| b.min_idle(2) }),
        (
            "acquire_timeout",
            Case {
                url: "pool_timeout=2.5",
                file: json!({"acquire_timeout": 2.5}),
                builder: |b| b.acquire_timeout(Duration::from_millis(2500)),
            },
        ),
        (
            "create_timeout",
            Case {
                url: "connect_timeout=0",
                file: json!({"create_timeout": 0}),
                builder: |b| b.create_timeout(Duration::ZERO),
            },
        ),
        (
            "create_timeout",
            Case {
                url: "connect_timeout=3",
                file: json!({"connect_timeout": "3s"}),
                builder: |b| b.create_timeout(s(3)),
            },
        ),
        (
            "socket_timeout",
            Case {
                url: "socket_timeout=off",
                file: json!({"socket_timeout": "off"}),
                builder: |b| b.socket_timeout(None),
            },
        ),
        (
            "socket_timeout",
            Case {
                url: "socket_timeout=500ms",
                file: json!({"socket_timeout": "500ms"}),
                builder: |b| b.socket_timeout(Duration::from_millis(500)),
            },
        ),
        (
            "idle_timeout",
            Case {
                url: "idle_timeout=0",
                file: json!({"idle_timeout": 0}),
                builder: |b| b.idle_timeout(None),
            },
        ),
        (
            "idle_timeout",
            Case {
                url: "pool_max_conn_idle_time=1h30m",
                file: json!({"idle_timeout": "1h30m"}),
                builder: |b| b.idle_timeout(s(5400)),
            },
        ),
        (
            "max_lifetime",
            Case {
                url: "max_lifetime=off",
                file: json!({"max_lifetime": 0}),
                builder: |b| b.max_lifetime(Duration::ZERO),
            },
        ),
        (
            "max_lifetime",
            Case {
                url: "max_lifetime=10m",
                file: json!({"max_lifetime": 600}),
                builder: |b| b.max_lifetime(s(600)),
            },
        ),
        (
            "statement_cache_size",
            Case {
                url: "statement_cache_size=0",
                file: json!({"statement_cache_size": 0}),
                builder: |b| b.statement_cache_size(0),
            },
        ),
        // The old config-file path turned 0 into a 1 ms timeout on every session.
        (
            "statement_timeout",
            Case {
                url: "statement_timeout=0",
                file: json!({"statement_timeout": 0}),
                builder: |b| b.statement_timeout(Duration::ZERO),
            },
        ),
        (
            "statement_timeout",
            Case {
                url: "statement_timeout=5",
                file: json!({"statement_timeout": "5s"}),
                builder: |b| b.statement_timeout(s(5)),
            },
        ),
        (
            "max_waiters",
            Case {
                url: "max_waiters=off",
                file: json!({"max_waiters": "off"}),
                builder: |b| b.max_waiters(None),
            },
        ),
        (
            "max_waiters",
            Case {
                url: "max_waiters=50",
                file: json!({"max_waiters": 50}),
                builder: |b| b.max_waiters(Some(50)),
            },
        ),
        // The old config-file path refused 0 here while the URL took it as off.
        (
            "keepalive_interval",
            Case {
                url: "keepalive_interval=0",
                file: json!({"keepalive_interval": 0}),
                builder: |b| b.keepalive_interval(Duration::ZERO),
            },
        ),
        (
            "keepalive_interval",
            Case {
                url: "pool_health_check_period=30",
                file: json!({"keepalive_interval": 30}),
                builder: |b| b.keepalive_interval(s(30)),
            },
        ),
        (
            "recycling",
            Case {
                url: "recycling=verified",
                file: json!({"recycling": "verified"}),
                builder: |b| b.recycling(Recycling::Verified),
            },
        ),
        (
            "verify_idle_after",
            Case {
                url: "verify_idle_after=0",
                file: json!({"verify_idle_after": 0}),
                builder: |b| b.verify_idle_after(Duration::ZERO),
            },
        ),
        (
            "recycle_timeout",
            Case {
                url: "recycle_timeout=1",
                file: json!({"recycle_timeout": 1}),
                builder: |b| b.recycle_timeout(s(1)),
            },
        ),
        (
            "liveness_check_after",
            Case {
                url: "liveness_check_after=off",
                file: json!({"liveness_check_after": "off"}),
                builder: |b| b.liveness_check_after(None),
            },
        ),
        (
            "liveness_check_after",
            Case {
                url: "liveness_check_after=500ms",
                file: json!({"liveness_check_after": "500ms"}),
                builder: |b| b.liveness_check_after(Duration::from_millis(500)),
            },
        ),
        (
            "name",
            Case {
                url: "pool_name=billing",
                file: json!({"name": "billing"}),
                builder: |b| b.name("billing"),
            },
        ),
        (
            "leak_detection_threshold",
            Case {
                url: "leak_detection_threshold=0",
                file: json!({"leak_detection_threshold": "0"}),
                builder: |b| b.leak_detection_threshold(None),
            },
        ),
        (
            "leak_detection_threshold",
            Case {
                url: "leak_detection_threshold=2m",
                file: json!({"leak_detection_threshold": "2m"}),
                builder: |b| b.leak_detection_threshold(s(120)),
            },
        ),
        (
            "pooler",
            Case {
                url: "pgbouncer=true",
                file: json!({"pooler": "transaction"}),
                builder: |b| b.pooler(Pooler::Transaction),
            },
        ),
        (
            "pooler",
            Case {
                url: "pooler=none",
                file: json!({"pgbouncer": false}),
                builder: |b| b.pooler(Pooler::None),
            },
        ),
        (
            "pooler",
            Case {
                url: "pooler=transaction-prepared",
                file: json!({"pooler": "transaction-prepared"}),
                builder: |b| b.pooler(Pooler::TransactionKeepsPrepared),
            },
        ),
        (
            "pooler_session_state",
            Case {
                url: "pooler_session_state=warn",
                file: json!({"pooler_session_state": "warn"}),
                builder: |b| b.pooler_session_state(SessionStatePolicy::Warn),
            },
        ),
        (
            "reuse",
            Case { url: "reuse=fifo", file: json!({"reuse": "FIFO"}), builder: |b| b.reuse(Reuse::Fifo) },
        ),
    ]
}

const BASE: &str = "postgres://app@localhost/app";

fn through_url(case: &Case) -> Effective {
    let builder = PgPoolBuilder::from_url(&format!("{BASE}?{}", case.url)).unwrap();
    builder.settings.checked().unwrap().effective()
}

fn through_file(case: &Case) -> Effective {
    let settings: PoolSettings = serde_json::from_value(case.file.clone()).unwrap();
    let builder = PgPoolBuilder::from_url(BASE).unwrap().settings(&settings);
    builder.settings.checked().unwrap().effective()
}

fn through_builder(case: &Case) -> Effective {
    let builder = (case.builder)(PgPoolBuilder::from_url(BASE).unwrap());
    builder.settings.checked().unwrap().effective()
}

#[test]
fn every_setting_means_the_same_through_url_file_and_builder() {
    for (field, case) in cases() {
        let url = through_url(&case);
        assert_eq!(url, through_file(&case), "{field}: URL {} and file {} differ", case.url, case.file);
        assert_eq!(url, through_builder(&case), "{field}: URL {} and builder differ", case.url);
    }
}

#[test]
fn every_setting_of_the_table_has_a_case() {
    let covered: std::collections::HashSet<_> = cases().into_iter().map(|(field, _)| field).collect();
    for parameter in PARAMETERS {
        assert!(covered.contains(parameter.field), "no path test for {}", parameter.field);
    }
}

#[test]
fn zero_and_off_mean_off_on_every_path() {
    let off =
        through_file(&Case { url: "", file: serde_json::json!({"statement_timeout": 0}), builder: |b| b });
    assert_eq!(off.statement_timeout, None, "0 is off, never a 1 ms timeout");
    let builder = PgPoolBuilder::from_url(BASE).unwrap().statement_timeout(Duration::ZERO);
    assert_eq!(builder.settings.checked().unwrap().effective().statement_timeout, None);
    let keepalive =
        through_file(&Case { url: "", file: serde_json::json!({"keepalive_interval": 0}), builder: |b| b });
    assert_eq!(keepalive.keepalive_interval, None);
}

#[test]
fn bad_values_are_refused_alike_on_every_path_and_name_the_setting() {
    for (url, file, field) in [
        ("connection_limit=0", serde_json::json!({"max_size": 0}), "max_size"),
        ("pool_timeout=0", serde_json::json!({"acquire_timeout": 0}), "acquire_timeout"),
        ("pool_timeout=soon", serde_json::json!({"acquire_timeout": "soon"}), "acquire_timeout"),
        ("max_waiters=0", serde_json::json!({"max_waiters": 0}), "max_waiters"),
        ("recycle_timeout=-1", serde_json::json!({"recycle_timeout": -1}), "recycle_timeout"),
    ] {
        let url_error = PgPoolBuilder::from_url(&format!("{BASE}?{url}")).err().expect(url).to_string();
        let file_error = serde_json::from_value::<PoolSettings>(file.clone()).expect_err(url).to_string();
        let (url_name, value) = url.split_once('=').unwrap();
        assert!(url_error.contains(url_name) && url_error.contains(value), "{url_error}");
        // The file's error names the field as written there, never a placeholder like "duration".
        assert!(file_error.contains(field) && file_error.contains(value), "{file_error}");
    }
    let built = PgPoolBuilder::from_url(BASE).unwrap().max_size(0).acquire_timeout(Duration::ZERO);
    let error = built.settings.checked().unwrap_err().to_string();
    assert!(error.contains("max_size") && error.contains("at least 1"), "{error}");
}

#[test]
fn file_settings_win_over_url_settings() {
    let settings: PoolSettings = serde_json::from_value(serde_json::json!({"max_size": 3})).unwrap();
    let builder = PgPoolBuilder::from_url(&format!("{BASE}?connection_limit=9&min_idle=1"))
        .unwrap()
        .settings(&settings);
    let effective = builder.settings.checked().unwrap().effective();
    assert_eq!((effective.max_size, effective.min_idle), (3, 1));
}

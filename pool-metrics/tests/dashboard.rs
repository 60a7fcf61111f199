//! The Grafana dashboard and the alert rules refer to the metrics this crate
//! exports, by their real names.

mod common;

use std::collections::HashSet;

use common::crate_dir;
use pool_metrics::names::ALL;

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(crate_dir("grafana").join("dashboard.json")).unwrap();
    serde_json::from_str(&text).expect("grafana/dashboard.json is valid JSON")
}

/// Every `pool_connections...` name in `text`.
fn metric_names(text: &str) -> HashSet<&str> {
    let mut names = HashSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("pool_connections") {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.insert(&tail[..end]);
        rest = &tail[end..];
    }
    names
}

/// Whether `name` is one of ours, or a histogram's `_bucket`/`_sum`/`_count` series.
fn is_exported(name: &str) -> bool {
    ALL.contains(&name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix).is_some_and(|base| base.ends_with("_seconds") && ALL.contains(&base))
        })
}

#[test]
fn the_dashboard_uses_every_metric_and_only_real_ones() {
    let dashboard = dashboard();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().expect("every target has an expr").to_owned())
        .collect();
    let all = exprs.join("\n");
    let used = metric_names(&all);
    for name in ALL {
        let histogram_series = format!("{name}_bucket");
        assert!(
            used.contains(name) || used.contains(histogram_series.as_str()),
            "the dashboard shows {name}"
        );
    }
    for name in &used {
        assert!(is_exported(name), "the dashboard queries {name}, which pool-metrics does not export");
    }
    for expr in &exprs {
        assert!(expr.contains(r#"pool=~"$pool""#), "every query follows the pool variable: {expr}");
    }
}

#[test]
fn the_dashboard_is_well_formed() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "pool-metrics");
    assert!(dashboard["title"].as_str().is_some_and(|title| !title.is_empty()));
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variable| variable["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "instance", "pool"]);

    let mut ids = HashSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "panel ids are unique");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24, "{} fits the 24-column grid", panel["title"]);
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
            assert!(!panel["targets"].as_array().unwrap().is_empty(), "{} has a query", panel["title"]);
        }
    }
}

#[test]
fn the_alert_rules_use_only_real_metrics() {
    let rules = std::fs::read_to_string(crate_dir("prometheus").join("alerts.yml")).unwrap();
    let used = metric_names(&rules);
    assert!(used.len() >= 6, "{used:?}");
    for name in used {
        assert!(is_exported(name), "alerts.yml uses {name}, which pool-metrics does not export");
    }
}

//! The shipped Prometheus rules and the dashboard's queries, checked by
//! `promtool` (from Debian's `prometheus` package; these tests fail, with
//! what to install, when it is missing).

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use common::{TempDir, crate_dir, prometheus_binary};

/// Runs `promtool args...` in `dir` and panics with its output unless it succeeds.
fn promtool(dir: &Path, args: &[&str]) -> String {
    let promtool = prometheus_binary("promtool");
    let output = Command::new(&promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("could not run {}: {error}", promtool.display()));
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "`promtool {}` failed ({}):\n{text}", args.join(" "), output.status);
    text
}

#[test]
fn alert_rules_are_valid() {
    let output = promtool(&crate_dir("prometheus"), &["check", "rules", "alerts.yml"]);
    assert!(output.contains("SUCCESS: 6 rules found"), "{output}");
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let output = promtool(&crate_dir("prometheus"), &["test", "rules", "alerts_test.yml"]);
    assert!(output.contains("SUCCESS"), "{output}");
}

#[test]
fn dashboard_queries_are_valid_promql() {
    let text = std::fs::read_to_string(crate_dir("grafana").join("dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() > 10, "the dashboard has queries: {exprs:?}");

    // Each query as a recording rule, with Grafana's variables filled in.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, expr) in exprs.iter().enumerate() {
        let expr = expr.replace("$__rate_interval", "5m").replace("$pool", ".*").replace("$instance", ".*");
        let quoted = serde_json::to_string(&expr).unwrap();
        writeln!(rules, "      - record: dashboard:query{index}\n        expr: {quoted}").unwrap();
    }
    let dir = TempDir::new("pool-metrics-dashboard");
    std::fs::write(dir.path().join("dashboard_rules.yml"), rules).unwrap();
    let output = promtool(dir.path(), &["check", "rules", "dashboard_rules.yml"]);
    assert!(output.contains(&format!("SUCCESS: {} rules found", exprs.len())), "{output}");
}

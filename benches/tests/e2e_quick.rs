//! Smoke test of the end-to-end benchmark, so the harness never rots: runs
//! `e2e --quick` against its own throwaway PostgreSQL server and checks that
//! it wrote a report with every strategy, a clean tight case for the pool
//! and a clean through-PgBouncer part.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

const STRATEGIES: [&str; 9] = [
    "naive",
    "naive_pool",
    "deadpool",
    "deadpool_cached",
    "bb8",
    "pool",
    "pool_prepared",
    "pgbench",
    "pgbench_c",
];

#[test]
fn quick_run_writes_a_complete_report() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-quick");
    let _ = std::fs::remove_dir_all(&out);
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_e2e"))
        .arg("--quick")
        .arg("--out")
        .arg(&out)
        // Always its own server: the tight case needs one anyway, and a
        // DATABASE_URL in the environment must not be written to.
        .env_remove("DATABASE_URL")
        .output()
        .expect("run e2e");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "e2e --quick failed ({}):\n{stderr}", output.status);
    eprintln!("e2e --quick took {:.1} s", started.elapsed().as_secs_f64());

    let json = std::fs::read_to_string(out.join("e2e.json")).expect("e2e.json written");
    let report: Value = serde_json::from_str(&json).expect("e2e.json is JSON");
    let cells = report["cells"].as_array().expect("cells");
    for strategy in STRATEGIES {
        assert!(
            cells.iter().any(|c| c["strategy"] == strategy),
            "no cell for {strategy} in e2e.json; stderr:\n{stderr}"
        );
    }
    // Every Rust strategy got work done in every cell (pgbench may be
    // missing from PATH, in which case its cells say so).
    for cell in cells.iter().filter(|c| !c["strategy"].as_str().unwrap_or("").starts_with("pgbench")) {
        assert!(cell["ok_ops"].as_u64().unwrap_or(0) > 0, "a cell did no work: {cell}");
    }

    let tight = report["tight"].as_array().expect("tight");
    let pool = tight.iter().find(|c| c["strategy"] == "pool").expect("tight case for pool");
    assert!(pool["ok_ops"].as_u64().unwrap_or(0) > 0, "pool did nothing in the tight case: {pool}");
    assert_eq!(pool["errors"].as_object().map_or(0, serde_json::Map::len), 0, "pool had errors: {pool}");
    let peak = pool["peak_server_connections"].as_i64().expect("peak sampled");
    let size = report["settings"]["pool_size"].as_i64().expect("pool size");
    assert!(peak <= size, "pool used {peak} server connections with a pool of {size}");

    // The through-PgBouncer part (`.ci/test` installs PgBouncer): every
    // strategy did work there, and the pool in pooler mode had no errors.
    let through = report["pgbouncer"].as_array().expect("pgbouncer cells");
    for strategy in ["pool_pgbouncer", "deadpool_simple", "pgbench_simple"] {
        assert!(
            through.iter().any(|c| c["strategy"] == strategy && c["ok_ops"].as_u64().unwrap_or(0) > 0),
            "no working through-PgBouncer cell for {strategy}; stderr:\n{stderr}"
        );
    }
    for cell in through.iter().filter(|c| c["strategy"] == "pool_pgbouncer") {
        assert_eq!(cell["errors"].as_object().map_or(0, serde_json::Map::len), 0, "errors: {cell}");
    }

    for file in ["e2e.md", "e2e_throughput.svg", "e2e_p99.svg", "e2e_tight_connections.svg"] {
        assert!(out.join(file).is_file(), "{file} not written");
    }
}

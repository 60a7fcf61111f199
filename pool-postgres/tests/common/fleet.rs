//! Instances of a service as real processes: the test binary starts itself
//! again, once per instance, to run one `#[ignore]`d child test that reads
//! its orders from the environment, runs [`workload`](super::workload) and
//! reports back (a summary line on stdout, the acknowledged ids in a file).
//! Children are killed if the parent test panics.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::workload::Outcome;

const URL: &str = "POOL_FLEET_URL";
const INSTANCE: &str = "POOL_FLEET_INSTANCE";
const TASKS: &str = "POOL_FLEET_TASKS";
const SECONDS: &str = "POOL_FLEET_SECONDS";
const IDS: &str = "POOL_FLEET_IDS";

/// What a child instance is told to do.
#[derive(Debug)]
pub struct Orders {
    pub url: String,
    pub instance: i32,
    pub tasks: usize,
    pub duration: Duration,
    ids: PathBuf,
}

/// In the child test: the orders, or `None` when the test was run by hand
/// (then there is nothing to do).
pub fn orders() -> Option<Orders> {
    let url = std::env::var(URL).ok()?;
    let number = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is unset")).parse::<f64>().unwrap()
    };
    Some(Orders {
        url,
        instance: number(INSTANCE) as i32,
        tasks: number(TASKS) as usize,
        duration: Duration::from_secs_f64(number(SECONDS)),
        ids: PathBuf::from(std::env::var(IDS).expect("POOL_FLEET_IDS is unset")),
    })
}

/// In the child test: hands the outcome back to the parent.
pub fn report(orders: &Orders, outcome: &Outcome) {
    let mut ids = std::fs::File::create(&orders.ids).expect("the ids file");
    for id in &outcome.acknowledged {
        writeln!(ids, "{id}").unwrap();
    }
    println!(
        "FLEET-OUTCOME ok={} committed={} errors={}",
        outcome.ok,
        outcome.committed,
        outcome.errors.len()
    );
    for error in outcome.errors.iter().take(20) {
        println!("FLEET-ERROR {error}");
    }
}

/// Runs `instances` instances (numbered from 1) of the child test `test`
/// side by side, each with `tasks` tasks for `duration` against `url`,
/// and returns what each reported. A panic here (a child failed) drops the
/// children not yet finished, which kills them.
pub fn run(test: &str, instances: i32, url: &str, tasks: usize, duration: Duration) -> Vec<(i32, Outcome)> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("pool-fleet-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let children: Vec<_> =
        (1..=instances).map(|instance| spawn(test, instance, url, tasks, duration, &dir)).collect();
    let outcomes = children.into_iter().map(Child::finish).collect();
    let _ = std::fs::remove_dir_all(&dir);
    outcomes
}

/// Asserts that no instance had an error, showing the first few of each.
pub fn assert_no_errors(outcomes: &[(i32, Outcome)]) {
    for (instance, outcome) in outcomes {
        assert!(
            outcome.errors.is_empty(),
            "instance {instance}: {} errors, first: {:?}",
            outcome.errors.len(),
            &outcome.errors[..outcome.errors.len().min(5)]
        );
    }
}

/// A running child instance; killed when dropped before [`Child::finish`].
pub struct Child {
    instance: i32,
    process: Option<std::process::Child>,
    ids: PathBuf,
}

/// Starts the child test `test` of this test binary as instance `instance`.
fn spawn(test: &str, instance: i32, url: &str, tasks: usize, duration: Duration, dir: &Path) -> Child {
    let ids = dir.join(format!("instance-{instance}.ids"));
    let process = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--nocapture", "--test-threads", "1"])
        .env(URL, url)
        .env(INSTANCE, instance.to_string())
        .env(TASKS, tasks.to_string())
        .env(SECONDS, duration.as_secs_f64().to_string())
        .env(IDS, &ids)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a child instance");
    Child { instance, process: Some(process), ids }
}

impl Child {
    /// Waits for the child and reads what it reported.
    fn finish(mut self) -> (i32, Outcome) {
        let process = self.process.take().expect("finished once");
        let output = process.wait_with_output().expect("wait for a child instance");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "instance {} failed: {}\n{stdout}", self.instance, output.status);
        let mut outcome = Outcome::default();
        let summary = stdout
            .lines()
            .find_map(|l| l.split_once("FLEET-OUTCOME ").map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("instance {} reported nothing; its output:\n{stdout}", self.instance));
        let mut errors = 0;
        for field in summary.split(' ') {
            match field.split_once('=') {
                Some(("ok", n)) => outcome.ok = n.parse().unwrap(),
                Some(("committed", n)) => outcome.committed = n.parse().unwrap(),
                Some(("errors", n)) => errors = n.parse().unwrap(),
                _ => {}
            }
        }
        outcome.errors = stdout
            .lines()
            .filter_map(|l| l.split_once("FLEET-ERROR ").map(|(_, rest)| rest.to_owned()))
            .collect();
        if errors > outcome.errors.len() {
            outcome.errors.push(format!("... {errors} errors in all"));
        }
        let ids = std::fs::read_to_string(&self.ids).expect("the child's ids file");
        outcome.acknowledged = ids.lines().map(|l| l.parse().unwrap()).collect();
        (self.instance, outcome)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

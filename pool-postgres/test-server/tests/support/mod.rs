//! What the test files share: finding the processes that belong to a
//! directory, polling, and re-running the test binary as a child process
//! that a test can kill.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Set in the environment of a re-executed copy of a test binary: the
/// binary's `child_process_helper` test then does what the value says.
pub(crate) const CHILD_MODE: &str = "POOL_POSTGRES_TEST_SERVER_CHILD";

/// What the child prints before the directory of what it started.
pub(crate) const DIR_MARKER: &str = "DIR=";

pub(crate) fn accepts_tcp(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// Processes that belong to `dir`: their working directory is in it (every
/// server process `chdir`s to its data directory, a PgBouncer runs in its
/// own directory) or their command line mentions it. Zombies have neither.
pub(crate) fn processes_of(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let cwd = fs::read_link(entry.path().join("cwd"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cmdline = fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if cwd.starts_with(&needle) || cmdline.contains(&needle) {
            found.push(pid);
        }
    }
    found
}

/// Polls `condition` until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that within `timeout` no process belongs to `dir` and `dir` is
/// gone.
pub(crate) fn assert_gone(dir: &Path, timeout: Duration) {
    let gone = wait_until(timeout, || processes_of(dir).is_empty() && !dir.exists());
    assert!(
        gone,
        "left behind for {}: processes {:?}, directory exists: {}",
        dir.display(),
        processes_of(dir),
        dir.exists()
    );
}

/// Re-runs this test binary's `child_process_helper` test with
/// [`CHILD_MODE`] set to `mode`, and returns the child and the directory it
/// printed after [`DIR_MARKER`].
fn spawn_child(mode: &str) -> (Child, PathBuf) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_helper", "--nocapture", "--test-threads=1"])
        .env(CHILD_MODE, mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let dir = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            // The harness prints "test child_process_helper ... " first,
            // maybe on the same line.
            line.split_once(DIR_MARKER).map(|(_, dir)| PathBuf::from(dir))
        })
        .expect("the child printed its directory");
    // Keep reading, so the child's harness does not fail on a closed pipe.
    thread::spawn(move || lines.for_each(drop));
    (child, dir)
}

/// Runs the child in `mode`, kills it with `SIGKILL` (no destructor runs)
/// once it has started what it starts, and asserts that the watchdog
/// cleans up after it.
pub(crate) fn assert_a_killed_child_leaves_nothing(mode: &str) {
    let (mut child, dir) = spawn_child(mode);
    assert!(!processes_of(&dir).is_empty(), "the child's processes run");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_gone(&dir, Duration::from_secs(20));
}

/// Runs the child in `mode` until it exits on its own (what it keeps in
/// statics is never dropped), and asserts that the watchdog cleans up.
pub(crate) fn assert_an_exited_child_leaves_nothing(mode: &str) {
    let (mut child, dir) = spawn_child(mode);
    assert!(child.wait().unwrap().success());
    assert_gone(&dir, Duration::from_secs(20));
}

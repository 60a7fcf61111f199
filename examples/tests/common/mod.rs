//! Shared by the examples' tests: the example binaries run as child
//! processes (killed when dropped, so none is orphaned), and a minimal
//! HTTP/1.1 client.
//!
//! `cargo test -p examples` builds the examples (into
//! `target/<profile>/examples/`) before it runs the tests, so the tests find
//! them next to their own `deps/` directory.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The path of the built example `name`.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/examples/<name>
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    let path = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "example {name} is not built at {}; run the tests with `cargo test -p examples` (which builds the \
         examples first) or build them with `cargo build -p examples --examples`",
        path.display()
    );
    // `cargo test -p examples --test X` does not rebuild the examples: refuse
    // to test a binary older than its sources.
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).expect("the example's mtime");
    for source in example_sources(name) {
        let changed = std::fs::metadata(&source).and_then(|m| m.modified()).expect("the source's mtime");
        assert!(
            changed <= built,
            "{} changed after example {name} was built; run `cargo test -p examples` without `--test` \
             (it rebuilds the examples) or `cargo build -p examples --examples` first",
            source.display()
        );
    }
    path
}

/// The sources example `name` is built from: `name.rs`, or every file of the
/// directory `name/` for an example split into modules, and the shared `lib.rs`.
fn example_sources(name: &str) -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join(name);
    let mut sources = if dir.is_dir() {
        std::fs::read_dir(&dir)
            .expect("the example's directory")
            .map(|entry| entry.expect("an entry of the example's directory").path())
            .collect()
    } else {
        vec![root.join(format!("{name}.rs"))]
    };
    sources.push(root.join("lib.rs"));
    sources
}

/// A command for the example `name`, with `DATABASE_URL` removed (set it
/// explicitly where needed).
pub fn example(name: &str) -> Command {
    let mut command = Command::new(example_path(name));
    command.env_remove("DATABASE_URL").env_remove("LISTEN_ADDR").stdin(Stdio::null());
    command
}

/// A running child process whose output is collected in the background.
/// Dropping it kills the process if it is still running.
pub struct Running {
    child: std::process::Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

fn collect(mut pipe: impl std::io::Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => into.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n])),
            }
        }
    })
}

impl Running {
    /// Starts `command` with its stdout and stderr collected.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Self { child, stdout, stderr, readers, status: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle`; panics with the output after `timeout`.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.stderr();
            if text.contains(needle) {
                return text;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                std::thread::sleep(Duration::from_millis(50));
                panic!("exited ({status}) before printing {needle:?}:\n{}\n{}", self.stdout(), self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} on stderr within {timeout:?}:\n{}\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`"TERM"`, `"INT"`) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits for the process to exit and for its output to be read;
    /// panics with the output after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.status {
                break status;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.status = Some(status);
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("did not exit within {timeout:?}:\n{}\n{}", self.stdout(), self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The pipes close when the last process holding them exits.
        let until = Instant::now() + Duration::from_secs(5);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `command` to completion; returns its status, stdout and stderr.
pub fn run(command: Command, timeout: Duration) -> (ExitStatus, String, String) {
    let mut running = Running::spawn(command);
    let status = running.wait(timeout);
    (status, running.stdout(), running.stderr())
}

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// `GET path` over a fresh connection (`Connection: close`), read to the end.
pub async fn http_get(addr: SocketAddr, path: &str) -> Response {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the service");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send the request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read the response");
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(30), exchange).await.expect("a response within 30 s");
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) =
        text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("an incomplete response: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let headers = head.to_ascii_lowercase();
    if let Some(length) = headers
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        assert_eq!(body.len(), length, "a truncated body: {text:?}");
    }
    Response { status, headers, body: body.to_owned() }
}

/// A plain connection for looking at the server from the side.
pub async fn monitor(connection_string: &str) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(connection_string, tokio_postgres::NoTls).await.expect("monitor connects");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Client connections with this `application_name` (in `state`, if given).
pub async fn connections_of(
    monitor: &tokio_postgres::Client,
    application_name: &str,
    state: Option<&str>,
) -> i64 {
    monitor
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND ($2::text IS NULL OR state = $2)",
            &[&application_name, &state],
        )
        .await
        .expect("count connections")
        .get(0)
}

/// Polls until `application_name` has `want` connections (in `state`);
/// panics after `timeout` with the last count.
pub async fn wait_for_connections(
    monitor: &tokio_postgres::Client,
    application_name: &str,
    state: Option<&str>,
    want: i64,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = connections_of(monitor, application_name, state).await;
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{application_name} has {now} connections ({state:?}), not {want}, after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

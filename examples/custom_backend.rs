//! pool-core is not tied to PostgreSQL: any backend plugs in through its
//! `Manager` trait. Here the backend is a plain TCP line protocol, served
//! inside this example on 127.0.0.1 (a free port):
//!
//! - `PING` is answered with `PONG`;
//! - any other line is echoed back;
//! - the server hangs up a connection once it has answered 25 requests
//!   (`PING`s not counted), as servers with a request limit per connection do.
//!
//! The manager connects, checks an idle connection before handing it out
//! again (`recycle`: `PING`, expecting `PONG`, within the pool's recycle
//! timeout) and spots a dead or out-of-step connection when it comes back
//! (`is_broken`), so callers never get a connection the server has closed.
//!
//! ```text
//! cargo run --release --example custom_backend
//! ```

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pool_core::{DestroyReason, Manager, Pool, ResourceInfo};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Requests the demo server answers on one connection before hanging up.
const REQUESTS_PER_CONNECTION: usize = 25;

/// One connection to the line server.
struct LineConnection {
    stream: BufReader<TcpStream>,
    /// Set when a request failed halfway: the stream may be out of step.
    broken: bool,
}

impl LineConnection {
    /// Sends one line and reads the answer.
    async fn request(&mut self, line: &str) -> io::Result<String> {
        let answer = self.exchange(line).await;
        if answer.is_err() {
            self.broken = true;
        }
        answer
    }

    async fn exchange(&mut self, line: &str) -> io::Result<String> {
        self.stream.write_all(format!("{line}\n").as_bytes()).await?;
        self.stream.flush().await?;
        let mut answer = String::new();
        if self.stream.read_line(&mut answer).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        Ok(answer.trim_end().to_owned())
    }
}

/// Opens and checks connections to the line server.
struct LineManager {
    addr: SocketAddr,
    created: AtomicUsize,
    /// Connections destroyed because `is_broken` said so.
    broken: AtomicUsize,
    /// Connections destroyed because `recycle` failed.
    recycle_failed: AtomicUsize,
    /// Connections destroyed for any other reason (the pool closing...).
    other: AtomicUsize,
}

impl Manager for LineManager {
    type Resource = LineConnection;
    type Error = io::Error;

    async fn create(&self) -> io::Result<LineConnection> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        self.created.fetch_add(1, Ordering::Relaxed);
        Ok(LineConnection { stream: BufReader::new(stream), broken: false })
    }

    /// Before reuse: one round trip, bounded by the pool's `recycle_timeout`.
    async fn recycle(&self, conn: &mut LineConnection, _info: &ResourceInfo) -> io::Result<()> {
        match conn.request("PING").await?.as_str() {
            "PONG" => Ok(()),
            other => Err(io::Error::new(io::ErrorKind::InvalidData, format!("expected PONG, got {other:?}"))),
        }
    }

    /// On return, without I/O: a failed request, unread bytes, or a socket
    /// the server has closed mean the connection must go.
    fn is_broken(&self, conn: &mut LineConnection) -> bool {
        if conn.broken || !conn.stream.buffer().is_empty() {
            return true;
        }
        let mut byte = [0u8; 1];
        match conn.stream.get_ref().try_read(&mut byte) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false, // open, nothing pending
            _ => true, // closed (Ok(0)), stray bytes or an error
        }
    }

    fn destroy(&self, conn: LineConnection, reason: DestroyReason) {
        let counter = match reason {
            DestroyReason::Broken => &self.broken,
            DestroyReason::RecycleFailed => &self.recycle_failed,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        drop(conn);
    }
}

/// The demo server: PING → PONG, anything else echoed, hang up after
/// answering [`REQUESTS_PER_CONNECTION`] requests.
async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            let mut answered = 0;
            while answered < REQUESTS_PER_CONNECTION {
                line.clear();
                if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let answer = if line.trim_end() == "PING" {
                    "PONG\n"
                } else {
                    answered += 1;
                    line.as_str()
                };
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custom_backend: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener));
    println!("line server listening on {addr}");

    let manager = LineManager {
        addr,
        created: AtomicUsize::new(0),
        broken: AtomicUsize::new(0),
        recycle_failed: AtomicUsize::new(0),
        other: AtomicUsize::new(0),
    };
    let pool = Pool::builder(manager)
        .name("lines")
        .max_size(4)
        .acquire_timeout(Duration::from_secs(5))
        .recycle_timeout(Duration::from_secs(1))
        .build()?;

    // 40 tasks, 10 requests each, through at most 4 connections.
    let mut tasks = JoinSet::new();
    for task in 0..40 {
        let pool = pool.clone();
        tasks.spawn(async move {
            for request in 0..10 {
                let mut conn = pool.get().await?;
                let line = format!("hello {task}/{request}");
                let answer = conn.request(&line).await?;
                if answer != line {
                    return Err(format!("sent {line:?}, got {answer:?}").into());
                }
            }
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        });
    }
    let mut peak_in_use = 0;
    let mut failures = Vec::new();
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => failures.push(e.to_string()),
                Some(Err(e)) => failures.push(e.to_string()),
            },
            () = tokio::time::sleep(Duration::from_millis(1)) => {
                peak_in_use = peak_in_use.max(pool.status().in_use);
            }
        }
    }
    let status = pool.status();
    println!("after 400 requests from 40 tasks: {status:?}");
    println!("peak connections in use: {peak_in_use} (max_size 4)");
    let manager = pool.manager();
    println!(
        "connections opened: {}; found closed by the server (it hangs up after {REQUESTS_PER_CONNECTION} \
         requests) and replaced: {} on return (is_broken), {} before reuse (recycle)",
        manager.created.load(Ordering::Relaxed),
        manager.broken.load(Ordering::Relaxed),
        manager.recycle_failed.load(Ordering::Relaxed),
    );

    pool.close_and_wait(Duration::from_secs(5)).await?;
    println!(
        "closed the pool ({} connection(s) closed with it): {:?}",
        pool.manager().other.load(Ordering::Relaxed),
        pool.status()
    );
    server.abort();
    if failures.is_empty() {
        println!("every request was answered");
        Ok(())
    } else {
        Err(format!("{} task(s) failed, e.g. {}", failures.len(), failures[0]).into())
    }
}

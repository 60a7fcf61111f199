//! The `pgpool` operator command, run for real against throwaway servers.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pool_postgres::PgPool;
use pool_postgres::tokio_postgres::{self, NoTls};
use pool_postgres_test_server::TestServer;

const PGPOOL: &str = env!("CARGO_BIN_EXE_pgpool");

/// Runs `pgpool` with `args` (and no `DATABASE_URL` unless given) to the end.
async fn pgpool(args: &[&str], database_url: Option<&str>) -> Output {
    let mut command = Command::new(PGPOOL);
    command.args(args).env_remove("DATABASE_URL").stdin(Stdio::null());
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    tokio::task::spawn_blocking(move || command.output().expect("run pgpool")).await.unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The rows of a table whose cells, split on whitespace, start with `first`.
fn rows<'a>(stdout: &'a str, first: &str) -> Vec<Vec<&'a str>> {
    stdout
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.first() == Some(&first))
        .collect()
}

/// `n` idle connections in a pool whose sessions carry `application_name`.
async fn idle_connections(server: &TestServer, application_name: &str, n: usize) -> PgPool {
    let url = format!("{}?connection_limit={n}&application_name={application_name}", server.url());
    let pool = PgPool::from_url(&url).expect("a valid pool URL");
    let mut held = Vec::new();
    for _ in 0..n {
        let client = pool.get().await.unwrap();
        client.query_one("SELECT 1", &[]).await.unwrap();
        held.push(client);
    }
    drop(held);
    pool
}

fn server() -> TestServer {
    TestServer::start().expect("start a throwaway server")
}

fn server_with_max_connections(max: u32) -> TestServer {
    TestServer::builder().max_connections(max).start().expect("start a throwaway server")
}

/// A plain connection, outside any pool and outside pgpool, that looks at
/// the server from the side.
struct Monitor(tokio_postgres::Client);

impl Monitor {
    async fn connect(server: &TestServer) -> Self {
        let (client, driver) =
            tokio_postgres::connect(&server.connection_string(), NoTls).await.expect("the monitor connects");
        tokio::spawn(driver);
        Self(client)
    }

    /// How many sessions on the server carry this `application_name`.
    async fn sessions_of(&self, application_name: &str) -> i64 {
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1";
        self.0.query_one(sql, &[&application_name]).await.expect("count sessions").get(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_shows_connections_by_state_and_application_against_the_limits() {
    let server = server_with_max_connections(20);
    let _pool = idle_connections(&server, "cli_stat", 3).await;
    let url = server.url();

    let output = pgpool(&["stat", "--url", &url], None).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("127.0.0.1:{}/postgres as postgres", server.port())), "{stdout}");
    assert!(
        stdout.contains("max_connections 20, reserved 3 (superuser) + 0, usable 17; in use 4"),
        "{stdout}"
    );
    assert!(rows(&stdout, "STATE").first().is_some_and(|h| h == &["STATE", "APPLICATION", "CONNECTIONS"]));
    assert!(rows(&stdout, "idle").contains(&vec!["idle", "cli_stat", "3"]), "{stdout}");
    assert!(rows(&stdout, "active").contains(&vec!["active", "pgpool", "1"]), "its own connection: {stdout}");
    assert_eq!(rows(&stdout, "total"), [["total", "4"]], "{stdout}");

    // --json, and the URL from DATABASE_URL.
    let output = pgpool(&["stat", "--json"], Some(&url)).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(json["server"]["max_connections"], 20, "{json}");
    assert_eq!(json["server"]["superuser_reserved_connections"], 3, "{json}");
    assert_eq!(json["server"]["usable"], 17, "{json}");
    // The first run's session may not have left the server yet: at least 4.
    let in_use = json["server"]["in_use"].as_i64().expect("in_use");
    assert!(in_use >= 4, "{json}");
    assert_eq!(json["server"]["available"], 17 - in_use, "{json}");
    let groups = json["connections"].as_array().expect("connections");
    for group in [
        serde_json::json!({ "state": "idle", "application_name": "cli_stat", "count": 3 }),
        serde_json::json!({ "state": "active", "application_name": "pgpool", "count": 1 }),
    ] {
        assert!(groups.contains(&group), "no {group} in {json}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_watch_refreshes_in_place_until_ctrl_c() {
    let server = server();
    let mut child = Command::new(PGPOOL)
        .args(["stat", "--watch", "0.2", "--url", &server.url()])
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pgpool");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read as _;
        let mut text = String::new();
        let _ = { stdout }.read_to_string(&mut text);
        text
    });
    // Three screens take about 0.4 s; the watcher has to be well into its loop.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pgpool stat --watch did not stop on SIGINT");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = reader.join().unwrap();
    assert!(status.success(), "exit {status}: {text}");
    let screens = text.matches("\x1b[2J\x1b[H").count();
    assert!(screens >= 3, "{screens} screens: {text:?}");
    assert!(text.contains("every 200ms - Ctrl-C to stop"), "{text:?}");
}

/// Waits until no `pgpool` session of an earlier run is left on the server
/// (a process's connection can outlive it by a moment).
async fn no_pgpool_left(monitor: &Monitor) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while monitor.sessions_of("pgpool").await > 0 {
        assert!(Instant::now() < deadline, "an earlier pgpool session is still on the server");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_shows_the_arithmetic_and_whether_it_fits() {
    let server = server_with_max_connections(20);
    let url = server.url();
    // The monitor's own connection is one held by others throughout.
    let monitor = Monitor::connect(&server).await;

    let output = pgpool(&["budget", "--instances", "2", "--pool-size", "5", "--url", &url], None).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    for line in [
        "2 instance(s) x pool of 5 = 10 connections needed; server allows 17",
        "1 held by others",
        "fits with 6 to spare",
        "usable = max_connections 20 - superuser_reserved_connections 3 - reserved_connections 0 = 17",
        "headroom = usable 17 - held by others 1 - needed 10 = 6",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }

    no_pgpool_left(&monitor).await;
    let output = pgpool(&["budget", "--instances", "4", "--pool-size", "5", "--url", &url], None).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "does not fit: exit 3\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("4 instance(s) x pool of 5 = 20") && stdout.contains("does NOT fit, short by 4"),
        "{stdout}"
    );
    assert!(stdout.contains("lower the pool size (connection_limit) to 4 or less"), "{stdout}");

    // Three connections of a running instance: others' unless named as the service's own.
    let _pool = idle_connections(&server, "cli_budget", 3).await;
    let args = ["budget", "--instances", "3", "--pool-size", "5", "--json", "--url", &url];
    no_pgpool_left(&monitor).await;
    let output = pgpool(&args, None).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let figures = (json["fits"].as_bool(), json["others"].as_i64(), json["headroom"].as_i64());
    assert_eq!(figures, (Some(false), Some(4), Some(-2)), "{json}");
    assert!(json["explanation"].as_str().is_some_and(|e| e.contains("short by 2")), "{json}");

    no_pgpool_left(&monitor).await;
    let output = pgpool(&[&args[..], &["--application", "cli_budget"]].concat(), None).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let figures = (json["fits"].as_bool(), json["others"].as_i64(), json["headroom"].as_i64());
    assert_eq!(figures, (Some(true), Some(1), Some(1)), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_lists_then_terminates_idle_connections_of_one_application() {
    let server = server();
    let victims = idle_connections(&server, "cli_victim", 3).await;
    let _bystanders = idle_connections(&server, "cli_bystander", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // idle for a while
    let monitor = Monitor::connect(&server).await;
    let url = server.url();
    let base = ["cleanup", "--idle-longer-than", "100ms", "--application", "cli_victim", "--url", &url];

    // The test server's only user is a superuser: spared by default.
    let output = pgpool(&[&base[..], &["--dry-run"]].concat(), None).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("no idle connection matches") && stdout.contains("superusers spared"),
        "{stdout}"
    );

    let output = pgpool(&[&base[..], &["--include-superusers", "--dry-run"]].concat(), None).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("would terminate 3 idle connection(s)") && stdout.contains("[dry run]"),
        "{stdout}"
    );
    let listed =
        stdout.lines().filter(|l| l.contains("cli_victim") && l.ends_with("would terminate")).count();
    assert_eq!(listed, 3, "{stdout}");
    assert_eq!(monitor.sessions_of("cli_victim").await, 3, "a dry run terminated something");

    let output = pgpool(&[&base[..], &["--include-superusers", "--json"]].concat(), None).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let sessions = json["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 3, "{json}");
    assert!(
        sessions.iter().all(|s| s["terminated"] == true && s["application_name"] == "cli_victim"),
        "{json}"
    );
    assert!(sessions.iter().all(|s| s["idle_seconds"].as_f64().is_some_and(|i| i >= 0.1)), "{json}");

    let deadline = Instant::now() + Duration::from_secs(5);
    while monitor.sessions_of("cli_victim").await > 0 {
        assert!(Instant::now() < deadline, "terminated sessions are still there");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(monitor.sessions_of("cli_bystander").await, 1, "another application was hit");
    // The pool notices and replaces what was terminated.
    let client = victims.get().await.unwrap();
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    drop(client);

    // A threshold nothing reaches matches nothing; the table says so.
    let output =
        pgpool(&["cleanup", "--idle-longer-than", "1h", "--include-superusers", "--url", &url], None).await;
    let (stdout, _) = text(&output);
    assert!(
        output.status.success() && stdout.contains("no idle connection matches (idle longer than 1h00m"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_without_permission_is_a_clear_error() {
    let server = server();
    let _victims = idle_connections(&server, "cli_guarded", 1).await;
    let monitor = Monitor::connect(&server).await;
    // `watcher` cannot even see others' sessions' state; `operator` can, but
    // may not end a superuser's session.
    monitor
        .0
        .batch_execute(
            "CREATE ROLE watcher LOGIN; CREATE ROLE operator LOGIN; GRANT pg_read_all_stats TO operator",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = format!("postgres://watcher@127.0.0.1:{}/postgres", server.port());
    let args = ["cleanup", "--idle-longer-than", "100ms", "--include-superusers", "--url", &url];
    let output = pgpool(&args, None).await;
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("no idle connection matches"), "{stdout}");
    assert!(
        stderr.contains("note: user watcher sees only its own sessions' state")
            && stderr.contains("pg_read_all_stats"),
        "{stderr}"
    );

    let url = format!("postgres://operator@127.0.0.1:{}/postgres", server.port());
    let args = ["cleanup", "--idle-longer-than", "100ms", "--include-superusers", "--url", &url];
    let output = pgpool(&args, None).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.starts_with("pgpool: cannot terminate idle connections: "), "{stderr}");
    assert!(stderr.contains("superuser") || stderr.contains("permission"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(monitor.sessions_of("cli_guarded").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_clear_messages_with_the_right_exit_code_and_no_password() {
    // Cannot connect.
    let output = pgpool(&["stat", "--url", "postgres://app:hunter2@127.0.0.1:1/app"], None).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.starts_with("pgpool: cannot connect to 127.0.0.1:1/app as app: "), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");

    // A bad URL, from DATABASE_URL.
    let output = pgpool(
        &["budget", "--instances", "1", "--pool-size", "1"],
        Some("postgres://app:hunter2@h/app?connection_limit=x"),
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("connection_limit"), "{stderr}");

    // No server at all.
    let output = pgpool(&["stat"], None).await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--url") && stderr.contains("DATABASE_URL"), "{stderr}");

    // Bad arguments: exit 2, before connecting anywhere.
    for args in [
        &["cleanup", "--idle-longer-than", "abc"][..],
        &["cleanup", "--idle-longer-than", "5 minutes"],
        &["cleanup", "--idle-longer-than", "-1s"],
        &["cleanup"],
        &["budget", "--instances", "0", "--pool-size", "5"],
        &["stat", "--watch", "0"],
        &["frobnicate"],
    ] {
        let output = pgpool(args, Some("postgres://app:hunter2@127.0.0.1:1/app")).await;
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stdout}\n{stderr}");
        assert!(stderr.starts_with("error:"), "{args:?}: {stderr}");
    }
    let output = pgpool(&["cleanup", "--idle-longer-than", "abc"], None).await;
    let (_, stderr) = text(&output);
    assert!(stderr.contains("500ms, 30s, 5m or 1h"), "{stderr}");

    for output in [
        pgpool(&["stat", "--url", "postgres://app:hunter2@127.0.0.1:1/app"], None).await,
        pgpool(&["stat", "--url", "postgres://app:hunter2@127.0.0.1:1/app?pool_timeout=x"], None).await,
        pgpool(&["stat", "--url", "mysql://app:hunter2@127.0.0.1/app"], None).await,
    ] {
        let (stdout, stderr) = text(&output);
        assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"), "the password leaked: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

//! Server insight for operators, against a real server.

mod common;

use std::time::Duration;

use pool_postgres::insight::{self, Budget, IdleFilter};

#[tokio::test]
async fn connections_are_grouped_by_state_and_application() {
    let server = common::server();
    let pool = common::pool(&server, "connection_limit=3&application_name=grouped");
    let held: Vec<_> =
        [pool.get().await.unwrap(), pool.get().await.unwrap(), pool.get().await.unwrap()].into();
    for client in &held {
        client.query_one("SELECT 1", &[]).await.unwrap();
    }
    let monitor = common::monitor(&server).await;
    let groups = insight::connections_by_state(&monitor).await.unwrap();
    let ours =
        groups.iter().find(|g| g.application_name == "grouped" && g.state == "idle").expect("our idle group");
    assert_eq!(ours.count, 3, "{groups:?}");
    assert!(groups.iter().any(|g| g.state == "active"), "the monitoring query itself is active: {groups:?}");
}

#[tokio::test]
async fn server_limits_and_the_budget_check_use_the_real_settings() {
    let server = common::server_with_max_connections(20);
    let pool = common::pool(&server, "connection_limit=4");
    let held = pool.get().await.unwrap();
    let limits = insight::server_limits(&held).await.unwrap();
    assert_eq!((limits.max_connections, limits.superuser_reserved), (20, 0));
    assert!(limits.in_use >= 1);
    let fits = Budget::compute(&limits, 4, 4, 1);
    assert!(fits.fits(), "{fits}");
    let too_big = Budget::compute(&limits, 3, 10, 1);
    assert!(!too_big.fits(), "{too_big}");
    assert!(too_big.to_string().contains("3 instance(s) x pool of 10 = 30"), "{too_big}");
}

#[tokio::test]
async fn terminate_idle_ends_only_matching_idle_sessions_and_never_its_own() {
    let server = common::server();
    let victims = common::pool(&server, "connection_limit=3&application_name=victim");
    let bystanders = common::pool(&server, "connection_limit=1&application_name=bystander");
    {
        let held = [victims.get().await.unwrap(), victims.get().await.unwrap(), victims.get().await.unwrap()];
        for client in &held {
            client.query_one("SELECT 1", &[]).await.unwrap();
        }
        bystanders.get().await.unwrap().query_one("SELECT 1", &[]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // let them be idle a while
    let monitor = common::monitor(&server).await;
    let mut filter = IdleFilter {
        application_name: Some("victim".into()),
        dry_run: true,
        ..IdleFilter::idle_longer_than(Duration::from_millis(100))
    };
    // The test server's only user is a superuser, whose sessions are spared by default.
    assert!(insight::terminate_idle(&monitor, &filter).await.unwrap().is_empty());
    filter.include_superusers = true;
    let listed = insight::terminate_idle(&monitor, &filter).await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().all(|s| !s.terminated && s.idle_for >= Duration::from_millis(100)));
    assert_eq!(common::connections_of(&monitor, "victim").await, 3, "a dry run terminates nothing");

    let ended = insight::terminate_idle(&monitor, &IdleFilter { dry_run: false, ..filter }).await.unwrap();
    assert_eq!(ended.iter().filter(|s| s.terminated).count(), 3);
    assert_eq!(common::connections_of(&monitor, "bystander").await, 1, "other applications untouched");

    // Without an application filter it ends the bystander too, but never the caller.
    let everyone = insight::terminate_idle(
        &monitor,
        &IdleFilter { include_superusers: true, ..IdleFilter::idle_longer_than(Duration::ZERO) },
    )
    .await
    .unwrap();
    assert!(everyone.iter().any(|s| s.application_name == "bystander" && s.terminated), "{everyone:?}");
    let own_pid: i32 =
        monitor.query_one("SELECT pg_backend_pid()", &[]).await.expect("the caller survives").get(0);
    assert!(everyone.iter().all(|s| s.pid != own_pid));

    // pg_terminate_backend only signals the sessions; once each has ended
    // and its socket has said so, the pool hands out live connections.
    common::idle_connections_notice(&victims).await;
    let client = victims.get().await.unwrap();
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_budget_check_warns_when_the_instances_would_not_fit() {
    let server = common::server_with_max_connections(20);
    let pool = common::pool(&server, "connection_limit=8");
    let fits = pool.check_budget(2).await.unwrap();
    assert!(fits.fits(), "2 x 8 = 16 of 20: {fits}");
    // Capture the check's log on this thread while it runs.
    let runtime = tokio::runtime::Handle::current();
    let mut budget = None;
    let warnings = tokio::task::block_in_place(|| {
        common::warnings_during(|| budget = Some(runtime.block_on(pool.check_budget(3)).unwrap()))
    });
    let budget = budget.unwrap();
    assert!(!budget.fits(), "3 x 8 = 24 > 20: {budget}");
    assert!(warnings.iter().any(|w| w.contains("do not fit") && w.contains("short by")), "{warnings:?}");
}

#[tokio::test]
async fn the_budget_counts_sibling_instances_once() {
    let server = common::server_with_max_connections(30);
    // Two instances of one service (same application_name), each holding 4.
    let url = "connection_limit=5&application_name=billing";
    let (first, second) = (common::pool(&server, url), common::pool(&server, url));
    let mut held = Vec::new();
    for pool in [&first, &second] {
        for _ in 0..4 {
            let client = pool.get().await.unwrap();
            client.query_one("SELECT 1", &[]).await.unwrap();
            held.push(client);
        }
    }
    // And someone else holding 3.
    let other = common::pool(&server, "connection_limit=3&application_name=reports");
    for _ in 0..3 {
        held.push(other.get().await.unwrap());
    }
    let budget = first.check_budget(4).await.unwrap();
    // 4 x 5 = 20 needed; the 8 billing sessions are part of that, not "others".
    assert_eq!((budget.needed, budget.others), (20, 3), "{budget}");
    assert_eq!(budget.headroom, 30 - 3 - 20, "{budget}");
    drop(held);
}

//! `/api`, `/api/health` and `/metrics`: liveness that never touches the database, readiness
//! that follows PostgreSQL and Redis going away and coming back.

use std::time::{Duration, Instant};

use crate::helpers::{
    ChaosProxy, TestDb, env_url, host_port, node::node_env, spawn_node, with_host_port,
};

#[actix_web::test]
async fn liveness_answers_with_node_and_version() {
    let db = TestDb::create().await;
    let node = spawn_node(node_env(&db, "live-1", &[])).await;

    let (status, body) = node.get_json("/api").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["node"], "live-1");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[actix_web::test]
async fn liveness_does_not_need_the_database() {
    let db = TestDb::create().await;
    let proxy = ChaosProxy::start(host_port(&db.url)).await;
    let url = with_host_port(&db.url, &proxy.address.to_string());
    let node = spawn_node(node_env(&db, "live-2", &[("DATABASE_URL", &url)])).await;

    proxy.cut();
    let (status, body) = node.get_json("/api").await;
    assert_eq!(status, 200, "{body}");
}

#[actix_web::test]
async fn liveness_reports_draining_with_503() {
    let db = TestDb::create().await;
    let node = spawn_node(node_env(&db, "live-3", &[])).await;

    node.state.start_draining();
    let (status, body) = node.get_json("/api").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "draining");
}

#[actix_web::test]
async fn health_is_ok_with_redis_disabled_in_single_node_mode() {
    let db = TestDb::create().await;
    let node = spawn_node(node_env(&db, "health-1", &[])).await;

    let (status, body) = node.get_json("/api/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["redis"], "disabled");
}

/// Polls `/api/health` until `done` accepts it, for at most `limit`.
async fn health_until(
    node: &crate::helpers::TestNode,
    limit: Duration,
    done: impl Fn(u16, &serde_json::Value) -> bool,
) -> (u16, serde_json::Value) {
    let started = Instant::now();
    loop {
        let (status, body) = node.get_json("/api/health").await;
        if done(status, &body) || started.elapsed() > limit {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn health_turns_503_while_postgres_is_unreachable_and_recovers() {
    let db = TestDb::create().await;
    let proxy = ChaosProxy::start(host_port(&db.url)).await;
    let url = with_host_port(&db.url, &proxy.address.to_string());
    let node = spawn_node(node_env(&db, "health-2", &[("DATABASE_URL", &url)])).await;

    let (status, body) = node.get_json("/api/health").await;
    assert_eq!(status, 200, "{body}");

    proxy.cut();
    let started = Instant::now();
    let (status, body) = node.get_json("/api/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "unavailable");
    assert_eq!(body["status"], "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the check must time out quickly, took {:?}",
        started.elapsed()
    );

    proxy.restore();
    let (status, body) = health_until(&node, Duration::from_secs(10), |s, _| s == 200).await;
    assert_eq!(status, 200, "health must recover by itself: {body}");
    assert_eq!(body["database"], "ok");
}

#[actix_web::test]
async fn health_names_redis_when_it_is_unreachable_and_recovers() {
    let db = TestDb::create().await;
    let redis = env_url("REDIS_URL");
    let proxy = ChaosProxy::start(host_port(&redis)).await;
    let url = with_host_port(&redis, &proxy.address.to_string());
    let node = spawn_node(node_env(&db, "health-3", &[("REDIS_URL", &url)])).await;

    let (status, body) = node.get_json("/api/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redis"], "ok");

    proxy.cut();
    let (status, body) = health_until(&node, Duration::from_secs(10), |s, _| s == 503).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["redis"], "unavailable");
    assert_eq!(body["database"], "ok");

    proxy.restore();
    let (status, body) = health_until(&node, Duration::from_secs(10), |s, _| s == 200).await;
    assert_eq!(status, 200, "health must recover by itself: {body}");
    assert_eq!(body["redis"], "ok");
}

#[actix_web::test]
async fn metrics_expose_prometheus_text_with_process_and_pool_state() {
    let db = TestDb::create().await;
    let node = spawn_node(node_env(&db, "metrics-1", &[])).await;
    node.get_json("/api/health").await;

    let (status, text) = node.get_text("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "bosar_connections",
        "bosar_rooms",
        "bosar_messages_in_total",
        "bosar_messages_out_total",
        "bosar_delivery_latency_seconds_bucket",
        "bosar_db_pool_size 8",
        "bosar_db_pool_available",
        "bosar_redis_up",
        "bosar_node_info{node=\"metrics-1\"",
        "bosar_process_resident_memory_bytes",
        "bosar_process_cpu_seconds_total",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
}

#[actix_web::test]
async fn unknown_routes_get_a_json_404() {
    let db = TestDb::create().await;
    let node = spawn_node(node_env(&db, "routes-1", &[])).await;

    let (status, body) = node.get_json("/api/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

#[actix_web::test]
async fn several_nodes_share_one_database_and_redis() {
    let redis = env_url("REDIS_URL");
    let cluster = crate::helpers::Cluster::start(3, Some(&redis)).await;

    let mut ids = Vec::new();
    for node in &cluster.nodes {
        let (status, body) = node.get_json("/api/health").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["redis"], "ok");
        ids.push(node.get_json("/api").await.1["node"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct node ids: {ids:?}");

    // A stopped node is gone — its listener and its open connections close just after the stop
    // returns, on the server's own threads — and the others keep answering.
    cluster.nodes[0].stop().await;
    let stopped = Instant::now();
    while cluster.nodes[0]
        .client
        .get(cluster.nodes[0].url("/api"))
        .send()
        .await
        .is_ok()
    {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "a stopped node still answers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cluster.nodes[1].get_json("/api").await.0, 200);
}

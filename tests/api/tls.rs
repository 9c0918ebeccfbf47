//! PostgreSQL over TLS, as managed databases require: `sslmode=require` encrypts,
//! `sslmode=verify-full` also verifies the server against `DATABASE_CA_FILE`, and a server that
//! cannot be verified is reported unhealthy rather than trusted.

use crate::helpers::tls_proxy::TlsProxy;
use crate::helpers::{TestDb, WsClient, host_port, node::node_env, spawn_node, with_host_port};

#[actix_web::test]
async fn sslmode_require_encrypts_every_connection_the_node_makes() {
    let db = TestDb::create().await;
    let proxy = TlsProxy::start(host_port(&db.url)).await;
    let url = format!(
        "{}?sslmode=require",
        with_host_port(&db.url, &proxy.address.to_string())
    );
    let node = spawn_node(node_env(
        &db,
        "tls-1",
        &[("DATABASE_URL", &url), ("RUN_MIGRATIONS", "true")],
    ))
    .await;

    let (status, body) = node.get_json("/api/health").await;
    assert_eq!(status, 200, "{body}");
    // Pool (register, rooms) and commit lanes (send) all go through TLS.
    let token = node.register("alice").await;
    node.create_room(&token, "general", false).await;
    let mut ws = WsClient::connect(&node, &token).await;
    ws.join("general", None).await;
    assert_eq!(ws.send_message("general", "over tls", None).await["seq"], 1);
}

#[actix_web::test]
async fn verify_full_trusts_the_configured_ca_and_nothing_else() {
    let db = TestDb::create().await;
    let proxy = TlsProxy::start(host_port(&db.url)).await;
    let url = format!(
        "{}?sslmode=verify-full",
        with_host_port(&db.url, &proxy.address.to_string())
    );
    let ca = proxy.ca_file.display().to_string();

    let trusted = spawn_node(node_env(
        &db,
        "tls-2",
        &[("DATABASE_URL", &url), ("DATABASE_CA_FILE", &ca)],
    ))
    .await;
    let (status, body) = trusted.get_json("/api/health").await;
    assert_eq!(status, 200, "{body}");

    let untrusted = spawn_node(node_env(&db, "tls-3", &[("DATABASE_URL", &url)])).await;
    let (status, body) = untrusted.get_json("/api/health").await;
    assert_eq!(status, 503, "an unverifiable server is not trusted: {body}");
    assert_eq!(body["database"], "unavailable");
}

#[actix_web::test]
async fn a_server_that_requires_tls_refuses_plain_connections() {
    let db = TestDb::create().await;
    let proxy = TlsProxy::start(host_port(&db.url)).await;
    let url = with_host_port(&db.url, &proxy.address.to_string());
    let node = spawn_node(node_env(&db, "tls-4", &[("DATABASE_URL", &url)])).await;
    let (status, _) = node.get_json("/api/health").await;
    assert_eq!(status, 503);
}

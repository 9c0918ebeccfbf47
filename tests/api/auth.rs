//! Register, login, tokens: the contract's statuses and error bodies.

use serde_json::json;

use crate::helpers::single_node;

#[actix_web::test]
async fn register_then_login_issue_working_tokens() {
    let (_db, node) = single_node(&[]).await;

    let (status, body) = node
        .post_json(
            "/api/auth/register",
            None,
            json!({"username": "alice", "password": "password123"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["username"], "alice");
    assert!(body["user"]["id"].is_string());
    let token = body["token"].as_str().unwrap();
    assert_eq!(node.get_authed("/api/rooms", token).await.0, 200);

    let (status, body) = node
        .post_json(
            "/api/auth/login",
            None,
            json!({"username": "alice", "password": "password123"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(
        node.get_authed("/api/rooms", body["token"].as_str().unwrap())
            .await
            .0,
        200
    );
}

#[actix_web::test]
async fn registration_validates_and_refuses_duplicates() {
    let (_db, node) = single_node(&[]).await;
    node.register("bob").await;

    for (body, status, code) in [
        (
            json!({"username": "bob", "password": "password123"}),
            409,
            "conflict",
        ),
        (
            json!({"username": "b", "password": "password123"}),
            400,
            "bad_request",
        ),
        (
            json!({"username": "has space", "password": "password123"}),
            400,
            "bad_request",
        ),
        (
            json!({"username": "carol", "password": "short"}),
            400,
            "bad_request",
        ),
        (
            json!({"username": "carol", "password": "x".repeat(129)}),
            400,
            "bad_request",
        ),
        (json!({"username": "carol"}), 400, "bad_request"),
    ] {
        let (got, reply) = node
            .post_json("/api/auth/register", None, body.clone())
            .await;
        assert_eq!(got, status, "{body} -> {reply}");
        assert_eq!(reply["error"]["code"], code, "{reply}");
        assert!(reply["error"]["message"].is_string());
    }
}

#[actix_web::test]
async fn login_failures_look_the_same() {
    let (_db, node) = single_node(&[]).await;
    node.register("dave").await;

    let (s1, wrong) = node
        .post_json(
            "/api/auth/login",
            None,
            json!({"username": "dave", "password": "wrongpassword"}),
        )
        .await;
    let (s2, unknown) = node
        .post_json(
            "/api/auth/login",
            None,
            json!({"username": "nobody", "password": "wrongpassword"}),
        )
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong, unknown);
}

#[actix_web::test]
async fn authenticated_routes_refuse_missing_and_bad_tokens() {
    let (_db, node) = single_node(&[]).await;
    let (status, body) = node.get_json("/api/rooms").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(node.get_authed("/api/rooms", "garbage").await.0, 401);
}

#[actix_web::test]
async fn passwords_are_stored_only_as_argon2_hashes() {
    use bosar_chat::store::schema::users;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;

    let (db, node) = single_node(&[]).await;
    node.register("erin").await;
    let mut conn = db.connect().await;
    let hash: Option<String> = users::table
        .filter(users::username.eq("erin"))
        .select(users::password_hash)
        .first(&mut conn)
        .await
        .unwrap();
    let hash = hash.unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("password123"));
}

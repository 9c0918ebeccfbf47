//! Rooms over REST: creation, listing with private-room visibility, members, history pages.

use serde_json::json;

use crate::helpers::{WsClient, single_node};

#[actix_web::test]
async fn rooms_are_created_once_and_listed_by_visibility() {
    let (_db, node) = single_node(&[]).await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;

    let (status, room) = node
        .post_json("/api/rooms", Some(&alice), json!({"name": "general"}))
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["name"], "general");
    assert_eq!(room["private"], false);
    assert_eq!(room["owner"], "alice");
    assert!(room["created_at"].as_str().unwrap().ends_with('Z'));

    let (status, body) = node
        .post_json("/api/rooms", Some(&bob), json!({"name": "general"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("conflict"))
    );
    for bad in ["General", "", "-x", &"r".repeat(65)] {
        let (status, _) = node
            .post_json("/api/rooms", Some(&bob), json!({"name": bad}))
            .await;
        assert_eq!(status, 400, "{bad}");
    }

    node.create_room(&alice, "secret", true).await;
    let names = |body: serde_json::Value| -> Vec<String> {
        body["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(node.get_authed("/api/rooms", &alice).await.1),
        ["general", "secret"]
    );
    assert_eq!(
        names(node.get_authed("/api/rooms", &bob).await.1),
        ["general"]
    );

    // Only the owner adds members; then the room is visible to the member.
    assert_eq!(node.add_member(&bob, "secret", "bob").await, 403);
    assert_eq!(node.add_member(&alice, "secret", "nobody").await, 404);
    // A name no account can have, a NUL character included, is a bad request, not a failure.
    for bad in ["no\u{0}body", "has space", "ab"] {
        assert_eq!(node.add_member(&alice, "secret", bad).await, 400, "{bad:?}");
    }
    assert_eq!(node.add_member(&alice, "secret", "bob").await, 204);
    assert_eq!(
        names(node.get_authed("/api/rooms", &bob).await.1),
        ["general", "secret"]
    );
}

#[actix_web::test]
async fn history_pages_are_ascending_and_respect_private_rooms() {
    let (_db, node) = single_node(&[]).await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    node.create_room(&alice, "general", false).await;
    node.create_room(&alice, "secret", true).await;

    let mut ws = WsClient::connect(&node, &alice).await;
    ws.join("general", None).await;
    for i in 1..=10 {
        let ack = ws.send_message("general", &format!("m{i}"), None).await;
        assert_eq!(ack["seq"], i);
    }

    let seqs = |body: &serde_json::Value| -> Vec<i64> {
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect()
    };
    let (status, body) = node.get_authed("/api/rooms/general/messages", &bob).await;
    assert_eq!(status, 200);
    assert_eq!(seqs(&body), (1..=10).collect::<Vec<_>>());
    let first = &body["messages"][0];
    assert_eq!(first["user"], "alice");
    assert_eq!(first["body"], "m1");
    assert_eq!(first["room"], "general");
    assert!(first.get("client_msg_id").is_none());

    let (_, body) = node
        .get_authed("/api/rooms/general/messages?before=8&limit=3", &bob)
        .await;
    assert_eq!(seqs(&body), [5, 6, 7]);
    let (_, body) = node
        .get_authed("/api/rooms/general/messages?after=8", &bob)
        .await;
    assert_eq!(seqs(&body), [9, 10]);
    let (_, body) = node
        .get_authed("/api/rooms/general/messages?after=2&before=6", &bob)
        .await;
    assert_eq!(seqs(&body), [3, 4, 5]);
    let (status, _) = node
        .get_authed("/api/rooms/general/messages?limit=0", &bob)
        .await;
    assert_eq!(status, 400);
    let (status, _) = node
        .get_authed("/api/rooms/general/messages?before=x", &bob)
        .await;
    assert_eq!(status, 400);

    let (status, body) = node.get_authed("/api/rooms/secret/messages", &bob).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("forbidden"))
    );
    let (status, _) = node.get_authed("/api/rooms/nope/messages", &bob).await;
    assert_eq!(status, 404);
}

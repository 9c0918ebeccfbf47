//! The WebSocket protocol: authentication paths, every client frame, every error code and the
//! close codes of the contract.

use std::time::Duration;

use serde_json::json;

use crate::helpers::node::JWT_SECRET;
use crate::helpers::{WsClient, single_node};

#[actix_web::test]
async fn auth_by_header_query_or_first_frame() {
    let (_db, node) = single_node(&[]).await;
    let token = node.register("alice").await;

    // Query parameter.
    let mut ws = WsClient::connect(&node, &token).await;
    ws.send(json!({"type": "ping", "ref": "p1"})).await;
    assert_eq!(ws.recv_json().await, json!({"type": "pong", "ref": "p1"}));

    // Authorization header.
    let request = awc::Client::new()
        .ws(node.ws_url("/ws"))
        .bearer_auth(&token);
    let mut ws = WsClient::connect_with(request).await.expect("upgrade");
    let welcome = ws.recv_json().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["user"], "alice");
    assert_eq!(welcome["node"], "node-0");
    assert_eq!(welcome["heartbeat_ms"], 25000);

    // First frame.
    let mut ws = WsClient::connect_url(&node.ws_url("/ws"))
        .await
        .expect("upgrade");
    ws.send(json!({"type": "auth", "token": token})).await;
    assert_eq!(ws.recv_json().await["type"], "welcome");
}

#[actix_web::test]
async fn bad_tokens_are_refused_before_the_upgrade() {
    let (_db, node) = single_node(&[]).await;
    assert_eq!(
        WsClient::connect_url(&node.ws_url("/ws?token=garbage"))
            .await
            .err(),
        Some(401)
    );
    let request = awc::Client::new()
        .ws(node.ws_url("/ws"))
        .bearer_auth("garbage");
    assert_eq!(WsClient::connect_with(request).await.err(), Some(401));

    // Expired: signed with the right key, but in the past.
    let keys = bosar_chat::auth::JwtKeys::new(JWT_SECRET.as_bytes(), Duration::from_secs(1));
    let expired = {
        use jsonwebtoken::{EncodingKey, Header};
        let now = chrono::Utc::now().timestamp();
        let claims = bosar_chat::auth::Claims {
            sub: uuid::Uuid::new_v4(),
            name: "x".into(),
            iat: now - 100,
            exp: now - 50,
        };
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap()
    };
    drop(keys);
    assert_eq!(
        WsClient::connect_url(&node.ws_url(&format!("/ws?token={expired}")))
            .await
            .err(),
        Some(401)
    );
}

#[actix_web::test]
async fn missing_or_bad_first_frame_auth_closes_with_4001() {
    let (_db, node) = single_node(&[("WS_AUTH_TIMEOUT_MS", "300")]).await;

    let mut silent = WsClient::connect_url(&node.ws_url("/ws"))
        .await
        .expect("upgrade");
    assert_eq!(silent.recv_close().await, Some(4001));

    let mut wrong = WsClient::connect_url(&node.ws_url("/ws"))
        .await
        .expect("upgrade");
    wrong
        .send(json!({"type": "auth", "token": "garbage"}))
        .await;
    assert_eq!(wrong.recv_close().await, Some(4001));

    let mut skipping = WsClient::connect_url(&node.ws_url("/ws"))
        .await
        .expect("upgrade");
    skipping.send(json!({"type": "ping"})).await;
    assert_eq!(skipping.recv_close().await, Some(4001));
}

#[actix_web::test]
async fn a_token_that_expires_while_connected_closes_with_4001() {
    let (db, node) = single_node(&[]).await;
    node.register("shortlived").await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_bosar-chat"))
        .args(["token", "--user", "shortlived", "--ttl", "1"])
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("JWT_SECRET", JWT_SECRET)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap();
    let mut ws = WsClient::connect(&node, token.trim()).await;
    assert_eq!(ws.recv_close().await, Some(4001));
}

#[actix_web::test]
async fn bad_frames_get_bad_request_and_the_connection_stays_usable() {
    let (_db, node) = single_node(&[]).await;
    let token = node.register("alice").await;
    node.create_room(&token, "general", false).await;
    let mut ws = WsClient::connect(&node, &token).await;

    for text in [
        "not json",
        "[1,2,3]",
        r#"{"type":"dance","ref":"r1"}"#,
        r#"{"type":"join","ref":"r2"}"#,
        r#"{"type":"join","room":5,"ref":"r3"}"#,
        r#"{"room":"general"}"#,
        r#"{"type":"join","room":"Bad Name","ref":"r4"}"#,
        r#"{"type":"join","room":"general","since":-1}"#,
        r#"{"type":"history","room":"general","limit":0}"#,
    ] {
        ws.send_text(text).await;
        let reply = ws.recv_json().await;
        assert_eq!(reply["type"], "error", "{text} -> {reply}");
        assert_eq!(reply["code"], "bad_request", "{text} -> {reply}");
        if let Some(r) = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("ref").cloned())
        {
            assert_eq!(reply["ref"], r, "{text} -> {reply}");
        }
    }
    ws.send_binary(b"\x00\x01").await;
    let reply = ws.recv_json().await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("bad_request"))
    );

    ws.send(json!({"type": "ping", "ref": "still-here"})).await;
    assert_eq!(
        ws.recv_json().await,
        json!({"type": "pong", "ref": "still-here"})
    );
}

#[actix_web::test]
async fn room_errors_not_found_forbidden_not_joined_too_large() {
    let (_db, node) = single_node(&[("MAX_BODY_BYTES", "100")]).await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    node.create_room(&alice, "general", false).await;
    node.create_room(&alice, "secret", true).await;
    let mut ws = WsClient::connect(&node, &bob).await;

    let expect_error = |reply: serde_json::Value, code: &str, r: &str| {
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["code"], code, "{reply}");
        assert_eq!(reply["ref"], r, "{reply}");
    };
    ws.send(json!({"type": "join", "room": "nope", "ref": "a"}))
        .await;
    expect_error(ws.recv_json().await, "not_found", "a");
    ws.send(json!({"type": "join", "room": "secret", "ref": "b"}))
        .await;
    expect_error(ws.recv_json().await, "forbidden", "b");
    ws.send(json!({"type": "history", "room": "secret", "ref": "b2"}))
        .await;
    expect_error(ws.recv_json().await, "forbidden", "b2");
    ws.send(json!({"type": "send", "room": "general", "body": "hi", "ref": "c"}))
        .await;
    expect_error(ws.recv_json().await, "not_joined", "c");
    ws.send(json!({"type": "leave", "room": "general", "ref": "d"}))
        .await;
    expect_error(ws.recv_json().await, "not_joined", "d");
    ws.send(json!({"type": "typing", "room": "general", "ref": "e"}))
        .await;
    expect_error(ws.recv_json().await, "not_joined", "e");

    ws.join("general", None).await;
    ws.send(json!({"type": "send", "room": "general", "body": "x".repeat(101), "ref": "f"}))
        .await;
    expect_error(ws.recv_json().await, "too_large", "f");
    ws.send(json!({"type": "send", "room": "general", "body": "   ", "ref": "g"}))
        .await;
    expect_error(ws.recv_json().await, "bad_request", "g");
    ws.send(json!({"type": "send", "room": "general", "body": "ok", "client_msg_id": "c".repeat(65), "ref": "h"})).await;
    expect_error(ws.recv_json().await, "bad_request", "h");

    // A member of the private room may join it.
    assert_eq!(node.add_member(&alice, "secret", "bob").await, 204);
    let joined = ws.join("secret", None).await;
    assert_eq!(joined["room"], "secret");
}

#[actix_web::test]
async fn frames_over_max_frame_bytes_close_with_1009() {
    let (_db, node) = single_node(&[("MAX_FRAME_BYTES", "8192")]).await;
    let token = node.register("alice").await;
    let mut ws = WsClient::connect(&node, &token).await;
    ws.send_text(&format!(
        r#"{{"type":"ping","pad":"{}"}}"#,
        "x".repeat(9000)
    ))
    .await;
    assert_eq!(ws.recv_close().await, Some(1009));
}

#[actix_web::test]
async fn join_send_ack_message_leave() {
    let (_db, node) = single_node(&[]).await;
    let token = node.register("alice").await;
    node.create_room(&token, "general", false).await;
    let mut ws = WsClient::connect(&node, &token).await;

    ws.send(json!({"type": "join", "room": "general", "ref": "j"}))
        .await;
    let joined = ws.recv_json().await;
    assert_eq!(
        joined,
        json!({"type": "joined", "room": "general", "last_seq": 0, "presence": ["alice"], "ref": "j"})
    );

    ws.send(json!({"type": "send", "room": "general", "body": "hello", "client_msg_id": "c-1", "ref": "s1"})).await;
    let mut ack = None;
    let mut message = None;
    while ack.is_none() || message.is_none() {
        let frame = ws.recv_json().await;
        match frame["type"].as_str() {
            Some("ack") => ack = Some(frame),
            Some("message") => message = Some(frame),
            _ => panic!("unexpected {frame}"),
        }
    }
    let (ack, message) = (ack.unwrap(), message.unwrap());
    assert_eq!(ack["room"], "general");
    assert_eq!(ack["seq"], 1);
    assert_eq!(ack["client_msg_id"], "c-1");
    assert_eq!(ack["ref"], "s1");
    assert_eq!(message["id"], ack["id"]);
    assert_eq!(message["ts"], ack["ts"]);
    assert_eq!(message["seq"], 1);
    assert_eq!(message["user"], "alice");
    assert_eq!(message["body"], "hello");
    assert_eq!(message["client_msg_id"], "c-1");
    assert!(message["ts"].as_str().unwrap().len() == 24, "{message}");

    ws.send(json!({"type": "history", "room": "general", "before": 2, "ref": "h"}))
        .await;
    let history = ws.recv_json().await;
    assert_eq!(history["type"], "history");
    assert_eq!(history["ref"], "h");
    assert_eq!(history["messages"][0]["id"], ack["id"]);

    ws.send(json!({"type": "leave", "room": "general", "ref": "l"}))
        .await;
    assert_eq!(
        ws.recv_json().await,
        json!({"type": "left", "room": "general", "ref": "l"})
    );
    ws.send(json!({"type": "search", "room": "general", "query": "hello", "ref": "q"}))
        .await;
    // Search needs no join; the message may not be embedded yet, so only the shape is checked.
    let reply = ws.recv_json().await;
    assert_eq!(reply["type"], "search_results", "{reply}");
    assert_eq!(
        (&reply["room"], &reply["ref"]),
        (&json!("general"), &json!("q"))
    );
    assert!(reply["hits"].is_array());
}

#[actix_web::test]
async fn repeating_a_client_msg_id_returns_the_original_ack_without_a_second_message() {
    let (db, node) = single_node(&[]).await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    node.create_room(&alice, "general", false).await;
    let mut sender = WsClient::connect(&node, &alice).await;
    let mut watcher = WsClient::connect(&node, &bob).await;
    sender.join("general", None).await;
    watcher.join("general", None).await;

    let first = sender.send_message("general", "once", Some("dup-1")).await;
    let again = sender.send_message("general", "once", Some("dup-1")).await;
    assert_eq!(first["id"], again["id"]);
    assert_eq!(first["seq"], again["seq"]);
    assert_eq!(first["ts"], again["ts"]);
    // A different id is a new message.
    let next = sender.send_message("general", "twice", Some("dup-2")).await;
    assert_eq!(next["seq"], 2);

    assert_eq!(watcher.messages_until("general", 2).await, [1, 2]);
    assert_eq!(db.message_count().await, 2);
}

/// A validly signed token for a user the database does not know must not poison the commit
/// batch it lands in: its sends are refused alone, everyone else's are stored.
#[actix_web::test]
async fn a_send_from_an_unknown_user_is_refused_alone() {
    let (db, node) = single_node(&[]).await;
    let alice = node.register("alice").await;
    node.create_room(&alice, "general", false).await;
    let keys = bosar_chat::auth::JwtKeys::new(JWT_SECRET.as_bytes(), Duration::from_secs(600));
    let ghost = keys.issue(uuid::Uuid::now_v7(), "ghost", None).unwrap();
    let mut sender = WsClient::connect(&node, &alice).await;
    let mut stranger = WsClient::connect(&node, &ghost).await;
    sender.join("general", None).await;
    stranger.join("general", None).await;

    // Interleaved without waiting, so that both land in the same commit batches.
    for n in 0..20 {
        stranger
            .send(json!({"type": "send", "room": "general", "body": "boo", "ref": format!("g{n}")}))
            .await;
        sender
            .send(json!({"type": "send", "room": "general", "body": "hi", "ref": format!("a{n}")}))
            .await;
    }
    let mut refused = 0;
    while refused < 20 {
        let frame = stranger.recv_json().await;
        match frame["type"].as_str() {
            Some("error") => {
                assert_eq!(frame["code"], "unauthorized", "{frame}");
                refused += 1;
            }
            Some("message") => assert_eq!(frame["body"], "hi", "{frame}"),
            _ => {}
        }
    }
    let acked = sender.ack_seqs(20).await;
    // Acks come in send order, also when one commit batch answers several sends at once.
    assert_eq!(acked, (1..=20).collect::<Vec<_>>());

    assert_eq!(db.message_count().await, 20);
}

/// PostgreSQL's text cannot hold a NUL character: a body or `client_msg_id` with one is refused
/// as `bad_request` before it reaches a commit batch, where it would fail everyone's sends.
#[actix_web::test]
async fn a_nul_character_is_refused_alone() {
    let (db, node) = single_node(&[]).await;
    let alice = node.register("alice").await;
    let mallory = node.register("mallory").await;
    node.create_room(&alice, "general", false).await;
    let mut sender = WsClient::connect(&node, &alice).await;
    let mut poisoner = WsClient::connect(&node, &mallory).await;
    sender.join("general", None).await;
    poisoner.join("general", None).await;

    // Interleaved without waiting, so that they would land in the same commit batches.
    for n in 0..20 {
        let bad = if n % 2 == 0 {
            json!({"type": "send", "room": "general", "body": "a\u{0}b", "ref": format!("m{n}")})
        } else {
            json!({"type": "send", "room": "general", "body": "ok", "client_msg_id": "c\u{0}",
                   "ref": format!("m{n}")})
        };
        poisoner.send(bad).await;
        sender
            .send(json!({"type": "send", "room": "general", "body": "hi", "ref": format!("a{n}")}))
            .await;
    }
    for n in 0..20 {
        let frame = poisoner.recv_type_any(&["error"]).await;
        assert_eq!(frame["code"], "bad_request", "{frame}");
        assert_eq!(frame["ref"], format!("m{n}"), "{frame}");
    }
    let acked = sender.ack_seqs(20).await;
    assert_eq!(acked, (1..=20).collect::<Vec<_>>());
    assert_eq!(db.message_count().await, 20);
}

#[actix_web::test]
async fn presence_and_typing_reach_the_other_members() {
    let (_db, node) = single_node(&[]).await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    node.create_room(&alice, "general", false).await;
    let mut a = WsClient::connect(&node, &alice).await;
    a.join("general", None).await;

    let mut b = WsClient::connect(&node, &bob).await;
    let joined = b.join("general", None).await;
    assert_eq!(joined["presence"], json!(["alice", "bob"]));
    assert_eq!(
        a.recv_json().await,
        json!({"type": "presence", "room": "general", "joined": ["bob"], "left": []})
    );

    // A second connection of bob's changes nothing; its leaving neither.
    let mut b2 = WsClient::connect(&node, &bob).await;
    b2.join("general", None).await;
    b2.send(json!({"type": "leave", "room": "general"})).await;
    b2.recv_type("left").await;

    b.send(json!({"type": "typing", "room": "general"})).await;
    assert_eq!(
        a.recv_json().await,
        json!({"type": "typing", "room": "general", "user": "bob"})
    );

    // Bob's last connection dies without a close frame: he leaves presence.
    drop(b);
    assert_eq!(
        a.recv_json().await,
        json!({"type": "presence", "room": "general", "joined": [], "left": ["bob"]})
    );
}

#[actix_web::test]
async fn rate_limit_answers_rate_limited_then_4029_for_sustained_abuse() {
    let (_db, node) = single_node(&[("WS_MAX_RATE_LIMITED", "30")]).await;
    let token = node.register("alice").await;
    node.create_room(&token, "general", false).await;
    let mut ws = WsClient::connect(&node, &token).await;
    ws.join("general", None).await;

    // A burst of 60: the bucket holds 40.
    for i in 0..60 {
        ws.send(json!({"type": "send", "room": "general", "body": format!("m{i}")}))
            .await;
    }
    let (mut acks, mut limited) = (0, 0);
    while acks + limited < 60 {
        let frame = ws.recv_json().await;
        match frame["type"].as_str() {
            Some("ack") => acks += 1,
            Some("error") => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                limited += 1;
            }
            _ => {}
        }
    }
    assert!(
        (40..=42).contains(&acks),
        "the burst of 40 is accepted, got {acks}"
    );

    // Keeping it up passes the abuse limit: closed with 4029.
    for i in 0..60 {
        ws.send(json!({"type": "send", "room": "general", "body": format!("more{i}")}))
            .await;
    }
    assert_eq!(ws.recv_close().await, Some(4029));
}

#[actix_web::test]
async fn joining_more_than_the_room_limit_is_refused() {
    let (_db, node) = single_node(&[("WS_MAX_ROOMS", "3")]).await;
    let token = node.register("alice").await;
    for i in 0..4 {
        node.create_room(&token, &format!("r{i}"), false).await;
    }
    let mut ws = WsClient::connect(&node, &token).await;
    for i in 0..3 {
        ws.join(&format!("r{i}"), None).await;
    }
    ws.send(json!({"type": "join", "room": "r3", "ref": "x"}))
        .await;
    let reply = ws.recv_json().await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("bad_request"))
    );
}

#[actix_web::test]
async fn idle_connections_are_pinged_then_closed() {
    let (_db, node) =
        single_node(&[("WS_HEARTBEAT_MS", "100"), ("WS_IDLE_TIMEOUT_MS", "400")]).await;
    let token = node.register("alice").await;
    let url = node.ws_url(&format!("/ws?token={token}"));
    // A raw client that never answers pings.
    let (_, mut framed) = awc::Client::new().ws(url).connect().await.unwrap();
    use futures_util::StreamExt;
    let mut pings = 0;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), framed.next())
            .await
            .unwrap()
        {
            Some(Ok(awc::ws::Frame::Ping(_))) => pings += 1,
            Some(Ok(awc::ws::Frame::Close(reason))) => break reason.map(|r| u16::from(r.code)),
            None => break None,
            _ => {}
        }
    };
    assert!(pings >= 2, "{pings} pings");
    assert_eq!(closed, Some(1001));
}

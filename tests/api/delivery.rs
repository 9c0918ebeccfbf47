//! Delivery guarantees on one node: gapless seqs under concurrency, replay with `since` joined
//! seamlessly to live delivery, slow readers cut off without hurting the room, and nothing
//! acknowledged that was not stored while the database is away.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    ChaosProxy, Event, TestDb, WsClient, host_port, node::node_env, single_node, spawn_node,
    with_host_port,
};

/// No rate limit to speak of: these tests measure delivery, not throttling.
const FAST: [(&str, &str); 2] = [("WS_RATE_PER_SEC", "100000"), ("WS_RATE_BURST", "100000")];

#[actix_web::test]
async fn twenty_senders_of_a_hundred_each_every_receiver_sees_1_to_2000_in_order() {
    let (db, node) = single_node(&FAST).await;
    let owner = node.register("owner").await;
    node.create_room(&owner, "busy", false).await;

    let mut clients = Vec::new();
    for i in 0..20 {
        let token = node.register(&format!("user{i:02}")).await;
        let ws = WsClient::joined(&node, &token, "busy").await;
        clients.push(ws);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            actix_rt::spawn(async move {
                for n in 0..100 {
                    ws.send(json!({"type": "send", "room": "busy", "body": format!("{i}:{n}"), "client_msg_id": format!("{i}-{n}")})).await;
                }
                let (mut seqs, mut acks) = (Vec::new(), 0);
                while seqs.len() < 2000 || acks < 100 {
                    let frame = ws.recv_json().await;
                    match frame["type"].as_str() {
                        Some("message") => seqs.push(frame["seq"].as_i64().unwrap()),
                        Some("ack") => acks += 1,
                        Some("presence") => {}
                        _ => panic!("unexpected {frame}"),
                    }
                }
                seqs
            })
        })
        .collect();
    for task in tasks {
        let seqs = task.await.unwrap();
        assert_eq!(seqs, (1..=2000).collect::<Vec<_>>());
    }
    assert_eq!(db.message_count().await, 2000);
}

#[actix_web::test]
async fn rejoin_with_since_replays_exactly_the_missed_messages_then_live_ones() {
    let (_db, node) = single_node(&FAST).await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    node.create_room(&alice, "general", false).await;

    // Alice keeps sending, never more than LEAD messages past what Bob has seen: whenever Bob
    // rejoins there are messages he missed, and more follow live while they are replayed —
    // however fast either side runs.
    const LEAD: i64 = 60;
    let total: i64 = 400;
    let bob_has = Rc::new(Cell::new(0_i64));
    let mut sender = WsClient::joined(&node, &alice, "general").await;
    let sending = actix_rt::spawn({
        let bob_has = Rc::clone(&bob_has);
        async move {
            for n in 1..=total {
                while n > bob_has.get() + LEAD {
                    actix_rt::time::sleep(Duration::from_millis(1)).await;
                }
                sender
                    .send(json!({"type": "send", "room": "general", "body": format!("n{n}")}))
                    .await;
            }
            let mut acks = 0;
            while acks < total {
                if sender.recv_json().await["type"] == "ack" {
                    acks += 1;
                }
            }
        }
    });

    // Bob reads a little past what was stored when he joined, drops, rejoins with since.
    let mut seen: Vec<i64> = Vec::new();
    while seen.last().copied().unwrap_or(0) < total {
        let mut ws = WsClient::connect(&node, &bob).await;
        let since = seen.last().copied();
        let joined = ws.join("general", since).await;
        let last_seq = joined["last_seq"].as_i64().unwrap();
        assert!(last_seq >= since.unwrap_or(0), "{joined}");
        let target = (last_seq + 30).min(total);
        loop {
            let frame = ws.recv_json().await;
            assert_ne!(frame["type"], "error", "{frame}");
            if frame["type"] != "message" {
                continue;
            }
            let seq = frame["seq"].as_i64().expect("seq");
            seen.push(seq);
            bob_has.set(seq);
            if seq >= target {
                break;
            }
        }
    }
    sending.await.unwrap();

    assert_eq!(
        seen,
        (1..=total).collect::<Vec<_>>(),
        "every message once, in order"
    );
    // Nothing missed: the room has nothing newer to tell.
    let mut ws = WsClient::connect(&node, &bob).await;
    assert_eq!(ws.join("general", Some(total)).await["last_seq"], total);
}

#[actix_web::test]
async fn a_slow_reader_is_closed_with_4008_while_the_room_keeps_flowing() {
    let (_db, node) = single_node(&FAST).await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    let carol = node.register("carol").await;
    node.create_room(&alice, "firehose", false).await;

    let mut slow = WsClient::joined(&node, &carol, "firehose").await;
    let mut reader = WsClient::joined(&node, &bob, "firehose").await;
    let mut sender = WsClient::joined(&node, &alice, "firehose").await;

    let body = "x".repeat(4000);
    // More than the slow reader's socket buffers and budget can hold, at a pace a reader that
    // keeps reading absorbs.
    let total = 4000;
    let sending = actix_rt::spawn(async move {
        for n in 0..total {
            sender.send(json!({"type": "send", "room": "firehose", "body": body, "client_msg_id": format!("m{n}")})).await;
            if n % 10 == 9 {
                sender.ack_seqs(10).await;
                actix_rt::time::sleep(Duration::from_millis(5)).await;
            }
        }
        sender
    });
    // The reader keeps up and gets everything.
    let seqs = reader.messages_until("firehose", total).await;
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    drop(sending.await.unwrap());

    // The slow reader, once it finally reads, finds its stream cut short with 4008.
    let mut received = 0;
    let code = loop {
        match slow.recv().await {
            Event::Json(frame) if frame["type"] == "message" => received += 1,
            Event::Json(_) | Event::Binary => {}
            Event::Close(code) => break code,
        }
    };
    assert_eq!(code, Some(4008));
    assert!(
        received < total,
        "the slow reader was cut off early ({received})"
    );
}

#[actix_web::test]
async fn sends_while_the_database_is_down_are_unavailable_and_retries_store_once() {
    let db = TestDb::create().await;
    let proxy = ChaosProxy::start(host_port(&db.url)).await;
    let url = with_host_port(&db.url, &proxy.address.to_string());
    let node = spawn_node(node_env(&db, "node-0", &[("DATABASE_URL", &url)])).await;
    let alice = node.register("alice").await;
    node.create_room(&alice, "general", false).await;
    let mut ws = WsClient::joined(&node, &alice, "general").await;
    assert_eq!(
        ws.send_message("general", "before", Some("c-0")).await["seq"],
        1
    );
    ws.recv_type("message").await;

    proxy.cut();
    ws.send(json!({"type": "send", "room": "general", "body": "during", "client_msg_id": "c-1", "ref": "r"})).await;
    let reply = ws.recv_json().await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "unavailable");
    assert_eq!(reply["ref"], "r");

    proxy.restore();
    // The service recovers by itself; the retry with the same client_msg_id is stored once.
    let mut ack = json!(null);
    for _ in 0..50 {
        ws.send(
            json!({"type": "send", "room": "general", "body": "during", "client_msg_id": "c-1"}),
        )
        .await;
        let reply = ws.recv_type_any(&["ack", "error"]).await;
        if reply["type"] == "ack" {
            ack = reply;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ack["seq"], 2, "{ack}");
    assert_eq!(ws.recv_type("message").await["seq"], 2);
    assert_eq!(db.message_count().await, 2);
}

#[actix_web::test]
async fn joining_a_live_public_room_needs_no_database() {
    let db = TestDb::create().await;
    let proxy = ChaosProxy::start(host_port(&db.url)).await;
    let url = with_host_port(&db.url, &proxy.address.to_string());
    let node = spawn_node(node_env(&db, "node-0", &[("DATABASE_URL", &url)])).await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    node.create_room(&alice, "general", false).await;
    let _first = WsClient::joined(&node, &alice, "general").await;

    // A crowd arriving at a busy room costs the database nothing, even while it is away.
    proxy.cut();
    let mut late = WsClient::connect(&node, &bob).await;
    let joined = late.join("general", None).await;
    assert_eq!(joined["presence"], json!(["alice", "bob"]));
}

#[actix_web::test]
async fn joining_with_since_ahead_of_the_room_sends_nothing_the_client_has() {
    // A client that saw seq 8 on a node that was ahead rejoins a node whose room has delivered
    // only up to 5: it must get 9 next, not 6, 7 and 8 again.
    let (_db, node) = single_node(&FAST).await;
    let alice = node.register("alice").await;
    node.create_room(&alice, "general", false).await;
    let mut sender = WsClient::joined(&node, &alice, "general").await;
    for i in 1..=5 {
        sender.send_message("general", &format!("m{i}"), None).await;
    }
    let mut reader = WsClient::connect(&node, &alice).await;
    let joined = reader.join("general", Some(8)).await;
    assert_eq!(joined["last_seq"], 5);
    for i in 6..=9 {
        sender.send_message("general", &format!("m{i}"), None).await;
    }
    assert_eq!(reader.messages_until("general", 9).await, [9]);
}

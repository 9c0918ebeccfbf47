//! Several nodes sharing one PostgreSQL and one Redis: cross-node delivery, one gapless order for
//! concurrent senders on every node, rejoining elsewhere with `since`, presence across nodes,
//! Redis outages (presence included), and sharded pub/sub on a Redis Cluster.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::presence::join_viewing;
use crate::helpers::{ChaosProxy, Cluster, WsClient, env_url, host_port, with_host_port};

const FAST: [(&str, &str); 2] = [("WS_RATE_PER_SEC", "100000"), ("WS_RATE_BURST", "100000")];

async fn three_nodes() -> Cluster {
    Cluster::start_with(3, Some(&env_url("REDIS_URL")), &FAST).await
}

/// A counter's value in a node's `/metrics`.
async fn counter(node: &crate::helpers::TestNode, name: &str) -> f64 {
    let (_, text) = node.get_text("/metrics").await;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// Reads message frames of `room` until `count` arrived; returns their seqs.
async fn collect(ws: &mut WsClient, room: &str, count: usize) -> Vec<i64> {
    let mut seqs = Vec::with_capacity(count);
    while seqs.len() < count {
        let frame = ws.recv_json().await;
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == "message" && frame["room"] == room {
            seqs.push(frame["seq"].as_i64().unwrap());
        }
    }
    seqs
}

#[actix_web::test]
async fn a_sender_on_one_node_reaches_receivers_on_the_others() {
    let cluster = three_nodes().await;
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let carol = c.register("carol").await;
    a.create_room(&alice, "general", false).await;

    let mut on_b = WsClient::joined(b, &bob, "general").await;
    let mut on_c = WsClient::joined(c, &carol, "general").await;
    let mut on_a = WsClient::joined(a, &alice, "general").await;

    for i in 1..=20 {
        let ack = on_a
            .send_message("general", &format!("hello {i}"), None)
            .await;
        assert_eq!(ack["seq"], i);
    }
    let expected: Vec<i64> = (1..=20).collect();
    assert_eq!(collect(&mut on_b, "general", 20).await, expected);
    assert_eq!(collect(&mut on_c, "general", 20).await, expected);
    // They came through Redis, not from the catch-up sweep.
    assert!(counter(a, "bosar_bus_published_total").await >= 1.0);
    assert!(counter(b, "bosar_bus_received_total").await >= 1.0);
    assert!(counter(c, "bosar_bus_received_total").await >= 1.0);
}

#[actix_web::test]
async fn senders_on_every_node_produce_one_gapless_order_for_everyone() {
    let cluster = three_nodes().await;
    let owner = cluster.nodes[0].register("owner").await;
    cluster.nodes[0].create_room(&owner, "busy", false).await;

    let per_sender = 100;
    let mut clients = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        for j in 0..2 {
            let token = node.register(&format!("user{i}{j}")).await;
            let ws = WsClient::joined(node, &token, "busy").await;
            clients.push(ws);
        }
    }
    let total = per_sender * clients.len();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            actix_rt::spawn(async move {
                for n in 0..per_sender {
                    ws.send(json!({"type": "send", "room": "busy", "body": format!("{i}/{n}")}))
                        .await;
                }
                let mut bodies = Vec::new();
                while bodies.len() < total {
                    let frame = ws.recv_json().await;
                    assert_ne!(frame["type"], "error", "{frame}");
                    if frame["type"] == "message" {
                        bodies.push((
                            frame["seq"].as_i64().unwrap(),
                            frame["body"].as_str().unwrap().to_owned(),
                        ));
                    }
                }
                bodies
            })
        })
        .collect();
    let mut views = Vec::new();
    for task in tasks {
        views.push(task.await.unwrap());
    }
    let expected: Vec<i64> = (1..=total as i64).collect();
    for view in &views {
        assert_eq!(view.iter().map(|(s, _)| *s).collect::<Vec<_>>(), expected);
        assert_eq!(
            view, &views[0],
            "every receiver sees the same message at each seq"
        );
    }
}

#[actix_web::test]
async fn leaving_one_node_and_rejoining_another_with_since_misses_nothing() {
    let cluster = three_nodes().await;
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    a.create_room(&alice, "general", false).await;

    let mut sender = WsClient::joined(b, &bob, "general").await;
    let mut reader = WsClient::joined(a, &alice, "general").await;
    for i in 0..10 {
        sender
            .send_message("general", &format!("before {i}"), None)
            .await;
    }
    assert_eq!(collect(&mut reader, "general", 10).await.last(), Some(&10));
    drop(reader); // the stickiness fails: alice's next connection lands on C

    for i in 0..15 {
        sender
            .send_message("general", &format!("missed {i}"), None)
            .await;
    }
    let mut reader = WsClient::connect(c, &alice).await;
    let joined = reader.join("general", Some(10)).await;
    assert!(joined["last_seq"].as_i64().unwrap() >= 10);
    for i in 0..5 {
        sender
            .send_message("general", &format!("after {i}"), None)
            .await;
    }
    assert_eq!(
        collect(&mut reader, "general", 20).await,
        (11..=30).collect::<Vec<_>>()
    );
}

#[actix_web::test]
async fn presence_spans_the_cluster() {
    let cluster = three_nodes().await;
    let [a, b] = [&cluster.nodes[0], &cluster.nodes[1]];
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    a.create_room(&alice, "general", false).await;

    let mut on_a = WsClient::joined(a, &alice, "general").await;
    let mut on_b = WsClient::connect(b, &bob).await;
    let joined = on_b.join("general", None).await;
    // Alice's `joined` came after her presence reached Redis, so bob's room, started on node B
    // after that, lists her.
    assert_eq!(joined["presence"], json!(["alice", "bob"]), "{joined}");
    assert_eq!(
        on_a.recv_type("presence").await,
        json!({"type": "presence", "room": "general", "joined": ["bob"], "left": []})
    );
    on_b.send(json!({"type": "typing", "room": "general"}))
        .await;
    drop(on_b);
    assert_eq!(
        on_a.recv_type("presence").await,
        json!({"type": "presence", "room": "general", "joined": [], "left": ["bob"]})
    );
}

#[actix_web::test]
async fn presence_that_changed_while_a_node_was_cut_from_redis_is_put_right() {
    presence_is_put_right_after(ChaosProxy::cut, Duration::from_millis(500)).await;
}

/// Redis stops answering node A for longer than its commands wait (their timeouts, not closed
/// connections, tell A), then A's connections are closed and it connects anew.
#[actix_web::test]
async fn presence_that_changed_while_redis_did_not_answer_a_node_is_put_right() {
    presence_is_put_right_after(ChaosProxy::stall, Duration::from_secs(3)).await;
}

/// Node A loses Redis by `outage` (for about `hold` after the changes below); presence that
/// changed meanwhile on A and on B is right everywhere, and in Redis, once A is back.
async fn presence_is_put_right_after(outage: fn(&ChaosProxy), hold: Duration) {
    let redis = env_url("REDIS_URL");
    let proxy = ChaosProxy::start(host_port(&redis)).await;
    let through_proxy = with_host_port(&redis, &proxy.address.to_string());
    let cluster =
        Cluster::start_each(&[Some(&through_proxy), Some(&redis), Some(&redis)], &FAST).await;
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let [alice, carol, erin] = [
        a.register("alice").await,
        a.register("carol").await,
        a.register("erin").await,
    ];
    let [bob, dave] = [b.register("bob").await, b.register("dave").await];
    let gina = c.register("gina").await;
    a.create_room(&alice, "general", false).await;
    let (mut on_a, mut seen_on_a) = join_viewing(a, &alice, "general").await;
    let (erin_on_a, _) = join_viewing(a, &erin, "general").await;
    let (mut on_b, mut seen_on_b) = join_viewing(b, &bob, "general").await;
    let (dave_on_b, _) = join_viewing(b, &dave, "general").await;
    seen_on_a
        .becomes(&mut on_a, &["alice", "bob", "dave", "erin"])
        .await;
    seen_on_b
        .becomes(&mut on_b, &["alice", "bob", "dave", "erin"])
        .await;

    // While node A cannot reach Redis: carol joins and erin leaves on A, dave leaves on B.
    outage(&proxy);
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let (_carol_on_a, _) = join_viewing(a, &carol, "general").await;
    drop(erin_on_a);
    drop(dave_on_b);
    seen_on_a
        .becomes(&mut on_a, &["alice", "bob", "carol", "dave"])
        .await;
    seen_on_b
        .becomes(&mut on_b, &["alice", "bob", "erin"])
        .await;
    actix_rt::time::sleep(hold).await;
    proxy.restore();

    // Once A is back, each node learns what it missed...
    let expected = ["alice", "bob", "carol"];
    seen_on_a.becomes(&mut on_a, &expected).await;
    seen_on_b.becomes(&mut on_b, &expected).await;
    // ...and Redis holds it: a room starting on C now lists exactly the same.
    let (_, seen_on_c) = join_viewing(c, &gina, "general").await;
    assert_eq!(
        seen_on_c.0,
        BTreeSet::from(["alice", "bob", "carol", "gina"].map(String::from))
    );
}

#[actix_web::test]
async fn presence_is_written_again_when_redis_loses_its_data() {
    presence_survives_losing_redis_data(&env_url("REDIS_URL"), &[]).await;
}

#[actix_web::test]
async fn presence_is_written_again_when_a_redis_cluster_loses_its_data() {
    let seeds = env_url("REDIS_CLUSTER_URLS");
    presence_survives_losing_redis_data(&seeds, &[("REDIS_SHARDED", "true")]).await;
}

/// Every key of the cluster's prefix vanishes from Redis (`redis_urls`: one server, or every
/// node of a Redis Cluster), as when Redis restarts empty (it keeps nothing on disk).
async fn presence_survives_losing_redis_data(redis_urls: &str, extra: &[(&str, &str)]) {
    let mut settings = FAST.to_vec();
    settings.push(("PRESENCE_TTL_SECS", "3"));
    settings.extend_from_slice(extra);
    let cluster = Cluster::start_with(3, Some(redis_urls), &settings).await;
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let carol = c.register("carol").await;
    a.create_room(&alice, "general", false).await;
    let (_on_a, _) = join_viewing(a, &alice, "general").await;
    let (mut on_b, mut seen_on_b) = join_viewing(b, &bob, "general").await;
    seen_on_b.becomes(&mut on_b, &["alice", "bob"]).await;

    let mut deleted = 0;
    for url in redis_urls.split(',') {
        let client = redis::Client::open(url.trim()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", cluster.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        // One key at a time: a cluster node refuses a DEL of keys in different slots.
        for key in keys {
            let _: () = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            deleted += 1;
        }
    }
    assert!(deleted > 0);

    // A room starting on C finds alice and bob again, from Redis or told by their nodes.
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let (mut on_c, mut seen_on_c) = join_viewing(c, &carol, "general").await;
    seen_on_c
        .becomes(&mut on_c, &["alice", "bob", "carol"])
        .await;
}

#[actix_web::test]
async fn a_redis_outage_loses_nothing_and_catches_up_within_two_seconds() {
    messages_survive(ChaosProxy::cut).await;
}

#[actix_web::test]
async fn redis_not_answering_loses_nothing_and_catches_up_within_two_seconds() {
    messages_survive(ChaosProxy::stall).await;
}

/// Both nodes lose Redis by `outage` for 3 s while messages flow, then get it back.
async fn messages_survive(outage: fn(&ChaosProxy)) {
    let redis = env_url("REDIS_URL");
    let proxy = ChaosProxy::start(host_port(&redis)).await;
    let through_proxy = with_host_port(&redis, &proxy.address.to_string());
    let cluster = Cluster::start_with(2, Some(&through_proxy), &FAST).await;
    let [a, b] = [&cluster.nodes[0], &cluster.nodes[1]];
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    a.create_room(&alice, "general", false).await;
    let mut sender = WsClient::joined(a, &alice, "general").await;
    let mut reader = WsClient::joined(b, &bob, "general").await;

    let mut sent = 0;
    for _ in 0..10 {
        sent += 1;
        sender
            .send_message("general", &format!("m{sent}"), None)
            .await;
    }
    assert_eq!(
        collect(&mut reader, "general", 10).await,
        (1..=10).collect::<Vec<_>>()
    );

    outage(&proxy);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        sent += 1;
        let ack = sender
            .send_message("general", &format!("m{sent}"), None)
            .await;
        assert_eq!(ack["seq"], sent, "the sender's node keeps committing");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.restore();
    let restored = Instant::now();
    for _ in 0..10 {
        sent += 1;
        sender
            .send_message("general", &format!("m{sent}"), None)
            .await;
    }
    let seqs = collect(&mut reader, "general", (sent - 10) as usize).await;
    assert_eq!(
        seqs,
        (11..=sent).collect::<Vec<_>>(),
        "nothing lost, nothing twice, in order"
    );
    assert!(
        restored.elapsed() < Duration::from_secs(2),
        "caught up {:?} after Redis came back",
        restored.elapsed()
    );
    assert!(
        counter(b, "bosar_catch_up_messages_total").await >= 1.0,
        "the outage was bridged from PostgreSQL"
    );
}

#[actix_web::test]
async fn sharded_pub_sub_on_a_redis_cluster_delivers_across_nodes() {
    let seeds = env_url("REDIS_CLUSTER_URLS");
    let mut settings = FAST.to_vec();
    settings.push(("REDIS_SHARDED", "true"));
    let cluster = Cluster::start_with(3, Some(&seeds), &settings).await;
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    for node in [a, b, c] {
        let (status, body) = node.get_json("/api/health").await;
        assert_eq!(
            (status, body["redis"].as_str()),
            (200, Some("ok")),
            "{body}"
        );
    }
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let carol = c.register("carol").await;
    // Several rooms, so that their channels land on different shards.
    let rooms = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    for room in rooms {
        a.create_room(&alice, room, false).await;
    }
    let mut on_a = WsClient::connect(a, &alice).await;
    let mut on_b = WsClient::connect(b, &bob).await;
    let mut on_c = WsClient::connect(c, &carol).await;
    for room in rooms {
        on_a.join(room, None).await;
        on_b.join(room, None).await;
        on_c.join(room, None).await;
    }
    while let Ok(frame) = tokio::time::timeout(Duration::from_millis(200), on_a.recv_json()).await {
        assert_eq!(frame["type"], "presence", "{frame}");
    }
    for room in rooms {
        for i in 0..5 {
            on_a.send(json!({"type": "send", "room": room, "body": format!("{room} {i}")}))
                .await;
        }
    }
    for reader in [&mut on_b, &mut on_c] {
        let mut seen: std::collections::HashMap<String, Vec<i64>> = Default::default();
        while seen.values().map(Vec::len).sum::<usize>() < rooms.len() * 5 {
            let frame = reader.recv_json().await;
            if frame["type"] == "message" {
                let room = frame["room"].as_str().unwrap().to_owned();
                seen.entry(room)
                    .or_default()
                    .push(frame["seq"].as_i64().unwrap());
            }
        }
        for room in rooms {
            assert_eq!(seen[room], [1, 2, 3, 4, 5], "{room}");
        }
    }
    // Through sharded pub/sub, not only the catch-up sweep.
    assert!(counter(b, "bosar_bus_received_total").await >= 1.0);
    assert!(counter(c, "bosar_bus_received_total").await >= 1.0);
}

#[actix_web::test]
async fn typing_reaches_the_room_on_every_node() {
    let cluster = three_nodes().await;
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let carol = c.register("carol").await;
    a.create_room(&alice, "general", false).await;
    let mut on_a = WsClient::connect(a, &alice).await;
    on_a.join("general", None).await;
    let mut on_c = WsClient::connect(c, &carol).await;
    on_c.join("general", None).await;
    let mut on_b = WsClient::connect(b, &bob).await;
    on_b.join("general", None).await;

    on_b.send(json!({"type": "typing", "room": "general"}))
        .await;
    let expected = json!({"type": "typing", "room": "general", "user": "bob"});
    assert_eq!(on_a.recv_type("typing").await, expected);
    assert_eq!(on_c.recv_type("typing").await, expected);
}

#[actix_web::test]
async fn a_retry_on_another_node_returns_the_original_ack_and_stores_nothing_twice() {
    let cluster = three_nodes().await;
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let alice = a.register("alice").await;
    let carol = c.register("carol").await;
    a.create_room(&alice, "general", false).await;
    let mut watcher = WsClient::joined(c, &carol, "general").await;

    let mut first = WsClient::joined(a, &alice, "general").await;
    let original = first.send_message("general", "once", Some("retry-1")).await;
    drop(first); // the ack may as well have been lost with the connection

    let mut again = WsClient::joined(b, &alice, "general").await;
    let retried = again.send_message("general", "once", Some("retry-1")).await;
    assert_eq!(retried["id"], original["id"]);
    assert_eq!(retried["seq"], original["seq"]);
    let next = again
        .send_message("general", "then this", Some("retry-2"))
        .await;
    assert_eq!(next["seq"], 2);

    assert_eq!(
        collect(&mut watcher, "general", 2).await,
        [1, 2],
        "delivered once each"
    );
}

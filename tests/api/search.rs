//! Semantic search with the default `hash` embedder, over REST and WebSocket: ranking, scores,
//! limits, bad queries, private-room access, `off`, and the room filter over the IVFFlat index.

use std::time::Duration;

use bosar_chat::embed::recluster::{self, ReclusterOptions};

use serde_json::{Value, json};

use crate::helpers::vectors::{count, execute, hash_similarity, insert_messages, wait_embedded};
use crate::helpers::{WsClient, single_node};

const MESSAGES: [&str; 8] = [
    "the deploy pipeline failed on staging",
    "staging deploy pipeline is green again",
    "who wants pizza for lunch",
    "my cat knocked over the plant",
    "the weather is lovely today",
    "remember to water the plants",
    "meeting moved to thursday afternoon",
    "new coffee machine in the kitchen",
];

fn bodies(hits: &Value) -> Vec<String> {
    hits.as_array()
        .expect("hits")
        .iter()
        .map(|h| h["message"]["body"].as_str().expect("body").to_owned())
        .collect()
}

fn scores(hits: &Value) -> Vec<f64> {
    hits.as_array()
        .expect("hits")
        .iter()
        .map(|h| h["score"].as_f64().expect("score"))
        .collect()
}

#[actix_web::test]
async fn messages_sharing_words_with_the_query_rank_first() {
    let (db, node) = single_node(&[]).await;
    let alice = node.register("alice").await;
    node.create_room(&alice, "general", false).await;
    let mut ws = WsClient::connect(&node, &alice).await;
    ws.join("general", None).await;
    for body in MESSAGES {
        ws.send_message("general", body, None).await;
    }
    wait_embedded(&db, Duration::from_secs(10)).await;

    let query = "deploy pipeline staging";
    let (status, body) = node
        .get_authed(
            "/api/rooms/general/search?q=deploy%20pipeline%20staging",
            &alice,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let hits = &body["hits"];
    let found = bodies(hits);
    assert_eq!(found.len(), MESSAGES.len(), "{body}");
    let mut top: Vec<&str> = found[..2].iter().map(String::as_str).collect();
    top.sort_unstable();
    assert_eq!(top, [MESSAGES[1], MESSAGES[0]], "{body}");

    // Best first, and each score is the cosine similarity of the two hash embeddings.
    let scores = scores(hits);
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(scores[1] > scores[2] + 0.2, "{scores:?}");
    for hit in hits.as_array().unwrap() {
        let expected = hash_similarity(query, hit["message"]["body"].as_str().unwrap());
        let score = hit["score"].as_f64().unwrap();
        assert!((score - expected).abs() < 1e-4, "{score} vs {expected}");
    }
    let first = &hits[0]["message"];
    assert_eq!(first["room"], "general");
    assert_eq!(first["user"], "alice");
    assert!(first["seq"].as_i64().unwrap() >= 1);
    assert!(first["ts"].as_str().unwrap().ends_with('Z'));

    // The same over WebSocket, with the ref echoed and a limit.
    ws.send(json!({"type": "search", "room": "general", "query": "lunch pizza", "limit": 1, "ref": "q1"}))
        .await;
    let reply = ws.recv_type_any(&["search_results"]).await;
    assert_eq!(reply["ref"], "q1");
    assert_eq!(reply["room"], "general");
    assert_eq!(bodies(&reply["hits"]), [MESSAGES[2]]);

    // Limits: default 10, at most 50.
    insert_messages(&db, "general", 60, "filler").await;
    wait_embedded(&db, Duration::from_secs(10)).await;
    let (_, body) = node
        .get_authed("/api/rooms/general/search?q=plants", &alice)
        .await;
    assert_eq!(body["hits"].as_array().unwrap().len(), 10);
    let (_, body) = node
        .get_authed("/api/rooms/general/search?q=plants&limit=500", &alice)
        .await;
    assert_eq!(body["hits"].as_array().unwrap().len(), 50);
    assert!(bodies(&body["hits"])[..2].contains(&MESSAGES[5].to_owned()));
}

#[actix_web::test]
async fn bad_queries_are_refused() {
    let (_db, node) = single_node(&[]).await;
    let alice = node.register("alice").await;
    node.create_room(&alice, "general", false).await;
    let long = "x".repeat(4097);
    for query in [
        "".to_owned(),
        "q=".to_owned(),
        "q=%20%20".to_owned(),
        "q=hi&limit=0".to_owned(),
        "q=hi&limit=many".to_owned(),
        format!("q={long}"),
    ] {
        let (status, body) = node
            .get_authed(&format!("/api/rooms/general/search?{query}"), &alice)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{query}");
    }
    let (status, _) = node.get_json("/api/rooms/general/search?q=hi").await;
    assert_eq!(status, 401);

    let mut ws = WsClient::connect(&node, &alice).await;
    for frame in [
        json!({"type": "search", "room": "general", "query": " ", "ref": "e1"}),
        json!({"type": "search", "room": "general", "query": long, "ref": "e1"}),
        json!({"type": "search", "room": "general", "query": "hi", "limit": -1, "ref": "e1"}),
        json!({"type": "search", "room": "Not A Room", "query": "hi", "ref": "e1"}),
        json!({"type": "search", "room": "general", "ref": "e1"}),
    ] {
        ws.send(frame.clone()).await;
        let reply = ws.recv_type_any(&["error"]).await;
        assert_eq!(reply["code"], "bad_request", "{frame}: {reply}");
        assert_eq!(reply["ref"], "e1");
    }
}

#[actix_web::test]
async fn search_follows_the_history_access_rules() {
    let (db, node) = single_node(&[]).await;
    let alice = node.register("alice").await;
    let bob = node.register("bob").await;
    node.create_room(&alice, "secret", true).await;
    let mut ws = WsClient::connect(&node, &alice).await;
    ws.join("secret", None).await;
    ws.send_message("secret", "the launch codes are in the drawer", None)
        .await;
    wait_embedded(&db, Duration::from_secs(10)).await;

    let path = "/api/rooms/secret/search?q=launch%20codes";
    let (status, body) = node.get_authed(path, &bob).await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));
    let (status, body) = node.get_authed("/api/rooms/nowhere/search?q=x", &bob).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));

    let mut bob_ws = WsClient::connect(&node, &bob).await;
    for (room, code) in [("secret", "forbidden"), ("nowhere", "not_found")] {
        bob_ws
            .send(json!({"type": "search", "room": room, "query": "launch", "ref": "s"}))
            .await;
        let reply = bob_ws.recv_type_any(&["error"]).await;
        assert_eq!(reply["code"], code, "{reply}");
        assert_eq!(reply["ref"], "s");
    }

    // A member may search (without joining first).
    let (status, _) = node
        .post_json(
            "/api/rooms/secret/members",
            Some(&alice),
            json!({"username": "bob"}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = node.get_authed(path, &bob).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        bodies(&body["hits"]),
        ["the launch codes are in the drawer"]
    );
    bob_ws
        .send(json!({"type": "search", "room": "secret", "query": "drawer"}))
        .await;
    let reply = bob_ws.recv_type_any(&["search_results"]).await;
    assert_eq!(reply["hits"].as_array().unwrap().len(), 1, "{reply}");
    assert!(reply.get("ref").is_none());
}

#[actix_web::test]
async fn search_is_unavailable_when_embeddings_are_off() {
    let (db, node) = single_node(&[("EMBEDDINGS_PROVIDER", "off")]).await;
    let alice = node.register("alice").await;
    node.create_room(&alice, "general", false).await;
    let mut ws = WsClient::connect(&node, &alice).await;
    ws.join("general", None).await;
    ws.send_message("general", "nobody will embed this", None)
        .await;

    let (status, body) = node
        .get_authed("/api/rooms/general/search?q=embed", &alice)
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    ws.send(json!({"type": "search", "room": "general", "query": "embed", "ref": "r"}))
        .await;
    let reply = ws.recv_type_any(&["error"]).await;
    assert_eq!(
        (&reply["code"], &reply["ref"]),
        (&json!("unavailable"), &json!("r"))
    );

    // No indexer runs: the message keeps its NULL embedding and no backlog is reported.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM messages WHERE embedding IS NULL"
        )
        .await,
        1
    );
    let (_, metrics) = node.get_text("/metrics").await;
    assert!(!metrics.contains("bosar_indexer_backlog"), "{metrics}");
}

/// A small room sharing its search key with a big one (their ids differ by 2^16, so their keys
/// spell the same 16 bits and their messages share the index's lists), after the index has been
/// rebuilt with 40 lists: the one list a search probes holds almost none of the small room's
/// messages, and the iterative scan must still return `limit` of them. The database is told to
/// avoid sorts and sequential scans, so the planner has to take the IVFFlat index, as it does for
/// big rooms.
#[actix_web::test]
async fn the_room_filter_still_returns_limit_hits_through_the_index() {
    let (db, node) = single_node(&[]).await;
    let alice = node.register("alice").await;
    node.create_room(&alice, "small", false).await;
    execute(
        &db,
        "INSERT INTO rooms (id, name, owner_id) OVERRIDING SYSTEM VALUE
         SELECT id + 65536, 'big', owner_id FROM rooms WHERE name = 'small'",
    )
    .await;
    insert_messages(&db, "big", 2000, "big").await;
    insert_messages(&db, "small", 30, "small").await;
    wait_embedded(&db, Duration::from_secs(30)).await;
    execute(&db, "ANALYZE messages").await;
    let options = ReclusterOptions {
        min_rows: 100,
        rows_per_list: 50,
        ..ReclusterOptions::default()
    };
    assert_eq!(
        recluster::run_once(&db.url, options)
            .await
            .expect("rebuild"),
        recluster::Round::Rebuilt { from: 1, to: 40 }
    );
    execute(
        &db,
        &format!("ALTER DATABASE {} SET enable_seqscan = off", db.name),
    )
    .await;
    execute(
        &db,
        &format!("ALTER DATABASE {} SET enable_sort = off", db.name),
    )
    .await;
    // The node's pool made its connections before: start a node whose sessions see the settings,
    // and that takes the index for rooms of any size.
    let node = crate::helpers::spawn_node(crate::helpers::node::node_env(
        &db,
        "node-1",
        &[("SEARCH_EXACT_UP_TO", "0")],
    ))
    .await;

    let plan = explain_small_room_search(&db).await;
    assert!(plan.contains("messages_embedding_ivfflat_idx"), "{plan}");

    let (status, body) = node
        .get_authed(
            "/api/rooms/small/search?q=copper%20lantern&limit=20",
            &alice,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let found = bodies(&body["hits"]);
    assert_eq!(found.len(), 20, "{body}");
    assert!(found.iter().all(|b| b.starts_with("small-")), "{found:?}");
    let scores = scores(&body["hits"]);
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}

async fn explain_small_room_search(db: &crate::helpers::TestDb) -> String {
    let mut conn = db.connect().await;
    let vector = bosar_chat::embed::hash::embed_one("copper lantern");
    let literal = format!("{vector:?}");
    crate::helpers::explain(
        &mut conn,
        &format!(
            "EXPLAIN SELECT id FROM messages
             WHERE room_id = (SELECT id FROM rooms WHERE name = 'small') AND embedding IS NOT NULL
             ORDER BY {} <-> message_search_key((SELECT id FROM rooms WHERE name = 'small'), '{literal}')::halfvec(400) LIMIT 20",
            bosar_chat::store::vector_index::INDEXED
        ),
    )
    .await
}

//! The indexer: it catches up with messages stored while no indexer ran (a restart), several
//! indexers on one database share the backlog without embedding any message twice, and its
//! progress shows in `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bosar_chat::embed::hash::HashEmbedder;
use bosar_chat::embed::indexer::{self, IndexerMetrics, IndexerOptions};
use bosar_chat::embed::{EmbedError, Embedder};
use bosar_chat::metrics::Metrics;
use futures_util::future::LocalBoxFuture;
use serde_json::json;

use crate::helpers::node::node_env;
use crate::helpers::vectors::{count, execute, insert_messages, unembedded, wait_embedded};
use crate::helpers::{TestDb, WsClient, spawn_node};

/// Reads one sample of `/metrics`.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[actix_web::test]
async fn the_indexer_catches_up_after_a_restart() {
    let db = TestDb::create().await;
    // First a node without embeddings: what it stores keeps a NULL embedding.
    let off = spawn_node(node_env(&db, "node-0", &[("EMBEDDINGS_PROVIDER", "off")])).await;
    let alice = off.register("alice").await;
    off.create_room(&alice, "general", false).await;
    let mut ws = WsClient::connect(&off, &alice).await;
    ws.join("general", None).await;
    ws.send_message("general", "written before the restart", None)
        .await;
    off.stop().await;
    insert_messages(&db, "general", 1000, "backlog").await;
    assert_eq!(unembedded(&db).await, 1001);

    let node = spawn_node(node_env(&db, "node-1", &[])).await;
    wait_embedded(&db, Duration::from_secs(120)).await;
    let (status, body) = node
        .get_authed(
            "/api/rooms/general/search?q=before%20the%20restart&limit=1",
            &alice,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["hits"][0]["message"]["body"],
        "written before the restart"
    );

    // The counter is exact; the backlog gauge catches up within its refresh period.
    let mut backlog = None;
    for _ in 0..60 {
        let (_, text) = node.get_text("/metrics").await;
        assert_eq!(
            metric(&text, "bosar_indexer_embedded_total"),
            Some(1001.0),
            "{text}"
        );
        backlog = metric(&text, "bosar_indexer_backlog");
        if backlog == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(backlog, Some(0.0));

    // New messages are embedded as they come.
    let mut ws = WsClient::connect(&node, &alice).await;
    ws.join("general", None).await;
    ws.send_message("general", "and one after it", None).await;
    wait_embedded(&db, Duration::from_secs(5)).await;
    ws.send(json!({"type": "search", "room": "general", "query": "after", "limit": 1}))
        .await;
    let reply = ws.recv_type_any(&["search_results"]).await;
    assert_eq!(reply["hits"][0]["message"]["body"], "and one after it");
}

/// The `hash` embedder, counting how often it saw each text.
#[derive(Default)]
struct Counting {
    seen: Mutex<HashMap<String, usize>>,
}

impl Embedder for Counting {
    fn name(&self) -> &'static str {
        "counting-hash"
    }

    fn batch_size(&self) -> usize {
        HashEmbedder.batch_size()
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [&'a str],
    ) -> LocalBoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        let mut seen = self.seen.lock().unwrap();
        for text in texts {
            *seen.entry((*text).to_owned()).or_default() += 1;
        }
        HashEmbedder.embed(texts)
    }
}

#[actix_web::test]
async fn indexers_never_embed_a_message_twice() {
    let db = TestDb::create().await;
    let node = spawn_node(node_env(&db, "node-0", &[("EMBEDDINGS_PROVIDER", "off")])).await;
    let alice = node.register("alice").await;
    node.create_room(&alice, "general", false).await;
    insert_messages(&db, "general", 2000, "m").await;
    // Every write of an embedding is logged by the database itself.
    execute(&db, "CREATE TABLE embed_log (id uuid NOT NULL)").await;
    execute(
        &db,
        "CREATE FUNCTION log_embed() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN INSERT INTO embed_log VALUES (NEW.id); RETURN NEW; END $$",
    )
    .await;
    execute(
        &db,
        "CREATE TRIGGER log_embed AFTER UPDATE OF embedding ON messages
         FOR EACH ROW WHEN (NEW.embedding IS NOT NULL) EXECUTE FUNCTION log_embed()",
    )
    .await;

    // Four indexers with small batches, so that they contend for the same rows all the time.
    let embedder = Arc::new(Counting::default());
    let mut running = Vec::new();
    let mut counters = Vec::new();
    for i in 0..4 {
        let metrics = Metrics::new(&format!("indexer-{i}")).unwrap();
        let indexer_metrics = IndexerMetrics::register(&metrics).unwrap();
        counters.push(indexer_metrics.embedded.clone());
        let options = IndexerOptions {
            batch_size: Some(20),
            idle_poll: Duration::from_millis(10),
            backlog_every: Duration::from_millis(100),
        };
        running.push(indexer::spawn(
            &db.url,
            embedder.clone(),
            indexer_metrics,
            options,
        ));
    }
    wait_embedded(&db, Duration::from_secs(120)).await;
    drop(running);

    let seen = embedder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2000);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "embedded more than once: {twice:?}");
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM embed_log").await,
        2000
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT id) AS n FROM embed_log").await,
        2000
    );
    let per_indexer: Vec<u64> = counters.iter().map(|c| c.get()).collect();
    assert_eq!(per_indexer.iter().sum::<u64>(), 2000, "{per_indexer:?}");
    assert!(
        per_indexer.iter().filter(|n| **n > 0).count() >= 2,
        "the backlog was shared: {per_indexer:?}"
    );
}

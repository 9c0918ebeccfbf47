//! Nodes as real processes: SIGTERM drains gracefully (503 at once, 1012 closes spread over the
//! grace period, nothing acknowledged lost, its users out of presence before it exits, exit 0);
//! SIGKILL loses nothing acknowledged either, and the dead node's users leave presence once its
//! heartbeat expires, or at once when it comes back under the same id. A node also raises its
//! soft open-file limit at start.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::presence::{join_viewing, names};
use crate::helpers::process::NodeProcess;
use crate::helpers::{Cluster, Event, WsClient, env_url};

async fn connect(url: &str) -> WsClient {
    let mut ws = WsClient::connect_url(url).await.expect("upgrade");
    assert_eq!(ws.recv_json().await["type"], "welcome");
    ws
}

async fn stored_ids(cluster: &Cluster) -> Vec<String> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let mut conn = cluster.db.connect().await;
    let ids: Vec<uuid::Uuid> = bosar_chat::store::schema::messages::table
        .select(bosar_chat::store::schema::messages::id)
        .load(&mut conn)
        .await
        .unwrap();
    ids.into_iter().map(|id| id.to_string()).collect()
}

#[actix_web::test]
async fn sigterm_drains_with_spread_1012_closes_and_exits_zero() {
    let redis = env_url("REDIS_URL");
    let cluster = Cluster::start_with(1, Some(&redis), &[]).await;
    let helper = &cluster.nodes[0];
    let alice = helper.register("alice").await;
    helper.create_room(&alice, "general", false).await;
    let node = NodeProcess::start(&[
        ("DATABASE_URL", &cluster.db.url),
        ("REDIS_URL", &redis),
        ("REDIS_KEY_PREFIX", &cluster.prefix),
        ("NODE_ID", "draining"),
        ("SHUTDOWN_GRACE_SECS", "3"),
    ])
    .await;

    let url = node.ws_url(&format!("/ws?token={alice}"));
    let mut clients = Vec::new();
    for _ in 0..10 {
        let mut ws = connect(&url).await;
        ws.join("general", None).await;
        clients.push(ws);
    }
    // The newest connection: the drain closes connections oldest first, so the sender is closed
    // last and keeps sending for most of the grace period.
    let mut sender = clients.pop().unwrap();
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(
            sender
                .send_message("general", &format!("before {i}"), None)
                .await["id"]
                .clone(),
        );
    }

    node.signal("TERM");
    let signalled = Instant::now();
    // The signal is delivered asynchronously: "at once" is within the time the node takes to
    // see it, bounded here at 500 ms.
    let mut status = node.api_status().await;
    while status != Some(503) && signalled.elapsed() < Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        status = node.api_status().await;
    }
    assert_eq!(status, Some(503), "/api answers 503 at once");
    assert_eq!(
        WsClient::connect_url(&url).await.err(),
        Some(503),
        "no new upgrades"
    );

    // Still-open connections keep working until their turn; then 1012.
    let sending = actix_rt::spawn(async move {
        let mut acked = Vec::new();
        for i in 0.. {
            sender
                .send(json!({"type": "send", "room": "general", "body": format!("during {i}")}))
                .await;
            loop {
                match sender.recv().await {
                    Event::Json(frame) if frame["type"] == "ack" => {
                        acked.push(frame["id"].clone());
                        break;
                    }
                    Event::Json(_) | Event::Binary => {}
                    Event::Close(code) => return (acked, code),
                }
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        unreachable!()
    });
    // Every socket is watched at once, so each close is timed when it happens.
    let watching: Vec<_> = clients
        .into_iter()
        .map(|mut ws| {
            actix_rt::spawn(async move {
                let code = ws.recv_close().await;
                (signalled.elapsed(), code)
            })
        })
        .collect();
    let mut closes = Vec::new();
    for watch in watching {
        closes.push(watch.await.unwrap());
    }
    let (during, code) = sending.await.unwrap();
    closes.push((signalled.elapsed(), code));
    assert!(
        closes.iter().all(|(_, code)| *code == Some(1012)),
        "{closes:?}"
    );
    let first = closes.iter().map(|(t, _)| *t).min().unwrap();
    let last = closes.iter().map(|(t, _)| *t).max().unwrap();
    assert!(
        last - first >= Duration::from_millis(1500),
        "closes spread over the grace period: {closes:?}"
    );

    let mut child = node.child;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit 0 after a clean drain: {status}");

    let stored = stored_ids(&cluster).await;
    for id in acked.iter().chain(&during) {
        assert!(
            stored.contains(&id.as_str().unwrap().to_owned()),
            "acknowledged {id} was stored"
        );
    }
    assert!(!during.is_empty(), "messages were accepted while draining");
}

/// A drained node takes its users out of presence and ends its heartbeat in Redis before it
/// exits: the other nodes do not wait for the heartbeat to expire, however late its last
/// connections closed.
#[actix_web::test]
async fn a_drained_node_leaves_presence_before_it_exits() {
    let redis = env_url("REDIS_URL");
    let ttl = ("PRESENCE_TTL_SECS", "60");
    let cluster = Cluster::start_with(1, Some(&redis), &[ttl]).await;
    let other = &cluster.nodes[0];
    let bob = other.register("bob").await;
    other.create_room(&bob, "general", false).await;
    let node = NodeProcess::start(&[
        ("DATABASE_URL", &cluster.db.url),
        ("REDIS_URL", &redis),
        ("REDIS_KEY_PREFIX", &cluster.prefix),
        ("NODE_ID", "leaving"),
        ("SHUTDOWN_GRACE_SECS", "1"),
        ttl,
    ])
    .await;
    let (mut watcher, mut seen) = join_viewing(other, &bob, "general").await;
    let users = ["ann", "ben", "cat", "dan", "eve", "fay"];
    let mut clients = Vec::new();
    for name in users {
        let token = other.register(name).await;
        let mut ws = connect(&node.ws_url(&format!("/ws?token={token}"))).await;
        ws.join("general", None).await;
        clients.push(ws);
    }
    let mut everyone = users.to_vec();
    everyone.push("bob");
    seen.becomes(&mut watcher, &everyone).await;

    node.signal("TERM");
    let mut child = node.child;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    assert!(status.success(), "{status}");

    let keys = bosar_chat::bus::keys::Keys::new(&cluster.prefix);
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let alive: bool = redis::cmd("EXISTS")
        .arg(keys.node_alive("leaving"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(keys.presence("general"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!alive, "its heartbeat ended");
    assert!(
        fields.iter().all(|f| !f.starts_with("leaving|")),
        "none of its users is left in presence: {fields:?}"
    );
    // Told at once, long before a 60 s heartbeat could expire.
    let told = Instant::now();
    seen.becomes(&mut watcher, &["bob"]).await;
    assert!(told.elapsed() < Duration::from_secs(5));
    let gil = other.register("gil").await;
    let (_, newcomer) = join_viewing(other, &gil, "general").await;
    assert_eq!(newcomer.0, names(&json!(["bob", "gil"])));
}

#[actix_web::test]
async fn sigkill_loses_nothing_acknowledged_and_its_users_leave_presence() {
    let redis = env_url("REDIS_URL");
    let cluster = Cluster::start_with(1, Some(&redis), &[("PRESENCE_TTL_SECS", "2")]).await;
    let survivor = &cluster.nodes[0];
    let alice = survivor.register("alice").await;
    let bob = survivor.register("bob").await;
    survivor.create_room(&alice, "general", false).await;
    let doomed = NodeProcess::start(&[
        ("DATABASE_URL", &cluster.db.url),
        ("REDIS_URL", &redis),
        ("REDIS_KEY_PREFIX", &cluster.prefix),
        ("NODE_ID", "doomed"),
        ("PRESENCE_TTL_SECS", "2"),
    ])
    .await;

    let mut watcher = WsClient::connect(survivor, &bob).await;
    watcher.join("general", None).await;
    let mut on_doomed = connect(&doomed.ws_url(&format!("/ws?token={alice}"))).await;
    let joined = on_doomed.join("general", None).await;
    assert_eq!(joined["presence"], json!(["alice", "bob"]));
    assert_eq!(
        watcher.recv_type("presence").await["joined"],
        json!(["alice"])
    );

    let mut last_acked = 0;
    for i in 0..20 {
        last_acked = on_doomed
            .send_message("general", &format!("m{i}"), None)
            .await["seq"]
            .as_i64()
            .unwrap();
    }
    doomed.signal("KILL");
    let killed = Instant::now();

    // The dead node's user leaves presence once its heartbeat expires (well within 30 s).
    let left = watcher.recv_type_any(&["presence"]).await;
    assert_eq!(left["left"], json!(["alice"]), "{left}");
    assert!(killed.elapsed() < Duration::from_secs(30));

    // Alice reconnects to the survivor and rejoins with since: everything acknowledged is there.
    let mut again = WsClient::connect(survivor, &alice).await;
    let joined = again.join("general", Some(0)).await;
    assert_eq!(joined["last_seq"], last_acked);
    let seqs = again.messages_until("general", last_acked).await;
    assert_eq!(seqs, (1..=last_acked).collect::<Vec<_>>());
}

#[actix_web::test]
async fn a_node_restarted_under_its_id_drops_its_former_users_everywhere() {
    let redis = env_url("REDIS_URL");
    let cluster = Cluster::start_with(1, Some(&redis), &[]).await;
    let other = &cluster.nodes[0];
    let alice = other.register("alice").await;
    let bob = other.register("bob").await;
    other.create_room(&alice, "general", false).await;
    let env = [
        ("DATABASE_URL", cluster.db.url.as_str()),
        ("REDIS_URL", &redis),
        ("REDIS_KEY_PREFIX", &cluster.prefix),
        ("NODE_ID", "phoenix"),
    ];
    let first_life = NodeProcess::start(&env).await;
    let mut watcher = WsClient::connect(other, &bob).await;
    watcher.join("general", None).await;
    let mut on_first = connect(&first_life.ws_url(&format!("/ws?token={alice}"))).await;
    on_first.join("general", None).await;
    assert_eq!(
        watcher.recv_type("presence").await["joined"],
        json!(["alice"])
    );

    // Killed and back at once, long before its heartbeat (15 s) could expire: no other node
    // ever sees it dead, so only the new life can say that alice is gone.
    first_life.signal("KILL");
    drop(on_first);
    let _second_life = NodeProcess::start(&env).await;
    let left = watcher.recv_type("presence").await;
    assert_eq!(left["left"], json!(["alice"]), "{left}");
    let mut newcomer = WsClient::connect(other, &alice).await;
    let joined = newcomer.join("general", None).await;
    assert_eq!(joined["presence"], json!(["alice", "bob"]));
}

/// The soft and hard "Max open files" of a process, from `/proc/<pid>/limits`.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("proc limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let mut numbers = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    (numbers.next().expect("soft"), numbers.next().expect("hard"))
}

#[actix_web::test]
async fn a_node_raises_its_soft_open_file_limit_to_the_hard_limit() {
    let cluster = Cluster::start(1, None).await;
    // The node inherits a soft limit below the hard one, as on hosts that default it to 1,024.
    let (soft, hard) = rlimit::Resource::NOFILE.get().expect("RLIMIT_NOFILE");
    let lowered = (hard / 2).clamp(1_024, 4_096).min(hard);
    rlimit::Resource::NOFILE
        .set(lowered, hard)
        .expect("lower the soft limit");
    let node = NodeProcess::start(&[("DATABASE_URL", &cluster.db.url)]).await;
    rlimit::Resource::NOFILE
        .set(soft, hard)
        .expect("restore the soft limit");

    let pid = node.child.id().expect("running");
    assert_eq!(open_file_limits(pid), (hard, hard));
}

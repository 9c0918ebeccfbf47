//! Cluster presence as Redis keeps it: one hash per room with a `node|user` field for each user
//! a node has in it, and per node the set of rooms it wrote to, so that a node's entries can be
//! rewritten as a whole (after it lost touch with Redis) or removed (once it died).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use redis::RedisResult;

use super::conn::BusConn;
use super::keys::{Keys, presence_field, split_presence_field};

/// Records that `user`'s first connection on `node` joined `room`, or that its last one left.
pub async fn record(
    conn: &mut BusConn,
    keys: &Keys,
    node: &str,
    room: &str,
    user: &str,
    joined: bool,
) -> RedisResult<()> {
    let field = presence_field(node, user);
    if joined {
        conn.query::<()>(
            redis::cmd("HSET")
                .arg(keys.presence(room))
                .arg(field)
                .arg(1),
        )
        .await?;
        conn.query(redis::cmd("SADD").arg(keys.node_rooms(node)).arg(room))
            .await
    } else {
        conn.query(redis::cmd("HDEL").arg(keys.presence(room)).arg(field))
            .await
    }
}

/// Makes Redis say that `node` has exactly `present` (users by room): entries of rooms not in
/// it, or of users not in it, are removed. Returns every room it touched, with its users there
/// (none for a room the node has left).
pub async fn rewrite_node(
    conn: &mut BusConn,
    keys: &Keys,
    node: &str,
    present: HashMap<Arc<str>, Vec<Arc<str>>>,
) -> RedisResult<Vec<(Arc<str>, Vec<Arc<str>>)>> {
    let recorded: Vec<String> = conn
        .query(redis::cmd("SMEMBERS").arg(keys.node_rooms(node)))
        .await?;
    let mut rooms = present;
    for room in recorded {
        rooms.entry(Arc::from(room)).or_default();
    }
    let mut touched = Vec::with_capacity(rooms.len());
    for (room, users) in rooms {
        let wanted: HashSet<String> = users.iter().map(|u| presence_field(node, u)).collect();
        let fields: Vec<String> = conn
            .query(redis::cmd("HKEYS").arg(keys.presence(&room)))
            .await?;
        let stale: Vec<&String> = fields
            .iter()
            .filter(|f| split_presence_field(f).is_some_and(|(n, _)| n == node))
            .filter(|f| !wanted.contains(*f))
            .collect();
        if !stale.is_empty() {
            conn.query::<()>(redis::cmd("HDEL").arg(keys.presence(&room)).arg(stale))
                .await?;
        }
        if wanted.is_empty() {
            conn.query::<()>(redis::cmd("SREM").arg(keys.node_rooms(node)).arg(&*room))
                .await?;
        } else {
            let mut hset = redis::cmd("HSET");
            hset.arg(keys.presence(&room));
            for field in &wanted {
                hset.arg(field).arg(1);
            }
            conn.query::<()>(&hset).await?;
            conn.query::<()>(redis::cmd("SADD").arg(keys.node_rooms(node)).arg(&*room))
                .await?;
        }
        touched.push((room, users));
    }
    Ok(touched)
}

/// Removes every presence entry of `node` (a node whose heartbeat expired).
pub async fn forget_node(conn: &mut BusConn, keys: &Keys, node: &str) -> RedisResult<()> {
    let rooms: Vec<String> = conn
        .query(redis::cmd("SMEMBERS").arg(keys.node_rooms(node)))
        .await?;
    for room in rooms {
        let fields: Vec<String> = conn
            .query(redis::cmd("HKEYS").arg(keys.presence(&room)))
            .await?;
        let mine: Vec<&String> = fields
            .iter()
            .filter(|f| split_presence_field(f).is_some_and(|(n, _)| n == node))
            .collect();
        if !mine.is_empty() {
            conn.query::<()>(redis::cmd("HDEL").arg(keys.presence(&room)).arg(mine))
                .await?;
        }
    }
    conn.query::<()>(redis::cmd("DEL").arg(keys.node_rooms(node)))
        .await?;
    conn.query(redis::cmd("SREM").arg(keys.nodes()).arg(node))
        .await
}

/// Who is in `room` on the nodes other than `own`, by node, counting only live nodes: those in
/// `alive` (seen at the last heartbeat) and those whose heartbeat exists now.
pub async fn load_room(
    conn: &mut BusConn,
    keys: &Keys,
    room: &str,
    own: &str,
    alive: &HashSet<String>,
) -> RedisResult<HashMap<String, Vec<String>>> {
    let fields: Vec<String> = conn
        .query(redis::cmd("HKEYS").arg(keys.presence(room)))
        .await?;
    let mut by_node: HashMap<String, Vec<String>> = HashMap::new();
    for field in &fields {
        if let Some((node, user)) = split_presence_field(field)
            && node != own
        {
            by_node
                .entry(node.to_owned())
                .or_default()
                .push(user.to_owned());
        }
    }
    let mut live = HashMap::with_capacity(by_node.len());
    for (node, users) in by_node {
        let ok = alive.contains(&node)
            || conn
                .query::<bool>(redis::cmd("EXISTS").arg(keys.node_alive(&node)))
                .await?;
        if ok {
            live.insert(node, users);
        }
    }
    Ok(live)
}

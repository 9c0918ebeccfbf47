//! Cluster presence as Redis keeps it: one hash per room with a `node|user` field for each user
//! a node has in it, and per node the set of rooms it wrote to, so that a node's entries can be
//! rewritten as a whole (after it lost touch with Redis) or removed (once it died).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::try_join_all;
use redis::RedisResult;

use super::conn::BusConn;
use super::keys::{Keys, presence_field, split_presence_field};

/// A batch of one node's presence facts, netted per room: each user's last fact counts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoomFacts {
    pub joined: Vec<Arc<str>>,
    pub left: Vec<Arc<str>>,
}

/// Nets `facts` (room, user, joined), in the order they happened.
pub fn net<'a>(
    facts: impl IntoIterator<Item = (&'a Arc<str>, &'a Arc<str>, bool)>,
) -> BTreeMap<Arc<str>, RoomFacts> {
    let mut last: BTreeMap<(&Arc<str>, &Arc<str>), bool> = BTreeMap::new();
    for (room, user, joined) in facts {
        last.insert((room, user), joined);
    }
    let mut rooms: BTreeMap<Arc<str>, RoomFacts> = BTreeMap::new();
    for ((room, user), joined) in last {
        let facts = rooms.entry(room.clone()).or_default();
        if joined {
            facts.joined.push(user.clone());
        } else {
            facts.left.push(user.clone());
        }
    }
    rooms
}

/// Records netted facts of `node`. No two of the commands touch the same field, so they are
/// all sent at once: a batch costs one round trip.
pub async fn record(
    conn: &BusConn,
    keys: &Keys,
    node: &str,
    rooms: &BTreeMap<Arc<str>, RoomFacts>,
) -> RedisResult<()> {
    let mut commands = Vec::new();
    for (room, facts) in rooms {
        let fields = |users: &[Arc<str>]| -> Vec<String> {
            users.iter().map(|u| presence_field(node, u)).collect()
        };
        if !facts.joined.is_empty() {
            let mut hset = redis::cmd("HSET");
            hset.arg(keys.presence(room));
            for field in fields(&facts.joined) {
                hset.arg(field).arg(1);
            }
            commands.push(hset);
            let mut sadd = redis::cmd("SADD");
            sadd.arg(keys.node_rooms(node)).arg(&**room);
            commands.push(sadd);
        }
        if !facts.left.is_empty() {
            let mut hdel = redis::cmd("HDEL");
            hdel.arg(keys.presence(room)).arg(fields(&facts.left));
            commands.push(hdel);
        }
    }
    try_join_all(commands.into_iter().map(|command| {
        let mut conn = conn.clone();
        async move { conn.query::<()>(&command).await }
    }))
    .await?;
    Ok(())
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
        remove_fields(conn, keys, &room, node, |field| !wanted.contains(field)).await?;
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
        remove_fields(conn, keys, &room, node, |_| true).await?;
    }
    conn.query::<()>(redis::cmd("DEL").arg(keys.node_rooms(node)))
        .await?;
    conn.query(redis::cmd("SREM").arg(keys.nodes()).arg(node))
        .await
}

/// Ends a departing `node`'s heartbeat: at their next heartbeat the other nodes find it dead,
/// which tells even a node that missed its last envelopes.
pub async fn end_heartbeat(conn: &mut BusConn, keys: &Keys, node: &str) -> RedisResult<()> {
    conn.query(redis::cmd("DEL").arg(keys.node_alive(node)))
        .await
}

/// Removes the fields of `node` in `room`'s presence hash that `remove` picks.
async fn remove_fields(
    conn: &mut BusConn,
    keys: &Keys,
    room: &str,
    node: &str,
    remove: impl Fn(&str) -> bool,
) -> RedisResult<()> {
    let fields: Vec<String> = conn
        .query(redis::cmd("HKEYS").arg(keys.presence(room)))
        .await?;
    let doomed: Vec<&String> = fields
        .iter()
        .filter(|f| split_presence_field(f).is_some_and(|(n, _)| n == node) && remove(f))
        .collect();
    if doomed.is_empty() {
        return Ok(());
    }
    conn.query(redis::cmd("HDEL").arg(keys.presence(room)).arg(doomed))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_each_user_s_last_fact_per_room() {
        let [general, news] = ["general", "news"].map(Arc::<str>::from);
        let [alice, bob] = ["alice", "bob"].map(Arc::<str>::from);
        let facts = [
            (&general, &alice, true),
            (&general, &bob, true),
            (&news, &alice, true),
            (&general, &alice, false),
            (&news, &alice, false),
            (&news, &alice, true),
        ];
        let rooms = net(facts);
        assert_eq!(
            rooms,
            BTreeMap::from([
                (
                    general,
                    RoomFacts {
                        joined: vec![bob],
                        left: vec![alice.clone()]
                    }
                ),
                (
                    news,
                    RoomFacts {
                        joined: vec![alice],
                        left: vec![]
                    }
                ),
            ])
        );
    }
}

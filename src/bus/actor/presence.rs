//! The Bus's share of cluster presence: this node's heartbeat, the presence facts its rooms
//! report (kept in Redis and told to the other nodes), who is present elsewhere when a room
//! starts, and dropping the presence of a node whose heartbeat expired.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;

use super::Bus;
use crate::actors::messages::NodeGone;
use crate::bus::conn::BusConn;
use crate::bus::envelope::{Envelope, Payload};
use crate::bus::keys::{Keys, presence_field, split_presence_field};

/// Room → bus: a user's first connection on this node joined (`joined`) or its last one left.
/// Answered once the fact is in Redis (or failed to get there).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PresenceFact {
    pub room: Arc<str>,
    pub user: Arc<str>,
    pub joined: bool,
}

/// Room → bus: who is present in the room on other live nodes, by node.
#[derive(Message)]
#[rtype(result = "HashMap<String, Vec<String>>")]
pub struct LoadPresence(pub Arc<str>);

impl Bus {
    /// Refreshes this node's heartbeat and drops the presence of nodes whose heartbeat expired.
    pub(super) fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let Some(mut conn) = self.conn.clone() else {
            return;
        };
        let (keys, node, ttl) = (self.keys.clone(), self.node.clone(), self.presence_ttl);
        let first = !self.announced;
        let fut = async move {
            if first {
                forget_node(&mut conn, &keys, &node).await?;
            }
            conn.query::<()>(
                redis::cmd("SET")
                    .arg(keys.node_alive(&node))
                    .arg(1)
                    .arg("EX")
                    .arg(ttl.as_secs().max(1)),
            )
            .await?;
            conn.query::<()>(redis::cmd("SADD").arg(keys.nodes()).arg(&node))
                .await?;
            let nodes: Vec<String> = conn.query(redis::cmd("SMEMBERS").arg(keys.nodes())).await?;
            let mut alive = HashSet::new();
            let mut dead = Vec::new();
            for other in nodes.into_iter().filter(|n| *n != node) {
                let exists: bool = conn
                    .query(redis::cmd("EXISTS").arg(keys.node_alive(&other)))
                    .await?;
                if exists {
                    alive.insert(other);
                } else {
                    dead.push(other);
                }
            }
            for gone in &dead {
                forget_node(&mut conn, &keys, gone).await?;
            }
            redis::RedisResult::Ok((alive, dead))
        };
        ctx.spawn(fut.into_actor(self).map(|result, bus, _| match result {
            Ok((alive, dead)) => {
                bus.announced = true;
                bus.alive = alive;
                for gone in dead {
                    tracing::info!(node = %gone, "node gone; dropping its presence");
                    let gone: Arc<str> = Arc::from(gone);
                    for (_, room) in bus.registry.all() {
                        room.do_send(NodeGone(gone.clone()));
                    }
                }
            }
            Err(e) => bus.on_error(&e),
        }));
    }
}

/// Removes every presence entry of `node` (a dead node, or this node's former life).
async fn forget_node(conn: &mut BusConn, keys: &Keys, node: &str) -> redis::RedisResult<()> {
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
    conn.query::<()>(redis::cmd("SREM").arg(keys.nodes()).arg(node))
        .await?;
    Ok(())
}

impl Handler<PresenceFact> for Bus {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, fact: PresenceFact, _: &mut Self::Context) -> Self::Result {
        let Some(mut conn) = self.conn.clone() else {
            return Box::pin(actix::fut::ready(()));
        };
        let (keys, node) = (self.keys.clone(), self.node.clone());
        let envelope = Envelope {
            node: node.clone(),
            room: fact.room.to_string(),
            payload: if fact.joined {
                Payload::Presence {
                    joined: vec![fact.user.to_string()],
                    left: vec![],
                }
            } else {
                Payload::Presence {
                    joined: vec![],
                    left: vec![fact.user.to_string()],
                }
            },
        };
        let fut = async move {
            let field = presence_field(&node, &fact.user);
            if fact.joined {
                conn.query::<()>(
                    redis::cmd("HSET")
                        .arg(keys.presence(&fact.room))
                        .arg(field)
                        .arg(1),
                )
                .await?;
                conn.query::<()>(
                    redis::cmd("SADD")
                        .arg(keys.node_rooms(&node))
                        .arg(&*fact.room),
                )
                .await?;
            } else {
                conn.query::<()>(redis::cmd("HDEL").arg(keys.presence(&fact.room)).arg(field))
                    .await?;
            }
            conn.publish(&keys.room_channel(&fact.room), &envelope.to_bytes())
                .await
        };
        Box::pin(fut.into_actor(self).map(|result, bus, _| {
            if let Err(e) = result {
                bus.on_error(&e);
            }
        }))
    }
}

impl Handler<LoadPresence> for Bus {
    type Result = ResponseFuture<HashMap<String, Vec<String>>>;

    fn handle(&mut self, LoadPresence(room): LoadPresence, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.clone();
        let (key, node, alive) = (
            self.keys.presence(&room),
            self.node.clone(),
            self.alive.clone(),
        );
        let keys = self.keys.clone();
        Box::pin(async move {
            let Some(mut conn) = conn else {
                return HashMap::new();
            };
            let fields: Vec<String> = conn
                .query(redis::cmd("HKEYS").arg(key))
                .await
                .unwrap_or_default();
            let mut by_node: HashMap<String, Vec<String>> = HashMap::new();
            for field in &fields {
                if let Some((n, user)) = split_presence_field(field)
                    && n != node
                {
                    by_node
                        .entry(n.to_owned())
                        .or_default()
                        .push(user.to_owned());
                }
            }
            // Nodes not seen alive at the last heartbeat are asked about now.
            let mut live = HashMap::new();
            for (n, users) in by_node {
                let ok = alive.contains(&n)
                    || conn
                        .query::<bool>(redis::cmd("EXISTS").arg(keys.node_alive(&n)))
                        .await
                        .unwrap_or(false);
                if ok {
                    live.insert(n, users);
                }
            }
            live
        })
    }
}

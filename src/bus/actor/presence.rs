//! The Bus's share of cluster presence: this node's heartbeat; the presence facts its rooms
//! report, kept in Redis and told to the other nodes (written by [`super::presence_writes`],
//! which also rewrites the whole of this node's presence whenever Redis may have it wrong:
//! Redis lost its data, or a write or a published fact was lost while the node was cut off);
//! who is present elsewhere; and dropping the presence of a node whose heartbeat expired.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;

use super::Bus;
use crate::actors::messages::NodeGone;
use crate::bus::presence_store;

/// Room → bus: a user's first connection on this node joined (`joined`) or its last one left.
/// Answered once the fact is in Redis (or failed to get there).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PresenceFact {
    pub room: Arc<str>,
    pub user: Arc<str>,
    pub joined: bool,
}

/// Room → bus: who is present in the room on other live nodes, by node; `None` when Redis
/// could not tell.
#[derive(Message)]
#[rtype(result = "Option<HashMap<String, Vec<String>>>")]
pub struct LoadPresence(pub Arc<str>);

impl Bus {
    /// Refreshes this node's heartbeat and drops the presence of nodes whose heartbeat expired.
    /// A heartbeat that was gone (Redis lost its data, or this node was silent too long and
    /// the others forgot it) means this node's presence must be written again.
    pub(super) fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let Some(mut conn) = self
            .conn
            .clone()
            .filter(|_| !self.beating && self.is_member())
        else {
            return;
        };
        self.beating = true;
        let (keys, node, ttl) = (self.keys.clone(), self.node.clone(), self.presence_ttl);
        let fut = async move {
            let before: Option<String> = conn
                .query(
                    redis::cmd("SET")
                        .arg(keys.node_alive(&node))
                        .arg(1)
                        .arg("EX")
                        .arg(ttl.as_secs().max(1))
                        .arg("GET"),
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
                presence_store::forget_node(&mut conn, &keys, gone).await?;
            }
            redis::RedisResult::Ok((before.is_none(), alive, dead))
        };
        ctx.spawn(fut.into_actor(self).map(|result, bus, ctx| {
            bus.beating = false;
            bus.beaten(result, ctx);
        }));
    }

    /// What a heartbeat found: which other nodes live, which died, and whether this node's
    /// own key was gone.
    fn beaten(
        &mut self,
        result: redis::RedisResult<(bool, HashSet<String>, Vec<String>)>,
        ctx: &mut Context<Self>,
    ) {
        match result {
            Ok((lost, alive, dead)) => {
                self.alive = alive;
                for gone in dead {
                    tracing::info!(node = %gone, "node gone; dropping its presence");
                    let gone: Arc<str> = Arc::from(gone);
                    for (_, room) in self.registry.all() {
                        room.do_send(NodeGone(gone.clone()));
                    }
                }
                if lost {
                    self.rewrite_due = true;
                    self.pump_presence(ctx);
                }
            }
            Err(e) => self.on_error(&e),
        }
        if !self.is_member() {
            self.pump_presence(ctx); // the leave waited for this heartbeat
        }
    }
}

impl Handler<PresenceFact> for Bus {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, fact: PresenceFact, ctx: &mut Self::Context) -> Self::Result {
        // What this node has, whatever becomes of the write: a rewrite writes all of it again.
        let users = self.present.entry(fact.room.clone()).or_default();
        if fact.joined {
            users.insert(fact.user.clone());
        } else {
            users.remove(&fact.user);
            if users.is_empty() {
                self.present.remove(&fact.room);
            }
        }
        let stored = self.queue_fact(fact, ctx);
        Box::pin(async move {
            let _ = stored.await;
        })
    }
}

impl Handler<LoadPresence> for Bus {
    type Result = ResponseFuture<Option<HashMap<String, Vec<String>>>>;

    fn handle(&mut self, LoadPresence(room): LoadPresence, _: &mut Self::Context) -> Self::Result {
        let conn = self.conn.clone();
        let (keys, node, alive) = (self.keys.clone(), self.node.clone(), self.alive.clone());
        Box::pin(async move {
            let mut conn = conn?;
            presence_store::load_room(&mut conn, &keys, &room, &node, &alive)
                .await
                .inspect_err(|e| tracing::debug!(error = %e, %room, "presence not loaded"))
                .ok()
        })
    }
}

//! How this node's presence reaches Redis. Facts queue up and go out in batches, one batch at a
//! time and so in order; a batch nets each user's facts, so all its commands can be sent at once.
//! When Redis may hold this node's presence wrong, the whole of it is rewritten instead. A
//! draining node leaves the cluster last: its presence and its heartbeat go from Redis at once.

use std::collections::HashMap;
use std::mem;
use std::sync::Arc;

use actix::prelude::*;
use futures_util::future::try_join_all;
use tokio::sync::oneshot;

use super::Bus;
use super::presence::PresenceFact;
use crate::actors::messages::ReloadPresence;
use crate::bus::conn::BusConn;
use crate::bus::envelope::{Envelope, Payload};
use crate::bus::keys::Keys;
use crate::bus::presence_store;

/// A fact waiting for Redis, and who waits for it to get there.
pub(super) struct QueuedFact {
    fact: PresenceFact,
    stored: oneshot::Sender<()>,
}

/// Drain → bus, once every connection is closed: ends this node's heartbeat, takes its users out
/// of presence and tells the other nodes, so that nobody waits for the heartbeat to expire.
/// Answered once done (or failed: then the heartbeat expires as after a crash). From then on
/// the node writes no presence and no heartbeat.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

/// Where a node stands in the cluster.
pub(super) enum Membership {
    Member,
    /// Leaving once the writes under way are done; the drain waits on the sender.
    Leaving(oneshot::Sender<()>),
    Left,
}

impl Handler<Leave> for Bus {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Leave, ctx: &mut Self::Context) -> Self::Result {
        if !self.is_member() || self.conn.is_none() {
            self.membership = Membership::Left;
            return Box::pin(async {});
        }
        let (done, answer) = oneshot::channel();
        self.membership = Membership::Leaving(done);
        self.pump_presence(ctx);
        Box::pin(async move {
            let _ = answer.await;
        })
    }
}

impl Bus {
    pub(super) fn is_member(&self) -> bool {
        matches!(self.membership, Membership::Member)
    }

    /// Queues `fact`; the answer comes once it is in Redis (when a rewrite is due, once the
    /// rewrite, which carries it, is done), or at once before the first connection and once
    /// the node is leaving (the leave removes all of its presence).
    pub(super) fn queue_fact(
        &mut self,
        fact: PresenceFact,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<()> {
        let (stored, answer) = oneshot::channel();
        if self.conn.is_none() || !self.is_member() {
            let _ = stored.send(());
        } else {
            self.presence_queue.push(QueuedFact { fact, stored });
            // A due rewrite waits for Redis to be back (`on_up`) rather than for the next fact.
            if !self.rewrite_due {
                self.pump_presence(ctx);
            }
        }
        answer
    }

    /// Starts the next write unless one is running: the leave when asked for (once no
    /// heartbeat runs either), the rewrite when it is due, or else every queued fact. After a
    /// failure nothing starts until Redis is back (`on_up`).
    pub(super) fn pump_presence(&mut self, ctx: &mut Context<Self>) {
        if self.presence_writing {
            return;
        }
        let Some(conn) = self.conn.clone() else {
            return;
        };
        match self.membership {
            Membership::Member => {}
            Membership::Leaving(_) if !self.beating => return self.leave(conn, ctx),
            Membership::Leaving(_) | Membership::Left => return,
        }
        if self.rewrite_due {
            self.rewrite_presence(conn, ctx);
        } else if !self.presence_queue.is_empty() {
            self.write_facts(conn, ctx);
        }
    }

    fn write_facts(&mut self, conn: BusConn, ctx: &mut Context<Self>) {
        self.presence_writing = true;
        let queued = mem::take(&mut self.presence_queue);
        let rooms = presence_store::net(
            queued
                .iter()
                .map(|q| (&q.fact.room, &q.fact.user, q.fact.joined)),
        );
        let (keys, node) = (self.keys.clone(), self.node.clone());
        let job = async move {
            presence_store::record(&conn, &keys, &node, &rooms).await?;
            try_join_all(rooms.into_iter().map(|(room, facts)| {
                let mut conn = conn.clone();
                let channel = keys.room_channel(&room);
                let envelope = Envelope {
                    node: node.clone(),
                    room: room.to_string(),
                    payload: Payload::Presence {
                        joined: facts.joined.iter().map(|u| u.to_string()).collect(),
                        left: facts.left.iter().map(|u| u.to_string()).collect(),
                    },
                };
                async move { conn.publish(&channel, &envelope.to_bytes()).await }
            }))
            .await
        };
        ctx.spawn(job.into_actor(self).map(move |result, bus, ctx| {
            if bus.presence_written(queued, result).is_some() {
                bus.pump_presence(ctx);
            }
        }));
    }

    /// Makes Redis hold exactly this node's presence, tells the other nodes the whole of it
    /// room by room, then has every local room read the others' presence again (facts they
    /// published may have been missed). Subscribes every local room first, so that no fact
    /// published after the reads is missed. Queued facts are carried by it.
    fn rewrite_presence(&mut self, mut conn: BusConn, ctx: &mut Context<Self>) {
        self.presence_writing = true;
        self.rewrite_due = false;
        let carried = mem::take(&mut self.presence_queue);
        let channels = self.channels(self.rooms.iter().cloned());
        let present: HashMap<Arc<str>, Vec<Arc<str>>> = self
            .present
            .iter()
            .map(|(room, users)| (room.clone(), users.iter().cloned().collect()))
            .collect();
        let (keys, node) = (self.keys.clone(), self.node.clone());
        let job = async move {
            if !channels.is_empty() {
                conn.subscribe(&channels).await?;
            }
            write_whole(&mut conn, &keys, &node, present).await
        };
        ctx.spawn(job.into_actor(self).map(move |result, bus, ctx| {
            if let Some(rooms) = bus.presence_written(carried, result) {
                tracing::info!(rooms, "this node's presence is rewritten in Redis");
                for (_, room) in bus.registry.all() {
                    room.do_send(ReloadPresence);
                }
                bus.pump_presence(ctx);
            }
        }));
    }

    /// Ends this node's heartbeat, then removes every presence entry of it and tells the other
    /// nodes room by room. Queued facts are dropped: whatever they said, the node has nobody now.
    fn leave(&mut self, mut conn: BusConn, ctx: &mut Context<Self>) {
        self.presence_writing = true;
        let dropped = mem::take(&mut self.presence_queue);
        let (keys, node) = (self.keys.clone(), self.node.clone());
        let job = async move {
            // First, so that even a leave the drain's time limit cuts short spares the others
            // the wait for the heartbeat to expire.
            presence_store::end_heartbeat(&mut conn, &keys, &node).await?;
            write_whole(&mut conn, &keys, &node, HashMap::new()).await
        };
        ctx.spawn(job.into_actor(self).map(move |result, bus, _| {
            if let Some(rooms) = bus.presence_written(dropped, result) {
                tracing::info!(rooms, "this node left the cluster's presence");
            }
            if let Membership::Leaving(done) = mem::replace(&mut bus.membership, Membership::Left) {
                let _ = done.send(());
            }
        }));
    }

    /// A write ended: whoever waited for it is answered. After a failure a rewrite is due, and
    /// waits for Redis to be back (`on_up`); the output of a success is returned.
    fn presence_written<T>(
        &mut self,
        waiting: Vec<QueuedFact>,
        result: redis::RedisResult<T>,
    ) -> Option<T> {
        self.presence_writing = false;
        for q in waiting {
            let _ = q.stored.send(());
        }
        result
            .inspect_err(|e| {
                self.rewrite_due = true;
                self.on_error(e);
            })
            .ok()
    }
}

/// Makes Redis hold exactly `present` (users by room) for `node`, and tells the other nodes the
/// whole of it in every room it touched, which replaces what they knew of `node` there. Returns
/// how many rooms that was.
async fn write_whole(
    conn: &mut BusConn,
    keys: &Keys,
    node: &str,
    present: HashMap<Arc<str>, Vec<Arc<str>>>,
) -> redis::RedisResult<usize> {
    let rooms = presence_store::rewrite_node(conn, keys, node, present).await?;
    for (room, users) in &rooms {
        let envelope = Envelope {
            node: node.to_owned(),
            room: room.to_string(),
            payload: Payload::NodePresence {
                users: users.iter().map(|u| u.to_string()).collect(),
            },
        };
        conn.publish(&keys.room_channel(room), &envelope.to_bytes())
            .await?;
    }
    Ok(rooms.len())
}

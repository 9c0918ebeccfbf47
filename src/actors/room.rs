//! One room with local members. It delivers the room's committed messages — from this node's
//! commit lanes, from other nodes through the bus, or read from PostgreSQL — to its members in
//! seq order, each exactly once: an early seq waits briefly for the ones before it, then the gap
//! is read from the database. It tracks who is present across the cluster and relays typing.
//! Each event is serialized once and the bytes are shared by every member.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::web;
use bytestring::ByteString;

use super::connection::Connection;
use super::connection::outbound::{Outbound, frame_size};
use super::messages::{
    Committed, ConnId, Deliver, Join, JoinInfo, Leave, NodeGone, OutFrame, Push, ReloadPresence,
    Remote, Tail, Typing,
};
use super::presence::{Changes, Presence};
use super::registry::RoomRegistry;
use crate::bus::actor::{Bus, LoadPresence, PresenceFact, Publish, Subscribe, Unsubscribe};
use crate::bus::envelope::{Envelope, Payload};
use crate::protocol::{Message, ServerFrame};
use crate::state::AppState;
use crate::store::history;

/// How long an early message waits for the ones before it before they are read from PostgreSQL.
const GAP_WAIT: Duration = Duration::from_millis(100);
/// Messages read per catch-up query.
const CATCH_UP_CHUNK: i64 = 1000;
/// How long a room waits for the cluster's presence (when it starts, or reads it again) before
/// it goes on without it.
const PRESENCE_LOAD_LIMIT: Duration = Duration::from_millis(500);
/// How long a room without members lives on, so that a quick rejoin finds it warm.
const IDLE_STOP: Duration = Duration::from_secs(30);

struct Member {
    addr: Addr<Connection>,
    user: Arc<str>,
    outbound: Arc<Outbound>,
}

impl Member {
    /// Posts `message` if `bytes` fit the member's budget; false for a reader too slow to keep.
    fn post<M>(&self, message: M, bytes: usize) -> bool
    where
        M: actix::Message<Result = ()> + Send + 'static,
        Connection: Handler<M>,
    {
        if self.outbound.is_overflowed() || !self.outbound.charge(bytes) {
            return false;
        }
        self.addr.do_send(message);
        true
    }
}

pub struct Room {
    name: Arc<str>,
    /// The highest seq delivered; the next delivery is `delivered + 1`.
    delivered: i64,
    /// The highest seq known to exist (seen early, or PostgreSQL's `last_seq`).
    known: i64,
    members: HashMap<ConnId, Member>,
    presence: Presence,
    /// Messages that arrived ahead of a gap, by seq.
    early: BTreeMap<i64, Message>,
    room_id: i64,
    catch_up: Option<SpawnHandle>,
    reading: bool,
    idle: Option<SpawnHandle>,
    state: web::Data<AppState>,
    registry: Arc<RoomRegistry>,
}

impl Room {
    pub fn new(
        name: Arc<str>,
        room_id: i64,
        last_seq: i64,
        state: web::Data<AppState>,
        registry: Arc<RoomRegistry>,
    ) -> Self {
        Self {
            name,
            room_id,
            delivered: last_seq,
            known: last_seq,
            members: HashMap::new(),
            presence: Presence::default(),
            early: BTreeMap::new(),
            catch_up: None,
            reading: false,
            idle: None,
            state,
            registry,
        }
    }

    fn bus(&self) -> Option<&Addr<Bus>> {
        self.state.bus.as_ref()
    }

    /// Sends `text` to every member but `except`.
    fn push_to_others(&mut self, except: Option<ConnId>, text: &ByteString) {
        let bytes = frame_size(text.len());
        let slow: Vec<ConnId> = self
            .members
            .iter()
            .filter(|(id, member)| Some(**id) != except && !member.post(Push(text.clone()), bytes))
            .map(|(id, _)| *id)
            .collect();
        self.drop_slow(slow);
    }

    fn announce(&mut self, joined: &[&str], left: &[&str], except: Option<ConnId>) {
        if joined.is_empty() && left.is_empty() {
            return;
        }
        let text = ServerFrame::Presence {
            room: &self.name,
            joined,
            left,
        }
        .to_text();
        self.push_to_others(except, &text);
    }

    /// Members whose backlog passed their budget leave the room; their sockets end with 4008.
    fn drop_slow(&mut self, slow: Vec<ConnId>) {
        for conn in slow {
            tracing::info!(room = %self.name, conn, "slow consumer dropped");
            self.remove_member(conn);
        }
    }

    fn remove_member(&mut self, conn: ConnId) {
        let Some(member) = self.members.remove(&conn) else {
            return;
        };
        let change = self.presence.local_leave(&member.user);
        if change.node_changed
            && let Some(bus) = self.bus()
        {
            bus.do_send(PresenceFact {
                room: self.name.clone(),
                user: member.user.clone(),
                joined: false,
            });
        }
        if change.cluster_changed {
            self.announce(&[], &[&member.user], None);
        }
    }

    /// Takes committed messages in any order and delivers every one that is next in line.
    fn ingest(&mut self, messages: Vec<Message>, ctx: &mut Context<Self>) {
        let mut ready = Vec::new();
        for message in messages {
            self.known = self.known.max(message.seq);
            if message.seq <= self.delivered {
                continue; // already delivered
            }
            if message.seq == self.delivered + 1 {
                self.delivered = message.seq;
                ready.push(message);
                while let Some(next) = self.early.remove(&(self.delivered + 1)) {
                    self.delivered = next.seq;
                    ready.push(next);
                }
            } else {
                self.early.insert(message.seq, message);
            }
        }
        self.deliver(&ready);
        self.schedule_catch_up(ctx, GAP_WAIT);
    }

    /// Reads what is missing from PostgreSQL after `wait`, unless it arrives first.
    fn schedule_catch_up(&mut self, ctx: &mut Context<Self>, wait: Duration) {
        if self.delivered >= self.known {
            if let Some(handle) = self.catch_up.take() {
                ctx.cancel_future(handle);
            }
        } else if self.catch_up.is_none() && !self.reading {
            self.catch_up = Some(ctx.run_later(wait, Self::read_missing));
        }
    }

    fn read_missing(&mut self, ctx: &mut Context<Self>) {
        self.catch_up = None;
        if self.delivered >= self.known {
            return;
        }
        let (from, to) = (
            self.delivered,
            self.known.min(self.delivered + CATCH_UP_CHUNK),
        );
        let pool = self.state.pool.clone();
        let (name, room_id) = (self.name.clone(), self.room_id);
        self.reading = true;
        let fetch = async move { history::range(&pool, &name, room_id, from, to).await };
        ctx.spawn(fetch.into_actor(self).map(|result, room, ctx| {
            room.reading = false;
            match result {
                Ok(messages) => {
                    room.state
                        .metrics
                        .catch_up_messages
                        .inc_by(messages.len() as u64);
                    room.ingest(messages, ctx);
                    // Still behind after a full read: go on at once.
                    room.schedule_catch_up(ctx, Duration::ZERO);
                }
                Err(e) => {
                    tracing::warn!(room = %room.name, error = %e, "catch-up failed; retrying");
                    room.schedule_catch_up(ctx, GAP_WAIT * 5);
                }
            }
        }));
    }

    fn deliver(&mut self, messages: &[Message]) {
        if messages.is_empty() || self.members.is_empty() {
            return;
        }
        let now = chrono::Utc::now();
        let frames: Arc<[OutFrame]> = messages
            .iter()
            .map(|m| OutFrame {
                seq: m.seq,
                text: ServerFrame::Message(m).to_text(),
            })
            .collect();
        let metrics = &self.state.metrics;
        for m in messages {
            let latency = (now - m.ts).num_microseconds().unwrap_or(0).max(0);
            metrics.delivery_latency.observe(latency as f64 / 1e6);
        }
        metrics
            .messages_out
            .inc_by((frames.len() * self.members.len()) as u64);
        let bytes = frames.iter().map(OutFrame::wire_size).sum();
        let deliver = Deliver {
            room: self.name.clone(),
            frames,
        };
        let slow: Vec<ConnId> = self
            .members
            .iter()
            .filter(|(_, member)| !member.post(deliver.clone(), bytes))
            .map(|(id, _)| *id)
            .collect();
        self.drop_slow(slow);
    }

    fn schedule_idle_stop(&mut self, ctx: &mut Context<Self>) {
        if self.members.is_empty() && self.idle.is_none() {
            self.idle = Some(ctx.run_later(IDLE_STOP, |room, ctx| {
                room.idle = None;
                if room.members.is_empty() {
                    room.registry.remove(&room.name, &ctx.address());
                    ctx.stop();
                }
            }));
        }
    }

    fn announce_changes(&mut self, changes: &Changes) {
        let appeared: Vec<&str> = changes.appeared.iter().map(|u| &**u).collect();
        let vanished: Vec<&str> = changes.vanished.iter().map(|u| &**u).collect();
        self.announce(&appeared, &vanished, None);
    }

    /// Reads who is present on the other nodes from Redis and takes it as the whole truth,
    /// once the room's channel is subscribed when `subscribe_first` (a starting room), so that
    /// every fact published after the read reaches the room. The room handles nothing else
    /// meanwhile, so a fact that arrives during the read counts after it. On failure (or past
    /// the limit) the room keeps what it knew.
    fn load_presence(&mut self, ctx: &mut Context<Self>, subscribe_first: bool) {
        let Some(bus) = self.bus().cloned() else {
            return;
        };
        let name = self.name.clone();
        let load = async move {
            if subscribe_first {
                bus.send(Subscribe(name.clone())).await.ok()?;
            }
            bus.send(LoadPresence(name)).await.ok().flatten()
        };
        let load = tokio::time::timeout(PRESENCE_LOAD_LIMIT, load);
        ctx.wait(load.into_actor(self).map(|result, room, _| {
            if let Ok(Some(by_node)) = result {
                let changes = room.presence.replace_remote(&by_node);
                room.announce_changes(&changes);
            }
        }));
    }

    /// Presence facts from another node: announce users who appear or vanish cluster-wide.
    fn apply_remote_presence(&mut self, node: &str, joined: &[String], left: &[String]) {
        let appeared: Vec<&str> = joined
            .iter()
            .filter(|u| self.presence.remote_joined(node, u))
            .map(String::as_str)
            .collect();
        let vanished: Vec<&str> = left
            .iter()
            .filter(|u| self.presence.remote_left(node, u))
            .map(String::as_str)
            .collect();
        self.announce(&appeared, &vanished, None);
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.state.metrics.rooms.inc();
        self.schedule_idle_stop(ctx);
        // The first join's presence list already includes the other nodes' users.
        self.load_presence(ctx, true);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.state.metrics.rooms.dec();
        self.registry.remove(&self.name, &ctx.address());
        if let Some(bus) = self.bus() {
            bus.do_send(Unsubscribe(self.name.clone()));
        }
    }
}

impl Handler<Join> for Room {
    type Result = ResponseFuture<JoinInfo>;

    fn handle(&mut self, join: Join, ctx: &mut Self::Context) -> Self::Result {
        if let Some(handle) = self.idle.take() {
            ctx.cancel_future(handle);
        }
        let member = Member {
            addr: join.addr,
            user: join.user.clone(),
            outbound: join.outbound,
        };
        let mut stored = None;
        if self.members.insert(join.conn, member).is_none() {
            let change = self.presence.local_join(&join.user);
            if change.node_changed
                && let Some(bus) = self.bus()
            {
                stored = Some(bus.send(PresenceFact {
                    room: self.name.clone(),
                    user: join.user.clone(),
                    joined: true,
                }));
            }
            if change.cluster_changed {
                self.announce(&[&join.user], &[], Some(join.conn));
            }
        }
        let info = JoinInfo {
            last_seq: self.delivered,
            presence: self.presence.users(),
        };
        // `joined` waits (briefly) until the user's presence is in Redis, so that whoever joins
        // on another node after it lists this user. The connection handles nothing else meanwhile,
        // and skips what it is delivered up to `last_seq`, so frames stay in order.
        Box::pin(async move {
            if let Some(stored) = stored {
                let _ = tokio::time::timeout(PRESENCE_LOAD_LIMIT, stored).await;
            }
            info
        })
    }
}

impl Handler<Leave> for Room {
    type Result = ();

    fn handle(&mut self, leave: Leave, ctx: &mut Self::Context) {
        self.remove_member(leave.conn);
        self.schedule_idle_stop(ctx);
    }
}

impl Handler<Typing> for Room {
    type Result = ();

    fn handle(&mut self, typing: Typing, _: &mut Self::Context) {
        let Some(user) = self.members.get(&typing.conn).map(|m| m.user.clone()) else {
            return;
        };
        let text = ServerFrame::Typing {
            room: &self.name,
            user: &user,
        }
        .to_text();
        self.push_to_others(Some(typing.conn), &text);
        // The other nodes relay it to their members of the room (see the `Remote` handler).
        if let Some(bus) = self.bus() {
            let envelope = Envelope {
                node: self.state.node_id().to_owned(),
                room: self.name.to_string(),
                payload: Payload::Typing {
                    user: user.to_string(),
                },
            };
            bus.do_send(Publish {
                room: self.name.clone(),
                envelope: envelope.to_bytes(),
            });
        }
    }
}

impl Handler<Committed> for Room {
    type Result = ();

    fn handle(&mut self, committed: Committed, ctx: &mut Self::Context) {
        self.ingest(committed.0, ctx);
    }
}

impl Handler<Remote> for Room {
    type Result = ();

    fn handle(&mut self, Remote(envelope): Remote, ctx: &mut Self::Context) {
        match envelope.payload {
            Payload::Messages { messages } => self.ingest(messages, ctx),
            Payload::Presence { joined, left } => {
                self.apply_remote_presence(&envelope.node, &joined, &left);
            }
            Payload::NodePresence { users } => {
                let changes = self.presence.replace_node(&envelope.node, &users);
                self.announce_changes(&changes);
            }
            Payload::Typing { user } => {
                let text = ServerFrame::Typing {
                    room: &self.name,
                    user: &user,
                }
                .to_text();
                self.push_to_others(None, &text);
            }
        }
    }
}

impl Handler<Tail> for Room {
    type Result = ();

    fn handle(&mut self, Tail(last_seq): Tail, ctx: &mut Self::Context) {
        if last_seq > self.known {
            self.known = last_seq;
        }
        self.schedule_catch_up(ctx, Duration::ZERO);
    }
}

impl Handler<ReloadPresence> for Room {
    type Result = ();

    fn handle(&mut self, _: ReloadPresence, ctx: &mut Self::Context) {
        self.load_presence(ctx, false);
    }
}

impl Handler<NodeGone> for Room {
    type Result = ();

    fn handle(&mut self, NodeGone(node): NodeGone, _: &mut Self::Context) {
        let gone = self.presence.node_gone(&node);
        let gone: Vec<&str> = gone.iter().map(|u| &**u).collect();
        self.announce(&[], &gone, None);
    }
}

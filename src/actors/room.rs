//! One room with local members: delivers committed messages to them in seq order, each exactly
//! once, filling any gap from PostgreSQL; tracks who is present; relays typing. Each event is
//! serialized once and the bytes are shared by every member.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::web;

use super::connection::Connection;
use super::connection::outbound::{Outbound, frame_size};
use super::messages::{Committed, ConnId, Deliver, Join, JoinInfo, Leave, OutFrame, Push, Typing};
use super::registry::RoomRegistry;
use crate::protocol::{Message, ServerFrame};
use crate::state::AppState;
use crate::store::history;

/// How long an early message waits for the ones before it before they are read from the database.
const GAP_WAIT: Duration = Duration::from_millis(100);
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
    room_id: i64,
    /// The highest seq delivered; the next delivery is `delivered + 1`.
    delivered: i64,
    members: HashMap<ConnId, Member>,
    /// Connections per user, for presence.
    present: HashMap<Arc<str>, usize>,
    /// Messages that arrived ahead of a gap, by seq.
    early: BTreeMap<i64, Message>,
    gap_fill: Option<SpawnHandle>,
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
            members: HashMap::new(),
            present: HashMap::new(),
            early: BTreeMap::new(),
            gap_fill: None,
            idle: None,
            state,
            registry,
        }
    }

    /// Sends `text` to every member but `except`.
    fn push_to_others(&mut self, except: Option<ConnId>, text: &bytestring::ByteString) {
        let bytes = frame_size(text.len());
        let mut slow = Vec::new();
        for (id, member) in &self.members {
            if Some(*id) != except && !member.post(Push(text.clone()), bytes) {
                slow.push(*id);
            }
        }
        self.drop_slow(slow);
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
        if let Some(count) = self.present.get_mut(&member.user) {
            *count -= 1;
            if *count == 0 {
                self.present.remove(&member.user);
                self.presence_changed(&[], &[&member.user], None);
            }
        }
    }

    fn presence_changed(&mut self, joined: &[&str], left: &[&str], except: Option<ConnId>) {
        let text = ServerFrame::Presence {
            room: &self.name,
            joined,
            left,
        }
        .to_text();
        self.push_to_others(except, &text);
    }

    /// Takes committed messages in any order and delivers every one that is next in line.
    fn ingest(&mut self, messages: Vec<Message>, ctx: &mut Context<Self>) {
        let mut ready = Vec::new();
        for message in messages {
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
        if self.early.is_empty() {
            if let Some(handle) = self.gap_fill.take() {
                ctx.cancel_future(handle);
            }
        } else if self.gap_fill.is_none() {
            self.gap_fill = Some(ctx.run_later(GAP_WAIT, Self::fill_gap));
        }
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
        let deliveries = (frames.len() * self.members.len()) as u64;
        metrics.messages_out.inc_by(deliveries);
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

    /// Reads the messages missing before the earliest early one from the database.
    fn fill_gap(&mut self, ctx: &mut Context<Self>) {
        self.gap_fill = None;
        let Some((&first_early, _)) = self.early.first_key_value() else {
            return;
        };
        let (from, to) = (self.delivered, first_early - 1);
        let pool = self.state.pool.clone();
        let (name, room_id) = (self.name.clone(), self.room_id);
        let fetch = async move { history::range(&pool, &name, room_id, from, to).await };
        ctx.wait(
            fetch
                .into_actor(self)
                .map(move |result, room, ctx| match result {
                    Ok(messages) => {
                        let complete = messages.len() as i64 == to - from;
                        room.ingest(messages, ctx);
                        if !complete && room.gap_fill.is_none() && !room.early.is_empty() {
                            room.gap_fill = Some(ctx.run_later(GAP_WAIT, Self::fill_gap));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(room = %room.name, error = %e, "gap fill failed; retrying");
                        room.gap_fill = Some(ctx.run_later(GAP_WAIT * 5, Self::fill_gap));
                    }
                }),
        );
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
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.state.metrics.rooms.inc();
        self.schedule_idle_stop(ctx);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.state.metrics.rooms.dec();
        self.registry.remove(&self.name, &ctx.address());
    }
}

impl Handler<Join> for Room {
    type Result = MessageResult<Join>;

    fn handle(&mut self, join: Join, ctx: &mut Self::Context) -> Self::Result {
        if let Some(handle) = self.idle.take() {
            ctx.cancel_future(handle);
        }
        let rejoin = self.members.contains_key(&join.conn);
        self.members.insert(
            join.conn,
            Member {
                addr: join.addr,
                user: join.user.clone(),
                outbound: join.outbound,
            },
        );
        if !rejoin {
            let count = self.present.entry(join.user.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                self.presence_changed(&[&join.user], &[], Some(join.conn));
            }
        }
        let mut presence: Vec<Arc<str>> = self.present.keys().cloned().collect();
        presence.sort();
        MessageResult(JoinInfo {
            last_seq: self.delivered,
            presence,
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
        let Some(member) = self.members.get(&typing.conn) else {
            return;
        };
        let text = ServerFrame::Typing {
            room: &self.name,
            user: &member.user,
        }
        .to_text();
        let typing_conn = typing.conn;
        self.push_to_others(Some(typing_conn), &text);
    }
}

impl Handler<Committed> for Room {
    type Result = ();

    fn handle(&mut self, committed: Committed, ctx: &mut Self::Context) {
        self.ingest(committed.0, ctx);
    }
}

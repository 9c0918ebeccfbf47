//! Joining a room: access, the room actor's `joined` answer, and the replay of what the client
//! missed since `since`, a chunk at a time.

use std::sync::Arc;

use actix::prelude::*;

use super::{Code, Ctx, check_room_name, checked_access, refuse};
use crate::actors::connection::{Connection, JoinedRoom};
use crate::actors::messages::{Join, JoinInfo, Leave};
use crate::protocol::{Message, ServerFrame};
use crate::store::history;
use crate::store::rooms::RoomAccess;

/// Messages of a replay read per database query.
const REPLAY_CHUNK: i64 = 500;

impl Connection {
    /// Checks the frame, joins the room actor, answers `joined`, then replays from `since`.
    pub(super) fn on_join(
        &mut self,
        room: String,
        since: Option<i64>,
        reference: Option<String>,
        ctx: &mut Ctx,
    ) {
        let r = reference.as_deref();
        if let Err(refusal) = check_room_name(&room) {
            return self.error(ctx, r, refusal);
        }
        if since.is_some_and(|s| s < 0) {
            return self.error(ctx, r, refuse(Code::BadRequest, "since must be 0 or more"));
        }
        let max_rooms = self.state.config.ws.max_rooms;
        if self.rooms.len() >= max_rooms && !self.rooms.contains_key(room.as_str()) {
            let message = format!("a connection may join at most {max_rooms} rooms");
            return self.error(ctx, r, refuse(Code::BadRequest, message));
        }
        let Some(session) = self.session.clone() else {
            return;
        };
        let state = self.state.clone();
        let name: Arc<str> = Arc::from(room);
        let (conn, addr, outbound) = (self.id, ctx.address(), self.outbound.clone());
        let join = async move {
            let access = match state.registry.public_access(&name) {
                Some(access) => access,
                None => checked_access(&state, &name, session.user_id).await?,
            };
            let registry = state.registry.clone();
            // A room that stopped between lookup and join is started again, once.
            for _ in 0..2 {
                let room = registry.get_or_start(&name, &access, &state);
                let join = Join {
                    conn,
                    user: session.name.clone(),
                    addr: addr.clone(),
                    outbound: outbound.clone(),
                };
                if let Ok(info) = room.send(join).await {
                    return Ok((name, access, room, info));
                }
            }
            Err(refuse(
                Code::Unavailable,
                "the room is restarting; try again",
            ))
        };
        // `wait`: nothing else is handled until joined (and replayed), so frames stay in order.
        ctx.wait(join.into_actor(self).map(move |result, conn, ctx| {
            let r = reference.as_deref();
            let (name, access, room, info): (_, RoomAccess, _, JoinInfo) = match result {
                Ok(joined) => joined,
                Err(refusal) => return conn.error(ctx, r, refusal),
            };
            let presence: Vec<&str> = info.presence.iter().map(|p| &**p).collect();
            let joined = ServerFrame::Joined {
                room: &name,
                last_seq: info.last_seq,
                presence,
                reference: r,
            }
            .to_text();
            conn.send_text(ctx, joined);
            // The client has everything up to `since` — possibly more than this node's room has
            // delivered yet, when it comes from a node that was ahead: never send that again.
            let last_sent = since.unwrap_or(info.last_seq);
            conn.rooms.insert(
                name.clone(),
                JoinedRoom {
                    room_id: access.room_id,
                    addr: room,
                    last_sent,
                },
            );
            if last_sent < info.last_seq {
                conn.replay(name, last_sent, info.last_seq, reference, ctx);
            }
        }));
    }

    /// Sends every message with `from < seq <= to`, a chunk at a time, pausing while the client
    /// is still reading the previous chunk.
    fn replay(
        &mut self,
        room: Arc<str>,
        from: i64,
        to: i64,
        reference: Option<String>,
        ctx: &mut Ctx,
    ) {
        if from >= to {
            return;
        }
        let Some(joined) = self.rooms.get(&room) else {
            return;
        };
        if self.outbound.queued() > self.state.config.ws.outbound_budget / 2 {
            let pause = tokio::time::sleep(std::time::Duration::from_millis(10));
            ctx.wait(pause.into_actor(self).map(move |(), conn, ctx| {
                conn.replay(room, from, to, reference, ctx);
            }));
            return;
        }
        let until = to.min(from + REPLAY_CHUNK);
        let (pool, room_id, name) = (self.state.pool.clone(), joined.room_id, room.clone());
        let fetch = async move { history::range(&pool, &name, room_id, from, until).await };
        ctx.wait(
            fetch
                .into_actor(self)
                .map(move |result, conn, ctx| match result {
                    Ok(messages) => {
                        conn.send_replayed(&room, &messages, ctx);
                        conn.replay(room, until, to, reference, ctx);
                    }
                    Err(e) => {
                        // The client cannot have everything: take the join back so that it retries.
                        if let Some(joined) = conn.rooms.remove(&room) {
                            joined.addr.do_send(Leave { conn: conn.id });
                        }
                        conn.error(ctx, reference.as_deref(), e.into());
                    }
                }),
        );
    }

    fn send_replayed(&mut self, room: &Arc<str>, messages: &[Message], ctx: &mut Ctx) {
        for message in messages {
            let Some(joined) = self.rooms.get_mut(room) else {
                return;
            };
            if message.seq <= joined.last_sent {
                continue;
            }
            joined.last_sent = message.seq;
            self.send_frame(ctx, &ServerFrame::Message(message));
        }
    }
}

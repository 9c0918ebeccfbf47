//! What a connection does with each client frame: validation first, then the room, the
//! committer or the database. Every reply echoes the frame's `ref`. Joins are in [`join`].

mod join;

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws;
use tokio::sync::oneshot;

use super::acks::Answered;
use super::{Connection, close};
use crate::actors::messages::{Leave, Typing};
use crate::committer::{Pending, SendError};
use crate::protocol::ServerFrame;
use crate::protocol::client::{self, ClientFrame};
use crate::protocol::validate::{
    HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, is_storable, is_valid_room_name, is_valid_short_id,
    page_limit,
};
use crate::store::rooms::{self, RoomAccess};
use crate::store::{StoreError, history};

type Ctx = ws::WebsocketContext<Connection>;

/// The contract's error codes for error frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    NotJoined,
    TooLarge,
    RateLimited,
    Unavailable,
    Internal,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::NotJoined => "not_joined",
            Self::TooLarge => "too_large",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

/// A refusal on its way back to the client.
pub struct Refusal {
    code: Code,
    message: String,
}

pub(super) fn refuse(code: Code, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                refuse(Code::Unavailable, "the database is unavailable; try again")
            }
            other => {
                tracing::error!(error = %other, "store error");
                refuse(Code::Internal, "internal error")
            }
        }
    }
}

pub(super) fn check_room_name(room: &str) -> Result<(), Refusal> {
    if is_valid_room_name(room) {
        Ok(())
    } else {
        Err(refuse(Code::BadRequest, "invalid room name"))
    }
}

impl Connection {
    pub(super) fn on_binary(&mut self, ctx: &mut Ctx) {
        self.error(
            ctx,
            None,
            refuse(
                Code::BadRequest,
                "binary frames are not supported; send JSON text",
            ),
        );
    }

    pub(super) fn on_text(&mut self, text: &str, ctx: &mut Ctx) {
        let parsed = match client::parse(text) {
            Ok(parsed) => parsed,
            Err(e) => {
                if self.session.is_none() {
                    return self.close(ctx, close::UNAUTHORIZED, "the first frame must be auth");
                }
                return self.error(
                    ctx,
                    e.reference.as_deref(),
                    refuse(Code::BadRequest, e.message),
                );
            }
        };
        let reference = parsed.reference;
        let r = reference.as_deref();
        if self.session.is_none() && !matches!(parsed.frame, ClientFrame::Auth { .. }) {
            return self.close(ctx, close::UNAUTHORIZED, "the first frame must be auth");
        }
        match parsed.frame {
            ClientFrame::Auth { token } => self.on_auth(&token, ctx),
            ClientFrame::Join { room, since } => self.on_join(room, since, reference, ctx),
            ClientFrame::Leave { room } => self.on_leave(&room, r, ctx),
            ClientFrame::Send {
                room,
                body,
                client_msg_id,
            } => {
                self.on_send(room, body, client_msg_id, reference, ctx);
            }
            ClientFrame::History {
                room,
                before,
                after,
                limit,
            } => {
                self.on_history(room, before, after, limit, reference, ctx);
            }
            ClientFrame::Typing { room } => self.on_typing(&room, r, ctx),
            ClientFrame::Search { room, query, limit } => {
                self.on_search(room, query, limit, reference, ctx);
            }
            ClientFrame::Ping => self.send_frame(ctx, &ServerFrame::Pong { reference: r }),
        }
    }

    /// Sends an error frame; a client that keeps earning them is closed with 4029.
    pub(super) fn error(&mut self, ctx: &mut Ctx, reference: Option<&str>, refusal: Refusal) {
        let now = Instant::now();
        let abusive = if refusal.code == Code::RateLimited {
            self.rate_limited.record(now)
        } else {
            self.errors.record(now)
        };
        let frame = ServerFrame::Error {
            code: refusal.code.as_str(),
            message: &refusal.message,
            reference,
        };
        self.send_frame(ctx, &frame);
        if abusive {
            self.close(ctx, close::ABUSE, "too many errors");
        }
    }

    fn on_auth(&mut self, token: &str, ctx: &mut Ctx) {
        match self.state.jwt.verify(token) {
            Ok(claims) => {
                if let Some(current) = &self.session
                    && current.user_id != claims.sub
                {
                    return self.close(ctx, close::UNAUTHORIZED, "token is for another user");
                }
                self.authenticated(ctx, claims.into());
            }
            Err(e) => self.close(ctx, close::UNAUTHORIZED, &e.to_string()),
        }
    }

    fn on_leave(&mut self, room: &str, r: Option<&str>, ctx: &mut Ctx) {
        match self.rooms.remove(room) {
            Some(joined) => {
                joined.addr.do_send(Leave { conn: self.id });
                self.send_frame(ctx, &ServerFrame::Left { room, reference: r });
            }
            None => self.error(ctx, r, refuse(Code::NotJoined, "not joined to this room")),
        }
    }

    fn on_send(
        &mut self,
        room: String,
        body: String,
        client_msg_id: Option<String>,
        reference: Option<String>,
        ctx: &mut Ctx,
    ) {
        let r = reference.as_deref();
        let max_body = self.state.config.limits.max_body_bytes;
        if body.len() > max_body {
            let message = format!("body is {} bytes; the limit is {max_body}", body.len());
            return self.error(ctx, r, refuse(Code::TooLarge, message));
        }
        if body.trim().is_empty() {
            return self.error(ctx, r, refuse(Code::BadRequest, "body must not be empty"));
        }
        if !is_storable(&body) {
            let refusal = refuse(Code::BadRequest, "body must not contain the NUL character");
            return self.error(ctx, r, refusal);
        }
        if client_msg_id
            .as_deref()
            .is_some_and(|id| !is_valid_short_id(id))
        {
            let refusal = refuse(
                Code::BadRequest,
                "client_msg_id must be 1 to 64 characters, none of them NUL",
            );
            return self.error(ctx, r, refusal);
        }
        let Some((name, joined)) = self.rooms.get_key_value(room.as_str()) else {
            return self.error(
                ctx,
                r,
                refuse(Code::NotJoined, "join the room before sending"),
            );
        };
        if !self.bucket.try_take(Instant::now()) {
            return self.error(
                ctx,
                r,
                refuse(Code::RateLimited, "slow down: too many messages"),
            );
        }
        let Some(session) = &self.session else { return };
        let echoed_id = client_msg_id.clone();
        let (tx, rx) = oneshot::channel();
        self.state.committer.submit(Pending {
            room: name.clone(),
            room_id: joined.room_id,
            room_addr: joined.addr.clone(),
            user_id: session.user_id,
            user: session.name.clone(),
            body,
            client_msg_id,
            reply: tx,
        });
        let room = name.clone();
        let ticket = self.acks.issue();
        ctx.spawn(rx.into_actor(self).map(move |answer, conn, ctx| {
            conn.acks.answered(
                ticket,
                Answered {
                    room,
                    client_msg_id: echoed_id,
                    reference,
                    answer,
                },
            );
            while let Some(answered) = conn.acks.next_ready() {
                conn.answer_send(ctx, answered);
            }
        }));
    }

    /// The ack of a committed send, or why it was not stored.
    fn answer_send(&mut self, ctx: &mut Ctx, answered: Answered) {
        let r = answered.reference.as_deref();
        match answered.answer {
            Ok(Ok(ack)) => {
                self.send_frame(
                    ctx,
                    &ServerFrame::Ack {
                        room: &answered.room,
                        id: ack.id,
                        seq: ack.seq,
                        ts: ack.ts,
                        client_msg_id: answered.client_msg_id.as_deref(),
                        reference: r,
                    },
                );
            }
            Ok(Err(SendError::NoRoom)) => {
                self.error(ctx, r, refuse(Code::NotFound, "the room no longer exists"));
            }
            Ok(Err(SendError::NoUser)) => self.error(
                ctx,
                r,
                refuse(Code::Unauthorized, "the token's account does not exist"),
            ),
            Ok(Err(SendError::Unavailable)) | Err(_) => self.error(
                ctx,
                r,
                refuse(
                    Code::Unavailable,
                    "not stored; retry with the same client_msg_id",
                ),
            ),
        }
    }

    fn on_history(
        &mut self,
        room: String,
        before: Option<i64>,
        after: Option<i64>,
        limit: Option<i64>,
        reference: Option<String>,
        ctx: &mut Ctx,
    ) {
        let r = reference.as_deref();
        if let Err(refusal) = check_room_name(&room) {
            return self.error(ctx, r, refusal);
        }
        let limit = match page_limit(limit, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT) {
            Ok(limit) => limit,
            Err(message) => return self.error(ctx, r, refuse(Code::BadRequest, message)),
        };
        let Some(readable) = self.readable(room) else {
            return;
        };
        let state = self.state.clone();
        let fetch = async move {
            let (name, room_id) = readable.resolve(&state).await?;
            let page = history::page(&state.pool, &name, room_id, before, after, limit).await?;
            Ok::<_, Refusal>((name, page))
        };
        ctx.spawn(fetch.into_actor(self).map(move |result, conn, ctx| {
            let r = reference.as_deref();
            match result {
                Ok((room, messages)) => conn.send_frame(
                    ctx,
                    &ServerFrame::History {
                        room: &room,
                        messages: &messages,
                        reference: r,
                    },
                ),
                Err(refusal) => conn.error(ctx, r, refusal),
            }
        }));
    }

    fn on_typing(&mut self, room: &str, r: Option<&str>, ctx: &mut Ctx) {
        let Some(joined) = self.rooms.get(room) else {
            return self.error(ctx, r, refuse(Code::NotJoined, "not joined to this room"));
        };
        if !self.bucket.try_take(Instant::now()) {
            return self.error(
                ctx,
                r,
                refuse(Code::RateLimited, "slow down: too many frames"),
            );
        }
        joined.addr.do_send(Typing { conn: self.id });
    }
}

/// The room's access for `user`: `not_found` when it does not exist, `forbidden` when private.
pub(super) async fn checked_access(
    state: &crate::state::AppState,
    room: &str,
    user: uuid::Uuid,
) -> Result<RoomAccess, Refusal> {
    match rooms::access(&state.pool, room, user).await? {
        None => Err(refuse(Code::NotFound, "no such room")),
        Some(access) if !access.allowed => Err(refuse(Code::Forbidden, "this room is private")),
        Some(access) => Ok(access),
    }
}

/// A room a read (history, search) is about: one this connection joined, or one whose access
/// must still be checked.
pub(super) enum Readable {
    Joined(Arc<str>, i64),
    Unchecked(String, uuid::Uuid),
}

impl Readable {
    /// The room's name and id, or the refusal for a room the user may not read.
    pub(super) async fn resolve(
        self,
        state: &crate::state::AppState,
    ) -> Result<(Arc<str>, i64), Refusal> {
        match self {
            Self::Joined(name, room_id) => Ok((name, room_id)),
            Self::Unchecked(room, user) => {
                let access = checked_access(state, &room, user).await?;
                Ok((Arc::from(room), access.room_id))
            }
        }
    }
}

impl Connection {
    /// What a read of `room` needs to resolve it; `None` before authentication.
    pub(super) fn readable(&self, room: String) -> Option<Readable> {
        let session = self.session.as_ref()?;
        Some(match self.rooms.get_key_value(room.as_str()) {
            Some((name, joined)) => Readable::Joined(name.clone(), joined.room_id),
            None => Readable::Unchecked(room, session.user_id),
        })
    }
}

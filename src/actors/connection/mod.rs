//! One WebSocket connection: authentication, heartbeats, limits, and the frames of one client.
//! Frame handling lives in [`frames`]; answers to sends are put in send order by [`acks`]; the
//! outbound byte budget in [`outbound`]; rate and abuse limits in [`limits`]; the `search` frame
//! in [`search`].

mod acks;
mod frames;
pub mod limits;
pub mod outbound;
mod search;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use actix::prelude::*;
use actix_http::ws::Item;
use actix_web::web;
use actix_web_actors::ws;
use bytes::BytesMut;
use bytestring::ByteString;
use uuid::Uuid;

use self::limits::{AbuseWindow, TokenBucket};
use self::outbound::Outbound;
use super::messages::{ConnId, Deliver, Leave, OutFrame, Push};
use super::room::Room;
use crate::auth::Claims;
use crate::protocol::ServerFrame;
use crate::state::AppState;

/// Close codes of the contract.
pub mod close {
    pub const TOO_BIG: u16 = 1009;
    pub const RESTARTING: u16 = 1012;
    pub const UNAUTHORIZED: u16 = 4001;
    pub const SLOW_CONSUMER: u16 = 4008;
    pub const ABUSE: u16 = 4029;
    pub const GOING_AWAY: u16 = 1001;
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Every open connection of a node, so that a drain can close them all.
#[derive(Default)]
pub struct Connections(Mutex<HashMap<ConnId, Addr<Connection>>>);

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Addr<Connection>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every connection, oldest first (ids are handed out in order).
    pub fn all(&self) -> Vec<Addr<Connection>> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(id, addr)| (*id, addr.clone()))
            .collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all.into_iter().map(|(_, addr)| addr).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drain → connection: the node is going away; close with 1012 so the client reconnects
/// elsewhere and rejoins with `since`.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Restart;

/// Who is on the other end, once authenticated.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: Uuid,
    pub name: Arc<str>,
    pub expires_at: i64,
}

impl From<Claims> for Session {
    fn from(claims: Claims) -> Self {
        Self {
            user_id: claims.sub,
            name: Arc::from(claims.name),
            expires_at: claims.exp,
        }
    }
}

/// A room this connection has joined.
struct JoinedRoom {
    room_id: i64,
    addr: Addr<Room>,
    /// The highest seq sent to the client, so nothing is sent twice across replay and live.
    last_sent: i64,
}

pub struct Connection {
    id: ConnId,
    state: web::Data<AppState>,
    session: Option<Session>,
    rooms: HashMap<Arc<str>, JoinedRoom>,
    bucket: TokenBucket,
    errors: AbuseWindow,
    rate_limited: AbuseWindow,
    last_seen: Instant,
    outbound: Arc<Outbound>,
    /// A fragmented text message being reassembled (`None` for binary ones, which are refused).
    fragments: Option<Option<BytesMut>>,
    expiry: Option<SpawnHandle>,
    acks: self::acks::AckQueue,
}

impl Connection {
    pub fn new(
        state: web::Data<AppState>,
        session: Option<Session>,
        outbound: Arc<Outbound>,
    ) -> Self {
        let ws = &state.config.ws;
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            bucket: TokenBucket::new(ws.rate_per_sec, ws.rate_burst),
            errors: AbuseWindow::new(ws.max_errors, ws.abuse_window),
            rate_limited: AbuseWindow::new(ws.max_rate_limited, ws.abuse_window),
            state,
            session,
            rooms: HashMap::new(),
            last_seen: Instant::now(),
            outbound,
            fragments: None,
            expiry: None,
            acks: self::acks::AckQueue::default(),
        }
    }

    /// Queues a text frame within the outbound budget; a reader too slow for it is dropped.
    fn send_text(&mut self, ctx: &mut ws::WebsocketContext<Self>, text: ByteString) {
        if self.outbound.is_overflowed() {
            return; // already closing
        }
        if self.outbound.queue(text.len()) {
            ctx.text(text);
        } else {
            tracing::info!(
                conn = self.id,
                queued = self.outbound.queued(),
                "slow consumer closed"
            );
            // The outgoing stream ends with the 4008 close in place of the backlog.
            ctx.stop();
        }
    }

    fn send_frame(&mut self, ctx: &mut ws::WebsocketContext<Self>, frame: &ServerFrame<'_>) {
        self.send_text(ctx, frame.to_text());
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: u16, reason: &str) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Other(code),
            description: Some(reason.to_owned()),
        }));
        ctx.stop();
    }

    /// Becomes `session`: welcome, and a close when its token expires.
    fn authenticated(&mut self, ctx: &mut ws::WebsocketContext<Self>, session: Session) {
        if let Some(handle) = self.expiry.take() {
            ctx.cancel_future(handle);
        }
        let left = session.expires_at - chrono::Utc::now().timestamp();
        let left = std::time::Duration::from_secs(u64::try_from(left.max(0)).unwrap_or(0));
        self.expiry = Some(ctx.run_later(left, |conn, ctx| {
            conn.close(ctx, close::UNAUTHORIZED, "token expired");
        }));
        let welcome = ServerFrame::Welcome {
            user: &session.name,
            node: self.state.node_id(),
            heartbeat_ms: u64::try_from(self.state.config.ws.heartbeat.as_millis()).unwrap_or(0),
        }
        .to_text();
        self.session = Some(session);
        self.send_text(ctx, welcome);
    }

    /// Pings every `heartbeat`, on a grid shared by every connection of the node (see
    /// [`until_next_beat`]); closes the connection once it has been silent for `idle_timeout`.
    fn schedule_heartbeat(&self, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.run_later(
            until_next_beat(self.state.config.ws.heartbeat),
            |conn, ctx| {
                if conn.last_seen.elapsed() > conn.state.config.ws.idle_timeout {
                    conn.close(ctx, close::GOING_AWAY, "idle timeout");
                } else {
                    ctx.ping(b"");
                    conn.schedule_heartbeat(ctx);
                }
            },
        );
    }
}

/// Heartbeats fall on whole seconds of a node-wide clock: between `interval` − 1 s and
/// `interval` from now. A worker thread then wakes once a second for all the connections due
/// in that second, instead of once per connection at scattered times; with tens of thousands
/// of idle connections the wake-ups, not the pings, were most of their CPU.
fn until_next_beat(interval: std::time::Duration) -> std::time::Duration {
    const GRID_NANOS: u128 = 1_000_000_000;
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let since = EPOCH.get_or_init(Instant::now).elapsed().as_nanos() % GRID_NANOS;
    let late = std::time::Duration::from_nanos(u64::try_from(since).unwrap_or(0));
    if interval > std::time::Duration::from_secs(2) {
        interval - late
    } else {
        interval // short intervals (tests) keep their exact period
    }
}

impl Actor for Connection {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.state.metrics.connections.inc();
        self.state.connections.lock().insert(self.id, ctx.address());
        self.schedule_heartbeat(ctx);
        match self.session.take() {
            Some(session) => self.authenticated(ctx, session),
            None => {
                ctx.run_later(self.state.config.ws.auth_timeout, |conn, ctx| {
                    if conn.session.is_none() {
                        conn.close(ctx, close::UNAUTHORIZED, "authentication timed out");
                    }
                });
            }
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.state.metrics.connections.dec();
        self.state.connections.lock().remove(&self.id);
        for room in self.rooms.values() {
            room.addr.do_send(Leave { conn: self.id });
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Connection {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        let message = match item {
            Ok(message) => message,
            Err(ws::ProtocolError::Overflow) => {
                return self.close(ctx, close::TOO_BIG, "frame too large");
            }
            Err(e) => {
                tracing::debug!(conn = self.id, error = %e, "protocol error");
                return ctx.stop();
            }
        };
        match message {
            ws::Message::Text(text) => self.on_text(&text, ctx),
            ws::Message::Binary(_) => self.on_binary(ctx),
            ws::Message::Continuation(item) => self.on_fragment(item, ctx),
            ws::Message::Ping(payload) => ctx.pong(&payload),
            ws::Message::Pong(_) | ws::Message::Nop => {}
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
        }
    }
}

impl Connection {
    fn on_fragment(&mut self, item: Item, ctx: &mut ws::WebsocketContext<Self>) {
        let limit = self.state.config.limits.max_frame_bytes;
        match item {
            Item::FirstText(bytes) => self.fragments = Some(Some(BytesMut::from(&bytes[..]))),
            Item::FirstBinary(_) => self.fragments = Some(None),
            Item::Continue(ref bytes) | Item::Last(ref bytes) => {
                if let Some(Some(buffer)) = &mut self.fragments {
                    buffer.extend_from_slice(bytes);
                    if buffer.len() > limit {
                        self.fragments = None;
                        return self.close(ctx, close::TOO_BIG, "message too large");
                    }
                }
                if matches!(item, Item::Last(_)) {
                    match self.fragments.take() {
                        Some(Some(buffer)) => match std::str::from_utf8(&buffer) {
                            Ok(text) => self.on_text(text, ctx),
                            Err(_) => ctx.stop(),
                        },
                        Some(None) => self.on_binary(ctx),
                        None => {}
                    }
                }
            }
        }
    }
}

impl Handler<Deliver> for Connection {
    type Result = ();

    /// The room charged the budget for these frames; write them (or credit what is skipped).
    fn handle(&mut self, deliver: Deliver, ctx: &mut Self::Context) {
        if self.outbound.is_overflowed() {
            return ctx.stop();
        }
        let room = self.rooms.get_mut(&deliver.room);
        // Frames are in seq order; skip what a replay already sent.
        let last_sent = room.as_ref().map_or(i64::MAX, |r| r.last_sent);
        let start = deliver.frames.partition_point(|f| f.seq <= last_sent);
        let skipped: usize = deliver.frames[..start]
            .iter()
            .map(OutFrame::wire_size)
            .sum();
        self.outbound.drained(skipped);
        if let (Some(room), Some(last)) = (room, deliver.frames.last()) {
            room.last_sent = room.last_sent.max(last.seq);
        }
        for frame in &deliver.frames[start..] {
            ctx.text(frame.text.clone());
        }
    }
}

impl Handler<Push> for Connection {
    type Result = ();

    /// The room charged the budget for this frame.
    fn handle(&mut self, push: Push, ctx: &mut Self::Context) {
        if self.outbound.is_overflowed() {
            return ctx.stop();
        }
        ctx.text(push.0);
    }
}

impl Handler<Restart> for Connection {
    type Result = ();

    fn handle(&mut self, _: Restart, ctx: &mut Self::Context) {
        self.close(
            ctx,
            close::RESTARTING,
            "server restarting; reconnect and rejoin with since",
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::until_next_beat;

    #[test]
    fn beats_fall_within_the_last_second_of_the_interval() {
        let interval = Duration::from_secs(25);
        for _ in 0..3 {
            let next = until_next_beat(interval);
            assert!(next <= interval && next > interval - Duration::from_secs(1));
            std::thread::sleep(Duration::from_millis(300));
        }
        assert_eq!(
            until_next_beat(Duration::from_millis(500)),
            Duration::from_millis(500)
        );
    }
}

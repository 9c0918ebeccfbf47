//! The Bus: one actor per node between its rooms and Redis. It subscribes a room's channel while
//! the room has local members, publishes what this node commits, hands other nodes' envelopes
//! to the local rooms, keeps this node's heartbeat and presence in Redis, notices dead nodes,
//! and once a second asks PostgreSQL how far every local room really is, so that a message lost
//! by pub/sub (which is at most once) or by a Redis outage is delivered all the same.
//! Its presence work is in [`presence`] and [`presence_writes`].

mod presence;
mod presence_writes;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::conn::BusConn;
use super::envelope::Envelope;
use super::keys::Keys;
use crate::actors::messages::{Remote, Tail};
use crate::actors::registry::RoomRegistry;
use crate::config::RedisConfig;
use crate::metrics::Metrics;
use crate::store::{DbPool, rooms};

pub use presence::{LoadPresence, PresenceFact};
pub use presence_writes::Leave;

/// How often every local room is checked against PostgreSQL.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

pub struct Bus {
    node: String,
    keys: Keys,
    config: RedisConfig,
    own_prefix: Vec<u8>,
    conn: Option<BusConn>,
    push: Option<mpsc::UnboundedSender<PushInfo>>,
    connecting: bool,
    backoff: Duration,
    /// Rooms with local members: their channels are subscribed.
    rooms: HashSet<Arc<str>>,
    /// Other nodes seen alive at the last check.
    alive: HashSet<String>,
    presence_ttl: Duration,
    /// Publishes handed to Redis and not yet answered, and who waits for them to finish.
    publishing: usize,
    flushed: Vec<tokio::sync::oneshot::Sender<()>>,
    /// This node's users by room, as its rooms reported them: what Redis should hold for it.
    present: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Facts waiting for Redis, and whether a presence write is running.
    presence_queue: Vec<presence_writes::QueuedFact>,
    presence_writing: bool,
    /// Redis may hold this node's presence wrong (or, at start, a former life's): it is
    /// rewritten whole at the next chance.
    rewrite_due: bool,
    /// A heartbeat is running (a leave waits for it, so that it cannot list the node again).
    beating: bool,
    /// Where this node stands in the cluster: a draining node leaves it before it exits.
    membership: presence_writes::Membership,
    registry: Arc<RoomRegistry>,
    pool: DbPool,
    metrics: Metrics,
}

impl Bus {
    pub fn new(
        node: String,
        config: RedisConfig,
        presence_ttl: Duration,
        registry: Arc<RoomRegistry>,
        pool: DbPool,
        metrics: Metrics,
    ) -> Self {
        Self {
            own_prefix: Envelope::prefix_of(&node),
            keys: Keys::new(&config.key_prefix),
            node,
            config,
            conn: None,
            push: None,
            connecting: false,
            backoff: RECONNECT_MIN,
            rooms: HashSet::new(),
            alive: HashSet::new(),
            presence_ttl,
            publishing: 0,
            flushed: Vec::new(),
            present: HashMap::new(),
            presence_queue: Vec::new(),
            presence_writing: false,
            rewrite_due: true,
            beating: false,
            membership: presence_writes::Membership::Member,
            registry,
            pool,
            metrics,
        }
    }

    fn channels(&self, rooms: impl IntoIterator<Item = Arc<str>>) -> Vec<String> {
        rooms
            .into_iter()
            .map(|r| self.keys.room_channel(&r))
            .collect()
    }

    /// Opens the connection in the background, retrying with backoff until it works.
    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.conn.is_some() || self.connecting {
            return;
        }
        let Some(push) = self.push.clone() else {
            return;
        };
        self.connecting = true;
        let config = self.config.clone();
        let fut = async move { BusConn::connect(&config, push).await };
        ctx.spawn(fut.into_actor(self).map(|result, bus, ctx| {
            bus.connecting = false;
            match result {
                Ok(conn) => {
                    tracing::info!("connected to Redis");
                    bus.backoff = RECONNECT_MIN;
                    bus.conn = Some(conn);
                    bus.on_up(ctx);
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = bus.backoff.as_millis() as u64, "Redis unreachable");
                    bus.metrics.redis_up.set(0);
                    let wait = bus.backoff;
                    bus.backoff = (bus.backoff * 2).min(RECONNECT_MAX);
                    ctx.run_later(wait, Self::connect);
                }
            }
        }));
    }

    /// Redis is (back) up: subscribe everything and rewrite this node's presence (both done by
    /// the rewrite), beat, and catch every room up.
    fn on_up(&mut self, ctx: &mut Context<Self>) {
        self.metrics.redis_up.set(1);
        self.rewrite_due = true;
        self.pump_presence(ctx);
        self.heartbeat(ctx);
        self.sweep(ctx);
    }

    /// A command failed; when Redis went away, the next sweep tick pings until it is back.
    fn on_error(&self, error: &redis::RedisError) {
        if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
            self.metrics.redis_up.set(0);
        }
        tracing::debug!(error = %error, "Redis command failed");
    }

    /// Tells every local room how far PostgreSQL is; rooms behind read what they missed.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let rooms = self.registry.all();
        if rooms.is_empty() {
            return;
        }
        let pool = self.pool.clone();
        let ids: Vec<i64> = rooms.iter().map(|(id, _)| *id).collect();
        let fut = async move { rooms::last_seqs(&pool, &ids).await };
        ctx.spawn(fut.into_actor(self).map(move |result, _, _| match result {
            Ok(tails) => {
                let tails: HashMap<i64, i64> = tails.into_iter().collect();
                for (id, room) in rooms {
                    if let Some(&last_seq) = tails.get(&id) {
                        room.do_send(Tail(last_seq));
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "sweep skipped"),
        }));
    }

    fn route(&mut self, push: PushInfo, ctx: &mut Context<Self>) {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {}
            PushKind::Disconnection => {
                tracing::warn!("Redis connection lost; reconnecting");
                self.metrics.redis_up.set(0);
                // Presence facts may have been lost both ways meanwhile.
                self.rewrite_due = true;
                if self.config.sharded {
                    return; // the cluster client reconnects and resubscribes by itself
                }
                // The manager reconnects on its next command; make one now.
                ctx.run_later(RECONNECT_MIN, Self::ping);
                return;
            }
            PushKind::Subscribe | PushKind::SSubscribe => {
                self.metrics.redis_up.set(1);
                return;
            }
            _ => return,
        }
        let mut data = push.data.into_iter();
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
            (data.next(), data.next())
        else {
            return;
        };
        if payload.starts_with(&self.own_prefix) {
            return; // our own publish; local rooms had it first
        }
        let Ok(channel) = std::str::from_utf8(&channel) else {
            return;
        };
        let Some(room) = self.keys.room_of_channel(channel) else {
            return;
        };
        let Some(addr) = self.registry.get(room) else {
            return;
        };
        match serde_json::from_slice::<Envelope>(&payload) {
            Ok(envelope) => {
                self.metrics.bus_received.inc();
                addr.do_send(Remote(envelope));
            }
            Err(e) => tracing::warn!(error = %e, %room, "unreadable envelope"),
        }
    }

    /// A cheap command that makes the connection notice it is broken and reconnect.
    fn ping(&mut self, ctx: &mut Context<Self>) {
        let Some(mut conn) = self.conn.clone() else {
            return;
        };
        let fut = async move { conn.query::<String>(&redis::cmd("PING")).await };
        ctx.spawn(fut.into_actor(self).map(|result, bus, ctx| match result {
            Ok(_) if bus.metrics.redis_up.get() == 0 => {
                tracing::info!("Redis is back");
                bus.on_up(ctx);
            }
            Ok(_) if bus.rewrite_due => bus.on_up(ctx),
            Ok(_) => {}
            Err(e) => bus.on_error(&e),
        }));
    }
}

impl Actor for Bus {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.push = Some(tx);
        ctx.add_stream(UnboundedReceiverStream::new(rx));
        self.connect(ctx);
        ctx.run_interval(SWEEP_EVERY, |bus, ctx| {
            if bus.conn.is_none() {
                bus.connect(ctx);
            } else if bus.metrics.redis_up.get() == 0 || bus.rewrite_due {
                bus.ping(ctx);
            }
            bus.sweep(ctx);
        });
        let beat = (self.presence_ttl / 3).max(Duration::from_millis(500));
        ctx.run_interval(beat, Self::heartbeat);
    }
}

impl StreamHandler<PushInfo> for Bus {
    fn handle(&mut self, push: PushInfo, ctx: &mut Self::Context) {
        self.route(push, ctx);
    }

    fn finished(&mut self, _: &mut Self::Context) {}
}

/// Room → bus: the room has local members; deliver its channel here. Answered once Redis has
/// confirmed the subscription (or failed to).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Arc<str>);

/// Room → bus: the room has no local members any more.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe(pub Arc<str>);

/// Committer → bus: messages this node committed, serialized once as an envelope.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub room: Arc<str>,
    pub envelope: Vec<u8>,
}

/// Drain → bus: answers once every publish handed over so far has been sent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

impl Bus {
    /// Subscribes or unsubscribes a room's channel, once Redis is there (on reconnect every
    /// room in `rooms` is subscribed again); the future ends when Redis has answered.
    fn set_subscribed(&mut self, room: Arc<str>, subscribed: bool) -> ResponseActFuture<Self, ()> {
        let changed = if subscribed {
            self.rooms.insert(room.clone())
        } else {
            self.rooms.remove(&room)
        };
        let Some(mut conn) = self.conn.clone().filter(|_| changed) else {
            return Box::pin(actix::fut::ready(()));
        };
        let channels = self.channels([room]);
        let fut = async move {
            if subscribed {
                conn.subscribe(&channels).await
            } else {
                conn.unsubscribe(&channels).await
            }
        };
        Box::pin(fut.into_actor(self).map(|result, bus, _| {
            if let Err(e) = result {
                bus.on_error(&e);
            }
        }))
    }
}

impl Handler<Subscribe> for Bus {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, Subscribe(room): Subscribe, _: &mut Self::Context) -> Self::Result {
        self.set_subscribed(room, true)
    }
}

impl Handler<Unsubscribe> for Bus {
    type Result = ();

    fn handle(&mut self, Unsubscribe(room): Unsubscribe, ctx: &mut Self::Context) {
        ctx.spawn(self.set_subscribed(room, false));
    }
}

impl Handler<Publish> for Bus {
    type Result = ();

    fn handle(&mut self, publish: Publish, ctx: &mut Self::Context) {
        // Without Redis the other nodes catch up from PostgreSQL through their sweeps.
        let Some(mut conn) = self.conn.clone() else {
            return;
        };
        let channel = self.keys.room_channel(&publish.room);
        self.publishing += 1;
        let fut = async move { conn.publish(&channel, &publish.envelope).await };
        ctx.spawn(fut.into_actor(self).map(|result, bus, _| {
            bus.publishing -= 1;
            if result.is_ok() {
                bus.metrics.bus_published.inc();
            }
            if bus.publishing == 0 {
                for waiter in bus.flushed.drain(..) {
                    let _ = waiter.send(());
                }
            }
            if let Err(e) = result {
                bus.on_error(&e);
            }
        }));
    }
}

impl Handler<Flush> for Bus {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        if self.publishing == 0 {
            return Box::pin(async {});
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.flushed.push(tx);
        // Publishes end within the response timeout, answered or not.
        Box::pin(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        })
    }
}

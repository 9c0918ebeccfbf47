//! Group commit: connections hand their `send`s to a few commit lanes; each lane stores whatever
//! has queued up in one statement (one transaction, one round trip), answers every sender, and
//! passes the committed messages to their rooms. A room always maps to the same lane, and a lane
//! commits one batch at a time, so a room's messages are committed and handed on in seq order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::Addr;
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::actors::messages::Committed;
use crate::actors::room::Room;
use crate::bus::actor::{Bus, Publish};
use crate::bus::envelope::Envelope;
use crate::config::DatabaseConfig;
use crate::metrics::Metrics;
use crate::protocol::Message;
use crate::protocol::message::now_millis;
use crate::store::StoreError;
use crate::store::commit::{NewMessage, Outcome, commit_batch};

/// Most messages one statement stores.
const MAX_BATCH: usize = 1024;
/// Messages a lane holds before senders are told `unavailable`.
const QUEUE: usize = 16 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// A `send` on its way to the database.
pub struct Pending {
    pub room: Arc<str>,
    pub room_id: i64,
    pub room_addr: Addr<Room>,
    pub user_id: Uuid,
    pub user: Arc<str>,
    pub body: String,
    pub client_msg_id: Option<String>,
    pub reply: oneshot::Sender<Result<Ack, SendError>>,
}

/// What the sender is told once the message is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub id: Uuid,
    pub seq: i64,
    pub ts: DateTime<Utc>,
    /// The message was stored earlier under the same `client_msg_id`.
    pub duplicate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Not stored (database unreachable or overloaded); retry with the same `client_msg_id`.
    #[error("the message was not stored; retry with the same client_msg_id")]
    Unavailable,
    #[error("the room no longer exists")]
    NoRoom,
    #[error("the sender's account does not exist")]
    NoUser,
}

/// The node's commit lanes.
#[derive(Clone)]
pub struct Committer {
    lanes: Arc<[mpsc::Sender<Pending>]>,
    /// Messages submitted and not yet answered and handed on.
    in_flight: Arc<AtomicUsize>,
}

/// The lanes' receiving ends, to be run on the runtime the node chooses ([`Lanes::spawn`]).
pub struct Lanes(Vec<(mpsc::Receiver<Pending>, Lane)>);

impl Lanes {
    /// Runs every lane on the current actix runtime.
    pub fn spawn(self) {
        for (rx, lane) in self.0 {
            actix_rt::spawn(run_lane(rx, lane));
        }
    }
}

impl Committer {
    /// The committer and its lanes, which take messages once spawned; each lane holds its own
    /// connection. With a bus, every committed batch is also published to the other nodes.
    pub fn new(
        database: &DatabaseConfig,
        metrics: &Metrics,
        node: &str,
        bus: Option<Addr<Bus>>,
    ) -> (Self, Lanes) {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (senders, lanes): (Vec<_>, Vec<_>) = (0..database.commit_lanes)
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                let lane = Lane {
                    database: database.clone(),
                    conn: None,
                    metrics: metrics.clone(),
                    node: node.to_owned(),
                    bus: bus.clone(),
                    in_flight: in_flight.clone(),
                };
                (tx, (rx, lane))
            })
            .unzip();
        let committer = Self {
            lanes: senders.into(),
            in_flight,
        };
        (committer, Lanes(lanes))
    }

    /// Waits (at most `limit`) until every message submitted so far is answered and handed on.
    pub async fn flush(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.in_flight.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether every lane still takes messages. A lane stops only if its task dies; from then on
    /// each message for its rooms is refused as `unavailable`.
    pub fn is_running(&self) -> bool {
        self.lanes.iter().all(|lane| !lane.is_closed())
    }

    /// Queues a message; the answer arrives on `pending.reply`.
    pub fn submit(&self, pending: Pending) {
        let lane = usize::try_from(pending.room_id.unsigned_abs()).unwrap_or(0) % self.lanes.len();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.lanes[lane].try_send(pending) {
            let pending = match e {
                mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
            };
            let _ = pending.reply.send(Err(SendError::Unavailable));
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

async fn run_lane(mut rx: mpsc::Receiver<Pending>, mut lane: Lane) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let count = batch.len();
        lane.commit(std::mem::take(&mut batch)).await;
        lane.in_flight.fetch_sub(count, Ordering::AcqRel);
        batch.reserve(MAX_BATCH);
    }
}

struct Lane {
    database: DatabaseConfig,
    conn: Option<AsyncPgConnection>,
    metrics: Metrics,
    node: String,
    bus: Option<Addr<Bus>>,
    in_flight: Arc<AtomicUsize>,
}

impl Lane {
    async fn commit(&mut self, mut batch: Vec<Pending>) {
        let ts = now_millis();
        // A client may resend before its first try was answered: store the message once and
        // answer both.
        let mut first_of: HashMap<(i64, Uuid, &str), usize> = HashMap::new();
        let mut unique = Vec::with_capacity(batch.len());
        let mut slot_of = Vec::with_capacity(batch.len());
        for p in &mut batch {
            if let Some(cmid) = p.client_msg_id.as_deref()
                && let Some(&slot) = first_of.get(&(p.room_id, p.user_id, cmid))
            {
                slot_of.push(slot);
                continue;
            }
            if let Some(cmid) = p.client_msg_id.as_deref() {
                first_of.insert((p.room_id, p.user_id, cmid), unique.len());
            }
            slot_of.push(unique.len());
            unique.push(NewMessage {
                id: Uuid::now_v7(),
                room_id: p.room_id,
                user_id: p.user_id,
                // The body moves here, and on to the delivered message: no copy per send.
                body: std::mem::take(&mut p.body),
                client_msg_id: p.client_msg_id.clone(),
                ts,
            });
        }
        drop(first_of);

        let outcomes = match self.store(&unique).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::warn!(error = %e, messages = batch.len(), "commit failed; senders told unavailable");
                for p in batch {
                    let _ = p.reply.send(Err(SendError::Unavailable));
                }
                return;
            }
        };

        let mut answered = vec![false; unique.len()];
        let mut by_room: HashMap<i64, (Addr<Room>, Vec<Message>)> = HashMap::new();
        let mut stored = 0u64;
        for (p, slot) in batch.into_iter().zip(slot_of) {
            let (id, ts) = (unique[slot].id, unique[slot].ts);
            let answer = match outcomes[slot] {
                Outcome::NoRoom => Err(SendError::NoRoom),
                Outcome::NoUser => Err(SendError::NoUser),
                Outcome::Duplicate { id, seq, ts } => Ok(Ack {
                    id,
                    seq,
                    ts,
                    duplicate: true,
                }),
                Outcome::Stored { seq } if answered[slot] => Ok(Ack {
                    id,
                    seq,
                    ts,
                    duplicate: true,
                }),
                Outcome::Stored { seq } => {
                    stored += 1;
                    let message = Message {
                        id,
                        room: p.room.clone(),
                        seq,
                        user: p.user.clone(),
                        body: std::mem::take(&mut unique[slot].body),
                        ts,
                        client_msg_id: p.client_msg_id,
                    };
                    by_room
                        .entry(p.room_id)
                        .or_insert_with(|| (p.room_addr.clone(), Vec::new()))
                        .1
                        .push(message);
                    Ok(Ack {
                        id,
                        seq,
                        ts,
                        duplicate: false,
                    })
                }
            };
            answered[slot] = true;
            let _ = p.reply.send(answer);
        }
        self.metrics.messages_in.inc_by(stored);
        for (_, (room, messages)) in by_room {
            if let (Some(bus), Some(first)) = (&self.bus, messages.first()) {
                let envelope = Envelope::messages_bytes(&self.node, &first.room, &messages);
                bus.do_send(Publish {
                    room: first.room.clone(),
                    envelope,
                });
            }
            room.do_send(Committed(messages));
        }
    }

    /// Stores the batch, reconnecting when needed and retrying once on a `client_msg_id` race.
    async fn store(&mut self, batch: &[NewMessage]) -> Result<Vec<Outcome>, StoreError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let timer = self.metrics.commit_seconds.start_timer();
            let conn = self.connection().await?;
            let result = tokio::time::timeout(COMMIT_TIMEOUT, commit_batch(conn, batch))
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("commit timed out".into())));
            timer.observe_duration();
            self.metrics
                .commit_batch_messages
                .observe(batch.len() as f64);
            match result {
                Ok(outcomes) => return Ok(outcomes),
                Err(StoreError::Conflict) if attempts < 3 => continue,
                Err(e) => {
                    // Whatever broke, start the next batch on a fresh connection.
                    self.conn = None;
                    return Err(e);
                }
            }
        }
    }

    async fn connection(&mut self) -> Result<&mut AsyncPgConnection, StoreError> {
        if self.conn.is_none() {
            let mut conn = tokio::time::timeout(
                CONNECT_TIMEOUT,
                crate::store::connect::establish(&self.database),
            )
            .await
            .map_err(|_| StoreError::Unavailable("connect timed out".into()))?
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            crate::store::commit::prepare_session(&mut conn).await?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("no connection".into()))
    }
}

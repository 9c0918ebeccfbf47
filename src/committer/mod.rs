//! Group commit: connections hand their `send`s to a few commit lanes; each lane stores whatever
//! has queued up in one statement (one transaction, one round trip), answers every sender, and
//! passes the committed messages to their rooms. A room always maps to the same lane, and a lane
//! commits one batch at a time, so a room's messages are committed and handed on in seq order.

mod batch;
mod lane;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::Addr;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::actors::room::Room;
use crate::bus::actor::Bus;
use crate::config::DatabaseConfig;
use crate::metrics::Metrics;
use lane::Lane;

/// Messages a lane holds before senders are told `unavailable`.
const QUEUE: usize = 16 * 1024;

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
            actix_rt::spawn(lane.run(rx));
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

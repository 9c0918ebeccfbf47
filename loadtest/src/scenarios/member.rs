//! One chat member: a client that joins one room, sends at its planned rate, checks every
//! delivery against its [`SeqTracker`], and — when its connection drops, or on schedule in the
//! reconnect scenario — reconnects to the next node, rejoins with `since`, and resends what was
//! not acknowledged with the same `client_msg_id`s.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::time::{MissedTickBehavior, sleep, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Ws};
use crate::frames::{self, ClientFrame, ServerFrame};
use crate::net::Node;
use crate::stats::Stats;
use crate::verify::{Observation, SeqTracker, Tally};

/// Unacknowledged sends one member keeps in flight when it sends "as fast as acks come back".
const WINDOW: usize = 8;
/// Reconnect attempts after a drop before the member gives up.
const RECONNECT_ATTEMPTS: u32 = 40;
/// Attempts at the first join when the server answers `unavailable`.
const JOIN_ATTEMPTS: u32 = 5;
/// Anomalies each member keeps as examples for the report.
const EXAMPLES: usize = 3;

/// Where the run is; members follow it.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Connecting and joining.
    Setup,
    /// Traffic flows.
    Sending,
    /// No new sends; each member stops once its acks are in and it has every seq up to its
    /// room's final seq.
    Draining(Arc<HashMap<Arc<str>, i64>>),
    /// Give up waiting and report.
    Stop,
}

/// What every member shares.
#[derive(Clone)]
pub struct Shared {
    pub nodes: Arc<Vec<Node>>,
    pub stats: Arc<Stats>,
    pub source_addrs: u8,
    pub phase: watch::Receiver<Phase>,
    /// The highest acked seq per room.
    pub acked_seq: Arc<HashMap<Arc<str>, AtomicI64>>,
    /// Sends not yet acknowledged (or refused), over all members.
    pub in_flight: Arc<AtomicI64>,
    /// Each member says once whether it joined.
    pub ready: mpsc::UnboundedSender<bool>,
}

#[derive(Debug, Clone, Copy)]
pub struct SendPlan {
    /// Messages per second; 0 sends whenever fewer than [`WINDOW`] are unacknowledged.
    pub rate: f64,
    /// Stop after this many messages.
    pub limit: Option<u64>,
    pub body_bytes: usize,
}

pub struct Plan {
    pub id: usize,
    pub token: String,
    pub room: Arc<str>,
    /// Index of the node to connect to first.
    pub node: usize,
    pub send: Option<SendPlan>,
    /// Mean seconds between scheduled drops.
    pub reconnect_every: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub joined: bool,
    pub tally: Tally,
    /// Sends never acknowledged nor refused.
    pub unacked: u64,
    pub examples: Vec<String>,
}

struct Member {
    plan: Plan,
    shared: Shared,
    node: usize,
    tracker: SeqTracker,
    /// Message number → (when first sent, the body's timestamp).
    pending: BTreeMap<u64, (Instant, u64)>,
    retry: VecDeque<u64>,
    next_n: u64,
    /// A rejoin in progress: when the drop happened and the seq that means caught up.
    catching_up: Option<(Instant, i64)>,
    rng: u64,
    examples: Vec<String>,
}

/// Runs one member to the end of the run.
pub async fn run(plan: Plan, shared: Shared) -> Outcome {
    // A join answered `unavailable` (the server is busy) is retried, as a client should.
    let mut attempts = 0;
    let (ws, start) = loop {
        attempts += 1;
        match connect_and_join(&plan, &shared, plan.node, None).await {
            Ok(joined) => break joined,
            Err(code) => {
                let retry = code.ends_with("unavailable") && attempts < JOIN_ATTEMPTS;
                shared.stats.error(code);
                if !retry {
                    let _ = shared.ready.send(false);
                    return Outcome::default();
                }
                sleep(Duration::from_millis(200 * u64::from(attempts))).await;
            }
        }
    };
    let _ = shared.ready.send(true);
    let rng = (plan.id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let member = Member {
        node: plan.node,
        shared,
        tracker: SeqTracker::new(start),
        pending: BTreeMap::new(),
        retry: VecDeque::new(),
        next_n: 0,
        catching_up: None,
        rng,
        examples: Vec::new(),
        plan,
    };
    member.run(ws).await
}

/// Connects to `nodes[node]` and joins the member's room; the error is a code for the table.
async fn connect_and_join(
    plan: &Plan,
    shared: &Shared,
    node: usize,
    since: Option<i64>,
) -> Result<(Ws, i64), String> {
    let node_ref = &shared.nodes[node % shared.nodes.len()];
    let (mut ws, took) = client::connect(node_ref, &plan.token, plan.id, shared.source_addrs)
        .await
        .map_err(|e| e.code)?;
    shared.stats.connected(plan.id, took);
    let joined = tokio::time::timeout(
        Duration::from_secs(30),
        client::join(&mut ws, &plan.room, since, |frame| {
            if frame.kind == "message" {
                shared.stats.error("message before joined");
            }
        }),
    )
    .await;
    match joined {
        Ok(Ok(last_seq)) => Ok((ws, last_seq)),
        Ok(Err(e)) => {
            shared.stats.disconnected();
            Err(format!("join: {e}"))
        }
        Err(_) => {
            shared.stats.disconnected();
            Err("join: timeout".into())
        }
    }
}

impl Member {
    async fn run(mut self, mut ws: Ws) -> Outcome {
        let mut phase_rx = self.shared.phase.clone();
        while matches!(*phase_rx.borrow_and_update(), Phase::Setup) {
            if phase_rx.changed().await.is_err() {
                break;
            }
        }
        let send = self.plan.send;
        let period = send
            .filter(|s| s.rate > 0.0)
            .map(|s| Duration::from_secs_f64(1.0 / s.rate));
        // Members start at spread-out offsets within one period, so sends do not come in waves.
        let offset = period.map_or(Duration::ZERO, |p| p.mul_f64(self.random()));
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + offset,
            period.unwrap_or(Duration::from_secs(3600)),
        );
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut reconnect_at = self.next_reconnect();

        loop {
            let phase = phase_rx.borrow_and_update().clone();
            let sending = matches!(phase, Phase::Sending);
            match &phase {
                Phase::Stop => break,
                Phase::Draining(targets) => {
                    // Empty targets: the final seqs are still being read.
                    if let Some(&target) = targets.get(&self.plan.room)
                        && self.pending.is_empty()
                        && self.tracker.caught_up(target)
                    {
                        break;
                    }
                }
                _ => {}
            }
            let may_send = sending && send.is_some_and(|s| self.may_send(s));
            let windowed = may_send && period.is_none() && self.pending.len() < WINDOW;
            let resend = !self.retry.is_empty() && !matches!(phase, Phase::Stop);
            tokio::select! {
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()),
                    Some(Ok(Message::Close(close))) => {
                        let code = close.map_or(1005, |f| u16::from(f.code));
                        self.shared.stats.error(format!("close {code}"));
                        self.shared.stats.disconnected();
                        match self.reconnect(Instant::now(), &phase_rx).await {
                            Some(new) => ws = new,
                            None => return self.outcome(&phase_rx),
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        self.shared.stats.error("connection lost");
                        self.shared.stats.disconnected();
                        match self.reconnect(Instant::now(), &phase_rx).await {
                            Some(new) => ws = new,
                            None => return self.outcome(&phase_rx),
                        }
                    }
                },
                _ = ticker.tick(), if may_send && period.is_some() => {
                    if self.send_next(&mut ws, send).await.is_err() {
                        // The read side sees the broken connection next.
                    }
                }
                () = std::future::ready(()), if windowed => {
                    let _ = self.send_next(&mut ws, send).await;
                }
                () = sleep(Duration::from_millis(100)), if resend => {
                    let _ = self.resend_retries(&mut ws, send).await;
                }
                () = sleep_until(reconnect_at), if sending && self.plan.reconnect_every.is_some() => {
                    drop(ws);
                    self.shared.stats.disconnected();
                    match self.reconnect(Instant::now(), &phase_rx).await {
                        Some(new) => ws = new,
                        None => return self.outcome(&phase_rx),
                    }
                    reconnect_at = self.next_reconnect();
                }
                changed = phase_rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        self.shared.stats.disconnected();
        drop(ws);
        self.outcome(&phase_rx)
    }

    fn outcome(&self, phase_rx: &watch::Receiver<Phase>) -> Outcome {
        let target = match &*phase_rx.borrow() {
            Phase::Draining(targets) => targets.get(&self.plan.room).copied(),
            _ => None,
        }
        .unwrap_or_else(|| self.tracker.last());
        let unacked = self.pending.len() as u64;
        let mut examples = self.examples.clone();
        let tally = self.tracker.finish(target);
        if tally.lost > 0 && examples.len() < EXAMPLES {
            examples.push(format!(
                "client {} room {}: {} lost (last seq seen {}, room's final seq {target})",
                self.plan.id,
                self.plan.room,
                tally.lost,
                self.tracker.last()
            ));
        }
        Outcome {
            joined: true,
            tally,
            unacked,
            examples,
        }
    }

    fn may_send(&self, send: SendPlan) -> bool {
        send.limit.is_none_or(|limit| self.next_n < limit)
    }

    fn random(&mut self) -> f64 {
        // xorshift64*: enough to spread timers.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn next_reconnect(&mut self) -> tokio::time::Instant {
        let mean = self.plan.reconnect_every.unwrap_or(3600.0);
        // Uniform in [0.5, 1.5) × mean: regular enough to plan, spread enough not to align.
        let secs = mean * (0.5 + self.random());
        tokio::time::Instant::now() + Duration::from_secs_f64(secs)
    }

    async fn send_next(&mut self, ws: &mut Ws, send: Option<SendPlan>) -> anyhow::Result<()> {
        let Some(send) = send else { return Ok(()) };
        let n = self.next_n;
        self.next_n += 1;
        let nanos = frames::unix_nanos();
        self.pending.insert(n, (Instant::now(), nanos));
        self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
        self.shared.stats.sent(self.plan.id);
        self.write_send(ws, n, nanos, send.body_bytes).await
    }

    async fn write_send(&self, ws: &mut Ws, n: u64, nanos: u64, size: usize) -> anyhow::Result<()> {
        let node = self.node % self.shared.nodes.len();
        let body = frames::body(nanos, self.plan.id, n, node, size);
        let id = frames::client_msg_id(self.plan.id, n);
        let frame = ClientFrame::Send {
            room: &self.plan.room,
            body: &body,
            client_msg_id: &id,
            reference: &id,
        };
        client::send(ws, &frame).await
    }

    /// Sends again what the server answered `unavailable` to (same id and body).
    async fn resend_retries(&mut self, ws: &mut Ws, send: Option<SendPlan>) -> anyhow::Result<()> {
        let size = send.map_or(0, |s| s.body_bytes);
        while let Some(n) = self.retry.pop_front() {
            if let Some(&(_, nanos)) = self.pending.get(&n) {
                self.write_send(ws, n, nanos, size).await?;
            }
        }
        Ok(())
    }

    fn on_text(&mut self, text: &str) {
        let Some(frame) = ServerFrame::parse(text) else {
            self.shared.stats.error("frame not JSON");
            return;
        };
        match frame.kind.as_ref() {
            "message" => {
                if frame.room.as_deref() != Some(&*self.plan.room) {
                    self.shared.stats.error("message for another room");
                    return;
                }
                let Some(seq) = frame.seq else {
                    self.shared.stats.error("message without seq");
                    return;
                };
                let body = frame.body.as_deref();
                let latency = body
                    .and_then(frames::sent_at)
                    .map(|t| Duration::from_nanos(frames::unix_nanos().saturating_sub(t)));
                let here = self.node % self.shared.nodes.len();
                let cross_node = body.and_then(frames::sent_via).is_some_and(|h| h != here);
                self.shared
                    .stats
                    .delivered(self.plan.id, latency, cross_node);
                let observation = self.tracker.observe(seq);
                if observation != Observation::InOrder && self.examples.len() < EXAMPLES {
                    self.examples.push(format!(
                        "client {} room {}: seq {seq} was {observation:?}",
                        self.plan.id, self.plan.room
                    ));
                }
                if let Some((dropped, target)) = self.catching_up
                    && self.tracker.caught_up(target)
                {
                    self.shared.stats.rejoined(self.plan.id, dropped.elapsed());
                    self.catching_up = None;
                }
            }
            "ack" => {
                let n = frame
                    .client_msg_id
                    .as_deref()
                    .and_then(frames::message_number);
                let Some((sent, _)) = n.and_then(|n| self.pending.remove(&n)) else {
                    // A second ack for a resent message, or one for another id.
                    return;
                };
                self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
                self.shared.stats.acked(self.plan.id, sent.elapsed());
                if let (Some(seq), Some(max)) =
                    (frame.seq, self.shared.acked_seq.get(&self.plan.room))
                {
                    max.fetch_max(seq, Ordering::Relaxed);
                }
            }
            "error" => {
                let code = frame.code.as_deref().unwrap_or("error");
                self.shared.stats.error(code.to_owned());
                let n = frame.reference.as_deref().and_then(frames::message_number);
                let Some(n) = n.filter(|n| self.pending.contains_key(n)) else {
                    return;
                };
                if code == "unavailable" {
                    // Not stored: retry with the same client_msg_id.
                    self.retry.push_back(n);
                } else {
                    // Refused for good (rate_limited, too_large, …): nothing was stored.
                    self.pending.remove(&n);
                    self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }

    /// Reconnects to the next node, rejoins with `since`, and resends unacknowledged messages.
    /// `None` when the run ended or every attempt failed.
    async fn reconnect(
        &mut self,
        dropped: Instant,
        phase_rx: &watch::Receiver<Phase>,
    ) -> Option<Ws> {
        let mut backoff = Duration::from_millis(50);
        for _ in 0..RECONNECT_ATTEMPTS {
            if matches!(*phase_rx.borrow(), Phase::Stop) {
                return None;
            }
            self.node = (self.node + 1) % self.shared.nodes.len();
            let since = Some(self.tracker.last());
            match connect_and_join(&self.plan, &self.shared, self.node, since).await {
                Ok((mut ws, last_seq)) => {
                    if self.tracker.caught_up(last_seq) {
                        self.shared.stats.rejoined(self.plan.id, dropped.elapsed());
                    } else {
                        self.catching_up = Some((dropped, last_seq));
                    }
                    let size = self.plan.send.map_or(0, |s| s.body_bytes);
                    let pending: Vec<(u64, u64)> = self
                        .pending
                        .iter()
                        .map(|(n, (_, nanos))| (*n, *nanos))
                        .collect();
                    self.retry.clear();
                    for (n, nanos) in pending {
                        if self.write_send(&mut ws, n, nanos, size).await.is_err() {
                            break;
                        }
                    }
                    return Some(ws);
                }
                Err(code) => {
                    self.shared.stats.error(format!("reconnect: {code}"));
                    sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        None
    }
}

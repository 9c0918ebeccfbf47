//! The scenarios and what they share: the run's context (nodes, APIs, stats, progress), the
//! coordinator that starts members, lets traffic flow, drains and collects their verdicts, and
//! the probe that reads each room's final seq.

pub mod burst;
pub mod capacity;
pub mod fanout;
pub mod member;
pub mod reconnect;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::cli::Common;
use crate::client;
use crate::metrics::{self, Sample};
use crate::net::Node;
use crate::progress::Progress;
use crate::report::{Clients, Report, ServerNode};
use crate::setup::Api;
use crate::stats::Stats;
use crate::verify::Tally;
use member::{Phase, Plan, Shared};

/// Rooms one probe connection joins (the server allows 100 per connection by default).
const PROBE_ROOMS_PER_CONNECTION: usize = 90;

/// Everything a scenario runs with.
pub struct Run {
    pub common: Common,
    pub nodes: Arc<Vec<Node>>,
    pub apis: Vec<Api>,
    pub stats: Arc<Stats>,
    pub progress: Progress,
    pub room_prefix: String,
    pub started: Instant,
}

impl Run {
    /// The API of the first node: set-up goes there.
    pub fn api(&self) -> &Api {
        &self.apis[0]
    }

    /// One `/metrics` reading of every node.
    pub async fn sample_nodes(&self) -> Vec<Option<Sample>> {
        let at = self.started.elapsed().as_secs_f64();
        let mut samples = Vec::with_capacity(self.apis.len());
        for (i, api) in self.apis.iter().enumerate() {
            let mut sample = metrics::sample(api, at).await;
            if let (Some(s), Some(&pid)) = (sample.as_mut(), self.common.server_pids.get(i))
                && let Some((rss, cpu)) = metrics::proc_reading(pid)
            {
                s.resident_bytes = rss;
                s.cpu_seconds = cpu;
            }
            samples.push(sample);
        }
        samples
    }

    pub fn server_nodes(
        &self,
        before: Vec<Option<Sample>>,
        after: Vec<Option<Sample>>,
    ) -> Vec<ServerNode> {
        self.nodes
            .iter()
            .zip(before)
            .zip(after)
            .map(|((node, before), after)| ServerNode {
                url: node.base.clone(),
                before,
                after,
                per_connection: None,
                timeline: Vec::new(),
            })
            .collect()
    }
}

/// When members stop sending.
pub enum StopSending {
    /// After this much traffic.
    After(Duration),
    /// Once `total` messages were sent and answered, or after `timeout`.
    WhenSent { total: u64, timeout: Duration },
}

impl Run {
    /// The report of a scenario whose members sent and received (`fanout`, `burst`).
    pub fn traffic_report(
        &self,
        scenario: &str,
        parameters: serde_json::Value,
        outcome: MembersOutcome,
        before: Vec<Option<Sample>>,
        after: Vec<Option<Sample>>,
    ) -> Report {
        Report {
            scenario: scenario.into(),
            parameters,
            nodes: self.nodes.iter().map(|n| n.base.clone()).collect(),
            traffic_secs: outcome.traffic_secs,
            settle_secs: outcome.settle_secs,
            wall_secs: self.started.elapsed().as_secs_f64(),
            clients: outcome.clients,
            delivery: Some(outcome.tally),
            unacked: outcome.unacked,
            anomalies: outcome.anomalies,
            stats: self.stats.snapshot(),
            server: self.server_nodes(before, after),
            failures: Vec::new(),
            passed: false,
        }
    }
}

/// What the members saw, summed.
pub struct MembersOutcome {
    pub clients: Clients,
    pub tally: Tally,
    pub unacked: u64,
    pub anomalies: Vec<String>,
    pub traffic_secs: f64,
    /// From the start of traffic until every member had everything; `None` when the drain
    /// timed out.
    pub settle_secs: Option<f64>,
}

/// Starts the members at the connect rate, lets traffic flow, drains, and collects verdicts.
/// `probe_token` is any valid token: it reads the rooms' final seqs.
pub async fn run_members(
    run: &Run,
    plans: Vec<Plan>,
    rooms: &[Arc<str>],
    stop: StopSending,
    probe_token: &str,
) -> MembersOutcome {
    let planned = plans.len();
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let acked_seq: Arc<HashMap<Arc<str>, AtomicI64>> = Arc::new(
        rooms
            .iter()
            .map(|r| (r.clone(), AtomicI64::new(0)))
            .collect(),
    );
    let shared = Shared {
        nodes: run.nodes.clone(),
        stats: run.stats.clone(),
        source_addrs: run.common.source_addrs,
        phase: phase_rx,
        acked_seq: acked_seq.clone(),
        in_flight: Arc::new(AtomicI64::new(0)),
        ready: ready_tx,
    };

    // Set-up: spawn at the connect rate; wait until every member has joined or failed.
    run.progress.phase("connect", planned as u64);
    let mut pacer = tokio::time::interval(Duration::from_secs_f64(
        1.0 / run.common.connect_rate.max(1.0),
    ));
    let mut handles = Vec::with_capacity(planned);
    let mut ready = 0u64;
    let mut answered = 0usize;
    for plan in plans {
        pacer.tick().await;
        handles.push(tokio::spawn(member::run(plan, shared.clone())));
        while let Ok(ok) = ready_rx.try_recv() {
            answered += 1;
            ready += u64::from(ok);
            run.progress.set(answered as u64);
        }
    }
    let in_flight = shared.in_flight.clone();
    drop(shared);
    while answered < planned {
        match ready_rx.recv().await {
            Some(ok) => {
                answered += 1;
                ready += u64::from(ok);
                run.progress.set(answered as u64);
            }
            None => break,
        }
    }

    // Traffic.
    let traffic_started = Instant::now();
    let _ = phase_tx.send(Phase::Sending);
    match stop {
        StopSending::After(duration) => {
            run.progress.phase("traffic", duration.as_secs().max(1));
            while traffic_started.elapsed() < duration {
                tokio::time::sleep(
                    Duration::from_millis(250)
                        .min(duration.saturating_sub(traffic_started.elapsed())),
                )
                .await;
                run.progress.set(traffic_started.elapsed().as_secs());
            }
        }
        StopSending::WhenSent { total, timeout } => {
            run.progress.phase("burst", total);
            loop {
                let sent = crate::stats::Live::get(&run.stats.live.sent);
                run.progress.set(sent);
                let answered_all = sent >= total && in_flight.load(Ordering::Relaxed) <= 0;
                if answered_all || traffic_started.elapsed() > timeout {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let traffic_secs = traffic_started.elapsed().as_secs_f64();

    // Drain: no new sends; wait for acks, read the rooms' final seqs, wait for deliveries.
    let drain = Duration::from_secs_f64(run.common.drain_secs.max(0.0));
    let deadline = Instant::now() + drain;
    let _ = phase_tx.send(Phase::Draining(Arc::new(HashMap::new())));
    run.progress.phase("drain", drain.as_secs().max(1));
    while in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut targets: HashMap<Arc<str>, i64> = acked_seq
        .iter()
        .map(|(room, seq)| (room.clone(), seq.load(Ordering::Relaxed)))
        .collect();
    match probe_last_seqs(run, probe_token, rooms).await {
        Ok(last) => {
            for (room, seq) in last {
                let target = targets.entry(room).or_insert(0);
                *target = (*target).max(seq);
            }
        }
        Err(e) => {
            eprintln!("bosar-loadtest: reading the rooms' final seqs: {e:#}; using the acked seqs");
            run.stats.error("probe failed");
        }
    }
    let _ = phase_tx.send(Phase::Draining(Arc::new(targets)));
    let mut tally = Tally::default();
    let mut unacked = 0;
    let mut anomalies = Vec::new();
    let mut remaining = Vec::with_capacity(handles.len());
    for handle in handles {
        let left = deadline.saturating_duration_since(Instant::now());
        run.progress.set(drain.saturating_sub(left).as_secs());
        let mut handle = handle;
        match tokio::time::timeout(left, &mut handle).await {
            Ok(result) => collect(result, &mut tally, &mut unacked, &mut anomalies),
            Err(_) => remaining.push(handle),
        }
    }
    let settle_secs = remaining
        .is_empty()
        .then(|| traffic_started.elapsed().as_secs_f64());
    // Whoever is still waiting gives up now and reports what it has.
    let _ = phase_tx.send(Phase::Stop);
    for handle in remaining {
        collect(handle.await, &mut tally, &mut unacked, &mut anomalies);
    }
    MembersOutcome {
        clients: Clients {
            planned: planned as u64,
            ready,
            failed: planned as u64 - ready,
        },
        tally,
        unacked,
        anomalies,
        traffic_secs,
        settle_secs,
    }
}

fn collect(
    result: Result<member::Outcome, tokio::task::JoinError>,
    tally: &mut Tally,
    unacked: &mut u64,
    anomalies: &mut Vec<String>,
) {
    match result {
        Ok(outcome) => {
            if outcome.joined {
                tally.add(&outcome.tally);
            }
            *unacked += outcome.unacked;
            for example in outcome.examples {
                if anomalies.len() < 20 {
                    anomalies.push(example);
                }
            }
        }
        Err(e) => anomalies.push(format!("a client task failed: {e}")),
    }
}

/// Each room's `last_seq`, read by joining it from fresh connections to the first node.
async fn probe_last_seqs(
    run: &Run,
    token: &str,
    rooms: &[Arc<str>],
) -> anyhow::Result<Vec<(Arc<str>, i64)>> {
    let mut out = Vec::with_capacity(rooms.len());
    for chunk in rooms.chunks(PROBE_ROOMS_PER_CONNECTION) {
        let (mut ws, _) = client::connect(
            &run.nodes[0],
            token,
            usize::MAX / 2,
            run.common.source_addrs,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        for room in chunk {
            let last = client::join(&mut ws, room, None, |_| {}).await?;
            out.push((room.clone(), last));
        }
    }
    Ok(out)
}

/// The rooms of this run, created through the API.
pub async fn create_rooms(run: &Run, token: &str, count: usize) -> anyhow::Result<Vec<Arc<str>>> {
    let names = crate::setup::rooms(run.api(), token, &run.room_prefix, count).await?;
    Ok(names.into_iter().map(Arc::from).collect())
}

//! The harness's own measurements: latency histograms (HDR, microseconds), per-second
//! throughput and latency, connection set-up times, and errors by code. Clients record into one
//! of a few mutex-guarded shards (so that thousands of tasks rarely contend); live counters are
//! atomics that the progress line reads.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

const SHARDS: usize = 4;
/// Latencies are recorded in microseconds, up to an hour, with 3 significant figures.
const MAX_MICROS: u64 = 3_600_000_000;

fn histogram(sigfig: u8) -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, MAX_MICROS, sigfig).unwrap_or_else(|_| unreachable!())
}

/// Counters that the progress line reads while the run goes on.
#[derive(Debug, Default)]
pub struct Live {
    pub connected: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
    pub reconnects: AtomicU64,
}

impl Live {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// What one second of the run saw.
struct Second {
    sent: u64,
    acked: u64,
    delivered: u64,
    deliver_latency: Histogram<u64>,
}

impl Second {
    fn new() -> Self {
        Self {
            sent: 0,
            acked: 0,
            delivered: 0,
            deliver_latency: histogram(2),
        }
    }
}

struct Shard {
    deliver: Histogram<u64>,
    /// Deliveries whose sender was connected to another node than the receiver.
    cross_node: Histogram<u64>,
    ack: Histogram<u64>,
    connect: Histogram<u64>,
    rejoin: Histogram<u64>,
    seconds: Vec<Second>,
}

impl Shard {
    fn new() -> Self {
        Self {
            deliver: histogram(3),
            cross_node: histogram(3),
            ack: histogram(3),
            connect: histogram(3),
            rejoin: histogram(3),
            seconds: Vec::new(),
        }
    }

    fn second(&mut self, index: usize) -> &mut Second {
        while self.seconds.len() <= index {
            self.seconds.push(Second::new());
        }
        &mut self.seconds[index]
    }
}

pub struct Stats {
    started: Instant,
    shards: Vec<Mutex<Shard>>,
    errors: Mutex<BTreeMap<String, u64>>,
    pub live: Live,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Stats {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            errors: Mutex::new(BTreeMap::new()),
            live: Live::default(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn shard(&self, client: usize) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[client % SHARDS]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_second(&self) -> usize {
        usize::try_from(self.started.elapsed().as_secs()).unwrap_or(usize::MAX)
    }

    pub fn sent(&self, client: usize) {
        self.live.sent.fetch_add(1, Ordering::Relaxed);
        let second = self.now_second();
        self.shard(client).second(second).sent += 1;
    }

    pub fn acked(&self, client: usize, latency: Duration) {
        self.live.acked.fetch_add(1, Ordering::Relaxed);
        let second = self.now_second();
        let mut shard = self.shard(client);
        shard.ack.saturating_record(micros(latency));
        shard.second(second).acked += 1;
    }

    /// One delivery; `latency` when the body carried a timestamp of ours, `cross_node` when its
    /// sender was connected to another node.
    pub fn delivered(&self, client: usize, latency: Option<Duration>, cross_node: bool) {
        self.live.delivered.fetch_add(1, Ordering::Relaxed);
        let second = self.now_second();
        let mut shard = self.shard(client);
        if let Some(latency) = latency {
            shard.deliver.saturating_record(micros(latency));
            if cross_node {
                shard.cross_node.saturating_record(micros(latency));
            }
            shard
                .second(second)
                .deliver_latency
                .saturating_record(micros(latency));
        }
        shard.second(second).delivered += 1;
    }

    /// Time from starting to connect to the `welcome` frame.
    pub fn connected(&self, client: usize, setup: Duration) {
        self.live.connected.fetch_add(1, Ordering::Relaxed);
        self.shard(client).connect.saturating_record(micros(setup));
    }

    pub fn disconnected(&self) {
        self.live.connected.fetch_sub(1, Ordering::Relaxed);
    }

    /// Time from a drop to being caught up again on another node.
    pub fn rejoined(&self, client: usize, took: Duration) {
        self.live.reconnects.fetch_add(1, Ordering::Relaxed);
        self.shard(client).rejoin.saturating_record(micros(took));
    }

    /// An error by code: error-frame codes as they are, others as `connect: …`, `close 4008`.
    pub fn error(&self, code: impl Into<String>) {
        self.live.errors.fetch_add(1, Ordering::Relaxed);
        let mut errors = self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *errors.entry(code.into()).or_insert(0) += 1;
    }

    /// Everything recorded, merged.
    pub fn snapshot(&self) -> Snapshot {
        let mut merged = Shard::new();
        for shard in &self.shards {
            let shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Same bounds everywhere, so adding cannot fail.
            let _ = merged.deliver.add(&shard.deliver);
            let _ = merged.cross_node.add(&shard.cross_node);
            let _ = merged.ack.add(&shard.ack);
            let _ = merged.connect.add(&shard.connect);
            let _ = merged.rejoin.add(&shard.rejoin);
            for (i, second) in shard.seconds.iter().enumerate() {
                let into = merged.second(i);
                into.sent += second.sent;
                into.acked += second.acked;
                into.delivered += second.delivered;
                let _ = into.deliver_latency.add(&second.deliver_latency);
            }
        }
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Snapshot {
            deliver: Percentiles::of(&merged.deliver),
            cross_node: Percentiles::of(&merged.cross_node),
            ack: Percentiles::of(&merged.ack),
            connect: Percentiles::of(&merged.connect),
            rejoin: Percentiles::of(&merged.rejoin),
            seconds: merged
                .seconds
                .iter()
                .enumerate()
                .map(|(i, s)| SecondPoint {
                    second: i as u64,
                    sent: s.sent,
                    acked: s.acked,
                    delivered: s.delivered,
                    p50_ms: ms(s.deliver_latency.value_at_quantile(0.5)),
                    p99_ms: ms(s.deliver_latency.value_at_quantile(0.99)),
                    max_ms: ms(s.deliver_latency.max()),
                })
                .collect(),
            errors,
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// A latency distribution in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SecondPoint {
    pub second: u64,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub deliver: Percentiles,
    /// The part of `deliver` that crossed nodes (empty with one node).
    pub cross_node: Percentiles,
    pub ack: Percentiles,
    pub connect: Percentiles,
    pub rejoin: Percentiles,
    pub seconds: Vec<SecondPoint>,
    pub errors: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_merge_across_shards_into_percentiles_and_seconds() {
        let stats = Stats::new();
        for client in 0..8 {
            stats.sent(client);
            stats.acked(client, Duration::from_millis(2));
            stats.delivered(
                client,
                Some(Duration::from_millis(client as u64 + 1)),
                client % 2 == 1,
            );
        }
        stats.delivered(0, None, false);
        stats.error("rate_limited");
        stats.error("rate_limited");
        let snap = stats.snapshot();
        assert_eq!(snap.deliver.count, 8);
        assert_eq!(snap.cross_node.count, 4);
        assert!((snap.cross_node.max_ms - 8.0).abs() < 0.01);
        assert!((snap.ack.p50_ms - 2.0).abs() < 0.01);
        assert!((snap.deliver.max_ms - 8.0).abs() < 0.01);
        assert_eq!(snap.seconds[0].delivered, 9);
        assert_eq!(snap.seconds[0].sent, 8);
        assert_eq!(snap.errors["rate_limited"], 2);
    }
}

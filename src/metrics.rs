//! Prometheus metrics of one node: connections, rooms, messages, delivery latency, the database
//! pool, Redis, and the process's own memory and CPU. Each node owns its registry, so several
//! nodes in one test process never mix their numbers.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The metrics of one node. Cheap to clone: every field is a shared handle.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections: IntGauge,
    /// Room actors alive on this node.
    pub rooms: IntGauge,
    /// Messages accepted from clients on this node.
    pub messages_in: IntCounter,
    /// Message frames delivered to connections on this node.
    pub messages_out: IntCounter,
    /// Time from a message's commit timestamp to its hand-over to a local connection.
    pub delivery_latency: Histogram,
    /// Database pool: configured size, idle connections, callers waiting.
    pub db_pool_size: IntGauge,
    pub db_pool_available: IntGauge,
    pub db_pool_waiting: IntGauge,
    /// 1 while this node's Redis link is up, 0 when down or disabled.
    pub redis_up: IntGauge,
    /// Envelopes this node published, and other nodes' envelopes it received.
    pub bus_published: IntCounter,
    pub bus_received: IntCounter,
    /// Messages rooms read from PostgreSQL to fill gaps or catch up.
    pub catch_up_messages: IntCounter,
    /// Group commit: how long each batch's statement took, and how many messages it held.
    pub commit_seconds: Histogram,
    pub commit_batch_messages: Histogram,
}

impl Metrics {
    pub fn new(node_id: &str) -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("bosar".into()), None)?;
        let delivery_buckets = prometheus::exponential_buckets(0.000_05, 2.0, 16)?;
        let metrics = Self {
            connections: IntGauge::new("connections", "Open WebSocket connections")?,
            rooms: IntGauge::new("rooms", "Room actors alive on this node")?,
            messages_in: IntCounter::new("messages_in_total", "Messages accepted from clients")?,
            messages_out: IntCounter::new(
                "messages_out_total",
                "Message frames delivered to local connections",
            )?,
            delivery_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "delivery_latency_seconds",
                    "From a message's commit to its hand-over to a local connection",
                )
                .buckets(delivery_buckets),
            )?,
            db_pool_size: IntGauge::new("db_pool_size", "Database pool: configured size")?,
            db_pool_available: IntGauge::new(
                "db_pool_available",
                "Database pool: idle connections",
            )?,
            db_pool_waiting: IntGauge::new("db_pool_waiting", "Database pool: callers waiting")?,
            redis_up: IntGauge::new("redis_up", "1 while the Redis link is up")?,
            bus_published: IntCounter::new("bus_published_total", "Envelopes published to Redis")?,
            bus_received: IntCounter::new(
                "bus_received_total",
                "Envelopes from other nodes received from Redis",
            )?,
            catch_up_messages: IntCounter::new(
                "catch_up_messages_total",
                "Messages read from PostgreSQL to fill delivery gaps",
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "commit_seconds",
                    "Group commit: one batch's statement (getting the connection included)",
                )
                .buckets(prometheus::exponential_buckets(0.000_25, 2.0, 14)?),
            )?,
            commit_batch_messages: Histogram::with_opts(
                HistogramOpts::new("commit_batch_messages", "Group commit: messages per batch")
                    .buckets(prometheus::exponential_buckets(1.0, 2.0, 11)?),
            )?,
            registry,
        };
        let info = IntGaugeVec::new(
            Opts::new("node_info", "This node's id and version"),
            &["node", "version"],
        )?;
        info.with_label_values(&[node_id, env!("CARGO_PKG_VERSION")])
            .set(1);
        let r = &metrics.registry;
        r.register(Box::new(info))?;
        r.register(Box::new(metrics.connections.clone()))?;
        r.register(Box::new(metrics.rooms.clone()))?;
        r.register(Box::new(metrics.messages_in.clone()))?;
        r.register(Box::new(metrics.messages_out.clone()))?;
        r.register(Box::new(metrics.delivery_latency.clone()))?;
        r.register(Box::new(metrics.db_pool_size.clone()))?;
        r.register(Box::new(metrics.db_pool_available.clone()))?;
        r.register(Box::new(metrics.db_pool_waiting.clone()))?;
        r.register(Box::new(metrics.redis_up.clone()))?;
        r.register(Box::new(metrics.bus_published.clone()))?;
        r.register(Box::new(metrics.bus_received.clone()))?;
        r.register(Box::new(metrics.catch_up_messages.clone()))?;
        r.register(Box::new(metrics.commit_seconds.clone()))?;
        r.register(Box::new(metrics.commit_batch_messages.clone()))?;
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(metrics)
    }

    /// Adds a collector owned elsewhere (e.g. the indexer's) to this node's registry.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// The Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut buffer = Vec::with_capacity(8 * 1024);
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

//! What every request handler and actor of one node shares: configuration, the database pool,
//! the Redis link, metrics, the embedder, and the draining flag; and the node's own actors (bus,
//! commit lanes), which the first HTTP worker starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::dev::channel::{self, AddressReceiver};
use actix::{Addr, Context};

use crate::actors::connection::Connections;
use crate::actors::registry::RoomRegistry;
use crate::auth::JwtKeys;
use crate::auth::hasher::Hasher;
use crate::bus::RedisLink;
use crate::bus::actor::Bus;
use crate::committer::{Committer, Lanes};
use crate::config::Config;
use crate::embed::{self, Embedder};
use crate::metrics::Metrics;
use crate::store::DbPool;

/// The bus's mailbox capacity (actix's default for an actor's mailbox).
const BUS_MAILBOX: usize = 16;

pub struct AppState {
    pub config: Config,
    pub pool: DbPool,
    pub redis: Option<Arc<RedisLink>>,
    pub metrics: Metrics,
    pub jwt: JwtKeys,
    /// Argon2 runs here, off the async threads, a few at a time.
    pub hasher: Hasher,
    pub committer: Committer,
    pub registry: Arc<RoomRegistry>,
    /// The node's bridge to Redis; `None` in single-node mode.
    pub bus: Option<Addr<Bus>>,
    /// Every open WebSocket connection, for draining.
    pub connections: Connections,
    /// Turns search queries into vectors; `None` when `EMBEDDINGS_PROVIDER=off`.
    pub embedder: Option<Arc<dyn Embedder>>,
    draining: AtomicBool,
}

impl AppState {
    /// The shared state of a node, and its bus (with Redis) and commit lanes, which run once
    /// started.
    pub fn new(
        config: Config,
        pool: DbPool,
        redis: Option<Arc<RedisLink>>,
        metrics: Metrics,
    ) -> (Self, Services) {
        let jwt = JwtKeys::new(
            config.auth.jwt_secret.expose().as_bytes(),
            config.auth.jwt_ttl,
        );
        let registry = Arc::new(RoomRegistry::default());
        // The bus's address exists now; the actor runs once `Services::start` is called.
        let bus = config.redis.url.is_some().then(|| {
            let (tx, rx) = channel::channel(BUS_MAILBOX);
            let bus = Bus::new(
                config.node_id.clone(),
                config.redis.clone(),
                config.redis.presence_ttl,
                registry.clone(),
                pool.clone(),
                metrics.clone(),
            );
            (Addr::new(tx), (rx, bus))
        });
        let (bus, pending_bus) = bus.unzip();
        let (committer, lanes) =
            Committer::new(&config.database, &metrics, &config.node_id, bus.clone());
        let embedder = embed::from_config(&config.embeddings);
        let state = Self {
            config,
            pool,
            redis,
            metrics,
            jwt,
            hasher: Hasher::new(std::thread::available_parallelism().map_or(1, |n| n.get())),
            committer,
            registry,
            bus,
            connections: Connections::default(),
            embedder,
            draining: AtomicBool::new(false),
        };
        let services = Services {
            bus: pending_bus,
            lanes,
        };
        (state, services)
    }

    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// True from the moment a drain starts: `/api` answers 503 and upgrades are refused.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the node's own actors still run: every commit lane and, with Redis, the bus.
    /// They stop only if their task dies (a bug), and such a node cannot recover by itself: it
    /// refuses every send and misses the other nodes' messages until it is replaced.
    pub fn services_running(&self) -> bool {
        self.committer.is_running() && self.bus.as_ref().is_none_or(Addr::connected)
    }
}

/// A node's own actors — the bus and the commit lanes — made with its state and run where the
/// node starts them: on the runtime that also serves its connections, so that a node with one
/// worker thread hands messages between them without waking another thread.
pub struct Services {
    bus: Option<(AddressReceiver<Bus>, Bus)>,
    lanes: Lanes,
}

impl Services {
    /// Runs the bus and the lanes on the current actix runtime.
    pub fn start(self) {
        if let Some((rx, bus)) = self.bus {
            Context::with_receiver(rx).run(bus);
        }
        self.lanes.spawn();
    }
}

/// A node's state with its actors not started (their mailboxes and queues are open), for tests
/// of what depends on them. The database and Redis URLs point nowhere.
#[cfg(test)]
pub(crate) fn unstarted(redis: bool) -> (AppState, Services) {
    let mut env: std::collections::HashMap<String, String> = [
        ("DATABASE_URL", "postgres://u:p@127.0.0.1:1/db"),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("EMBEDDINGS_PROVIDER", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if redis {
        env.insert("REDIS_URL".into(), "redis://127.0.0.1:1".into());
    }
    let config = Config::from_source(&env).expect("config");
    let pool = crate::store::pool::build(&config.database).expect("pool");
    let metrics = Metrics::new(&config.node_id).expect("metrics");
    AppState::new(config, pool, None, metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A dead task drops the receiving end of its queue or mailbox, as these tests do.

    #[actix_rt::test]
    async fn a_node_whose_commit_lane_is_gone_is_not_running() {
        let (state, services) = unstarted(false);
        assert!(state.services_running());
        drop(services.lanes);
        assert!(!state.services_running());
    }

    #[actix_rt::test]
    async fn a_cluster_node_whose_bus_is_gone_is_not_running() {
        let (state, services) = unstarted(true);
        assert!(state.services_running());
        let Services { bus, lanes } = services;
        drop(bus);
        assert!(!state.services_running());
        drop(lanes);
    }
}

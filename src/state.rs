//! What every request handler and actor of one node shares: configuration, the database pool,
//! the Redis link, metrics, the embedder, and the draining flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::{Actor, Addr};

use crate::actors::connection::Connections;
use crate::actors::registry::RoomRegistry;
use crate::auth::JwtKeys;
use crate::auth::hasher::Hasher;
use crate::bus::RedisLink;
use crate::bus::actor::Bus;
use crate::committer::Committer;
use crate::config::Config;
use crate::embed::{self, Embedder};
use crate::metrics::Metrics;
use crate::store::DbPool;

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
    /// The shared state of a node; starts its bus (with Redis) and commit lanes on the current
    /// runtime.
    pub fn new(
        config: Config,
        pool: DbPool,
        redis: Option<Arc<RedisLink>>,
        metrics: Metrics,
    ) -> Self {
        let jwt = JwtKeys::new(
            config.auth.jwt_secret.expose().as_bytes(),
            config.auth.jwt_ttl,
        );
        let registry = Arc::new(RoomRegistry::default());
        let bus = config.redis.url.is_some().then(|| {
            Bus::new(
                config.node_id.clone(),
                config.redis.clone(),
                config.redis.presence_ttl,
                registry.clone(),
                pool.clone(),
                metrics.clone(),
            )
            .start()
        });
        let committer = Committer::start(&config.database, &metrics, &config.node_id, bus.clone());
        let embedder = embed::from_config(&config.embeddings);
        Self {
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
        }
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
}

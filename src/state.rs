//! What every request handler and actor of one node shares: configuration, the database pool,
//! the Redis link, metrics, the embedder, and the draining flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::actors::registry::RoomRegistry;
use crate::auth::JwtKeys;
use crate::bus::RedisLink;
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
    pub committer: Committer,
    pub registry: Arc<RoomRegistry>,
    /// Turns search queries into vectors; `None` when `EMBEDDINGS_PROVIDER=off`.
    pub embedder: Option<Arc<dyn Embedder>>,
    draining: AtomicBool,
}

impl AppState {
    /// The shared state of a node; starts its commit lanes on the current runtime.
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
        let committer = Committer::start(&config.database.url, &metrics);
        let embedder = embed::from_config(&config.embeddings);
        Self {
            config,
            pool,
            redis,
            metrics,
            jwt,
            committer,
            registry: Arc::new(RoomRegistry::default()),
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

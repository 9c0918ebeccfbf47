//! A command connection to Redis, single server or Cluster, opened lazily and re-opened after a
//! failure, so that a node starts and serves while Redis is away.

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use tokio::sync::Mutex;

use crate::config::RedisConfig;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// One multiplexed command connection; clones of it are cheap and share the socket.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Boxed: both clients are large and only one is ever built.
enum Target {
    Single(Box<redis::Client>),
    Cluster(Box<ClusterClient>),
}

pub struct RedisLink {
    target: Target,
    conn: Mutex<Option<Conn>>,
}

impl RedisLink {
    /// Validates the URL(s); connects on first use.
    pub fn new(config: &RedisConfig) -> anyhow::Result<Option<Self>> {
        let Some(url) = &config.url else {
            return Ok(None);
        };
        let urls: Vec<&str> = url.split(',').map(str::trim).collect();
        let target = if config.sharded {
            Target::Cluster(Box::new(
                ClusterClient::builder(urls)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .build()
                    .context("REDIS_URL")?,
            ))
        } else {
            anyhow::ensure!(
                urls.len() == 1,
                "REDIS_URL lists several servers; set REDIS_SHARDED=true for a Redis Cluster"
            );
            Target::Single(Box::new(redis::Client::open(urls[0]).context("REDIS_URL")?))
        };
        Ok(Some(Self {
            target,
            conn: Mutex::new(None),
        }))
    }

    async fn connection(&self) -> anyhow::Result<Conn> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = match &self.target {
            Target::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(1);
                let client = (**client).clone();
                Conn::Single(ConnectionManager::new_with_config(client, config).await?)
            }
            Target::Cluster(client) => Conn::Cluster(client.get_async_connection().await?),
        };
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// `PING` within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> anyhow::Result<()> {
        let check = async {
            let conn = self.connection().await.context("connecting to Redis")?;
            let pong: String = match conn {
                Conn::Single(mut c) => redis::cmd("PING").query_async(&mut c).await,
                Conn::Cluster(mut c) => redis::cmd("PING").query_async(&mut c).await,
            }
            .context("Redis PING failed")?;
            anyhow::ensure!(pong == "PONG", "unexpected PING answer {pong:?}");
            anyhow::Ok(())
        };
        tokio::time::timeout(timeout, check)
            .await
            .context("Redis check timed out")?
    }
}

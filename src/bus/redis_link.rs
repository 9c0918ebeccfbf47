//! The health check's own Redis connection (a [`BusConn`], so single server and Cluster are set
//! up in one place), opened lazily and re-opened after a failure, so that a node starts and
//! serves while Redis is away.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::Mutex;

use super::conn::BusConn;
use crate::config::RedisConfig;

pub struct RedisLink {
    config: RedisConfig,
    conn: Mutex<Option<BusConn>>,
}

impl RedisLink {
    /// Checks the URL(s); connects on first use. `None` in single-node mode.
    pub fn new(config: &RedisConfig) -> anyhow::Result<Option<Self>> {
        let Some(url) = &config.url else {
            return Ok(None);
        };
        anyhow::ensure!(
            config.sharded || !url.contains(','),
            "REDIS_URL lists several servers; set REDIS_SHARDED=true for a Redis Cluster"
        );
        Ok(Some(Self {
            config: config.clone(),
            conn: Mutex::new(None),
        }))
    }

    async fn connection(&self) -> anyhow::Result<BusConn> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        // Nothing subscribes on this connection: its pushes (disconnection notices) are dropped.
        let (pushes, _) = tokio::sync::mpsc::unbounded_channel();
        let conn = BusConn::connect(&self.config, pushes).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// `PING` within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> anyhow::Result<()> {
        let check = async {
            let mut conn = self.connection().await.context("connecting to Redis")?;
            let pong: String = conn
                .query(&redis::cmd("PING"))
                .await
                .context("Redis PING failed")?;
            anyhow::ensure!(pong == "PONG", "unexpected PING answer {pong:?}");
            anyhow::Ok(())
        };
        tokio::time::timeout(timeout, check)
            .await
            .context("Redis check timed out")?
    }
}

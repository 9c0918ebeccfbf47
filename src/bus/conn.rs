//! The node's Redis connection for pub/sub and presence, single server or Cluster. It speaks
//! RESP3, so one multiplexed connection both subscribes and runs commands; subscribed messages
//! arrive on the push channel given at connect time. Both clients reconnect by themselves and
//! restore their subscriptions after a Redis restart. With `sharded`, SSUBSCRIBE/SPUBLISH keep
//! each room's traffic on the one shard that owns its channel.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, RedisResult};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::RedisConfig;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Publishes are small and latency-bound, and many are written while earlier ones are still
/// unanswered: with Nagle's algorithm on (the client's default) each such write waits a round
/// trip to Redis, so the socket is opened with `TCP_NODELAY`.
fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

#[derive(Clone)]
pub enum BusConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl BusConn {
    /// Connects (failing fast when Redis is away; the caller retries).
    pub async fn connect(
        config: &RedisConfig,
        push: UnboundedSender<PushInfo>,
    ) -> RedisResult<Self> {
        let url = config.url.as_deref().unwrap_or_default();
        let urls: Vec<&str> = url.split(',').map(str::trim).collect();
        if config.sharded {
            let client = ClusterClient::builder(urls)
                .use_protocol(ProtocolVersion::RESP3)
                .push_sender(push)
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .tcp_settings(tcp_settings())
                .build()?;
            Ok(Self::Cluster(client.get_async_connection().await?))
        } else {
            let info = urls[0].into_connection_info()?;
            let settings = info
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3);
            let info = info
                .set_redis_settings(settings)
                .set_tcp_settings(tcp_settings());
            let client = redis::Client::open(info)?;
            let config = ConnectionManagerConfig::new()
                .set_push_sender(push)
                .set_automatic_resubscription()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(2);
            Ok(Self::Single(
                ConnectionManager::new_with_config(client, config).await?,
            ))
        }
    }

    pub async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.subscribe(channels).await,
            Self::Cluster(c) => {
                // A sharded subscription names channels of one slot at a time.
                for channel in channels {
                    c.ssubscribe(channel).await?;
                }
                Ok(())
            }
        }
    }

    pub async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.unsubscribe(channels).await,
            Self::Cluster(c) => {
                for channel in channels {
                    c.sunsubscribe(channel).await?;
                }
                Ok(())
            }
        }
    }

    pub async fn publish(&mut self, channel: &str, payload: &[u8]) -> RedisResult<()> {
        match self {
            Self::Single(c) => {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .exec_async(c)
                    .await
            }
            Self::Cluster(c) => {
                redis::cmd("SPUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .exec_async(c)
                    .await
            }
        }
    }

    /// Runs any single-key command.
    pub async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

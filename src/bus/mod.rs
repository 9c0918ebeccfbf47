//! The link to Redis that fans messages out across nodes. This module holds the connection
//! handling shared by the health check and the bus.

pub mod redis_link;

pub use redis_link::RedisLink;

//! Cross-node fan-out over Redis: the [`actor::Bus`] per node, its connection ([`conn`]), the
//! envelope format, key names, presence as Redis keeps it, and the plain command link used by
//! health checks.

pub mod actor;
pub mod conn;
pub mod envelope;
pub mod keys;
mod presence_store;
pub mod redis_link;

pub use redis_link::RedisLink;

//! BoSar Chat: a real-time WebSocket chat engine. Each connection and each room is an actor;
//! PostgreSQL keeps gapless, durable history (with pgvector embeddings for search); Redis
//! pub/sub fans messages out across nodes.

pub mod actors;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod committer;
pub mod config;
pub mod drain;
pub mod embed;
pub mod error;
pub mod http;
pub mod metrics;
pub mod open_files;
pub mod protocol;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;

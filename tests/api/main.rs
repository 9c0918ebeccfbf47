//! The integration tests: whole nodes over real sockets, against a real PostgreSQL with pgvector
//! and a real Redis (`make test` starts both and exports their URLs).

mod helpers;

mod auth;
mod cli;
mod cluster;
mod commit;
mod delivery;
mod embed_openai;
mod health;
mod indexer;
mod lifecycle;
mod memory;
mod migrations;
mod recluster;
mod rooms;
mod search;
mod tls;
mod web_ui;
mod ws_protocol;

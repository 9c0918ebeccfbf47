//! Shared test fixtures: throwaway databases, running nodes, a TCP proxy that can cut a node off
//! from PostgreSQL or Redis, and a stand-in OpenAI embeddings server.

pub mod db;
pub mod fake_openai;
pub mod node;
pub mod presence;
pub mod process;
pub mod proxy;
pub mod tls_proxy;
pub mod vectors;
pub mod ws;

#[allow(unused_imports)]
pub use db::{TestDb, explain};
#[allow(unused_imports)]
pub use fake_openai::{FakeOpenAi, Fault};
#[allow(unused_imports)]
pub use node::{Cluster, TestNode, single_node, spawn_node};
#[allow(unused_imports)]
pub use proxy::ChaosProxy;
#[allow(unused_imports)]
pub use ws::{Event, WsClient};

/// A URL from the environment that `make test` sets; a clear message when run another way.
pub fn env_url(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!("{key} is not set: run `make test`, or `eval \"$(scripts/dev-services env)\"` first")
    })
}

/// `host:port` of a `scheme://[user[:password]@]host:port[/path]` URL.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

/// The same URL with its `host:port` replaced (to route a node through a proxy).
pub fn with_host_port(url: &str, new_host_port: &str) -> String {
    url.replacen(&host_port(url), new_host_port, 1)
}

/// How many migrations the binary embeds.
pub fn migration_count() -> usize {
    diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(
        &bosar_chat::store::migrate::MIGRATIONS,
    )
    .expect("embedded migrations")
    .len()
}

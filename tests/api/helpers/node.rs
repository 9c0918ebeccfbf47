//! Running nodes in the test process: each binds port 0 and serves on its own worker threads;
//! several can share one database and one Redis to form a cluster.

use std::collections::HashMap;

use actix_web::dev::ServerHandle;
use actix_web::web;
use bosar_chat::config::Config;
use bosar_chat::startup::Application;
use bosar_chat::state::AppState;

use super::TestDb;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

pub struct TestNode {
    pub port: u16,
    pub address: String,
    pub state: web::Data<AppState>,
    pub handle: ServerHandle,
    pub client: awc::Client,
}

impl TestNode {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let mut response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        let body = response.body().limit(1 << 20).await.expect("body");
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let mut response = self.client.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        let body = response.body().limit(1 << 22).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Stops the node as a crash would look from outside: listener and connections gone.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// The environment a test node starts with; `overrides` may change or add anything.
pub fn node_env(db: &TestDb, node_id: &str, overrides: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("HTTP_WORKERS", "1"),
        ("DATABASE_URL", db.url.as_str()),
        ("DATABASE_POOL_SIZE", "8"),
        ("JWT_SECRET", JWT_SECRET),
        ("NODE_ID", node_id),
        ("RUN_MIGRATIONS", "false"),
        ("SHUTDOWN_GRACE_SECS", "2"),
        ("LOG_FORMAT", "pretty"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Ok(filter) = std::env::var("TEST_LOG") {
        env.insert("RUST_LOG".into(), filter);
    }
    for (k, v) in overrides {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

/// Starts one node with the given environment and returns once it accepts connections.
pub async fn spawn_node(env: HashMap<String, String>) -> TestNode {
    let config = Config::from_source(&env).expect("test configuration");
    if std::env::var("TEST_LOG").is_ok() {
        bosar_chat::telemetry::init(&config.log);
    }
    let app = Application::build(config).await.expect("build the node");
    let port = app.port();
    let state = app.state();
    let handle = app.handle();
    actix_rt::spawn(app.run_until_stopped());
    TestNode {
        port,
        address: format!("http://127.0.0.1:{port}"),
        state,
        handle,
        client: awc::Client::default(),
    }
}

/// Several nodes sharing one database and (when given) one Redis key space.
pub struct Cluster {
    /// Owns the shared database: dropping the cluster drops it.
    #[allow(dead_code)]
    pub db: TestDb,
    pub nodes: Vec<TestNode>,
    /// The Redis key prefix the nodes share.
    #[allow(dead_code)]
    pub prefix: String,
}

impl Cluster {
    pub async fn start(count: usize, redis_url: Option<&str>) -> Self {
        Self::start_with(count, redis_url, &[]).await
    }

    /// `count` nodes on one fresh database and one Redis key prefix, with extra settings.
    pub async fn start_with(count: usize, redis_url: Option<&str>, extra: &[(&str, &str)]) -> Self {
        Self::start_each(&vec![redis_url; count], extra).await
    }

    /// One node per entry, each reaching the shared Redis key space by its own address (a proxy
    /// for some, say), on one fresh database, with extra settings.
    pub async fn start_each(redis_urls: &[Option<&str>], extra: &[(&str, &str)]) -> Self {
        let db = TestDb::create().await;
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let mut nodes = Vec::with_capacity(redis_urls.len());
        for (i, redis_url) in redis_urls.iter().enumerate() {
            let node_id = format!("node-{i}");
            let mut overrides = vec![("REDIS_KEY_PREFIX", prefix.as_str())];
            if let Some(url) = redis_url {
                overrides.push(("REDIS_URL", url));
            }
            overrides.extend_from_slice(extra);
            nodes.push(spawn_node(node_env(&db, &node_id, &overrides)).await);
        }
        Self { db, nodes, prefix }
    }
}

/// One node on its own fresh database.
pub async fn single_node(overrides: &[(&str, &str)]) -> (TestDb, TestNode) {
    let db = TestDb::create().await;
    let node = spawn_node(node_env(&db, "node-0", overrides)).await;
    (db, node)
}

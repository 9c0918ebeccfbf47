//! A short fanout run against a real node, as CI runs it: the node is built from the server
//! crate and started in this process on port 0 (as the server's own integration tests do), on a
//! fresh database created for the test and dropped after it. It needs the PostgreSQL that
//! `make test` starts (DATABASE_URL). The harness must see every message delivered exactly once
//! and in order.

use std::collections::HashMap;
use std::sync::mpsc;

use actix_web::dev::ServerHandle;
use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use bosar_chat::config::Config;
use bosar_chat::startup::Application;
use bosar_loadtest::cli::Cli;

const JWT_SECRET: &str = "loadtest-secret-loadtest-secret-0123456789";

fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run `make test`, or `eval \"$(scripts/dev-services env)\"` first")
    })
}

/// The same server URL with another database name.
fn with_database(url: &str, name: &str) -> String {
    let (head, tail) = url
        .rsplit_once('/')
        .expect("DATABASE_URL has a database name");
    let query = tail
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{head}/{name}{query}")
}

async fn admin(sql: &str) {
    let mut conn = AsyncPgConnection::establish(&admin_url())
        .await
        .expect("connect to PostgreSQL");
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A node on its own thread with its own actix system; returns its port and a stop handle.
fn start_node(database_url: String) -> (u16, ServerHandle) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let env: HashMap<String, String> = [
                ("HOST", "127.0.0.1"),
                ("PORT", "0"),
                ("HTTP_WORKERS", "1"),
                ("DATABASE_URL", database_url.as_str()),
                ("DATABASE_POOL_SIZE", "8"),
                ("JWT_SECRET", JWT_SECRET),
                ("NODE_ID", "lt-node-0"),
                ("RUN_MIGRATIONS", "true"),
                ("SHUTDOWN_GRACE_SECS", "1"),
                ("LOG_FORMAT", "pretty"),
                ("RUST_LOG", "warn"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            let config = Config::from_source(&env).expect("node configuration");
            let app = Application::build(config).await.expect("build the node");
            tx.send((app.port(), app.handle()))
                .expect("report the port");
            let _ = app.run_until_stopped().await;
        });
    });
    rx.recv().expect("the node started")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_fanout_loses_duplicates_and_reorders_nothing() {
    let database = format!("bosar_test_lt_{}", uuid::Uuid::new_v4().simple());
    admin(&format!("CREATE DATABASE {database} TEMPLATE template0")).await;
    let (port, handle) = start_node(with_database(&admin_url(), &database));
    let url = format!("http://127.0.0.1:{port}");
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);

    // 3 rooms × 4 members at 5 messages/s each for 5 s: 300 sends, 1,200 deliveries. The URL
    // is given twice to exercise the round-robin spread (one node here).
    let cli = Cli::try_parse_from([
        "bosar-loadtest",
        "fanout",
        "--url",
        &url,
        "--url",
        &url,
        "--rooms",
        "3",
        "--members",
        "4",
        "--rate",
        "5",
        "--duration",
        "5",
        "--users",
        "4",
        "--user-prefix",
        &prefix,
        "--jwt-secret",
        JWT_SECRET,
        "--quiet",
        "--max-errors",
        "0",
    ])
    .expect("arguments");
    let result = bosar_loadtest::execute(&cli.scenario).await;

    handle.stop(false).await;
    admin(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).await;

    let report = result.expect("the run completes");
    let tally = report.delivery.expect("fanout verifies delivery");
    assert_eq!(report.clients.ready, 12, "{:?}", report.stats.errors);
    assert!(tally.expected >= 1000, "{tally:?}");
    assert_eq!(
        tally.received, tally.expected,
        "{tally:?} {:?}",
        report.anomalies
    );
    assert!(tally.is_clean(), "{tally:?} {:?}", report.anomalies);
    assert_eq!(report.unacked, 0);
    assert!(report.stats.deliver.count >= tally.received);
    assert!(report.passed, "{:?}", report.failures);
    // The HTML and JSON outputs render from this report.
    let html = bosar_loadtest::report::html::render(&report);
    assert!(html.contains("<svg") && !html.contains("<script"));
    serde_json::to_string(&report).expect("the report serializes");
}

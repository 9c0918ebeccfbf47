//! A node's resident memory after a burst of sign-ins: Argon2 allocates ~19 MiB per hash, and
//! that memory must go back to the system rather than stay with the process.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::TestDb;
use crate::helpers::process::NodeProcess;

/// The process's resident set in MiB, from `/proc/<pid>/status`.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

async fn register(port: u16, name: String) -> u16 {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    client
        .post(format!("http://127.0.0.1:{port}/api/auth/register"))
        .send_json(&json!({"username": name, "password": "password123"}))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[actix_web::test]
async fn memory_of_a_burst_of_sign_ins_is_returned_to_the_system() {
    let db = TestDb::create().await;
    let node =
        NodeProcess::start(&[("DATABASE_URL", &db.url), ("EMBEDDINGS_PROVIDER", "off")]).await;
    let pid = node.child.id().expect("running");
    let before = rss_mib(pid);

    // Eight at a time, so that every hashing thread is kept busy.
    for batch in 0..4 {
        let names = (0..8).map(|i| format!("burst{batch}x{i}"));
        let statuses = join_all(names.map(|n| register(node.port, n))).await;
        assert!(statuses.iter().all(|&s| s == 201), "{statuses:?}");
    }

    // Freed memory goes back within the allocator's decay time (about ten seconds at most).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = rss_mib(pid);
    while after - before > 48.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = rss_mib(pid);
    }
    assert!(
        after - before <= 48.0,
        "32 sign-ins left the node holding {:.1} MiB more than before ({before:.1} → {after:.1} MiB)",
        after - before
    );
}

//! bosar-loadtest: many WebSocket clients against one or more BoSar Chat nodes, speaking only
//! the external contract. Each scenario sets up users and rooms through the REST API, runs its
//! clients, verifies that every member received every message of its room exactly once and in
//! order, and measures latency, throughput and the servers' memory and CPU.
//!
//! The binary is a thin wrapper around [`execute`], which tests call directly.

pub mod cli;
pub mod client;
pub mod frames;
pub mod metrics;
pub mod net;
pub mod progress;
pub mod report;
pub mod scenarios;
pub mod setup;
pub mod stats;
pub mod verify;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use cli::Scenario;
use progress::Progress;
use report::Report;
use scenarios::Run;
use setup::Api;
use stats::Stats;

/// Runs one scenario and returns its judged report. The table, JSON and HTML outputs are the
/// caller's (see `main.rs`).
pub async fn execute(scenario: &Scenario) -> anyhow::Result<Report> {
    let common = scenario.common().clone();
    anyhow::ensure!(!common.urls.is_empty(), "at least one --url is needed");
    let mut nodes = Vec::with_capacity(common.urls.len());
    let mut apis = Vec::with_capacity(common.urls.len());
    for url in &common.urls {
        let node = net::Node::resolve(url).await?;
        apis.push(Api::new(&node.base)?);
        nodes.push(node);
    }
    let stats = Arc::new(Stats::new());
    let room_prefix = common
        .room_prefix
        .clone()
        .unwrap_or_else(|| format!("lt-{}", setup::run_id()));
    let run = Run {
        progress: Progress::start(stats.clone(), common.quiet),
        common: common.clone(),
        nodes: Arc::new(nodes),
        apis,
        stats,
        room_prefix,
        started: Instant::now(),
    };
    let result = match scenario {
        Scenario::Fanout(args) => scenarios::fanout::run(&run, args).await,
        Scenario::Capacity(args) => scenarios::capacity::run(&run, args).await,
        Scenario::Reconnect(args) => scenarios::reconnect::run(&run, args).await,
        Scenario::Burst(args) => scenarios::burst::run(&run, args).await,
    };
    run.progress.finish();
    let mut report = result.with_context(|| format!("{} scenario", scenario.name()))?;
    report.judge(&common);
    Ok(report)
}

//! Graceful drain on SIGTERM: `/api` answers 503 at once and upgrades are refused; every open
//! connection is closed with 1012, oldest first, spread over the grace period so that clients do
//! not all reconnect in the same instant; then every accepted message is committed and published,
//! and the node leaves the cluster's presence.

use std::time::Duration;

use tokio::time::Instant;

use crate::actors::connection::Restart;
use crate::bus::actor::{Flush, Leave};
use crate::state::AppState;

/// The share of the grace period over which closes are spread; the rest is for the last
/// commits and publishes.
const SPREAD: f64 = 0.8;

pub async fn drain(state: &AppState) {
    state.start_draining();
    let started = Instant::now();
    let grace = state.config.shutdown_grace;
    let connections = state.connections.all();
    let count = connections.len();
    tracing::info!(
        connections = count,
        grace_secs = grace.as_secs(),
        "draining"
    );
    let window = grace.mul_f64(SPREAD);
    for (i, connection) in connections.into_iter().enumerate() {
        let at = started + window.mul_f64(i as f64 / count as f64);
        tokio::time::sleep_until(at).await;
        connection.do_send(Restart);
    }
    // Closing takes a moment per connection; wait for them, within the grace period.
    let deadline = started + grace;
    while !state.connections.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1))
    };
    state.committer.flush(left()).await;
    if let Some(bus) = &state.bus {
        let _ = tokio::time::timeout(left(), bus.send(Flush)).await;
        let _ = tokio::time::timeout(left(), bus.send(Leave)).await;
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "drained");
}

//! The result of a run: what was asked, what the clients saw, what the servers said, and the
//! verdict. Written as a table ([`table`]), JSON ([`json`]) and a self-contained HTML page
//! ([`html`]).

pub mod html;
pub mod json;
pub mod table;

use serde::Serialize;

use crate::cli::Common;
use crate::metrics::{PerConnection, Sample};
use crate::stats::Snapshot;
use crate::verify::Tally;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Clients {
    pub planned: u64,
    /// Connected (and, where the scenario joins, joined) at set-up.
    pub ready: u64,
    pub failed: u64,
}

/// One node as its `/metrics` saw the run.
#[derive(Debug, Clone, Serialize)]
pub struct ServerNode {
    pub url: String,
    pub before: Option<Sample>,
    pub after: Option<Sample>,
    /// Capacity runs: memory and CPU per connection.
    pub per_connection: Option<PerConnection>,
    /// Capacity runs: one reading per second.
    pub timeline: Vec<Sample>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub parameters: serde_json::Value,
    pub nodes: Vec<String>,
    /// Seconds of traffic (or of holding, for capacity).
    pub traffic_secs: f64,
    /// From the start of traffic until every member had every message (`None`: the drain
    /// timed out, or the scenario does not send).
    pub settle_secs: Option<f64>,
    pub wall_secs: f64,
    pub clients: Clients,
    /// `None` for scenarios that do not send.
    pub delivery: Option<Tally>,
    /// Sends neither acknowledged nor refused by the end of the drain.
    pub unacked: u64,
    pub anomalies: Vec<String>,
    pub stats: Snapshot,
    pub server: Vec<ServerNode>,
    pub failures: Vec<String>,
    pub passed: bool,
}

impl Report {
    /// Fills `failures` and `passed` from the results and the service-level flags.
    pub fn judge(&mut self, common: &Common) {
        let mut failures = Vec::new();
        if self.clients.failed > 0 {
            failures.push(format!(
                "{} of {} clients failed to connect or join",
                self.clients.failed, self.clients.planned
            ));
        }
        if let Some(t) = &self.delivery {
            for (what, n) in [
                ("lost", t.lost),
                ("duplicated", t.duplicated),
                ("out-of-order", t.out_of_order),
                ("unexpected (before join)", t.unexpected),
            ] {
                if n > 0 {
                    failures.push(format!("{n} {what} deliveries"));
                }
            }
        }
        if self.unacked > 0 {
            failures.push(format!("{} sends never acknowledged", self.unacked));
        }
        if let Some(max) = common.max_p99_ms
            && self.stats.deliver.p99_ms > max
        {
            failures.push(format!(
                "send→deliver p99 {:.2} ms > --max-p99-ms {max}",
                self.stats.deliver.p99_ms
            ));
        }
        if let Some(max) = common.max_ack_p99_ms
            && self.stats.ack.p99_ms > max
        {
            failures.push(format!(
                "send→ack p99 {:.2} ms > --max-ack-p99-ms {max}",
                self.stats.ack.p99_ms
            ));
        }
        let errors: u64 = self.stats.errors.values().sum();
        if let Some(max) = common.max_errors
            && errors > max
        {
            failures.push(format!("{errors} errors > --max-errors {max}"));
        }
        self.passed = failures.is_empty();
        self.failures = failures;
    }

    /// Deliveries per second over the traffic period.
    /// The latency distributions that have samples, named for the table and the page.
    pub fn latencies(&self) -> impl Iterator<Item = (&'static str, &crate::stats::Percentiles)> {
        let s = &self.stats;
        [
            ("send→deliver", &s.deliver),
            ("  cross-node", &s.cross_node),
            ("send→ack", &s.ack),
            ("connect", &s.connect),
            ("drop→caught up", &s.rejoin),
        ]
        .into_iter()
        .filter(|(_, p)| p.count > 0)
    }

    pub fn delivery_rate(&self) -> f64 {
        if self.traffic_secs > 0.0 {
            self.stats.deliver.count as f64 / self.traffic_secs
        } else {
            0.0
        }
    }
}

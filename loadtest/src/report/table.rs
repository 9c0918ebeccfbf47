//! The final table on stdout: clients, verification, latency percentiles, throughput, errors,
//! server readings and the verdict.

use std::io::{self, Write};

use super::Report;
use crate::stats::Percentiles;

pub fn write(report: &Report, out: &mut impl Write) -> io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "bosar-loadtest {} — {}",
        report.scenario, report.parameters
    )?;
    writeln!(out, "nodes: {}", report.nodes.join(", "))?;
    let c = &report.clients;
    writeln!(
        out,
        "clients: {} planned, {} ready, {} failed; traffic {:.1} s, wall {:.1} s{}",
        c.planned,
        c.ready,
        c.failed,
        report.traffic_secs,
        report.wall_secs,
        report
            .settle_secs
            .map(|s| format!(", everything delivered after {s:.2} s"))
            .unwrap_or_default()
    )?;
    if let Some(t) = &report.delivery {
        writeln!(out)?;
        writeln!(
            out,
            "delivery    memberships {:>8}  expected {:>10}  received {:>10}",
            t.memberships, t.expected, t.received
        )?;
        writeln!(
            out,
            "            lost {:>8}  duplicated {:>8}  out-of-order {:>8}  before-join {:>6}  unacked {:>6}",
            t.lost, t.duplicated, t.out_of_order, t.unexpected, report.unacked
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<16}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
    )?;
    let s = &report.stats;
    for (name, p) in report.latencies() {
        row(out, name, p)?;
    }
    if report.delivery.is_some() {
        let sent: u64 = s.seconds.iter().map(|p| p.sent).sum();
        writeln!(out)?;
        writeln!(
            out,
            "throughput: {:.0} sends/s, {:.0} deliveries/s over {:.1} s of traffic",
            sent as f64 / report.traffic_secs.max(1e-9),
            report.delivery_rate(),
            report.traffic_secs
        )?;
    }
    for node in &report.server {
        if let (Some(b), Some(a)) = (&node.before, &node.after) {
            writeln!(
                out,
                "server {}: rss {:.1} → {:.1} MiB, cpu {:.2} s, connections {} → {}, messages in +{}, out +{}",
                node.url,
                b.resident_bytes / 1048576.0,
                a.resident_bytes / 1048576.0,
                a.cpu_seconds - b.cpu_seconds,
                b.connections,
                a.connections,
                a.messages_in - b.messages_in,
                a.messages_out - b.messages_out,
            )?;
        }
        if let Some(p) = &node.per_connection {
            writeln!(
                out,
                "  per idle connection ({} open): {:.0} bytes of resident memory, {:.3} µs/s of CPU (process at {:.1}% of a core while holding)",
                p.connections,
                p.bytes_per_connection,
                p.cpu_micros_per_sec_per_connection,
                p.cpu_percent_during_hold
            )?;
        }
    }
    if !s.errors.is_empty() {
        writeln!(out)?;
        writeln!(out, "errors:")?;
        for (code, n) in &s.errors {
            writeln!(out, "  {n:>8}  {code}")?;
        }
    }
    if !report.anomalies.is_empty() {
        writeln!(out)?;
        writeln!(out, "examples:")?;
        for a in &report.anomalies {
            writeln!(out, "  {a}")?;
        }
    }
    writeln!(out)?;
    if report.passed {
        writeln!(out, "PASS")?;
    } else {
        for f in &report.failures {
            writeln!(out, "FAIL: {f}")?;
        }
    }
    Ok(())
}

fn row(out: &mut impl Write, name: &str, p: &Percentiles) -> io::Result<()> {
    writeln!(
        out,
        "{:<16}{:>10}{:>10.2}{:>10.2}{:>10.2}{:>10.2}{:>10.2}",
        name, p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
    )
}

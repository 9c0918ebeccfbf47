//! The server's side of the story, read from each node's Prometheus `/metrics`: resident
//! memory, CPU seconds, open connections and message counters, sampled before, during and after
//! a run so that the report can divide memory and CPU by connections.

use serde::Serialize;

use crate::setup::Api;

/// One reading of one node.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub at_secs: f64,
    pub resident_bytes: f64,
    pub cpu_seconds: f64,
    pub connections: f64,
    pub messages_in: f64,
    pub messages_out: f64,
}

/// The value of an unlabelled metric in Prometheus text format.
pub fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, rest) = line.split_once(' ')?;
            (key == name).then(|| rest.split_whitespace().next()?.parse().ok())?
        })
}

pub fn parse(text: &str, at_secs: f64) -> Sample {
    let get = |name| value(text, name).unwrap_or(f64::NAN);
    Sample {
        at_secs,
        resident_bytes: get("bosar_process_resident_memory_bytes"),
        cpu_seconds: get("bosar_process_cpu_seconds_total"),
        connections: get("bosar_connections"),
        messages_in: get("bosar_messages_in_total"),
        messages_out: get("bosar_messages_out_total"),
    }
}

/// Reads one node; `None` (and the reason on stderr, once per call site) when it cannot.
pub async fn sample(api: &Api, at_secs: f64) -> Option<Sample> {
    match api.metrics().await {
        Ok(text) => Some(parse(&text, at_secs)),
        Err(e) => {
            eprintln!("bosar-loadtest: reading /metrics: {e:#}");
            None
        }
    }
}

/// Resident memory (bytes) and CPU (seconds, user + system, all threads) of a local process,
/// from /proc: finer than the whole seconds of `process_cpu_seconds_total`.
pub fn proc_reading(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((rss_kib * 1024.0, ticks / clock_ticks_per_second()))
}

/// `getconf CLK_TCK`, read once; 100 (Linux's usual value) when it cannot be read.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Memory and CPU per connection of one node between two readings: `base` before the
/// connections opened, `loaded` once they were open, `end` after holding them.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerConnection {
    pub connections: f64,
    pub resident_bytes_base: f64,
    pub resident_bytes_loaded: f64,
    /// (loaded − base) resident memory ÷ (loaded − base) connections.
    pub bytes_per_connection: f64,
    /// CPU seconds spent during the hold ÷ hold seconds ÷ connections, in µs of CPU per second.
    pub cpu_micros_per_sec_per_connection: f64,
    /// The whole process's CPU during the hold, in percent of one core.
    pub cpu_percent_during_hold: f64,
}

impl PerConnection {
    pub fn between(base: &Sample, loaded: &Sample, end: &Sample) -> Self {
        let connections = loaded.connections - base.connections;
        let hold = end.at_secs - loaded.at_secs;
        let cpu = end.cpu_seconds - loaded.cpu_seconds;
        Self {
            connections: loaded.connections,
            resident_bytes_base: base.resident_bytes,
            resident_bytes_loaded: loaded.resident_bytes,
            bytes_per_connection: (loaded.resident_bytes - base.resident_bytes) / connections,
            cpu_micros_per_sec_per_connection: cpu / hold / end.connections * 1e6,
            cpu_percent_during_hold: cpu / hold * 100.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP bosar_connections Open WebSocket connections
# TYPE bosar_connections gauge
bosar_connections 1500
bosar_process_cpu_seconds_total 12.5
bosar_process_resident_memory_bytes 1.048576e8
bosar_node_info{node=\"a\",version=\"0.1.0\"} 1
";

    #[test]
    fn unlabelled_values_are_read_and_labelled_ones_skipped() {
        let s = parse(TEXT, 1.0);
        assert_eq!(s.connections, 1500.0);
        assert_eq!(s.cpu_seconds, 12.5);
        assert_eq!(s.resident_bytes, 104_857_600.0);
        assert!(s.messages_in.is_nan());
        assert_eq!(value(TEXT, "bosar_node_info"), None);
    }

    #[test]
    fn this_process_can_be_read_from_proc() {
        let (rss, cpu) = proc_reading(std::process::id()).expect("/proc of this process");
        assert!(rss > 0.0 && cpu >= 0.0);
    }

    #[test]
    fn per_connection_figures_divide_deltas() {
        let base = Sample {
            at_secs: 0.0,
            resident_bytes: 100e6,
            cpu_seconds: 1.0,
            connections: 0.0,
            ..Sample::default()
        };
        let loaded = Sample {
            at_secs: 10.0,
            resident_bytes: 180e6,
            cpu_seconds: 5.0,
            connections: 10_000.0,
            ..Sample::default()
        };
        let end = Sample {
            at_secs: 30.0,
            resident_bytes: 180e6,
            cpu_seconds: 5.2,
            connections: 10_000.0,
            ..Sample::default()
        };
        let p = PerConnection::between(&base, &loaded, &end);
        assert!((p.bytes_per_connection - 8000.0).abs() < 1e-6);
        // 0.2 CPU s over 20 s for 10k connections: 1 µs/s each.
        assert!((p.cpu_micros_per_sec_per_connection - 1.0).abs() < 1e-9);
        assert!((p.cpu_percent_during_hold - 1.0).abs() < 1e-9);
    }
}

//! `--report FILE.html`: one self-contained page — the summary tables and inline SVG charts of
//! latency over time, throughput, and (for capacity) connections and server memory. No scripts,
//! no external files.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use super::Report;

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 260.0;
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_BOTTOM: f64 = 36.0;
const MARGIN_TOP: f64 = 28.0;
const MARGIN_RIGHT: f64 = 16.0;

/// One line of a chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, render(report)).with_context(|| format!("writing {}", path.display()))
}

pub fn render(report: &Report) -> String {
    let mut page = String::new();
    let title = format!("bosar-loadtest {}", report.scenario);
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;margin:8px 0 16px}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} th{{background:#f4f4f4}}\
         td:first-child,th:first-child{{text-align:left}} .pass{{color:#2a7d2a}} .fail{{color:#b22}}\
         pre{{background:#f7f7f7;padding:8px;white-space:pre-wrap}} code{{word-break:break-all}}</style></head><body><h1>{t}</h1>",
        t = escape(&title)
    );
    let verdict = if report.passed {
        "<p class=\"pass\"><b>PASS</b></p>".to_owned()
    } else {
        let items: String = report
            .failures
            .iter()
            .map(|f| format!("<li>{}</li>", escape(f)))
            .collect();
        format!("<p class=\"fail\"><b>FAIL</b></p><ul class=\"fail\">{items}</ul>")
    };
    page.push_str(&verdict);
    let _ = write!(
        page,
        "<p>Nodes: {}<br>Parameters: <code>{}</code><br>Clients: {} planned, {} ready, {} failed. \
         Traffic {:.1} s, wall {:.1} s.</p>",
        escape(&report.nodes.join(", ")),
        escape(&report.parameters.to_string()),
        report.clients.planned,
        report.clients.ready,
        report.clients.failed,
        report.traffic_secs,
        report.wall_secs
    );
    if let Some(t) = &report.delivery {
        let _ = write!(
            page,
            "<h2>Delivery</h2><table><tr><th>memberships</th><th>expected</th><th>received</th>\
             <th>lost</th><th>duplicated</th><th>out of order</th><th>before join</th><th>unacked</th></tr>\
             <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
            t.memberships,
            t.expected,
            t.received,
            t.lost,
            t.duplicated,
            t.out_of_order,
            t.unexpected,
            report.unacked
        );
    }
    page.push_str("<h2>Latency (ms)</h2><table><tr><th></th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
    let s = &report.stats;
    for (name, p) in report.latencies() {
        let _ = write!(
            page,
            "<tr><td>{name}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
            p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
        );
    }
    page.push_str("</table>");

    if report.delivery.is_some() && !s.seconds.is_empty() {
        let x = |p: &crate::stats::SecondPoint| p.second as f64;
        let latency = [
            ("p50", s.seconds.iter().map(|p| (x(p), p.p50_ms)).collect()),
            ("p99", s.seconds.iter().map(|p| (x(p), p.p99_ms)).collect()),
            ("max", s.seconds.iter().map(|p| (x(p), p.max_ms)).collect()),
        ];
        page.push_str(&chart(
            "Send→deliver latency per second",
            "seconds since start",
            "ms",
            &to_series(latency),
        ));
        let throughput = [
            (
                "sent/s",
                s.seconds.iter().map(|p| (x(p), p.sent as f64)).collect(),
            ),
            (
                "acked/s",
                s.seconds.iter().map(|p| (x(p), p.acked as f64)).collect(),
            ),
            (
                "delivered/s",
                s.seconds
                    .iter()
                    .map(|p| (x(p), p.delivered as f64))
                    .collect(),
            ),
        ];
        page.push_str(&chart(
            "Throughput",
            "seconds since start",
            "per second",
            &to_series(throughput),
        ));
    }

    if report.server.iter().any(|n| !n.timeline.is_empty()) {
        let connections: Vec<Series> = report
            .server
            .iter()
            .map(|n| Series {
                name: n.url.clone(),
                points: n
                    .timeline
                    .iter()
                    .map(|s| (s.at_secs, s.connections))
                    .collect(),
            })
            .collect();
        page.push_str(&chart(
            "Server connections",
            "seconds since start",
            "connections",
            &connections,
        ));
        let memory: Vec<Series> = report
            .server
            .iter()
            .map(|n| Series {
                name: n.url.clone(),
                points: n
                    .timeline
                    .iter()
                    .map(|s| (s.at_secs, s.resident_bytes / 1_048_576.0))
                    .collect(),
            })
            .collect();
        page.push_str(&chart(
            "Server resident memory",
            "seconds since start",
            "MiB",
            &memory,
        ));
    }
    let mut server_table = String::new();
    for n in &report.server {
        if let Some(p) = &n.per_connection {
            let _ = write!(
                server_table,
                "<tr><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.3}</td><td>{:.1}</td></tr>",
                escape(&n.url),
                p.connections,
                p.bytes_per_connection,
                p.cpu_micros_per_sec_per_connection,
                p.cpu_percent_during_hold
            );
        }
    }
    if !server_table.is_empty() {
        let _ = write!(
            page,
            "<h2>Per idle connection</h2><table><tr><th>node</th><th>connections</th><th>bytes RSS</th>\
             <th>µs CPU per s</th><th>% of a core while holding</th></tr>{server_table}</table>"
        );
    }
    if !s.errors.is_empty() {
        page.push_str("<h2>Errors</h2><table><tr><th>code</th><th>count</th></tr>");
        for (code, n) in &s.errors {
            let _ = write!(page, "<tr><td>{}</td><td>{n}</td></tr>", escape(code));
        }
        page.push_str("</table>");
    }
    if !report.anomalies.is_empty() {
        let _ = write!(
            page,
            "<h2>Examples</h2><pre>{}</pre>",
            escape(&report.anomalies.join("\n"))
        );
    }
    page.push_str("</body></html>\n");
    page
}

fn to_series<const N: usize>(lines: [(&str, Vec<(f64, f64)>); N]) -> Vec<Series> {
    lines
        .into_iter()
        .map(|(name, points)| Series {
            name: name.to_owned(),
            points,
        })
        .collect()
}

/// A line chart as an inline `<svg>`, axes from zero to a rounded maximum.
pub fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let finite = |v: &f64| v.is_finite();
    let points = || series.iter().flat_map(|s| s.points.iter());
    let x_max = nice(points().map(|p| p.0).filter(finite).fold(0.0, f64::max));
    let y_max = nice(points().map(|p| p.1).filter(finite).fold(0.0, f64::max));
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let sx = |x: f64| MARGIN_LEFT + x / x_max * plot_w;
    let sy = |y: f64| MARGIN_TOP + plot_h - y / y_max * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<h2>{t}</h2><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{t}\" font-size=\"11\">",
        t = escape(title)
    );
    // Grid and tick labels: five steps on each axis.
    for i in 0..=5 {
        let f = f64::from(i) / 5.0;
        let (y, x) = (sy(y_max * f), sx(x_max * f));
        let _ = write!(
            svg,
            "<line x1=\"{MARGIN_LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            WIDTH - MARGIN_RIGHT,
            MARGIN_LEFT - 4.0,
            y + 4.0,
            label(y_max * f),
            HEIGHT - MARGIN_BOTTOM + 14.0,
            label(x_max * f)
        );
    }
    let _ = write!(
        svg,
        "<rect x=\"{MARGIN_LEFT}\" y=\"{MARGIN_TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#999\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{}</text>",
        MARGIN_LEFT + plot_w / 2.0,
        HEIGHT - 4.0,
        escape(x_label),
        MARGIN_TOP + plot_h / 2.0,
        MARGIN_TOP + plot_h / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\
             <rect x=\"{:.1}\" y=\"8\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"17\">{}</text>",
            path.join(" "),
            MARGIN_LEFT + 150.0 * i as f64,
            MARGIN_LEFT + 150.0 * i as f64 + 14.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A round axis maximum at or above `v`: 1, 1.5, 2, 3, 4, 5, 6 or 8 times a power of ten.
fn nice(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    [1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * power)
}

fn label(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_inline_svg_with_escaped_labels() {
        let svg = chart(
            "a <b>",
            "x",
            "y",
            &[Series {
                name: "p99".into(),
                points: vec![(0.0, 1.0), (1.0, 3.0), (2.0, f64::NAN)],
            }],
        );
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
        assert!(svg.contains("a &lt;b&gt;"));
        assert!(svg.contains("<polyline"));
        assert!(!svg.contains("NaN"));
        assert_eq!(nice(3.2), 4.0);
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(120.0), 150.0);
    }
}

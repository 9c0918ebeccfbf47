//! `capacity`: open N idle connections at the connect rate (optionally each joined to a room),
//! hold them, and read every node's `/metrics` once a second. Memory per connection is the
//! growth of resident memory divided by the growth of `bosar_connections`; CPU per connection
//! is the CPU the process spent while holding, per second, per connection.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::cli::CapacityArgs;
use crate::client;
use crate::metrics::{PerConnection, Sample};
use crate::report::{Clients, Report};
use crate::setup::Identities;
use crate::stats::Stats;

use super::{Run, create_rooms};

/// Time for the servers to settle after the last connection opened, before the "loaded"
/// reading.
const SETTLE: Duration = Duration::from_secs(3);

pub async fn run(run: &Run, args: &CapacityArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    crate::net::ensure_open_files(args.connections)?;
    let identities = Identities::provision(run.api(), &run.common, args.connections).await?;
    let rooms = if args.rooms > 0 {
        create_rooms(run, &identities.users[0].token, args.rooms).await?
    } else {
        Vec::new()
    };

    let mut timeline: Vec<Vec<Sample>> = vec![Vec::new(); run.nodes.len()];
    let base = run.sample_nodes().await;
    push(&mut timeline, &base);

    // Ramp: open connections at the connect rate, reading /metrics once a second meanwhile.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<bool>();
    run.progress.phase("connect", args.connections as u64);
    let mut pacer = tokio::time::interval(Duration::from_secs_f64(
        1.0 / run.common.connect_rate.max(1.0),
    ));
    let mut handles = Vec::with_capacity(args.connections);
    let (mut ready, mut answered) = (0u64, 0usize);
    let mut next_sample = Instant::now() + Duration::from_secs(1);
    for id in 0..args.connections {
        pacer.tick().await;
        let node = run.nodes[id % run.nodes.len()].clone();
        let token = identities.listener(id)?;
        let room = (!rooms.is_empty()).then(|| rooms[id % rooms.len()].clone());
        let (stats, stop, ready_tx) = (run.stats.clone(), stop_rx.clone(), ready_tx.clone());
        let source_addrs = run.common.source_addrs;
        handles.push(tokio::spawn(async move {
            let ws = match client::connect(&node, &token, id, source_addrs).await {
                Ok((ws, took)) => {
                    stats.connected(id, took);
                    ws
                }
                Err(e) => {
                    stats.error(e.code);
                    let _ = ready_tx.send(false);
                    return;
                }
            };
            hold(ws, room, &stats, stop, ready_tx).await;
        }));
        while let Ok(ok) = ready_rx.try_recv() {
            answered += 1;
            ready += u64::from(ok);
        }
        run.progress.set(answered as u64);
        if Instant::now() >= next_sample {
            push(&mut timeline, &run.sample_nodes().await);
            next_sample += Duration::from_secs(1);
        }
    }
    drop(ready_tx);
    while answered < args.connections {
        match ready_rx.recv().await {
            Some(ok) => {
                answered += 1;
                ready += u64::from(ok);
                run.progress.set(answered as u64);
            }
            None => break,
        }
    }
    tokio::time::sleep(SETTLE).await;
    let loaded = run.sample_nodes().await;
    push(&mut timeline, &loaded);

    // Hold.
    let hold = Duration::from_secs_f64(args.hold);
    let held_from = Instant::now();
    run.progress.phase("hold", hold.as_secs().max(1));
    while held_from.elapsed() < hold {
        tokio::time::sleep(Duration::from_secs(1).min(hold.saturating_sub(held_from.elapsed())))
            .await;
        run.progress.set(held_from.elapsed().as_secs());
        if held_from.elapsed() < hold {
            push(&mut timeline, &run.sample_nodes().await);
        }
    }
    let end = run.sample_nodes().await;
    push(&mut timeline, &end);
    let still_open = crate::stats::Live::get(&run.stats.live.connected);
    let _ = stop_tx.send(true);
    for handle in handles {
        let _ = handle.await;
    }

    let mut server = run.server_nodes(base.clone(), end.clone());
    for (i, node) in server.iter_mut().enumerate() {
        node.timeline = std::mem::take(&mut timeline[i]);
        if let (Some(b), Some(l), Some(e)) = (&base[i], &loaded[i], &end[i]) {
            node.per_connection = Some(PerConnection::between(b, l, e));
        }
    }
    let mut report = Report {
        scenario: "capacity".into(),
        parameters: serde_json::json!({
            "connections": args.connections,
            "connect_rate": run.common.connect_rate,
            "hold_secs": args.hold,
            "rooms": args.rooms,
            "open_at_end_of_hold": still_open,
        }),
        nodes: run.nodes.iter().map(|n| n.base.clone()).collect(),
        traffic_secs: args.hold,
        settle_secs: None,
        wall_secs: run.started.elapsed().as_secs_f64(),
        clients: Clients {
            planned: args.connections as u64,
            ready,
            failed: args.connections as u64 - ready,
        },
        delivery: None,
        unacked: 0,
        anomalies: Vec::new(),
        stats: run.stats.snapshot(),
        server,
        failures: Vec::new(),
        passed: false,
    };
    if still_open < ready {
        report.anomalies.push(format!(
            "{} connections closed during the hold",
            ready - still_open
        ));
    }
    Ok(report)
}

fn push(timeline: &mut [Vec<Sample>], samples: &[Option<Sample>]) {
    for (line, sample) in timeline.iter_mut().zip(samples) {
        if let Some(sample) = sample {
            line.push(*sample);
        }
    }
}

/// Joins `room` when given, says it is ready, then reads (answering pings) until told to stop.
async fn hold(
    mut ws: client::Ws,
    room: Option<std::sync::Arc<str>>,
    stats: &Stats,
    mut stop: watch::Receiver<bool>,
    ready: mpsc::UnboundedSender<bool>,
) {
    if let Some(room) = room
        && let Err(e) = client::join(&mut ws, &room, None, |_| {}).await
    {
        stats.error(format!("join: {e}"));
        stats.disconnected();
        let _ = ready.send(false);
        return;
    }
    let _ = ready.send(true);
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Close(close))) => {
                    stats.error(format!("close {}", close.map_or(1005, |f| u16::from(f.code))));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    stats.error("connection lost");
                    break;
                }
            },
            _ = stop.changed() => break,
        }
    }
    stats.disconnected();
}

//! `fanout`: R rooms × M members, every member sending at a fixed rate. Each room's members are
//! spread round-robin over the nodes, so every room spans nodes exactly as it would when a load
//! balancer's stickiness fails. Every member verifies its room's stream.

use std::time::Duration;

use crate::cli::FanoutArgs;
use crate::report::Report;
use crate::setup::Identities;

use super::member::{Plan, SendPlan};
use super::{Run, StopSending, create_rooms, run_members};

pub async fn run(run: &Run, args: &FanoutArgs) -> anyhow::Result<Report> {
    traffic(run, args, None, "fanout").await
}

/// Fanout traffic, with scheduled reconnects when `reconnect_every` is given.
pub async fn traffic(
    run: &Run,
    args: &FanoutArgs,
    reconnect_every: Option<f64>,
    scenario: &str,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.rooms > 0 && args.members > 0,
        "--rooms and --members must be at least 1"
    );
    anyhow::ensure!(args.rate > 0.0, "--rate must be above 0");
    let clients = args.rooms * args.members;
    crate::net::ensure_open_files(clients + 16)?;
    let identities = Identities::provision(run.api(), &run.common, clients).await?;
    let rooms = create_rooms(run, &identities.users[0].token, args.rooms).await?;
    let nodes = run.nodes.len();
    let plans: Vec<Plan> = (0..clients)
        .map(|id| {
            let (room, member) = (id / args.members, id % args.members);
            Plan {
                id,
                token: identities.sender(id).token.clone(),
                room: rooms[room].clone(),
                node: args.placement.node(member, nodes),
                send: Some(SendPlan {
                    rate: args.rate,
                    limit: None,
                    body_bytes: args.body_bytes,
                }),
                reconnect_every,
            }
        })
        .collect();
    let before = run.sample_nodes().await;
    let outcome = run_members(
        run,
        plans,
        &rooms,
        StopSending::After(Duration::from_secs_f64(args.duration)),
        &identities.users[0].token,
    )
    .await;
    let after = run.sample_nodes().await;
    let mut parameters = serde_json::json!({
        "rooms": args.rooms,
        "members": args.members,
        "rate_per_member": args.rate,
        "duration_secs": args.duration,
        "body_bytes": args.body_bytes,
        "placement": args.placement,
        "offered_sends_per_sec": clients as f64 * args.rate,
        "offered_deliveries_per_sec": clients as f64 * args.rate * args.members as f64,
        "users": identities.users.len(),
    });
    if let Some(every) = reconnect_every {
        parameters["reconnect_every_secs"] = every.into();
    }
    Ok(run.traffic_report(scenario, parameters, outcome, before, after))
}

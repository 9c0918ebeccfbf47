//! `burst`: one large room — thousands of members that only listen, a few that send — and a
//! burst of messages from the senders, as fast as the server acknowledges them (or at
//! `--rate`). Shows how long the slowest member takes to receive a burst, and that every member
//! receives all of it in order.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::BurstArgs;
use crate::report::Report;
use crate::setup::Identities;

use super::member::{Plan, SendPlan};
use super::{Run, StopSending, create_rooms, run_members};

pub async fn run(run: &Run, args: &BurstArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.members > 0, "--members must be at least 1");
    anyhow::ensure!(
        args.senders > 0 && args.senders <= args.members,
        "--senders must be between 1 and --members"
    );
    crate::net::ensure_open_files(args.members + 16)?;
    let identities = Identities::provision(run.api(), &run.common, args.senders).await?;
    let rooms = create_rooms(run, &identities.users[0].token, 1).await?;
    let room: Arc<str> = rooms[0].clone();
    let nodes = run.nodes.len();
    let mut plans = Vec::with_capacity(args.members);
    for id in 0..args.members {
        let sends = id < args.senders;
        let token = if sends {
            identities.sender(id).token.clone()
        } else {
            identities.listener(id)?
        };
        plans.push(Plan {
            id,
            token,
            room: room.clone(),
            node: id % nodes,
            send: sends.then_some(SendPlan {
                rate: args.rate,
                limit: Some(args.messages as u64),
                body_bytes: args.body_bytes,
            }),
            reconnect_every: None,
        });
    }
    let total = (args.senders * args.messages) as u64;
    let before = run.sample_nodes().await;
    let outcome = run_members(
        run,
        plans,
        &rooms,
        StopSending::WhenSent {
            total,
            timeout: Duration::from_secs(300),
        },
        &identities.users[0].token,
    )
    .await;
    let after = run.sample_nodes().await;
    Ok(run.traffic_report(
        "burst",
        serde_json::json!({
            "members": args.members,
            "senders": args.senders,
            "messages_per_sender": args.messages,
            "rate_per_sender": args.rate,
            "body_bytes": args.body_bytes,
            "expected_deliveries": total * args.members as u64,
        }),
        outcome,
        before,
        after,
    ))
}

//! `reconnect`: fanout traffic while every member drops its connection now and then (about
//! every `--reconnect-every` seconds) and rejoins on the next node with `since` = the last seq
//! it saw, resending unacknowledged messages with the same `client_msg_id`. Verification is the
//! same as fanout's: across all the drops, nothing lost, duplicated or out of order. The report
//! adds the time from each drop to being caught up again.

use crate::cli::ReconnectArgs;
use crate::report::Report;

use super::Run;

pub async fn run(run: &Run, args: &ReconnectArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.reconnect_every > 0.0,
        "--reconnect-every must be above 0"
    );
    super::fanout::traffic(run, &args.fanout, Some(args.reconnect_every), "reconnect").await
}

//! The command line: one subcommand per scenario, and the options every scenario shares (nodes,
//! identities, output files and service-level limits).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "bosar-loadtest",
    version,
    about = "Drive BoSar Chat nodes with many WebSocket clients; verify delivery, measure latency and capacity"
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// R rooms × M members, every member sending at a fixed rate; clients spread round-robin
    /// over the `--url` nodes.
    Fanout(FanoutArgs),
    /// Open N idle connections at a ramp rate, hold them, and report the server's memory and CPU
    /// per connection from its /metrics.
    Capacity(CapacityArgs),
    /// Like fanout, while clients repeatedly drop their connection and rejoin on the next node
    /// with `since`.
    Reconnect(ReconnectArgs),
    /// One large room: thousands of listening members and a few senders that send a burst.
    Burst(BurstArgs),
}

impl Scenario {
    pub fn common(&self) -> &Common {
        match self {
            Self::Fanout(a) => &a.common,
            Self::Capacity(a) => &a.common,
            Self::Reconnect(a) => &a.fanout.common,
            Self::Burst(a) => &a.common,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Fanout(_) => "fanout",
            Self::Capacity(_) => "capacity",
            Self::Reconnect(_) => "reconnect",
            Self::Burst(_) => "burst",
        }
    }
}

/// Options shared by every scenario.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// A node's base URL (http://host:port); repeat for several nodes. Clients are spread over
    /// them round-robin.
    #[arg(long = "url", default_value = "http://127.0.0.1:3001")]
    pub urls: Vec<String>,

    /// The server's JWT secret: mint tokens locally instead of using the ones that registration
    /// returns. Senders are still registered once through the API (their messages reference
    /// the user's row); receive-only clients get fresh ids and need no registration.
    #[arg(long, env = "BOSAR_LOADTEST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Distinct registered users; connections share them round-robin (one user may have many
    /// connections).
    #[arg(long, default_value_t = 50)]
    pub users: usize,

    /// Prefix of the usernames the harness registers (`<prefix>-u<i>`). Users that already exist
    /// are logged in with `--password`.
    #[arg(long, default_value = "lt")]
    pub user_prefix: String,

    /// Password of the harness's users.
    #[arg(long, default_value = "loadtest-password")]
    pub password: String,

    /// Prefix of room names; default: `lt-<run id>`, so that every run starts with empty rooms.
    #[arg(long)]
    pub room_prefix: Option<String>,

    /// How many connections to open per second while setting up.
    #[arg(long, default_value_t = 500.0)]
    pub connect_rate: f64,

    /// Spread client sockets over this many source addresses 127.0.0.2, 127.0.0.3, … (loopback
    /// targets only), so that more than one address's worth of ephemeral ports is available.
    /// 0 lets the kernel choose.
    #[arg(long, default_value_t = 32)]
    pub source_addrs: u8,

    /// After the run, how long to wait for outstanding acks and deliveries.
    #[arg(long, default_value_t = 15.0)]
    pub drain_secs: f64,

    /// Write the full report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Write a self-contained HTML report (inline SVG charts) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,

    /// Fail when the send→deliver p99 latency exceeds this many milliseconds.
    #[arg(long)]
    pub max_p99_ms: Option<f64>,

    /// Fail when the send→ack p99 latency exceeds this many milliseconds.
    #[arg(long)]
    pub max_ack_p99_ms: Option<f64>,

    /// Fail when more than this many errors (error frames, failed connections, unexpected
    /// closes) were seen.
    #[arg(long)]
    pub max_errors: Option<u64>,

    /// The process id of the node at the same position in `--url`, when it runs on this
    /// machine: memory and CPU are then read from /proc (CPU in clock ticks) instead of
    /// /metrics, whose CPU counter counts whole seconds only.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,

    /// No progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

/// Traffic shape shared by fanout and reconnect.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Number of rooms.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Members (connections) per room; each joins only its room.
    #[arg(long, default_value_t = 10)]
    pub members: usize,
    /// Messages per second that every member sends (fractions allowed).
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Message body size in bytes (at least the timestamp header, about 40 bytes).
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
    /// Where clients connect first; a client that loses its node moves to the next `--url`.
    #[arg(long, value_enum, default_value_t = Placement::Spread)]
    pub placement: Placement,
}

/// Which node each client of a room connects to first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Member i of every room on node i mod N: each room spans every node, which is what
    /// failed stickiness looks like.
    Spread,
    /// Every client on the first `--url`; the others are where they fail over to (a node
    /// killed under its clients).
    First,
}

impl Placement {
    /// The node index member `member` of a room starts on, among `nodes`.
    pub fn node(self, member: usize, nodes: usize) -> usize {
        match self {
            Self::Spread => member % nodes.max(1),
            Self::First => 0,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ReconnectArgs {
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// Mean seconds between a client's drops; each drop rejoins on the next node with `since`.
    #[arg(long, default_value_t = 5.0)]
    pub reconnect_every: f64,
}

#[derive(Debug, Clone, Args)]
pub struct CapacityArgs {
    #[command(flatten)]
    pub common: Common,
    /// Idle connections to open.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Seconds to hold them once all are open (CPU per connection is measured over this).
    #[arg(long, default_value_t = 30.0)]
    pub hold: f64,
    /// Also join each connection to one of this many rooms (0: connect only).
    #[arg(long, default_value_t = 0)]
    pub rooms: usize,
}

#[derive(Debug, Clone, Args)]
pub struct BurstArgs {
    #[command(flatten)]
    pub common: Common,
    /// Members of the one room (listeners plus senders).
    #[arg(long, default_value_t = 2000)]
    pub members: usize,
    /// How many of the members send.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Messages each sender sends in the burst.
    #[arg(long, default_value_t = 20)]
    pub messages: usize,
    /// Messages per second per sender during the burst (0: as fast as acks come back).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::Placement;

    #[test]
    fn clients_spread_over_the_nodes_or_start_on_the_first() {
        let spread: Vec<usize> = (0..5).map(|m| Placement::Spread.node(m, 2)).collect();
        assert_eq!(spread, [0, 1, 0, 1, 0]);
        assert!((0..5).all(|m| Placement::First.node(m, 3) == 0));
    }
}

//! The live progress line: a bar over the planned time (or connections) with the current phase
//! and rates — connections, sends, acks and deliveries per second, errors. Drawn on stderr only
//! when it is a terminal.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stats::{Live, Stats};

pub struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(stats: Arc<Stats>, quiet: bool) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(100),
            if quiet {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr()
            },
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let ticking = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut last = Counts::read(&stats.live);
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            loop {
                interval.tick().await;
                let now = Counts::read(&stats.live);
                ticking.set_message(format!(
                    "conn {} | sent {}/s | acked {}/s | delivered {}/s | errors {}",
                    now.connected,
                    now.sent - last.sent,
                    now.acked - last.acked,
                    now.delivered - last.delivered,
                    now.errors,
                ));
                last = now;
            }
        });
        Self { bar, ticker }
    }

    /// A new phase: its name and how many steps (seconds, connections) it has.
    pub fn phase(&self, name: &str, len: u64) {
        self.bar.set_prefix(name.to_owned());
        self.bar.set_length(len.max(1));
        self.bar.set_position(0);
    }

    pub fn set(&self, position: u64) {
        self.bar.set_position(position);
    }

    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

#[derive(Clone, Copy)]
struct Counts {
    connected: u64,
    sent: u64,
    acked: u64,
    delivered: u64,
    errors: u64,
}

impl Counts {
    fn read(live: &Live) -> Self {
        let get = |c: &AtomicU64| Live::get(c);
        Self {
            connected: get(&live.connected),
            sent: get(&live.sent),
            acked: get(&live.acked),
            delivered: get(&live.delivered),
            errors: get(&live.errors),
        }
    }
}

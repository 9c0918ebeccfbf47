//! Logging: one `tracing` subscriber for the process, JSON lines (production) or pretty text
//! (development) on stdout, filtered by `RUST_LOG`.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

static INIT: Once = Once::new();

/// Installs the global subscriber once; later calls (several nodes in one test) are no-ops.
pub fn init(log: &LogConfig) {
    INIT.call_once(|| {
        let filter = EnvFilter::try_new(&log.filter).unwrap_or_else(|_| EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stdout);
        let result = match log.format {
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .try_init(),
            LogFormat::Pretty => builder.compact().try_init(),
        };
        // A subscriber installed by someone else (a test harness) is fine to keep.
        drop(result);
    });
}

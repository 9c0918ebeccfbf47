//! The `bosar-chat` binary: parses the command line and runs it on the actix runtime.

use std::process::ExitCode;

use clap::Parser;

use bosar_chat::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    bosar_chat::store::connect::install_crypto_provider();
    let result = actix_rt::System::new().block_on(cli::run(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the cause chain joined, never a backtrace.
            eprintln!("bosar-chat: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// jemalloc returns freed memory to the system: a burst of Argon2 hashes (~19 MiB each) would
/// otherwise stay resident in glibc's per-thread arenas.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

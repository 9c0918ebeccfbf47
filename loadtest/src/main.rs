//! The `bosar-loadtest` binary: parses the command line, runs the scenario on a multi-threaded
//! runtime, prints the table, writes `--json` and `--report`, and exits 1 when the run failed
//! (2 when it could not run at all).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use bosar_loadtest::cli::Cli;
use bosar_loadtest::report;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bosar-loadtest: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match runtime.block_on(bosar_loadtest::execute(&cli.scenario)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("bosar-loadtest: {e:#}");
            return ExitCode::from(2);
        }
    };
    let common = cli.scenario.common();
    let mut status = if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = report::table::write(&report, &mut stdout).and_then(|()| stdout.flush()) {
        eprintln!("bosar-loadtest: writing the table: {e}");
    }
    if let Some(path) = &common.json
        && let Err(e) = report::json::write(&report, path)
    {
        eprintln!("bosar-loadtest: {e:#}");
        status = ExitCode::from(2);
    }
    if let Some(path) = &common.report
        && let Err(e) = report::html::write(&report, path)
    {
        eprintln!("bosar-loadtest: {e:#}");
        status = ExitCode::from(2);
    }
    // Client tasks that are still closing need not be waited for.
    runtime.shutdown_background();
    status
}

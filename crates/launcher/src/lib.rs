//! # mfubench-launcher — the user-facing command line, as a library
//!
//! `mfubench` plans, launches and reports GPU-cluster training-throughput
//! benchmarks. Subcommands:
//! - `run`: start `mfubench-worker` ranks with mpirun or srun, supervise them
//!   (progress, timeout, Ctrl-C), then report ([`run_cmd`]);
//! - `accept`: the staged acceptance suite ([`accept_cmd`]), launched and
//!   supervised as `run`, ending with one verdict line per finding;
//! - `soak`: the burn-in ([`soak_cmd`]): rounds for hours, a window at a
//!   time into soak.jsonl, fail-slow / drift / SDC rules;
//! - `report` / `compare`: summaries, exports, verdicts and run-to-run
//!   comparison from `run.json` files ([`report_cmd`], over `mfubench-report`);
//! - `flops` / `presets`: the FLOP calculator ([`flops_cmd`]);
//! - `project`: step time and MFU at more nodes from measured runs
//!   ([`project_cmd`]).
//!
//! Exit codes ([`exit`]): 0 ok, 1 acceptance failed, 2 usage or config
//! error, 3 run failed or timed out, 130 interrupted.

//!
//! The binary (`src/main.rs`) is a thin `main` over [`main`]: tests and
//! other tools use the same functions and constants (the launcher's abort
//! grace, the simulated GPU's variables) instead of copying them.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod accept_cmd;
pub mod args;
pub mod exit;
pub mod flops_cmd;
pub mod project_cmd;
pub mod report_cmd;
pub mod run_cmd;
pub mod soak_cmd;

/// Measure how well a GPU cluster turns hardware into training throughput.
#[derive(Debug, Parser)]
#[command(name = "mfubench", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a benchmark: launch the worker ranks, supervise them, report.
    Run(run_cmd::RunArgs),
    /// Acceptance suite: device, node, link, sweep and step stages; names the
    /// bad GPU, node or link; exit 1 on any FAIL.
    Accept(accept_cmd::AcceptArgs),
    /// Burn-in: rounds of the step for a duration, judged per window
    /// (fail-slow, drift, throttling, jitter, silent data corruption, XID,
    /// ECC); soak.jsonl and report.html after every window.
    Soak(soak_cmd::SoakArgs),
    /// Summarise a run directory or run.json (tables, exports, verdict).
    Report(report_cmd::ReportArgs),
    /// Compare two runs side by side; exit 1 on a regression.
    Compare(report_cmd::CompareArgs),
    /// FLOP calculator: per-token FLOPs, training FLOPs and days, MFU from a log.
    Flops(flops_cmd::FlopsArgs),
    /// List the model presets.
    Presets(flops_cmd::PresetsArgs),
    /// Project step time, exposed communication and MFU to more nodes from
    /// measured runs (α-β link fits, the worker's schedule replayed in
    /// virtual time); --validate checks a projection against a larger run.
    Project(project_cmd::ProjectArgs),
}

/// `mfubench` with the process's arguments: the exit code to end with.
pub fn main() -> ExitCode {
    // Die quietly on a closed pipe (`mfubench flops | head`) instead of panicking.
    // SAFETY: resetting SIGPIPE to its default disposition before any thread
    // starts has no other effect on the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(a) => run_cmd::run(a),
        Command::Accept(a) => accept_cmd::run_accept(a),
        Command::Soak(a) => soak_cmd::run_soak(a),
        Command::Report(a) => report_cmd::run_report(a),
        Command::Compare(a) => report_cmd::run_compare(a),
        Command::Flops(a) => flops_cmd::run_flops(a),
        Command::Presets(a) => flops_cmd::run_presets(a),
        Command::Project(a) => project_cmd::run_project(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("mfubench: error: {e:#}");
            ExitCode::from(exit::code_of(&e))
        }
    }
}

//! `mfubench report` and `mfubench compare` (filled by the Report issue).

use anyhow::Result;
use clap::Args;

use crate::exit::usage;

/// Arguments of `mfubench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory or its run.json.
    pub run: String,
}

/// Arguments of `mfubench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Baseline run directory or run.json.
    pub baseline: String,
    /// New run directory or run.json.
    pub new: String,
}

/// Runs `mfubench report`.
pub fn run_report(args: &ReportArgs) -> Result<u8> {
    Err(usage(format!("{}: `mfubench report` is not built yet", args.run)))
}

/// Runs `mfubench compare`.
pub fn run_compare(args: &CompareArgs) -> Result<u8> {
    Err(usage(format!("{} vs {}: `mfubench compare` is not built yet", args.baseline, args.new)))
}

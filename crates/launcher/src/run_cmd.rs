//! `mfubench run` (filled by the Launcher issue).

use anyhow::Result;
use clap::Args;

use crate::exit::usage;

/// Arguments of `mfubench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file.
    pub config: String,
}

/// Runs `mfubench run`.
pub fn run(args: &RunArgs) -> Result<u8> {
    Err(usage(format!("{}: `mfubench run` is not built yet", args.config)))
}

//! Exit codes of `mfubench` (documented in docs/running.md) and errors that carry
//! one. Any error without a code is a run failure (3).

use std::fmt;

pub use mfubench_core::protocol::exit::*;

/// An error with the exit code it should produce.
#[derive(Debug)]
pub struct Coded {
    /// Process exit code.
    pub code: u8,
    /// One-line message.
    pub message: String,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// A usage / config error (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Coded {
        code: USAGE,
        message: message.into(),
    }
    .into()
}

/// A run failure (exit 3).
pub fn run_failed(message: impl Into<String>) -> anyhow::Error {
    Coded {
        code: RUN_FAILED,
        message: message.into(),
    }
    .into()
}

/// The exit code an error should produce.
pub fn code_of(e: &anyhow::Error) -> u8 {
    e.chain()
        .find_map(|c| c.downcast_ref::<Coded>().map(|c| c.code))
        .unwrap_or(RUN_FAILED)
}

/// The exit code of a report's verdict, by the one mapping of
/// [`mfubench_core::verdict::exit_code`]: 3 for an INCOMPLETE run (unless
/// `allow_partial`, which judges the rules of the modes that finished),
/// 0 when the run is accepted, else 1 (a rule FAILED, or could not be
/// judged: SKIPPED is not a pass; INCONCLUSIVE neither, unless
/// `allow_inconclusive`).
pub fn verdict_code(
    v: &mfubench_report::Verdict,
    allow_partial: bool,
    allow_inconclusive: bool,
) -> u8 {
    v.exit_code(allow_partial, allow_inconclusive)
}

//! Machine-readable lines for the launcher: `@@mfubench ` followed by one
//! JSON object on stdout. Every rank prints `hello` at start and
//! `rank_done` before a normal exit; rank 0 prints `start`, `iteration`,
//! `mode_done` and `done`. Everything else on stdout/stderr is for people.

use serde_json::Value;
use std::io::Write;

/// The prefix the launcher looks for.
pub const PREFIX: &str = "@@mfubench ";

/// Prints one event line and flushes, so the launcher sees it at once.
pub fn emit(event: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{PREFIX}{event}");
    let _ = out.flush();
}

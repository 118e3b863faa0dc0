//! Prints the worker's progress events ([`mfubench_core::protocol::Event`])
//! for the launcher: one line each on stdout, flushed at once.

use mfubench_core::protocol::Event;
use std::io::Write;

/// Prints one event line and flushes, so the launcher sees it at once.
pub fn emit(event: &Event) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", event.to_line());
    let _ = out.flush();
}

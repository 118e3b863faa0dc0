//! How an integration test skips: one policy for the whole workspace. Not a
//! crate: the tests of each crate include this one file with
//! `#[path = "…/crates/test-support/skip.rs"] mod skipping;` (the launcher's
//! and the report's `tests/common`, the worker's test files).
//!
//! - [`skip`]: this machine lacks something CI installs or has (a program,
//!   root, a library the workspace build makes, two cores). Prints
//!   `skipped: TEST: REASON` and the test passes. With `CI=true` (`.ci/run`
//!   runs `ci/test.sh` with it) it panics instead: a CI image missing a
//!   package must not stay green by skipping.
//! - [`skip_allowed`]: something CI cannot have or cannot force (a GPU on a
//!   CPU-only machine, a race the fault lost). Never fails; prints
//!   `skipped: TEST: REASON (WHY)`.
//!
//! Both write to the stderr handle directly: libtest captures `println!` and
//! `eprintln!` of passing tests, and a skip must show in the log. Every line
//! starts with `skipped: ` (ci/gpu-check.sh looks for it).
#![allow(dead_code)] // each test binary uses a subset

use std::io::Write;

/// Whether the tests run in CI: `CI=true` (or `1`), as `.ci/run` and most
/// CI systems set it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The running test's name: libtest names each test's thread after it.
pub fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string()
}

/// Skips `test` for want of something CI installs or has: prints
/// `skipped: TEST: REASON` (the test then returns). With `CI=true` panics
/// with the same reason instead.
#[track_caller]
pub fn skip(test: &str, reason: &str) {
    if in_ci() {
        panic!("{test}: {reason}; CI=true: a skip here would hide a missing install step");
    }
    let _ = writeln!(std::io::stderr().lock(), "skipped: {test}: {reason}");
}

/// Skips `test` for something CI cannot have or cannot force, even with
/// `CI=true`; `why` says which (e.g. "no GPU; expected in CI"). Prints
/// `skipped: TEST: REASON (WHY)`.
pub fn skip_allowed(test: &str, reason: &str, why: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "skipped: {test}: {reason} ({why})"
    );
}

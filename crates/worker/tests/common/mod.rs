//! Shared helpers of the worker's integration tests: the one mpirun line,
//! the lock that runs MPI jobs one at a time, the skips
//! (crates/test-support/skip.rs) and the one signal helper.
#![allow(dead_code)] // each test binary uses a subset

use std::ffi::OsStr;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// Skips: see crates/test-support/skip.rs.
#[path = "../../../test-support/skip.rs"]
pub mod skipping;

/// Bounded stops of children: see crates/test-support/reap.rs.
#[path = "../../../test-support/reap.rs"]
pub mod reap;

/// The worker binary cargo built beside the tests.
pub const WORKER: &str = env!("CARGO_BIN_EXE_mfubench-worker");

/// MPI tests run one at a time: concurrent jobs on a 2-core machine would
/// distort each other's timings.
static MPI_LOCK: Mutex<()> = Mutex::new(());

/// Holds the MPI lock of this test binary (a test that panicked while
/// holding it does not poison it for the others).
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether mpirun runs here.
pub fn have_mpirun() -> bool {
    Command::new("mpirun").arg("--version").output().is_ok()
}

/// `mpirun --allow-run-as-root -np NP PROGRAM` on a machine with few cores:
/// oversubscribed, unbound, ranks yielding while they wait. Add the
/// program's arguments.
pub fn mpirun(np: usize, program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "--bind-to",
        "none",
    ])
    .args(["--mca", "mpi_yield_when_idle", "1", "-np", &np.to_string()])
    .arg(program);
    c
}

/// `mpirun --allow-run-as-root -np NP PROGRAM` with Open MPI's defaults
/// (a GPU machine: one rank a core, bound).
pub fn mpirun_plain(np: usize, program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "-np", &np.to_string()])
        .arg(program);
    c
}

/// Sends `sig` to `pid` (a process the test started); the process may be
/// gone already.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

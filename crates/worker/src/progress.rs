//! Prints the worker's progress events ([`mfubench_core::protocol::Event`])
//! for the launcher: one line each on stdout, flushed at once; and the
//! heartbeat: where this rank is, every
//! [`mfubench_core::protocol::HEARTBEAT_EVERY`], from a thread of its own, so
//! that a rank that stops (SIGSTOP, a hang in the kernel, a cut link) is
//! told from the ranks waiting for it by the launcher, on any host.

use mfubench_core::protocol::{Event, HEARTBEAT_EVERY};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Prints one event line and flushes, so the launcher sees it at once.
pub fn emit(event: &Event) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", event.to_line());
    let _ = out.flush();
}

/// Where this rank is: mode, iteration, op (see [`Event::Heartbeat`]).
#[derive(Debug, Clone, Default)]
struct Position {
    mode: String,
    iteration: String,
    op: String,
}

/// This process's MPI rank, once the heartbeat is started.
static RANK: OnceLock<u64> = OnceLock::new();
/// The position the heartbeat reports.
static POSITION: Mutex<Position> = Mutex::new(Position {
    mode: String::new(),
    iteration: String::new(),
    op: String::new(),
});

/// Records where this rank is; the next heartbeat says so.
pub fn set_position(mode: &str, iteration: &str, op: &str) {
    let mut p = POSITION.lock().unwrap_or_else(|e| e.into_inner());
    if p.mode != mode || p.iteration != iteration || p.op != op {
        *p = Position {
            mode: mode.to_string(),
            iteration: iteration.to_string(),
            op: op.to_string(),
        };
    }
}

/// Starts the heartbeat thread of rank `rank` (once per process; later
/// calls do nothing). It runs until the process ends.
pub fn start_heartbeat(rank: u64) {
    if RANK.set(rank).is_err() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || loop {
            let p = POSITION.lock().unwrap_or_else(|e| e.into_inner()).clone();
            emit(&Event::Heartbeat {
                rank,
                mode: p.mode,
                iteration: p.iteration,
                op: p.op,
            });
            std::thread::sleep(HEARTBEAT_EVERY);
        });
    if let Err(e) = spawned {
        crate::say!("mfubench-worker: rank {rank}: cannot start the heartbeat thread: {e}");
    }
}

/// Tells the launcher this rank's watchdog is about to end the job, so that
/// it starts the abort grace period at once (mpirun may never end by itself
/// when a host is unreachable).
pub fn aborting(reason: &str) {
    if let Some(&rank) = RANK.get() {
        emit(&Event::Aborting {
            rank,
            reason: reason.to_string(),
        });
    }
}

//! What every flow of a rank carries ([`Session`]: who, where its results
//! go, its test hooks) and the one barrier under the watchdog that every
//! flow waits at ([`Session::barrier`]).

use std::path::PathBuf;
use std::time::Duration;

use mpi::topology::SimpleCommunicator;

use mfubench_core::protocol::Event;

use crate::mpi_comm;
use crate::progress::emit;
use crate::rank::Rank;

/// Test hooks of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hooks {
    /// This rank corrupts one reduced element once, to show the check
    /// reports it.
    pub inject_wrong_rank: Option<u64>,
    /// (rank, seconds): that rank starts every other step (the odd ones,
    /// counted from its first) this late, a straggler the others wait for
    /// at the collectives; one run then holds late and on-time steps
    /// interleaved, so a test compares them paired.
    pub late_rank: Option<(u64, f64)>,
}

/// One rank's run: who it is, the run's id and folder, its test hooks.
#[derive(Clone)]
pub struct Session<'r> {
    /// This rank.
    pub rank: &'r Rank,
    /// The run id (`<run-id>`, or `<run-id>/variants/<k>` for a variant).
    pub run_id: String,
    /// Where run.json (or accept.json, vary.json) is written.
    pub run_dir: PathBuf,
    /// Test hooks.
    pub hooks: Hooks,
}

impl<'r> Session<'r> {
    /// The session of variant `k` of a `--vary` job, writing into `dir`.
    pub fn variant(&self, k: usize, dir: PathBuf) -> Session<'r> {
        Session {
            rank: self.rank,
            run_id: format!("{}/variants/{k}", self.run_id),
            run_dir: dir,
            hooks: self.hooks,
        }
    }

    /// Tells the launcher this rank is healthy and waiting for others at
    /// `at`.
    pub fn waiting(&self, at: &str) {
        emit(&Event::Waiting {
            rank: self.rank.job_rank,
            at: at.to_string(),
        });
    }

    /// A barrier on `comm` under the watchdog: a rank that does not arrive
    /// within `limit` (stopped, dead, stuck in an op) ends the job instead
    /// of hanging it. `at` names the point ("before mode comm, timed
    /// iteration 3"); the launcher shows it while this rank waits.
    pub fn barrier(&self, comm: &SimpleCommunicator, limit: Duration, at: &str) {
        let mut say_waiting = || self.waiting(&format!("barrier {at}"));
        if !mpi_comm::quiet_barrier(comm, limit, &mut say_waiting) {
            self.rank.abort(format!(
                "watchdog: this rank waited {} s at the barrier {at} for a rank that never arrived (stopped, dead or stuck; the launcher names it)",
                limit.as_secs_f64()
            ));
        }
    }
}

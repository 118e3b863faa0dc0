//! Who this process is in the job, and how the ranks take decisions
//! together.
//!
//! Every decision that changes what a rank does next (stop on an error,
//! which backend, which peak) must be taken by every rank alike, or the
//! ranks enter different collectives and hang. [`Rank::agree`] is the only
//! way to do that: each rank brings its own result, all learn whether any
//! failed, and all stop with the same exit code. [`Rank::all`] is its form
//! for choices that are not errors.

use std::fmt::Display;

use mpi::collective::SystemOperation;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use mpi::Threading;

use mfubench_core::protocol::exit;

/// How a rank ends when it does not complete the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Usage, config or environment error found before any compute (exit 2).
    Usage,
    /// The run failed (exit 3).
    RunFailed,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Usage => exit::USAGE,
            Exit::RunFailed => exit::RUN_FAILED,
        }
    }

    fn from_code(code: u64) -> Exit {
        if code == u64::from(exit::USAGE) {
            Exit::Usage
        } else {
            Exit::RunFailed
        }
    }
}

/// A usage-class error message (config, flags, files).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl From<&UsageError> for Exit {
    fn from(_: &UsageError) -> Exit {
        Exit::Usage
    }
}

/// A run-class error message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RunError(pub String);

impl From<&RunError> for Exit {
    fn from(_: &RunError) -> Exit {
        Exit::RunFailed
    }
}

/// Identity of this rank.
pub struct Rank {
    /// The world communicator.
    pub world: SimpleCommunicator,
    /// MPI rank in the world.
    pub rank: u64,
    /// World size.
    pub size: u64,
    /// Host name.
    pub host: String,
    /// Rank among the ranks of this host (MPI's shared-memory split).
    pub local_rank: u64,
    /// Ranks on this host.
    pub ranks_on_host: u64,
    /// The thread support MPI granted.
    pub threading: Threading,
    /// This process's rank in the job (`MPI_COMM_WORLD`), by which the
    /// launcher knows it: `rank` itself, except in a rank made of a
    /// sub-communicator ([`Rank::within`]). Events and error lines carry it.
    pub job_rank: u64,
}

impl Rank {
    /// This process's identity, from MPI (never from `SLURM_PROCID`).
    pub fn new(world: SimpleCommunicator, threading: Threading) -> Rank {
        let local = world.split_shared(world.rank());
        Rank {
            rank: world.rank() as u64,
            size: world.size() as u64,
            host: hostname(),
            local_rank: local.rank() as u64,
            ranks_on_host: local.size() as u64,
            job_rank: world.rank() as u64,
            world,
            threading,
        }
    }

    /// This process as a rank of `comm`, a sub-communicator of `parent`'s
    /// world (the acceptance step without the nodes left out): numbered
    /// within `comm`, and still known to the launcher by its job rank.
    /// Collective over `comm`.
    pub fn within(comm: SimpleCommunicator, parent: &Rank) -> Rank {
        Rank {
            job_rank: parent.job_rank,
            ..Rank::new(comm, parent.threading)
        }
    }

    /// Prints an error of this rank, naming it and its host, and tells the
    /// launcher (a `rank_error` event).
    pub fn error(&self, msg: impl Display) {
        crate::progress::emit(&mfubench_core::protocol::Event::RankError {
            rank: self.job_rank,
            message: msg.to_string(),
        });
        crate::say!(
            "mfubench-worker: rank {} on {}: error: {msg}",
            self.job_rank,
            self.host
        );
    }

    /// Whether this is rank 0, which reads the config and writes run.json.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Takes a decision together: every rank calls it with its own result;
    /// a rank that failed prints its error; if any rank failed, every rank
    /// gets the most severe exit of them all, else its own value.
    /// Collective: every rank must call it at the same point.
    pub fn agree<T, E>(&self, result: Result<T, E>) -> Result<T, Exit>
    where
        E: Display,
        for<'a> Exit: From<&'a E>,
    {
        let mine = match &result {
            Ok(_) => 0u64,
            Err(e) => {
                self.error(e);
                u64::from(Exit::from(e).code())
            }
        };
        let mut worst = 0u64;
        self.world
            .all_reduce_into(&mine, &mut worst, SystemOperation::max());
        match result {
            Ok(v) if worst == 0 => Ok(v),
            _ => Err(Exit::from_code(worst)),
        }
    }

    /// Whether `mine` holds on every rank: the same answer everywhere, for
    /// choices that are not errors (which backend `auto` picks, whether the
    /// datasheet peak is known on every device). Collective.
    pub fn all(&self, mine: bool) -> bool {
        let failing = u64::from(!mine);
        let mut any = 0u64;
        self.world
            .all_reduce_into(&failing, &mut any, SystemOperation::max());
        any == 0
    }

    /// Ends the whole job from one rank (the watchdog): no other rank can be
    /// relied on to reach a collective.
    pub fn abort(&self, e: impl Display) -> ! {
        // Not a rank_error event: a watchdog that gave up is usually a rank
        // waiting for a culprit, which the launcher names from heartbeats.
        let reason = e.to_string();
        crate::progress::aborting(&reason);
        crate::say!(
            "mfubench-worker: rank {} on {}: error: {reason}; aborting the job",
            self.job_rank,
            self.host
        );
        self.world.abort(i32::from(exit::RUN_FAILED))
    }
}

/// This host's name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer we
    // own and NUL-terminates when the name fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

//! # mfubench-worker: the MPI program
//!
//! One process per device, started by mpirun or srun. Each rank:
//! 1. takes its identity from MPI (never from `SLURM_PROCID`, which is 0 on
//!    every rank under mpirun inside sbatch), its host name, and its local
//!    rank among the ranks of its host (MPI's shared-memory split);
//! 2. builds the [`mfubench_core::plan::StepPlan`] from the config rank 0
//!    read and broadcast;
//! 3. runs each mode (compute, comm, serialized, overlapped) through the
//!    [`schedule`] on a [`backend::Backend`], with an MPI barrier before
//!    every iteration and the watchdog on every op;
//! 4. verifies every all-reduce result against the known sum
//!    ([`mfubench_core::check`]);
//! 5. times each collective from its group's last arrival, on clocks put
//!    on rank 0's time line ([`clock`], [`record`]), and
//!    sends its [`mfubench_core::result::RankRecord`] to rank 0, which
//!    computes the summary with core's formulas and writes
//!    `OUT/<run-id>/run.json` atomically.
//!
//! With `--accept` the rank runs the acceptance suite instead ([`accept`]);
//! with `--vary` every variant of the config, interleaved per round ([`vary`]).
//!
//! Every flow takes one [`session::Session`] and runs its timed steps on
//! one [`executor::Executor`] (a plain run is a `--vary` job of one
//! variant); the backend kind becomes types at one point,
//! [`platform::dispatch`].
//!
//! Backends implement only streams, events, GEMM and all-reduce
//! ([`backend`]); the schedule is written once. The CPU backend is [`cpu`], the GPU backend [`cuda`].

pub mod accept;
pub mod backend;
pub mod benchmark;
pub mod clock;
pub mod cpu;
pub mod cuda;
pub mod executor;
pub mod group;
pub mod host_buf;
pub mod mpi_comm;
pub mod node_facts;
pub mod output;
pub mod platform;
pub mod progress;
pub mod rail;
pub mod rank;
pub mod record;
pub mod replay;
pub mod schedule;
pub mod session;
pub mod setup;
pub mod soak;
pub mod vary;
pub mod watchdog;

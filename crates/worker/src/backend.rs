//! The execution model every backend implements: two streams, events, GEMMs
//! and all-reduces.
//!
//! The schedule ([`crate::schedule`]) is written once against these traits.
//! A **stream** runs the ops queued on it in order; an **event** recorded on
//! a stream completes when everything queued before it has run; a stream can
//! **wait** on an event recorded on another stream; two completed events give
//! an elapsed time. Overlapped and serialized modes then differ only in the
//! waits the schedule declares, never in backend code.
//!
//! Every call only *enqueues* work and returns; [`Streams::sync_event`] is
//! the one blocking call, with a timeout, so that the schedule's watchdog can
//! name an op that never completes instead of hanging.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mfubench_core::config::{Config, Mode};
use mfubench_core::parallel::Group;
use mfubench_core::plan::StepPlan;
use mfubench_core::result::TelemetrySample;

use crate::rank::{Exit, Rank};

/// The streams of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamId {
    /// Runs GEMMs.
    Compute,
    /// Runs DDP's bucket all-reduces.
    Comm,
    /// Runs the collectives of one group (TP, FSDP shard, HSDP replicate):
    /// one stream per group, so different groups' collectives overlap.
    Group(Group),
    /// Runs a group's reduce-scatters, on a second communicator of the
    /// group: FSDP's separate reduce-scatter stream, so that a layer's
    /// reduce-scatter never holds up the next layer's all-gather.
    Reduce(Group),
}

impl StreamId {
    /// The stream's name in messages (`compute`, `comm`, `dp_shard`,
    /// `dp_shard reduce-scatter`, …).
    pub fn name(self) -> &'static str {
        match self {
            StreamId::Compute => "compute",
            StreamId::Comm => "comm",
            StreamId::Group(g) => g.name(),
            StreamId::Reduce(Group::Tp) => "tp reduce-scatter",
            StreamId::Reduce(Group::DpShard) => "dp_shard reduce-scatter",
            StreamId::Reduce(Group::DpReplicate) => "dp_replicate reduce-scatter",
            StreamId::Reduce(Group::World) => "world reduce-scatter",
            StreamId::Reduce(Group::Expert) => "ep reduce-scatter",
            StreamId::Reduce(Group::ExpertReplicate) => "dp_expert reduce-scatter",
        }
    }
}

/// Errors from a backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot run here (library missing, no device…). Usage-class:
    /// the worker exits 2.
    #[error("{0}")]
    Unavailable(String),
    /// Not enough memory for the plan's buffers. Usage-class: exit 2.
    #[error("{0}")]
    OutOfMemory(String),
    /// A call into the device, math or communication library failed.
    #[error("{0}")]
    Failed(String),
}

/// Streams and events.
pub trait Streams {
    /// An event: a marker in a stream with a completion timestamp.
    type Event;

    /// Creates an event that can be recorded and timed.
    fn new_event(&self) -> Result<Self::Event, BackendError>;

    /// Enqueues `event` on `stream`: it completes when all work queued on the
    /// stream before it has run.
    fn record(&self, stream: StreamId, event: &Self::Event) -> Result<(), BackendError>;

    /// Makes `stream` wait (without blocking the caller) until `event` completes.
    fn wait(&self, stream: StreamId, event: &Self::Event) -> Result<(), BackendError>;

    /// Blocks the caller until `event` completes or `timeout` passes;
    /// `Ok(false)` on timeout. A timeout changes nothing: the caller may
    /// wait again (the schedule waits 1 s, says it is waiting, then waits
    /// for the rest of the op timeout).
    fn sync_event(&self, event: &Self::Event, timeout: Duration) -> Result<bool, BackendError>;

    /// The caller gives up on the queued work (the op timeout passed and
    /// the job will end): stop anything that may wait forever on a peer,
    /// e.g. abort NCCL communicators. Default: nothing to stop.
    fn give_up(&self) {}

    /// Seconds from `from` to `to`, both completed.
    fn elapsed_s(&self, from: &Self::Event, to: &Self::Event) -> Result<f64, BackendError>;
}

/// GEMMs of the plan on the compute stream.
pub trait Compute: Streams {
    /// Allocates operand buffers for every op of `plan`, filled with non-zero
    /// pseudo-random data.
    fn allocate_gemms(&mut self, plan: &StepPlan) -> Result<(), BackendError>;

    /// Enqueues op `op` of the plan on `stream`.
    fn gemm(&self, stream: StreamId, op: usize) -> Result<(), BackendError>;
}

/// The plan's collectives: gradient all-reduces of the buckets, and the
/// collectives of the other parallelism patterns.
pub trait Communicator: Streams {
    /// Allocates the bucket buffers, filled with the check pattern
    /// ([`mfubench_core::check::pattern`]).
    fn allocate_buckets(&mut self, plan: &StepPlan) -> Result<(), BackendError>;

    /// Enqueues the sum all-reduce of bucket `bucket` on `stream`.
    fn all_reduce(&self, stream: StreamId, bucket: usize) -> Result<(), BackendError>;

    /// Enqueues collective `index` of [`StepPlan::collectives`] (not a
    /// bucket: TP all-reduce, FSDP all-gather or reduce-scatter, HSDP shard
    /// all-reduce) on `stream`, over its group's communicator. The buffers
    /// were allocated by [`Communicator::allocate_buckets`], and the check
    /// covers them.
    fn collective(&self, stream: StreamId, index: usize) -> Result<(), BackendError>;

    /// Called with both streams idle before an iteration: makes results of a
    /// previous iteration unable to pass the check.
    fn prepare_check(&self) -> Result<(), BackendError>;

    /// Called with both streams idle after an iteration: elements of the
    /// reduced buckets that differ from the known sum.
    fn count_wrong(&self) -> Result<u64, BackendError>;

    /// Test hook: corrupts one reduced element, as a faulty link would.
    fn corrupt_one_element(&self) -> Result<(), BackendError>;
}

/// What a backend knows about its device, typed (for the rank record and
/// run.json's versions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceRecord {
    /// Device, e.g. `cpu` or `GPU 3`.
    pub device: String,
    /// Model name (CPU model, GPU name).
    pub name: String,
    /// Details (SM count, threads, spot checks…).
    pub info: BTreeMap<String, String>,
    /// Library and driver versions (`driver`, `cuda`, `cublaslt`, `nccl`).
    pub versions: BTreeMap<String, String>,
    /// Dense peak TFLOP/s of the device for the run's dtype from the
    /// datasheet table, when the device is in it.
    pub spec_peak_tflops: Option<f64>,
}

/// A complete backend.
pub trait Backend: Compute + Communicator + Sized {
    /// Opens the backend on every rank for `plan`: device, libraries,
    /// communicator, and the check that the plan fits. Collective: every
    /// rank calls it, and every rank learns (through [`Rank::agree`]) if
    /// any could not open.
    fn open(config: &Config, rank: &Rank, plan: Arc<StepPlan>) -> Result<Self, Exit>;

    /// Whether `plan`'s buffers fit in this rank's memory now, beside what
    /// is allocated already (the check [`Backend::open`] makes), without
    /// opening anything: `Err` says how much is needed and available. Not
    /// collective. `--vary` asks it per variant, so that a variant that
    /// does not fit is reported and the others still run. The default
    /// answers yes and leaves the check to `open`.
    fn fits(_config: &Config, _rank: &Rank, _plan: &StepPlan) -> Result<(), String> {
        Ok(())
    }

    /// The device, typed.
    fn device(&self) -> DeviceRecord;

    /// Declares the normal end after the run's last collective, so that
    /// teardown may be collective (NCCL's destroy); without it a dropped
    /// backend aborts its communicator, which never waits for peers.
    fn finish(&self) {}

    /// Backend name for run.json (`cpu`, `cuda`).
    fn name(&self) -> &'static str;

    /// A device telemetry sample (clock, temperature, power, throttling),
    /// taken at the `start` or `end` of a mode; None where the device has
    /// none (the CPU backend).
    fn telemetry(&self, _mode: Mode, _at: &str) -> Option<TelemetrySample> {
        None
    }

    /// The silent-data-corruption probe of `mfubench soak`: `count` times
    /// the same small GEMM on inputs from `seed`
    /// ([`mfubench_core::soak::sdc_inputs`]), one after the other on the
    /// device's own GEMM path, each output decoded to f64; with the f64
    /// reference of the inputs the device saw and the dtype's tolerance.
    /// Called with the streams idle.
    fn sdc_probe(&self, seed: u64, count: u32) -> Result<SdcProbe, BackendError>;

    /// The device's readings for a soak window (clocks, temperature,
    /// power, throttle reasons, ECC) and the XIDs delivered since the last
    /// call; empty where the device has none (the CPU backend: the host's
    /// readings are added by the caller).
    fn window_readings(&mut self) -> mfubench_core::soak::WindowTelemetry {
        Default::default()
    }
}

/// What [`Backend::sdc_probe`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct SdcProbe {
    /// Each GEMM's output, in order, decoded to f64.
    pub outputs: Vec<Vec<f64>>,
    /// The f64 product of the inputs as the device saw them (rounded to
    /// its dtype).
    pub reference: Vec<f64>,
    /// The largest relative error the dtype allows.
    pub tolerance: f64,
}

impl From<&BackendError> for Exit {
    fn from(e: &BackendError) -> Exit {
        match e {
            BackendError::Unavailable(_) | BackendError::OutOfMemory(_) => Exit::Usage,
            BackendError::Failed(_) => Exit::RunFailed,
        }
    }
}

impl From<BackendError> for Exit {
    fn from(e: BackendError) -> Exit {
        Exit::from(&e)
    }
}

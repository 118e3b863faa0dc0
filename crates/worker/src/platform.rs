//! The one place a rank turns its backend kind into types: a [`Platform`]
//! is the pair of a [`Backend`] (streams, events, GEMM, all-reduce: the
//! benchmark, `--vary` and the acceptance suite's device and step stages)
//! and a [`BufferIo`] group (the suite's node, link and sweep stages),
//! with the few readings that differ between a CPU and a GPU.
//!
//! Every flow of the worker is generic over a `Platform` and is entered
//! through [`dispatch`], the only `match` on
//! [`mfubench_core::config::BackendKind`] in the worker: a new backend is
//! one more `Platform` and one more arm there.

use std::time::Duration;

use mfubench_core::accept::CpuTelemetry;
use mfubench_core::config::{BackendKind, Config};

use crate::backend::Backend;
use crate::cpu::{CpuBackend, HostGroup};
use crate::cuda::group::NcclGroup;
use crate::cuda::telemetry::Telemetry;
use crate::cuda::CudaBackend;
use crate::group::BufferIo;
use crate::mpi_comm::MpiGroup;
use crate::rank::{Exit, Rank};

/// What a backend kind brings: its [`Backend`] and its group.
pub trait Platform {
    /// The backend of the benchmark and of the device and step stages.
    type Backend: Backend;
    /// The group of the node, link and sweep stages (f32 elements).
    type Group: BufferIo;

    /// The group of every rank. Collective over the world.
    fn world_group(rank: &Rank, config: &Config) -> Result<Self::Group, Exit>;

    /// Declares the normal end of a group after the suite's last
    /// collective, so that its teardown may be collective (NCCL's destroy)
    /// rather than an abort.
    fn finish(_group: &Self::Group) {}

    /// This rank's GPU telemetry (NVML), where the backend has GPUs and
    /// NVML is there; the reason it is not otherwise.
    fn gpu_telemetry(_world: &Self::Group) -> Result<Telemetry, String> {
        Err("no GPU".into())
    }

    /// Telemetry of this rank's device right after the device stage;
    /// `cpu_s` is the process's CPU time over the stage's `wall_s`.
    fn telemetry(backend: &Self::Backend, cpu_s: Option<f64>, wall_s: f64) -> CpuTelemetry;
}

/// A flow to run on the platform of the run's backend ([`dispatch`]).
pub trait PlatformJob {
    /// What the flow returns.
    type Out;
    /// Runs the flow on platform `P`.
    fn run<P: Platform>(self) -> Self::Out;
}

/// Runs `job` on the platform of `kind` (`auto` has been settled by the
/// time a flow runs; it counts as CUDA, as the config resolution does).
pub fn dispatch<J: PlatformJob>(kind: BackendKind, job: J) -> J::Out {
    match kind {
        BackendKind::Cpu => job.run::<OnCpu>(),
        BackendKind::Cuda | BackendKind::Auto => job.run::<OnCuda>(),
    }
}

/// The CPU backend: MPI groups.
pub struct OnCpu;

impl Platform for OnCpu {
    type Backend = CpuBackend;
    type Group = MpiGroup;

    fn world_group(rank: &Rank, _: &Config) -> Result<MpiGroup, Exit> {
        Ok(MpiGroup::world(rank))
    }

    /// Host clock, temperature and load; the CPU share is the process's
    /// CPU time over the stage's wall time and GEMM threads (below 1: the
    /// threads did not get their cores).
    fn telemetry(backend: &CpuBackend, cpu_s: Option<f64>, wall_s: f64) -> CpuTelemetry {
        let threads = backend.threads().max(1) as f64;
        let mut t = cpu_telemetry();
        t.cpu_share = cpu_s
            .filter(|_| wall_s > 0.0)
            .map(|c| c / (wall_s * threads));
        t
    }
}

/// The CUDA backend: NCCL groups (splits by `ncclCommSplit`, the link
/// stage's exchanges by `ncclSend`/`ncclRecv` in one group).
pub struct OnCuda;

impl Platform for OnCuda {
    type Backend = CudaBackend;
    type Group = NcclGroup;

    fn world_group(rank: &Rank, config: &Config) -> Result<NcclGroup, Exit> {
        let limit = Duration::from_secs_f64(config.run.op_timeout_s);
        crate::cuda::group::open_world(rank, mfubench_core::config::Dtype::F32, limit)
    }

    fn finish(group: &NcclGroup) {
        group.mark_finished();
    }

    fn gpu_telemetry(world: &NcclGroup) -> Result<Telemetry, String> {
        world.telemetry()
    }

    /// The host's readings (the GPU's come with the device record).
    fn telemetry(_: &CudaBackend, _: Option<f64>, _: f64) -> CpuTelemetry {
        cpu_telemetry()
    }
}

/// Clock, temperature and load of this host, where it exposes them.
pub fn cpu_telemetry() -> CpuTelemetry {
    let mhz = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        let v: Vec<f64> = s
            .lines()
            .filter(|l| l.starts_with("cpu MHz"))
            .filter_map(|l| l.split(':').nth(1)?.trim().parse().ok())
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    });
    let temp_c = std::fs::read_dir("/sys/class/thermal").ok().and_then(|d| {
        d.filter_map(|e| {
            let t = std::fs::read_to_string(e.ok()?.path().join("temp")).ok()?;
            t.trim().parse::<f64>().ok().map(|m| m / 1000.0)
        })
        .reduce(f64::max)
    });
    let load1 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok());
    CpuTelemetry {
        mhz,
        temp_c,
        load1,
        cpu_share: None,
    }
}

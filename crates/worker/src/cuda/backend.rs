//! [`CudaBackend`]: one rank's device, libraries, streams, communicators
//! and buffers, and what the trait impls (`cuda/traits.rs`) build on:
//! opening, NCCL set-up, memory sizing, the streams' lookup, autotuning,
//! draining and the watchdog's polling. Everything here goes through the
//! safe layer (`Stream`, `Event`, `DeviceBuf`, `Matmul::enqueue`,
//! `NcclComm::enqueue_*`): no `unsafe`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::safe::CudaContext;

use mfubench_core::config::Dtype;
use mfubench_core::parallel::Group;
use mfubench_core::plan::StepPlan;

use super::buffers::{BucketBuffers, CollBuffers, GemmBuffers};
use super::device::{device_info, DeviceInfo};
use super::error::{drv, CudaError};
use super::gemm::{self, ColMajorGemm, GemmTypes, LtHandle, LtLib, Matmul, MemoryPlan};
use super::launch::Operands;
use super::nccl::{self, NcclComm, NcclLib};
use super::probe::{driver_present, no_driver_message, probe};
use super::stream::{self, Event, Stream};
use super::telemetry;
use crate::backend::{BackendError, StreamId, Streams};

/// Set to `0` to use cuBLASLt's first heuristic choice instead of timing
/// the candidates.
pub const AUTOTUNE_VAR: &str = "MFUBENCH_CUBLASLT_AUTOTUNE";

/// One launch group of an op: a prepared matmul run `count` times.
#[derive(Debug, Clone, Copy)]
pub(super) struct Launch {
    pub(super) matmul: usize,
    pub(super) count: u64,
    /// Bytes of its first operand, second operand and output
    /// ([`gemm::launch_bytes`]), for the rotating offsets.
    pub(super) bytes: [u64; 3],
}

/// The CUDA backend of one rank.
pub struct CudaBackend {
    // Field order is drop order: the communicator and the cuBLASLt objects
    // go before the buffers they use, the buffers before the streams, the
    // context last.
    pub(super) comm: Option<NcclComm>,
    /// A communicator split from `comm` and a stream per group of the
    /// plan's collectives ([`CudaBackend::init_groups`]).
    pub(super) groups: Vec<(StreamId, NcclComm, Stream)>,
    pub(super) matmuls: Vec<Matmul>,
    pub(super) handle: LtHandle,
    pub(super) gemm_bufs: Option<GemmBuffers>,
    pub(super) buckets: Option<BucketBuffers>,
    /// Buffers of the plan's collectives by index (None for the buckets).
    pub(super) colls: Vec<Option<CollBuffers>>,
    pub(super) compute: Stream,
    pub(super) comm_stream: Stream,
    pub(super) telemetry: Option<telemetry::Telemetry>,
    /// The soak's XID watch, registered at its first window reading
    /// (`Err`: why there is none).
    pub(super) xids: Option<Result<telemetry::XidWatcher, String>>,
    pub(super) ops: Vec<Vec<Launch>>,
    /// Where the last launch's first operand, second operand and output
    /// ended in the B, A and C buffers ([`gemm::next_operand_offset`]).
    pub(super) operand_cursors: std::cell::Cell<[u64; 3]>,
    pub(super) lt: Arc<LtLib>,
    pub(super) nccl: Arc<NcclLib>,
    pub(super) plan: Arc<StepPlan>,
    pub(super) dtype: Dtype,
    pub(super) types: GemmTypes,
    pub(super) grad_dtype: Dtype,
    pub(super) mem: MemoryPlan,
    pub(super) info: DeviceInfo,
    pub(super) rank: u64,
    pub(super) ranks: u64,
    pub(super) notes: BTreeMap<String, String>,
    pub(super) ctx: Arc<CudaContext>,
}

impl CudaBackend {
    /// Opens device `ordinal` and the libraries, and sizes the buffers of
    /// `plan` against free memory. Collective-free: the NCCL communicator is
    /// made by [`CudaBackend::init_comm`] once every rank got this far.
    /// `NCCL_RUNTIME_CONNECT` is not set here (other threads run by now):
    /// the worker sets it before MPI_Init ([`super::nccl_connect_at_init`]).
    pub fn open(
        ordinal: usize,
        plan: Arc<StepPlan>,
        dtype: Dtype,
        grad_dtype: Dtype,
        rank: u64,
        ranks: u64,
    ) -> Result<CudaBackend, BackendError> {
        if !driver_present() {
            return Err(BackendError::Unavailable(no_driver_message()));
        }
        let types = gemm::gemm_types(dtype).ok_or_else(|| {
            BackendError::Unavailable(format!(
                "run.dtype = \"{dtype}\": the cuda backend runs bf16, fp16, tf32, f32 and fp8"
            ))
        })?;
        if !matches!(grad_dtype, Dtype::Bf16 | Dtype::Fp16 | Dtype::F32) {
            return Err(BackendError::Unavailable(format!(
                "run.grad_dtype = \"{grad_dtype}\": the cuda backend all-reduces bf16, fp16 or f32"
            )));
        }
        let visible = probe().map_err(BackendError::Unavailable)?;
        if ordinal >= visible {
            return Err(BackendError::Unavailable(format!(
                "device {ordinal} requested but {visible} visible"
            )));
        }
        let ctx = stream::open_context(ordinal).map_err(|e| {
            BackendError::Unavailable(format!("cannot open CUDA device {ordinal}: {e}"))
        })?;
        let info = device_info(&ctx, ordinal).map_err(BackendError::from)?;
        let driver_major = (info.driver_cuda_version / 1000) as u32;
        let lt = Arc::new(LtLib::open(Some(driver_major)).map_err(CudaError::from)?);
        let nccl = Arc::new(NcclLib::open().map_err(CudaError::from)?);
        if dtype == Dtype::Fp8 && info.compute_capability < (8, 9) {
            return Err(BackendError::Unavailable(format!(
                "run.dtype = \"fp8\" needs compute capability 8.9 or newer (Ada, Hopper); {} is {}.{}",
                info.name, info.compute_capability.0, info.compute_capability.1
            )));
        }
        let (least, greatest) = stream::priority_range()?;
        let compute = Stream::new(&ctx, least)?;
        let comm_stream = Stream::new(&ctx, greatest)?;
        let handle = LtHandle::new(lt.clone()).map_err(CudaError::from)?;
        let (free, total) = drv("cuMemGetInfo", ctx.mem_get_info())?;
        let reserve = memory_reserve(total as u64);
        let mem = gemm::plan_memory(
            &plan,
            &types,
            grad_dtype.size_bytes(),
            free as u64,
            reserve,
            gemm::rotation_bytes(info.l2_bytes),
        )
        .map_err(BackendError::OutOfMemory)?;
        let mut notes = BTreeMap::new();
        let telemetry = match telemetry::Telemetry::open(telemetry::nvml_uuid(&info.uuid)) {
            Ok(t) => {
                if let Some(v) = t.driver_version() {
                    notes.insert("driver_version".into(), v);
                }
                Some(t)
            }
            Err(e) => {
                notes.insert("telemetry".into(), e);
                None
            }
        };
        Ok(CudaBackend {
            comm: None,
            groups: Vec::new(),
            matmuls: Vec::new(),
            handle,
            gemm_bufs: None,
            buckets: None,
            colls: Vec::new(),
            compute,
            comm_stream,
            telemetry,
            xids: None,
            ops: Vec::new(),
            operand_cursors: std::cell::Cell::new([0; 3]),
            lt,
            nccl,
            plan,
            dtype,
            types,
            grad_dtype,
            mem,
            info,
            rank,
            ranks,
            notes,
            ctx,
        })
    }

    /// NCCL unique id (call on rank 0 only), 128 bytes to broadcast.
    pub fn nccl_unique_id(&self) -> Result<Vec<u8>, BackendError> {
        Ok(self.nccl.unique_id().map_err(CudaError::from)?.to_bytes())
    }

    /// `ncclCommInitRank` with the id rank 0 broadcast: collective, under
    /// the default watchdog ([`nccl::INIT_LIMIT`]); see
    /// [`CudaBackend::init_comm_within`].
    pub fn init_comm(&mut self, id: &[u8]) -> Result<(), BackendError> {
        self.init_comm_within(id, nccl::INIT_LIMIT, nccl::WATCHDOG_EXIT_CODE)
    }

    /// `ncclCommInitRank` with the id rank 0 broadcast: collective. It
    /// returns only when every rank has called it, so it runs under an
    /// [`nccl::InitWatchdog`]: past `limit` the rank ends with `exit_code`
    /// after naming the step, instead of waiting forever for a rank that
    /// died before its init.
    pub fn init_comm_within(
        &mut self,
        id: &[u8],
        limit: Duration,
        exit_code: i32,
    ) -> Result<(), BackendError> {
        let id = nccl::UniqueId::from_bytes(id).ok_or_else(|| {
            BackendError::Failed("rank 0 could not make an NCCL unique id".into())
        })?;
        drv("cuCtxSetCurrent", self.ctx.bind_to_thread())?;
        let watchdog = nccl::InitWatchdog::arm(
            format!(
                "rank {} of {}: NCCL communicator init (ncclCommInitRank)",
                self.rank, self.ranks
            ),
            limit,
            exit_code,
        );
        let comm = NcclComm::init_rank(
            self.nccl.clone(),
            self.ranks as usize,
            id,
            self.rank as usize,
        );
        drop(watchdog);
        self.comm = Some(comm.map_err(CudaError::from)?);
        Ok(())
    }

    /// Sizes the buffers against the memory free now. Called again once the
    /// NCCL communicator exists: its buffers (NVLS on NVSwitch systems) take
    /// GBs that the first sizing, before NCCL init, could not see.
    pub fn replan_memory(&mut self) -> Result<(), BackendError> {
        drv("cuCtxSetCurrent", self.ctx.bind_to_thread())?;
        let (free, total) = drv("cuMemGetInfo", self.ctx.mem_get_info())?;
        let reserve = memory_reserve(total as u64);
        self.mem = gemm::plan_memory(
            &self.plan,
            &self.types,
            self.grad_dtype.size_bytes(),
            free as u64,
            reserve,
            gemm::rotation_bytes(self.info.l2_bytes),
        )
        .map_err(BackendError::OutOfMemory)?;
        Ok(())
    }

    /// Declares a normal end after the run's last collective: every rank
    /// tears down too, so the communicator may be destroyed (a collective
    /// call) rather than aborted. Without it, dropping the backend aborts
    /// the communicator, which never waits for peers ([`nccl::teardown`]).
    pub fn finish_comm(&self) {
        for (_, c, _) in &self.groups {
            c.mark_finished();
        }
        if let Some(c) = &self.comm {
            c.mark_finished();
        }
    }

    /// The device.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// A soak window's readings ([`crate::backend::Backend::window_readings`]):
    /// NVML's, and the XIDs delivered since the last call (the watch is
    /// registered at the first call).
    pub fn soak_readings(&mut self) -> mfubench_core::soak::WindowTelemetry {
        let Some(t) = &self.telemetry else {
            return Default::default();
        };
        let mut w = t.window();
        let uuid = t.uuid().to_string();
        let watch = self.xids.get_or_insert_with(|| {
            telemetry::XidWatcher::open(&uuid).map_err(|e| format!("{e:?}"))
        });
        if let Ok(watcher) = watch {
            w.xid_watched = true;
            if let Ok(codes) = watcher.poll() {
                w.xids = codes.into_iter().map(|c| c.unwrap_or(0)).collect();
            }
        }
        w
    }

    /// Memory sizing chosen for the plan.
    pub fn memory_plan(&self) -> &MemoryPlan {
        &self.mem
    }

    pub(super) fn stream(&self, s: StreamId) -> Result<&Stream, BackendError> {
        match s {
            StreamId::Compute => Ok(&self.compute),
            StreamId::Comm => Ok(&self.comm_stream),
            StreamId::Group(_) | StreamId::Reduce(_) => Ok(&self.lane(s)?.2),
        }
    }

    /// This rank's position and the size of the buckets' communicator.
    pub(super) fn bucket_rank(&self) -> (u64, u64) {
        match self.bucket_comm() {
            Some(c) if self.plan.layout.tensor > 1 => (c.rank() as u64, c.size() as u64),
            _ => (self.rank, self.ranks),
        }
    }

    pub(super) fn lane(&self, s: StreamId) -> Result<&(StreamId, NcclComm, Stream), BackendError> {
        self.groups.iter().find(|(x, _, _)| *x == s).ok_or_else(|| {
            BackendError::Failed(format!(
                "the backend has no communicator for the {} stream",
                s.name()
            ))
        })
    }

    /// The communicator of DDP's buckets: the world without tensor
    /// parallelism, else the data-parallel replicas.
    pub(super) fn bucket_comm(&self) -> Option<&NcclComm> {
        if self.plan.layout.tensor > 1 {
            self.lane(StreamId::Group(Group::DpReplicate))
                .ok()
                .map(|g| &g.1)
        } else {
            self.comm.as_ref()
        }
    }

    /// Splits a communicator, with a stream of its own, for every group
    /// the plan's collectives use (`ncclCommSplit`, collective over the
    /// world communicator; every rank has the same plan, so every rank
    /// splits the same groups in the order of
    /// [`crate::schedule::group_streams`]). Each group's collectives then
    /// run on their own stream, its reduce-scatters on a second one, as a
    /// framework runs TP and FSDP communication on separate NCCL streams.
    pub fn init_groups(&mut self, world_rank: u64) -> Result<(), BackendError> {
        let Some(world) = &self.comm else {
            return Err(BackendError::Failed(
                "groups before the NCCL communicator exists".into(),
            ));
        };
        drv("cuCtxSetCurrent", self.ctx.bind_to_thread())?;
        let layout = self.plan.layout;
        let (_, greatest) = stream::priority_range()?;
        for s in crate::schedule::group_streams(&self.plan) {
            let (StreamId::Group(g) | StreamId::Reduce(g)) = s else {
                continue;
            };
            let (colour, position) = layout.colour_and_position(g, world_rank);
            let comm = world
                .split(Some(colour as u32), position as u32)
                .map_err(CudaError::from)?
                .ok_or_else(|| BackendError::Failed(format!("the {g} split gave no group")))?;
            let stream = Stream::new(&self.ctx, greatest)?;
            self.groups.push((s, comm, stream));
        }
        Ok(())
    }

    /// The operands of the next launch of `bytes` ([`gemm::launch_bytes`]):
    /// each the next slot of its buffer's ring, so that no GEMM finds its
    /// inputs in L2 ([`GemmBuffers::next_operands`]).
    pub(super) fn next_operands<'a>(
        &self,
        bufs: &'a GemmBuffers,
        bytes: [u64; 3],
    ) -> Result<Operands<'a>, BackendError> {
        let mut cursors = self.operand_cursors.get();
        let o = bufs.next_operands(&mut cursors, bytes).ok_or_else(|| {
            BackendError::Failed(format!(
                "GEMM operands of {bytes:?} bytes do not fit the buffers sized for the plan"
            ))
        })?;
        self.operand_cursors.set(cursors);
        Ok(o)
    }

    /// Times the candidate algorithms of `matmuls[idx]` on the compute
    /// stream, with rotating operands as in the run, and keeps the fastest.
    pub(super) fn autotune(
        &mut self,
        idx: usize,
        g: &ColMajorGemm,
        bytes: [u64; 3],
    ) -> Result<(), BackendError> {
        let n = self.matmuls[idx].algos.len();
        if n < 2 || std::env::var(AUTOTUNE_VAR).is_ok_and(|v| v == "0") {
            return Ok(());
        }
        let Some(bufs) = &self.gemm_bufs else {
            return Ok(());
        };
        let (a, b) = (self.new_event()?, self.new_event()?);
        let mut best = (f64::INFINITY, 0);
        // Fewer repetitions for long GEMMs.
        let flops = 2.0 * (g.m * g.n * g.k * g.batch) as f64;
        let reps = if flops > 1e12 { 1 } else { 3 };
        for algo in 0..n {
            let mm = &self.matmuls[idx];
            let run = || -> Result<(), BackendError> {
                let operands = self.next_operands(bufs, bytes)?;
                mm.enqueue(&self.handle, algo, &operands, &self.compute)
                    .map_err(|e| BackendError::Failed(e.to_string()))
            };
            // Warm-up; an algorithm that fails to launch is skipped.
            if run().is_err() {
                continue;
            }
            self.record(StreamId::Compute, &a)?;
            for _ in 0..reps {
                run()?;
            }
            self.record(StreamId::Compute, &b)?;
            let t = self.elapsed_s(&a, &b)?;
            if t < best.0 {
                best = (t, algo);
            }
        }
        self.matmuls[idx].chosen = best.1;
        Ok(())
    }

    /// Every communicator of the backend: the world's, then the groups'
    /// ([`CudaBackend::init_groups`]), each with the name of its stream.
    pub(super) fn comms(&self) -> impl Iterator<Item = (&'static str, &NcclComm)> {
        let world = self.comm.as_ref().map(|c| ("world", c));
        world
            .into_iter()
            .chain(self.groups.iter().map(|(s, c, _)| (s.name(), c)))
    }

    /// Aborts every NCCL communicator, the world's and each group's
    /// (watchdog and error paths): a dead peer in a TP or FSDP group leaves
    /// that group's kernels spinning until its own communicator is
    /// aborted. Idempotent.
    pub fn abort_comm(&self) {
        for (_, c) in self.comms() {
            c.abort();
        }
    }

    /// Waits up to `limit` in all for every stream (compute, comm and each
    /// group's) to drain; false if one did not.
    fn drain(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let streams = [StreamId::Comm, StreamId::Compute]
            .into_iter()
            .chain(self.groups.iter().map(|(s, _, _)| *s));
        for s in streams {
            let Ok(ev) = self.new_event() else {
                return false;
            };
            if self.record(s, &ev).is_err() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.poll(&ev, left) {
                Ok(true) => {}
                _ => return false,
            }
        }
        true
    }

    /// Polls `ev` until it completes, `timeout` passes (Ok(false)) or NCCL
    /// reports an error on any of the backend's communicators (then all of
    /// them are aborted: the rank is leaving).
    pub(super) fn poll(&self, ev: &Event, timeout: Duration) -> Result<bool, BackendError> {
        let start = Instant::now();
        let mut nap = Duration::from_micros(10);
        loop {
            if ev.is_complete()? {
                return Ok(true);
            }
            let failed = self
                .comms()
                .find_map(|(name, c)| c.async_error().err().map(|e| (name, e)));
            if let Some((name, e)) = failed {
                self.abort_comm();
                return Err(BackendError::Failed(format!(
                    "{e} (the {name} communicator); every communicator was aborted"
                )));
            }
            if start.elapsed() >= timeout {
                return Ok(false);
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
        }
    }
}

/// Bytes of device memory left free when the buffers are sized: room for
/// NCCL's buffers and the libraries' own allocations.
pub(super) fn memory_reserve(total: u64) -> u64 {
    (total / 32).max(2 << 30)
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        // A rank leaving early (an error path) aborts its collectives at
        // once: its peers may never join the ones still queued, and waiting
        // for them would stall this rank and its node-mates.
        if self.comm.as_ref().is_some_and(|c| !c.is_finished()) {
            self.abort_comm();
        }
        // Let queued work finish before the buffers go; a hung collective
        // is aborted instead of waited for.
        if !self.drain(Duration::from_secs(30)) {
            self.abort_comm();
            let _ = self.drain(Duration::from_secs(10));
        }
    }
}

//! The CUDA backend: cuBLASLt GEMMs on a compute stream, NCCL all-reduces
//! on a higher-priority comm stream, CUDA events for ordering and timing.
//!
//! # Design
//!
//! **One binary for every machine.** Nothing CUDA is linked. The driver API
//! comes from cudarc 0.19 with `dynamic-loading` and the `cuda-12080`
//! bindings: `libcuda.so(.1)` is opened at the first call, and every driver
//! entry point used here exists in every CUDA 12 and 13 driver (cuda-13
//! bindings would call `cuEventElapsedTime_v2`, which a CUDA 12 driver
//! lacks). Before the first cudarc call, [`driver_present`] checks with
//! `is_culib_present()` (a missing library otherwise panics inside cudarc).
//!
//! **cuBLASLt and NCCL are loaded by us** ([`gemm::LtLib`], [`nccl::NcclLib`])
//! through [`discovery`], not through cudarc: cudarc's candidate names follow
//! its version feature (a cuda-12080 build never tries `libcublasLt.so.13`,
//! which CUDA 13 installs and pip's CUDA 13 wheels ship) and its NCCL loader
//! never tries `libnccl.so.2`. Our search takes `MFUBENCH_CUBLASLT_LIB` /
//! `MFUBENCH_NCCL_LIB` (a file), then `MFUBENCH_CUDA_LIB_DIR` and
//! `LD_LIBRARY_PATH` folders, then the system loader, and picks the newest
//! cuBLAS major the driver can run (`.so.13` only with a CUDA 13 driver).
//! One library, cuBLASLt, serves every dtype, so cuBLAS proper is never
//! loaded.
//!
//! **Streams and events.** Device = local rank (ordinals are those of
//! `CUDA_VISIBLE_DEVICES`; with one visible device per rank, device 0).
//! cudarc's automatic event tracking is turned off before anything is
//! allocated: it would make streams wait on each other behind the
//! schedule's back and falsify the overlap measurement. Device buffers are
//! raw allocations owned by [`DeviceBuf`]. Events are created with
//! `CU_EVENT_DEFAULT` (timing on). [`Streams::sync_event`] polls
//! `cuEventQuery` with a short sleep until the watchdog's timeout, checking
//! `ncclCommGetAsyncError` of every communicator (the world's and each
//! group's) on the way; on an NCCL error, and when the caller gives up at
//! the op timeout ([`Streams::give_up`]), it aborts them all
//! (`ncclCommAbort`), so kernels spinning on a dead peer return and the job
//! can end. Communicator creation runs under an
//! [`nccl::InitWatchdog`] (a rank that never arrives would block it
//! forever), and a backend dropped on an error path aborts its
//! communicator rather than destroying it: `ncclCommDestroy` is collective
//! in recent NCCL and would stall the rank on peers that may never come
//! ([`nccl::teardown`]; [`CudaBackend::finish_comm`] marks a normal end).
//!
//! **GEMMs.** bf16 / fp16 with f32 accumulation, tf32, f32 and FP8 E4M3
//! (A/B scale pointers, bf16 output, TN layout) through cuBLASLt; the
//! row-major plan maps to column-major as `Cᵀ = op(B)ᵀ·op(A)ᵀ`
//! ([`gemm::col_major`]). Each distinct shape gets its descriptors and
//! algorithm once; when the heuristic offers several, each is timed once
//! and the fastest kept (`MFUBENCH_CUBLASLT_AUTOTUNE=0`: the heuristic's
//! first). Batched attention GEMMs whose operands would not fit in free
//! memory run in batch chunks ([`gemm::plan_memory`]). Operands rotate
//! through buffers of at least twice the L2 size ([`gemm::rotation_bytes`],
//! [`gemm::next_operand_offset`]): each launch reads its inputs where no
//! recent launch left them, so small shapes are not timed from L2.
//!
//! **Checks.** All-reduces use the known-sum pattern of the CPU backend
//! (`mfubench_core::check`), counted on the host; a GEMM spot check per
//! dtype against a host reference runs at start ([`CudaBackend::spot_check`]).

mod buf;
pub mod discovery;
mod dtype;
mod error;
pub mod fp8;
pub mod gemm;
pub mod group;
pub mod nccl;
mod probe;
pub mod telemetry;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::safe::{CudaContext, CudaEvent, CudaStream};
use cudarc::driver::{result as cu, sys};
use rayon::prelude::*;

use mfubench_core::check;
use mfubench_core::config::{Dtype, Mode};
use mfubench_core::metrics::Collective;
use mfubench_core::parallel::Group;
use mfubench_core::plan::{GemmKind, GemmOp, Pass, StepPlan};
use mfubench_core::result::TelemetrySample;

use crate::backend::{Backend, BackendError, Communicator, Compute, StreamId, Streams};
pub use buf::DeviceBuf;
use dtype::random_values;
pub use dtype::{decode, encode, rel_error, spot_tolerance, tf32_round};
use error::drv;
pub use error::CudaError;
use gemm::{ColMajorGemm, GemmTypes, LtHandle, LtLib, Matmul, MemoryPlan};
use nccl::{NcclComm, NcclLib};
pub use probe::{
    cublas_version_string, cuda_version_string, driver_present, nccl_connect_at_init,
    no_driver_message, probe, select_ordinal, simulated, RUNTIME_CONNECT_VAR,
};

/// Set to `0` to use cuBLASLt's first heuristic choice instead of timing
/// the candidates.
pub const AUTOTUNE_VAR: &str = "MFUBENCH_CUBLASLT_AUTOTUNE";

/// What the driver says about the device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// CUDA ordinal (within `CUDA_VISIBLE_DEVICES`).
    pub ordinal: usize,
    /// Name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// Compute capability.
    pub compute_capability: (i32, i32),
    /// Device memory, bytes.
    pub total_mem: u64,
    /// L2 cache, bytes.
    pub l2_bytes: u64,
    /// `cuDriverGetVersion`, e.g. 12080.
    pub driver_cuda_version: i32,
    /// UUID bytes.
    pub uuid: [u8; 16],
}

/// One launch group of an op: a prepared matmul run `count` times.
#[derive(Debug, Clone, Copy)]
struct Launch {
    matmul: usize,
    count: u64,
    /// Bytes of its first operand, second operand and output
    /// ([`gemm::launch_bytes`]), for the rotating offsets.
    bytes: [u64; 3],
}

/// Device buffers of the GEMMs.
struct GemmBuffers {
    a: DeviceBuf,
    b: DeviceBuf,
    c: DeviceBuf,
    workspace: DeviceBuf,
    /// FP8 dequantisation factors of A and B (f32 each).
    scales: DeviceBuf,
}

/// Bucket buffers.
struct BucketBuffers {
    send: Vec<DeviceBuf>,
    recv: Vec<DeviceBuf>,
    elements: Vec<u64>,
}

/// Device buffers of one collective other than a bucket, with what its
/// check needs (see the CPU backend's, which this mirrors).
struct CollBuffers {
    kind: Collective,
    rank: u64,
    size: u64,
    shard: u64,
    id: u64,
    send: DeviceBuf,
    recv: DeviceBuf,
    recv_elements: u64,
}

/// Encodes `n` values of `f` in the dtype, in parallel chunks of 1 Mi.
fn encode_with(dtype: Dtype, n: u64, f: impl Fn(u64) -> f64 + Sync) -> Vec<u8> {
    const CHUNK: u64 = 1 << 20;
    (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .flat_map_iter(|c| {
            let lo = c * CHUNK;
            let hi = (lo + CHUNK).min(n);
            encode(dtype, &(lo..hi).map(&f).collect::<Vec<f64>>())
        })
        .collect()
}

/// Result of one dtype's GEMM spot check.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotCheck {
    /// The dtype.
    pub dtype: Dtype,
    /// ‖C − C_ref‖ / ‖C_ref‖.
    pub rel_error: f64,
    /// The limit.
    pub tolerance: f64,
    /// FP8: error of the quantised inputs' exact product vs the unquantised
    /// one, and the bound the scaling allows.
    pub quantization: Option<(f64, f64)>,
}

impl SpotCheck {
    /// Within tolerance (and, for FP8, within the scaling's bound).
    pub fn passed(&self) -> bool {
        self.rel_error <= self.tolerance && self.quantization.is_none_or(|(e, b)| e <= b)
    }

    /// "ok rel_err 1.2e-03 ≤ 1e-02" or "FAIL …".
    pub fn summary(&self) -> String {
        let q = self
            .quantization
            .map(|(e, b)| format!("; fp8 quantisation error {e:.2e} (bound {b:.2e})"))
            .unwrap_or_default();
        format!(
            "{} rel_err {:.2e} (limit {:.1e}){q}",
            if self.passed() { "ok" } else { "FAIL" },
            self.rel_error,
            self.tolerance
        )
    }
}

/// The CUDA backend of one rank.
pub struct CudaBackend {
    // Field order is drop order: the communicator and the cuBLASLt objects
    // go before the buffers they use, the buffers before the streams, the
    // context last.
    comm: Option<NcclComm>,
    /// A communicator split from `comm` and a stream per group of the
    /// plan's collectives ([`CudaBackend::init_groups`]).
    groups: Vec<(StreamId, NcclComm, Arc<CudaStream>)>,
    matmuls: Vec<Matmul>,
    handle: LtHandle,
    gemm_bufs: Option<GemmBuffers>,
    buckets: Option<BucketBuffers>,
    /// Buffers of the plan's collectives by index (None for the buckets).
    colls: Vec<Option<CollBuffers>>,
    compute: Arc<CudaStream>,
    comm_stream: Arc<CudaStream>,
    telemetry: Option<telemetry::Telemetry>,
    ops: Vec<Vec<Launch>>,
    /// Where the last launch's first operand, second operand and output
    /// ended in the B, A and C buffers ([`gemm::next_operand_offset`]).
    operand_cursors: std::cell::Cell<[u64; 3]>,
    lt: Arc<LtLib>,
    nccl: Arc<NcclLib>,
    plan: Arc<StepPlan>,
    dtype: Dtype,
    types: GemmTypes,
    grad_dtype: Dtype,
    nccl_dtype: i32,
    mem: MemoryPlan,
    info: DeviceInfo,
    rank: u64,
    ranks: u64,
    notes: BTreeMap<String, String>,
    ctx: Arc<CudaContext>,
}

impl CudaBackend {
    /// Opens device `ordinal` and the libraries, and sizes the buffers of
    /// `plan` against free memory. Collective-free: the NCCL communicator is
    /// made by [`CudaBackend::init_comm`] once every rank got this far.
    /// `NCCL_RUNTIME_CONNECT` is not set here (other threads run by now):
    /// the worker sets it before MPI_Init ([`nccl_connect_at_init`]).
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
        let nccl_dtype = nccl::nccl_dtype(grad_dtype)
            .filter(|_| matches!(grad_dtype, Dtype::Bf16 | Dtype::Fp16 | Dtype::F32))
            .ok_or_else(|| {
                BackendError::Unavailable(format!(
                    "run.grad_dtype = \"{grad_dtype}\": the cuda backend all-reduces bf16, fp16 or f32"
                ))
            })?;
        let visible = probe().map_err(BackendError::Unavailable)?;
        if ordinal >= visible {
            return Err(BackendError::Unavailable(format!(
                "device {ordinal} requested but {visible} visible"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| {
            BackendError::Unavailable(format!("cannot open CUDA device {ordinal}: {e}"))
        })?;
        // SAFETY: no buffer or stream exists yet; from here on the backend
        // orders every cross-stream use with explicit events (the schedule's
        // waits) and synchronises before freeing.
        unsafe { ctx.disable_event_tracking() };
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
        let (least, greatest) = drv(
            "cuCtxGetStreamPriorityRange",
            cu::stream::get_priority_range(),
        )?;
        let compute = drv("cuStreamCreate", ctx.new_stream_with_priority(least))?;
        let comm_stream = drv("cuStreamCreate", ctx.new_stream_with_priority(greatest))?;
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
            ops: Vec::new(),
            operand_cursors: std::cell::Cell::new([0; 3]),
            lt,
            nccl,
            plan,
            dtype,
            types,
            grad_dtype,
            nccl_dtype,
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

    /// Memory sizing chosen for the plan.
    pub fn memory_plan(&self) -> &MemoryPlan {
        &self.mem
    }

    /// Details for `RankRecord.device_info`.
    pub fn device_info_map(&self) -> BTreeMap<String, String> {
        let i = &self.info;
        let mut m = self.notes.clone();
        m.insert("gpu_name".into(), i.name.clone());
        if i.name.ends_with(mfubench_core::simgpu::NAME_MARK) {
            m.insert("simulated".into(), "true".into());
        }
        m.insert("sm_count".into(), i.sm_count.to_string());
        m.insert(
            "compute_capability".into(),
            format!("{}.{}", i.compute_capability.0, i.compute_capability.1),
        );
        m.insert(
            "memory_gib".into(),
            format!("{:.1}", i.total_mem as f64 / (1u64 << 30) as f64),
        );
        m.insert("ordinal".into(), i.ordinal.to_string());
        m.insert("uuid".into(), telemetry::nvml_uuid(&i.uuid));
        m.insert(
            "cuda_version".into(),
            cuda_version_string(i.driver_cuda_version),
        );
        m.insert(
            "cublaslt_version".into(),
            cublas_version_string(self.lt.version()),
        );
        m.insert("cublaslt_lib".into(), self.lt.what.clone());
        if let Ok(v) = self.nccl.version() {
            m.insert("nccl_version".into(), nccl::version_string(v));
        }
        m.insert("nccl_lib".into(), self.nccl.what.clone());
        m.insert("gemm_batch_chunk".into(), self.mem.batch_chunk.to_string());
        m.insert(
            "l2_mib".into(),
            format!("{:.1}", i.l2_bytes as f64 / (1u64 << 20) as f64),
        );
        m.insert(
            "operand_rotation_mib".into(),
            (gemm::rotation_bytes(i.l2_bytes) >> 20).to_string(),
        );
        if let Ok(v) = std::env::var("CUDA_VISIBLE_DEVICES") {
            m.insert("cuda_visible_devices".into(), v);
        }
        m
    }

    /// Dense peak of the configured dtype from core's table, by device name
    /// and SM count.
    pub fn spec_peak_tflops(&self) -> Option<f64> {
        mfubench_core::peak::by_device(&self.info.name, Some(self.info.sm_count))
            .and_then(|d| d.peak(self.dtype))
    }

    fn stream(&self, s: StreamId) -> Result<&Arc<CudaStream>, BackendError> {
        match s {
            StreamId::Compute => Ok(&self.compute),
            StreamId::Comm => Ok(&self.comm_stream),
            StreamId::Group(_) | StreamId::Reduce(_) => Ok(&self.lane(s)?.2),
        }
    }

    /// This rank's position and the size of the buckets' communicator.
    fn bucket_rank(&self) -> (u64, u64) {
        match self.bucket_comm() {
            Some(c) if self.plan.layout.tensor > 1 => (c.rank() as u64, c.size() as u64),
            _ => (self.rank, self.ranks),
        }
    }

    fn lane(&self, s: StreamId) -> Result<&(StreamId, NcclComm, Arc<CudaStream>), BackendError> {
        self.groups.iter().find(|(x, _, _)| *x == s).ok_or_else(|| {
            BackendError::Failed(format!(
                "the backend has no communicator for the {} stream",
                s.name()
            ))
        })
    }

    /// The communicator of DDP's buckets: the world without tensor
    /// parallelism, else the data-parallel replicas.
    fn bucket_comm(&self) -> Option<&NcclComm> {
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
        let (_, greatest) = drv(
            "cuCtxGetStreamPriorityRange",
            cu::stream::get_priority_range(),
        )?;
        for s in crate::schedule::group_streams(&self.plan) {
            let (StreamId::Group(g) | StreamId::Reduce(g)) = s else {
                continue;
            };
            let (colour, position) = layout.colour_and_position(g, world_rank);
            let comm = world
                .split(Some(colour as u32), position as u32)
                .map_err(CudaError::from)?
                .ok_or_else(|| BackendError::Failed(format!("the {g} split gave no group")))?;
            let stream = drv(
                "cuStreamCreate",
                self.ctx.new_stream_with_priority(greatest),
            )?;
            self.groups.push((s, comm, stream));
        }
        Ok(())
    }

    fn fail(&self, call: &'static str, err: cu::DriverError) -> BackendError {
        CudaError::Driver { call, err }.into()
    }

    /// Device pointers of the first operand, second operand and output of
    /// the next launch of `bytes` ([`gemm::launch_bytes`]): each the next
    /// slot of its buffer's ring, so that no GEMM finds its inputs in L2.
    fn next_operands(&self, bufs: &GemmBuffers, bytes: [u64; 3]) -> [u64; 3] {
        let mut cursors = self.operand_cursors.get();
        let mut ptrs = [0; 3];
        for (i, buf) in [&bufs.b, &bufs.a, &bufs.c].into_iter().enumerate() {
            let (at, next) = gemm::next_operand_offset(cursors[i], bytes[i], buf.len() as u64);
            cursors[i] = next;
            ptrs[i] = buf.ptr() + at;
        }
        self.operand_cursors.set(cursors);
        ptrs
    }

    /// Times the candidate algorithms of `matmuls[idx]` on the compute
    /// stream, with rotating operands as in the run, and keeps the fastest.
    fn autotune(
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
                let [first, second, out] = self.next_operands(bufs, bytes);
                // SAFETY: the buffers were sized by plan_memory for every op
                // and batch chunk of the plan, `g` is one of them, and
                // next_operands keeps each operand inside its buffer; the
                // workspace holds WORKSPACE_BYTES; all live until the
                // backend is dropped, after synchronisation.
                unsafe {
                    mm.launch(
                        &self.handle,
                        algo,
                        first,
                        second,
                        out,
                        bufs.workspace.ptr(),
                        self.compute.cu_stream() as _,
                    )
                }
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

    /// One small GEMM per dtype the device runs, against a host reference.
    pub fn spot_check(&self) -> Vec<(Dtype, Result<SpotCheck, BackendError>)> {
        let mut dtypes = vec![Dtype::Bf16, Dtype::Fp16, Dtype::Tf32];
        if self.info.compute_capability >= (8, 9) {
            dtypes.push(Dtype::Fp8);
        }
        if !dtypes.contains(&self.dtype) {
            dtypes.push(self.dtype);
        }
        dtypes
            .into_iter()
            .map(|d| (d, self.spot_check_one(d)))
            .collect()
    }

    fn spot_check_one(&self, dtype: Dtype) -> Result<SpotCheck, BackendError> {
        let types = gemm::gemm_types(dtype)
            .ok_or_else(|| BackendError::Failed(format!("no GEMM types for {dtype}")))?;
        // A dgrad-shaped op (B transposed), batch 2.
        let op = GemmOp {
            layer: Some(0),
            kind: GemmKind::FfnUp,
            pass: Pass::Dgrad,
            m: 96,
            n: 80,
            k: 160,
            batch: 2,
            trans_a: false,
            trans_b: true,
            bucket: None,
        };
        let g = gemm::col_major(&op, op.batch, types.fp8);
        let (ea, eb, ec) = op.operand_elements();
        let a_exact = random_values(11, (ea * op.batch) as usize);
        let b_exact = random_values(13, (eb * op.batch) as usize);
        let (a_bytes, a_vals, sa) = quantize_for(dtype, &a_exact);
        let (b_bytes, b_vals, sb) = quantize_for(dtype, &b_exact);
        let ab = DeviceBuf::new(&self.ctx, a_bytes.len() as u64)?;
        let bb = DeviceBuf::new(&self.ctx, b_bytes.len() as u64)?;
        let cb = DeviceBuf::new(&self.ctx, ec * op.batch * types.out_bytes)?;
        let ws = DeviceBuf::new(&self.ctx, gemm::WORKSPACE_BYTES)?;
        let scales = DeviceBuf::new(&self.ctx, 8)?;
        ab.upload(0, &a_bytes)?;
        bb.upload(0, &b_bytes)?;
        let sc: Vec<u8> = [sb, sa].iter().flat_map(|s| s.to_le_bytes()).collect();
        scales.upload(0, &sc)?;
        let mm = Matmul::new(
            &self.handle,
            &g,
            &types,
            false,
            Some((scales.ptr(), scales.ptr() + 4)),
            1,
        )
        .map_err(CudaError::from)?;
        // SAFETY: buffers sized for exactly this op; synchronised below
        // before they are dropped.
        unsafe {
            mm.launch(
                &self.handle,
                0,
                bb.ptr(),
                ab.ptr(),
                cb.ptr(),
                ws.ptr(),
                self.compute.cu_stream() as _,
            )
        }
        .map_err(CudaError::from)?;
        drv("cuStreamSynchronize", self.compute.synchronize())?;
        let mut out = vec![0u8; cb.len()];
        cb.download(0, &mut out)?;
        let out_dtype = if types.fp8 { Dtype::Bf16 } else { dtype };
        let got = decode(out_dtype, &out);
        let want = gemm::reference_col_major(&g, &b_vals, &a_vals);
        let quantization = types.fp8.then(|| {
            let exact = gemm::reference_col_major(&g, &b_exact, &a_exact);
            let abs_a: Vec<f64> = a_exact.iter().map(|x| x.abs()).collect();
            let abs_b: Vec<f64> = b_exact.iter().map(|x| x.abs()).collect();
            let abs = gemm::reference_col_major(&g, &abs_b, &abs_a);
            let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let cancellation = norm(&abs) / norm(&exact).max(f64::MIN_POSITIVE);
            (
                rel_error(&want, &exact),
                fp8::gemm_quantization_bound(cancellation),
            )
        });
        Ok(SpotCheck {
            dtype,
            rel_error: rel_error(&got, &want),
            tolerance: spot_tolerance(dtype),
            quantization,
        })
    }

    /// Every communicator of the backend: the world's, then the groups'
    /// ([`CudaBackend::init_groups`]), each with the name of its stream.
    fn comms(&self) -> impl Iterator<Item = (&'static str, &NcclComm)> {
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
    fn poll(&self, ev: &CudaEvent, timeout: Duration) -> Result<bool, BackendError> {
        let start = Instant::now();
        let mut nap = Duration::from_micros(10);
        loop {
            match ev.try_is_complete() {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => return Err(self.fail("cuEventQuery", e)),
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

/// Host bytes of `vals` in `dtype`, the values the device will see, and the
/// dequantisation factor (1 except FP8).
fn quantize_for(dtype: Dtype, vals: &[f64]) -> (Vec<u8>, Vec<f64>, f32) {
    if dtype == Dtype::Fp8 {
        let q = fp8::quantize(vals);
        let deq = q.dequantized();
        let s = q.scale_inv();
        (q.codes, deq, s)
    } else {
        let bytes = encode(dtype, vals);
        let mut seen = decode(dtype, &bytes);
        if dtype == Dtype::Tf32 {
            // The device gets f32 and its tensor cores round to tf32: the
            // reference multiplies what they see (see `spot_tolerance`).
            for v in &mut seen {
                *v = f64::from(tf32_round(*v as f32));
            }
        }
        (bytes, seen, 1.0)
    }
}

/// Bytes of device memory left free when the buffers are sized: room for
/// NCCL's buffers and the libraries' own allocations.
fn memory_reserve(total: u64) -> u64 {
    (total / 32).max(2 << 30)
}

fn device_info(ctx: &Arc<CudaContext>, ordinal: usize) -> Result<DeviceInfo, CudaError> {
    let name = drv("cuDeviceGetName", ctx.name())?;
    let sm_count = drv(
        "cuDeviceGetAttribute",
        ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
    )? as u32;
    let compute_capability = drv("cuDeviceGetAttribute", ctx.compute_capability())?;
    let total_mem = drv("cuDeviceTotalMem", ctx.total_mem())? as u64;
    let l2_bytes = drv(
        "cuDeviceGetAttribute",
        ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE),
    )?
    .max(0) as u64;
    let mut v: std::ffi::c_int = 0;
    // SAFETY: valid out-pointer; the driver library is loaded (checked by
    // driver_present before the context was made).
    drv(
        "cuDriverGetVersion",
        unsafe { sys::cuDriverGetVersion(&mut v) }.result(),
    )?;
    let raw = drv("cuDeviceGetUuid", ctx.uuid())?;
    let mut uuid = [0u8; 16];
    for (d, s) in uuid.iter_mut().zip(raw.bytes.iter()) {
        *d = *s as u8;
    }
    Ok(DeviceInfo {
        ordinal,
        name,
        sm_count,
        compute_capability,
        total_mem,
        l2_bytes,
        driver_cuda_version: v,
        uuid,
    })
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

impl Streams for CudaBackend {
    type Event = CudaEvent;

    fn new_event(&self) -> Result<CudaEvent, BackendError> {
        self.ctx
            .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| self.fail("cuEventCreate", e))
    }

    fn record(&self, stream: StreamId, event: &CudaEvent) -> Result<(), BackendError> {
        event
            .record(self.stream(stream)?)
            .map_err(|e| self.fail("cuEventRecord", e))
    }

    fn wait(&self, stream: StreamId, event: &CudaEvent) -> Result<(), BackendError> {
        self.stream(stream)?
            .wait(event)
            .map_err(|e| self.fail("cuStreamWaitEvent", e))
    }

    fn sync_event(&self, event: &CudaEvent, timeout: Duration) -> Result<bool, BackendError> {
        drv("cuCtxSetCurrent", self.ctx.bind_to_thread())?;
        // No abort on a timeout here: the schedule waits in two parts (a
        // notice after 1 s, then the rest of the op timeout), and aborting
        // at the first would kill every collective that waits > 1 s for a
        // slower peer (found by the simulated GPU: `slow=0.3` made the
        // serialized step's all-reduce return garbage). `give_up` aborts.
        self.poll(event, timeout)
    }

    fn give_up(&self) {
        // The watchdog will end the job: stop any collective that may be
        // spinning on a dead peer first.
        self.abort_comm();
    }

    fn elapsed_s(&self, from: &CudaEvent, to: &CudaEvent) -> Result<f64, BackendError> {
        from.elapsed_ms(to)
            .map(|ms| ms as f64 / 1e3)
            .map_err(|e| self.fail("cuEventElapsedTime", e))
    }
}

impl Compute for CudaBackend {
    fn allocate_gemms(&mut self, plan: &StepPlan) -> Result<(), BackendError> {
        let mem = self.mem;
        let ty = self.types;
        let bufs = GemmBuffers {
            a: DeviceBuf::new(&self.ctx, mem.a_bytes)?,
            b: DeviceBuf::new(&self.ctx, mem.b_bytes)?,
            c: DeviceBuf::new(&self.ctx, mem.c_bytes)?,
            workspace: DeviceBuf::new(&self.ctx, gemm::WORKSPACE_BYTES)?,
            scales: DeviceBuf::new(&self.ctx, 8)?,
        };
        // Non-zero pseudo-random operands: a 16 MiB pattern, repeated.
        let pattern_len = |bytes: u64| (bytes.min(16 << 20) / ty.in_bytes) as usize;
        let input_dtype = if ty.fp8 { Dtype::Fp8 } else { self.dtype };
        bufs.a.fill_repeating(&encode(
            input_dtype,
            &random_values(0x9e37_79b9, pattern_len(mem.a_bytes)),
        ))?;
        bufs.b.fill_repeating(&encode(
            input_dtype,
            &random_values(0xd1b5_4a32, pattern_len(mem.b_bytes)),
        ))?;
        bufs.c.memset(0)?;
        bufs.scales.upload(
            0,
            &[1.0f32, 1.0f32]
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect::<Vec<u8>>(),
        )?;
        let scale_ptrs = ty.fp8.then(|| (bufs.scales.ptr(), bufs.scales.ptr() + 4));
        self.gemm_bufs = Some(bufs);

        let mut index: HashMap<(ColMajorGemm, bool), usize> = HashMap::new();
        let mut shapes = Vec::new();
        let mut ops = Vec::with_capacity(plan.ops.len());
        for op in &plan.ops {
            let fast = ty.fp8 && gemm::fp8_fast_accum(op);
            let mut launches = Vec::new();
            for (batch, count) in gemm::launches(op.batch, mem.batch_chunk) {
                let g = gemm::col_major(op, batch, ty.fp8);
                let bytes = gemm::launch_bytes(&g, &ty);
                let idx = match index.get(&(g, fast)) {
                    Some(i) => *i,
                    None => {
                        let mm =
                            Matmul::new(&self.handle, &g, &ty, fast, scale_ptrs, gemm::MAX_ALGOS)
                                .map_err(|e| {
                                BackendError::Unavailable(format!(
                                    "{} ({}×{}×{}, batch {batch}, {}): {e}",
                                    op.label(),
                                    op.m,
                                    op.n,
                                    op.k,
                                    self.dtype
                                ))
                            })?;
                        self.matmuls.push(mm);
                        shapes.push(g);
                        index.insert((g, fast), self.matmuls.len() - 1);
                        self.matmuls.len() - 1
                    }
                };
                launches.push(Launch {
                    matmul: idx,
                    count,
                    bytes,
                });
            }
            ops.push(launches);
        }
        self.ops = ops;
        for (i, g) in shapes.iter().enumerate() {
            let bytes = gemm::launch_bytes(g, &ty);
            self.autotune(i, g, bytes)?;
        }
        drv("cuStreamSynchronize", self.compute.synchronize())?;
        self.notes
            .insert("gemm_shapes".into(), shapes.len().to_string());
        Ok(())
    }

    fn gemm(&self, stream: StreamId, op: usize) -> Result<(), BackendError> {
        let (Some(bufs), Some(launches)) = (&self.gemm_bufs, self.ops.get(op)) else {
            return Err(BackendError::Failed(format!(
                "op {op} is not prepared (allocate_gemms first)"
            )));
        };
        let s = self.stream(stream)?.cu_stream();
        for l in launches {
            let mm = &self.matmuls[l.matmul];
            for _ in 0..l.count {
                let [first, second, out] = self.next_operands(bufs, l.bytes);
                // SAFETY: the buffers were sized by plan_memory for every op
                // and batch chunk of the plan, and next_operands places
                // each operand wholly inside its buffer (outputs of
                // different launches may overwrite each other, as intended);
                // the workspace holds WORKSPACE_BYTES, and they live until
                // the backend is dropped after draining its streams.
                unsafe {
                    mm.launch(
                        &self.handle,
                        mm.chosen,
                        first,
                        second,
                        out,
                        bufs.workspace.ptr(),
                        s as _,
                    )
                }
                .map_err(|e| BackendError::Failed(format!("{}: {e}", self.plan.ops[op].label())))?;
            }
        }
        Ok(())
    }
}

impl Communicator for CudaBackend {
    fn allocate_buckets(&mut self, plan: &StepPlan) -> Result<(), BackendError> {
        let mut send = Vec::with_capacity(plan.buckets.len());
        let mut recv = Vec::with_capacity(plan.buckets.len());
        let mut elements = Vec::with_capacity(plan.buckets.len());
        let gb = self.grad_dtype.size_bytes();
        for b in &plan.buckets {
            let s = DeviceBuf::new(&self.ctx, b.elements * gb)?;
            let r = DeviceBuf::new(&self.ctx, b.elements * gb)?;
            // The check pattern, encoded in parallel chunks of 1 Mi elements.
            const CHUNK: u64 = 1 << 20;
            let (rank, ranks) = self.bucket_rank();
            let (bi, gd) = (b.index as u64, self.grad_dtype);
            let host: Vec<u8> = (0..b.elements.div_ceil(CHUNK))
                .into_par_iter()
                .flat_map_iter(|c| {
                    let lo = c * CHUNK;
                    let hi = (lo + CHUNK).min(b.elements);
                    let vals: Vec<f64> = (lo..hi)
                        .map(|i| check::pattern(ranks, rank, bi, i))
                        .collect();
                    encode(gd, &vals)
                })
                .collect();
            s.upload(0, &host)?;
            r.memset(0xff)?;
            send.push(s);
            recv.push(r);
            elements.push(b.elements);
        }
        self.buckets = Some(BucketBuffers {
            send,
            recv,
            elements,
        });
        let gd = self.grad_dtype;
        let mut colls = Vec::with_capacity(plan.collectives.len());
        for (ci, c) in plan.collectives.iter().enumerate() {
            if c.bucket.is_some() {
                colls.push(None);
                continue;
            }
            let comm = &self.lane(crate::schedule::stream_of(c))?.1;
            let (rank, size) = (comm.rank() as u64, comm.size() as u64);
            let id = (1u64 << 32) + ci as u64;
            let (full, shard) = (c.elements, c.shard_elements());
            let (send_n, recv_n) = match c.kind {
                Collective::AllGather => (shard, full),
                Collective::ReduceScatter => (full, shard),
                _ => (full, full),
            };
            let send = DeviceBuf::new(&self.ctx, send_n * gb)?;
            let recv = DeviceBuf::new(&self.ctx, recv_n * gb)?;
            let host = encode_with(gd, send_n, |i| check::send_value(c.kind, size, rank, id, i));
            send.upload(0, &host)?;
            recv.memset(0xff)?;
            colls.push(Some(CollBuffers {
                kind: c.kind,
                rank,
                size,
                shard,
                id,
                send,
                recv,
                recv_elements: recv_n,
            }));
        }
        self.colls = colls;
        Ok(())
    }

    fn collective(&self, stream: StreamId, index: usize) -> Result<(), BackendError> {
        let (Some(Some(b)), Some(c)) = (self.colls.get(index), self.plan.collectives.get(index))
        else {
            return Err(BackendError::Failed(format!(
                "collective {index} is not prepared (allocate_buckets first)"
            )));
        };
        // The communicator of the stream it runs on.
        let comm = &self.lane(stream)?.1;
        let s = self.stream(stream)?.cu_stream() as _;
        let (send, recv) = (b.send.ptr(), b.recv.ptr());
        // SAFETY: send and recv hold the element counts each call needs
        // (allocated from the same plan entry: shard and shard·size for the
        // all-gather, the reverse for the reduce-scatter, the whole buffer
        // twice for the all-reduce) in the grad dtype, in this context, and
        // live until the backend is dropped after draining; the stream is
        // one of ours.
        let r = unsafe {
            match b.kind {
                Collective::AllGather => {
                    comm.all_gather(send, recv, b.shard as usize, self.nccl_dtype, s)
                }
                Collective::ReduceScatter => {
                    comm.reduce_scatter_sum(send, recv, b.shard as usize, self.nccl_dtype, s)
                }
                Collective::AllReduce => {
                    comm.all_reduce_sum(send, recv, b.recv_elements as usize, self.nccl_dtype, s)
                }
                Collective::SendRecv => {
                    return Err(BackendError::Failed(
                        "send/recv is not a step collective".into(),
                    ))
                }
            }
        };
        r.map_err(|e| BackendError::Failed(format!("{}: {e}", c.label())))
    }

    fn all_reduce(&self, stream: StreamId, bucket: usize) -> Result<(), BackendError> {
        let (Some(comm), Some(b)) = (self.bucket_comm(), &self.buckets) else {
            return Err(BackendError::Failed(
                "all-reduce before the NCCL communicator and buckets exist".into(),
            ));
        };
        let (Some(s), Some(r)) = (b.send.get(bucket), b.recv.get(bucket)) else {
            return Err(BackendError::Failed(format!(
                "bucket {bucket} is not in the plan"
            )));
        };
        // SAFETY: send/recv hold `elements` values of the grad dtype in this
        // context and live until the backend is dropped after draining; the
        // stream is one of ours.
        unsafe {
            comm.all_reduce_sum(
                s.ptr(),
                r.ptr(),
                b.elements[bucket] as usize,
                self.nccl_dtype,
                self.stream(stream)?.cu_stream() as _,
            )
        }
        .map_err(|e| BackendError::Failed(format!("bucket {bucket}: {e}")))
    }

    fn prepare_check(&self) -> Result<(), BackendError> {
        if let Some(b) = &self.buckets {
            for r in &b.recv {
                // 0xff… is NaN in bf16, fp16 and f32.
                r.memset(0xff)?;
            }
        }
        for c in self.colls.iter().flatten() {
            c.recv.memset(0xff)?;
        }
        Ok(())
    }

    fn count_wrong(&self) -> Result<u64, BackendError> {
        let gb = self.grad_dtype.size_bytes() as usize;
        let gd = self.grad_dtype;
        let mut wrong = 0;
        for c in self.colls.iter().flatten() {
            let mut host = vec![0u8; c.recv_elements as usize * gb];
            c.recv.download(0, &mut host)?;
            let values = decode(gd, &host);
            wrong += check::count_wrong_result(c.kind, values, c.size, c.rank, c.shard, c.id, 0);
        }
        let Some(b) = &self.buckets else {
            return Ok(wrong);
        };
        let (_, ranks) = self.bucket_rank();
        for (bi, r) in b.recv.iter().enumerate() {
            let mut host = vec![0u8; b.elements[bi] as usize * gb];
            r.download(0, &mut host)?;
            const CHUNK: usize = 1 << 20;
            wrong += host
                .par_chunks(CHUNK * gb)
                .enumerate()
                .map(|(c, bytes)| {
                    check::count_wrong(decode(gd, bytes), ranks, bi as u64, (c * CHUNK) as u64)
                })
                .sum::<u64>();
        }
        Ok(wrong)
    }

    fn corrupt_one_element(&self) -> Result<(), BackendError> {
        let Some(b) = &self.buckets else {
            return Ok(());
        };
        let gb = self.grad_dtype.size_bytes() as usize;
        if let Some((bi, r)) = b.recv.iter().enumerate().find(|(i, _)| b.elements[*i] > 0) {
            let at = (b.elements[bi] as usize / 2) * gb;
            let mut x = vec![0u8; gb];
            r.download(at, &mut x)?;
            let v = decode(self.grad_dtype, &x)[0] + 1.0;
            r.upload(at, &encode(self.grad_dtype, &[v]))?;
        }
        Ok(())
    }
}

impl Backend for CudaBackend {
    /// Device = local rank (respecting `CUDA_VISIBLE_DEVICES`); opens the
    /// device and libraries on every rank (agreed), then the NCCL
    /// communicator with rank 0's unique id broadcast over MPI (agreed) and
    /// the groups' communicators split from it (agreed), then sizes the
    /// buffers with all of NCCL's memory already taken, and runs the GEMM
    /// spot check when `run.check` is on.
    fn open(
        config: &mfubench_core::config::Config,
        rank: &crate::rank::Rank,
        plan: Arc<StepPlan>,
    ) -> Result<Self, crate::rank::Exit> {
        let opened = probe()
            .and_then(|n| select_ordinal(rank.local_rank, rank.ranks_on_host, n))
            .map_err(BackendError::Unavailable)
            .and_then(|ordinal| {
                CudaBackend::open(
                    ordinal,
                    plan,
                    config.run.dtype,
                    config.run.grad_dtype,
                    rank.rank,
                    rank.size,
                )
            });
        let mut backend = rank.agree(opened)?;
        let id = if rank.is_root() {
            backend.nccl_unique_id()
        } else {
            Ok(Vec::new())
        };
        let id = rank.agree(id)?;
        let id = crate::mpi_comm::broadcast_bytes(&rank.world, &id);
        // NCCL init waits for every rank: under a watchdog at least as
        // patient as the ops' (a rank that died before its init must not
        // hang the others).
        let limit = std::time::Duration::from_secs_f64(config.run.op_timeout_s.max(300.0));
        let init = backend.init_comm_within(&id, limit, nccl::WATCHDOG_EXIT_CODE);
        rank.agree(init)?;
        rank.agree(backend.init_groups(rank.rank))?;
        // Sized again once every communicator exists, the groups' splits
        // included: each holds its own NCCL buffers (GBs with NVLS), which
        // the sizing in `CudaBackend::open` could not see. With
        // NCCL_RUNTIME_CONNECT=0 ([`nccl_connect_at_init`]) NCCL allocates
        // them at init, not at the first collective, so they show in
        // cuMemGetInfo now.
        rank.agree(backend.replan_memory())?;
        if config.run.check {
            for (dtype, res) in backend.spot_check() {
                let line = match res {
                    Ok(c) => {
                        if !c.passed() {
                            rank.error(format!("GEMM spot check {dtype}: {}", c.summary()));
                        }
                        c.summary()
                    }
                    Err(e) => {
                        rank.error(format!("GEMM spot check {dtype}: {e}"));
                        format!("error: {e}")
                    }
                };
                backend.notes.insert(format!("gemm_check_{dtype}"), line);
            }
        }
        Ok(backend)
    }

    /// The plan's buffers must fit in the device memory free now (which
    /// excludes what backends opened before took), sized as `open` sizes
    /// them. A device or library that cannot be opened is left for `open`
    /// to report.
    fn fits(
        config: &mfubench_core::config::Config,
        rank: &crate::rank::Rank,
        plan: &StepPlan,
    ) -> Result<(), String> {
        let Some(types) = gemm::gemm_types(config.run.dtype) else {
            return Ok(());
        };
        let Ok(ordinal) =
            probe().and_then(|n| select_ordinal(rank.local_rank, rank.ranks_on_host, n))
        else {
            return Ok(());
        };
        let Ok(ctx) = CudaContext::new(ordinal) else {
            return Ok(());
        };
        let (Ok(info), Ok(()), Ok((free, total))) = (
            device_info(&ctx, ordinal),
            ctx.bind_to_thread(),
            ctx.mem_get_info(),
        ) else {
            return Ok(());
        };
        gemm::plan_memory(
            plan,
            &types,
            config.run.grad_dtype.size_bytes(),
            free as u64,
            memory_reserve(total as u64),
            gemm::rotation_bytes(info.l2_bytes),
        )
        .map(|_| ())
    }

    fn device(&self) -> crate::backend::DeviceRecord {
        let mut info = self.device_info_map();
        let mut versions = BTreeMap::new();
        for key in [
            "driver_version",
            "cuda_version",
            "cublaslt_version",
            "nccl_version",
        ] {
            if let Some(v) = info.remove(key) {
                versions.insert(key.trim_end_matches("_version").to_string(), v);
            }
        }
        crate::backend::DeviceRecord {
            device: format!("GPU {}", self.info.ordinal),
            name: self.info.name.clone(),
            info,
            versions,
            spec_peak_tflops: self.spec_peak_tflops(),
        }
    }

    fn finish(&self) {
        self.finish_comm();
    }

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn telemetry(&self, mode: Mode, at: &str) -> Option<TelemetrySample> {
        self.telemetry.as_ref().map(|t| t.sample(mode, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_selection() {
        assert_eq!(select_ordinal(3, 8, 8), Ok(3));
        assert_eq!(select_ordinal(0, 1, 8), Ok(0));
        assert_eq!(select_ordinal(5, 8, 1), Ok(0), "one GPU bound per rank");
        let e = select_ordinal(2, 4, 2).unwrap_err();
        assert!(e.contains("4 ranks") && e.contains("2 visible"), "{e}");
    }

    #[test]
    fn versions() {
        assert_eq!(cuda_version_string(12080), "12.8");
        assert_eq!(cuda_version_string(13000), "13.0");
        assert_eq!(cublas_version_string(120804), "12.8.4");
        assert_eq!(cublas_version_string(130100), "13.1.0");
    }

    #[test]
    fn encodings_round_trip_the_check_pattern_exactly() {
        let vals: Vec<f64> = (-2..=2).map(|v| v as f64 * 3.0).collect();
        for d in [Dtype::Bf16, Dtype::Fp16, Dtype::F32] {
            let bytes = encode(d, &vals);
            assert_eq!(bytes.len(), vals.len() * d.size_bytes() as usize);
            assert_eq!(decode(d, &bytes), vals, "{d}");
        }
        assert_eq!(
            decode(Dtype::Fp8, &encode(Dtype::Fp8, &[1.0, -0.5])),
            vec![1.0, -0.5]
        );
        // 0xff bytes are NaN in every gradient dtype (prepare_check).
        for d in [Dtype::Bf16, Dtype::Fp16, Dtype::F32] {
            assert!(decode(d, &[0xff; 4]).iter().all(|v| v.is_nan()), "{d}");
        }
    }

    #[test]
    fn spot_check_verdicts() {
        let ok = SpotCheck {
            dtype: Dtype::Bf16,
            rel_error: 3e-3,
            tolerance: spot_tolerance(Dtype::Bf16),
            quantization: None,
        };
        assert!(ok.passed() && ok.summary().starts_with("ok"));
        let bad = SpotCheck {
            rel_error: 3e-3,
            tolerance: spot_tolerance(Dtype::Tf32),
            ..ok.clone()
        };
        assert!(!bad.passed() && bad.summary().starts_with("FAIL"));
        let q = SpotCheck {
            dtype: Dtype::Fp8,
            rel_error: 1e-3,
            tolerance: 1e-2,
            quantization: Some((0.2, 0.13)),
        };
        assert!(!q.passed());
    }

    #[test]
    fn tf32_rounding_known_answers() {
        let one_plus = |ulps_2_20: u32| 1.0f32 + ulps_2_20 as f32 * (2.0f32).powi(-20);
        // 1 + 2⁻¹⁰ is a tf32 number; 1 + 2⁻¹¹ is the half-way point between
        // 1 and it and goes to the even neighbour, 1.
        assert_eq!(tf32_round(one_plus(1 << 10)), one_plus(1 << 10));
        assert_eq!(tf32_round(one_plus(1 << 9)), 1.0);
        // 1 + 3·2⁻¹¹: half-way between 1 + 2⁻¹⁰ (odd) and 1 + 2⁻⁹ (even).
        assert_eq!(tf32_round(one_plus(3 << 9)), one_plus(1 << 11));
        // Just above half-way rounds up, just below rounds down.
        assert_eq!(tf32_round(one_plus((1 << 9) + 1)), one_plus(1 << 10));
        assert_eq!(tf32_round(one_plus((1 << 9) - 1)), 1.0);
        assert_eq!(tf32_round(-0.75), -0.75);
        assert_eq!(tf32_round(-1.0 - 2f32.powi(-12)), -1.0);
    }

    /// The spot check's data and tf32 reference against simulated devices:
    /// one that rounds like the reference, one that truncates the inputs,
    /// one that (wrongly) uses bf16 inputs.
    #[test]
    fn tf32_truncation_passes_and_bf16_does_not() {
        let op = GemmOp {
            layer: Some(0),
            kind: GemmKind::FfnUp,
            pass: Pass::Dgrad,
            m: 96,
            n: 80,
            k: 160,
            batch: 2,
            trans_a: false,
            trans_b: true,
            bucket: None,
        };
        let g = gemm::col_major(&op, op.batch, false);
        let (ea, eb, _) = op.operand_elements();
        let a = random_values(11, (ea * op.batch) as usize);
        let b = random_values(13, (eb * op.batch) as usize);
        let (_, a_ref, _) = quantize_for(Dtype::Tf32, &a);
        let (_, b_ref, _) = quantize_for(Dtype::Tf32, &b);
        let want = gemm::reference_col_major(&g, &b_ref, &a_ref);
        let device = |f: &dyn Fn(f32) -> f64| {
            let fa: Vec<f64> = a.iter().map(|x| f(*x as f32)).collect();
            let fb: Vec<f64> = b.iter().map(|x| f(*x as f32)).collect();
            rel_error(&gemm::reference_col_major(&g, &fb, &fa), &want)
        };
        let tol = spot_tolerance(Dtype::Tf32);
        assert_eq!(device(&|x| f64::from(tf32_round(x))), 0.0);
        let truncated = device(&|x| f64::from(f32::from_bits(x.to_bits() & !0x1fff)));
        assert!(
            (7.5e-4..8.1e-4).contains(&truncated) && truncated * 1.5 < tol,
            "truncation {truncated}"
        );
        let bf16 = device(&|x| half::bf16::from_f32(x).to_f64());
        assert!(
            (2.1e-3..2.2e-3).contains(&bf16) && bf16 > tol * 1.4,
            "bf16 inputs {bf16}"
        );
    }

    #[test]
    fn rel_error_is_normwise() {
        assert_eq!(rel_error(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((rel_error(&[3.0, 4.5], &[3.0, 4.0]) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn random_values_are_never_zero() {
        assert!(random_values(5, 10_000)
            .iter()
            .all(|v| v.abs() >= 1.0 / 64.0 && v.abs() <= 1.0));
    }
}

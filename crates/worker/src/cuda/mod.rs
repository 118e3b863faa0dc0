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
//! `CU_EVENT_DEFAULT` (timing on). [`Streams::sync_event`](crate::backend::Streams::sync_event) polls
//! `cuEventQuery` with a short sleep until the watchdog's timeout, checking
//! `ncclCommGetAsyncError` of every communicator (the world's and each
//! group's) on the way; on an NCCL error, and when the caller gives up at
//! the op timeout ([`Streams::give_up`](crate::backend::Streams::give_up)), it aborts them all
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
//! **Layers** (as cudarc's sys → result → safe):
//! - *sys*: the entry points. [`discovery`] is the one symbol loader of
//!   every library we open (`Opened::symbol` / `optional`), which fills
//!   the function tables [`gemm::LtLib`] and [`nccl::NcclLib`]; the
//!   driver's come from cudarc's `sys` and NVML's from `nvml-wrapper`.
//! - *result*: checked calls, a status code turned into a typed error that
//!   names the call, in one place per library: `CUresult` by
//!   `error::drv` ([`CudaError::Driver`]), `cublasStatus_t` by
//!   `LtLib::check` ([`gemm::CublasError`]), `ncclResult_t` by
//!   `NcclLib::check` ([`nccl::NcclError`]), `nvmlReturn_t` by
//!   `nvml-wrapper` (`NvmlError`, [`telemetry`]). The raw-pointer
//!   operations of this layer ([`gemm::Matmul::launch`],
//!   [`nccl::NcclComm::all_reduce_sum`], …) are `unsafe fn`s.
//! - *safe*: [`DeviceBuf`] and its ranges (`buf.rs`), [`Stream`] and
//!   [`Event`] (`stream.rs`), and the operations on them (`launch.rs`:
//!   `Matmul::enqueue`, `NcclComm::enqueue_*`), which check lengths and
//!   contexts before their one `unsafe` call each.
//! - *backend*: [`CudaBackend`] (`backend.rs`), its buffers
//!   (`buffers.rs`), its device record (`device.rs`), its spot check
//!   (`spot.rs`), its trait impls (`traits.rs`), and the NCCL group of the
//!   acceptance suite ([`group`]): built on the safe layer only, without
//!   `unsafe` blocks (`group.rs` included).
//!
//! **Checks.** All-reduces use the known-sum pattern of the CPU backend
//! (`mfubench_core::check`), counted on the host; a GEMM spot check per
//! dtype against a host reference runs at start ([`CudaBackend::spot_check`]).

mod backend;
mod buf;
mod buffers;
mod device;
mod device_record;
pub mod discovery;
mod dtype;
mod error;
pub mod fp8;
pub mod gemm;
pub mod group;
mod launch;
pub mod nccl;
mod probe;
mod spot;
pub mod stream;
pub mod telemetry;
mod traits;

pub use backend::{CudaBackend, AUTOTUNE_VAR};
pub use buf::{BufSlice, DeviceBuf};
pub use device::DeviceInfo;
pub use dtype::{decode, encode, rel_error, spot_tolerance, tf32_round};
pub use error::CudaError;
pub use launch::Operands;
pub use probe::{
    cublas_version_string, cuda_version_string, driver_present, driver_version,
    nccl_connect_at_init, no_driver_message, probe, select_ordinal, simulated, RUNTIME_CONNECT_VAR,
};
pub use spot::SpotCheck;
pub use stream::{Event, Stream};

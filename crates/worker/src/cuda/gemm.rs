//! GEMMs through cuBLASLt, loaded with `libloading` (see [`super::discovery`]).
//!
//! Only the handful of entry points the benchmark needs are bound, with
//! the integer values of the cuBLASLt header (stable across CUDA 12 and 13)
//! spelled out in [`consts`]. One library serves every dtype: bf16 and fp16
//! with f32 accumulation, tf32 (`CUBLAS_COMPUTE_32F_FAST_TF32`), plain f32,
//! and FP8 E4M3 with A/B scale pointers and bf16 output. Batched attention
//! GEMMs are strided batches (layout attributes).
//!
//! ## Row-major plan, column-major library
//! The plan's ops are row-major `C[M×N] = op(A)·op(B)` (core `plan.rs`). A
//! row-major matrix read column-major is its transpose, so the library
//! computes `Cᵀ[N×M] = op(B)ᵀ·op(A)ᵀ`: cuBLAS's first operand is the plan's
//! B buffer (transposed when `trans_b`), its second the plan's A buffer
//! (transposed when `trans_a`), and C needs no copy. [`col_major`] is that
//! mapping as a pure function.
//!
//! FP8 on Hopper and Ada runs only "TN" (first operand transposed, second
//! not). The benchmark's operands are synthetic, so an FP8 op is run TN
//! with the same M, N, K and buffer sizes whatever its transpose flags — as
//! Transformer Engine does by keeping FP8 copies in the layout the kernel
//! wants.

use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;

use mfubench_core::config::Dtype;
use mfubench_core::plan::{GemmOp, Pass, StepPlan};

use super::discovery::{self, DiscoveryError, LibSpec};

/// cuBLASLt header values used here.
pub mod consts {
    /// `CUDA_R_32F`.
    pub const CUDA_R_32F: i32 = 0;
    /// `CUDA_R_16F`.
    pub const CUDA_R_16F: i32 = 2;
    /// `CUDA_R_16BF`.
    pub const CUDA_R_16BF: i32 = 14;
    /// `CUDA_R_8F_E4M3`.
    pub const CUDA_R_8F_E4M3: i32 = 28;
    /// `CUBLAS_COMPUTE_32F`.
    pub const COMPUTE_32F: i32 = 68;
    /// `CUBLAS_COMPUTE_32F_FAST_TF32`.
    pub const COMPUTE_32F_FAST_TF32: i32 = 77;
    /// `CUBLAS_OP_N`.
    pub const OP_N: i32 = 0;
    /// `CUBLAS_OP_T`.
    pub const OP_T: i32 = 1;
    /// `CUBLASLT_MATMUL_DESC_TRANSA`.
    pub const DESC_TRANSA: i32 = 3;
    /// `CUBLASLT_MATMUL_DESC_TRANSB`.
    pub const DESC_TRANSB: i32 = 4;
    /// `CUBLASLT_MATMUL_DESC_A_SCALE_POINTER`.
    pub const DESC_A_SCALE_POINTER: i32 = 17;
    /// `CUBLASLT_MATMUL_DESC_B_SCALE_POINTER`.
    pub const DESC_B_SCALE_POINTER: i32 = 18;
    /// `CUBLASLT_MATMUL_DESC_FAST_ACCUM`.
    pub const DESC_FAST_ACCUM: i32 = 25;
    /// `CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT`.
    pub const LAYOUT_BATCH_COUNT: i32 = 5;
    /// `CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET`.
    pub const LAYOUT_STRIDED_BATCH_OFFSET: i32 = 6;
    /// `CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES`.
    pub const PREF_MAX_WORKSPACE_BYTES: i32 = 1;
    /// `CUBLAS_STATUS_SUCCESS`.
    pub const STATUS_SUCCESS: i32 = 0;
}

/// cuBLASLt workspace: 32 MiB, NVIDIA's recommendation for Hopper.
pub const WORKSPACE_BYTES: u64 = 32 << 20;
/// Heuristic candidates timed per shape when auto-tuning.
pub const MAX_ALGOS: usize = 8;

/// A cuBLASLt call failed.
#[derive(Debug, thiserror::Error)]
#[error("cuBLASLt {call} failed with status {status} ({text})")]
pub struct CublasError {
    /// The function.
    pub call: &'static str,
    /// `cublasStatus_t`.
    pub status: i32,
    /// The library's description.
    pub text: String,
}

/// `cublasLtMatmulAlgo_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Algo {
    data: [u64; 8],
}

/// `cublasLtMatmulHeuristicResult_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct HeuristicResult {
    /// The algorithm.
    pub algo: Algo,
    /// Workspace it needs.
    pub workspace_size: usize,
    /// Its status.
    pub state: i32,
    /// Waves count.
    pub waves_count: f32,
    reserved: [c_int; 4],
}

type Handle = *mut c_void;
type Desc = *mut c_void;
type Layout = *mut c_void;
type Pref = *mut c_void;
type Stream = *mut c_void;
type SetAttr = unsafe extern "C" fn(*mut c_void, i32, *const c_void, usize) -> i32;

/// The cuBLASLt entry points.
pub struct LtLib {
    create: unsafe extern "C" fn(*mut Handle) -> i32,
    destroy: unsafe extern "C" fn(Handle) -> i32,
    get_version: unsafe extern "C" fn() -> usize,
    desc_create: unsafe extern "C" fn(*mut Desc, i32, i32) -> i32,
    desc_destroy: unsafe extern "C" fn(Desc) -> i32,
    desc_set: SetAttr,
    layout_create: unsafe extern "C" fn(*mut Layout, i32, u64, u64, i64) -> i32,
    layout_destroy: unsafe extern "C" fn(Layout) -> i32,
    layout_set: SetAttr,
    pref_create: unsafe extern "C" fn(*mut Pref) -> i32,
    pref_destroy: unsafe extern "C" fn(Pref) -> i32,
    pref_set: SetAttr,
    #[allow(clippy::type_complexity)]
    heuristic: unsafe extern "C" fn(
        Handle,
        Desc,
        Layout,
        Layout,
        Layout,
        Layout,
        Pref,
        c_int,
        *mut HeuristicResult,
        *mut c_int,
    ) -> i32,
    #[allow(clippy::type_complexity)]
    matmul: unsafe extern "C" fn(
        Handle,
        Desc,
        *const c_void,
        *const c_void,
        Layout,
        *const c_void,
        Layout,
        *const c_void,
        *const c_void,
        Layout,
        *mut c_void,
        Layout,
        *const Algo,
        *mut c_void,
        usize,
        Stream,
    ) -> i32,
    status_string: Option<unsafe extern "C" fn(i32) -> *const c_char>,
    /// What was loaded (path or soname).
    pub what: String,
    // The function pointers above are valid while this lives. Never
    // unloaded (as cudarc keeps its libraries in statics): the CUDA runtime
    // linked into cuBLASLt keeps per-process state tied to the context.
    _lib: std::mem::ManuallyDrop<libloading::Library>,
}

/// The library spec searched for.
pub const SPEC: &LibSpec = &discovery::CUBLASLT;

impl LtLib {
    /// Finds and opens cuBLASLt for a driver of CUDA major `driver_major`.
    pub fn open(driver_major: Option<u32>) -> Result<LtLib, DiscoveryError> {
        let o = discovery::open(SPEC, driver_major)?;
        // SAFETY: each symbol is cast to its signature in cublasLt.h (CUDA 12
        // and 13 alike) and used only while the library lives (stored in the
        // same struct and never unloaded).
        unsafe {
            Ok(LtLib {
                create: o.symbol("cublasLtCreate")?,
                destroy: o.symbol("cublasLtDestroy")?,
                get_version: o.symbol("cublasLtGetVersion")?,
                desc_create: o.symbol("cublasLtMatmulDescCreate")?,
                desc_destroy: o.symbol("cublasLtMatmulDescDestroy")?,
                desc_set: o.symbol("cublasLtMatmulDescSetAttribute")?,
                layout_create: o.symbol("cublasLtMatrixLayoutCreate")?,
                layout_destroy: o.symbol("cublasLtMatrixLayoutDestroy")?,
                layout_set: o.symbol("cublasLtMatrixLayoutSetAttribute")?,
                pref_create: o.symbol("cublasLtMatmulPreferenceCreate")?,
                pref_destroy: o.symbol("cublasLtMatmulPreferenceDestroy")?,
                pref_set: o.symbol("cublasLtMatmulPreferenceSetAttribute")?,
                heuristic: o.symbol("cublasLtMatmulAlgoGetHeuristic")?,
                matmul: o.symbol("cublasLtMatmul")?,
                status_string: o.optional("cublasLtGetStatusString"),
                what: o.what.clone(),
                _lib: std::mem::ManuallyDrop::new(o.lib),
            })
        }
    }

    /// `cublasLtGetVersion()`, e.g. 120804 for 12.8.4.
    pub fn version(&self) -> usize {
        // SAFETY: no arguments, no preconditions.
        unsafe { (self.get_version)() }
    }

    fn check(&self, call: &'static str, status: i32) -> Result<(), CublasError> {
        if status == consts::STATUS_SUCCESS {
            return Ok(());
        }
        let text = self
            .status_string
            .map(|f| {
                // SAFETY: cublasLtGetStatusString returns a static,
                // NUL-terminated string for any status value (or null).
                let p = unsafe { f(status) };
                if p.is_null() {
                    String::new()
                } else {
                    // SAFETY: non-null, NUL-terminated, static.
                    unsafe { std::ffi::CStr::from_ptr(p) }
                        .to_string_lossy()
                        .into_owned()
                }
            })
            .unwrap_or_default();
        Err(CublasError { call, status, text })
    }
}

/// A cuBLASLt handle.
pub struct LtHandle {
    lib: Arc<LtLib>,
    raw: Handle,
}

impl LtHandle {
    /// `cublasLtCreate` (the device's context must be current).
    pub fn new(lib: Arc<LtLib>) -> Result<LtHandle, CublasError> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer.
        lib.check("cublasLtCreate", unsafe { (lib.create)(&mut raw) })?;
        Ok(LtHandle { lib, raw })
    }
}

impl Drop for LtHandle {
    fn drop(&mut self) {
        // SAFETY: created by cublasLtCreate, destroyed once.
        unsafe { (self.lib.destroy)(self.raw) };
    }
}

/// cuBLASLt types of one GEMM dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmTypes {
    /// A and B data type.
    pub input: i32,
    /// C and D data type.
    pub output: i32,
    /// Compute type.
    pub compute: i32,
    /// Scale (alpha/beta) type.
    pub scale: i32,
    /// Bytes per input element.
    pub in_bytes: u64,
    /// Bytes per output element.
    pub out_bytes: u64,
    /// FP8 with scale pointers and TN layout.
    pub fp8: bool,
}

/// The cuBLASLt types of `dtype` (None for f64, which the CUDA backend does
/// not run).
pub fn gemm_types(dtype: Dtype) -> Option<GemmTypes> {
    use consts::*;
    let t = |input, output, compute, in_bytes, out_bytes, fp8| GemmTypes {
        input,
        output,
        compute,
        scale: CUDA_R_32F,
        in_bytes,
        out_bytes,
        fp8,
    };
    match dtype {
        Dtype::Bf16 => Some(t(CUDA_R_16BF, CUDA_R_16BF, COMPUTE_32F, 2, 2, false)),
        Dtype::Fp16 => Some(t(CUDA_R_16F, CUDA_R_16F, COMPUTE_32F, 2, 2, false)),
        Dtype::Tf32 => Some(t(
            CUDA_R_32F,
            CUDA_R_32F,
            COMPUTE_32F_FAST_TF32,
            4,
            4,
            false,
        )),
        Dtype::F32 => Some(t(CUDA_R_32F, CUDA_R_32F, COMPUTE_32F, 4, 4, false)),
        Dtype::Fp8 => Some(t(CUDA_R_8F_E4M3, CUDA_R_16BF, COMPUTE_32F, 1, 2, true)),
        Dtype::F64 => None,
    }
}

/// A matrix as cuBLASLt sees it: stored column-major `rows × cols`, leading
/// dimension `ld`, batch entries `stride` elements apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatLayout {
    /// Rows as stored.
    pub rows: u64,
    /// Columns as stored.
    pub cols: u64,
    /// Leading dimension.
    pub ld: u64,
    /// Elements between batch entries.
    pub stride: u64,
}

/// One GEMM in cuBLASLt's column-major terms:
/// `D[m×n] = op(first)[m×k] · op(second)[k×n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColMajorGemm {
    /// Rows of D (the plan's N).
    pub m: u64,
    /// Columns of D (the plan's M).
    pub n: u64,
    /// Inner dimension.
    pub k: u64,
    /// Batch entries of one launch.
    pub batch: u64,
    /// First operand (the plan's B buffer) transposed.
    pub trans_first: bool,
    /// Second operand (the plan's A buffer) transposed.
    pub trans_second: bool,
    /// First operand's layout.
    pub first: MatLayout,
    /// Second operand's layout.
    pub second: MatLayout,
    /// Output layout.
    pub out: MatLayout,
}

/// Maps a row-major plan op (with `batch` entries per launch) to cuBLASLt:
/// `Cᵀ = op(B)ᵀ·op(A)ᵀ`. `tn` forces the FP8 "TN" form (first operand
/// transposed, second not) with the same shape.
pub fn col_major(op: &GemmOp, batch: u64, tn: bool) -> ColMajorGemm {
    let (mm, nn, kk) = (op.m, op.n, op.k);
    let (tb, ta) = if tn {
        (true, false)
    } else {
        (op.trans_b, op.trans_a)
    };
    // The plan's B: K×N row-major (N×K when transposed); read column-major
    // it is N×K (K×N).
    let first = if tb {
        MatLayout {
            rows: kk,
            cols: nn,
            ld: kk,
            stride: kk * nn,
        }
    } else {
        MatLayout {
            rows: nn,
            cols: kk,
            ld: nn,
            stride: kk * nn,
        }
    };
    // The plan's A: M×K row-major (K×M when transposed); read column-major
    // it is K×M (M×K).
    let second = if ta {
        MatLayout {
            rows: mm,
            cols: kk,
            ld: mm,
            stride: mm * kk,
        }
    } else {
        MatLayout {
            rows: kk,
            cols: mm,
            ld: kk,
            stride: mm * kk,
        }
    };
    ColMajorGemm {
        m: nn,
        n: mm,
        k: kk,
        batch,
        trans_first: tb,
        trans_second: ta,
        first,
        second,
        out: MatLayout {
            rows: nn,
            cols: mm,
            ld: nn,
            stride: mm * nn,
        },
    }
}

/// Reference column-major batched GEMM over f64 host data, as cuBLASLt
/// defines it for a [`ColMajorGemm`] (for tests and the spot check).
pub fn reference_col_major(g: &ColMajorGemm, first: &[f64], second: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; (g.out.stride * g.batch) as usize];
    for e in 0..g.batch as usize {
        let f = &first[e * g.first.stride as usize..];
        let s = &second[e * g.second.stride as usize..];
        let o = &mut out[e * g.out.stride as usize..];
        for j in 0..g.n as usize {
            for i in 0..g.m as usize {
                let mut acc = 0.0;
                for p in 0..g.k as usize {
                    // op(first)[i, p] and op(second)[p, j], column-major.
                    let x = if g.trans_first {
                        f[p + i * g.first.ld as usize]
                    } else {
                        f[i + p * g.first.ld as usize]
                    };
                    let y = if g.trans_second {
                        s[j + p * g.second.ld as usize]
                    } else {
                        s[p + j * g.second.ld as usize]
                    };
                    acc += x * y;
                }
                o[i + j * g.out.ld as usize] = acc;
            }
        }
    }
    out
}

/// Alignment of every operand offset inside its buffer. cuBLASLt's
/// heuristic assumes 256-byte aligned pointers unless told otherwise
/// (`CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES`), and `cuMemAlloc` returns
/// 256-byte aligned bases.
pub const OPERAND_ALIGN: u64 = 256;

/// Bytes each operand buffer spans at least so that rotating offsets
/// ([`next_operand_offset`]) keep operands out of L2: twice the L2 size.
/// Without it every GEMM would read its operands at offset 0, where the
/// previous GEMM left them, and small shapes would run from L2 (as
/// nccl-tests and cuBLAS benchmarks avoid with rotating buffers).
pub fn rotation_bytes(l2_bytes: u64) -> u64 {
    2 * l2_bytes
}

/// Ring placement of operands in a buffer of `region` bytes: the launch
/// after the one that ended at `cursor` reads its `bytes` right after it,
/// or from offset 0 when they would run past the end. Returns `(offset,
/// new cursor)`. A byte is therefore read again only after about `region`
/// bytes of other operands of that buffer; with `region` ≥ 2·L2 and
/// operands ≤ L2 that is at least one L2 of traffic, enough to evict it.
/// `bytes` must not exceed `region` (the memory plan sizes buffers so).
pub fn next_operand_offset(cursor: u64, bytes: u64, region: u64) -> (u64, u64) {
    let span = bytes.div_ceil(OPERAND_ALIGN).max(1) * OPERAND_ALIGN;
    let at = if cursor.saturating_add(span) <= region {
        cursor
    } else {
        0
    };
    (at, at + span)
}

/// Bytes of the first operand, the second operand and the output of one
/// launch of `g` (all batch entries).
pub fn launch_bytes(g: &ColMajorGemm, types: &GemmTypes) -> [u64; 3] {
    [
        g.first.stride * g.batch * types.in_bytes,
        g.second.stride * g.batch * types.in_bytes,
        g.out.stride * g.batch * types.out_bytes,
    ]
}

/// Device memory the plan needs, and how batched ops are split to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Most batch entries per launch (batched attention GEMMs are run in
    /// chunks of this many when the whole batch does not fit).
    pub batch_chunk: u64,
    /// Bytes of the A, B and C scratch buffers: the largest operand of the
    /// plan, and at least the rotation region ([`rotation_bytes`]).
    pub a_bytes: u64,
    /// See `a_bytes`.
    pub b_bytes: u64,
    /// See `a_bytes`.
    pub c_bytes: u64,
    /// Send + receive buffers of every bucket.
    pub bucket_bytes: u64,
    /// Everything, workspace included.
    pub total: u64,
}

/// Sizes the buffers for `plan` within `free` bytes (minus `reserve` for
/// the libraries), halving the batch chunk of batched ops until they fit.
/// Each operand buffer spans at least `rotation` bytes.
pub fn plan_memory(
    plan: &StepPlan,
    types: &GemmTypes,
    grad_bytes: u64,
    free: u64,
    reserve: u64,
    rotation: u64,
) -> Result<MemoryPlan, String> {
    // Buckets (send + receive) and the other collectives' buffers (the
    // whole buffer and one shard: all-gather in/out, reduce-scatter out/in;
    // an all-reduce's two whole buffers are counted as whole + shard =
    // whole + whole).
    let bucket_bytes = 2 * plan
        .buckets
        .iter()
        .map(|b| b.elements * grad_bytes)
        .sum::<u64>()
        + plan
            .collectives
            .iter()
            .filter(|c| c.bucket.is_none())
            .map(|c| (c.elements + c.shard_elements()) * grad_bytes)
            .sum::<u64>();
    let max_batch = plan.ops.iter().map(|o| o.batch).max().unwrap_or(1).max(1);
    let budget = free.saturating_sub(reserve);
    let mut chunk = max_batch;
    loop {
        let (mut a, mut b, mut c) = (0u64, 0u64, 0u64);
        for op in &plan.ops {
            let (ea, eb, ec) = op.operand_elements();
            let n = op.batch.min(chunk);
            a = a.max(ea * n);
            b = b.max(eb * n);
            c = c.max(ec * n);
        }
        let (a_bytes, b_bytes, c_bytes) = (
            (a * types.in_bytes).max(rotation),
            (b * types.in_bytes).max(rotation),
            (c * types.out_bytes).max(rotation),
        );
        let mp = MemoryPlan {
            batch_chunk: chunk,
            a_bytes,
            b_bytes,
            c_bytes,
            bucket_bytes,
            total: a_bytes + b_bytes + c_bytes + bucket_bytes + WORKSPACE_BYTES,
        };
        if mp.total <= budget {
            return Ok(mp);
        }
        if chunk == 1 {
            let gib = |x: u64| x as f64 / (1u64 << 30) as f64;
            return Err(format!(
                "the plan needs {:.1} GiB of GPU memory ({:.1} GiB of GEMM operands, {:.1} GiB of gradient buckets) but {:.1} GiB are free; reduce model.seq or run.micro_batch (operands), or run.layers / run.bucket_mb (buckets)",
                gib(mp.total),
                gib(mp.a_bytes + mp.b_bytes + mp.c_bytes),
                gib(bucket_bytes),
                gib(budget)
            ));
        }
        chunk = chunk.div_ceil(2);
    }
}

/// Launch shapes of one op: `(batch entries, launches)`, at most two kinds
/// (full chunks and the remainder).
pub fn launches(batch: u64, chunk: u64) -> Vec<(u64, u64)> {
    let chunk = chunk.max(1).min(batch.max(1));
    let full = batch / chunk;
    let rest = batch % chunk;
    let mut v = vec![(chunk, full)];
    if rest > 0 {
        v.push((rest, 1));
    }
    v
}

/// Whether an FP8 op uses fast accumulation: forward passes yes, gradients
/// no (Transformer Engine's default recipe: the split accumulator keeps
/// gradient GEMMs accurate).
pub fn fp8_fast_accum(op: &GemmOp) -> bool {
    matches!(op.pass, Pass::Forward | Pass::Recompute)
}

/// A prepared matmul: descriptors and the chosen algorithm, reused by every
/// launch of its shape.
pub struct Matmul {
    lib: Arc<LtLib>,
    desc: Desc,
    layouts: [Layout; 3],
    /// Candidate algorithms from the heuristic, best first.
    pub algos: Vec<HeuristicResult>,
    /// Index into `algos` of the one used.
    pub chosen: usize,
    /// Whether the output type is that of FP8 (bf16).
    pub fp8: bool,
    /// Bytes of the first operand, second operand and output of one launch
    /// ([`launch_bytes`]).
    bytes: [u64; 3],
    /// The FP8 scale pointers set in the descriptor.
    scales: Option<(u64, u64)>,
}

impl Drop for Matmul {
    fn drop(&mut self) {
        // SAFETY: each descriptor was created once by this struct and is
        // destroyed once; null ones (creation failed) are skipped.
        unsafe {
            for l in self.layouts {
                if !l.is_null() {
                    (self.lib.layout_destroy)(l);
                }
            }
            if !self.desc.is_null() {
                (self.lib.desc_destroy)(self.desc);
            }
        }
    }
}

fn set<T>(
    lib: &LtLib,
    f: SetAttr,
    obj: *mut c_void,
    attr: i32,
    v: &T,
    call: &'static str,
) -> Result<(), CublasError> {
    // SAFETY: `v` points to a live value of exactly size_of::<T>() bytes,
    // the type cuBLASLt documents for `attr` (the callers pass i32 for enums,
    // i64 for strides, u64 for sizes, pointers for *_POINTER attributes).
    lib.check(call, unsafe {
        f(
            obj,
            attr,
            v as *const T as *const c_void,
            std::mem::size_of::<T>(),
        )
    })
}

impl Matmul {
    /// Creates the descriptors of `g` and asks the heuristic for up to
    /// `max_algos` algorithms. `scales` are device pointers to the FP8
    /// dequantisation factors of the first and second operand.
    pub fn new(
        h: &LtHandle,
        g: &ColMajorGemm,
        types: &GemmTypes,
        fast_accum: bool,
        scales: Option<(u64, u64)>,
        max_algos: usize,
    ) -> Result<Matmul, CublasError> {
        use consts::*;
        let lib: &LtLib = &h.lib;
        let mut mm = Matmul {
            lib: h.lib.clone(),
            desc: std::ptr::null_mut(),
            layouts: [std::ptr::null_mut(); 3],
            algos: Vec::new(),
            chosen: 0,
            fp8: types.fp8,
            bytes: launch_bytes(g, types),
            scales: None,
        };
        // SAFETY: `mm.desc` is a valid out-pointer.
        lib.check("cublasLtMatmulDescCreate", unsafe {
            (lib.desc_create)(&mut mm.desc, types.compute, types.scale)
        })?;
        let op = |t: bool| if t { OP_T } else { OP_N };
        let call = "cublasLtMatmulDescSetAttribute";
        set(
            lib,
            lib.desc_set,
            mm.desc,
            DESC_TRANSA,
            &op(g.trans_first),
            call,
        )?;
        set(
            lib,
            lib.desc_set,
            mm.desc,
            DESC_TRANSB,
            &op(g.trans_second),
            call,
        )?;
        if types.fp8 {
            let fa: i8 = i8::from(fast_accum);
            set(lib, lib.desc_set, mm.desc, DESC_FAST_ACCUM, &fa, call)?;
            if let Some((sa, sb)) = scales {
                let (pa, pb) = (sa as *const c_void, sb as *const c_void);
                set(lib, lib.desc_set, mm.desc, DESC_A_SCALE_POINTER, &pa, call)?;
                set(lib, lib.desc_set, mm.desc, DESC_B_SCALE_POINTER, &pb, call)?;
                mm.scales = Some((sa, sb));
            }
        }
        let specs = [
            (types.input, g.first),
            (types.input, g.second),
            (types.output, g.out),
        ];
        for (i, (ty, l)) in specs.into_iter().enumerate() {
            // SAFETY: valid out-pointer; sizes are plain integers.
            lib.check("cublasLtMatrixLayoutCreate", unsafe {
                (lib.layout_create)(&mut mm.layouts[i], ty, l.rows, l.cols, l.ld as i64)
            })?;
            if g.batch > 1 {
                let count = g.batch as i32;
                let stride = l.stride as i64;
                let call = "cublasLtMatrixLayoutSetAttribute";
                set(
                    lib,
                    lib.layout_set,
                    mm.layouts[i],
                    LAYOUT_BATCH_COUNT,
                    &count,
                    call,
                )?;
                set(
                    lib,
                    lib.layout_set,
                    mm.layouts[i],
                    LAYOUT_STRIDED_BATCH_OFFSET,
                    &stride,
                    call,
                )?;
            }
        }
        let mut pref: Pref = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        lib.check("cublasLtMatmulPreferenceCreate", unsafe {
            (lib.pref_create)(&mut pref)
        })?;
        let ws: u64 = WORKSPACE_BYTES;
        let r = set(
            lib,
            lib.pref_set,
            pref,
            PREF_MAX_WORKSPACE_BYTES,
            &ws,
            "cublasLtMatmulPreferenceSetAttribute",
        )
        .and_then(|_| {
            let mut results = vec![HeuristicResult::default(); max_algos.max(1)];
            let mut n: c_int = 0;
            // SAFETY: every descriptor is live; `results` holds
            // `results.len()` entries and `n` is a valid out-pointer.
            lib.check("cublasLtMatmulAlgoGetHeuristic", unsafe {
                (lib.heuristic)(
                    h.raw,
                    mm.desc,
                    mm.layouts[0],
                    mm.layouts[1],
                    mm.layouts[2],
                    mm.layouts[2],
                    pref,
                    results.len() as c_int,
                    results.as_mut_ptr(),
                    &mut n,
                )
            })?;
            results.truncate(n.max(0) as usize);
            results.retain(|r| r.state == STATUS_SUCCESS && r.workspace_size as u64 <= ws);
            Ok(results)
        });
        // SAFETY: created above, destroyed once.
        unsafe { (lib.pref_destroy)(pref) };
        mm.algos = r?;
        if mm.algos.is_empty() {
            return Err(CublasError {
                call: "cublasLtMatmulAlgoGetHeuristic",
                status: 15, // CUBLAS_STATUS_NOT_SUPPORTED
                text: format!(
                    "no algorithm for {}×{}×{} (batch {})",
                    g.m, g.n, g.k, g.batch
                ),
            });
        }
        Ok(mm)
    }

    /// Bytes of the first operand, second operand and output one launch
    /// reads and writes ([`launch_bytes`] of the shape it was made for).
    pub fn operand_bytes(&self) -> [u64; 3] {
        self.bytes
    }

    /// The device pointers of the FP8 scale factors (first operand's,
    /// second's) the descriptor holds; `None` when it holds none.
    pub fn scale_ptrs(&self) -> Option<(u64, u64)> {
        self.scales
    }

    /// Enqueues `D = op(first)·op(second)` on `stream` with algorithm
    /// `algo` (an index into `algos`). The checked, safe form is
    /// [`Matmul::enqueue`] (`cuda/launch.rs`).
    ///
    /// # Safety
    /// The device pointers must hold the shapes the matmul was created for
    /// (batch included), `workspace` at least [`WORKSPACE_BYTES`], all in the
    /// context current on this thread, and stay allocated until the stream
    /// has run the GEMM.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn launch(
        &self,
        h: &LtHandle,
        algo: usize,
        first: u64,
        second: u64,
        out: u64,
        workspace: u64,
        stream: Stream,
    ) -> Result<(), CublasError> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        let a = &self.algos[algo.min(self.algos.len() - 1)];
        self.lib.check(
            "cublasLtMatmul",
            (self.lib.matmul)(
                h.raw,
                self.desc,
                &alpha as *const f32 as *const c_void,
                first as *const c_void,
                self.layouts[0],
                second as *const c_void,
                self.layouts[1],
                &beta as *const f32 as *const c_void,
                out as *const c_void,
                self.layouts[2],
                out as *mut c_void,
                self.layouts[2],
                &a.algo,
                workspace as *mut c_void,
                WORKSPACE_BYTES as usize,
                stream,
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfubench_core::plan::GemmKind;

    fn op(m: u64, n: u64, k: u64, batch: u64, ta: bool, tb: bool) -> GemmOp {
        GemmOp {
            layer: Some(0),
            kind: GemmKind::FfnUp,
            pass: Pass::Forward,
            m,
            n,
            k,
            batch,
            trans_a: ta,
            trans_b: tb,
            bucket: None,
            expert: None,
            chunk: None,
        }
    }

    fn data(n: usize, seed: u64) -> Vec<f64> {
        (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed) % 97) as f64 - 48.0) / 16.0)
            .collect()
    }

    #[test]
    fn column_major_mapping_reproduces_the_row_major_product() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let o = op(5, 7, 3, 2, ta, tb);
            let a = data(5 * 3 * 2, 1);
            let b = data(3 * 7 * 2, 2);
            let g = col_major(&o, o.batch, false);
            assert_eq!((g.m, g.n, g.k), (7, 5, 3));
            assert_eq!((g.trans_first, g.trans_second), (tb, ta));
            // First operand = the plan's B buffer, second = the plan's A.
            let got = reference_col_major(&g, &b, &a);
            assert_eq!(got, GemmOp::reference(&o, &a, &b), "ta {ta} tb {tb}");
        }
    }

    #[test]
    fn known_layouts_of_the_linear_gemms() {
        // Forward Y[T×n] = X[T×k]·W[k×n], T = 8192, k = 4096, n = 14336.
        let f = col_major(&op(8192, 14336, 4096, 1, false, false), 1, false);
        assert_eq!(
            f.first,
            MatLayout {
                rows: 14336,
                cols: 4096,
                ld: 14336,
                stride: 4096 * 14336
            }
        );
        assert_eq!(
            f.second,
            MatLayout {
                rows: 4096,
                cols: 8192,
                ld: 4096,
                stride: 8192 * 4096
            }
        );
        assert_eq!(f.out.ld, 14336);
        // dgrad dX = dY·Wᵀ: trans_b → first operand transposed ("TN").
        let d = col_major(&op(8192, 4096, 14336, 1, false, true), 1, false);
        assert!(d.trans_first && !d.trans_second);
        assert_eq!(d.first.ld, 14336);
        // wgrad dW = Xᵀ·dY: trans_a → second operand transposed ("NT").
        let w = col_major(&op(4096, 14336, 8192, 1, true, false), 1, false);
        assert!(!w.trans_first && w.trans_second);
        assert_eq!((w.first.ld, w.second.ld, w.out.ld), (14336, 4096, 14336));
    }

    #[test]
    fn fp8_is_always_tn_with_the_same_shape_and_sizes() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let o = op(64, 48, 32, 3, ta, tb);
            let g = col_major(&o, 3, true);
            let plain = col_major(&o, 3, false);
            assert!(g.trans_first && !g.trans_second);
            assert_eq!((g.m, g.n, g.k), (plain.m, plain.n, plain.k));
            assert_eq!(g.first.stride, plain.first.stride);
            assert_eq!(g.second.stride, plain.second.stride);
            // TN: both operands have K as their leading dimension.
            assert_eq!((g.first.ld, g.second.ld), (32, 32));
        }
    }

    /// Our hand-written header values and struct layouts against cudarc's
    /// bindgen output of cublasLt.h / library_types.h (the cuda-12080
    /// bindings this crate is built with).
    #[test]
    fn header_values_match_the_generated_bindings() {
        use cudarc::cublas::sys::cublasOperation_t as Op;
        use cudarc::cublaslt::sys as lt;
        use lt::cublasLtMatmulDescAttributes_t as D;
        use lt::cublasLtMatmulPreferenceAttributes_t as P;
        use lt::cublasLtMatrixLayoutAttribute_t as L;
        use lt::cudaDataType_t as T;
        assert_eq!(consts::CUDA_R_32F, T::CUDA_R_32F as i32);
        assert_eq!(consts::CUDA_R_16F, T::CUDA_R_16F as i32);
        assert_eq!(consts::CUDA_R_16BF, T::CUDA_R_16BF as i32);
        assert_eq!(consts::CUDA_R_8F_E4M3, T::CUDA_R_8F_E4M3 as i32);
        assert_eq!(
            consts::COMPUTE_32F,
            lt::cublasComputeType_t::CUBLAS_COMPUTE_32F as i32
        );
        assert_eq!(
            consts::COMPUTE_32F_FAST_TF32,
            lt::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32 as i32
        );
        assert_eq!(consts::OP_N, Op::CUBLAS_OP_N as i32);
        assert_eq!(consts::OP_T, Op::CUBLAS_OP_T as i32);
        assert_eq!(consts::DESC_TRANSA, D::CUBLASLT_MATMUL_DESC_TRANSA as i32);
        assert_eq!(consts::DESC_TRANSB, D::CUBLASLT_MATMUL_DESC_TRANSB as i32);
        assert_eq!(
            consts::DESC_A_SCALE_POINTER,
            D::CUBLASLT_MATMUL_DESC_A_SCALE_POINTER as i32
        );
        assert_eq!(
            consts::DESC_B_SCALE_POINTER,
            D::CUBLASLT_MATMUL_DESC_B_SCALE_POINTER as i32
        );
        assert_eq!(
            consts::DESC_FAST_ACCUM,
            D::CUBLASLT_MATMUL_DESC_FAST_ACCUM as i32
        );
        assert_eq!(
            consts::LAYOUT_BATCH_COUNT,
            L::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT as i32
        );
        assert_eq!(
            consts::LAYOUT_STRIDED_BATCH_OFFSET,
            L::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET as i32
        );
        assert_eq!(
            consts::PREF_MAX_WORKSPACE_BYTES,
            P::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES as i32
        );
        assert_eq!(
            consts::STATUS_SUCCESS,
            lt::cublasStatus_t::CUBLAS_STATUS_SUCCESS as i32
        );
        assert_eq!(
            std::mem::size_of::<Algo>(),
            std::mem::size_of::<lt::cublasLtMatmulAlgo_t>()
        );
        assert_eq!(
            std::mem::size_of::<HeuristicResult>(),
            std::mem::size_of::<lt::cublasLtMatmulHeuristicResult_t>()
        );
        assert_eq!(std::mem::size_of::<HeuristicResult>(), 96);
        assert_eq!(std::mem::offset_of!(HeuristicResult, workspace_size), 64);
        assert_eq!(std::mem::offset_of!(HeuristicResult, state), 72);
        assert_eq!(std::mem::offset_of!(HeuristicResult, waves_count), 76);
    }

    #[test]
    fn dtype_selection() {
        use consts::*;
        let bf = gemm_types(Dtype::Bf16).unwrap();
        assert_eq!(
            (bf.input, bf.output, bf.compute),
            (CUDA_R_16BF, CUDA_R_16BF, COMPUTE_32F)
        );
        let h = gemm_types(Dtype::Fp16).unwrap();
        assert_eq!(
            (h.input, h.compute, h.scale),
            (CUDA_R_16F, COMPUTE_32F, CUDA_R_32F)
        );
        let t = gemm_types(Dtype::Tf32).unwrap();
        assert_eq!(
            (t.input, t.compute, t.in_bytes),
            (CUDA_R_32F, COMPUTE_32F_FAST_TF32, 4)
        );
        let f8 = gemm_types(Dtype::Fp8).unwrap();
        assert_eq!(
            (f8.input, f8.output, f8.in_bytes, f8.out_bytes),
            (CUDA_R_8F_E4M3, CUDA_R_16BF, 1, 2)
        );
        assert!(f8.fp8 && !bf.fp8);
        assert!(gemm_types(Dtype::F64).is_none());
    }

    #[test]
    fn memory_plan_chunks_attention_batches_to_fit() {
        let c = mfubench_core::config::parse_config(
            "[model]\npreset = \"llama3-8b\"\n[run]\nbackend = \"cuda\"\nlayers = 1\n",
            "t",
        )
        .unwrap();
        let plan = StepPlan::for_config(&c);
        let ty = gemm_types(Dtype::Bf16).unwrap();
        let big = plan_memory(&plan, &ty, 2, 141 << 30, 2 << 30, 0).unwrap();
        assert_eq!(big.batch_chunk, 32, "one sequence × 32 heads fits an H200");
        // Scores: 32 × 8192² bf16 = 4 GiB of C.
        assert_eq!(big.c_bytes, 32 * 8192 * 8192 * 2);
        let small = plan_memory(&plan, &ty, 2, 6 << 30, 1 << 30, 0).unwrap();
        assert!(
            small.batch_chunk < 32 && small.total <= 5 << 30,
            "{small:?}"
        );
        let e = plan_memory(&plan, &ty, 2, 1 << 30, 1 << 29, 0).unwrap_err();
        assert!(
            e.contains("model.seq") && e.contains("run.micro_batch"),
            "{e}"
        );
    }

    #[test]
    fn operand_offsets_rotate_through_the_region() {
        const MIB: u64 = 1 << 20;
        // 3 MiB operands in a 10 MiB region: 0, 3, 6, then back to 0.
        let mut cursor = 0;
        let mut at = Vec::new();
        for _ in 0..5 {
            let (o, c) = next_operand_offset(cursor, 3 * MIB, 10 * MIB);
            at.push(o / MIB);
            cursor = c;
        }
        assert_eq!(at, [0, 3, 6, 0, 3]);
        // Sizes are rounded up to 256 bytes: offsets stay aligned.
        assert_eq!(next_operand_offset(0, 100, 4096), (0, 256));
        assert_eq!(next_operand_offset(256, 257, 4096), (256, 768));
        assert_eq!(next_operand_offset(0, 0, 4096), (0, 256));
        // An operand as large as the region always starts at 0.
        assert_eq!(next_operand_offset(0, 10 * MIB, 10 * MIB), (0, 10 * MIB));
        assert_eq!(
            next_operand_offset(10 * MIB, 10 * MIB, 10 * MIB),
            (0, 10 * MIB)
        );
        // Mixed sizes: the cursor wraps only when the next one does not fit,
        // and nothing ever runs past the end.
        let (region, mut cursor) = (2 * 60 * MIB, 0);
        let mut reread_after = Vec::new();
        let mut last_read = std::collections::HashMap::new();
        let mut traffic = 0u64;
        for i in 0..1000u64 {
            let bytes = [5 * MIB, 32 * MIB + 100, 7 * MIB, 60 * MIB][(i % 4) as usize];
            let (o, c) = next_operand_offset(cursor, bytes, region);
            assert!(o % OPERAND_ALIGN == 0 && o + bytes <= region, "{i}: {o}");
            // Bytes read since this offset was last read: with operands no
            // larger than the L2 (60 MiB) and a region of twice it, at least
            // one L2's worth.
            if let Some(t) = last_read.insert(o, traffic) {
                reread_after.push(traffic - t);
            }
            traffic += bytes;
            cursor = c;
        }
        assert!(!reread_after.is_empty());
        assert!(
            reread_after.iter().all(|t| *t >= 60 * MIB),
            "{reread_after:?}"
        );
    }

    #[test]
    fn memory_plan_buffers_span_the_rotation_region() {
        let c = mfubench_core::config::parse_config(
            "[model]\npreset = \"tiny\"\n[run]\nbackend = \"cuda\"\nlayers = 1\n",
            "t",
        )
        .unwrap();
        let plan = StepPlan::for_config(&c);
        let ty = gemm_types(Dtype::Bf16).unwrap();
        let plain = plan_memory(&plan, &ty, 2, 80 << 30, 2 << 30, 0).unwrap();
        let rot = rotation_bytes(50 << 20);
        assert_eq!(rot, 100 << 20);
        let m = plan_memory(&plan, &ty, 2, 80 << 30, 2 << 30, rot).unwrap();
        assert!(plain.a_bytes < rot && plain.b_bytes < rot, "{plain:?}");
        assert_eq!((m.a_bytes, m.b_bytes, m.c_bytes), (rot, rot, rot));
        assert_eq!(
            m.total,
            3 * rot + m.bucket_bytes + WORKSPACE_BYTES,
            "the rotation region is counted"
        );
        // Every launch's operands fit their buffers.
        for op in &plan.ops {
            for (batch, _) in launches(op.batch, m.batch_chunk) {
                let [f, s, o] = launch_bytes(&col_major(op, batch, false), &ty);
                assert!(f <= m.b_bytes && s <= m.a_bytes && o <= m.c_bytes);
            }
        }
    }

    #[test]
    fn launches_split_a_batch() {
        assert_eq!(launches(32, 32), vec![(32, 1)]);
        assert_eq!(launches(32, 8), vec![(8, 4)]);
        assert_eq!(launches(33, 8), vec![(8, 4), (1, 1)]);
        assert_eq!(launches(1, 8), vec![(1, 1)]);
    }

    #[test]
    fn fast_accumulation_only_in_forward() {
        let mut o = op(1, 1, 1, 1, false, false);
        assert!(fp8_fast_accum(&o));
        o.pass = Pass::Dgrad;
        assert!(!fp8_fast_accum(&o));
        o.pass = Pass::Wgrad;
        assert!(!fp8_fast_accum(&o));
    }
}

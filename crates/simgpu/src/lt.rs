//! The cuBLASLt stand-in: handles, matmul descriptors, matrix layouts,
//! preferences, the algorithm heuristic and `cublasLtMatmul` itself, which
//! queues the GEMM on a simulated stream and computes it on the CPU
//! ([`crate::lt_math`]).
//!
//! # Design
//! **Objects.** Handles, descriptors, layouts and preferences are heap
//! objects (`Box` into a raw pointer) listed in a registry of live objects.
//! Every call looks its arguments up there under the registry's lock: null
//! gives the status cuBLASLt documents, while a pointer that is not a live
//! object of the expected kind (destroyed already, never created, or a
//! layout passed as a descriptor) stops the process naming the call — on a
//! GPU that is memory corruption, here it is a message.
//!
//! **Attributes.** Set functions read the value from `(buf, sizeInBytes)`
//! with the size and type `cublasLt.h` documents for the attribute; a null
//! `buf`, a different size or an attribute the header does not define is
//! `CUBLAS_STATUS_INVALID_VALUE`, as in cuBLASLt. Attributes whose
//! non-default values the simulation does not implement (epilogues, device
//! pointer modes, C/D scaling and amax, block scaling, fill modes, atomics
//! synchronisation, …) are accepted, and a descriptor holding one is refused
//! by the heuristic and the matmul with `CUBLAS_STATUS_NOT_SUPPORTED`, never
//! silently ignored. Attributes that only tune performance or only matter
//! with those features (SM count target, epilogue strides and types,
//! minimum alignments, search mode, …) are accepted and have no effect.
//!
//! **What runs.** Compute type `CUBLAS_COMPUTE_32F` (and `_PEDANTIC`) with
//! scale type `CUDA_R_32F` for bf16 → bf16/f32, fp16 → fp16/f32, f32 → f32
//! and FP8 (E4M3 × E4M3, E4M3 × E5M2, E5M2 × E4M3) → bf16/fp16/f32 with the
//! A/B scale pointers; `_FAST_TF32`, `_FAST_16F` and `_FAST_16BF` for f32
//! (inputs rounded accordingly). FP8 needs, as on Hopper, the "TN" form (A
//! transposed, B not) and 16-byte aligned leading dimensions and pointers.
//! Anything else — other compute or scale types, f64, integer or FP8
//! outputs, row-major or planar layouts, pointer-array batches — is
//! `CUBLAS_STATUS_NOT_SUPPORTED`. Inconsistent shapes (inner dimensions,
//! C/D shapes, batch counts, `ld < rows`, empty matrices, negative strides)
//! are `CUBLAS_STATUS_INVALID_VALUE`. With `CUBLASLT_LOG_LEVEL` ≥ 1 every
//! refusal is explained on stderr, as cuBLASLt's own error log would.
//!
//! **Heuristic.** Up to [`ALGOS`] algorithms, told apart by the low byte
//! of `data[0]` (the rest is a marker that `cublasLtMatmul` checks), each
//! with workspace 0, state `CUBLAS_STATUS_SUCCESS` and 1.0 waves. Algorithm
//! 0 splits the multiplication over a few CPU threads, algorithm 1 runs on
//! the stream's thread alone, so auto-tuning has a real choice to time.
//!
//! **Matmul.** `alpha` and `beta` are read from the host at the call, as
//! cuBLASLt does in host pointer mode. The GEMM is queued on the stream
//! with the byte ranges it touches — A, B, the FP8 scale factors, C (only
//! when `beta ≠ 0`: cuBLAS reads no C then) and D — so the stream checks
//! them against live allocations and the race checker orders them; the
//! stream thread later computes it from device memory (host addresses).
//! A range's extent is `((batch − 1)·stride + (cols − 1)·ld + rows)`
//! elements of the layout.
//!
//! **Faults** of the stream's device ([`crate::fault`]): `slow=f` sleeps
//! after each GEMM so that it takes 1/f of its measured time; `corrupt`
//! flips one exponent bit of one element of D ([`lt_math::corrupt`]) in the
//! first GEMM of the process on such a device and every 64th after it.

use std::collections::{BTreeSet, HashSet};
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::device::Access;
use crate::fault::Fault;
use crate::hdr;
use crate::lt_math::{self, Elem, Job, Mat, Rounding};

type Status = hdr::cublasStatus_t;
const SUCCESS: Status = hdr::CUBLAS_STATUS_SUCCESS;
const NOT_INITIALIZED: Status = hdr::CUBLAS_STATUS_NOT_INITIALIZED;
const INVALID_VALUE: Status = hdr::CUBLAS_STATUS_INVALID_VALUE;
const NOT_SUPPORTED: Status = hdr::CUBLAS_STATUS_NOT_SUPPORTED;

/// What `cublasLtGetVersion` reports: 12.9.3 (major·10000 + minor·100 +
/// patch, as `CUBLAS_VERSION`).
pub const VERSION: usize = 120903;
/// What `cublasLtGetCudartVersion` reports (CUDA 12.9).
pub const CUDART_VERSION: usize = 12090;
/// Algorithms the heuristic offers.
pub const ALGOS: usize = 2;
/// `data[0]` of our algorithms, less the index in the low byte ("SIMGLT").
const ALGO_MARK: u64 = 0x5349_4d47_4c54_0000;
/// A corrupt device corrupts the first GEMM and then every this many.
pub const CORRUPT_EVERY: u64 = 64;

// ---------------------------------------------------------------------------
// Objects

/// `cublasLtHandle_t` (the simulation keeps no per-handle state).
struct Context;

/// `cublasLtMatmulDesc_t`.
#[derive(Debug, Clone)]
struct Desc {
    compute: u32,
    scale: u32,
    trans_a: bool,
    trans_b: bool,
    a_scale: u64,
    b_scale: u64,
    /// Attributes set to values the simulation does not implement.
    unsimulated: BTreeSet<u32>,
}

/// `cublasLtMatrixLayout_t`, as set (validated where used).
#[derive(Debug, Clone, Copy)]
struct Layout {
    ty: u32,
    order: i64,
    rows: u64,
    cols: u64,
    ld: i64,
    batch: i64,
    stride: i64,
    plane_offset: i64,
    batch_mode: i64,
}

/// `cublasLtMatmulPreference_t`: the attributes that change the answer.
#[derive(Debug, Clone, Copy)]
struct Pref {
    max_workspace: u64,
    max_waves: f32,
}

enum Obj {
    Context(Context),
    Desc(Desc),
    Layout(Layout),
    Pref(Pref),
}

impl Obj {
    fn name(&self) -> &'static str {
        match self {
            Obj::Context(_) => Context::NAME,
            Obj::Desc(_) => Desc::NAME,
            Obj::Layout(_) => Layout::NAME,
            Obj::Pref(_) => Pref::NAME,
        }
    }
}

/// One kind of object.
trait Kind: Sized {
    const NAME: &'static str;
    fn wrap(self) -> Obj;
    fn get(o: &mut Obj) -> Option<&mut Self>;
}

macro_rules! kind {
    ($t:ident, $name:literal) => {
        impl Kind for $t {
            const NAME: &'static str = $name;
            fn wrap(self) -> Obj {
                Obj::$t(self)
            }
            fn get(o: &mut Obj) -> Option<&mut Self> {
                match o {
                    Obj::$t(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
kind!(Context, "cuBLASLt handle");
kind!(Desc, "matmul descriptor");
kind!(Layout, "matrix layout");
kind!(Pref, "matmul preference");

/// Addresses of the live objects.
fn live() -> &'static Mutex<HashSet<usize>> {
    static L: OnceLock<Mutex<HashSet<usize>>> = OnceLock::new();
    L.get_or_init(Default::default)
}

fn create<T: Kind>(v: T) -> *mut c_void {
    let p = Box::into_raw(Box::new(v.wrap()));
    live().lock().unwrap().insert(p as usize);
    p.cast()
}

/// Runs `f` on `p`, a live object of kind `T`; None when `p` is null. Any
/// other pointer stops the process.
fn with<T: Kind, R>(call: &str, p: *mut c_void, f: impl FnOnce(&mut T) -> R) -> Option<R> {
    if p.is_null() {
        return None;
    }
    let reg = live().lock().unwrap();
    if !reg.contains(&(p as usize)) {
        drop(reg);
        crate::fatal(&format!(
            "{call}: {p:p} is not a live {} (destroyed already, or never created)",
            T::NAME
        ));
    }
    // SAFETY: `p` is in the registry, so it came from Box::into_raw in
    // `create` and has not been freed; the registry's lock, held until the
    // end of this function, keeps every other call away from it.
    let obj = unsafe { &mut *(p as *mut Obj) };
    let found = obj.name();
    match T::get(obj) {
        Some(v) => Some(f(v)),
        None => {
            drop(reg);
            crate::fatal(&format!("{call}: {p:p} is a {found}, not a {}", T::NAME))
        }
    }
}

/// Destroys `p`, a live object of kind `T` (null: nothing to do).
fn destroy<T: Kind>(call: &str, p: *mut c_void) -> Status {
    if p.is_null() {
        return SUCCESS;
    }
    with::<T, ()>(call, p, |_| ());
    let mut reg = live().lock().unwrap();
    if !reg.remove(&(p as usize)) {
        drop(reg);
        crate::fatal(&format!("{call}: {p:p} was destroyed twice at once"));
    }
    // SAFETY: made by Box::into_raw in `create`, live until the removal just
    // above, which no other call can see undone.
    drop(unsafe { Box::from_raw(p as *mut Obj) });
    SUCCESS
}

// ---------------------------------------------------------------------------
// Attributes

/// The C type of an attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    I8,
    I32,
    U32,
    I64,
    U64,
    Ptr,
    F32,
}

impl Ty {
    fn size(self) -> usize {
        match self {
            Ty::I8 => 1,
            Ty::I32 | Ty::U32 | Ty::F32 => 4,
            Ty::I64 | Ty::U64 | Ty::Ptr => 8,
        }
    }
}

/// What the simulation does with an attribute.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Use {
    /// Read and simulated.
    Used,
    /// Accepted, no effect on the result.
    Inert,
    /// Only this (default) value is simulated.
    Only(i64),
}

/// An attribute value read from `(buf, size)`: integers widened to i64
/// (pointers and u64 as their bits), f32 as its bits.
fn read_attr(buf: *const c_void, size: usize, ty: Ty) -> Result<i64, Status> {
    if buf.is_null() || size != ty.size() {
        return Err(INVALID_VALUE);
    }
    // SAFETY: cuBLASLt's contract: `buf` holds `size` readable bytes, and
    // `size` is the attribute's (checked above).
    let b = unsafe { std::slice::from_raw_parts(buf as *const u8, size) };
    Ok(match ty {
        Ty::I8 => i64::from(b[0] as i8),
        Ty::I32 => i64::from(i32::from_ne_bytes(b.try_into().unwrap())),
        Ty::U32 | Ty::F32 => i64::from(u32::from_ne_bytes(b.try_into().unwrap())),
        Ty::I64 | Ty::U64 | Ty::Ptr => i64::from_ne_bytes(b.try_into().unwrap()),
    })
}

/// Why an attribute value was refused.
fn size_mismatch(attr: u32, ty: Ty, buf: *const c_void, size: usize) -> String {
    format!(
        "attribute {attr} takes {} bytes, got {size} at {buf:p}",
        ty.size()
    )
}

/// Type and use of a `cublasLtMatmulDescAttributes_t` (None: not defined).
fn desc_attr(attr: u32) -> Option<(Ty, Use)> {
    use hdr::*;
    Some(match attr {
        CUBLASLT_MATMUL_DESC_COMPUTE_TYPE
        | CUBLASLT_MATMUL_DESC_SCALE_TYPE
        | CUBLASLT_MATMUL_DESC_TRANSA
        | CUBLASLT_MATMUL_DESC_TRANSB => (Ty::I32, Use::Used),
        CUBLASLT_MATMUL_DESC_A_SCALE_POINTER | CUBLASLT_MATMUL_DESC_B_SCALE_POINTER => {
            (Ty::Ptr, Use::Used)
        }
        // Promotion of FP8 accumulators: the CPU always accumulates in f32.
        CUBLASLT_MATMUL_DESC_FAST_ACCUM => (Ty::I8, Use::Inert),
        CUBLASLT_MATMUL_DESC_POINTER_MODE => {
            (Ty::I32, Use::Only(CUBLASLT_POINTER_MODE_HOST.into()))
        }
        CUBLASLT_MATMUL_DESC_TRANSC => (Ty::I32, Use::Only(CUBLAS_OP_N.into())),
        CUBLASLT_MATMUL_DESC_FILL_MODE => (Ty::I32, Use::Only(CUBLAS_FILL_MODE_FULL.into())),
        CUBLASLT_MATMUL_DESC_EPILOGUE => (Ty::U32, Use::Only(CUBLASLT_EPILOGUE_DEFAULT.into())),
        CUBLASLT_MATMUL_DESC_BIAS_POINTER
        | CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER
        | CUBLASLT_MATMUL_DESC_C_SCALE_POINTER
        | CUBLASLT_MATMUL_DESC_D_SCALE_POINTER
        | CUBLASLT_MATMUL_DESC_AMAX_D_POINTER
        | CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_SCALE_POINTER
        | CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_AMAX_POINTER
        | CUBLASLT_MATMUL_DESC_ATOMIC_SYNC_IN_COUNTERS_POINTER
        | CUBLASLT_MATMUL_DESC_ATOMIC_SYNC_OUT_COUNTERS_POINTER
        | CUBLASLT_MATMUL_DESC_D_OUT_SCALE_POINTER => (Ty::Ptr, Use::Only(0)),
        CUBLASLT_MATMUL_DESC_ATOMIC_SYNC_NUM_CHUNKS_D_ROWS
        | CUBLASLT_MATMUL_DESC_ATOMIC_SYNC_NUM_CHUNKS_D_COLS
        | CUBLASLT_MATMUL_DESC_A_SCALE_MODE
        | CUBLASLT_MATMUL_DESC_B_SCALE_MODE
        | CUBLASLT_MATMUL_DESC_C_SCALE_MODE
        | CUBLASLT_MATMUL_DESC_D_SCALE_MODE
        | CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_SCALE_MODE
        | CUBLASLT_MATMUL_DESC_D_OUT_SCALE_MODE => (Ty::I32, Use::Only(0)),
        // Matter only with epilogues or vector alpha (refused above), or
        // tune performance.
        CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE
        | CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD
        | CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE
        | CUBLASLT_MATMUL_DESC_ALPHA_VECTOR_BATCH_STRIDE => (Ty::I64, Use::Inert),
        CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET
        | CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE
        | CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE => (Ty::I32, Use::Inert),
        _ => return None,
    })
}

/// Type of a `cublasLtMatrixLayoutAttribute_t` (None: not defined).
fn layout_attr(attr: u32) -> Option<Ty> {
    use hdr::*;
    Some(match attr {
        CUBLASLT_MATRIX_LAYOUT_TYPE | CUBLASLT_MATRIX_LAYOUT_BATCH_MODE => Ty::U32,
        CUBLASLT_MATRIX_LAYOUT_ORDER | CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT => Ty::I32,
        CUBLASLT_MATRIX_LAYOUT_ROWS | CUBLASLT_MATRIX_LAYOUT_COLS => Ty::U64,
        CUBLASLT_MATRIX_LAYOUT_LD
        | CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET
        | CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET => Ty::I64,
        _ => return None,
    })
}

/// Type of a `cublasLtMatmulPreferenceAttributes_t` (None: not defined).
fn pref_attr(attr: u32) -> Option<Ty> {
    use hdr::*;
    Some(match attr {
        CUBLASLT_MATMUL_PREF_SEARCH_MODE
        | CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK
        | CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES
        | CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES
        | CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES
        | CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES => Ty::U32,
        CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES | CUBLASLT_MATMUL_PREF_IMPL_MASK => Ty::U64,
        CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT => Ty::F32,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Validation

/// Explains a refusal on stderr when `CUBLASLT_LOG_LEVEL` ≥ 1 (cuBLASLt's
/// error log), and returns `status`.
fn refuse(call: &str, status: Status, why: impl FnOnce() -> String) -> Status {
    static LEVEL: OnceLock<u32> = OnceLock::new();
    let level = *LEVEL.get_or_init(|| {
        std::env::var("CUBLASLT_LOG_LEVEL")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    });
    if level >= 1 {
        eprintln!(
            "[cuBLASLt][simgpu][{call}] {}: {}",
            status_name(status),
            why()
        );
    }
    status
}

/// A matmul the simulation can run, less its pointers and scalars.
#[derive(Debug, Clone, Copy)]
struct Plan {
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    trans_a: bool,
    trans_b: bool,
    a: Mat,
    b: Mat,
    c: Mat,
    d: Mat,
    rounding: Rounding,
    a_scale: u64,
    b_scale: u64,
    fp8: bool,
}

/// A layout as a matrix (address 0), with its batch count.
fn layout_mat(call: &str, what: &str, l: &Layout) -> Result<(Mat, i64), Status> {
    if l.order != i64::from(hdr::CUBLASLT_ORDER_COL)
        || l.batch_mode != i64::from(hdr::CUBLASLT_BATCH_MODE_STRIDED)
        || l.plane_offset != 0
    {
        return Err(refuse(call, NOT_SUPPORTED, || {
            format!("{what}: only column-major, strided-batch, non-planar layouts are simulated ({l:?})")
        }));
    }
    let Some(elem) = Elem::from_cuda(l.ty) else {
        return Err(refuse(call, NOT_SUPPORTED, || {
            format!("{what}: data type {} is not simulated", l.ty)
        }));
    };
    if l.rows == 0
        || l.cols == 0
        || l.ld < 0
        || (l.ld as u64) < l.rows
        || l.batch < 1
        || l.stride < 0
    {
        return Err(refuse(call, INVALID_VALUE, || {
            format!(
                "{what}: needs rows, cols ≥ 1, ld ≥ rows, batch count ≥ 1 and a stride ≥ 0 ({l:?})"
            )
        }));
    }
    let mat = Mat {
        ptr: 0,
        elem,
        rows: l.rows as usize,
        cols: l.cols as usize,
        ld: l.ld as usize,
        stride: if l.batch > 1 { l.stride as usize } else { 0 },
    };
    Ok((mat, l.batch))
}

/// Checks a matmul as the heuristic and the matmul do.
#[allow(clippy::too_many_arguments)]
fn plan(
    call: &str,
    handle: *mut c_void,
    desc: *mut c_void,
    adesc: *mut c_void,
    bdesc: *mut c_void,
    cdesc: *mut c_void,
    ddesc: *mut c_void,
) -> Result<Plan, Status> {
    use hdr::*;
    if with::<Context, _>(call, handle, |_| ()).is_none() {
        return Err(NOT_INITIALIZED);
    }
    let desc = with::<Desc, _>(call, desc, |d| d.clone()).ok_or(INVALID_VALUE)?;
    let mut mats = [(
        Mat {
            ptr: 0,
            elem: Elem::F32,
            rows: 0,
            cols: 0,
            ld: 0,
            stride: 0,
        },
        0,
    ); 4];
    for (i, (what, l)) in [("A", adesc), ("B", bdesc), ("C", cdesc), ("D", ddesc)]
        .into_iter()
        .enumerate()
    {
        let l = with::<Layout, _>(call, l, |l| *l).ok_or(INVALID_VALUE)?;
        mats[i] = layout_mat(call, what, &l)?;
    }
    let [(a, ba), (b, bb), (c, bc), (d, bd)] = mats;
    if let Some(attr) = desc.unsimulated.first() {
        return Err(refuse(call, NOT_SUPPORTED, || {
            format!("matmul descriptor attribute {attr} (cublasLtMatmulDescAttributes_t) is set to a value the simulation does not implement")
        }));
    }
    // Shapes: op(A) m × k, op(B) k × n, C and D m × n.
    let (m, ka) = if desc.trans_a {
        (a.cols, a.rows)
    } else {
        (a.rows, a.cols)
    };
    let (kb, n) = if desc.trans_b {
        (b.cols, b.rows)
    } else {
        (b.rows, b.cols)
    };
    if ka != kb
        || (c.rows, c.cols) != (m, n)
        || (d.rows, d.cols) != (m, n)
        || !(ba == bb && bb == bc && bc == bd)
    {
        return Err(refuse(call, INVALID_VALUE, || {
            format!(
                "inconsistent shapes: op(A) {m}×{ka}, op(B) {kb}×{n}, C {}×{}, D {}×{}, batch counts {ba}/{bb}/{bc}/{bd}",
                c.rows, c.cols, d.rows, d.cols
            )
        }));
    }
    let unsupported = |why: String| Err(refuse(call, NOT_SUPPORTED, || why));
    if desc.scale != CUDA_R_32F {
        return unsupported(format!(
            "scale type {} (only CUDA_R_32F is simulated)",
            desc.scale
        ));
    }
    if c.elem != d.elem {
        return unsupported(format!("C is {:?} but D is {:?}", c.elem, d.elem));
    }
    let plain = matches!(
        desc.compute,
        CUBLAS_COMPUTE_32F | CUBLAS_COMPUTE_32F_PEDANTIC
    );
    let fp8 = a.elem.is_fp8() || b.elem.is_fp8();
    let rounding = match (a.elem, b.elem, d.elem) {
        _ if fp8 => {
            if !(a.elem.is_fp8() && b.elem.is_fp8()) || (a.elem, b.elem) == (Elem::E5m2, Elem::E5m2)
            {
                return unsupported(format!("FP8 inputs {:?} × {:?}", a.elem, b.elem));
            }
            if desc.compute != CUBLAS_COMPUTE_32F || !d.elem.is_output() {
                return unsupported(format!(
                    "FP8 needs CUBLAS_COMPUTE_32F and a bf16, fp16 or f32 output (compute {}, D {:?})",
                    desc.compute, d.elem
                ));
            }
            if !desc.trans_a || desc.trans_b {
                return unsupported("FP8 runs only \"TN\" (A transposed, B not)".into());
            }
            let lds = [a, b, c, d].map(|x| x.ld * x.elem.size());
            if lds.iter().any(|ld| ld % 16 != 0) {
                return unsupported(format!(
                    "FP8 needs leading dimensions of 16-byte multiples (A, B, C, D: {lds:?} bytes)"
                ));
            }
            Rounding::None
        }
        (Elem::Bf16, Elem::Bf16, Elem::Bf16 | Elem::F32)
        | (Elem::F16, Elem::F16, Elem::F16 | Elem::F32)
            if plain =>
        {
            Rounding::None
        }
        (Elem::F32, Elem::F32, Elem::F32) => match desc.compute {
            _ if plain => Rounding::None,
            CUBLAS_COMPUTE_32F_FAST_TF32 => Rounding::Tf32,
            CUBLAS_COMPUTE_32F_FAST_16F => Rounding::F16,
            CUBLAS_COMPUTE_32F_FAST_16BF => Rounding::Bf16,
            other => return unsupported(format!("compute type {other} for f32")),
        },
        _ => {
            return unsupported(format!(
                "types A {:?}, B {:?}, C/D {:?} with compute type {}",
                a.elem, b.elem, d.elem, desc.compute
            ))
        }
    };
    if !fp8 && (desc.a_scale != 0 || desc.b_scale != 0) {
        // cublasLt.h: "If set for an unsupported matrix data, scale, and
        // compute type combination, calling cublasLtMatmul() will return
        // CUBLAS_INVALID_VALUE."
        return Err(refuse(call, INVALID_VALUE, || {
            "A/B scale pointers are for FP8 inputs only".into()
        }));
    }
    Ok(Plan {
        m,
        n,
        k: ka,
        batch: ba as usize,
        trans_a: desc.trans_a,
        trans_b: desc.trans_b,
        a,
        b,
        c,
        d,
        rounding,
        a_scale: desc.a_scale,
        b_scale: desc.b_scale,
        fp8,
    })
}

/// Threads of algorithm 0: a few, the machine's cores permitting.
fn gemm_threads() -> usize {
    static T: OnceLock<usize> = OnceLock::new();
    *T.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4)
    })
}

/// GEMMs seen so far on devices with a `corrupt` fault.
static CORRUPT_GEMMS: AtomicU64 = AtomicU64::new(0);

/// Whether the `n`-th (from 0) GEMM of a corrupt device is corrupted.
fn corrupts(n: u64) -> bool {
    n % CORRUPT_EVERY == 0
}

fn status_name(s: Status) -> &'static str {
    match s {
        hdr::CUBLAS_STATUS_SUCCESS => "CUBLAS_STATUS_SUCCESS",
        hdr::CUBLAS_STATUS_NOT_INITIALIZED => "CUBLAS_STATUS_NOT_INITIALIZED",
        hdr::CUBLAS_STATUS_ALLOC_FAILED => "CUBLAS_STATUS_ALLOC_FAILED",
        hdr::CUBLAS_STATUS_INVALID_VALUE => "CUBLAS_STATUS_INVALID_VALUE",
        hdr::CUBLAS_STATUS_ARCH_MISMATCH => "CUBLAS_STATUS_ARCH_MISMATCH",
        hdr::CUBLAS_STATUS_MAPPING_ERROR => "CUBLAS_STATUS_MAPPING_ERROR",
        hdr::CUBLAS_STATUS_EXECUTION_FAILED => "CUBLAS_STATUS_EXECUTION_FAILED",
        hdr::CUBLAS_STATUS_INTERNAL_ERROR => "CUBLAS_STATUS_INTERNAL_ERROR",
        hdr::CUBLAS_STATUS_NOT_SUPPORTED => "CUBLAS_STATUS_NOT_SUPPORTED",
        hdr::CUBLAS_STATUS_LICENSE_ERROR => "CUBLAS_STATUS_LICENSE_ERROR",
        _ => "CUBLAS_STATUS_UNKNOWN",
    }
}

/// Writes `v` through `out` when it is not null.
///
/// # Safety
/// `out` is null or valid for a write of a `T`.
unsafe fn put<T>(out: *mut T, v: T) -> Status {
    if out.is_null() {
        return INVALID_VALUE;
    }
    // SAFETY: the caller's contract.
    unsafe { out.write(v) };
    SUCCESS
}

// ---------------------------------------------------------------------------
// Exports

crate::exports! {
    /// Creates a handle on the current device.
    ///
    /// # Safety
    /// `light_handle` is null or valid for a write.
    fn cublasLtCreate(light_handle: *mut hdr::cublasLtHandle_t) -> Status {
        if light_handle.is_null() {
            return INVALID_VALUE;
        }
        let h = create(Context);
        // SAFETY: checked non-null; the caller's contract.
        unsafe { put(light_handle, h.cast()) }
    }

    /// Destroys a handle.
    ///
    /// # Safety
    /// `light_handle` is null or a live handle.
    fn cublasLtDestroy(light_handle: hdr::cublasLtHandle_t) -> Status {
        if light_handle.is_null() {
            return NOT_INITIALIZED;
        }
        destroy::<Context>("cublasLtDestroy", light_handle.cast())
    }

    /// The version, major·10000 + minor·100 + patch.
    ///
    /// # Safety
    /// None.
    fn cublasLtGetVersion() -> usize {
        VERSION
    }

    /// The CUDA runtime version the library was built with.
    ///
    /// # Safety
    /// None.
    fn cublasLtGetCudartVersion() -> usize {
        CUDART_VERSION
    }

    /// One part of the version.
    ///
    /// # Safety
    /// `value` is null or valid for a write.
    fn cublasLtGetProperty(type_: hdr::libraryPropertyType, value: *mut c_int) -> Status {
        let v = match type_ {
            hdr::MAJOR_VERSION => VERSION / 10000,
            hdr::MINOR_VERSION => VERSION / 100 % 100,
            hdr::PATCH_LEVEL => VERSION % 100,
            _ => return INVALID_VALUE,
        };
        // SAFETY: the caller's contract.
        unsafe { put(value, v as c_int) }
    }

    /// The status's name, e.g. "CUBLAS_STATUS_SUCCESS" (static).
    ///
    /// # Safety
    /// None.
    fn cublasLtGetStatusName(status: Status) -> *const c_char {
        static NAMES: OnceLock<Vec<(Status, std::ffi::CString)>> = OnceLock::new();
        let names = NAMES.get_or_init(|| {
            (0..=16)
                .chain([u32::MAX])
                .map(|s| (s, std::ffi::CString::new(status_name(s)).unwrap()))
                .collect()
        });
        let unknown = &names.last().unwrap().1;
        names.iter().find(|(s, _)| *s == status).map_or(unknown, |(_, n)| n).as_ptr()
    }

    /// The status's description, as cuBLAS words it (static).
    ///
    /// # Safety
    /// None.
    fn cublasLtGetStatusString(status: Status) -> *const c_char {
        let s: &'static std::ffi::CStr = match status {
            hdr::CUBLAS_STATUS_SUCCESS => c"the operation completed successfully",
            hdr::CUBLAS_STATUS_NOT_INITIALIZED => c"the library was not initialized",
            hdr::CUBLAS_STATUS_ALLOC_FAILED => c"the resource allocation failed",
            hdr::CUBLAS_STATUS_INVALID_VALUE => c"an invalid numeric value was used as an argument",
            hdr::CUBLAS_STATUS_ARCH_MISMATCH => {
                c"an absent device architectural feature is required"
            }
            hdr::CUBLAS_STATUS_MAPPING_ERROR => c"an access to GPU memory space failed",
            hdr::CUBLAS_STATUS_EXECUTION_FAILED => c"the GPU program failed to execute",
            hdr::CUBLAS_STATUS_INTERNAL_ERROR => c"an internal operation failed",
            hdr::CUBLAS_STATUS_NOT_SUPPORTED => c"the functionality requested is not supported",
            hdr::CUBLAS_STATUS_LICENSE_ERROR => c"error detected trying to check the license",
            _ => c"unknown error",
        };
        s.as_ptr()
    }

    /// Creates a matmul descriptor.
    ///
    /// # Safety
    /// `matmul_desc` is null or valid for a write.
    fn cublasLtMatmulDescCreate(
        matmul_desc: *mut hdr::cublasLtMatmulDesc_t,
        compute_type: hdr::cublasComputeType_t,
        scale_type: hdr::cudaDataType_t,
    ) -> Status {
        if matmul_desc.is_null() {
            return INVALID_VALUE;
        }
        let d = create(Desc {
            compute: compute_type,
            scale: scale_type,
            trans_a: false,
            trans_b: false,
            a_scale: 0,
            b_scale: 0,
            unsimulated: BTreeSet::new(),
        });
        // SAFETY: the caller's contract.
        unsafe { put(matmul_desc, d.cast()) }
    }

    /// Destroys a matmul descriptor.
    ///
    /// # Safety
    /// `matmul_desc` is null or a live descriptor.
    fn cublasLtMatmulDescDestroy(matmul_desc: hdr::cublasLtMatmulDesc_t) -> Status {
        destroy::<Desc>("cublasLtMatmulDescDestroy", matmul_desc.cast())
    }

    /// Sets a matmul descriptor attribute from `sizeInBytes` bytes at `buf`.
    ///
    /// # Safety
    /// `matmul_desc` is null or live; `buf` is null or holds `size_in_bytes`
    /// readable bytes.
    fn cublasLtMatmulDescSetAttribute(
        matmul_desc: hdr::cublasLtMatmulDesc_t,
        attr: hdr::cublasLtMatmulDescAttributes_t,
        buf: *const c_void,
        size_in_bytes: usize,
    ) -> Status {
        use hdr::*;
        let call = "cublasLtMatmulDescSetAttribute";
        let Some((ty, usage)) = desc_attr(attr) else {
            return refuse(call, INVALID_VALUE, || format!("no attribute {attr}"));
        };
        let v = match read_attr(buf, size_in_bytes, ty) {
            Ok(v) => v,
            Err(s) => return refuse(call, s, || size_mismatch(attr, ty, buf, size_in_bytes)),
        };
        let r = with::<Desc, _>(call, matmul_desc.cast(), |d| {
            match (attr, usage) {
                (CUBLASLT_MATMUL_DESC_TRANSA | CUBLASLT_MATMUL_DESC_TRANSB, _) => {
                    // CUBLAS_OP_C is CUBLAS_OP_T for real types.
                    let t = match u32::try_from(v) {
                        Ok(CUBLAS_OP_N) => false,
                        Ok(CUBLAS_OP_T | CUBLAS_OP_C) => true,
                        _ => return INVALID_VALUE,
                    };
                    if attr == CUBLASLT_MATMUL_DESC_TRANSA {
                        d.trans_a = t;
                    } else {
                        d.trans_b = t;
                    }
                }
                (CUBLASLT_MATMUL_DESC_COMPUTE_TYPE, _) => d.compute = v as u32,
                (CUBLASLT_MATMUL_DESC_SCALE_TYPE, _) => d.scale = v as u32,
                (CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, _) => d.a_scale = v as u64,
                (CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, _) => d.b_scale = v as u64,
                (_, Use::Only(default)) => {
                    if v == default {
                        d.unsimulated.remove(&attr);
                    } else {
                        d.unsimulated.insert(attr);
                    }
                }
                (_, Use::Inert | Use::Used) => {}
            }
            SUCCESS
        });
        r.unwrap_or(INVALID_VALUE)
    }

    /// Creates a column-major matrix layout.
    ///
    /// # Safety
    /// `mat_layout` is null or valid for a write.
    fn cublasLtMatrixLayoutCreate(
        mat_layout: *mut hdr::cublasLtMatrixLayout_t,
        type_: hdr::cudaDataType,
        rows: u64,
        cols: u64,
        ld: i64,
    ) -> Status {
        if mat_layout.is_null() {
            return INVALID_VALUE;
        }
        let l = create(Layout {
            ty: type_,
            order: hdr::CUBLASLT_ORDER_COL.into(),
            rows,
            cols,
            ld,
            batch: 1,
            stride: 0,
            plane_offset: 0,
            batch_mode: hdr::CUBLASLT_BATCH_MODE_STRIDED.into(),
        });
        // SAFETY: the caller's contract.
        unsafe { put(mat_layout, l.cast()) }
    }

    /// Destroys a matrix layout.
    ///
    /// # Safety
    /// `mat_layout` is null or a live layout.
    fn cublasLtMatrixLayoutDestroy(mat_layout: hdr::cublasLtMatrixLayout_t) -> Status {
        destroy::<Layout>("cublasLtMatrixLayoutDestroy", mat_layout.cast())
    }

    /// Sets a matrix layout attribute from `sizeInBytes` bytes at `buf`.
    ///
    /// # Safety
    /// `mat_layout` is null or live; `buf` is null or holds `size_in_bytes`
    /// readable bytes.
    fn cublasLtMatrixLayoutSetAttribute(
        mat_layout: hdr::cublasLtMatrixLayout_t,
        attr: hdr::cublasLtMatrixLayoutAttribute_t,
        buf: *const c_void,
        size_in_bytes: usize,
    ) -> Status {
        use hdr::*;
        let call = "cublasLtMatrixLayoutSetAttribute";
        let Some(ty) = layout_attr(attr) else {
            return refuse(call, INVALID_VALUE, || format!("no attribute {attr}"));
        };
        let v = match read_attr(buf, size_in_bytes, ty) {
            Ok(v) => v,
            Err(s) => return refuse(call, s, || size_mismatch(attr, ty, buf, size_in_bytes)),
        };
        let r = with::<Layout, _>(call, mat_layout.cast(), |l| {
            match attr {
                CUBLASLT_MATRIX_LAYOUT_TYPE => l.ty = v as u32,
                CUBLASLT_MATRIX_LAYOUT_ORDER => l.order = v,
                CUBLASLT_MATRIX_LAYOUT_ROWS => l.rows = v as u64,
                CUBLASLT_MATRIX_LAYOUT_COLS => l.cols = v as u64,
                CUBLASLT_MATRIX_LAYOUT_LD => l.ld = v,
                CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT => l.batch = v,
                CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET => l.stride = v,
                CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET => l.plane_offset = v,
                _ => l.batch_mode = v,
            }
            SUCCESS
        });
        r.unwrap_or(INVALID_VALUE)
    }

    /// Creates a matmul preference.
    ///
    /// # Safety
    /// `pref` is null or valid for a write.
    fn cublasLtMatmulPreferenceCreate(pref: *mut hdr::cublasLtMatmulPreference_t) -> Status {
        if pref.is_null() {
            return INVALID_VALUE;
        }
        let p = create(Pref {
            max_workspace: 0,
            max_waves: 0.0,
        });
        // SAFETY: the caller's contract.
        unsafe { put(pref, p.cast()) }
    }

    /// Destroys a matmul preference.
    ///
    /// # Safety
    /// `pref` is null or a live preference.
    fn cublasLtMatmulPreferenceDestroy(pref: hdr::cublasLtMatmulPreference_t) -> Status {
        destroy::<Pref>("cublasLtMatmulPreferenceDestroy", pref.cast())
    }

    /// Sets a matmul preference attribute from `sizeInBytes` bytes at `buf`.
    ///
    /// # Safety
    /// `pref` is null or live; `buf` is null or holds `size_in_bytes`
    /// readable bytes.
    fn cublasLtMatmulPreferenceSetAttribute(
        pref: hdr::cublasLtMatmulPreference_t,
        attr: hdr::cublasLtMatmulPreferenceAttributes_t,
        buf: *const c_void,
        size_in_bytes: usize,
    ) -> Status {
        use hdr::*;
        let call = "cublasLtMatmulPreferenceSetAttribute";
        let Some(ty) = pref_attr(attr) else {
            return refuse(call, INVALID_VALUE, || format!("no attribute {attr}"));
        };
        let v = match read_attr(buf, size_in_bytes, ty) {
            Ok(v) => v,
            Err(s) => return refuse(call, s, || size_mismatch(attr, ty, buf, size_in_bytes)),
        };
        let r = with::<Pref, _>(call, pref.cast(), |p| {
            match attr {
                CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES => p.max_workspace = v as u64,
                CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT => p.max_waves = f32::from_bits(v as u32),
                // Our algorithms use no workspace, work at any alignment
                // of whole elements and have one implementation.
                _ => {}
            }
            SUCCESS
        });
        r.unwrap_or(INVALID_VALUE)
    }

    /// Up to `requestedAlgoCount` algorithms for the matmul, best first.
    ///
    /// # Safety
    /// Every object is null or live; `heuristic_results_array` holds
    /// `requested_algo_count` results; `return_algo_count` is null or valid
    /// for a write.
    fn cublasLtMatmulAlgoGetHeuristic(
        light_handle: hdr::cublasLtHandle_t,
        operation_desc: hdr::cublasLtMatmulDesc_t,
        adesc: hdr::cublasLtMatrixLayout_t,
        bdesc: hdr::cublasLtMatrixLayout_t,
        cdesc: hdr::cublasLtMatrixLayout_t,
        ddesc: hdr::cublasLtMatrixLayout_t,
        preference: hdr::cublasLtMatmulPreference_t,
        requested_algo_count: c_int,
        heuristic_results_array: *mut hdr::cublasLtMatmulHeuristicResult_t,
        return_algo_count: *mut c_int,
    ) -> Status {
        let call = "cublasLtMatmulAlgoGetHeuristic";
        let results = heuristic_results_array;
        if return_algo_count.is_null() || results.is_null() || requested_algo_count <= 0 {
            return refuse(call, INVALID_VALUE, || {
                format!(
                    "{requested_algo_count} results requested into {results:p}, \
                     count to {return_algo_count:p}"
                )
            });
        }
        // SAFETY: checked non-null; the caller's contract.
        unsafe { return_algo_count.write(0) };
        let Some(pref) = with::<Pref, _>(call, preference.cast(), |p| *p) else {
            return refuse(call, INVALID_VALUE, || "no preference".into());
        };
        if let Err(s) = plan(
            call,
            light_handle.cast(),
            operation_desc.cast(),
            adesc.cast(),
            bdesc.cast(),
            cdesc.cast(),
            ddesc.cast(),
        ) {
            return s;
        }
        // Our algorithms need no workspace (any maximum fits) and run as 1.0
        // waves, which a wave limit below 1 excludes.
        let _ = pref.max_workspace;
        let waves = 1.0f32;
        if pref.max_waves > 0.0 && waves > pref.max_waves {
            let max = pref.max_waves;
            return refuse(call, NOT_SUPPORTED, || format!("no algorithm within {max} waves"));
        }
        let n = (requested_algo_count as usize).min(ALGOS);
        for i in 0..n {
            let mut algo = hdr::cublasLtMatmulAlgo_t::default();
            algo.data[0] = ALGO_MARK | i as u64;
            let r = hdr::cublasLtMatmulHeuristicResult_t {
                algo,
                workspaceSize: 0,
                state: SUCCESS,
                wavesCount: waves,
                reserved: [0; 4],
            };
            // SAFETY: the array holds requested_algo_count ≥ n results.
            unsafe { results.add(i).write(r) };
        }
        // SAFETY: checked non-null above.
        unsafe { return_algo_count.write(n as c_int) };
        SUCCESS
    }

    /// Queues `D = alpha·op(A)·op(B) + beta·C` on `stream`.
    ///
    /// # Safety
    /// Every object is null or live; `alpha` and `beta` are null or point
    /// to f32; `algo` is null or points to an algorithm; the matrices are
    /// device memory of the layouts' shapes, alive until the stream has run
    /// the GEMM.
    #[allow(clippy::too_many_arguments)]
    fn cublasLtMatmul(
        light_handle: hdr::cublasLtHandle_t,
        compute_desc: hdr::cublasLtMatmulDesc_t,
        alpha: *const c_void,
        a: *const c_void,
        adesc: hdr::cublasLtMatrixLayout_t,
        b: *const c_void,
        bdesc: hdr::cublasLtMatrixLayout_t,
        beta: *const c_void,
        c: *const c_void,
        cdesc: hdr::cublasLtMatrixLayout_t,
        d: *mut c_void,
        ddesc: hdr::cublasLtMatrixLayout_t,
        algo: *const hdr::cublasLtMatmulAlgo_t,
        workspace: *mut c_void,
        workspace_size_in_bytes: usize,
        stream: hdr::cudaStream_t,
    ) -> Status {
        let call = "cublasLtMatmul";
        let p = match plan(
            call,
            light_handle.cast(),
            compute_desc.cast(),
            adesc.cast(),
            bdesc.cast(),
            cdesc.cast(),
            ddesc.cast(),
        ) {
            Ok(p) => p,
            Err(s) => return s,
        };
        // A null algorithm means "the heuristic's first"; ours need no
        // workspace, so any workspace (or none) will do.
        let _ = (workspace, workspace_size_in_bytes);
        let index = if algo.is_null() {
            0
        } else {
            // SAFETY: the caller's contract: a readable algorithm.
            let w = unsafe { algo.read_unaligned() }.data[0];
            if w & !0xff != ALGO_MARK || (w & 0xff) as usize >= ALGOS {
                return refuse(call, INVALID_VALUE, || {
                    format!("not an algorithm of the heuristic (data[0] = {w:#x})")
                });
            }
            (w & 0xff) as usize
        };
        if alpha.is_null() || beta.is_null() {
            return refuse(call, INVALID_VALUE, || "null alpha or beta".into());
        }
        // SAFETY: the caller's contract: host pointers of the scale type,
        // f32 (checked by `plan`), read now as in host pointer mode.
        let (alpha, beta) = unsafe {
            (
                (alpha as *const f32).read_unaligned(),
                (beta as *const f32).read_unaligned(),
            )
        };
        let (a, b, c, d) = (a as u64, b as u64, c as u64, d as u64);
        if a == 0 || b == 0 || d == 0 || (c == 0 && beta != 0.0) {
            return refuse(call, INVALID_VALUE, || "null A, B or D (or C with beta ≠ 0)".into());
        }
        let align = |x: &Mat, ptr: u64| ptr % if p.fp8 { 16 } else { x.elem.size() as u64 } == 0;
        let aligned = align(&p.a, a) && align(&p.b, b) && align(&p.d, d);
        if !(aligned && (beta == 0.0 || align(&p.c, c))) {
            return refuse(call, NOT_SUPPORTED, || {
                format!(
                    "misaligned pointers (A {a:#x}, B {b:#x}, C {c:#x}, D {d:#x}; {})",
                    if p.fp8 { "FP8 needs 16 bytes" } else { "whole elements needed" }
                )
            });
        }
        let s = crate::stream::from_handle(stream as *mut c_void);
        let faults = crate::fault::of_device(s.device);
        let slow = faults.iter().find_map(|f| match f {
            Fault::Slow(x) => Some(*x),
            _ => None,
        });
        let corrupt = faults.contains(&Fault::Corrupt)
            && corrupts(CORRUPT_GEMMS.fetch_add(1, Ordering::Relaxed));
        let at = |m: Mat, ptr: u64| Mat { ptr, ..m };
        let job = Job {
            m: p.m,
            n: p.n,
            k: p.k,
            batch: p.batch,
            trans_a: p.trans_a,
            trans_b: p.trans_b,
            a: at(p.a, a),
            b: at(p.b, b),
            c: (beta != 0.0).then(|| at(p.c, c)),
            d: at(p.d, d),
            alpha,
            beta,
            a_scale: p.a_scale,
            b_scale: p.b_scale,
            rounding: p.rounding,
            threads: if index == 0 { gemm_threads() } else { 1 },
        };
        let mut accesses = vec![
            Access::read("A", a, job.a.extent_bytes(job.batch)),
            Access::read("B", b, job.b.extent_bytes(job.batch)),
        ];
        if let Some(cm) = &job.c {
            accesses.push(Access::read("C", c, cm.extent_bytes(job.batch)));
        }
        if job.a_scale != 0 {
            accesses.push(Access::read("A scale", job.a_scale, 4));
        }
        if job.b_scale != 0 {
            accesses.push(Access::read("B scale", job.b_scale, 4));
        }
        accesses.push(Access::write("D", d, job.d.extent_bytes(job.batch)));
        s.enqueue(
            call,
            &accesses,
            Box::new(move || {
                let t0 = Instant::now();
                // SAFETY: `enqueue` checked that every range of the job lies
                // in a live allocation, and the race checker that no other
                // stream touches them unordered; the backend keeps them
                // allocated until the stream has run this.
                unsafe { lt_math::run(&job) };
                if corrupt {
                    // SAFETY: as above, for D.
                    unsafe { lt_math::corrupt(&job.d) };
                }
                if let Some(f) = slow {
                    std::thread::sleep(t0.elapsed().mul_f64(1.0 / f - 1.0));
                }
            }),
        );
        SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hdr::{
        cublasLtHandle_t, cublasLtMatmulAlgo_t, cublasLtMatmulDesc_t,
        cublasLtMatmulHeuristicResult_t, cublasLtMatmulPreference_t, cublasLtMatrixLayout_t,
        cudaStream_t, CUBLASLT_EPILOGUE_DEFAULT, CUBLASLT_EPILOGUE_RELU,
        CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
        CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_MATMUL_DESC_FAST_ACCUM,
        CUBLASLT_MATMUL_DESC_TRANSA, CUBLASLT_MATMUL_DESC_TRANSB,
        CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
        CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, CUBLASLT_MATRIX_LAYOUT_ROWS,
        CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, CUBLAS_COMPUTE_32F,
        CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_COMPUTE_64F,
        CUBLAS_OP_N, CUBLAS_OP_T, CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F, CUDA_R_64F, CUDA_R_8F_E4M3,
        CUDA_R_8F_E5M2, MINOR_VERSION, PATCH_LEVEL,
    };
    use std::mem::size_of;
    use std::ptr::null_mut;

    /// A device allocation with host-written contents, freed on drop.
    struct Buf(u64, usize);

    impl Buf {
        fn new(bytes: &[u8]) -> Buf {
            let p = crate::device::alloc(0, bytes.len() as u64).unwrap();
            // SAFETY: a fresh allocation of at least bytes.len() bytes that
            // no stream has seen yet.
            unsafe { crate::device::bytes_mut(p, bytes.len()) }.copy_from_slice(bytes);
            Buf(p, bytes.len())
        }
        fn read(&self) -> Vec<u8> {
            // SAFETY: live; read after the stream is synchronised.
            unsafe { crate::device::bytes(self.0, self.1) }.to_vec()
        }
        fn ptr(&self) -> *mut c_void {
            self.0 as *mut c_void
        }
    }

    impl Drop for Buf {
        fn drop(&mut self) {
            crate::device::free(self.0);
        }
    }

    struct Rng(u64);

    impl Rng {
        fn bits(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// Uniform in ±[0.1, 1].
        fn value(&mut self) -> f32 {
            let x = (self.bits() >> 40) as f32 / (1u64 << 24) as f32;
            let v = 0.1 + 0.9 * x;
            if self.bits() & 1 == 0 {
                v
            } else {
                -v
            }
        }
    }

    /// `n` random non-zero elements of `e`: their bytes and the values they
    /// hold. FP8 codes are drawn with magnitudes in [1/8, 4].
    fn random(e: Elem, n: usize, rng: &mut Rng) -> (Vec<u8>, Vec<f64>) {
        let mut bytes = vec![0u8; n * e.size()];
        match e {
            Elem::E4m3 | Elem::E5m2 => {
                let (lo, hi) = if e == Elem::E4m3 {
                    (0x20u64, 0x48)
                } else {
                    (0x30, 0x44)
                };
                for b in bytes.iter_mut() {
                    *b = (lo + rng.bits() % (hi - lo + 1)) as u8
                        | if rng.bits() & 1 == 0 { 0x80 } else { 0 };
                }
            }
            _ => {
                let vals: Vec<f32> = (0..n).map(|_| rng.value()).collect();
                lt_math::encode(e, &vals, &mut bytes);
            }
        }
        let mut vals = vec![0f32; n];
        lt_math::decode(e, &bytes, &mut vals);
        assert!(vals.iter().all(|v| v.is_finite() && *v != 0.0));
        (bytes, vals.into_iter().map(f64::from).collect())
    }

    fn desc_set<T>(d: cublasLtMatmulDesc_t, attr: u32, v: &T) -> Status {
        // SAFETY: `v` is size_of::<T>() readable bytes.
        unsafe {
            cublasLtMatmulDescSetAttribute(d, attr, v as *const T as *const c_void, size_of::<T>())
        }
    }

    fn layout_set<T>(l: cublasLtMatrixLayout_t, attr: u32, v: &T) -> Status {
        // SAFETY: as in desc_set.
        unsafe {
            cublasLtMatrixLayoutSetAttribute(
                l,
                attr,
                v as *const T as *const c_void,
                size_of::<T>(),
            )
        }
    }

    fn pref_set<T>(p: cublasLtMatmulPreference_t, attr: u32, v: &T) -> Status {
        // SAFETY: as in desc_set.
        unsafe {
            cublasLtMatmulPreferenceSetAttribute(
                p,
                attr,
                v as *const T as *const c_void,
                size_of::<T>(),
            )
        }
    }

    /// The objects of one matmul, destroyed on drop.
    struct Objs {
        h: cublasLtHandle_t,
        desc: cublasLtMatmulDesc_t,
        /// A, B, C, D.
        l: [cublasLtMatrixLayout_t; 4],
        pref: cublasLtMatmulPreference_t,
    }

    impl Objs {
        /// `compute` with f32 scale, transposes, and layouts (type, rows,
        /// cols, ld) of A, B, C, D with `batch` entries `strides` apart.
        fn new(
            compute: u32,
            ta: bool,
            tb: bool,
            l: [(u32, u64, u64, i64); 4],
            batch: i32,
            strides: [i64; 4],
        ) -> Objs {
            let mut o = Objs {
                h: null_mut(),
                desc: null_mut(),
                l: [null_mut(); 4],
                pref: null_mut(),
            };
            // SAFETY: valid out-pointers.
            unsafe {
                assert_eq!(cublasLtCreate(&mut o.h), SUCCESS);
                assert_eq!(
                    cublasLtMatmulDescCreate(&mut o.desc, compute, CUDA_R_32F),
                    SUCCESS
                );
                assert_eq!(cublasLtMatmulPreferenceCreate(&mut o.pref), SUCCESS);
                for (i, (ty, rows, cols, ld)) in l.into_iter().enumerate() {
                    assert_eq!(
                        cublasLtMatrixLayoutCreate(&mut o.l[i], ty, rows, cols, ld),
                        SUCCESS
                    );
                }
            }
            let op = |t: bool| (if t { CUBLAS_OP_T } else { CUBLAS_OP_N }) as i32;
            assert_eq!(
                desc_set(o.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op(ta)),
                SUCCESS
            );
            assert_eq!(
                desc_set(o.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op(tb)),
                SUCCESS
            );
            if batch > 1 {
                for (l, s) in o.l.iter().zip(strides) {
                    assert_eq!(
                        layout_set(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch),
                        SUCCESS
                    );
                    assert_eq!(
                        layout_set(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s),
                        SUCCESS
                    );
                }
            }
            assert_eq!(
                pref_set(
                    o.pref,
                    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                    &(32u64 << 20)
                ),
                SUCCESS
            );
            o
        }

        /// The heuristic's status, results and count for `requested`.
        fn heuristic(&self, requested: i32) -> (Status, Vec<cublasLtMatmulHeuristicResult_t>, i32) {
            let mut res =
                vec![cublasLtMatmulHeuristicResult_t::default(); requested.max(1) as usize];
            let mut n = -1;
            // SAFETY: live objects; `res` holds `requested` results.
            let s = unsafe {
                cublasLtMatmulAlgoGetHeuristic(
                    self.h,
                    self.desc,
                    self.l[0],
                    self.l[1],
                    self.l[2],
                    self.l[3],
                    self.pref,
                    requested,
                    res.as_mut_ptr(),
                    &mut n,
                )
            };
            (s, res, n)
        }

        /// cublasLtMatmul on a new stream, synchronised.
        #[allow(clippy::too_many_arguments)]
        fn matmul(
            &self,
            alpha: f32,
            a: *mut c_void,
            b: *mut c_void,
            beta: f32,
            c: *mut c_void,
            d: *mut c_void,
            algo: *const cublasLtMatmulAlgo_t,
        ) -> Status {
            let s = crate::stream::Stream::new(0, 0);
            let sh = crate::stream::into_handle(s.clone());
            // SAFETY: live objects; the buffers hold the layouts' extents
            // (or the call refuses before touching them); synchronised
            // below before any buffer is dropped.
            let st = unsafe {
                cublasLtMatmul(
                    self.h,
                    self.desc,
                    &alpha as *const f32 as *const c_void,
                    a,
                    self.l[0],
                    b,
                    self.l[1],
                    &beta as *const f32 as *const c_void,
                    c,
                    self.l[2],
                    d,
                    self.l[3],
                    algo,
                    null_mut(),
                    0,
                    sh as cudaStream_t,
                )
            };
            s.synchronize();
            // SAFETY: made by into_handle above, not used again.
            drop(unsafe { crate::stream::release_handle(sh) });
            s.destroy();
            st
        }
    }

    impl Drop for Objs {
        fn drop(&mut self) {
            // SAFETY: each object was created by Objs::new and is destroyed
            // once.
            unsafe {
                for l in self.l {
                    assert_eq!(cublasLtMatrixLayoutDestroy(l), SUCCESS);
                }
                assert_eq!(cublasLtMatmulPreferenceDestroy(self.pref), SUCCESS);
                assert_eq!(cublasLtMatmulDescDestroy(self.desc), SUCCESS);
                assert_eq!(cublasLtDestroy(self.h), SUCCESS);
            }
        }
    }

    /// One GEMM to check against an f64 reference.
    #[derive(Debug, Clone, Copy)]
    struct Case {
        a: u32,
        b: u32,
        cd: u32,
        compute: u32,
        m: usize,
        n: usize,
        k: usize,
        batch: usize,
        ta: bool,
        tb: bool,
        /// ld − rows of every matrix.
        pad: usize,
        /// Elements between batch entries beyond ld·cols.
        gap: usize,
        alpha: f32,
        beta: f32,
        scales: Option<(f32, f32)>,
        /// C is D.
        in_place: bool,
        algo: usize,
    }

    const BASE: Case = Case {
        a: CUDA_R_32F,
        b: CUDA_R_32F,
        cd: CUDA_R_32F,
        compute: CUBLAS_COMPUTE_32F,
        m: 37,
        n: 29,
        k: 53,
        batch: 1,
        ta: false,
        tb: false,
        pad: 3,
        gap: 0,
        alpha: 1.5,
        beta: 0.0,
        scales: None,
        in_place: false,
        algo: 0,
    };

    /// What a case gave: D's values, the reference from the inputs as the
    /// compute type rounds them, the reference from the inputs as stored,
    /// and per element Σ|α·sa·sb·a·b| + |β·c| (the scale of rounding errors).
    struct Outcome {
        got: Vec<f64>,
        want: Vec<f64>,
        exact: Vec<f64>,
        mag: Vec<f64>,
    }

    fn run_case(c: &Case) -> Outcome {
        let (ea, eb, ecd) = (
            Elem::from_cuda(c.a).unwrap(),
            Elem::from_cuda(c.b).unwrap(),
            Elem::from_cuda(c.cd).unwrap(),
        );
        let (m, n, k, batch) = (c.m, c.n, c.k, c.batch);
        let (ra, ca) = if c.ta { (k, m) } else { (m, k) };
        let (rb, cb) = if c.tb { (n, k) } else { (k, n) };
        let (lda, ldb, ldc) = (ra + c.pad, rb + c.pad, m + c.pad);
        let (sa, sb, sc) = (lda * ca + c.gap, ldb * cb + c.gap, ldc * n + c.gap);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (m * 1000 + n * 10 + k) as u64);
        let (a_bytes, a_vals) = random(ea, batch * sa, &mut rng);
        let (b_bytes, b_vals) = random(eb, batch * sb, &mut rng);
        let (c_bytes, c_vals) = random(ecd, batch * sc, &mut rng);
        let sentinel = vec![0xa5u8; c_bytes.len()];
        let (ab, bb) = (Buf::new(&a_bytes), Buf::new(&b_bytes));
        let cbuf = Buf::new(&c_bytes);
        let dbuf = if c.in_place {
            None
        } else {
            Some(Buf::new(&sentinel))
        };
        let dptr = dbuf.as_ref().map_or(cbuf.ptr(), |d| d.ptr());
        let scales = c
            .scales
            .map(|(x, y)| Buf::new(&[x.to_le_bytes(), y.to_le_bytes()].concat()));

        let layouts = [
            (c.a, ra as u64, ca as u64, lda as i64),
            (c.b, rb as u64, cb as u64, ldb as i64),
            (c.cd, m as u64, n as u64, ldc as i64),
            (c.cd, m as u64, n as u64, ldc as i64),
        ];
        let o = Objs::new(
            c.compute,
            c.ta,
            c.tb,
            layouts,
            batch as i32,
            [sa as i64, sb as i64, sc as i64, sc as i64],
        );
        if let Some(s) = &scales {
            let (pa, pb) = (s.0 as *const c_void, (s.0 + 4) as *const c_void);
            assert_eq!(
                desc_set(o.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &pa),
                SUCCESS
            );
            assert_eq!(
                desc_set(o.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &pb),
                SUCCESS
            );
            assert_eq!(
                desc_set(o.desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &1i8),
                SUCCESS
            );
        }
        let (st, res, count) = o.heuristic(8);
        assert_eq!((st, count), (SUCCESS, ALGOS as i32), "{c:?}");
        let st = o.matmul(
            c.alpha,
            ab.ptr(),
            bb.ptr(),
            c.beta,
            cbuf.ptr(),
            dptr,
            &res[c.algo].algo,
        );
        assert_eq!(st, SUCCESS, "{c:?}");
        let out = dbuf.as_ref().map_or_else(|| cbuf.read(), |d| d.read());

        // Reference, and D's bytes outside the m × n entries left alone.
        let round = |v: f64| -> f64 {
            match c.compute {
                CUBLAS_COMPUTE_32F_FAST_TF32 => f64::from(lt_math::round_tf32(v as f32)),
                CUBLAS_COMPUTE_32F_FAST_16BF => half::bf16::from_f64(v).to_f64(),
                _ => v,
            }
        };
        let (fa, fb) = c
            .scales
            .map_or((1.0, 1.0), |(x, y)| (f64::from(x), f64::from(y)));
        let ab_scale = f64::from(c.alpha) * fa * fb;
        let es = ecd.size();
        let mut written = vec![false; out.len()];
        let mut r = Outcome {
            got: vec![],
            want: vec![],
            exact: vec![],
            mag: vec![],
        };
        for e in 0..batch {
            for j in 0..n {
                for i in 0..m {
                    let (mut acc, mut exact, mut abs) = (0.0, 0.0, 0.0);
                    for p in 0..k {
                        let x = a_vals[e * sa + if c.ta { p + i * lda } else { i + p * lda }];
                        let y = b_vals[e * sb + if c.tb { j + p * ldb } else { p + j * ldb }];
                        acc += round(x) * round(y);
                        exact += x * y;
                        abs += (x * y).abs();
                    }
                    let at = e * sc + i + j * ldc;
                    let cv = f64::from(c.beta) * c_vals[at];
                    r.want.push(ab_scale * acc + cv);
                    r.exact.push(ab_scale * exact + cv);
                    r.mag.push(ab_scale.abs() * abs + cv.abs());
                    let mut g = [0f32];
                    lt_math::decode(ecd, &out[at * es..(at + 1) * es], &mut g);
                    r.got.push(f64::from(g[0]));
                    written[at * es..(at + 1) * es]
                        .iter_mut()
                        .for_each(|w| *w = true);
                }
            }
        }
        let before = if c.in_place { &c_bytes } else { &sentinel };
        for (i, (x, y)) in out.iter().zip(before).enumerate() {
            assert!(
                written[i] || x == y,
                "{c:?}: byte {i} outside the matrices changed"
            );
        }
        r
    }

    /// Checks every element: |got − want| ≤ out_tol·|want| + acc_tol·mag.
    fn check(c: &Case, r: &Outcome, out_tol: f64, acc_tol: f64) {
        for (i, ((g, w), s)) in r.got.iter().zip(&r.want).zip(&r.mag).enumerate() {
            let bound = out_tol * w.abs() + acc_tol * s;
            assert!(
                (g - w).abs() <= bound,
                "{c:?}: element {i}: got {g}, want {w} (bound {bound})"
            );
        }
    }

    // Tolerances. Accumulation: f32 over k ≤ 64 terms errs by at most about
    // k·2⁻²⁴ ≈ 4e-6 of Σ|a·b| (FMA-chained sums, worst case); 2e-5 of the
    // scale `mag` leaves room. Output rounding to nearest: at most half an
    // ulp of D's type, i.e. the unit roundoff relative to the value: 2⁻²⁴
    // for f32 (inside the accumulation term), 2⁻¹¹ for fp16 (11 significant
    // bits), 2⁻⁸ for bf16 (8 significant bits).
    const ACC: f64 = 2e-5;
    const U_F16: f64 = 1.0 / 2048.0;
    const U_BF16: f64 = 1.0 / 256.0;

    #[test]
    fn f32_every_transpose_with_padding_and_beta() {
        for (i, (ta, tb)) in [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .enumerate()
        {
            // beta = 0: C (random here) is not read; beta ≠ 0 from a separate
            // C and in place.
            for (beta, in_place) in [(0.0, false), (-0.5, false), (0.75, true)] {
                let c = Case {
                    ta,
                    tb,
                    beta,
                    in_place,
                    algo: i % 2,
                    ..BASE
                };
                check(&c, &run_case(&c), 0.0, ACC);
            }
        }
    }

    #[test]
    fn beta_zero_reads_no_c() {
        // C full of NaN bytes, beta 0: D is finite.
        let a = Buf::new(&vec![0x3f; 4 * 64]); // 0x3f3f3f3f ≈ 0.747
        let nan = Buf::new(&[0xff; 4 * 64]);
        let d = Buf::new(&[0; 4 * 64]);
        let l = (CUDA_R_32F, 8, 8, 8);
        let o = Objs::new(CUBLAS_COMPUTE_32F, false, false, [l; 4], 1, [0; 4]);
        let st = o.matmul(
            1.0,
            a.ptr(),
            a.ptr(),
            0.0,
            nan.ptr(),
            d.ptr(),
            std::ptr::null(),
        );
        assert_eq!(st, SUCCESS, "a null algorithm is the heuristic's first");
        let out = d.read();
        let v = f32::from_le_bytes(out[..4].try_into().unwrap());
        let x = f32::from_bits(0x3f3f_3f3f);
        assert!((v - 8.0 * x * x).abs() < 1e-5, "{v}");
        assert!(out
            .chunks_exact(4)
            .all(|b| f32::from_le_bytes(b.try_into().unwrap()).is_finite()));
    }

    #[test]
    fn tf32_rounds_the_inputs() {
        let c = Case {
            compute: CUBLAS_COMPUTE_32F_FAST_TF32,
            ta: true,
            algo: 1,
            ..BASE
        };
        let r = run_case(&c);
        // Against the inputs rounded to tf32: accumulation only.
        check(&c, &r, 0.0, ACC);
        // Against the f32 inputs: each rounding errs by ≤ 2⁻¹¹, a product
        // by ≤ 2⁻¹⁰, so ≤ 2e-3 of the scale; and visibly more than f32
        // accumulation would (the rounding happened).
        let worst = r
            .got
            .iter()
            .zip(&r.exact)
            .zip(&r.mag)
            .map(|((g, w), s)| (g - w).abs() / s)
            .fold(0.0, f64::max);
        assert!(worst > 2e-5 && worst < 2e-3, "{worst}");
        // FAST_16BF rounds the same f32 inputs to bf16 instead.
        let c = Case {
            compute: CUBLAS_COMPUTE_32F_FAST_16BF,
            ..c
        };
        check(&c, &run_case(&c), 0.0, ACC);
    }

    #[test]
    fn bf16_and_fp16_round_the_output() {
        for (ty, tol) in [(CUDA_R_16BF, U_BF16), (CUDA_R_16F, U_F16)] {
            for (ta, tb, beta, algo) in [
                (true, false, 0.0, 0),
                (false, true, 0.25, 1),
                (false, false, -1.0, 0),
            ] {
                let c = Case {
                    a: ty,
                    b: ty,
                    cd: ty,
                    ta,
                    tb,
                    beta,
                    algo,
                    ..BASE
                };
                check(&c, &run_case(&c), tol, ACC);
            }
        }
        // bf16 inputs with f32 output: accumulation only.
        let c = Case {
            a: CUDA_R_16BF,
            b: CUDA_R_16BF,
            ..BASE
        };
        check(&c, &run_case(&c), 0.0, ACC);
    }

    #[test]
    fn fp8_tn_with_scales() {
        // E4M3 × E4M3 → bf16 with dequantisation factors 0.5 and 4: the
        // inputs are exact FP8 values, so only accumulation and the bf16
        // output round.
        let c = Case {
            a: CUDA_R_8F_E4M3,
            b: CUDA_R_8F_E4M3,
            cd: CUDA_R_16BF,
            m: 40,
            n: 24,
            k: 64,
            ta: true,
            tb: false,
            pad: 16,
            alpha: 1.0,
            scales: Some((0.5, 4.0)),
            ..BASE
        };
        check(&c, &run_case(&c), U_BF16, ACC);
        // E4M3 × E5M2 → f32 with beta, and E5M2 × E4M3 batched.
        let c = Case {
            b: CUDA_R_8F_E5M2,
            cd: CUDA_R_32F,
            beta: 0.5,
            scales: Some((2.0, 0.25)),
            algo: 1,
            ..c
        };
        check(&c, &run_case(&c), 0.0, ACC);
        let c = Case {
            a: CUDA_R_8F_E5M2,
            b: CUDA_R_8F_E4M3,
            batch: 2,
            gap: 32,
            ..c
        };
        check(&c, &run_case(&c), 0.0, ACC);
    }

    #[test]
    fn strided_batches() {
        // Three entries with gaps between them (untouched in D: run_case
        // checks), every transpose form once, bf16 and f32 in place.
        for (ty, tol, ta, tb, in_place) in [
            (CUDA_R_16BF, U_BF16, true, true, false),
            (CUDA_R_32F, 0.0, false, true, true),
            (CUDA_R_16F, U_F16, true, false, false),
        ] {
            let c = Case {
                a: ty,
                b: ty,
                cd: ty,
                m: 21,
                n: 13,
                k: 33,
                batch: 3,
                gap: 7,
                ta,
                tb,
                beta: if in_place { 1.5 } else { 0.0 },
                in_place,
                ..BASE
            };
            check(&c, &run_case(&c), tol, ACC);
        }
    }

    #[test]
    fn a_larger_gemm_on_threads() {
        // Large enough for the gemm crate to split over threads (algo 0).
        let c = Case {
            m: 256,
            n: 192,
            k: 64,
            pad: 0,
            ..BASE
        };
        check(&c, &run_case(&c), 0.0, ACC);
    }

    #[test]
    fn invalid_attribute_sizes_and_values() {
        let l = (CUDA_R_32F, 4, 4, 4);
        let o = Objs::new(CUBLAS_COMPUTE_32F, false, false, [l; 4], 1, [0; 4]);
        // TRANSA is an int32_t, FAST_ACCUM an int8_t, the scale pointers
        // pointers.
        assert_eq!(
            desc_set(o.desc, CUBLASLT_MATMUL_DESC_TRANSA, &1i64),
            INVALID_VALUE
        );
        assert_eq!(
            desc_set(o.desc, CUBLASLT_MATMUL_DESC_TRANSA, &1i8),
            INVALID_VALUE
        );
        assert_eq!(
            desc_set(o.desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &1i32),
            INVALID_VALUE
        );
        assert_eq!(
            desc_set(o.desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &1i8),
            SUCCESS
        );
        assert_eq!(
            desc_set(o.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &0u32),
            INVALID_VALUE
        );
        // Values: no such operation; no such attribute (9 and 16 are gaps).
        assert_eq!(
            desc_set(o.desc, CUBLASLT_MATMUL_DESC_TRANSA, &7i32),
            INVALID_VALUE
        );
        assert_eq!(desc_set(o.desc, 9, &0i32), INVALID_VALUE);
        assert_eq!(desc_set(o.desc, 16, &0i64), INVALID_VALUE);
        assert_eq!(desc_set(o.desc, 999, &0i32), INVALID_VALUE);
        // SAFETY: a null buffer is refused before it is read.
        let null = unsafe {
            cublasLtMatmulDescSetAttribute(o.desc, CUBLASLT_MATMUL_DESC_TRANSA, std::ptr::null(), 4)
        };
        assert_eq!(null, INVALID_VALUE);
        // Layouts: BATCH_COUNT int32_t, STRIDED_BATCH_OFFSET int64_t, ROWS
        // uint64_t.
        assert_eq!(
            layout_set(o.l[0], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &2i64),
            INVALID_VALUE
        );
        assert_eq!(
            layout_set(o.l[0], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &16i32),
            INVALID_VALUE
        );
        assert_eq!(
            layout_set(o.l[0], CUBLASLT_MATRIX_LAYOUT_ROWS, &4u32),
            INVALID_VALUE
        );
        assert_eq!(layout_set(o.l[0], 42, &4u32), INVALID_VALUE);
        // Preferences: MAX_WORKSPACE_BYTES uint64_t, MAX_WAVES_COUNT float.
        assert_eq!(
            pref_set(o.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &1u32),
            INVALID_VALUE
        );
        assert_eq!(
            pref_set(o.pref, CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT, &1.0f64),
            INVALID_VALUE
        );
        assert_eq!(pref_set(o.pref, 2, &0u64), INVALID_VALUE);
        // Nothing was changed by the refusals: the matmul still plans.
        assert_eq!(o.heuristic(1).0, SUCCESS);
    }

    #[test]
    fn heuristic_answers_and_refusals() {
        let f32l = (CUDA_R_32F, 16, 16, 16);
        let o = Objs::new(CUBLAS_COMPUTE_32F, false, false, [f32l; 4], 1, [0; 4]);
        let (st, res, n) = o.heuristic(8);
        assert_eq!((st, n), (SUCCESS, 2));
        assert_ne!(res[0].algo.data, res[1].algo.data);
        for r in &res[..2] {
            assert_eq!((r.state, r.workspaceSize, r.wavesCount), (SUCCESS, 0, 1.0));
        }
        assert_eq!(o.heuristic(1).2, 1);
        assert_eq!(o.heuristic(0).0, INVALID_VALUE);
        // A wave limit below our algorithms' 1.0 leaves none.
        assert_eq!(
            pref_set(o.pref, CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT, &0.5f32),
            SUCCESS
        );
        assert_eq!(o.heuristic(4).0, NOT_SUPPORTED);
        assert_eq!(
            pref_set(o.pref, CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT, &0.0f32),
            SUCCESS
        );
        // An epilogue is not simulated; back to the default, it plans again.
        let relu = CUBLASLT_EPILOGUE_RELU;
        assert_eq!(
            desc_set(o.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &relu),
            SUCCESS
        );
        assert_eq!(o.heuristic(4).0, NOT_SUPPORTED);
        assert_eq!(
            desc_set(
                o.desc,
                CUBLASLT_MATMUL_DESC_EPILOGUE,
                &CUBLASLT_EPILOGUE_DEFAULT
            ),
            SUCCESS
        );
        assert_eq!(o.heuristic(4).0, SUCCESS);
        // Scale pointers are for FP8 only.
        let p = 0x1000usize as *const c_void;
        assert_eq!(
            desc_set(o.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &p),
            SUCCESS
        );
        assert_eq!(o.heuristic(4).0, INVALID_VALUE);
        drop(o);

        // Inconsistent shapes: op(A) 16×16 but op(B) 8×16.
        let o = Objs::new(
            CUBLAS_COMPUTE_32F,
            false,
            false,
            [f32l, (CUDA_R_32F, 8, 16, 8), f32l, f32l],
            1,
            [0; 4],
        );
        let (st, _, n) = o.heuristic(4);
        assert_eq!((st, n), (INVALID_VALUE, 0));
        // ld < rows.
        let o = Objs::new(
            CUBLAS_COMPUTE_32F,
            false,
            false,
            [(CUDA_R_32F, 16, 16, 8), f32l, f32l, f32l],
            1,
            [0; 4],
        );
        assert_eq!(o.heuristic(4).0, INVALID_VALUE);
        // Batch counts that differ.
        let o = Objs::new(CUBLAS_COMPUTE_32F, false, false, [f32l; 4], 2, [256; 4]);
        assert_eq!(
            layout_set(o.l[2], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &3i32),
            SUCCESS
        );
        assert_eq!(o.heuristic(4).0, INVALID_VALUE);

        // FP8 not "TN": not supported, no results; TN is.
        let e4 = (CUDA_R_8F_E4M3, 32, 32, 32);
        let bf = (CUDA_R_16BF, 32, 32, 32);
        for (ta, tb, want) in [
            (false, false, NOT_SUPPORTED),
            (true, true, NOT_SUPPORTED),
            (false, true, NOT_SUPPORTED),
            (true, false, SUCCESS),
        ] {
            let o = Objs::new(CUBLAS_COMPUTE_32F, ta, tb, [e4, e4, bf, bf], 1, [0; 4]);
            let (st, _, n) = o.heuristic(4);
            assert_eq!(st, want, "ta {ta} tb {tb}");
            assert_eq!(n, if want == SUCCESS { 2 } else { 0 });
        }
        // FP8 with leading dimensions that are not 16-byte multiples.
        let o = Objs::new(
            CUBLAS_COMPUTE_32F,
            true,
            false,
            [(CUDA_R_8F_E4M3, 32, 32, 40), e4, bf, bf],
            1,
            [0; 4],
        );
        assert_eq!(o.heuristic(4).0, NOT_SUPPORTED);
        // Types the simulation does not run: f64, FP8 output, mixed inputs,
        // TF32 compute on bf16.
        let f64l = (CUDA_R_64F, 16, 16, 16);
        assert_eq!(
            Objs::new(CUBLAS_COMPUTE_64F, false, false, [f64l; 4], 1, [0; 4])
                .heuristic(1)
                .0,
            NOT_SUPPORTED
        );
        assert_eq!(
            Objs::new(CUBLAS_COMPUTE_32F, true, false, [e4; 4], 1, [0; 4])
                .heuristic(1)
                .0,
            NOT_SUPPORTED
        );
        let bf16 = (CUDA_R_16BF, 16, 16, 16);
        assert_eq!(
            Objs::new(
                CUBLAS_COMPUTE_32F,
                false,
                false,
                [bf16, f32l, f32l, f32l],
                1,
                [0; 4]
            )
            .heuristic(1)
            .0,
            NOT_SUPPORTED
        );
        assert_eq!(
            Objs::new(
                CUBLAS_COMPUTE_32F_FAST_TF32,
                false,
                false,
                [bf16; 4],
                1,
                [0; 4]
            )
            .heuristic(1)
            .0,
            NOT_SUPPORTED
        );
    }

    #[test]
    fn matmul_refusals_queue_nothing() {
        let f32l = (CUDA_R_32F, 16, 16, 16);
        let buf = Buf::new(&[0u8; 16 * 16 * 4]);
        let p = buf.ptr();
        // Inconsistent shapes.
        let o = Objs::new(
            CUBLAS_COMPUTE_32F,
            false,
            false,
            [f32l, (CUDA_R_32F, 8, 16, 8), f32l, f32l],
            1,
            [0; 4],
        );
        assert_eq!(
            o.matmul(1.0, p, p, 0.0, p, p, std::ptr::null()),
            INVALID_VALUE
        );
        // An algorithm the heuristic did not give.
        let o = Objs::new(CUBLAS_COMPUTE_32F, false, false, [f32l; 4], 1, [0; 4]);
        let bogus = cublasLtMatmulAlgo_t::default();
        assert_eq!(o.matmul(1.0, p, p, 0.0, p, p, &bogus), INVALID_VALUE);
        // Null operands; a C is needed only with beta ≠ 0.
        assert_eq!(
            o.matmul(1.0, null_mut(), p, 0.0, p, p, std::ptr::null()),
            INVALID_VALUE
        );
        assert_eq!(
            o.matmul(1.0, p, p, 1.0, null_mut(), p, std::ptr::null()),
            INVALID_VALUE
        );
        assert_eq!(
            o.matmul(1.0, p, p, 0.0, null_mut(), p, std::ptr::null()),
            SUCCESS
        );
        // Misaligned D.
        let odd = (buf.0 + 2) as *mut c_void;
        assert_eq!(
            o.matmul(1.0, p, p, 0.0, p, odd, std::ptr::null()),
            NOT_SUPPORTED
        );
        // The same D, as f32 zeros times anything: still zeros.
        assert!(buf.read().iter().all(|b| *b == 0));
    }

    #[test]
    fn handles_versions_and_strings() {
        // SAFETY: plain calls; the strings are static and NUL-terminated.
        unsafe {
            assert_eq!(cublasLtGetVersion(), 120903);
            let v = cublasLtGetVersion();
            // The worker's decoding (cuda::cublas_version_string).
            assert_eq!(
                format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100),
                "12.9.3"
            );
            let mut x = 0;
            assert_eq!(cublasLtGetProperty(MINOR_VERSION, &mut x), SUCCESS);
            assert_eq!(x, 9);
            assert_eq!(cublasLtGetProperty(PATCH_LEVEL, &mut x), SUCCESS);
            assert_eq!(x, 3);
            let s = |p: *const c_char| std::ffi::CStr::from_ptr(p).to_str().unwrap().to_string();
            assert_eq!(
                s(cublasLtGetStatusString(NOT_SUPPORTED)),
                "the functionality requested is not supported"
            );
            assert_eq!(s(cublasLtGetStatusString(12345)), "unknown error");
            assert_eq!(
                s(cublasLtGetStatusName(INVALID_VALUE)),
                "CUBLAS_STATUS_INVALID_VALUE"
            );
            assert_eq!(s(cublasLtGetStatusName(12345)), "CUBLAS_STATUS_UNKNOWN");
            assert_eq!(cublasLtDestroy(null_mut()), NOT_INITIALIZED);
            assert_eq!(cublasLtCreate(null_mut()), INVALID_VALUE);
            assert_eq!(cublasLtMatmulDescDestroy(null_mut()), SUCCESS);
        }
    }

    #[test]
    fn corruption_schedule() {
        let hits: Vec<u64> = (0..200).filter(|n| corrupts(*n)).collect();
        assert_eq!(hits, [0, 64, 128, 192], "the first GEMM, then every 64th");
    }
}

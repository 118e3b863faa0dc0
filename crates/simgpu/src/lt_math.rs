//! The arithmetic of the simulated cuBLASLt ([`crate::lt`]): element
//! encodings and one batched, strided, column-major GEMM on the CPU.
//!
//! # Numerics
//! cuBLASLt defines `D = alpha·scale_a·scale_b·op(A)·op(B) + beta·C` (the
//! scales only for FP8 inputs). Here every input element is decoded exactly
//! to f32 (every fp16, bf16 and FP8 value is an f32), rounded as the compute
//! type asks ([`Rounding`]: `CUBLAS_COMPUTE_32F_FAST_TF32` keeps 10 mantissa
//! bits, nearest even; `FAST_16F` / `FAST_16BF` round to fp16 / bf16),
//! multiplied and accumulated in f32 by the `gemm` crate, scaled, `beta·C`
//! added in f32, and the result rounded to nearest even into D's type. FP8
//! fast accumulation is accepted and computed with full f32 accumulation
//! (the CPU has no cheaper mode to imitate).
//!
//! # Memory
//! A [`Job`] names its matrices by address: device pointers are host
//! addresses in the simulation, so a job is plain data that can be built on
//! the calling thread and run later on a stream's thread. Each batch entry
//! is decoded into dense f32 copies (cheap next to the multiplication), and
//! transposes are expressed as strides of those copies, never materialised.

use gemm::Parallelism;

/// An element type the simulated GEMM reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// `CUDA_R_32F`.
    F32,
    /// `CUDA_R_16F`.
    F16,
    /// `CUDA_R_16BF`.
    Bf16,
    /// `CUDA_R_8F_E4M3` (the "fn" variant: no infinities, NaN = S.1111.111).
    E4m3,
    /// `CUDA_R_8F_E5M2` (IEEE-like: infinities and NaNs).
    E5m2,
}

impl Elem {
    /// The element type of a `cudaDataType_t`, if simulated.
    pub fn from_cuda(t: u32) -> Option<Elem> {
        use crate::hdr::*;
        match t {
            CUDA_R_32F => Some(Elem::F32),
            CUDA_R_16F => Some(Elem::F16),
            CUDA_R_16BF => Some(Elem::Bf16),
            CUDA_R_8F_E4M3 => Some(Elem::E4m3),
            CUDA_R_8F_E5M2 => Some(Elem::E5m2),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F16 | Elem::Bf16 => 2,
            Elem::E4m3 | Elem::E5m2 => 1,
        }
    }

    /// Whether it is an FP8 type.
    pub fn is_fp8(self) -> bool {
        matches!(self, Elem::E4m3 | Elem::E5m2)
    }

    /// Whether the simulation can write it (FP8 outputs, which need a D
    /// scale and an amax, are not simulated).
    pub fn is_output(self) -> bool {
        !self.is_fp8()
    }

    /// The exponent field of the encoding: (lowest bit, width).
    fn exponent_field(self) -> (u32, u32) {
        match self {
            Elem::F32 => (23, 8),
            Elem::F16 => (10, 5),
            Elem::Bf16 => (7, 8),
            Elem::E4m3 => (3, 4),
            Elem::E5m2 => (2, 5),
        }
    }
}

/// How inputs are rounded before the multiplication (the compute type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// As stored (`CUBLAS_COMPUTE_32F`).
    None,
    /// To tf32: 10 explicit mantissa bits, nearest even
    /// (`CUBLAS_COMPUTE_32F_FAST_TF32`).
    Tf32,
    /// To fp16 (`CUBLAS_COMPUTE_32F_FAST_16F`).
    F16,
    /// To bf16 (`CUBLAS_COMPUTE_32F_FAST_16BF`).
    Bf16,
}

/// Decodes an FP8 E4M3 ("fn") byte: bias 7, 3 mantissa bits, subnormal
/// step 2⁻⁹, largest ±448, NaN for S.1111.111, no infinities.
pub fn decode_e4m3(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((b >> 3) & 0x0f);
    let man = f32::from(b & 0x07);
    if exp == 0x0f && b & 0x07 == 0x07 {
        return f32::NAN;
    }
    if exp == 0 {
        sign * man * (2.0f32).powi(-9)
    } else {
        sign * (1.0 + man / 8.0) * (2.0f32).powi(exp - 7)
    }
}

/// Decodes an FP8 E5M2 byte: bias 15, 2 mantissa bits, subnormal step
/// 2⁻¹⁶, largest ±57344, infinities and NaNs as IEEE 754.
pub fn decode_e5m2(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((b >> 2) & 0x1f);
    let man = f32::from(b & 0x03);
    if exp == 0x1f {
        return if man == 0.0 {
            sign * f32::INFINITY
        } else {
            f32::NAN
        };
    }
    if exp == 0 {
        sign * man * (2.0f32).powi(-16)
    } else {
        sign * (1.0 + man / 4.0) * (2.0f32).powi(exp - 15)
    }
}

fn fp8_table(e: Elem) -> &'static [f32; 256] {
    use std::sync::OnceLock;
    static E4M3: OnceLock<[f32; 256]> = OnceLock::new();
    static E5M2: OnceLock<[f32; 256]> = OnceLock::new();
    let (cell, f): (_, fn(u8) -> f32) = match e {
        Elem::E5m2 => (&E5M2, decode_e5m2),
        _ => (&E4M3, decode_e4m3),
    };
    cell.get_or_init(|| std::array::from_fn(|i| f(i as u8)))
}

/// `x` rounded to tf32 (f32 with 10 explicit mantissa bits), to nearest,
/// ties to even; infinities and NaNs unchanged.
pub fn round_tf32(x: f32) -> f32 {
    const DROP: u32 = 23 - 10;
    if !x.is_finite() {
        return x;
    }
    let u = x.to_bits();
    let lsb = (u >> DROP) & 1;
    f32::from_bits((u + ((1 << (DROP - 1)) - 1) + lsb) & !((1 << DROP) - 1))
}

/// Decodes `src` (little-endian elements of type `e`) into `out`.
pub fn decode(e: Elem, src: &[u8], out: &mut [f32]) {
    debug_assert_eq!(src.len(), out.len() * e.size());
    match e {
        Elem::F32 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Elem::F16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        Elem::Bf16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        Elem::E4m3 | Elem::E5m2 => {
            let t = fp8_table(e);
            for (o, b) in out.iter_mut().zip(src) {
                *o = t[usize::from(*b)];
            }
        }
    }
}

/// Encodes `vals` into `dst` as elements of type `e`, rounding to nearest
/// even. FP8 is not an output type of the simulation ([`Elem::is_output`]).
pub fn encode(e: Elem, vals: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(dst.len(), vals.len() * e.size());
    match e {
        Elem::F32 => {
            for (c, v) in dst.chunks_exact_mut(4).zip(vals) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        Elem::F16 => {
            for (c, v) in dst.chunks_exact_mut(2).zip(vals) {
                c.copy_from_slice(&half::f16::from_f32(*v).to_le_bytes());
            }
        }
        Elem::Bf16 => {
            for (c, v) in dst.chunks_exact_mut(2).zip(vals) {
                c.copy_from_slice(&half::bf16::from_f32(*v).to_le_bytes());
            }
        }
        Elem::E4m3 | Elem::E5m2 => unreachable!("FP8 outputs are refused before a job is built"),
    }
}

fn round_inputs(r: Rounding, v: &mut [f32]) {
    match r {
        Rounding::None => {}
        Rounding::Tf32 => v.iter_mut().for_each(|x| *x = round_tf32(*x)),
        Rounding::F16 => v
            .iter_mut()
            .for_each(|x| *x = half::f16::from_f32(*x).to_f32()),
        Rounding::Bf16 => v
            .iter_mut()
            .for_each(|x| *x = half::bf16::from_f32(*x).to_f32()),
    }
}

/// A matrix in device memory as a cuBLASLt layout describes it: stored
/// column-major `rows × cols`, columns `ld` elements apart, batch entries
/// `stride` elements apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mat {
    /// Device address of batch entry 0.
    pub ptr: u64,
    /// Element type.
    pub elem: Elem,
    /// Rows as stored.
    pub rows: usize,
    /// Columns as stored.
    pub cols: usize,
    /// Leading dimension, elements (≥ rows).
    pub ld: usize,
    /// Elements between batch entries.
    pub stride: usize,
}

impl Mat {
    /// Bytes from the first element of batch entry 0 to the end of the last
    /// element of entry `batch − 1`: what a GEMM over `batch` entries may
    /// touch.
    pub fn extent_bytes(&self, batch: usize) -> u64 {
        let elems = (batch.max(1) - 1) * self.stride + (self.cols.max(1) - 1) * self.ld + self.rows;
        (elems * self.elem.size()) as u64
    }

    /// Device address of column `j` of batch entry `e`.
    fn column(&self, e: usize, j: usize) -> u64 {
        self.ptr + ((e * self.stride + j * self.ld) * self.elem.size()) as u64
    }

    /// Decodes batch entry `e` into `out` (dense, column-major, `rows`
    /// apart).
    ///
    /// # Safety
    /// The entry's bytes are readable and not written meanwhile.
    unsafe fn load(&self, e: usize, out: &mut [f32]) {
        let es = self.elem.size();
        for (j, col) in out.chunks_exact_mut(self.rows).take(self.cols).enumerate() {
            // SAFETY: the caller's contract covers every column of entry e.
            let src = unsafe { crate::device::bytes(self.column(e, j), self.rows * es) };
            decode(self.elem, src, col);
        }
    }

    /// Encodes dense column-major `vals` into batch entry `e`, leaving the
    /// bytes between columns and entries alone.
    ///
    /// # Safety
    /// The entry's bytes are writable and nothing else views them meanwhile.
    unsafe fn store(&self, e: usize, vals: &[f32]) {
        let es = self.elem.size();
        for (j, col) in vals.chunks_exact(self.rows).take(self.cols).enumerate() {
            // SAFETY: the caller's contract covers every column of entry e.
            let dst = unsafe { crate::device::bytes_mut(self.column(e, j), self.rows * es) };
            encode(self.elem, col, dst);
        }
    }
}

/// One `cublasLtMatmul` (every batch entry) as plain data:
/// `D = alpha·scale_a·scale_b·op(A)·op(B) + beta·C`, `op(A)` `m × k`,
/// `op(B)` `k × n`, C and D `m × n`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Job {
    /// Rows of D.
    pub m: usize,
    /// Columns of D.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Batch entries.
    pub batch: usize,
    /// A is stored `k × m` and transposed.
    pub trans_a: bool,
    /// B is stored `n × k` and transposed.
    pub trans_b: bool,
    /// First operand.
    pub a: Mat,
    /// Second operand.
    pub b: Mat,
    /// C, read only when `beta ≠ 0` (None otherwise, as cuBLAS reads no C
    /// then, whatever it holds).
    pub c: Option<Mat>,
    /// Output.
    pub d: Mat,
    /// Host value of alpha.
    pub alpha: f32,
    /// Host value of beta.
    pub beta: f32,
    /// Device address of A's f32 scale factor (0: none, i.e. 1).
    pub a_scale: u64,
    /// Device address of B's f32 scale factor (0: none).
    pub b_scale: u64,
    /// Input rounding of the compute type.
    pub rounding: Rounding,
    /// Threads of the multiplication (1: the calling thread only).
    pub threads: usize,
}

/// Runs `job`.
///
/// # Safety
/// Every matrix's [`Mat::extent_bytes`] and every non-zero scale address (4
/// bytes) lie in live memory; A, B, C and the scales are not written and D
/// is not viewed by anyone else while it runs. C may be D (in place); any
/// other overlap of D with an input gives unspecified values, as on a GPU.
pub unsafe fn run(job: &Job) {
    let scale = |p: u64| -> f32 {
        if p == 0 {
            return 1.0;
        }
        // SAFETY: the caller's contract: 4 live bytes.
        let b = unsafe { crate::device::bytes(p, 4) };
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    };
    let ab = job.alpha * scale(job.a_scale) * scale(job.b_scale);
    let (m, n, k) = (job.m, job.n, job.k);
    let mut a = vec![0.0f32; job.a.rows * job.a.cols];
    let mut b = vec![0.0f32; job.b.rows * job.b.cols];
    let mut dst = vec![0.0f32; m * n];
    // op(A)[i, p]: A[i, p] (dense m × k) or A[p, i] (dense k × m); likewise B.
    let (lhs_cs, lhs_rs) = if job.trans_a {
        (1, k as isize)
    } else {
        (m as isize, 1)
    };
    let (rhs_cs, rhs_rs) = if job.trans_b {
        (1, n as isize)
    } else {
        (k as isize, 1)
    };
    let par = if job.threads > 1 {
        Parallelism::Rayon(job.threads)
    } else {
        Parallelism::None
    };
    for e in 0..job.batch {
        // SAFETY (all three loads and the store): the caller's contract;
        // the views do not outlive each call, so C may be D.
        unsafe {
            job.a.load(e, &mut a);
            job.b.load(e, &mut b);
            if let Some(c) = &job.c {
                c.load(e, &mut dst);
            }
        }
        round_inputs(job.rounding, &mut a);
        round_inputs(job.rounding, &mut b);
        // SAFETY: dst is m × n with column stride m; a and b hold op(A) and
        // op(B) at the strides above (their sizes are m·k and k·n). gemm's
        // own convention is dst := alpha·dst + beta·lhs·rhs, hence the
        // swapped coefficients; dst is read only with a C.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                m as isize,
                1,
                job.c.is_some(),
                a.as_ptr(),
                lhs_cs,
                lhs_rs,
                b.as_ptr(),
                rhs_cs,
                rhs_rs,
                job.beta,
                ab,
                false,
                false,
                false,
                par,
            );
        }
        // SAFETY: the caller's contract for D.
        unsafe { job.d.store(e, &dst) };
    }
}

/// The exponent bit to flip in an element with encoding `bits` so that its
/// magnitude grows the most while staying finite: the highest clear bit of
/// the exponent field whose setting does not make the field all ones. None
/// when every such bit is set (e.g. 1.0, whose exponent is 0111…1).
pub fn growth_bit(e: Elem, bits: u32) -> Option<u32> {
    let (shift, width) = e.exponent_field();
    let ones = (1u32 << width) - 1;
    let exp = (bits >> shift) & ones;
    (0..width)
        .rev()
        .find(|j| exp & (1 << j) == 0 && exp | (1 << j) != ones)
        .map(|j| shift + j)
}

/// Silent data corruption, loud enough for any check to see: flips one
/// exponent bit ([`growth_bit`]) of the first element of column 0 of D's
/// batch entry 0 that has one (the lowest exponent bit of element 0 if none
/// has). Returns (element index, bit).
///
/// # Safety
/// As [`run`] for D.
pub unsafe fn corrupt(d: &Mat) -> (usize, u32) {
    let es = d.elem.size();
    // SAFETY: the caller's contract: column 0 of entry 0 is D's.
    let col = unsafe { crate::device::bytes_mut(d.ptr, d.rows * es) };
    let word = |c: &[u8]| -> u32 {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        u32::from_le_bytes(w)
    };
    let (i, bit) = col
        .chunks_exact(es)
        .enumerate()
        .find_map(|(i, c)| growth_bit(d.elem, word(c)).map(|b| (i, b)))
        .unwrap_or((0, d.elem.exponent_field().0));
    let flipped = (word(&col[i * es..(i + 1) * es]) ^ (1 << bit)).to_le_bytes();
    col[i * es..(i + 1) * es].copy_from_slice(&flipped[..es]);
    (i, bit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp8_known_codes() {
        // E4M3 ("fn"): 1.0, the largest finite, the smallest subnormal and
        // normal, negative zero, NaN (no infinities).
        assert_eq!(decode_e4m3(0x38), 1.0);
        assert_eq!(decode_e4m3(0x7e), 448.0);
        assert_eq!(decode_e4m3(0xfe), -448.0);
        assert_eq!(decode_e4m3(0x01), 2f32.powi(-9));
        assert_eq!(decode_e4m3(0x07), 7.0 * 2f32.powi(-9));
        assert_eq!(decode_e4m3(0x08), 2f32.powi(-6));
        assert_eq!(decode_e4m3(0xc0), -2.0);
        assert_eq!(decode_e4m3(0x1d), 0.101_562_5);
        assert!(decode_e4m3(0x80) == 0.0 && decode_e4m3(0x80).is_sign_negative());
        assert!(decode_e4m3(0x7f).is_nan() && decode_e4m3(0xff).is_nan());
        assert_eq!(decode_e4m3(0x78), 256.0, "S.1111.000 is finite in E4M3fn");
        // E5M2: 1.0, the largest finite, the smallest subnormal, infinities
        // and NaNs.
        assert_eq!(decode_e5m2(0x3c), 1.0);
        assert_eq!(decode_e5m2(0x7b), 57344.0);
        assert_eq!(decode_e5m2(0x01), 2f32.powi(-16));
        assert_eq!(decode_e5m2(0x04), 2f32.powi(-14));
        assert_eq!(decode_e5m2(0xbe), -1.5);
        assert_eq!(decode_e5m2(0x7c), f32::INFINITY);
        assert_eq!(decode_e5m2(0xfc), f32::NEG_INFINITY);
        assert!(decode_e5m2(0x7d).is_nan() && decode_e5m2(0x7f).is_nan());
        // Every code: E4M3 has exactly 2 NaNs, E5M2 6; values grow with the
        // code within a sign.
        assert_eq!((0..=255u8).filter(|b| decode_e4m3(*b).is_nan()).count(), 2);
        assert_eq!((0..=255u8).filter(|b| decode_e5m2(*b).is_nan()).count(), 6);
        for (f, last) in [(decode_e4m3 as fn(u8) -> f32, 0x7eu8), (decode_e5m2, 0x7c)] {
            for b in 0..last {
                assert!(f(b) < f(b + 1), "{b:#x}");
                assert_eq!(f(b | 0x80), -f(b));
            }
        }
        // The tables agree with the functions.
        let mut out = [0.0f32; 256];
        let codes: Vec<u8> = (0..=255).collect();
        decode(Elem::E4m3, &codes, &mut out);
        assert!(out
            .iter()
            .zip(&codes)
            .all(|(v, b)| v.to_bits() == decode_e4m3(*b).to_bits()));
    }

    #[test]
    fn tf32_rounds_to_nearest_even() {
        let ulp = 2f32.powi(-10);
        assert_eq!(round_tf32(1.0), 1.0);
        assert_eq!(round_tf32(1.0 + ulp), 1.0 + ulp);
        // Ties: 1 + ulp/2 goes to 1 (even), 1 + 3ulp/2 to 1 + 2ulp (even).
        assert_eq!(round_tf32(1.0 + ulp / 2.0), 1.0);
        assert_eq!(round_tf32(1.0 + 1.5 * ulp), 1.0 + 2.0 * ulp);
        // Just above a tie rounds up, just below down.
        assert_eq!(round_tf32(1.0 + ulp / 2.0 + 2f32.powi(-23)), 1.0 + ulp);
        assert_eq!(round_tf32(1.0 + ulp / 2.0 - 2f32.powi(-23)), 1.0);
        assert_eq!(round_tf32(-1.0 - 1.5 * ulp), -1.0 - 2.0 * ulp);
        // The largest finite f32 rounds up to infinity, as RNE does.
        assert_eq!(round_tf32(f32::MAX), f32::INFINITY);
        assert!(round_tf32(f32::NAN).is_nan());
        assert_eq!(round_tf32(f32::NEG_INFINITY), f32::NEG_INFINITY);
        // Ten explicit bits survive, nothing below.
        let x = round_tf32(std::f32::consts::PI);
        assert_eq!(x.to_bits() & 0x1fff, 0);
        assert!((x - std::f32::consts::PI).abs() <= 2.0 * ulp);
    }

    #[test]
    fn encodings_round_trip_and_round_to_nearest_even() {
        let vals = [0.0f32, -1.5, 3.25, 1e-3, 65504.0, -7.0];
        for e in [Elem::F32, Elem::F16, Elem::Bf16] {
            let mut bytes = vec![0u8; vals.len() * e.size()];
            encode(e, &vals, &mut bytes);
            let mut back = vec![0.0f32; vals.len()];
            decode(e, &bytes, &mut back);
            for (v, b) in vals.iter().zip(&back) {
                let tol = match e {
                    Elem::F32 => 0.0,
                    Elem::F16 => 2f32.powi(-11),
                    _ => 2f32.powi(-8),
                };
                assert!((v - b).abs() <= tol * v.abs(), "{e:?} {v} → {b}");
            }
        }
        // bf16 tie: 1 + 2⁻⁸ lies between 1 and 1 + 2⁻⁷; even is 1.
        let mut b = [0u8; 2];
        encode(Elem::Bf16, &[1.0 + 2f32.powi(-8)], &mut b);
        assert_eq!(half::bf16::from_le_bytes(b).to_f32(), 1.0);
        encode(Elem::Bf16, &[1.0 + 3.0 * 2f32.powi(-8)], &mut b);
        assert_eq!(half::bf16::from_le_bytes(b).to_f32(), 1.0 + 2f32.powi(-6));
    }

    #[test]
    fn extents_cover_the_last_element_only() {
        let m = Mat {
            ptr: 0,
            elem: Elem::Bf16,
            rows: 3,
            cols: 4,
            ld: 5,
            stride: 30,
        };
        assert_eq!(m.extent_bytes(1), (3 * 5 + 3) * 2);
        assert_eq!(m.extent_bytes(2), (30 + 3 * 5 + 3) * 2);
    }

    #[test]
    fn a_small_gemm_on_host_memory() {
        // op(A) = Aᵀ with A stored 2 × 3 (ld 3); B stored 2 × 2 (ld 2);
        // C = D in place; f32.
        let a: [f32; 6] = [1.0, 2.0, 0.0, 3.0, 4.0, 0.0]; // cols (1,2) (3,4)
        let b: [f32; 4] = [5.0, 6.0, 7.0, 8.0];
        let mut d: [f32; 4] = [1.0, 1.0, 1.0, 1.0];
        let mat = |p: u64, rows, cols, ld| Mat {
            ptr: p,
            elem: Elem::F32,
            rows,
            cols,
            ld,
            stride: 0,
        };
        let dm = mat(d.as_mut_ptr() as u64, 2, 2, 2);
        let job = Job {
            m: 2,
            n: 2,
            k: 2,
            batch: 1,
            trans_a: true,
            trans_b: false,
            a: mat(a.as_ptr() as u64, 2, 2, 3),
            b: mat(b.as_ptr() as u64, 2, 2, 2),
            c: Some(dm),
            d: dm,
            alpha: 2.0,
            beta: -1.0,
            a_scale: 0,
            b_scale: 0,
            rounding: Rounding::None,
            threads: 1,
        };
        // SAFETY: every address is one of the arrays above, in bounds.
        unsafe { run(&job) };
        // Aᵀ = [[1, 2], [3, 4]]; Aᵀ·B = [[17, 23], [39, 53]] (column-major
        // D: 17, 39, 23, 53); D = 2·that − 1.
        assert_eq!(d, [33.0, 77.0, 45.0, 105.0]);
    }

    #[test]
    fn corruption_grows_one_element_by_far() {
        // bf16 6.0: exponent 129 = 1000_0001; the highest clear bit whose
        // setting keeps the field below all ones is bit 6 (value × 2⁶⁴).
        let six = u32::from(half::bf16::from_f32(6.0).to_bits());
        assert_eq!(growth_bit(Elem::Bf16, six), Some(7 + 6));
        // 1.0 (0111_1111) has none; 0.0 grows to 2.0.
        assert_eq!(growth_bit(Elem::F32, 1.0f32.to_bits()), None);
        assert_eq!(growth_bit(Elem::F32, 0.0f32.to_bits()), Some(30));
        let mut col: Vec<u8> = [1.0f32, 0.75, 2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let d = Mat {
            ptr: col.as_mut_ptr() as u64,
            elem: Elem::F32,
            rows: 3,
            cols: 1,
            ld: 3,
            stride: 3,
        };
        // SAFETY: d is `col`, 3 f32.
        let (i, bit) = unsafe { corrupt(&d) };
        let vals: Vec<f32> = col
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(
            (i, bit),
            (1, 30),
            "element 0 is 1.0 (no growth bit): the next one"
        );
        assert_eq!(vals[0], 1.0);
        assert_eq!(f64::from(vals[1]), 0.75 * 2f64.powi(128));
        assert!(vals[1].is_finite());
        assert_eq!(vals[2], 2.0);
    }
}

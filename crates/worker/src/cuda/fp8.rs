//! FP8 (E4M3) scaling math, on the host.
//!
//! E4M3 as used by Hopper tensor cores and cuBLASLt (`CUDA_R_8F_E4M3`, the
//! "fn" variant): 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits, no
//! infinities, NaN = `S.1111.111`, largest finite ±448, smallest normal
//! 2⁻⁶, subnormal step 2⁻⁹.
//!
//! Per-tensor scaling as in Transformer Engine: a tensor with absolute
//! maximum `amax` is multiplied by `scale` before the cast so that it uses the
//! E4M3 range, and cuBLASLt multiplies the product by the *dequantisation*
//! factors `1/scale_a · 1/scale_b` (`CUBLASLT_MATMUL_DESC_A/B_SCALE_POINTER`).
//! Scales here are powers of two, so scaling and unscaling are exact and the
//! only error is the E4M3 rounding, at most half an ulp: a relative
//! [`UNIT_ROUNDOFF`] = 2⁻⁴ for normal values.

/// Largest finite E4M3 value.
pub const E4M3_MAX: f64 = 448.0;
/// Smallest positive normal E4M3 value, 2⁻⁶.
pub const E4M3_MIN_NORMAL: f64 = 1.0 / 64.0;
/// Spacing of E4M3 subnormals, 2⁻⁹.
pub const E4M3_SUBNORMAL_STEP: f64 = 1.0 / 512.0;
/// Relative rounding error bound of normal E4M3 values (half an ulp of a
/// 3-bit mantissa).
pub const UNIT_ROUNDOFF: f64 = 1.0 / 16.0;
/// The positive NaN encoding.
pub const E4M3_NAN: u8 = 0x7f;

/// Round half to even.
fn round_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

/// Encodes `x` as E4M3, rounding to nearest even and saturating at ±448
/// (as the cast kernels of Transformer Engine and cuBLASLt do).
pub fn encode_e4m3(x: f64) -> u8 {
    if x.is_nan() {
        return E4M3_NAN;
    }
    let sign = if x.is_sign_negative() { 0x80u8 } else { 0 };
    let a = x.abs();
    if a >= E4M3_MAX {
        return sign | 0x7e;
    }
    if a < E4M3_MIN_NORMAL {
        // Subnormal: value = q · 2⁻⁹; q = 8 rounds up into the smallest
        // normal, whose code is also 8.
        let q = round_even(a / E4M3_SUBNORMAL_STEP) as u8;
        return sign | q;
    }
    let mut e = a.log2().floor() as i32;
    // log2 can be off by one right at a power of two.
    if 2f64.powi(e) > a {
        e -= 1;
    } else if 2f64.powi(e + 1) <= a {
        e += 1;
    }
    let m = a / 2f64.powi(e) - 1.0;
    let mut q = round_even(m * 8.0) as i32;
    if q == 8 {
        e += 1;
        q = 0;
    }
    if e > 8 || (e == 8 && q == 7) {
        return sign | 0x7e;
    }
    sign | (((e + 7) as u8) << 3) | q as u8
}

/// Decodes an E4M3 byte.
pub fn decode_e4m3(b: u8) -> f64 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let exp = (b >> 3) & 0x0f;
    let man = (b & 0x07) as f64;
    if exp == 0x0f && b & 0x07 == 0x07 {
        return f64::NAN;
    }
    if exp == 0 {
        sign * man * E4M3_SUBNORMAL_STEP
    } else {
        sign * (1.0 + man / 8.0) * 2f64.powi(exp as i32 - 7)
    }
}

/// The power-of-two quantisation scale for a tensor with absolute maximum
/// `amax`: the largest `2^k` with `amax · 2^k ≤ 448 · 2^-margin`. A zero or
/// non-finite `amax` gives 1.
pub fn scale_for_amax(amax: f64, margin: i32) -> f64 {
    if !(amax.is_finite() && amax > 0.0) {
        return 1.0;
    }
    let k = ((E4M3_MAX / amax).log2() - margin as f64).floor() as i32;
    let mut s = 2f64.powi(k);
    // Guard the floor against log2 rounding.
    while amax * s > E4M3_MAX * 2f64.powi(-margin) {
        s /= 2.0;
    }
    s
}

/// A tensor quantised to E4M3 with one scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    /// E4M3 codes of `x · scale`.
    pub codes: Vec<u8>,
    /// The quantisation scale (a power of two).
    pub scale: f64,
}

impl Quantized {
    /// The dequantisation factor handed to cuBLASLt's scale pointer.
    pub fn scale_inv(&self) -> f32 {
        (1.0 / self.scale) as f32
    }

    /// The values the codes stand for, unscaled.
    pub fn dequantized(&self) -> Vec<f64> {
        self.codes
            .iter()
            .map(|c| decode_e4m3(*c) / self.scale)
            .collect()
    }
}

/// Quantises `x` with the scale of its absolute maximum.
pub fn quantize(x: &[f64]) -> Quantized {
    let amax = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let scale = scale_for_amax(amax, 0);
    Quantized {
        codes: x.iter().map(|v| encode_e4m3(v * scale)).collect(),
        scale,
    }
}

/// Bound on the Frobenius-relative error of a GEMM whose inputs were each
/// rounded with relative error ≤ [`UNIT_ROUNDOFF`]: every product carries at
/// most (1+u)² − 1, so ‖C − Ĉ‖ ≤ ((1+u)² − 1) · ‖|A|·|B|‖. For the
/// comparison with ‖C‖ the caller passes ‖|A|·|B|‖ / ‖C‖ as `cancellation`.
pub fn gemm_quantization_bound(cancellation: f64) -> f64 {
    let u = UNIT_ROUNDOFF;
    ((1.0 + u) * (1.0 + u) - 1.0) * cancellation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        assert_eq!(encode_e4m3(0.0), 0x00);
        assert_eq!(encode_e4m3(-0.0), 0x80);
        assert_eq!(encode_e4m3(1.0), 0x38);
        assert_eq!(encode_e4m3(-2.0), 0xc0);
        assert_eq!(encode_e4m3(448.0), 0x7e);
        assert_eq!(encode_e4m3(1e6), 0x7e, "saturates");
        assert_eq!(encode_e4m3(-1e6), 0xfe);
        assert_eq!(encode_e4m3(f64::NAN), 0x7f);
        assert_eq!(encode_e4m3(1.0 / 512.0), 0x01, "smallest subnormal");
        assert_eq!(encode_e4m3(1.0 / 64.0), 0x08, "smallest normal");
        assert_eq!(encode_e4m3(7.0 / 512.0), 0x07, "largest subnormal");
        assert_eq!(encode_e4m3(0.1), 0x1d, "0.1 → 0.1015625");
        assert_eq!(decode_e4m3(0x1d), 0.1015625);
    }

    #[test]
    fn round_half_to_even() {
        // 1 + 1/16 lies halfway between 1 (even mantissa 0) and 1.125.
        assert_eq!(encode_e4m3(1.0625), 0x38);
        // 1.1875 lies halfway between 1.125 (odd) and 1.25 (even).
        assert_eq!(decode_e4m3(encode_e4m3(1.1875)), 1.25);
        // Halfway between the two smallest subnormals' neighbours.
        assert_eq!(encode_e4m3(0.5 / 512.0), 0x00);
        assert_eq!(encode_e4m3(1.5 / 512.0), 0x02);
    }

    #[test]
    fn every_finite_code_round_trips() {
        for b in 0u8..=255 {
            let v = decode_e4m3(b);
            if v.is_nan() {
                assert_eq!(b & 0x7f, 0x7f);
                continue;
            }
            let back = encode_e4m3(v);
            // ±0 both decode to 0.
            if v == 0.0 {
                assert_eq!(back & 0x7f, 0);
            } else {
                assert_eq!(back, b, "code {b:#04x} = {v}");
            }
        }
        assert_eq!(decode_e4m3(0x7e), 448.0);
    }

    #[test]
    fn rounding_error_is_at_most_half_an_ulp() {
        let mut x = 0.02;
        while x < 440.0 {
            let r = decode_e4m3(encode_e4m3(x));
            assert!(((r - x) / x).abs() <= UNIT_ROUNDOFF + 1e-15, "{x} → {r}");
            x *= 1.0137;
        }
    }

    #[test]
    fn scales_are_powers_of_two_that_fit_the_range() {
        assert_eq!(scale_for_amax(1.0, 0), 256.0);
        assert_eq!(scale_for_amax(448.0, 0), 1.0);
        assert_eq!(scale_for_amax(449.0, 0), 0.5);
        assert_eq!(scale_for_amax(1.0, 1), 128.0);
        assert_eq!(scale_for_amax(0.0, 0), 1.0);
        assert_eq!(scale_for_amax(f64::INFINITY, 0), 1.0);
        for amax in [1e-5, 0.3, 3.0, 1000.0, 1e7] {
            let s = scale_for_amax(amax, 0);
            assert!(amax * s <= 448.0 && amax * s * 2.0 > 448.0, "{amax} {s}");
            assert_eq!(s.log2().fract(), 0.0);
        }
    }

    #[test]
    fn quantized_gemm_stays_within_the_bound() {
        // A small dot-product "GEMM": error of the quantised product vs the
        // exact one against the bound.
        let a: Vec<f64> = (0..64)
            .map(|i| ((i * 37 % 23) as f64 - 11.0) / 7.0)
            .collect();
        let b: Vec<f64> = (0..64)
            .map(|i| ((i * 11 % 19) as f64 - 9.0) / 5.0)
            .collect();
        let (qa, qb) = (quantize(&a), quantize(&b));
        assert!(qa.codes.iter().all(|c| *c & 0x7f != 0x7f));
        let (da, db) = (qa.dequantized(), qb.dequantized());
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let quant: f64 = da.iter().zip(&db).map(|(x, y)| x * y).sum();
        let abs: f64 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
        assert!((exact - quant).abs() <= gemm_quantization_bound(1.0) * abs);
        // The scale inverse is what cuBLASLt multiplies by.
        assert_eq!(qa.scale_inv() as f64 * qa.scale, 1.0);
    }
}

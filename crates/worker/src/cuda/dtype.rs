//! Device dtypes on the host: encoding values as the GPU stores them,
//! decoding results, the spot check's error metric and tolerances, and the
//! non-zero pseudo-random operands.

use mfubench_core::config::Dtype;

use super::fp8;

/// Host encoding of values in a device dtype (little-endian bytes); FP8 as
/// E4M3 codes of the values themselves (scale 1).
pub fn encode(dtype: Dtype, vals: &[f64]) -> Vec<u8> {
    match dtype {
        Dtype::Bf16 => vals
            .iter()
            .flat_map(|v| half::bf16::from_f64(*v).to_le_bytes())
            .collect(),
        Dtype::Fp16 => vals
            .iter()
            .flat_map(|v| half::f16::from_f64(*v).to_le_bytes())
            .collect(),
        Dtype::F32 | Dtype::Tf32 => vals
            .iter()
            .flat_map(|v| (*v as f32).to_le_bytes())
            .collect(),
        Dtype::F64 => vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::Fp8 => vals.iter().map(|v| fp8::encode_e4m3(*v)).collect(),
    }
}

/// Inverse of [`encode`].
pub fn decode(dtype: Dtype, bytes: &[u8]) -> Vec<f64> {
    match dtype {
        Dtype::Bf16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        Dtype::Fp16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        Dtype::F32 | Dtype::Tf32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        Dtype::Fp8 => bytes.iter().map(|b| fp8::decode_e4m3(*b)).collect(),
    }
}

/// Frobenius-norm relative error ‖got − want‖ / ‖want‖.
pub fn rel_error(got: &[f64], want: &[f64]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (g, w) in got.iter().zip(want) {
        num += (g - w) * (g - w);
        den += w * w;
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// The spot check's limit on the relative error of a dtype.
///
/// tf32: the reference multiplies the inputs rounded to tf32 (10 explicit
/// mantissa bits, nearest-even, [`tf32_round`]), so a device that rounds
/// the same way differs only by f32 accumulation (~1e-6). Whether Hopper's
/// tensor cores round or truncate f32 inputs is not documented; truncation
/// shrinks every input by up to one tf32 ulp (2⁻¹⁰ relative, biased, so it
/// does not cancel) and gives 7.8e-4 on the check's fixed data, while a GEMM
/// that silently ran with bf16 inputs (e.g. a wrong compute-type value,
/// `FAST_16BF` is 75; `FAST_TF32` is 77) gives 2.2e-3 (both computed
/// in `tf32_truncation_passes_and_bf16_does_not`). 1.5e-3 sits between
/// them with about 1.5× room on each side; the old 1e-3 left truncation
/// only ~25 %.
pub fn spot_tolerance(d: Dtype) -> f64 {
    match d {
        Dtype::Bf16 | Dtype::Fp16 | Dtype::Fp8 => 1e-2,
        Dtype::Tf32 => 1.5e-3,
        Dtype::F32 | Dtype::F64 => 1e-5,
    }
}

/// `x` rounded to tf32 (f32 with 10 explicit mantissa bits), to nearest,
/// ties to even, as cuBLAS documents the down-conversion of
/// `CUBLAS_COMPUTE_32F_FAST_TF32`. Finite inputs only (the check's data).
pub fn tf32_round(x: f32) -> f32 {
    const DROP: u32 = 13; // 23 − 10 mantissa bits
    let u = x.to_bits();
    let lsb = (u >> DROP) & 1;
    f32::from_bits((u + ((1 << (DROP - 1)) - 1) + lsb) & !((1 << DROP) - 1))
}

/// xorshift64*: values in ±[1/64, 1], never zero.
pub(crate) fn random_values(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let x = (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
            let v = x * 2.0 - 1.0;
            if v.abs() >= 1.0 / 64.0 {
                v
            } else {
                v.signum() / 64.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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

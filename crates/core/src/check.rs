//! The all-reduce correctness check: every rank fills its gradient buckets
//! with small integers that depend on the rank and the element index, so the
//! reduced sum of every element is known in closed form and exact in every
//! gradient dtype for realistic rank counts (|sum| ≤ 2·ranks, exact in bf16
//! up to 128 ranks and in f32 up to 2²² ranks; beyond that the comparison
//! allows the dtype's rounding).
//!
//! Like nccl-tests' `#wrong`, the result is the number of elements that
//! differ from the expected sum.

/// Period of the pattern in the rank.
const PERIOD: u64 = 5;

/// Value rank `rank` puts in element `index` of bucket `bucket`: one of
/// −2, −1, 0, 1, 2.
pub fn pattern(rank: u64, bucket: u64, index: u64) -> f64 {
    let v = (index.wrapping_mul(31) ^ bucket.wrapping_mul(7)).wrapping_add(rank.wrapping_mul(17))
        % PERIOD;
    v as f64 - 2.0
}

/// Sum over ranks 0..`ranks` of [`pattern`] for one element, in O(PERIOD).
pub fn expected_sum(ranks: u64, bucket: u64, index: u64) -> f64 {
    // Ranks r and r + PERIOD give the same value (17·PERIOD ≡ 0 mod PERIOD).
    let full = ranks / PERIOD;
    let rest = ranks % PERIOD;
    let mut sum = 0.0;
    for r in 0..PERIOD {
        let count = full + u64::from(r < rest);
        sum += count as f64 * pattern(r, bucket, index);
    }
    sum
}

/// Tolerance for comparing a reduced element to its expected sum in a dtype
/// with `mantissa_bits` explicit mantissa bits: exact while the sum's bound
/// fits the mantissa, else the rounding of each partial sum.
pub fn tolerance(ranks: u64, mantissa_bits: u32) -> f64 {
    let bound = 2.0 * ranks as f64;
    let exact_up_to = 2f64.powi(mantissa_bits as i32 + 1);
    if bound <= exact_up_to {
        0.0
    } else {
        bound / exact_up_to * ranks as f64
    }
}

/// Counts elements of `values` (bucket `bucket`, starting at element
/// `offset`) that differ from the expected sum over `ranks` by more than `tol`.
pub fn count_wrong(
    values: impl IntoIterator<Item = f64>,
    ranks: u64,
    bucket: u64,
    offset: u64,
    tol: f64,
) -> u64 {
    values
        .into_iter()
        .enumerate()
        .filter(|(i, v)| {
            let want = expected_sum(ranks, bucket, offset + *i as u64);
            v.is_nan() || (v - want).abs() > tol
        })
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_sum_matches_brute_force() {
        for ranks in [1u64, 2, 3, 5, 7, 16, 33] {
            for bucket in 0..3 {
                for i in 0..50 {
                    let brute: f64 = (0..ranks).map(|r| pattern(r, bucket, i)).sum();
                    assert_eq!(expected_sum(ranks, bucket, i), brute, "ranks {ranks} i {i}");
                }
            }
        }
    }

    #[test]
    fn pattern_is_not_all_zero_and_varies_by_rank() {
        let v: Vec<f64> = (0..100).map(|i| pattern(0, 0, i)).collect();
        assert!(v.iter().filter(|x| **x != 0.0).count() > 60);
        assert_ne!(pattern(0, 0, 0), pattern(1, 0, 0));
    }

    #[test]
    fn planted_error_is_counted() {
        let ranks = 4;
        let mut reduced: Vec<f64> = (0..1000).map(|i| expected_sum(ranks, 2, 10 + i)).collect();
        assert_eq!(count_wrong(reduced.iter().copied(), ranks, 2, 10, 0.0), 0);
        reduced[123] += 1.0;
        reduced[7] = f64::NAN;
        assert_eq!(count_wrong(reduced.iter().copied(), ranks, 2, 10, 0.0), 2);
    }

    #[test]
    fn tolerance_is_zero_while_exact() {
        assert_eq!(tolerance(128, 7), 0.0); // bf16: |sum| ≤ 256 exact
        assert!(tolerance(1024, 7) > 0.0);
        assert_eq!(tolerance(1 << 20, 23), 0.0);
    }
}

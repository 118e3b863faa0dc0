//! Order statistics over samples. Empty input gives `None`, never a panic;
//! NaNs are ordered last so they cannot hide a real value.

use serde::{Deserialize, Serialize};

/// Median, 95th percentile and minimum of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Median (mean of the two middle samples for an even count).
    pub median: f64,
    /// 95th percentile, linear interpolation between closest ranks.
    pub p95: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Number of samples.
    pub count: usize,
}

fn sorted(values: &[f64]) -> Vec<f64> {
    // total_cmp alone would put negative NaNs first; NaNs of either sign go last.
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v.extend(values.iter().copied().filter(|x| x.is_nan()));
    v
}

/// Percentile `q` in [0, 1] of already sorted values (linear interpolation).
fn percentile_sorted(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

/// Percentile `q` in [0, 1] (linear interpolation between closest ranks).
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    percentile_sorted(&sorted(values), q)
}

/// Median.
pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 0.5)
}

/// A distribution-free 95 % confidence interval for the median: the order
/// statistics `x(k)` and `x(n+1−k)` of the sorted samples, with `k` the
/// largest rank such that a Binomial(n, ½) variable falls below `k` with
/// probability at most 2.5 % (the textbook sign-test interval; no
/// assumption about the shape of the distribution, exact coverage below).
/// With fewer than 6 samples no such `k` exists: the interval is then
/// [min, max], whose coverage 1 − 2^(1−n) is below 95 % and reported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MedianCi {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// The interval's exact coverage probability (≥ 0.95 from 6 samples on).
    pub coverage: f64,
}

/// Resamples of [`mean_ci95`]'s bootstrap.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// A 95 % percentile-bootstrap interval `[lo, hi]` of the mean (for
/// figures defined by a total, like sustained MFU, which an interval of the
/// median does not describe): [`BOOTSTRAP_RESAMPLES`] resamples with
/// replacement drawn by a fixed-seed generator, so the same values always
/// give the same interval. None with fewer than 2 finite values.
pub fn mean_ci95(values: &[f64]) -> Option<[f64; 2]> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n < 2 {
        return None;
    }
    // xorshift64*: deterministic, no dependency, good enough to resample.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| (0..n).map(|_| v[(next() % n as u64) as usize]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    Some([
        percentile_sorted(&means, 0.025)?,
        percentile_sorted(&means, 0.975)?,
    ])
}

/// The exact two-sided sign test of "the median is `center`": with `a`
/// values above and `b` below (ties dropped), 2 · P(Binomial(a + b, ½) ≤
/// min(a, b)), at most 1. The test that [`median_ci95`]'s interval
/// inverts. 1 without values off `center`.
pub fn sign_test_p(values: &[f64], center: f64) -> f64 {
    let above = values.iter().filter(|&&x| x > center).count();
    let below = values.iter().filter(|&&x| x < center).count();
    let n = above + below;
    if n == 0 {
        return 1.0;
    }
    let k = above.min(below);
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_pmf = ln_half_n;
    let mut tail = 0.0;
    for j in 0..=k {
        tail += ln_pmf.exp();
        ln_pmf += ((n - j) as f64).ln() - ((j + 1) as f64).ln();
    }
    (2.0 * tail).min(1.0)
}

/// Holm's step-down correction at family-wise level `alpha`: which of the
/// hypotheses with p-values `p` are rejected (same order). Sorted
/// ascending, the k-th smallest (0-based) is rejected when it and every
/// smaller one are ≤ alpha / (m − k).
pub fn holm_reject(p: &[f64], alpha: f64) -> Vec<bool> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![false; m];
    for (k, &i) in order.iter().enumerate() {
        if p[i] <= alpha / (m - k) as f64 {
            out[i] = true;
        } else {
            break;
        }
    }
    out
}

/// Bootstrap of two independent samples' medians: [`BOOTSTRAP_RESAMPLES`]
/// pairs (median of a resample of `x`, median of a resample of `y`), drawn
/// by a fixed-seed generator (the same inputs give the same pairs). Empty
/// when either sample is.
pub fn bootstrap_medians(x: &[f64], y: &[f64]) -> Vec<(f64, f64)> {
    if x.is_empty() || y.is_empty() {
        return Vec::new();
    }
    let mut state: u64 = 0xD1B5_4A32_D192_ED03;
    let mut pick = |v: &[f64]| -> f64 {
        let mut r: Vec<f64> = (0..v.len())
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                v[(state.wrapping_mul(0x2545_F491_4F6C_DD1D) % v.len() as u64) as usize]
            })
            .collect();
        r.sort_by(f64::total_cmp);
        percentile_sorted(&r, 0.5).unwrap_or(f64::NAN)
    };
    (0..BOOTSTRAP_RESAMPLES)
        .map(|_| (pick(x), pick(y)))
        .collect()
}

/// The central interval `[lo, hi]` holding `1 − alpha` of `values`
/// (percentiles α/2 and 1 − α/2); None when empty.
pub fn central_interval(values: &[f64], alpha: f64) -> Option<[f64; 2]> {
    let v = sorted(values);
    let v: Vec<f64> = v.into_iter().filter(|x| !x.is_nan()).collect();
    Some([
        percentile_sorted(&v, alpha / 2.0)?,
        percentile_sorted(&v, 1.0 - alpha / 2.0)?,
    ])
}

/// A 95 % percentile-bootstrap interval of median(num) / median(den) over
/// paired samples (index i of both is one round; rounds are resampled
/// whole): [`BOOTSTRAP_RESAMPLES`] resamples, fixed seed. None with fewer
/// than 2 pairs or when no resample has a non-zero denominator.
pub fn ratio_of_medians_ci95(num: &[f64], den: &[f64]) -> Option<[f64; 2]> {
    let n = num.len().min(den.len());
    if n < 2 {
        return None;
    }
    let mut state: u64 = 0x94D0_49BB_1331_11EB;
    let mut ratios = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    for _ in 0..BOOTSTRAP_RESAMPLES {
        let idx: Vec<usize> = (0..n)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
            })
            .collect();
        let a: Vec<f64> = idx.iter().map(|&i| num[i]).collect();
        let b: Vec<f64> = idx.iter().map(|&i| den[i]).collect();
        if let (Some(a), Some(b)) = (median(&a), median(&b)) {
            if b != 0.0 {
                ratios.push(a / b);
            }
        }
    }
    central_interval(&ratios, 0.05)
}

/// A monotonic trend in a series taken in order (e.g. step times over the
/// rounds of a run): its size and whether it is beyond noise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Theil–Sen slope × (n − 1) / median: the change over the series as
    /// a fraction of its median (+0.04: 4 % slower at the end).
    pub relative_change: f64,
    /// Two-sided p-value of the Mann–Kendall test (normal approximation).
    pub p: f64,
}

/// The trend of `values` in order ([`Trend`]); None below 8 values (the
/// test's normal approximation needs them) or with a zero median.
pub fn trend(values: &[f64]) -> Option<Trend> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n < 8 {
        return None;
    }
    let mut s = 0.0f64;
    let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let d = v[j] - v[i];
            s += if d > 0.0 {
                1.0
            } else if d < 0.0 {
                -1.0
            } else {
                0.0
            };
            slopes.push(d / (j - i) as f64);
        }
    }
    let nf = n as f64;
    let var = nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0;
    let z = if s > 0.0 {
        (s - 1.0) / var.sqrt()
    } else if s < 0.0 {
        (s + 1.0) / var.sqrt()
    } else {
        0.0
    };
    let med = median(&v)?;
    if med == 0.0 {
        return None;
    }
    Some(Trend {
        relative_change: median(&slopes)? * (nf - 1.0) / med,
        p: (2.0 * normal_upper_tail(z.abs())).min(1.0),
    })
}

/// P(Z > z) of a standard normal (Abramowitz & Stegun 7.1.26, error below
/// 1.5e-7).
pub fn normal_upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if x >= 0.0 {
        erfc / 2.0
    } else {
        1.0 - erfc / 2.0
    }
}

/// Smallest sample count for which [`median_ci95`] reaches 95 % coverage.
pub const MIN_SAMPLES_CI95: usize = 6;

/// The 95 % order-statistic interval of the median ([`MedianCi`]); `None`
/// without samples. NaNs are ignored.
pub fn median_ci95(values: &[f64]) -> Option<MedianCi> {
    let v: Vec<f64> = sorted(values).into_iter().filter(|x| !x.is_nan()).collect();
    let n = v.len();
    if n == 0 {
        return None;
    }
    // P(B ≤ j) for B ~ Binomial(n, ½), accumulated from the pmf in log space
    // (2^−n underflows for long runs).
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_pmf = ln_half_n; // j = 0
    let mut cdf = 0.0;
    let mut k = 0usize; // 1-based order statistic; 0 = none found
    for j in 0..n / 2 {
        cdf += ln_pmf.exp();
        if cdf > 0.025 {
            break;
        }
        // B ≤ j has probability ≤ 2.5 %: x(j+1) can be the lower bound.
        k = j + 1;
        ln_pmf += ((n - j) as f64).ln() - ((j + 1) as f64).ln();
    }
    if k == 0 {
        let coverage = 1.0 - 2f64.powi(1 - n as i32);
        return Some(MedianCi {
            lo: v[0],
            hi: v[n - 1],
            coverage: coverage.max(0.0),
        });
    }
    // Coverage = 1 − 2·P(B ≤ k−1).
    let mut tail = 0.0;
    let mut ln_pmf = ln_half_n;
    for j in 0..k {
        tail += ln_pmf.exp();
        ln_pmf += ((n - j) as f64).ln() - ((j + 1) as f64).ln();
    }
    Some(MedianCi {
        lo: v[k - 1],
        hi: v[n - k],
        coverage: 1.0 - 2.0 * tail,
    })
}

impl Stats {
    /// Statistics of the samples, `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Stats> {
        let v = sorted(values);
        Some(Stats {
            median: percentile_sorted(&v, 0.5)?,
            p95: percentile_sorted(&v, 0.95)?,
            min: v[0],
            max: v[v.len() - 1],
            count: v.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_test_and_holm_known_answers() {
        // 6 of 6 above: 2 · 2⁻⁶ = 0.03125.
        assert!((sign_test_p(&[1.1; 6], 1.0) - 0.031_25).abs() < 1e-12);
        // 5 of 6 above: 2 · 7/64 = 0.21875.
        let v = [1.1, 1.2, 1.3, 1.1, 1.2, 0.9];
        assert!((sign_test_p(&v, 1.0) - 0.218_75).abs() < 1e-12);
        // Ties are dropped; nothing off the centre: 1.
        assert_eq!(sign_test_p(&[1.0, 1.0], 1.0), 1.0);
        // Balanced: capped at 1.
        assert_eq!(sign_test_p(&[0.9, 1.1], 1.0), 1.0);
        // Holm at 5 %: sorted 0.01 ≤ 0.05/3, 0.02 ≤ 0.05/2, 0.04 ≤ 0.05/1.
        assert_eq!(
            holm_reject(&[0.04, 0.01, 0.02], 0.05),
            vec![true, true, true]
        );
        // 0.03 > 0.05/2 stops the steps after the first.
        assert_eq!(
            holm_reject(&[0.03, 0.01, 0.04], 0.05),
            vec![false, true, false]
        );
        assert!(holm_reject(&[], 0.05).is_empty());
    }

    #[test]
    fn trend_known_answers() {
        // A steady 1 % rise per value over 12 values: 11 % over the series
        // (relative to the median 1.055), every pair rising: p tiny.
        let rising: Vec<f64> = (0..12).map(|i| 1.0 + 0.01 * i as f64).collect();
        let t = trend(&rising).unwrap();
        assert!((t.relative_change - 0.11 / 1.055).abs() < 1e-9, "{t:?}");
        assert!(t.p < 1e-4, "{t:?}");
        // Alternating noise around a level: no trend.
        let flat: Vec<f64> = (0..12)
            .map(|i| if i % 2 == 0 { 1.01 } else { 0.99 })
            .collect();
        let t = trend(&flat).unwrap();
        assert!(t.p > 0.5, "{t:?}");
        assert_eq!(trend(&[1.0; 5]), None);
        // Φ tail known values.
        assert!((normal_upper_tail(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_upper_tail(0.0) - 0.5).abs() < 1e-7);
    }

    #[test]
    fn mean_bootstrap_interval_brackets_the_mean_and_is_repeatable() {
        let v: Vec<f64> = (0..20).map(|i| 10.0 + (i % 5) as f64 * 0.1).collect();
        let mean = v.iter().sum::<f64>() / 20.0;
        let [lo, hi] = mean_ci95(&v).unwrap();
        assert!(lo < mean && mean < hi, "{lo} {mean} {hi}");
        // Within the range of the values and narrower than it.
        assert!(lo > 10.0 && hi < 10.4, "{lo} {hi}");
        assert_eq!(mean_ci95(&v), Some([lo, hi]));
        // Constant values: a point.
        assert_eq!(mean_ci95(&[2.0; 8]), Some([2.0, 2.0]));
        assert_eq!(mean_ci95(&[1.0]), None);
    }

    #[test]
    fn known_answers() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let v: Vec<f64> = (1..=21).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.95), Some(20.0));
        let s = Stats::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.count), (3.0, 1.0, 5.0, 3));
        assert!((s.p95 - 4.8).abs() < 1e-12);
        // NaNs of either sign sort last, so they cannot hide the minimum.
        let v = sorted(&[-f64::NAN, 2.0, 1.0, f64::NAN]);
        assert_eq!(&v[..2], &[1.0, 2.0]);
        assert!(v[2].is_nan() && v[3].is_nan());
        assert_eq!(Stats::of(&[-f64::NAN, 2.0, 1.0]).unwrap().min, 1.0);
    }

    #[test]
    fn median_ci_known_answers() {
        // n = 10: P(B ≤ 1) = 11/1024 ≤ 2.5 % < P(B ≤ 2) = 56/1024, so the
        // interval is [x(2), x(9)] with coverage 1 − 22/1024.
        let v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let c = median_ci95(&v).unwrap();
        assert_eq!((c.lo, c.hi), (2.0, 9.0));
        assert!((c.coverage - (1.0 - 22.0 / 1024.0)).abs() < 1e-12);
        // n = 6: [x(1), x(6)], coverage 1 − 2/64.
        let c = median_ci95(&[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]).unwrap();
        assert_eq!((c.lo, c.hi), (1.0, 6.0));
        assert!((c.coverage - (1.0 - 2.0 / 64.0)).abs() < 1e-12);
        // n = 5: too few for 95 %: [min, max] at 1 − 2/32 = 93.75 %.
        let c = median_ci95(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((c.lo, c.hi, c.coverage), (1.0, 5.0, 0.9375));
        // n = 1: a point, coverage 0.
        let c = median_ci95(&[7.0]).unwrap();
        assert_eq!((c.lo, c.hi, c.coverage), (7.0, 7.0, 0.0));
        assert_eq!(median_ci95(&[]), None);
        // n = 100: the textbook ranks 40 and 61 (coverage 96.5 %).
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let c = median_ci95(&v).unwrap();
        assert_eq!((c.lo, c.hi), (40.0, 61.0));
        assert!((c.coverage - 0.9648).abs() < 1e-3, "{}", c.coverage);
        // Long runs do not underflow.
        let v: Vec<f64> = (0..100_000).map(f64::from).collect();
        let c = median_ci95(&v).unwrap();
        assert!(c.lo < 50_000.0 && c.hi > 50_000.0 && c.coverage >= 0.95);
        // NaNs are ignored.
        let c = median_ci95(&[f64::NAN, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!((c.lo, c.hi), (1.0, 6.0));
    }
}

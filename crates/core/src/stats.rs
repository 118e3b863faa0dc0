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
}

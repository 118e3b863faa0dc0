//! Expected values: what a figure of the acceptance suite should be, and
//! where that expectation comes from, so that a device reads "80 % of
//! expected" and not only "90 % of the median device".
//!
//! Built for the **device GEMM rate**: the device's peak
//! (`run.peak_tflops`, else the datasheet's dense peak for the run's
//! dtype) × an achievable fraction per dtype ([`gemm_achievable_fraction`]):
//! what a large dense GEMM of a vendor BLAS reaches on a healthy device, an
//! assumption the source text names. No peak (a CPU without
//! `run.peak_tflops`): no expected value, said so, never a made-up one.
//!
//! Not built: expected values of links and collectives. An α-β fit of the
//! sweep was tried and left out: on the CPU test bed an unweighted fit of
//! every table (each collective with MPI's own algorithms) put the
//! latency-bound sizes at 0.1 % of "expected" and the large ones at up to
//! 230 %, which says nothing about the hardware. The NIC line rate needs
//! the ethtool ioctl (veth pairs show no speed inside their namespace).
//!
//! Pure: the worker fills a record before each save ([`fill_expected`]).

use serde::{Deserialize, Serialize};

use super::{AcceptRecord, DeviceResult};
use crate::config::Dtype;
use crate::result::PeakSource;
use crate::stats;

/// An expected figure beside a measured one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    /// The expected figure, in the measured figure's unit.
    pub expected: f64,
    /// Where it comes from, in words.
    pub expected_source: String,
    /// The measured figure as a percentage of `expected`.
    pub percent_of_expected: f64,
    /// Its 95 % interval, where the measured figure or the expectation has
    /// one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_ci95: Option<[f64; 2]>,
}

/// The fraction of the dense peak a large GEMM of a vendor BLAS reaches on
/// a healthy device, per dtype (cuBLAS on H100 SXM reaches about 700–750
/// of 989 dense BF16 TFLOP/s; FP8 and TF32 kernels less of theirs; FP32
/// and FP64 without tensor cores most of theirs). An assumption, stated in
/// every source text and in docs/accept.md.
pub fn gemm_achievable_fraction(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::F64 => 0.90,
        Dtype::F32 => 0.85,
        Dtype::Tf32 => 0.70,
        Dtype::Bf16 | Dtype::Fp16 => 0.75,
        Dtype::Fp8 => 0.65,
    }
}

/// A device's expected GEMM rate (TFLOP/s) and its rate as % of it; the
/// interval from its step times' median interval. None without a peak.
pub fn device_expected(d: &DeviceResult, dtype: Dtype) -> Option<Expected> {
    let peak = d.peak_tflops.filter(|p| p.is_finite() && *p > 0.0)?;
    let fraction = gemm_achievable_fraction(dtype);
    let expected = peak * fraction;
    let of = match d.peak_source {
        Some(PeakSource::Config) => "run.peak_tflops",
        _ => "the datasheet's",
    };
    let percent = d.tflops / expected * 100.0;
    // The rate is FLOPs / median step: its interval is the median step's
    // (a 95 % one: 6 steps or more), turned around.
    let median = stats::median(&d.step_time_s);
    let ci = stats::median_ci95(&d.step_time_s)
        .filter(|c| c.lo > 0.0 && c.coverage >= 0.95)
        .zip(median)
        .map(|(c, m)| [percent * m / c.hi, percent * m / c.lo]);
    Some(Expected {
        expected,
        expected_source: format!(
            "{of} {} TFLOP/s × {fraction} (the achievable fraction assumed for {dtype})",
            tflops_text(peak)
        ),
        percent_of_expected: percent,
        percent_ci95: ci,
    })
}

/// Fills the expected value of every device that ran (replacing any: the
/// record is saved after every stage).
pub fn fill_expected(rec: &mut AcceptRecord, dtype: Dtype) {
    if let Some(d) = rec.device.as_mut() {
        for dev in &mut d.devices {
            dev.expected = device_expected(dev, dtype);
        }
    }
}

/// A rate in TFLOP/s with enough digits for a GPU (989.0) and a CPU core
/// (0.0523).
pub fn tflops_text(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.1}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(tflops: f64, steps: &[f64], peak: Option<f64>) -> DeviceResult {
        DeviceResult {
            rank: 0,
            host: "a".into(),
            local_rank: 0,
            device: "GPU 0".into(),
            device_name: "H100".into(),
            step_s: stats::median(steps).unwrap_or(0.0),
            step_time_s: steps.to_vec(),
            tflops,
            spec_peak_tflops: peak,
            peak_tflops: peak,
            peak_source: peak.map(|_| PeakSource::Spec),
            telemetry: Default::default(),
            gpu: None,
            expected: None,
        }
    }

    #[test]
    fn the_device_expectation_is_the_peak_times_the_fraction_for_the_dtype() {
        // 593.4 TFLOP/s on a 989 TFLOP/s device in BF16: expected 741.75,
        // 80 %. Six steps around 1 s: a 95 % interval, the median step's
        // [0.99, 1.01] turned around.
        let steps = [1.0, 1.0, 0.99, 1.01, 1.0, 1.0];
        let e = device_expected(&device(593.4, &steps, Some(989.0)), Dtype::Bf16).unwrap();
        assert!((e.expected - 741.75).abs() < 1e-9);
        assert!((e.percent_of_expected - 80.0).abs() < 1e-9);
        let [lo, hi] = e.percent_ci95.unwrap();
        assert!(
            (lo - 80.0 / 1.01).abs() < 1e-9 && (hi - 80.0 / 0.99).abs() < 1e-9,
            "{lo} {hi}"
        );
        // Fewer than 6 steps: no 95 % interval.
        let e = device_expected(&device(593.4, &steps[..3], Some(989.0)), Dtype::Bf16).unwrap();
        assert_eq!(e.percent_ci95, None);
        assert!(
            e.expected_source.contains("989.0 TFLOP/s × 0.75"),
            "{}",
            e.expected_source
        );
        // FP8 assumes less of its peak.
        let e = device_expected(&device(593.4, &steps, Some(989.0)), Dtype::Fp8).unwrap();
        assert!((e.expected - 989.0 * 0.65).abs() < 1e-9);
        // A CPU core's peak keeps its digits.
        let mut cpu = device(0.0376, &steps, Some(0.05));
        cpu.peak_source = Some(PeakSource::Config);
        let e = device_expected(&cpu, Dtype::F32).unwrap();
        assert!(
            e.expected_source
                .starts_with("run.peak_tflops 0.0500 TFLOP/s × 0.85"),
            "{}",
            e.expected_source
        );
        assert_eq!(tflops_text(989.0), "989.0");
        assert_eq!(tflops_text(2.5), "2.50");
        // No peak: no expectation.
        assert_eq!(
            device_expected(&device(1.0, &steps, None), Dtype::F32),
            None
        );
    }
}

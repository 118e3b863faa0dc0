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
//! Built for **links** too: a pair's rate against the line rate of the NIC
//! it can use, the slower end's fastest NIC (each node's NICs and their
//! line rates are config-stage facts, `nic.<name>.speed_mbps`, read with
//! the ethtool ioctl in the rank's own network namespace). One exchange
//! between two nodes goes through one NIC on each (MPI's TCP path; on a
//! multi-rail node each rail is its own NIC), so the faster NIC of the pair
//! cannot be reached. No line rate on an end (a driver without one, or no
//! config stage in the run): no expected value.
//!
//! And for the **sweep**: each table's largest size against the line rate
//! of the slowest node's fastest NIC ([`sweep_expected`]), and an α-β fit
//! per table, weighted by relative error ([`alpha_beta`]): the fabric's
//! latency and bandwidth as that collective sees them, and the size that
//! strays furthest from the curve. (An earlier fit, unweighted, through
//! the origin and over every table at once, put the latency-bound sizes at
//! 0.1 % of "expected" and was left out.) Not built: an expected value for
//! the node stage (intra-node: no NIC bounds it).
//!
//! Pure: the worker fills a record before each save ([`fill_expected`]).

use serde::{Deserialize, Serialize};

use super::{AcceptRecord, DeviceResult, PairResult};
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

/// A node's fastest NIC with a known line rate, from its config facts
/// (`nic.<name>.speed_mbps`): (name, Mb/s); the first name on a tie.
pub fn fastest_nic(facts: &std::collections::BTreeMap<String, String>) -> Option<(String, u64)> {
    facts
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("nic.")?.strip_suffix(".speed_mbps")?;
            Some((name.to_string(), v.parse::<u64>().ok().filter(|m| *m > 0)?))
        })
        .fold(None, |best: Option<(String, u64)>, nic| match best {
            Some(b) if b.1 >= nic.1 => Some(b),
            _ => Some(nic),
        })
}

/// A link's expected rate, GB/s each way: the line rate of the slower
/// end's fastest NIC (`nics`: each end's host and fastest NIC), Mb/s / 8000
/// (full duplex: the line rate in each direction at once). No interval:
/// the link's figure is its fastest exchange, not a median. On a rail
/// (`rail`), each end's NIC is the rail's, not its fastest.
pub fn link_expected(
    p: &PairResult,
    nics: [(&str, Option<&(String, u64)>); 2],
    rail: bool,
) -> Option<Expected> {
    let [(ha, na), (hb, nb)] = nics;
    let (na, nb) = (na?, nb?);
    let (host, (nic, mbps)) = if nb.1 < na.1 { (hb, nb) } else { (ha, na) };
    let expected = *mbps as f64 / 8000.0;
    Some(Expected {
        expected,
        expected_source: format!(
            "NIC line rate {mbps} Mb/s: {host} {nic}, {}",
            if rail {
                "the rail's slower end"
            } else {
                "the slower end's fastest NIC"
            }
        ),
        percent_of_expected: p.gbps / expected * 100.0,
        percent_ci95: None,
    })
}

/// A sweep table's times fitted to t(n) = α + β·n (n the collective's
/// bytes), each row weighted by 1/t² so that every size counts by its
/// relative error (an unweighted fit is all large sizes, and puts the
/// small ones at 0.1 % of the curve). What it gives is the fabric's
/// latency and bandwidth as this collective sees them; it judges nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlphaBeta {
    /// The fixed cost per call, microseconds (≥ 0).
    pub alpha_us: f64,
    /// The bus bandwidth the size term tends to (the collective's bus
    /// factor / β), GB/s.
    pub busbw_gbps: f64,
    /// The largest |fit − measured| / measured over the rows.
    pub max_deviation: f64,
    /// The size where it is, bytes.
    pub max_deviation_at: u64,
}

/// Fits [`AlphaBeta`] to `rows` (at least 3 with positive times); `factor`
/// is the table's bus factor (busbw / algbw). None when the fit has no
/// positive bandwidth term. Known answers in the tests.
pub fn alpha_beta(rows: &[super::SweepRow], factor: f64) -> Option<AlphaBeta> {
    let pts: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.time_us > 0.0 && r.size_bytes > 0)
        .map(|r| (r.size_bytes as f64, r.time_us * 1e-6))
        .collect();
    if pts.len() < 3 {
        return None;
    }
    let (mut sw, mut swn, mut swnn, mut swt, mut swnt) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(n, t) in &pts {
        let w = 1.0 / (t * t);
        sw += w;
        swn += w * n;
        swnn += w * n * n;
        swt += w * t;
        swnt += w * n * t;
    }
    let det = sw * swnn - swn * swn;
    let (mut alpha, mut beta) = if det.abs() > 0.0 {
        (
            (swt * swnn - swn * swnt) / det,
            (sw * swnt - swn * swt) / det,
        )
    } else {
        (0.0, 0.0)
    };
    if alpha < 0.0 {
        // No negative latency: the best fit through the origin.
        alpha = 0.0;
        beta = swnt / swnn;
    }
    if !(beta.is_finite() && beta > 0.0) {
        return None;
    }
    let (dev, at) = pts
        .iter()
        .map(|&(n, t)| (((alpha + beta * n) - t).abs() / t, n as u64))
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a });
    Some(AlphaBeta {
        alpha_us: alpha * 1e6,
        busbw_gbps: factor / beta / 1e9,
        max_deviation: dev,
        max_deviation_at: at,
    })
}

/// The expected busbw of a collective across nodes: the line rate of the
/// slowest node's fastest NIC (`nics`: host and fastest NIC of each node
/// that took part), Mb/s / 8000: a ring's bus bandwidth cannot pass the
/// slowest link it crosses. None on one node or with an unknown rate.
pub fn sweep_expected(
    busbw_gbps: f64,
    nics: &[(&str, Option<&(String, u64)>)],
) -> Option<Expected> {
    if nics.len() < 2 {
        return None;
    }
    let mut slowest: Option<(&str, &(String, u64))> = None;
    for &(host, nic) in nics {
        let nic = nic?;
        if slowest.is_none_or(|(_, s)| nic.1 < s.1) {
            slowest = Some((host, nic));
        }
    }
    let (host, (nic, mbps)) = slowest?;
    let expected = *mbps as f64 / 8000.0;
    Some(Expected {
        expected,
        expected_source: format!(
            "NIC line rate {mbps} Mb/s: {host} {nic}, the slowest node's fastest NIC"
        ),
        percent_of_expected: busbw_gbps / expected * 100.0,
        percent_ci95: None,
    })
}

/// Fills the expected value of every device that ran and of every measured
/// link, and each sweep table's fit and expected busbw (replacing any: the
/// record is saved after every stage).
pub fn fill_expected(rec: &mut AcceptRecord, dtype: Dtype) {
    if let Some(d) = rec.device.as_mut() {
        for dev in &mut d.devices {
            dev.expected = device_expected(dev, dtype);
        }
    }
    let nics: std::collections::BTreeMap<&str, (String, u64)> = rec
        .config
        .iter()
        .flat_map(|c| &c.nodes)
        .filter_map(|n| Some((n.host.as_str(), fastest_nic(&n.facts)?)))
        .collect();
    if let Some(w) = rec.sweep.as_mut() {
        // The nodes that took part: all but those left out of the sweep.
        let out: Vec<&str> = rec
            .left_out
            .iter()
            .filter(|lo| lo.stages.contains(&super::Stage::Sweep))
            .flat_map(|lo| lo.hosts.iter().map(String::as_str))
            .collect();
        let took_part: Vec<(&str, Option<&(String, u64)>)> = rec
            .hosts
            .iter()
            .map(String::as_str)
            .filter(|h| !out.contains(h))
            .map(|h| (h, nics.get(h)))
            .collect();
        for tb in &mut w.tables {
            let factor = crate::metrics::busbw_factor(tb.collective, w.ranks);
            tb.fit = alpha_beta(&tb.rows, factor);
            tb.expected = tb
                .rows
                .last()
                .and_then(|r| sweep_expected(r.busbw_gbps, &took_part));
        }
    }
    let Some(l) = rec.link.as_mut() else {
        return;
    };
    for p in &mut l.pairs {
        let end = |i: usize| {
            let h = l.hosts.get(i).map(String::as_str).unwrap_or("");
            (h, nics.get(h))
        };
        p.expected = link_expected(p, [end(p.a), end(p.b)], false);
    }
    // A rail's links go through that rail's NIC on both ends.
    for rail in &mut l.rails {
        let key = format!("nic.{}.speed_mbps", rail.rail);
        let rates: std::collections::BTreeMap<&str, (String, u64)> = rec
            .config
            .iter()
            .flat_map(|c| &c.nodes)
            .filter_map(|n| {
                let m = n.facts.get(&key)?.parse::<u64>().ok().filter(|m| *m > 0)?;
                Some((n.host.as_str(), (rail.rail.clone(), m)))
            })
            .collect();
        for p in &mut rail.pairs {
            let end = |i: usize| {
                let h = l.hosts.get(i).map(String::as_str).unwrap_or("");
                (h, rates.get(h))
            };
            p.expected = link_expected(p, [end(p.a), end(p.b)], true);
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

    /// Times of exactly 50 µs + n / (1 GB/s): the fit gives them back
    /// (an all-reduce over 4 ranks: busbw factor 1.5); one size twice as
    /// slow is the largest deviation, and barely moves the fit.
    #[test]
    fn the_alpha_beta_fit_gives_back_known_latency_and_bandwidth() {
        use crate::accept::{Collective, SweepRow};
        let sizes = [8u64, 1 << 10, 1 << 16, 1 << 20, 1 << 24];
        let rows = |slow: Option<u64>| -> Vec<SweepRow> {
            sizes
                .iter()
                .map(|&n| {
                    let t = 50e-6 + n as f64 / 1e9;
                    let t = if Some(n) == slow { 2.0 * t } else { t };
                    SweepRow::new(Collective::AllReduce, 4, n, n / 4, t, 0)
                })
                .collect()
        };
        let f = alpha_beta(&rows(None), 1.5).unwrap();
        assert!((f.alpha_us - 50.0).abs() < 1e-6, "{f:?}");
        assert!((f.busbw_gbps - 1.5).abs() < 1e-9, "{f:?}");
        assert!(f.max_deviation < 1e-9, "{f:?}");
        let f = alpha_beta(&rows(Some(1 << 16)), 1.5).unwrap();
        assert_eq!(f.max_deviation_at, 1 << 16, "{f:?}");
        assert!(f.max_deviation > 0.3, "{f:?}");
        // Fewer than 3 sizes: no fit.
        assert_eq!(alpha_beta(&rows(None)[..2], 1.5), None);
        // The expected busbw is the slowest node's fastest NIC: 0.9 GB/s
        // of a 10 Gb/s NIC is 72 %; one node, or a node without a rate,
        // gives none.
        let (a, b) = (
            ("eth0".to_string(), 25_000u64),
            ("eth0".to_string(), 10_000u64),
        );
        let e = sweep_expected(0.9, &[("n1", Some(&a)), ("n2", Some(&b))]).unwrap();
        assert!((e.expected - 1.25).abs() < 1e-12 && (e.percent_of_expected - 72.0).abs() < 1e-9);
        assert_eq!(
            e.expected_source,
            "NIC line rate 10000 Mb/s: n2 eth0, the slowest node's fastest NIC"
        );
        assert_eq!(sweep_expected(0.9, &[("n1", Some(&a))]), None);
        assert_eq!(sweep_expected(0.9, &[("n1", Some(&a)), ("n2", None)]), None);
    }

    #[test]
    fn a_link_is_expected_at_the_slower_ends_fastest_nic() {
        let facts = |kv: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // The management NIC is slower; a NIC without a rate is skipped.
        let a = facts(&[
            ("nic.eno1.speed_mbps", "25000"),
            ("nic.ib0.speed_mbps", "400000"),
            ("nic.ib1.mtu", "4096"),
            ("kernel", "6.1"),
        ]);
        assert_eq!(fastest_nic(&a), Some(("ib0".to_string(), 400_000)));
        assert_eq!(fastest_nic(&facts(&[("nic.eth0.speed_mbps", "x")])), None);
        let b = facts(&[("nic.eth0.speed_mbps", "10000")]);
        let (na, nb) = (fastest_nic(&a), fastest_nic(&b));
        // 1.0 GB/s each way through a 10 Gb/s NIC: 80 % of 1.25 GB/s.
        let p = PairResult {
            a: 0,
            b: 1,
            round: 0,
            time_s: 1.0,
            best_time_s: 1.0,
            gbps: 1.0,
            expected: None,
        };
        let e = link_expected(&p, [("n1", na.as_ref()), ("n2", nb.as_ref())], false).unwrap();
        assert!((e.expected - 1.25).abs() < 1e-12);
        assert!((e.percent_of_expected - 80.0).abs() < 1e-9);
        assert_eq!(
            e.expected_source,
            "NIC line rate 10000 Mb/s: n2 eth0, the slower end's fastest NIC"
        );
        assert_eq!(e.percent_ci95, None);
        // 400 Gb/s on both ends: 50 GB/s each way.
        let e = link_expected(&p, [("n1", na.as_ref()), ("n3", na.as_ref())], true).unwrap();
        assert_eq!(
            e.expected_source,
            "NIC line rate 400000 Mb/s: n1 ib0, the rail's slower end"
        );
        assert!((e.expected - 50.0).abs() < 1e-12);
        // One end unknown: no expectation.
        assert_eq!(
            link_expected(&p, [("n1", na.as_ref()), ("n2", None)], false),
            None
        );
    }
}

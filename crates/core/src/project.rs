//! Projection of a measured run to more nodes: the link fits and the
//! replay inputs of `mfubench project` (pure math and serde types; the
//! launcher reads the runs, the worker replays the schedule).
//!
//! # How a projection is made
//!
//! 1. **Samples.** Every collective a run timed in comm mode is one sample
//!    per rank: its kind, group size `n`, bytes `S`, link class (intra-node
//!    when every rank of its group is on one host, else inter-node) and the
//!    rank's median time.
//! 2. **An α-β fit per link class.** A collective costs `k·α + w·S·β`,
//!    with NCCL's algorithm costs ([`cost`]): the ring all-reduce takes
//!    `k = 2(n−1)` latency steps and moves `w = 2(n−1)/n` of the buffer
//!    per rank; all-gather, reduce-scatter and all-to-all `k = n−1`,
//!    `w = (n−1)/n`. The fit is least squares in the two unknowns (α, β),
//!    through the origin, over every sample of the class ([`LinkFit::fit`]);
//!    its covariance gives a 95 % interval of each predicted time
//!    (Student's t on the residual degrees of freedom). A latency the data
//!    cannot resolve (fitted below 0) is refitted as 0 and said so.
//! 3. **Predicted times at N nodes** ([`LinkFit::predict`]): the faster of
//!    ring and tree (`k = 2⌈log₂ n⌉`, `w = 2`: the tree's bandwidth term is
//!    the ring's limit, its latency logarithmic) for an all-reduce, the ring
//!    for the rest; a group spanning nodes pays the inter-node fit.
//! 4. **GEMM times** are the run's own (compute mode, median over ranks;
//!    the interval spans the ranks), stretched by the compute stream's
//!    gaps (measured compute step / the sum of its GEMMs), and in
//!    overlapped mode scaled by the run's measured contention (GEMMs and
//!    collectives beside each other are slower).
//! 5. **Replay** ([`ReplaySpec`]): the worker runs its own step schedule
//!    (`schedule::run_step`, the code every run uses) on a model backend
//!    whose streams advance in virtual time by these durations, and
//!    summarises the steps with the same [`crate::result::summarize`] as a
//!    run. Three replays per node count (every duration at its low, middle
//!    and high end) bound every figure: step times grow with every
//!    duration, so the low and high replays hold the interval.
//!
//! What is not projected: waiting for peers (stragglers and skew grow with
//! N; the projection has none), congestion beyond the fitted links, and
//! algorithms other than ring and tree. A projection says so beside its
//! figures ([`Projection::assumptions`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Mode};
use crate::metrics::Collective;
use crate::result::PeakChoice;

/// Which links a collective's group crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkClass {
    /// Every rank of the group on one host (NVLink, shared memory).
    IntraNode,
    /// The group spans hosts (the network).
    InterNode,
}

impl LinkClass {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            LinkClass::IntraNode => "intra-node",
            LinkClass::InterNode => "inter-node",
        }
    }
}

/// NCCL's algorithm families the projection knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Ring: latency linear in the group size, bandwidth-optimal.
    Ring,
    /// Tree (all-reduce only): latency logarithmic in the group size.
    Tree,
}

/// The cost of one collective in latency steps and bytes on the wire per
/// byte of buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// Latency steps (each costs α).
    pub steps: f64,
    /// Bytes each rank sends per byte of buffer (each costs β).
    pub wire: f64,
}

/// The cost of `kind` on a group of `n` with `algo`; None when `algo`
/// does not apply (tree for anything but an all-reduce) or `n < 2`
/// (nothing moves).
pub fn cost(kind: Collective, n: u64, algo: Algorithm) -> Option<Cost> {
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    match (algo, kind) {
        (Algorithm::Ring, Collective::AllReduce) => Some(Cost {
            steps: 2.0 * (nf - 1.0),
            wire: 2.0 * (nf - 1.0) / nf,
        }),
        (
            Algorithm::Ring,
            Collective::AllGather | Collective::ReduceScatter | Collective::AllToAll,
        ) => Some(Cost {
            steps: nf - 1.0,
            wire: (nf - 1.0) / nf,
        }),
        (Algorithm::Ring, Collective::SendRecv) => Some(Cost {
            steps: 1.0,
            wire: 1.0,
        }),
        (Algorithm::Tree, Collective::AllReduce) => Some(Cost {
            steps: 2.0 * (nf.log2().ceil()),
            wire: 2.0,
        }),
        (Algorithm::Tree, _) => None,
    }
}

/// One timed collective: what the fits are made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Kind.
    pub kind: Collective,
    /// Ranks in its group.
    pub group_size: u64,
    /// Buffer bytes (the all-reduced buffer; the gathered output).
    pub bytes: u64,
    /// The links its group crosses.
    pub class: LinkClass,
    /// Its time, seconds (one rank's median).
    pub seconds: f64,
}

/// Why a link could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    /// Too few samples, or all at one size (α and β cannot be told apart).
    #[error("{class}: {why}")]
    Underdetermined {
        /// The link class.
        class: &'static str,
        /// What is missing.
        why: String,
    },
}

/// An α-β fit of one link class, with its covariance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkFit {
    /// The link class fitted.
    pub class: LinkClass,
    /// Latency per step, seconds (α).
    pub alpha_s: f64,
    /// Seconds per byte on the wire (β; 1/β is the bandwidth).
    pub beta_s_per_byte: f64,
    /// Covariance of (α, β).
    pub cov: [[f64; 2]; 2],
    /// Samples fitted.
    pub samples: usize,
    /// Student's t quantile (97.5 %) for the residual degrees of freedom.
    pub t95: f64,
    /// Whether α was fixed at 0 (the data put it below 0: latency not
    /// resolved at these sizes).
    pub alpha_fixed_zero: bool,
    /// Relative residual: the root-mean-square residual over the mean time.
    pub rel_residual: f64,
    /// Where the fit came from: "measured" or what the user assumed.
    pub source: String,
}

/// A predicted time with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Predicted {
    /// Seconds, the fit's estimate.
    pub mid: f64,
    /// Lower end of the 95 % interval (never below 1 % of `mid`).
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// The algorithm the estimate chose.
    pub algorithm: Algorithm,
}

/// Student's t 97.5 % quantile for `dof` degrees of freedom.
pub fn t975(dof: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match dof {
        0 => f64::INFINITY,
        d if d <= 30 => T[d - 1],
        d if d <= 60 => 2.0,
        d if d <= 120 => 1.98,
        _ => 1.96,
    }
}

impl LinkFit {
    /// Fits α and β of `class` to its samples (the others are ignored).
    pub fn fit(class: LinkClass, samples: &[Sample]) -> Result<LinkFit, FitError> {
        let rows: Vec<(f64, f64, f64)> = samples
            .iter()
            .filter(|s| s.class == class && s.seconds.is_finite() && s.seconds > 0.0)
            .filter_map(|s| {
                cost(s.kind, s.group_size, Algorithm::Ring)
                    .map(|c| (c.steps, c.wire * s.bytes as f64, s.seconds))
            })
            .collect();
        let under = |why: String| FitError::Underdetermined {
            class: class.name(),
            why,
        };
        if rows.len() < 3 {
            return Err(under(format!(
                "{} timed collective(s); a fit needs at least 3",
                rows.len()
            )));
        }
        let (mut skk, mut skx, mut sxx, mut skt, mut sxt) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(k, x, t) in &rows {
            skk += k * k;
            skx += k * x;
            sxx += x * x;
            skt += k * t;
            sxt += x * t;
        }
        let det = skk * sxx - skx * skx;
        let m = rows.len();
        let mean_t = rows.iter().map(|r| r.2).sum::<f64>() / m as f64;
        // Distinct points: the design is singular (relative to its scale)
        // when every sample has the same steps-to-bytes ratio.
        let two_params = det > 1e-9 * skk * sxx;
        let (alpha, beta) = if two_params {
            ((sxx * skt - skx * sxt) / det, (skk * sxt - skx * skt) / det)
        } else {
            (f64::NAN, f64::NAN)
        };
        let (alpha, beta, fixed, cov, dof) = if two_params && alpha >= 0.0 && beta > 0.0 {
            let rss: f64 = rows
                .iter()
                .map(|&(k, x, t)| (t - alpha * k - beta * x).powi(2))
                .sum();
            let s2 = rss / (m - 2) as f64;
            let cov = [
                [s2 * sxx / det, -s2 * skx / det],
                [-s2 * skx / det, s2 * skk / det],
            ];
            (alpha, beta, false, cov, m - 2)
        } else {
            // α at 0: bandwidth only.
            let beta = sxt / sxx;
            if beta.is_nan() || beta <= 0.0 {
                return Err(under(
                    "the times do not grow with the bytes moved: no bandwidth can be fitted".into(),
                ));
            }
            let rss: f64 = rows.iter().map(|&(_, x, t)| (t - beta * x).powi(2)).sum();
            let s2 = rss / (m - 1) as f64;
            (0.0, beta, true, [[0.0, 0.0], [0.0, s2 / sxx]], m - 1)
        };
        let rss: f64 = rows
            .iter()
            .map(|&(k, x, t)| (t - alpha * k - beta * x).powi(2))
            .sum();
        Ok(LinkFit {
            class,
            alpha_s: alpha,
            beta_s_per_byte: beta,
            cov,
            samples: m,
            t95: t975(dof),
            alpha_fixed_zero: fixed,
            rel_residual: (rss / m as f64).sqrt() / mean_t,
            source: "measured".into(),
        })
    }

    /// A fit the user states (`--inter-link GBPS,MICROSECONDS`): no
    /// interval of its own.
    pub fn assumed(class: LinkClass, gbps: f64, latency_us: f64) -> LinkFit {
        LinkFit {
            class,
            alpha_s: latency_us * 1e-6,
            beta_s_per_byte: 1.0 / (gbps * 1e9),
            cov: [[0.0, 0.0], [0.0, 0.0]],
            samples: 0,
            t95: 0.0,
            alpha_fixed_zero: false,
            rel_residual: 0.0,
            source: format!("assumed: {gbps} GB/s, {latency_us} µs"),
        }
    }

    /// The same fit used for another class (said in `source`).
    pub fn standing_in_for(&self, class: LinkClass) -> LinkFit {
        LinkFit {
            class,
            source: format!("assumed equal to the {} fit", self.class.name()),
            ..self.clone()
        }
    }

    /// Bandwidth, GB/s (1/β).
    pub fn bandwidth_gbps(&self) -> f64 {
        1e-9 / self.beta_s_per_byte
    }

    /// The time of one `kind` of `bytes` on a group of `n`, the faster
    /// algorithm, with its 95 % interval; None when nothing moves (`n < 2`).
    pub fn predict(&self, kind: Collective, n: u64, bytes: u64) -> Option<Predicted> {
        let at = |algo| {
            cost(kind, n, algo).map(|c| {
                let x = c.wire * bytes as f64;
                let mid = self.alpha_s * c.steps + self.beta_s_per_byte * x;
                let var = c.steps * c.steps * self.cov[0][0]
                    + 2.0 * c.steps * x * self.cov[0][1]
                    + x * x * self.cov[1][1];
                let half = self.t95 * var.max(0.0).sqrt();
                Predicted {
                    mid,
                    lo: (mid - half).max(0.01 * mid),
                    hi: mid + half,
                    algorithm: algo,
                }
            })
        };
        [at(Algorithm::Ring), at(Algorithm::Tree)]
            .into_iter()
            .flatten()
            .min_by(|a, b| a.mid.total_cmp(&b.mid))
    }
}

/// Which end of every duration a replay takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Every duration at the low end of its interval.
    Low,
    /// The estimates.
    Mid,
    /// Every duration at the high end.
    High,
}

impl Bound {
    /// All three, in order.
    pub const ALL: [Bound; 3] = [Bound::Low, Bound::Mid, Bound::High];

    /// This end of `(lo, mid, hi)`.
    pub fn pick(self, lo: f64, mid: f64, hi: f64) -> f64 {
        match self {
            Bound::Low => lo,
            Bound::Mid => mid,
            Bound::High => hi,
        }
    }
}

/// One replay for the worker: a config at a world size, and the duration
/// of every op of its plan in each mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplaySpec {
    /// The run's config (model, run, parallel sections as measured).
    pub config: Config,
    /// Ranks of the projected job.
    pub ranks: u64,
    /// Ranks per node.
    pub ranks_per_node: u64,
    /// Which end of the intervals these durations are.
    pub bound: Bound,
    /// The peak MFU is computed against (the run's).
    pub peak: PeakChoice,
    /// Seconds of each GEMM of the plan, per mode that runs GEMMs.
    pub gemm_s: BTreeMap<Mode, Vec<f64>>,
    /// Seconds of each collective of the plan (plan order), per mode that
    /// runs collectives.
    pub collective_s: BTreeMap<Mode, Vec<f64>>,
}

/// The compute stream's gap factor: the median over ranks of each rank's
/// compute-mode median step over the sum of its GEMMs' medians (`(step,
/// sum)` per rank; pairs with a sum or step that is not a positive number
/// are left out), at least 1 (a step cannot be shorter than its GEMMs on
/// one stream); 1 with no usable pair. Every GEMM's projected time is
/// multiplied by it, so that compute mode replays at its measured time.
pub fn gemm_gap_factor(per_rank: &[(f64, f64)]) -> f64 {
    let ratios: Vec<f64> = per_rank
        .iter()
        .filter(|(step, sum)| step.is_finite() && *step > 0.0 && sum.is_finite() && *sum > 0.0)
        .map(|(step, sum)| step / sum)
        .collect();
    crate::stats::median(&ratios).unwrap_or(1.0).max(1.0)
}

/// Each mode's GEMM and collective durations of one replay: the projected
/// ones, and in overlapped mode each multiplied by its measured contention
/// (a GEMM beside a collective runs `gemm_contention` times slower, a
/// collective beside a GEMM `collective_contention` times); the other
/// modes run each stream alone, unscaled.
pub fn mode_durations(
    gemm: &[f64],
    collectives: &[f64],
    gemm_contention: f64,
    collective_contention: f64,
) -> (BTreeMap<Mode, Vec<f64>>, BTreeMap<Mode, Vec<f64>>) {
    let mut gemm_s = BTreeMap::new();
    let mut collective_s = BTreeMap::new();
    for mode in Mode::ALL {
        let (gf, cf) = if mode == Mode::Overlapped {
            (gemm_contention, collective_contention)
        } else {
            (1.0, 1.0)
        };
        gemm_s.insert(mode, gemm.iter().map(|x| x * gf).collect());
        collective_s.insert(mode, collectives.iter().map(|x| x * cf).collect());
    }
    (gemm_s, collective_s)
}

/// A projected or measured figure with its interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Name, as in run.json's summary (`step_time_s.overlapped`, `mfu.overlapped`,
    /// `exposed_comm_s`, `hidden_fraction`).
    pub name: String,
    /// The estimate.
    pub value: f64,
    /// Lower end of the 95 % interval (the low/high replays' range).
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

/// The figures of one node count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectedPoint {
    /// Nodes.
    pub nodes: u64,
    /// Ranks (nodes × ranks per node).
    pub ranks: u64,
    /// Whether this point was measured (a fit run) rather than projected.
    pub measured: bool,
    /// Its figures.
    pub figures: Vec<Figure>,
}

/// One row of a validation: a projected figure against the measured one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationRow {
    /// Figure name.
    pub figure: String,
    /// Projected value.
    pub projected: f64,
    /// Its interval.
    pub interval: [f64; 2],
    /// The larger run's measured value.
    pub measured: f64,
    /// (projected − measured) / measured × 100.
    pub error_pct: f64,
    /// Whether the figure has a stated target (comm-mode and overlapped
    /// step time: within [`VALIDATION_TARGET_PCT`]).
    pub targeted: bool,
}

/// The stated target of a validation, percent: the comm-mode and the
/// overlapped step time projected within this of the measured ones.
pub const VALIDATION_TARGET_PCT: f64 = 15.0;

/// `projection.json`: what `mfubench project` wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// The tool version that wrote it.
    pub tool_version: String,
    /// The runs the fits came from (paths as given).
    pub fit_runs: Vec<String>,
    /// Ranks per node of the projected jobs.
    pub ranks_per_node: u64,
    /// The link fits used (measured or assumed).
    pub links: Vec<LinkFit>,
    /// The fitted runs' compute-mode step over the sum of its GEMMs'
    /// medians (median over ranks): the gaps between GEMMs on the compute
    /// stream, applied to every GEMM so that compute mode replays at its
    /// measured time.
    pub gemm_gap_factor: f64,
    /// The GEMM contention applied in overlapped mode (measured in the fit
    /// runs; 1 when none was measured).
    pub gemm_contention: f64,
    /// What the projection assumes (shown beside its figures).
    pub assumptions: Vec<String>,
    /// The fit runs' measured points, then the projected ones.
    pub points: Vec<ProjectedPoint>,
    /// `--validate`: the larger run's measured figures against the
    /// projection at its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
}

/// A validation's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// The measured (larger) run.
    pub measured_run: String,
    /// Its nodes.
    pub nodes: u64,
    /// Per figure.
    pub rows: Vec<ValidationRow>,
    /// Whether every targeted figure is within the target.
    pub within_target: bool,
}

/// The figures a projection shows, from a run summary (measured or
/// replayed): each mode's step time and MFU, exposed communication and the
/// hidden fraction. Absent ones are left out.
pub fn figures_of(s: &crate::result::Summary) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for m in Mode::ALL {
        if let Some(t) = s.step_time_s.get(m) {
            out.push((format!("step_time_s.{}", m.name()), t));
        }
    }
    for m in Mode::ALL {
        if let Some(v) = s.mfu.get(m) {
            out.push((format!("mfu.{}", m.name()), v));
        }
    }
    if let Some(v) = s.exposed_comm_s {
        out.push(("exposed_comm_s".into(), v));
    }
    if let Some(v) = s.hidden_fraction {
        out.push(("hidden_fraction".into(), v));
    }
    out
}

/// Merges the low, middle and high replays' figures into figures with
/// intervals (the range of the three).
pub fn bounded(replays: &[(Bound, Vec<(String, f64)>)]) -> Vec<Figure> {
    let Some((_, mid)) = replays.iter().find(|(b, _)| *b == Bound::Mid) else {
        return Vec::new();
    };
    mid.iter()
        .map(|(name, value)| {
            let all: Vec<f64> = replays
                .iter()
                .filter_map(|(_, f)| f.iter().find(|(n, _)| n == name).map(|x| x.1))
                .collect();
            Figure {
                name: name.clone(),
                value: *value,
                lo: all.iter().copied().fold(f64::INFINITY, f64::min),
                hi: all.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            }
        })
        .collect()
}

/// Compares projected figures with measured ones (figures present in both).
pub fn validate(projected: &[Figure], measured: &[(String, f64)]) -> Vec<ValidationRow> {
    projected
        .iter()
        .filter_map(|p| {
            let m = measured.iter().find(|(n, _)| *n == p.name)?.1;
            (m != 0.0).then(|| ValidationRow {
                figure: p.name.clone(),
                projected: p.value,
                interval: [p.lo, p.hi],
                measured: m,
                error_pct: (p.value - m) / m * 100.0,
                targeted: p.name == "step_time_s.comm" || p.name == "step_time_s.overlapped",
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_factor_known_answers() {
        // Ratios 1.2, 1.1, 1.5: the median is 1.2. A zero sum and a NaN
        // step are left out.
        let per_rank = [
            (12.0, 10.0),
            (11.0, 10.0),
            (15.0, 10.0),
            (5.0, 0.0),
            (f64::NAN, 1.0),
        ];
        assert!((gemm_gap_factor(&per_rank) - 1.2).abs() < 1e-12);
        // Even count: the mean of the middle two (1.1 and 1.2).
        assert!((gemm_gap_factor(&per_rank[..2]) - 1.15).abs() < 1e-12);
        // Never below 1, and 1 without data.
        assert_eq!(gemm_gap_factor(&[(9.0, 10.0)]), 1.0);
        assert_eq!(gemm_gap_factor(&[]), 1.0);
    }

    #[test]
    fn contention_scales_overlapped_mode_only() {
        let (g, c) = mode_durations(&[1.0, 2.0], &[0.5], 1.25, 1.5);
        assert_eq!(g[&Mode::Overlapped], [1.25, 2.5]);
        assert_eq!(c[&Mode::Overlapped], [0.75]);
        for m in [Mode::Compute, Mode::Comm, Mode::Serialized] {
            assert_eq!(g[&m], [1.0, 2.0], "{m}");
            assert_eq!(c[&m], [0.5], "{m}");
        }
    }

    fn sample(n: u64, bytes: u64, seconds: f64) -> Sample {
        Sample {
            kind: Collective::AllReduce,
            group_size: n,
            bytes,
            class: LinkClass::InterNode,
            seconds,
        }
    }

    #[test]
    fn ring_and_tree_costs_known_answers() {
        let r = cost(Collective::AllReduce, 4, Algorithm::Ring).unwrap();
        assert_eq!((r.steps, r.wire), (6.0, 1.5));
        let t = cost(Collective::AllReduce, 8, Algorithm::Tree).unwrap();
        assert_eq!((t.steps, t.wire), (6.0, 2.0));
        let g = cost(Collective::AllGather, 4, Algorithm::Ring).unwrap();
        assert_eq!((g.steps, g.wire), (3.0, 0.75));
        assert!(cost(Collective::AllGather, 4, Algorithm::Tree).is_none());
        assert!(cost(Collective::AllReduce, 1, Algorithm::Ring).is_none());
    }

    #[test]
    fn exact_alpha_beta_are_recovered_with_a_zero_width_interval() {
        // α = 10 µs, β = 1 ns/B (1 GB/s), ring all-reduce on 2 and 4 ranks.
        let t = |n: u64, b: u64| {
            let c = cost(Collective::AllReduce, n, Algorithm::Ring).unwrap();
            10e-6 * c.steps + 1e-9 * c.wire * b as f64
        };
        let s: Vec<Sample> = [(2, 1_000_000), (2, 4_000_000), (4, 1_000_000), (4, 64)]
            .iter()
            .map(|&(n, b)| sample(n, b, t(n, b)))
            .collect();
        let f = LinkFit::fit(LinkClass::InterNode, &s).unwrap();
        assert!((f.alpha_s - 10e-6).abs() < 1e-12, "{f:?}");
        assert!((f.beta_s_per_byte - 1e-9).abs() < 1e-18);
        assert!((f.bandwidth_gbps() - 1.0).abs() < 1e-6);
        assert!(!f.alpha_fixed_zero);
        // 16 ranks, 100 MB: ring 30 steps (300 µs) + 1.875 × 0.1 s; tree
        // 8 steps + 0.2 s: the ring wins.
        let p = f.predict(Collective::AllReduce, 16, 100_000_000).unwrap();
        assert_eq!(p.algorithm, Algorithm::Ring);
        assert!((p.mid - (300e-6 + 0.1875)).abs() < 1e-9, "{p:?}");
        assert!((p.hi - p.lo) < 1e-9);
        // 1024 ranks, 1 KB: the tree's 20 steps beat the ring's 2046.
        let p = f.predict(Collective::AllReduce, 1024, 1000).unwrap();
        assert_eq!(p.algorithm, Algorithm::Tree);
        assert!((p.mid - (20.0 * 10e-6 + 2000e-9)).abs() < 1e-12);
    }

    #[test]
    fn noise_widens_the_interval_and_one_size_is_underdetermined() {
        let base = |b: u64| 2.0 * 5e-6 + b as f64 * 2e-9;
        let noisy: Vec<Sample> = [
            (1_000_000u64, 1.05),
            (1_000_000, 0.95),
            (3_000_000, 1.03),
            (3_000_000, 0.98),
        ]
        .iter()
        .map(|&(b, f)| sample(2, b, base(b) * f))
        .collect();
        let f = LinkFit::fit(LinkClass::InterNode, &noisy).unwrap();
        let p = f.predict(Collective::AllReduce, 2, 2_000_000).unwrap();
        assert!(p.lo < p.mid && p.mid < p.hi, "{p:?}");
        assert!((p.mid / base(2_000_000) - 1.0).abs() < 0.1);
        // A longer extrapolation is less certain.
        let far = f.predict(Collective::AllReduce, 2, 200_000_000).unwrap();
        assert!((far.hi - far.lo) / far.mid > (p.hi - p.lo) / p.mid * 0.99);
        // Every sample at one size: no way to split α from β, so α = 0.
        let one: Vec<Sample> = [1.0, 1.02, 0.98]
            .iter()
            .map(|&f| sample(2, 1_000_000, 0.002 * f))
            .collect();
        let f = LinkFit::fit(LinkClass::InterNode, &one).unwrap();
        assert!(f.alpha_fixed_zero);
        assert!((f.beta_s_per_byte - 0.002 / 1e6).abs() < 1e-12);
        // Too few samples, or the other class: a named error.
        let e = LinkFit::fit(LinkClass::IntraNode, &one).unwrap_err();
        assert!(e.to_string().starts_with("intra-node: 0 timed"), "{e}");
    }

    #[test]
    fn bounded_figures_and_validation_rows() {
        let r = |b, v: f64| {
            (
                b,
                vec![
                    ("step_time_s.comm".to_string(), v),
                    ("mfu.overlapped".to_string(), 1.0 / v),
                ],
            )
        };
        let f = bounded(&[r(Bound::Low, 1.0), r(Bound::Mid, 2.0), r(Bound::High, 4.0)]);
        assert_eq!(
            f[0],
            Figure {
                name: "step_time_s.comm".into(),
                value: 2.0,
                lo: 1.0,
                hi: 4.0
            }
        );
        assert_eq!((f[1].lo, f[1].value, f[1].hi), (0.25, 0.5, 1.0));
        let v = validate(&f, &[("step_time_s.comm".into(), 2.5)]);
        assert_eq!(v.len(), 1);
        assert!((v[0].error_pct + 20.0).abs() < 1e-12);
        assert!(v[0].targeted);
        assert_eq!(t975(4), 2.776);
        assert_eq!(Bound::High.pick(1.0, 2.0, 3.0), 3.0);
    }
}

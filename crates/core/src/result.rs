//! The `run.json` schema and the cluster-wide summary.
//!
//! A run file holds everything needed to recompute every figure: the
//! resolved config (the plan is rebuilt from it deterministically), the
//! per-rank records with raw per-iteration step times, per-op medians and one
//! op timeline per mode, and the [`Summary`] computed by [`summarize`].
//!
//! Schema evolution: [`SCHEMA_VERSION`] is bumped on any change that an older
//! reader would misread; readers refuse files with a newer version.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::config::{BackendKind, Config, Mode};
use crate::metrics;
use crate::plan::StepPlan;
use crate::stats::{self, Stats};

/// Version of the run.json layout written by this build.
pub const SCHEMA_VERSION: u32 = 1;

/// Where the peak used for MFU came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeakSource {
    /// The datasheet table, by device name and SM count.
    Spec,
    /// `run.peak_tflops` in the config (or `--peak-tflops`).
    Config,
    /// A calibration GEMM measured at start (CPU backend).
    Calibrated,
}

/// Which stream an op ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// GEMMs.
    Compute,
    /// All-reduces.
    Comm,
}

/// A value per mode; modes that were not run (or where the figure has no
/// meaning) are absent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PerMode<T> {
    /// Compute mode (T_c).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute: Option<T>,
    /// Comm mode (T_a).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<T>,
    /// Serialized mode (T_s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serialized: Option<T>,
    /// Overlapped mode (T_o).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlapped: Option<T>,
}

impl<T> Default for PerMode<T> {
    fn default() -> Self {
        PerMode {
            compute: None,
            comm: None,
            serialized: None,
            overlapped: None,
        }
    }
}

impl<T: Copy> PerMode<T> {
    /// The value of one mode.
    pub fn get(&self, mode: Mode) -> Option<T> {
        match mode {
            Mode::Compute => self.compute,
            Mode::Comm => self.comm,
            Mode::Serialized => self.serialized,
            Mode::Overlapped => self.overlapped,
        }
    }

    /// Sets the value of one mode.
    pub fn set(&mut self, mode: Mode, value: Option<T>) {
        match mode {
            Mode::Compute => self.compute = value,
            Mode::Comm => self.comm = value,
            Mode::Serialized => self.serialized = value,
            Mode::Overlapped => self.overlapped = value,
        }
    }

    /// Builds a value for each mode from a function.
    pub fn from_fn(mut f: impl FnMut(Mode) -> Option<T>) -> Self {
        let mut p = PerMode::default();
        for m in Mode::ALL {
            p.set(m, f(m));
        }
        p
    }
}

/// Median duration of one op over the timed iterations of a mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpStat {
    /// Op label, e.g. `L1.ffn_down.wgrad` or `allreduce.b3`.
    pub name: String,
    /// Stream the op ran on.
    pub stream: StreamKind,
    /// Index into the plan's ops (GEMMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<usize>,
    /// Bucket index (all-reduces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<usize>,
    /// Median duration, seconds.
    pub median_s: f64,
}

/// One op of one step, in seconds from the step's start event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// Op label.
    pub name: String,
    /// Stream the op ran on.
    pub stream: StreamKind,
    /// Index into the plan's ops (GEMMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<usize>,
    /// Bucket index (all-reduces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<usize>,
    /// Start, seconds after the step's start.
    pub start_s: f64,
    /// End, seconds after the step's start.
    pub end_s: f64,
}

/// What one rank measured in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeRecord {
    /// Step time of every timed iteration, seconds.
    pub step_time_s: Vec<f64>,
    /// Per-op median durations.
    pub ops: Vec<OpStat>,
    /// The ops of one iteration (the one with the median step time).
    pub timeline: Vec<Span>,
    /// Which timed iteration the timeline shows.
    pub timeline_iteration: usize,
    /// Wrong all-reduce elements seen in this mode.
    pub wrong: u64,
}

impl ModeRecord {
    /// Sum of the per-op medians on one stream.
    pub fn stream_time_s(&self, stream: StreamKind) -> f64 {
        self.ops
            .iter()
            .filter(|o| o.stream == stream)
            .map(|o| o.median_s)
            .sum()
    }
}

/// A device sample taken at the start or end of a mode (GPU telemetry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetrySample {
    /// Mode the sample belongs to.
    pub mode: Mode,
    /// `start` or `end`.
    pub at: String,
    /// SM clock, MHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm_clock_mhz: Option<u32>,
    /// Temperature, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<u32>,
    /// Power draw, W.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    /// Active throttle reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_reasons: Vec<String>,
}

/// Everything one rank measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankRecord {
    /// MPI rank in the world communicator.
    pub rank: u64,
    /// Host name.
    pub host: String,
    /// Rank among the ranks of the same host.
    pub local_rank: u64,
    /// Device, e.g. `cpu` or `GPU 3`.
    pub device: String,
    /// Device model (CPU model name or GPU name).
    #[serde(default)]
    pub device_name: String,
    /// Device details (SM count, compute capability, versions…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub device_info: BTreeMap<String, String>,
    /// Calibration GEMM rate of this rank, TFLOP/s (CPU backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrated_tflops: Option<f64>,
    /// Per-mode measurements, keyed by mode name.
    pub modes: BTreeMap<Mode, ModeRecord>,
    /// Wrong all-reduce elements over all modes.
    pub wrong: u64,
    /// Telemetry samples, when the device provides them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telemetry: Vec<TelemetrySample>,
}

/// How the run was started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchInfo {
    /// The launch command line, as an argument vector.
    #[serde(default)]
    pub command: Vec<String>,
    /// `mpirun`, `srun` or `manual`.
    #[serde(default)]
    pub launcher: String,
    /// Slurm job id, when inside a Slurm allocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job_id: Option<String>,
    /// Slurm node list, when inside a Slurm allocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_nodelist: Option<String>,
    /// Names (never values) of the environment variables passed to every
    /// rank: mpirun's `-x NAME` (the allow-list NCCL_*, CUDA_*, UCX_*,
    /// MFUBENCH_*, LD_LIBRARY_PATH, PATH, plus `--env NAME`); under srun the
    /// same names, which srun propagates itself.
    #[serde(default)]
    pub forwarded_env: Vec<String>,
}

/// One gradient bucket, as all-reduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketInfo {
    /// Bucket index (all-reduce order).
    pub index: usize,
    /// Gradient elements.
    pub elements: u64,
    /// Bytes.
    pub bytes: u64,
    /// Label of the wgrad after which the bucket is ready.
    pub ready_after: String,
}

/// FLOPs of one benchmark step, per rank.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlopsPerStep {
    /// Σ 2·M·N·K over forward and backward GEMMs (no recomputation).
    pub model: f64,
    /// Model FLOPs plus recomputed forward FLOPs.
    pub hardware: f64,
    /// 6·N·T for the N parameters of the executed layers.
    pub six_n: f64,
    /// 6·N·T + 12·L·d·s·T.
    pub six_n_attention: f64,
}

/// The plan as executed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanInfo {
    /// Blocks per step.
    pub layers: u64,
    /// Tokens per rank per step.
    pub tokens: u64,
    /// GEMMs per step.
    pub gemms: usize,
    /// FLOPs per rank per step.
    pub flops: FlopsPerStep,
    /// Buckets in all-reduce order.
    pub buckets: Vec<BucketInfo>,
}

impl PlanInfo {
    /// Describes a plan (`params` = weights in the executed blocks).
    pub fn of(plan: &StepPlan, config: &Config) -> PlanInfo {
        let m = &config.model;
        let params = plan.layers * m.params_per_layer();
        let t = plan.tokens as f64;
        let six_n = crate::flops::six_n(params) * t;
        PlanInfo {
            layers: plan.layers,
            tokens: plan.tokens,
            gemms: plan.ops.len(),
            flops: FlopsPerStep {
                model: plan.model_flops(),
                hardware: plan.hardware_flops(),
                six_n,
                six_n_attention: six_n
                    + crate::flops::attention_term(plan.layers, m.hidden, m.seq) * t,
            },
            buckets: plan
                .buckets
                .iter()
                .map(|b| BucketInfo {
                    index: b.index,
                    elements: b.elements,
                    bytes: b.bytes,
                    ready_after: plan.ops[b.ready_after].label(),
                })
                .collect(),
        }
    }

    /// Bytes all-reduced per step.
    pub fn allreduce_bytes(&self) -> u64 {
        self.buckets.iter().map(|b| b.bytes).sum()
    }
}

/// GEMM and all-reduce slowdown under overlap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Contention {
    /// GEMM time in overlapped steps / in compute steps (median over ranks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gemm: Option<f64>,
    /// All-reduce time in overlapped steps / in comm steps (median over ranks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allreduce: Option<f64>,
}

/// All-reduce figures from comm mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AllreduceSummary {
    /// Bytes all-reduced per step.
    pub bytes: u64,
    /// Buckets per step.
    pub buckets: usize,
    /// Comm-mode cluster step time T_a, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_s: Option<f64>,
    /// bytes / T_a, GB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algbw_gbps: Option<f64>,
    /// algbw · 2(n−1)/n, GB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busbw_gbps: Option<f64>,
}

/// A rank that holds the cluster back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Straggler {
    /// MPI rank.
    pub rank: u64,
    /// Host name.
    pub host: String,
    /// Device, e.g. `GPU 5`.
    pub device: String,
    /// The measure that flagged it, e.g. `compute_step_s`.
    pub metric: String,
    /// This rank's value.
    pub value: f64,
    /// Median over ranks.
    pub median: f64,
    /// (value − median) / median.
    pub deviation: f64,
    /// Human-readable reason.
    pub reason: String,
}

/// The cluster-wide figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Median cluster step time per mode, seconds (cluster step of an
    /// iteration = max over ranks).
    pub step_time_s: PerMode<f64>,
    /// Median, p95, min and max of the cluster step times per mode.
    pub step_time_stats: PerMode<Stats>,
    /// Model FLOPs utilisation per mode (no value for comm mode).
    pub mfu: PerMode<f64>,
    /// Hardware FLOPs utilisation, when recomputation is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hfu: Option<PerMode<f64>>,
    /// Achieved model TFLOP/s per device.
    pub tflops_per_device: PerMode<f64>,
    /// Tokens per second, whole cluster.
    pub tokens_per_second: PerMode<f64>,
    /// T_o − T_c, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_comm_s: Option<f64>,
    /// (T_o − T_c) / T_o.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_comm_fraction: Option<f64>,
    /// (T_s − T_c) / T_s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialized_overhead: Option<f64>,
    /// (T_c + T_a − T_o) / T_a.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_fraction: Option<f64>,
    /// T_s / T_o.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_speedup: Option<f64>,
    /// (T_s − T_o) / (T_s − max(T_c, T_a)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_efficiency: Option<f64>,
    /// Slowdown of GEMMs and all-reduces under overlap.
    pub contention: Contention,
    /// All-reduce size and bandwidth.
    pub allreduce: AllreduceSummary,
    /// FLOPs per rank per step.
    pub flops_per_step: FlopsPerStep,
    /// Peak used for MFU, TFLOP/s per device.
    pub peak_tflops: f64,
    /// Where the peak came from.
    pub peak_source: PeakSource,
    /// Wrong all-reduce elements, all ranks and modes.
    pub wrong: u64,
    /// Ranks whose compute step is off the median by more than the tolerance.
    pub stragglers: Vec<Straggler>,
    /// Hosts with at least one straggler.
    pub slow_hosts: Vec<String>,
}

/// A whole run: what `run.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Layout version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// mfubench version that wrote the file.
    pub tool_version: String,
    /// Run identifier (directory name under the results folder).
    pub run_id: String,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// End time, RFC 3339 UTC.
    pub finished_at: String,
    /// The resolved configuration.
    pub config: Config,
    /// Backend that ran (never `auto`).
    pub backend: BackendKind,
    /// Number of ranks.
    pub world_size: u64,
    /// Distinct hosts, in order of their first rank.
    pub hosts: Vec<String>,
    /// How the run was launched.
    #[serde(default)]
    pub launch: LaunchInfo,
    /// Library and driver versions (MPI, NCCL, CUDA…).
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    /// Allow-listed environment of rank 0 (NCCL_*, CUDA_*, SLURM_*, OMPI_*, UCX_*).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The plan as executed.
    pub plan: PlanInfo,
    /// False while the run is still going (or if it stopped early): the file
    /// then holds the modes completed so far; true once every mode ran.
    #[serde(default = "yes")]
    pub complete: bool,
    /// Per-rank records, ordered by rank.
    pub ranks: Vec<RankRecord>,
    /// Cluster-wide figures.
    pub summary: Summary,
}

fn yes() -> bool {
    true
}

/// Cluster step times of a mode: per iteration, the max over ranks.
pub fn cluster_step_times(ranks: &[RankRecord], mode: Mode) -> Vec<f64> {
    let per_rank: Vec<&Vec<f64>> = ranks
        .iter()
        .filter_map(|r| r.modes.get(&mode).map(|m| &m.step_time_s))
        .collect();
    if per_rank.is_empty() {
        return Vec::new();
    }
    let iters = per_rank.iter().map(|v| v.len()).min().unwrap_or(0);
    (0..iters)
        .map(|i| {
            per_rank
                .iter()
                .map(|v| v[i])
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect()
}

/// Inputs of [`summarize`] that do not come from the rank records.
#[derive(Debug, Clone, Copy)]
pub struct SummaryInputs<'a> {
    /// The plan as executed.
    pub plan: &'a PlanInfo,
    /// Peak TFLOP/s per device.
    pub peak_tflops: f64,
    /// Where the peak came from.
    pub peak_source: PeakSource,
    /// Straggler tolerance (relative).
    pub straggler_tolerance: f64,
    /// Whether recomputation was on (HFU reported).
    pub recompute: bool,
}

/// Computes the cluster-wide summary from per-rank records.
pub fn summarize(ranks: &[RankRecord], inp: SummaryInputs<'_>) -> Summary {
    let world = ranks.len() as u64;
    let step_stats = PerMode::from_fn(|m| Stats::of(&cluster_step_times(ranks, m)));
    let t = PerMode::from_fn(|m| step_stats.get(m).map(|s: Stats| s.median));
    let f = inp.plan.flops;
    let peak = inp.peak_tflops;
    let compute_modes = |v: Option<f64>, m: Mode| v.filter(|_| m.has_compute());
    let mfu =
        PerMode::from_fn(|m| compute_modes(t.get(m), m).map(|t| metrics::mfu(f.model, t, peak)));
    let hfu = inp.recompute.then(|| {
        PerMode::from_fn(|m| compute_modes(t.get(m), m).map(|t| metrics::mfu(f.hardware, t, peak)))
    });
    let tflops_per_device =
        PerMode::from_fn(|m| compute_modes(t.get(m), m).map(|t| metrics::tflops(f.model, t)));
    let tokens_per_second = PerMode::from_fn(|m| {
        compute_modes(t.get(m), m).map(|t| (world * inp.plan.tokens) as f64 / t)
    });

    let (tc, ta, ts, to) = (t.compute, t.comm, t.serialized, t.overlapped);
    let both = |a: Option<f64>, b: Option<f64>| a.zip(b);

    // Contention, per rank from per-op medians, then the median over ranks.
    let ratio = |stream: StreamKind, alone: Mode| {
        let r: Vec<f64> = ranks
            .iter()
            .filter_map(|r| {
                let o = r.modes.get(&Mode::Overlapped)?.stream_time_s(stream);
                let a = r.modes.get(&alone)?.stream_time_s(stream);
                (a > 0.0).then(|| metrics::contention(o, a))
            })
            .collect();
        stats::median(&r)
    };
    let contention = Contention {
        gemm: ratio(StreamKind::Compute, Mode::Compute),
        allreduce: ratio(StreamKind::Comm, Mode::Comm),
    };

    let bytes = inp.plan.allreduce_bytes();
    let algbw = ta.map(|ta| metrics::algbw_gbps(bytes as f64, ta));
    let allreduce = AllreduceSummary {
        bytes,
        buckets: inp.plan.buckets.len(),
        time_s: ta,
        algbw_gbps: algbw,
        busbw_gbps: algbw.map(|a| metrics::busbw_gbps(a, world)),
    };

    let (stragglers, slow_hosts) = find_stragglers(ranks, inp.straggler_tolerance);

    Summary {
        step_time_s: t,
        step_time_stats: step_stats,
        mfu,
        hfu,
        tflops_per_device,
        tokens_per_second,
        exposed_comm_s: both(to, tc).map(|(o, c)| metrics::exposed_comm_s(o, c)),
        exposed_comm_fraction: both(to, tc).map(|(o, c)| metrics::exposed_comm_fraction(o, c)),
        serialized_overhead: both(ts, tc).map(|(s, c)| metrics::serialized_overhead(s, c)),
        hidden_fraction: tc
            .zip(ta)
            .zip(to)
            .map(|((c, a), o)| metrics::hidden_fraction(c, a, o)),
        overlap_speedup: both(ts, to).map(|(s, o)| metrics::overlap_speedup(s, o)),
        overlap_efficiency: ts
            .zip(to)
            .zip(tc.zip(ta))
            .and_then(|((s, o), (c, a))| metrics::overlap_efficiency(s, o, c, a)),
        contention,
        allreduce,
        flops_per_step: f,
        peak_tflops: peak,
        peak_source: inp.peak_source,
        wrong: ranks.iter().map(|r| r.wrong).sum(),
        stragglers,
        slow_hosts,
    }
}

/// The mode whose per-rank step time identifies stragglers: compute if
/// every rank ran it, else overlapped, serialized, comm.
pub fn straggler_mode(ranks: &[RankRecord]) -> Option<Mode> {
    [
        Mode::Compute,
        Mode::Overlapped,
        Mode::Serialized,
        Mode::Comm,
    ]
    .into_iter()
    .find(|m| ranks.iter().all(|r| r.modes.contains_key(m)))
}

/// Ranks whose median step in the straggler mode is slower than the median
/// rank by more than `tolerance`, and the hosts they are on.
pub fn find_stragglers(ranks: &[RankRecord], tolerance: f64) -> (Vec<Straggler>, Vec<String>) {
    let Some(mode) = straggler_mode(ranks) else {
        return (Vec::new(), Vec::new());
    };
    let per_rank: Vec<f64> = ranks
        .iter()
        .map(|r| stats::median(&r.modes[&mode].step_time_s).unwrap_or(f64::NAN))
        .collect();
    let Some(med) = stats::median(&per_rank) else {
        return (Vec::new(), Vec::new());
    };
    let mut hosts: Vec<String> = Vec::new();
    let stragglers = metrics::outliers(&per_rank, tolerance, true)
        .into_iter()
        .map(|i| {
            let r = &ranks[i];
            let dev = metrics::relative_deviation(per_rank[i], med);
            if !hosts.contains(&r.host) {
                hosts.push(r.host.clone());
            }
            Straggler {
                rank: r.rank,
                host: r.host.clone(),
                device: r.device.clone(),
                metric: format!("{mode}_step_s"),
                value: per_rank[i],
                median: med,
                deviation: dev,
                reason: format!(
                    "rank {} ({}, {}): {mode} step {:.1} % slower than the median",
                    r.rank,
                    r.host,
                    r.device,
                    dev * 100.0
                ),
            }
        })
        .collect();
    (stragglers, hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(steps: &[f64], ops: &[(StreamKind, f64)]) -> ModeRecord {
        ModeRecord {
            step_time_s: steps.to_vec(),
            ops: ops
                .iter()
                .enumerate()
                .map(|(i, (s, t))| OpStat {
                    name: format!("op{i}"),
                    stream: *s,
                    op: None,
                    bucket: None,
                    median_s: *t,
                })
                .collect(),
            timeline: Vec::new(),
            timeline_iteration: 0,
            wrong: 0,
        }
    }

    fn rank(r: u64, host: &str, scale: f64) -> RankRecord {
        use StreamKind::*;
        let mut modes = BTreeMap::new();
        let s = |v: &[f64]| v.iter().map(|x| x * scale).collect::<Vec<_>>();
        modes.insert(
            Mode::Compute,
            mode(&s(&[10.0, 10.0, 10.0]), &[(Compute, 10.0)]),
        );
        modes.insert(Mode::Comm, mode(&[4.0, 4.0, 4.0], &[(Comm, 4.0)]));
        modes.insert(
            Mode::Serialized,
            mode(&s(&[14.0, 14.0, 14.0]), &[(Compute, 10.0), (Comm, 4.0)]),
        );
        modes.insert(
            Mode::Overlapped,
            mode(&s(&[11.0, 12.0, 11.0]), &[(Compute, 11.0), (Comm, 5.0)]),
        );
        RankRecord {
            rank: r,
            host: host.into(),
            local_rank: 0,
            device: format!("GPU {r}"),
            device_name: "test".into(),
            device_info: BTreeMap::new(),
            calibrated_tflops: None,
            modes,
            wrong: 0,
            telemetry: Vec::new(),
        }
    }

    fn plan() -> PlanInfo {
        PlanInfo {
            layers: 1,
            tokens: 1000,
            gemms: 1,
            flops: FlopsPerStep {
                model: 5e15,
                hardware: 6e15,
                six_n: 4.9e15,
                six_n_attention: 5e15,
            },
            buckets: vec![BucketInfo {
                index: 0,
                elements: 2e9 as u64,
                bytes: 4e9 as u64,
                ready_after: "x".into(),
            }],
        }
    }

    #[test]
    fn summary_known_answers() {
        let ranks = vec![
            rank(0, "a", 1.0),
            rank(1, "a", 1.0),
            rank(2, "b", 1.0),
            rank(3, "b", 1.0),
        ];
        let p = plan();
        let s = summarize(
            &ranks,
            SummaryInputs {
                plan: &p,
                peak_tflops: 1000.0,
                peak_source: PeakSource::Spec,
                straggler_tolerance: 0.05,
                recompute: true,
            },
        );
        assert_eq!(s.step_time_s.compute, Some(10.0));
        assert_eq!(s.step_time_s.overlapped, Some(11.0));
        // 5e15 FLOPs in 10 s on 1000 TFLOP/s: 500 TFLOP/s, MFU 0.5.
        assert_eq!(s.mfu.compute, Some(0.5));
        assert_eq!(s.tflops_per_device.compute, Some(500.0));
        assert_eq!(s.mfu.comm, None);
        assert!((s.hfu.unwrap().compute.unwrap() - 0.6).abs() < 1e-12);
        assert_eq!(s.tokens_per_second.compute, Some(400.0));
        assert_eq!(s.exposed_comm_s, Some(1.0));
        assert_eq!(s.hidden_fraction, Some(0.75));
        assert_eq!(s.overlap_efficiency, Some(0.75));
        assert!((s.overlap_speedup.unwrap() - 14.0 / 11.0).abs() < 1e-12);
        assert_eq!(s.contention.gemm, Some(1.1));
        assert_eq!(s.contention.allreduce, Some(1.25));
        // 4 GB in 4 s: 1 GB/s algbw, busbw 1 · 2·3/4 = 1.5.
        assert_eq!(s.allreduce.algbw_gbps, Some(1.0));
        assert_eq!(s.allreduce.busbw_gbps, Some(1.5));
        assert!(s.stragglers.is_empty());
    }

    #[test]
    fn cluster_step_is_max_over_ranks() {
        let ranks = vec![rank(0, "a", 1.0), rank(1, "b", 1.2)];
        assert_eq!(
            cluster_step_times(&ranks, Mode::Compute),
            vec![12.0, 12.0, 12.0]
        );
    }

    #[test]
    fn straggler_named_with_host_and_device() {
        let mut ranks: Vec<RankRecord> = (0..8)
            .map(|r| rank(r, if r < 4 { "node-a" } else { "node-b" }, 1.0))
            .collect();
        ranks[5] = rank(5, "node-b", 1.081);
        let (s, hosts) = find_stragglers(&ranks, 0.05);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].rank, 5);
        assert_eq!(hosts, vec!["node-b".to_string()]);
        assert_eq!(
            s[0].reason,
            "rank 5 (node-b, GPU 5): compute step 8.1 % slower than the median"
        );
    }

    #[test]
    fn run_record_modes_serialize_by_name() {
        let r = rank(0, "a", 1.0);
        let j = serde_json::to_value(&r).unwrap();
        assert!(j["modes"]["overlapped"]["step_time_s"].is_array());
    }
}

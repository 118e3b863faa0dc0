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
use std::collections::{BTreeMap, BTreeSet};

use crate::aggregate::{
    self, CriticalRank, NodeContention, NodeMode, NodeRecord, RankBrief, RankShards,
};
use crate::config::{BackendKind, Config, Mode, Schedule};
use crate::metrics::{self, Collective};
use crate::parallel::Group;
use crate::plan::StepPlan;
use crate::stats::{self, MedianCi, Stats};

/// Version of the run.json layout written by this build. 2: interleaved
/// schedule (`step_start_s`, per-iteration busy times), paired figures with
/// `summary.ci95` and `summary.flags`, the peak as a run input. 3:
/// `config.parallel`, `plan.collectives` (and `plan.collective_ops`, each
/// collective's kind and group by span index), per-iteration busy and exposed
/// times per collective kind (`collective_busy_s`, `collective_exposed_s`)
/// and `summary.collectives`; every new field has a default, so files of
/// versions 1 and 2 read as DDP runs. 4: a run of more than
/// [`aggregate::SHARD_ABOVE_RANKS`] ranks keeps its rank records in one
/// file per node (`rank_shards`) and the per-node aggregates (`nodes`) in
/// run.json, without `ranks`; the contention ratios and the last bucket's
/// tail are medians of the nodes' medians.
pub const SCHEMA_VERSION: u32 = 4;

/// The `vary.json` schema of `mfubench run --vary` (a run of several
/// variants, each an ordinary run.json): defined with the comparison it
/// holds, in [`crate::vary`].
pub use crate::vary::{
    VariantEntry, VariantStatus, VariantVerdict, VaryRecord, WithCi, VARY_SCHEMA_VERSION,
};

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

impl<T> PerMode<T> {
    /// A reference to the value of one mode.
    pub fn get_ref(&self, mode: Mode) -> Option<&T> {
        match mode {
            Mode::Compute => self.compute.as_ref(),
            Mode::Comm => self.comm.as_ref(),
            Mode::Serialized => self.serialized.as_ref(),
            Mode::Overlapped => self.overlapped.as_ref(),
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
    /// Index into the plan's collectives (collectives other than DDP's
    /// buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective: Option<usize>,
    /// Start, seconds after the step's start. A collective's span starts
    /// at the last arrival of its group's ranks (its own time), where the
    /// ranks' clocks were aligned; this rank's own arrival is `arrived_s`.
    pub start_s: f64,
    /// End, seconds after the step's start.
    pub end_s: f64,
    /// Collectives whose ranks' clocks were aligned: when this rank arrived
    /// (started the call), seconds after the step's start; `start_s −
    /// arrived_s` it waited for the last rank of its group. Absent for
    /// GEMMs, and in runs written before collectives were timed from the
    /// last arrival (their spans include the waiting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrived_s: Option<f64>,
}

/// What one rank measured in one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeRecord {
    /// Step time of every timed iteration, seconds.
    pub step_time_s: Vec<f64>,
    /// When each timed step started, seconds since the rank's first timed
    /// step of the run (same length as `step_time_s`): shows the
    /// interleaving of the modes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_start_s: Vec<f64>,
    /// Per timed iteration, the summed duration of the GEMMs (compute
    /// stream), seconds; pairs the contention figures per iteration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gemm_busy_s: Vec<f64>,
    /// Per timed iteration, the summed duration of the all-reduces (comm
    /// stream), seconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allreduce_busy_s: Vec<f64>,
    /// Per timed iteration, the summed duration of each kind of collective
    /// (key [`CollectiveInfo::key`], e.g. `all_gather/dp_shard`), seconds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub collective_busy_s: BTreeMap<String, Vec<f64>>,
    /// Per timed iteration, the time during which a collective of the kind
    /// ran and no GEMM did ([`metrics::uncovered_s`]), seconds; modes with
    /// GEMMs and collectives only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub collective_exposed_s: BTreeMap<String, Vec<f64>>,
    /// Per timed iteration, the time during which any collective ran (from
    /// its last arrival) and no GEMM did (the union of every collective's
    /// spans, less the GEMMs'), seconds; modes with GEMMs and collectives
    /// only. The exposed collective part of [`ExposedBreakdown`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comm_exposed_s: Vec<f64>,
    /// Per timed iteration, the time this rank waited at its collectives
    /// for the last rank of their group to arrive (Σ over the step's
    /// collectives of `start_s − arrived_s`), seconds; runs whose ranks'
    /// clocks were aligned only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wait_for_peers_s: Vec<f64>,
    /// Per timed iteration, the time this rank waited for peers at a
    /// collective while no GEMM and no other collective ran (the exposed
    /// part of `wait_for_peers_s`; beside `comm_exposed_s` in
    /// [`ExposedBreakdown`]), seconds; modes with GEMMs and collectives,
    /// runs whose ranks' clocks were aligned only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wait_exposed_s: Vec<f64>,
    /// Per-op median durations (collectives: from the last arrival).
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
    /// How busy this rank's host was when the run started (recorded by the
    /// host's local rank 0 only; absent in runs written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_load: Option<HostLoad>,
    /// This rank's clock against rank 0's, measured before the timed steps
    /// (what puts the ranks' arrivals at a collective on one time line);
    /// absent in runs written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<crate::clock::ClockOffset>,
    /// This rank's warmup round times, seconds (the sum of its untimed
    /// steps in each round; what [`crate::warmup::WarmupRule`] judged);
    /// absent in runs written before adaptive warmup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warmup_round_s: Vec<f64>,
}

/// How shared a host was at the start of a run: the measured rates of an
/// oversubscribed or busy host are lower than its hardware gives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostLoad {
    /// Cores the ranks may run on (the CPU affinity of local rank 0).
    #[serde(default)]
    pub cores: u64,
    /// Ranks of this run on the host.
    #[serde(default)]
    pub ranks: u64,
    /// 1-minute load average at start (`/proc/loadavg`).
    #[serde(default)]
    pub load_avg_1m: f64,
    /// Run ids of other mfubench runs whose workers ran on the host at start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_runs: Vec<String>,
}

impl HostLoad {
    /// More ranks than cores.
    pub fn oversubscribed(&self) -> bool {
        self.cores > 0 && self.ranks > self.cores
    }

    /// Why the host was shared, or None: more ranks than cores, another
    /// mfubench run, or a load average above the core count.
    pub fn shared_reason(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.oversubscribed() {
            why.push(format!(
                "oversubscribed: {} ranks on {} cores",
                self.ranks, self.cores
            ));
        }
        if !self.other_runs.is_empty() {
            why.push(format!(
                "another mfubench run on the host ({})",
                self.other_runs.join(", ")
            ));
        }
        if self.cores > 0 && self.load_avg_1m > self.cores as f64 {
            why.push(format!(
                "busy: load average {:.2} above its {} cores at start",
                self.load_avg_1m, self.cores
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
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

/// One kind of collective on one group: what a step moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectiveInfo {
    /// All-reduce, all-gather or reduce-scatter.
    pub kind: Collective,
    /// The group it runs on.
    pub group: Group,
    /// Ranks in the group.
    pub group_size: u64,
    /// Collectives of this kind per step.
    pub count: usize,
    /// Bytes per step: the sum of the collectives' nccl-tests sizes
    /// (all-reduced buffer, all-gather output, reduce-scatter input).
    pub bytes: u64,
}

impl CollectiveInfo {
    /// `kind/group`, e.g. `reduce_scatter/dp_shard`: the key of the
    /// per-iteration maps of [`ModeRecord`].
    pub fn key(&self) -> String {
        collective_key(self.kind, self.group)
    }

    /// The kinds of a plan's collectives, in order of first use.
    pub fn of(plan: &StepPlan) -> Vec<CollectiveInfo> {
        let mut out: Vec<CollectiveInfo> = Vec::new();
        for c in &plan.collectives {
            match out
                .iter_mut()
                .find(|i| i.kind == c.kind && i.group == c.group)
            {
                Some(i) => {
                    i.count += 1;
                    i.bytes += c.bytes;
                }
                None => out.push(CollectiveInfo {
                    kind: c.kind,
                    group: c.group,
                    group_size: c.group_size,
                    count: 1,
                    bytes: c.bytes,
                }),
            }
        }
        out
    }
}

/// The key of a kind of collective: `kind/group`.
pub fn collective_key(kind: Collective, group: Group) -> String {
    format!("{}/{}", kind.name(), group.name())
}

/// FLOPs of one benchmark step, per rank.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlopsPerStep {
    /// Σ 2·M·N·K over forward and backward GEMMs (no recomputation).
    pub model: f64,
    /// Model FLOPs plus recomputed forward FLOPs.
    pub hardware: f64,
    /// 6·N·T for the N (active) parameters of the executed layers.
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
    /// The step's collectives by kind and group (absent in files of
    /// schema 2 and older).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collectives: Vec<CollectiveInfo>,
    /// Kind and group of each of the plan's collectives, by index
    /// ([`Span::collective`]): the timeline draws each group's collectives
    /// of a kind on a lane of their own. Empty for DDP (its buckets share
    /// one comm lane) and in older files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collective_ops: Vec<CollectiveRef>,
}

/// What a span of one of the plan's collectives ran: its kind and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectiveRef {
    /// All-reduce, all-gather or reduce-scatter.
    pub kind: Collective,
    /// The group it ran on.
    pub group: Group,
}

impl PlanInfo {
    /// Describes a plan (`params` = weights in the executed blocks).
    pub fn of(plan: &StepPlan, config: &Config) -> PlanInfo {
        let m = &config.model;
        // The active parameters of the executed blocks (MoE: top_k routed
        // experts of each MoE block).
        let params: u64 = (0..plan.layers).map(|l| m.active_params_of_layer(l)).sum();
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
            collectives: CollectiveInfo::of(plan),
            collective_ops: if plan.collectives.iter().all(|c| c.bucket.is_some()) {
                Vec::new()
            } else {
                plan.collectives
                    .iter()
                    .map(|c| CollectiveRef {
                        kind: c.kind,
                        group: c.group,
                    })
                    .collect()
            },
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
    /// Ranks of the data-parallel group the gradient all-reduces run on
    /// (the world in plain DDP, the replicas with tensor parallelism).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_size: Option<u64>,
    /// The gradient all-reduces' time per step, seconds: the comm-mode
    /// cluster step T_a in plain DDP (the step is those all-reduces); with
    /// other collectives in the step (tensor parallelism), the buckets' own
    /// comm-mode busy time (max over ranks per round, median).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_s: Option<f64>,
    /// 95 % interval of `time_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_s_ci95: Option<[f64; 2]>,
    /// bytes / time, GB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algbw_gbps: Option<f64>,
    /// algbw · 2(n−1)/n with n = `group_size`, GB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busbw_gbps: Option<f64>,
}

/// One kind of collective's figures: size and bandwidth from comm mode,
/// exposure in the serialized and overlapped steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectiveSummary {
    /// All-reduce, all-gather or reduce-scatter.
    pub kind: Collective,
    /// The group it runs on.
    pub group: Group,
    /// Ranks in the group.
    pub group_size: u64,
    /// Collectives of this kind per step.
    pub count: usize,
    /// Bytes per step (nccl-tests sizes, summed).
    pub bytes: u64,
    /// Comm mode: their summed time per step, seconds (per iteration the
    /// max over ranks; the median over iterations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_s: Option<f64>,
    /// 95 % interval of `time_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_s_ci95: Option<[f64; 2]>,
    /// bytes / time_s, GB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algbw_gbps: Option<f64>,
    /// algbw × the kind's bus factor (all-reduce 2(n−1)/n, all-gather and
    /// reduce-scatter (n−1)/n), GB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busbw_gbps: Option<f64>,
    /// 95 % interval of `busbw_gbps` (from that of `time_s`: the bandwidth
    /// is a decreasing function of the time, so its interval's ends are the
    /// time interval's, swapped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busbw_gbps_ci95: Option<[f64; 2]>,
    /// Overlapped mode: seconds per step during which this kind ran and no
    /// GEMM did (per iteration the max over ranks; the median).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_s: Option<f64>,
    /// 95 % interval of `exposed_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_s_ci95: Option<[f64; 2]>,
    /// 1 − exposed / comm-mode time, per iteration (paired), the median:
    /// the share of this kind's communication that overlap hides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_fraction: Option<f64>,
    /// 95 % interval of `hidden_fraction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_fraction_ci95: Option<[f64; 2]>,
    /// Serialized mode: the same exposure, for comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialized_exposed_s: Option<f64>,
    /// 95 % interval of `serialized_exposed_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialized_exposed_s_ci95: Option<[f64; 2]>,
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

/// T_o − T_c of a round split by cause (see [`metrics::exposed_breakdown`]);
/// in the summary, each part's median over rounds (the medians of the
/// parts need not add up to the median of the whole; per round they do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ExposedBreakdown<T = f64> {
    /// GEMM time on the critical path, overlapped minus compute mode: GEMMs
    /// slowed by the collectives running beside them (contention for
    /// cores, memory bandwidth, SMs).
    pub gemm_slowdown_s: T,
    /// Time on the overlapped step's critical path (its slowest rank)
    /// during which a collective ran and no GEMM did: communication that
    /// overlap did not hide.
    pub exposed_collective_s: T,
    /// Time on the critical rank during which it waited at a collective
    /// for a peer that had not arrived, while no GEMM and no collective ran
    /// (0 in runs written before collectives were timed from the last
    /// arrival, whose exposed collective time includes it).
    #[serde(default)]
    pub waiting_for_peers_s: T,
    /// The rest of T_o − T_c: barrier exit skew, launch gaps, waits
    /// between ops.
    pub sync_skew_s: T,
}

/// How many timed rounds a figure needs to tell an effect of a given size
/// from no effect at 80 % power ([`Flag::iterations_for_effect`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EffectRounds {
    /// The effect, in the figure's unit away from its no-effect value
    /// (0.1: a speedup of 1.1, or a hidden fraction of 10 points).
    pub effect: f64,
    /// Rounds needed at the observed noise; None: more than
    /// [`crate::config::limits::MAX_ITERATIONS`] (reduce the noise instead).
    pub rounds: Option<u64>,
}

/// 95 % confidence intervals `[lo, hi]` of the summary's figures (see
/// [`crate::stats::median_ci95`]): of the step times per mode, and of every
/// figure that compares modes, computed per iteration from that
/// iteration's steps (paired) and summarised by its median.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ci95 {
    /// Cluster step time per mode.
    #[serde(default)]
    pub step_time_s: PerMode<[f64; 2]>,
    /// MFU per mode (from the step-time interval).
    #[serde(default)]
    pub mfu: PerMode<[f64; 2]>,
    /// Sustained MFU per mode: the bootstrap interval of the mean step
    /// ([`stats::mean_ci95`]), inverted.
    #[serde(default)]
    pub mfu_sustained: PerMode<[f64; 2]>,
    /// T_o − T_c.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_comm_s: Option<[f64; 2]>,
    /// (T_o − T_c) / T_o.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_comm_fraction: Option<[f64; 2]>,
    /// (T_s − T_c) / T_s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialized_overhead: Option<[f64; 2]>,
    /// 1 − exposed collective / T_a.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_fraction: Option<[f64; 2]>,
    /// (T_c + T_a − T_o) / T_a.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_hidden_fraction: Option<[f64; 2]>,
    /// The parts of T_o − T_c.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_breakdown: Option<ExposedBreakdown<Option<[f64; 2]>>>,
    /// T_s / T_o.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_speedup: Option<[f64; 2]>,
    /// median(T_s − T_o) / median(T_s − T_ideal): a bootstrap interval
    /// over whole rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_efficiency: Option<[f64; 2]>,
    /// T_s − T_ideal, the largest gain overlap could give (the
    /// efficiency's denominator), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achievable_gain_s: Option<[f64; 2]>,
    /// GEMM slowdown under overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contention_gemm: Option<[f64; 2]>,
    /// All-reduce slowdown under overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contention_allreduce: Option<[f64; 2]>,
    /// Paired iterations behind the mode-comparing intervals.
    #[serde(default)]
    pub paired_iterations: usize,
    /// Exact coverage of those intervals (below 0.95 with fewer than 6
    /// iterations).
    #[serde(default)]
    pub coverage: f64,
}

/// Something about a figure a reader must know before trusting it: its
/// interval spans "no effect", or the modes are in an impossible order.
/// Acceptance rules on a flagged figure are INCONCLUSIVE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// Stable name, e.g. `overlap_gain_within_noise`.
    pub name: String,
    /// The summary field it concerns, e.g. `overlap_speedup`.
    pub figure: String,
    /// One line for people.
    pub message: String,
    /// The smallest effect (distance from the figure's no-effect value)
    /// the figure's rounds detect with 80 % power at the observed noise
    /// (two-sided 5 %): 1.43 × the interval's half-width. A property of the
    /// noise, not of the observed effect (no "observed power").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_detectable_effect: Option<f64>,
    /// Rounds needed to detect practical effects (10 % and 5 %) at the
    /// observed noise (the half-width shrinks as 1/√rounds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iterations_for_effect: Vec<EffectRounds>,
}

/// The cluster-wide figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How the timed steps of the modes were ordered.
    #[serde(default = "blocked")]
    pub schedule: Schedule,
    /// Median cluster step time per mode, seconds (cluster step of an
    /// iteration = max over ranks).
    pub step_time_s: PerMode<f64>,
    /// Median, p95, min and max of the cluster step times per mode.
    pub step_time_stats: PerMode<Stats>,
    /// Model FLOPs utilisation per mode at the median step (no value for
    /// comm mode).
    pub mfu: PerMode<f64>,
    /// Sustained MFU per mode: total model FLOPs over the total time of the
    /// timed rounds (the mean cluster step), so stalls count.
    #[serde(default)]
    pub mfu_sustained: PerMode<f64>,
    /// Hardware FLOPs utilisation, when recomputation is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hfu: Option<PerMode<f64>>,
    /// Achieved model TFLOP/s per device.
    pub tflops_per_device: PerMode<f64>,
    /// Tokens per second, whole cluster, of the executed slice
    /// (`run.layers` blocks): a step of the whole model takes longer.
    pub tokens_per_second: PerMode<f64>,
    /// Tokens per second of the whole model (`model.layers` blocks, the LM
    /// head once): the slice's rate × run.layers / model.layers.
    #[serde(default)]
    pub full_model_tokens_per_second: PerMode<f64>,
    /// T_o − T_c, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_comm_s: Option<f64>,
    /// (T_o − T_c) / T_o.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_comm_fraction: Option<f64>,
    /// (T_s − T_c) / T_s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialized_overhead: Option<f64>,
    /// T_o − T_c split by cause, per round, medians over rounds (records
    /// with `comm_exposed_s` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_breakdown: Option<ExposedBreakdown>,
    /// Hidden fraction of communication: median over rounds of 1 − exposed
    /// collective / T_a (the collective time overlap left on the critical
    /// path, against what the collectives take alone). Records without
    /// `comm_exposed_s`: absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_fraction: Option<f64>,
    /// Step-based hidden fraction, median over rounds of (T_c + T_a − T_o)
    /// / T_a: counts GEMM slowdown and sync skew as exposed communication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_hidden_fraction: Option<f64>,
    /// T_s / T_o.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_speedup: Option<f64>,
    /// (T_s − T_o) / (T_s − T_ideal), T_ideal = max(T_c + tail, T_a), the
    /// tail being the part of the last bucket's all-reduce no schedule can
    /// hide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_efficiency: Option<f64>,
    /// The last bucket's exposed tail, seconds (median over ranks of its
    /// comm-mode time minus the compute after its last gradient).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_bucket_tail_s: Option<f64>,
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
    /// Trend of the cluster step over the rounds, per mode (8 rounds or
    /// more): the change over the run and its Mann–Kendall p-value.
    #[serde(default)]
    pub step_time_trend: PerMode<stats::Trend>,
    /// Telemetry samples that show throttling (a throttle reason, or the
    /// SM clock at a mode's end 10 % or more below its start), one line
    /// each: `rank R (HOST, DEVICE), MODE at end: …`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clocks_throttled: Vec<String>,
    /// 95 % confidence intervals of the figures above.
    #[serde(default)]
    pub ci95: Ci95,
    /// Rounds behind each paired figure's interval (key: the summary
    /// field, e.g. `overlap_efficiency`): rounds where the figure is
    /// undefined are left out, so it can be below `ci95.paired_iterations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci95_n: BTreeMap<String, usize>,
    /// Exact coverage of each paired figure's interval (same keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci95_coverage: BTreeMap<String, f64>,
    /// Figures not to be trusted as they stand, and why.
    #[serde(default)]
    pub flags: Vec<Flag>,
    /// Per kind of collective and group (schema 3; DDP has one row, the
    /// bucket all-reduces).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collectives: Vec<CollectiveSummary>,
    /// Per mode with collectives, each rank's median over rounds of the
    /// time it waited at the collectives for the last rank of their group
    /// (index: rank), seconds: the ranks that wait are victims, one that
    /// never waits is the one they wait for. Runs whose ranks' clocks were
    /// aligned only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub wait_for_peers_s: BTreeMap<Mode, Vec<f64>>,
    /// How warmup ended: rounds run, the rule, whether every rank's step
    /// time had stopped getting faster (None for a fixed count; absent in
    /// runs written before adaptive warmup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<crate::warmup::WarmupOutcome>,
}

fn blocked() -> Schedule {
    Schedule::Blocked
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
    /// The peak MFU is computed against (an input of the summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak: Option<PeakChoice>,
    /// False while the run is still going (or if it stopped early): the file
    /// then holds the modes completed so far; true once every mode ran.
    #[serde(default = "yes")]
    pub complete: bool,
    /// Per-rank records, ordered by rank. A run of more than
    /// [`aggregate::SHARD_ABOVE_RANKS`] ranks writes them to one file per
    /// node instead (`rank_shards`) and leaves this empty in run.json;
    /// readers fill it from the shards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranks: Vec<RankRecord>,
    /// Per-node aggregates the summary was computed from, in order of each
    /// node's first rank (sharded runs only; otherwise they are computed
    /// from `ranks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeRecord>,
    /// Where the rank records are when they are not in this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_shards: Option<RankShards>,
    /// Cluster-wide figures.
    pub summary: Summary,
}

fn yes() -> bool {
    true
}

/// The peak chosen for a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PeakChoice {
    /// Dense peak TFLOP/s per device.
    pub tflops: f64,
    /// Where it came from.
    pub source: PeakSource,
}

/// Runs above this many ranks keep timelines for a sample of ranks only
/// ([`timeline_sample`]).
pub const TIMELINE_SAMPLE_ABOVE: usize = 64;

/// The mode whose timelines choose the ranks shown: the first of
/// overlapped, serialized, compute, comm that any rank recorded one in.
pub fn timeline_mode(ranks: &[RankRecord]) -> Option<Mode> {
    TIMELINE_MODES.into_iter().find(|&m| {
        ranks
            .iter()
            .any(|r| r.modes.get(&m).is_some_and(|x| !x.timeline.is_empty()))
    })
}

/// Ranks (indices) ordered by their median step in `mode`, fastest first,
/// ties by index; ranks without that mode are left out.
pub fn ranks_by_step(ranks: &[RankRecord], mode: Mode) -> Vec<(usize, f64)> {
    let mut v: Vec<(usize, f64)> = ranks
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, stats::median(&r.modes.get(&mode)?.step_time_s)?)))
        .collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    v
}

/// The ranks (indices) whose timelines a large run keeps: the slowest and
/// the median rank of the whole run (the report's two timelines, by
/// [`ranks_by_step`] in [`timeline_mode`]), the slowest, median and fastest
/// rank of each node, and every straggler (world ranks in `stragglers`).
pub fn timeline_sample(ranks: &[RankRecord], stragglers: &[u64]) -> BTreeSet<usize> {
    let mut keep = BTreeSet::new();
    let Some(mode) = timeline_mode(ranks) else {
        return keep;
    };
    let order = ranks_by_step(ranks, mode);
    if let (Some(s), Some(m)) = (order.last(), order.get(order.len().saturating_sub(1) / 2)) {
        keep.insert(s.0);
        keep.insert(m.0);
    }
    let mut by_host: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &(i, _) in &order {
        by_host.entry(ranks[i].host.as_str()).or_default().push(i);
    }
    for v in by_host.values() {
        for i in [v[0], v[(v.len() - 1) / 2], v[v.len() - 1]] {
            keep.insert(i);
        }
    }
    for (i, r) in ranks.iter().enumerate() {
        if stragglers.contains(&r.rank) {
            keep.insert(i);
        }
    }
    keep
}

/// Above `above` ranks, clears the timelines of the ranks outside
/// [`timeline_sample`] (see [`RunRecord::keep_timeline_sample`]).
pub fn keep_timeline_sample(ranks: &mut [RankRecord], stragglers: &[u64], above: usize) {
    if ranks.len() <= above {
        return;
    }
    let keep = timeline_sample(ranks, stragglers);
    for (i, r) in ranks.iter_mut().enumerate() {
        if !keep.contains(&i) {
            for m in r.modes.values_mut() {
                m.timeline.clear();
            }
        }
    }
}

/// The hosts that were shared at the start (oversubscribed or busy), each
/// with why, in node order (see [`RunRecord::shared_hosts`]).
pub fn shared_hosts_of(nodes: &[NodeRecord]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for n in nodes {
        if let Some(why) = n.host_load.as_ref().and_then(HostLoad::shared_reason) {
            if !out.iter().any(|(h, _)| *h == n.host) {
                out.push((n.host.clone(), why));
            }
        }
    }
    out
}

/// What a run record is made of, apart from the measurements.
#[derive(Debug, Clone)]
pub struct RunMeta {
    /// Run identifier.
    pub run_id: String,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// End time, RFC 3339 UTC.
    pub finished_at: String,
    /// How the run was launched.
    pub launch: LaunchInfo,
    /// Library and driver versions.
    pub versions: BTreeMap<String, String>,
    /// Allow-listed environment.
    pub env: BTreeMap<String, String>,
    /// Whether every mode ran.
    pub complete: bool,
}

impl RunRecord {
    /// The hosts that were shared at the start (oversubscribed or busy),
    /// each with why, in host order.
    pub fn shared_hosts(&self) -> Vec<(String, String)> {
        shared_hosts_of(&self.node_records())
    }

    /// Assembles a run record and computes its summary (pure: the caller
    /// gathered the rank records and the metadata).
    pub fn new(
        config: &Config,
        plan: &StepPlan,
        peak: PeakChoice,
        meta: RunMeta,
        ranks: Vec<RankRecord>,
    ) -> RunRecord {
        let mut hosts: Vec<String> = Vec::new();
        let mut seen = BTreeSet::new();
        for rec in &ranks {
            if seen.insert(rec.host.as_str()) {
                hosts.push(rec.host.clone());
            }
        }
        let world = ranks.len() as u64;
        let mut run = RunRecord::assemble(config, plan, peak, meta, world, hosts, ranks);
        run.summary = summarize(
            &run.ranks,
            run.summary_inputs(config.acceptance.straggler_tolerance),
        );
        run.keep_timeline_sample(TIMELINE_SAMPLE_ABOVE);
        run
    }

    /// A sharded run's record: the summary computed from the per-node
    /// aggregates (any order: they are put in order of each node's first
    /// rank), the rank records left in `shards`.
    pub fn of_nodes(
        config: &Config,
        plan: &StepPlan,
        peak: PeakChoice,
        meta: RunMeta,
        mut nodes: Vec<NodeRecord>,
        shards: RankShards,
    ) -> RunRecord {
        nodes.sort_by_key(|n| n.ranks.iter().map(|b| b.rank).min());
        let hosts = nodes.iter().map(|n| n.host.clone()).collect();
        let world = nodes.iter().map(|n| n.ranks.len() as u64).sum();
        let mut run = RunRecord::assemble(config, plan, peak, meta, world, hosts, Vec::new());
        run.summary = summarize_nodes(
            &nodes,
            run.summary_inputs(config.acceptance.straggler_tolerance),
        );
        run.nodes = nodes;
        run.rank_shards = Some(shards);
        run
    }

    /// The record without its measurements' summary.
    fn assemble(
        config: &Config,
        plan: &StepPlan,
        peak: PeakChoice,
        meta: RunMeta,
        world: u64,
        hosts: Vec<String>,
        ranks: Vec<RankRecord>,
    ) -> RunRecord {
        let plan_info = PlanInfo::of(plan, config);
        RunRecord {
            schema_version: SCHEMA_VERSION,
            tool_version: crate::TOOL_VERSION.to_string(),
            run_id: meta.run_id,
            started_at: meta.started_at,
            finished_at: meta.finished_at,
            config: config.clone(),
            backend: config.run.backend,
            world_size: world,
            hosts,
            launch: meta.launch,
            versions: meta.versions,
            env: meta.env,
            plan: plan_info,
            peak: Some(peak),
            complete: meta.complete,
            ranks,
            nodes: Vec::new(),
            rank_shards: None,
            summary: Summary::empty(peak),
        }
    }

    /// The per-node aggregates: run.json's where the rank records are in
    /// shards, else computed from the rank records.
    pub fn node_records(&self) -> std::borrow::Cow<'_, [NodeRecord]> {
        if self.ranks.is_empty() {
            std::borrow::Cow::Borrowed(&self.nodes)
        } else {
            std::borrow::Cow::Owned(aggregate::nodes_of(&self.ranks, &self.plan))
        }
    }

    /// Cluster step times of a mode ([`cluster_step_times`]), from the rank
    /// records, or from the per-node aggregates where run.json left the
    /// rank records in shards.
    pub fn cluster_step_times(&self, mode: Mode) -> Vec<f64> {
        if self.ranks.is_empty() {
            node_step_times(&self.nodes, mode)
        } else {
            cluster_step_times(&self.ranks, mode)
        }
    }

    /// The ranks a large run keeps timelines of, in world ranks, that a
    /// node alone cannot know: the slowest and the median rank of the run
    /// (by their median step in [`timeline_mode`]) and every straggler.
    /// Each node leader adds its own slowest, median and fastest rank
    /// ([`timeline_sample`] over the node's ranks with these as the kept
    /// ranks), which together make the flat [`timeline_sample`].
    pub fn timeline_keep_of_nodes(nodes: &[NodeRecord], stragglers: &[u64]) -> Vec<u64> {
        let mut keep: Vec<u64> = stragglers.to_vec();
        if let Some(mode) = timeline_mode_of_nodes(nodes) {
            let order = step_order(nodes, mode);
            if let (Some(s), Some(m)) = (order.last(), order.get(order.len().saturating_sub(1) / 2))
            {
                keep.extend([s.0, m.0]);
            }
        }
        keep.sort_unstable();
        keep.dedup();
        keep
    }

    /// Above `above` ranks, drops the timelines of every rank outside
    /// [`timeline_sample`] (the report draws only the slowest and the median
    /// rank; a timeline is half of a rank's record). The summary does not
    /// read timelines, so it is unchanged.
    pub fn keep_timeline_sample(&mut self, above: usize) {
        let stragglers: Vec<u64> = self.summary.stragglers.iter().map(|s| s.rank).collect();
        keep_timeline_sample(&mut self.ranks, &stragglers, above);
    }

    /// The inputs of [`summarize`] this record holds, with a straggler
    /// tolerance (the config's, or a report's override). The peak comes
    /// from `peak`; files written before schema 2 only have it in the
    /// stored summary.
    pub fn summary_inputs(&self, straggler_tolerance: f64) -> SummaryInputs<'_> {
        let peak = self.peak.unwrap_or(PeakChoice {
            tflops: self.summary.peak_tflops,
            source: self.summary.peak_source,
        });
        SummaryInputs {
            plan: &self.plan,
            peak_tflops: peak.tflops,
            peak_source: peak.source,
            straggler_tolerance,
            recompute: self.config.run.recompute,
            schedule: self.config.run.schedule,
            model_layers: self.config.model.layers,
            warmup: crate::warmup::WarmupRule::of_run(&self.config.run),
        }
    }
}

impl Summary {
    fn empty(peak: PeakChoice) -> Summary {
        Summary {
            schedule: Schedule::default(),
            step_time_s: PerMode::default(),
            step_time_stats: PerMode::default(),
            mfu: PerMode::default(),
            mfu_sustained: PerMode::default(),
            hfu: None,
            tflops_per_device: PerMode::default(),
            tokens_per_second: PerMode::default(),
            full_model_tokens_per_second: PerMode::default(),
            exposed_comm_s: None,
            exposed_comm_fraction: None,
            serialized_overhead: None,
            exposed_breakdown: None,
            hidden_fraction: None,
            step_hidden_fraction: None,
            overlap_speedup: None,
            overlap_efficiency: None,
            last_bucket_tail_s: None,
            contention: Contention::default(),
            allreduce: AllreduceSummary::default(),
            flops_per_step: FlopsPerStep {
                model: 0.0,
                hardware: 0.0,
                six_n: 0.0,
                six_n_attention: 0.0,
            },
            peak_tflops: peak.tflops,
            peak_source: peak.source,
            wrong: 0,
            stragglers: Vec::new(),
            slow_hosts: Vec::new(),
            step_time_trend: PerMode::default(),
            clocks_throttled: Vec::new(),
            ci95: Ci95::default(),
            ci95_n: BTreeMap::new(),
            ci95_coverage: BTreeMap::new(),
            flags: Vec::new(),
            collectives: Vec::new(),
            wait_for_peers_s: BTreeMap::new(),
            warmup: None,
        }
    }
}

/// Per iteration, the max over ranks of one key's values in a mode (None
/// when a rank lacks them): the max of the nodes' maxima.
fn per_iteration_max(
    nodes: &[NodeRecord],
    mode: Mode,
    pick: impl Fn(&NodeMode) -> Option<&Vec<f64>>,
) -> Option<Vec<f64>> {
    let per_node: Vec<&Vec<f64>> = nodes
        .iter()
        .map(|n| {
            n.modes
                .get(&mode)
                .filter(|_| n.all_ran(mode))
                .and_then(&pick)
        })
        .collect::<Option<_>>()?;
    aggregate::max_per_iteration(per_node.iter().map(|v| v.as_slice()))
}

/// The data-parallel gradient all-reduces (DDP's buckets): bytes, their
/// group's size, their time and bandwidth. Plain DDP: the comm step T_a on
/// the world, or, where the ranks' clocks were aligned, the all-reduces'
/// own time in comm steps (from each one's last arrival: a slower peer's
/// lateness is its waiting, not the collective's time). With other collectives in the step (tensor parallelism), the
/// buckets' own comm-mode busy time on their group, so that neither the
/// TP all-reduces' time nor the world size enters their busbw. No buckets
/// (FSDP, HSDP): no figures (see `collectives`).
fn gradient_allreduce(
    nodes: &[NodeRecord],
    plan: &PlanInfo,
    steps: &PerMode<Vec<f64>>,
    world: u64,
) -> AllreduceSummary {
    let bytes = plan.allreduce_bytes();
    let (group_size, times) = gradient_allreduce_times(nodes, plan, steps, world);
    let time_s = times.as_deref().and_then(stats::median);
    let algbw = time_s
        .filter(|t| bytes > 0 && *t > 0.0)
        .map(|t| metrics::algbw_gbps(bytes as f64, t));
    AllreduceSummary {
        bytes,
        buckets: plan.buckets.len(),
        group_size: (bytes > 0).then_some(group_size),
        time_s,
        time_s_ci95: bounds(times.as_deref().and_then(stats::median_ci95)),
        algbw_gbps: algbw,
        busbw_gbps: algbw.map(|a| metrics::busbw_gbps(a, group_size)),
    }
}

/// The gradient all-reduces' group size and time per round (see
/// [`gradient_allreduce`]).
fn gradient_allreduce_times(
    nodes: &[NodeRecord],
    plan: &PlanInfo,
    steps: &PerMode<Vec<f64>>,
    world: u64,
) -> (u64, Option<Vec<f64>>) {
    let only_buckets = plan.collective_ops.is_empty();
    let dp = plan
        .collectives
        .iter()
        .find(|c| c.kind == Collective::AllReduce && c.group != Group::Tp);
    match dp {
        Some(info) if !only_buckets => (
            info.group_size,
            per_iteration_max(nodes, Mode::Comm, |m| {
                m.collective_busy_max_s.get(&info.key())
            }),
        ),
        _ => {
            let aligned = nodes
                .iter()
                .all(|n| n.modes.get(&Mode::Comm).is_some_and(|m| m.waits_recorded));
            let own = per_iteration_max(nodes, Mode::Comm, |m| m.allreduce_busy_max_s.as_ref());
            match own {
                Some(t) if aligned && !nodes.is_empty() => (world, Some(t)),
                _ => (world, steps.get_ref(Mode::Comm).cloned()),
            }
        }
    }
}

/// Per-round values of the figures a comparison of two runs judges
/// (`mfubench compare`), each computed per round as the summary does: key
/// `step_time_s.<mode>` (cluster step), `overlap_speedup`,
/// `exposed_comm_fraction`, `hidden_fraction` and `allreduce_time_s` (the
/// gradient all-reduces' time). Rounds where a figure is undefined are
/// left out; figures a run cannot give are absent.
pub fn round_series(ranks: &[RankRecord], plan: &PlanInfo) -> BTreeMap<String, Vec<f64>> {
    round_series_of_nodes(&aggregate::nodes_of(ranks, plan), plan)
}

/// [`round_series`] over node records.
pub fn round_series_of_nodes(nodes: &[NodeRecord], plan: &PlanInfo) -> BTreeMap<String, Vec<f64>> {
    let world = world_of(nodes);
    let steps = PerMode::from_fn(|m| {
        let v = node_step_times(nodes, m);
        (!v.is_empty()).then_some(v)
    });
    let mut out = BTreeMap::new();
    for m in Mode::ALL {
        if let Some(v) = steps.get_ref(m) {
            out.insert(format!("step_time_s.{m}"), v.clone());
        }
    }
    let n = Mode::ALL
        .iter()
        .filter_map(|&m| steps.get_ref(m).map(Vec::len))
        .min()
        .unwrap_or(0);
    let at = |m: Mode, i: usize| steps.get_ref(m).map(|v| v[i]);
    let mut figure = |name: &str, f: &dyn Fn(usize) -> Option<f64>| {
        let v: Vec<f64> = (0..n).filter_map(f).filter(|x| x.is_finite()).collect();
        if !v.is_empty() {
            out.insert(name.to_string(), v);
        }
    };
    use Mode::*;
    figure("overlap_speedup", &|i| {
        Some(metrics::overlap_speedup(
            at(Serialized, i)?,
            at(Overlapped, i)?,
        ))
    });
    figure("exposed_comm_fraction", &|i| {
        Some(metrics::exposed_comm_fraction(
            at(Overlapped, i)?,
            at(Compute, i)?,
        ))
    });
    figure("hidden_fraction", &|i| {
        let (_, e, _, _) = round_breakdown(nodes, i)?;
        Some(metrics::collective_hidden_fraction(e, at(Comm, i)?))
    });
    if let (_, Some(t)) = gradient_allreduce_times(nodes, plan, &steps, world) {
        if plan.allreduce_bytes() > 0 {
            out.insert("allreduce_time_s".into(), t);
        }
    }
    out
}

/// The per-kind figures of [`CollectiveSummary`].
fn collective_summaries(nodes: &[NodeRecord], plan: &PlanInfo) -> Vec<CollectiveSummary> {
    plan.collectives
        .iter()
        .map(|info| {
            let key = info.key();
            let busy = per_iteration_max(nodes, Mode::Comm, |m| m.collective_busy_max_s.get(&key));
            let exposed =
                |mode| per_iteration_max(nodes, mode, |m| m.collective_exposed_max_s.get(&key));
            let (over, ser) = (exposed(Mode::Overlapped), exposed(Mode::Serialized));
            let (time_s, time_ci) = busy.clone().map(paired).unwrap_or((None, None));
            let algbw = time_s
                .filter(|t| *t > 0.0)
                .map(|t| metrics::algbw_gbps(info.bytes as f64, t));
            let factor = metrics::busbw_factor(info.kind, info.group_size);
            let busbw_ci = time_ci.filter(|c| c.lo > 0.0).map(|c| {
                [
                    metrics::algbw_gbps(info.bytes as f64, c.hi) * factor,
                    metrics::algbw_gbps(info.bytes as f64, c.lo) * factor,
                ]
            });
            let (ser_s, ser_ci) = ser.map(paired).unwrap_or((None, None));
            let (exposed_s, exposed_ci) = over.clone().map(paired).unwrap_or((None, None));
            let hidden: Option<Vec<f64>> = match (&over, &busy) {
                (Some(o), Some(a)) => Some(
                    o.iter()
                        .zip(a)
                        .filter(|(_, a)| **a > 0.0)
                        .map(|(o, a)| 1.0 - o / a)
                        .collect(),
                ),
                _ => None,
            };
            let (hidden_fraction, hidden_ci) = hidden.map(paired).unwrap_or((None, None));
            CollectiveSummary {
                kind: info.kind,
                group: info.group,
                group_size: info.group_size,
                count: info.count,
                bytes: info.bytes,
                time_s,
                time_s_ci95: bounds(time_ci),
                algbw_gbps: algbw,
                busbw_gbps: algbw.map(|a| a * factor),
                busbw_gbps_ci95: busbw_ci,
                exposed_s,
                exposed_s_ci95: bounds(exposed_ci),
                hidden_fraction,
                hidden_fraction_ci95: bounds(hidden_ci),
                serialized_exposed_s: ser_s,
                serialized_exposed_s_ci95: bounds(ser_ci),
            }
        })
        .collect()
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

/// [`cluster_step_times`] over node records: the max of the nodes' maxima.
pub fn node_step_times(nodes: &[NodeRecord], mode: Mode) -> Vec<f64> {
    aggregate::max_per_iteration(
        nodes
            .iter()
            .filter_map(|n| n.modes.get(&mode).map(|m| m.step_time_s.as_slice())),
    )
    .unwrap_or_default()
}

/// The ranks of a set of nodes.
fn world_of(nodes: &[NodeRecord]) -> u64 {
    nodes.iter().map(|n| n.ranks.len() as u64).sum()
}

/// Every rank's brief with its host, in rank order.
pub fn briefs(nodes: &[NodeRecord]) -> Vec<(&str, &RankBrief)> {
    let mut v: Vec<(&str, &RankBrief)> = nodes
        .iter()
        .flat_map(|n| n.ranks.iter().map(move |b| (n.host.as_str(), b)))
        .collect();
    v.sort_by_key(|(_, b)| b.rank);
    v
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
    /// How the timed steps were ordered.
    pub schedule: Schedule,
    /// Blocks of the whole model (for the full-model token rate).
    pub model_layers: u64,
    /// The warmup rule the run followed.
    pub warmup: crate::warmup::WarmupRule,
}

/// One timed iteration's cluster step of every mode (None: not run).
#[derive(Debug, Clone, Copy)]
struct Round {
    c: Option<f64>,
    a: Option<f64>,
    s: Option<f64>,
    o: Option<f64>,
}

/// A figure computed per iteration and summarised: median and interval.
/// Median and 95 % interval of a paired figure over its rounds. A round
/// whose figure is undefined (a ratio over a zero time, e.g. the hidden
/// fraction when comm mode took 0 s) is left out rather than carried as a
/// NaN, which run.json could not hold (it would be written as `null`).
fn paired(values: Vec<f64>) -> (Option<f64>, Option<MedianCi>) {
    let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    (stats::median(&values), stats::median_ci95(&values))
}

fn bounds(ci: Option<MedianCi>) -> Option<[f64; 2]> {
    ci.map(|c| [c.lo, c.hi])
}

/// Telemetry samples that show throttling ([`Summary::clocks_throttled`]),
/// in rank order.
fn throttled(nodes: &[NodeRecord]) -> Vec<String> {
    let mut lines: Vec<&(u64, String)> = nodes.iter().flat_map(|n| &n.clocks_throttled).collect();
    lines.sort_by_key(|(rank, _)| *rank);
    lines.into_iter().map(|(_, l)| l.clone()).collect()
}

/// The rounds and exact coverage behind each paired figure's interval.
#[derive(Default)]
struct Coverage {
    n: BTreeMap<String, usize>,
    coverage: BTreeMap<String, f64>,
}

impl Coverage {
    /// [`paired`], noting the rounds used and the coverage under `name`.
    fn paired(&mut self, name: &str, values: Vec<f64>) -> (Option<f64>, Option<MedianCi>) {
        let n = values.iter().filter(|v| v.is_finite()).count();
        let (m, ci) = paired(values);
        self.note(name, (n > 0).then_some(n), ci);
        (m, ci)
    }

    fn note(&mut self, name: &str, n: Option<usize>, ci: Option<MedianCi>) {
        if let (Some(n), Some(ci)) = (n, ci) {
            self.n.insert(name.to_string(), n);
            self.coverage.insert(name.to_string(), ci.coverage);
        }
    }
}

/// Per mode, each rank's median over rounds of its waiting for peers
/// (ranks in order); modes where no rank recorded any are left out.
fn wait_for_peers(briefs: &[(&str, &RankBrief)]) -> BTreeMap<Mode, Vec<f64>> {
    Mode::ALL
        .into_iter()
        .filter_map(|mode| {
            let per_rank: Vec<Option<f64>> = briefs
                .iter()
                .map(|(_, b)| b.modes.get(&mode).and_then(|m| m.wait_median_s))
                .collect();
            per_rank.iter().any(Option::is_some).then(|| {
                (
                    mode,
                    per_rank.into_iter().map(|w| w.unwrap_or(0.0)).collect(),
                )
            })
        })
        .collect()
}

/// The rank whose step of round `i` in `mode` was the longest (the round's
/// critical path: the cluster step is its step; ties: the highest rank),
/// from the nodes' own critical ranks.
fn critical(nodes: &[NodeRecord], mode: Mode, i: usize) -> Option<CriticalRank> {
    nodes
        .iter()
        .filter_map(|n| n.modes.get(&mode)?.critical.get(i).copied())
        .reduce(CriticalRank::max)
}

/// Round `i`'s T_o − T_c split by cause ([`metrics::exposed_breakdown`]:
/// GEMM slowdown, exposed collective, waiting for peers, sync skew), each
/// mode's figures taken on its critical rank; None without per-iteration
/// busy and exposed times. Runs without aligned clocks (no
/// `wait_exposed_s`) wait 0: their exposed collective time includes it.
fn round_breakdown(nodes: &[NodeRecord], i: usize) -> Option<(f64, f64, f64, f64)> {
    let o = critical(nodes, Mode::Overlapped, i)?;
    let c = critical(nodes, Mode::Compute, i)?;
    Some(metrics::exposed_breakdown(
        o.step_s,
        c.step_s,
        o.gemm_busy_s?,
        c.gemm_busy_s?,
        o.comm_exposed_s?,
        o.wait_exposed_s.unwrap_or(0.0),
    ))
}

/// Per iteration, the contention of a stream (overlapped busy time / busy
/// time alone): per node the median over its ranks, then the median over
/// nodes; empty unless every rank ran both modes.
fn contention_per_iteration(
    nodes: &[NodeRecord],
    pick: fn(&NodeRecord) -> &NodeContention,
) -> Vec<f64> {
    let Some(per_node): Option<Vec<&Vec<Option<f64>>>> = nodes
        .iter()
        .map(|n| pick(n).per_iteration.as_ref())
        .collect()
    else {
        return Vec::new();
    };
    let iters = per_node.iter().map(|v| v.len()).min().unwrap_or(0);
    (0..iters)
        .filter_map(|i| stats::median(&per_node.iter().filter_map(|v| v[i]).collect::<Vec<f64>>()))
        .collect()
}

/// The last bucket's exposed tail (see [`metrics::exposed_tail_s`]): per
/// node the median over its ranks, then the median over nodes, from the
/// per-op medians of the comm and compute modes.
fn last_bucket_tail(nodes: &[NodeRecord]) -> Option<f64> {
    stats::median(
        &nodes
            .iter()
            .filter_map(|n| n.last_bucket_tail_s)
            .collect::<Vec<f64>>(),
    )
}

/// Computes the cluster-wide summary from per-rank records.
///
/// Step times: per iteration the max over ranks, then median, p95, min and
/// the median's 95 % interval. Every figure that compares modes is computed
/// per iteration from that iteration's cluster steps (paired: with the
/// interleaved schedule they ran back to back), then summarised by its
/// median and interval; flags say which figures cannot be trusted.
pub fn summarize(ranks: &[RankRecord], inp: SummaryInputs<'_>) -> Summary {
    summarize_nodes(&aggregate::nodes_of(ranks, inp.plan), inp)
}

/// [`summarize`] over per-node aggregates ([`NodeRecord`]), the way rank 0
/// computes it in a run: maxima over ranks are the maxima of the nodes'
/// maxima, per-rank figures come from each rank's brief, and medians over
/// ranks of per-rank figures (contention, the last bucket's tail) are the
/// medians of the nodes' medians (see [`crate::aggregate`]).
pub fn summarize_nodes(nodes: &[NodeRecord], inp: SummaryInputs<'_>) -> Summary {
    let briefs = briefs(nodes);
    let world = briefs.len() as u64;
    let steps = PerMode::from_fn(|m| {
        let v = node_step_times(nodes, m);
        (!v.is_empty()).then_some(v)
    });
    let step_stats = PerMode::from_fn(|m| steps.get_ref(m).and_then(|v| Stats::of(v)));
    let t = PerMode::from_fn(|m| step_stats.get(m).map(|s: Stats| s.median));
    let f = inp.plan.flops;
    let peak = inp.peak_tflops;
    let compute_modes = |v: Option<f64>, m: Mode| v.filter(|_| m.has_compute());
    let mfu =
        PerMode::from_fn(|m| compute_modes(t.get(m), m).map(|t| metrics::mfu(f.model, t, peak)));
    // Total FLOPs over total time: the mean cluster step.
    let mfu_sustained = PerMode::from_fn(|m| {
        let v = steps.get_ref(m).filter(|_| m.has_compute())?;
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        Some(metrics::mfu(f.model, mean, peak))
    });
    let hfu = inp.recompute.then(|| {
        PerMode::from_fn(|m| compute_modes(t.get(m), m).map(|t| metrics::mfu(f.hardware, t, peak)))
    });
    let tflops_per_device =
        PerMode::from_fn(|m| compute_modes(t.get(m), m).map(|t| metrics::tflops(f.model, t)));
    let tokens_per_second = PerMode::from_fn(|m| {
        compute_modes(t.get(m), m).map(|t| (world * inp.plan.tokens) as f64 / t)
    });
    let depth = inp.plan.layers as f64 / inp.model_layers.max(1) as f64;
    let full_model_tokens_per_second =
        PerMode::from_fn(|m| tokens_per_second.get(m).map(|x| x * depth));

    // Paired rounds: iteration i of every mode.
    let n_rounds = Mode::ALL
        .iter()
        .filter_map(|&m| steps.get_ref(m).map(|v| v.len()))
        .min()
        .unwrap_or(0);
    let at = |m: Mode, i: usize| steps.get_ref(m).map(|v| v[i]);
    let rounds: Vec<Round> = (0..n_rounds)
        .map(|i| Round {
            c: at(Mode::Compute, i),
            a: at(Mode::Comm, i),
            s: at(Mode::Serialized, i),
            o: at(Mode::Overlapped, i),
        })
        .collect();
    let breakdowns: Vec<Option<(f64, f64, f64, f64)>> =
        (0..n_rounds).map(|i| round_breakdown(nodes, i)).collect();
    let mut cov = Coverage::default();
    let mut per_iter = |name: &str, f: &dyn Fn(usize, &Round) -> Option<f64>| {
        let v = rounds
            .iter()
            .enumerate()
            .filter_map(|(i, r)| f(i, r))
            .collect();
        cov.paired(name, v)
    };

    let tail = last_bucket_tail(nodes);
    let (exposed, exposed_ci) = per_iter("exposed_comm_s", &|_, r| {
        Some(metrics::exposed_comm_s(r.o?, r.c?))
    });
    let (exposed_frac, exposed_frac_ci) = per_iter("exposed_comm_fraction", &|_, r| {
        Some(metrics::exposed_comm_fraction(r.o?, r.c?))
    });
    let part = |i: usize, k: usize| breakdowns[i].map(|(g, e, w, s)| [g, e, w, s][k]);
    let parts: Vec<(Option<f64>, Option<MedianCi>)> = [
        "exposed_breakdown.gemm_slowdown_s",
        "exposed_breakdown.exposed_collective_s",
        "exposed_breakdown.waiting_for_peers_s",
        "exposed_breakdown.sync_skew_s",
    ]
    .iter()
    .enumerate()
    .map(|(k, name)| per_iter(name, &|i, _| part(i, k)))
    .collect();
    let exposed_breakdown = match (parts[0].0, parts[1].0, parts[2].0, parts[3].0) {
        (Some(g), Some(e), Some(w), Some(k)) => Some(ExposedBreakdown {
            gemm_slowdown_s: g,
            exposed_collective_s: e,
            waiting_for_peers_s: w,
            sync_skew_s: k,
        }),
        _ => None,
    };
    let exposed_breakdown_ci = exposed_breakdown.map(|_| ExposedBreakdown {
        gemm_slowdown_s: bounds(parts[0].1),
        exposed_collective_s: bounds(parts[1].1),
        waiting_for_peers_s: bounds(parts[2].1),
        sync_skew_s: bounds(parts[3].1),
    });
    let (ser_over, ser_over_ci) = per_iter("serialized_overhead", &|_, r| {
        Some(metrics::serialized_overhead(r.s?, r.c?))
    });
    let (hidden, hidden_ci) = per_iter("hidden_fraction", &|i, r| {
        Some(metrics::collective_hidden_fraction(part(i, 1)?, r.a?))
    });
    let (step_hidden, step_hidden_ci) = per_iter("step_hidden_fraction", &|_, r| {
        Some(metrics::hidden_fraction(r.c?, r.a?, r.o?))
    });
    let (speedup, speedup_ci) = per_iter("overlap_speedup", &|_, r| {
        Some(metrics::overlap_speedup(r.s?, r.o?))
    });
    // Efficiency: a ratio of paired medians, median(T_s − T_o) /
    // median(T_s − T_ideal), not a median of per-round ratios (one round
    // with a gain near zero gives a ratio of −37); a bootstrap interval
    // over whole rounds.
    let gains: Vec<(f64, f64)> = rounds
        .iter()
        .filter_map(|r| {
            let ideal = metrics::achievable_overlapped_s(r.c?, r.a?, tail?);
            Some((r.s? - r.o?, r.s? - ideal))
        })
        .collect();
    let (gain, ideal_gain): (Vec<f64>, Vec<f64>) = gains.iter().copied().unzip();
    let efficiency = match (stats::median(&gain), stats::median(&ideal_gain)) {
        (Some(g), Some(i)) if i > 0.0 => Some(g / i),
        _ => None,
    };
    let efficiency_ci = efficiency
        .and_then(|_| stats::ratio_of_medians_ci95(&gain, &ideal_gain))
        .map(|[lo, hi]| MedianCi {
            lo,
            hi,
            coverage: 0.95,
        });
    if efficiency_ci.is_some() {
        cov.note("overlap_efficiency", Some(gain.len()), efficiency_ci);
    }
    let ideal_gain_ci = bounds(stats::median_ci95(&ideal_gain));

    // Contention: paired per iteration where the records have busy times
    // (schema 2), else from the per-op medians (no interval); per node the
    // median over its ranks, then the median over nodes.
    let contention_of = |pick: fn(&NodeRecord) -> &NodeContention| {
        let v = contention_per_iteration(nodes, pick);
        if v.is_empty() {
            let of_medians: Vec<f64> = nodes.iter().filter_map(|n| pick(n).of_medians).collect();
            (stats::median(&of_medians), None)
        } else {
            paired(v)
        }
    };
    let (gemm_cont, gemm_cont_ci) = contention_of(|n| &n.contention_gemm);
    let (ar_cont, ar_cont_ci) = contention_of(|n| &n.contention_allreduce);
    for (name, ci) in [
        ("contention_gemm", gemm_cont_ci),
        ("contention_allreduce", ar_cont_ci),
    ] {
        cov.note(name, ci.map(|_| n_rounds), ci);
    }
    let contention = Contention {
        gemm: gemm_cont,
        allreduce: ar_cont,
    };

    let allreduce = gradient_allreduce(nodes, inp.plan, &steps, world);

    let step_ci = PerMode::from_fn(|m| steps.get_ref(m).and_then(|v| stats::median_ci95(v)));
    let ci95 = Ci95 {
        step_time_s: PerMode::from_fn(|m| bounds(step_ci.get(m))),
        mfu: PerMode::from_fn(|m| {
            let c = step_ci.get(m).filter(|_| m.has_compute())?;
            Some([
                metrics::mfu(f.model, c.hi, peak),
                metrics::mfu(f.model, c.lo, peak),
            ])
        }),
        mfu_sustained: PerMode::from_fn(|m| {
            let v = steps.get_ref(m).filter(|_| m.has_compute())?;
            let [lo, hi] = stats::mean_ci95(v)?;
            Some([
                metrics::mfu(f.model, hi, peak),
                metrics::mfu(f.model, lo, peak),
            ])
        }),
        exposed_comm_s: bounds(exposed_ci),
        exposed_comm_fraction: bounds(exposed_frac_ci),
        serialized_overhead: bounds(ser_over_ci),
        hidden_fraction: bounds(hidden_ci),
        step_hidden_fraction: bounds(step_hidden_ci),
        exposed_breakdown: exposed_breakdown_ci,
        overlap_speedup: bounds(speedup_ci),
        overlap_efficiency: bounds(efficiency_ci),
        achievable_gain_s: ideal_gain_ci,
        contention_gemm: bounds(gemm_cont_ci),
        contention_allreduce: bounds(ar_cont_ci),
        paired_iterations: n_rounds,
        coverage: stats::median_ci95(&vec![0.0; n_rounds])
            .map(|c| c.coverage)
            .unwrap_or(0.0),
    };

    let (stragglers, slow_hosts) = stragglers_of(&briefs, inp.straggler_tolerance);

    let mut summary = Summary {
        schedule: inp.schedule,
        step_time_s: t,
        step_time_stats: step_stats,
        mfu,
        mfu_sustained,
        hfu,
        tflops_per_device,
        tokens_per_second,
        full_model_tokens_per_second,
        exposed_comm_s: exposed,
        exposed_comm_fraction: exposed_frac,
        serialized_overhead: ser_over,
        exposed_breakdown,
        hidden_fraction: hidden,
        step_hidden_fraction: step_hidden,
        overlap_speedup: speedup,
        overlap_efficiency: efficiency,
        last_bucket_tail_s: tail,
        contention,
        allreduce,
        flops_per_step: f,
        peak_tflops: peak,
        peak_source: inp.peak_source,
        wrong: briefs.iter().map(|(_, b)| b.wrong).sum(),
        stragglers,
        slow_hosts,
        step_time_trend: PerMode::from_fn(|m| steps.get_ref(m).and_then(|v| stats::trend(v))),
        clocks_throttled: throttled(nodes),
        ci95,
        ci95_n: cov.n,
        ci95_coverage: cov.coverage,
        flags: Vec::new(),
        collectives: collective_summaries(nodes, inp.plan),
        wait_for_peers_s: wait_for_peers(&briefs),
        warmup: inp.warmup.outcome(
            &briefs
                .iter()
                .map(|(_, b)| b.warmup_round_s.as_slice())
                .collect::<Vec<_>>(),
        ),
    };
    summary.flags = flags(&summary);
    summary
}

/// The minimum detectable effect per unit of an interval's half-width:
/// (z₀.₉₇₅ + z₀.₈₀) / z₀.₉₇₅ = (1.960 + 0.842) / 1.960. An effect this
/// many half-widths from no effect is detected (two-sided 5 %) in 80 % of
/// repeated runs at the same noise.
pub const MDE_PER_HALF_WIDTH: f64 = (1.959_964 + 0.841_621) / 1.959_964;

/// The practical effects a within-noise flag says the rounds for (10 % and
/// 5 % of a ratio, or 10 and 5 points of a fraction).
pub const PRACTICAL_EFFECTS: [f64; 2] = [0.10, 0.05];

/// The minimum detectable effect at 80 % power of a figure whose 95 %
/// interval is `[lo, hi]` (see [`MDE_PER_HALF_WIDTH`]); None for an empty
/// or non-finite interval.
pub fn min_detectable_effect(lo: f64, hi: f64) -> Option<f64> {
    let half = (hi - lo) / 2.0;
    (half.is_finite() && half > 0.0).then_some(half * MDE_PER_HALF_WIDTH)
}

/// Rounds needed to detect `effect` at 80 % power when `n` rounds give a
/// minimum detectable effect `mde` (it shrinks as 1/√rounds); at least
/// [`crate::stats::MIN_SAMPLES_CI95`]; None past
/// [`crate::config::limits::MAX_ITERATIONS`] (no run can get there: reduce
/// the noise instead).
pub fn rounds_for_effect(n: usize, mde: f64, effect: f64) -> Option<u64> {
    if n == 0 || effect <= 0.0 || !mde.is_finite() {
        return None;
    }
    let k = (n as f64 * (mde / effect).powi(2))
        .ceil()
        .max(crate::stats::MIN_SAMPLES_CI95 as f64);
    (k <= crate::config::limits::MAX_ITERATIONS as f64).then_some(k as u64)
}

/// The power statement of a within-noise flag: what `n` rounds can detect
/// at this noise and the rounds practical effects need; advises reducing
/// the noise when they are out of reach or over ten times the rounds run.
fn power_statement(n: usize, mde: f64, effects: &[EffectRounds]) -> String {
    let mut out = format!(
        "with {n} rounds at this noise the smallest effect detected with 80 % power is ±{mde:.3}"
    );
    let needs: Vec<String> = effects
        .iter()
        .map(|e| match e.rounds {
            Some(k) => format!("±{:.2} needs ≈ {k} rounds", e.effect),
            None => format!(
                "±{:.2} needs more than {} rounds",
                e.effect,
                crate::config::limits::MAX_ITERATIONS
            ),
        })
        .collect();
    if !needs.is_empty() {
        out.push_str(&format!("; {}", needs.join(", ")));
    }
    let far = effects
        .iter()
        .any(|e| e.rounds.is_none_or(|k| k > 10 * n.max(1) as u64));
    if far {
        out.push_str("; reducing the noise (a quieter host, fixed clocks, longer steps) is cheaper than adding rounds");
    }
    out
}

/// The plausibility flags of a summary (see [`Flag`]). Pure: the same
/// summary always gives the same flags.
pub fn flags(s: &Summary) -> Vec<Flag> {
    let mut out = Vec::new();
    let n = s.ci95.paired_iterations;
    let any_pair = s.ci95.overlap_speedup.is_some()
        || s.ci95.exposed_comm_s.is_some()
        || s.ci95.serialized_overhead.is_some();
    if any_pair && n < crate::stats::MIN_SAMPLES_CI95 {
        out.push(Flag {
            name: "too_few_iterations".into(),
            figure: "ci95".into(),
            message: format!(
                "{n} paired iteration(s): the intervals cover the median with only {:.1} % probability; run.iterations ≥ {} gives 95 %",
                s.ci95.coverage * 100.0,
                crate::stats::MIN_SAMPLES_CI95
            ),
            min_detectable_effect: None,
            iterations_for_effect: Vec::new(),
        });
    } else {
        // Figures that dropped undefined rounds can have fewer than the run.
        for (figure, &k) in &s.ci95_n {
            if k < crate::stats::MIN_SAMPLES_CI95 {
                out.push(Flag {
                    name: "too_few_iterations".into(),
                    figure: figure.clone(),
                    message: format!(
                        "{figure}: {k} of {n} rounds define it: its interval covers the median with only {:.1} % probability",
                        s.ci95_coverage.get(figure).copied().unwrap_or(0.0) * 100.0
                    ),
                    min_detectable_effect: None,
                    iterations_for_effect: Vec::new(),
                });
            }
        }
    }
    // A figure whose interval spans its no-effect value.
    let mut within =
        |name: &str, figure: &str, what: &str, v: Option<f64>, ci: Option<[f64; 2]>, none: f64| {
            let (Some(v), Some([lo, hi])) = (v, ci) else {
                return;
            };
            if lo <= none && none <= hi {
                let rounds = s.ci95_n.get(figure).copied().unwrap_or(n);
                let mde = min_detectable_effect(lo, hi);
                let effects: Vec<EffectRounds> = match mde {
                    Some(mde) => PRACTICAL_EFFECTS
                        .iter()
                        .map(|&effect| EffectRounds {
                            effect,
                            rounds: rounds_for_effect(rounds, mde, effect),
                        })
                        .collect(),
                    None => Vec::new(),
                };
                out.push(Flag {
                    name: name.into(),
                    figure: figure.into(),
                    message: format!(
                        "{what} {v:.3} [{lo:.3}, {hi:.3}] spans {none}: within noise{}",
                        mde.map(|m| format!("; {}", power_statement(rounds, m, &effects)))
                            .unwrap_or_default()
                    ),
                    // Zero-width interval on the no-effect value: nothing
                    // varies, every effect is detectable.
                    min_detectable_effect: Some(mde.unwrap_or(0.0)),
                    iterations_for_effect: effects,
                });
            }
        };
    within(
        "overlap_gain_within_noise",
        "overlap_speedup",
        "overlap speedup",
        s.overlap_speedup,
        s.ci95.overlap_speedup,
        1.0,
    );
    within(
        "hidden_fraction_within_noise",
        "hidden_fraction",
        "hidden fraction",
        s.hidden_fraction,
        s.ci95.hidden_fraction,
        0.0,
    );
    // A step time that trends over the rounds: two regimes in one median.
    for m in Mode::ALL {
        if let Some(t) = s.step_time_trend.get(m) {
            // Bonferroni over the four modes at 1 %; a drift below 2 % is
            // not worth a flag however sure.
            if t.p < 0.0025 && t.relative_change.abs() >= 0.02 {
                out.push(Flag {
                    name: "step_time_drift".into(),
                    figure: format!("step_time_s.{m}"),
                    message: format!(
                        "the {m} step {} {:.1} % over the run's rounds (Theil–Sen; Mann–Kendall p = {:.1e}): clocks, temperature or outside load changed while it ran, and its median mixes two regimes",
                        if t.relative_change > 0.0 { "slowed by" } else { "sped up by" },
                        t.relative_change.abs() * 100.0,
                        t.p
                    ),
                    min_detectable_effect: None,
                    iterations_for_effect: Vec::new(),
                });
            }
        }
    }
    if !s.clocks_throttled.is_empty() {
        let shown: Vec<&str> = s
            .clocks_throttled
            .iter()
            .take(3)
            .map(String::as_str)
            .collect();
        out.push(Flag {
            name: "clocks_throttled".into(),
            figure: "step_time_s".into(),
            message: format!(
                "{} telemetry reading(s) show throttling, so the modes measured at lower clocks than others: {}{}",
                s.clocks_throttled.len(),
                shown.join("; "),
                if s.clocks_throttled.len() > 3 { "; …" } else { "" }
            ),
            min_detectable_effect: None,
            iterations_for_effect: Vec::new(),
        });
    }
    if let Some(w) = s.warmup.filter(|w| w.not_stable()) {
        out.push(Flag {
            name: "warmup_not_stable".into(),
            figure: "step_time_s".into(),
            message: format!(
                "warmup ended at its cap of {} rounds while the step time was still getting faster ({} in the last round, beyond the {:.0} % tolerance): the first timed rounds may still be warming up; raise run.warmup_max",
                w.rounds,
                w.last_change
                    .map(|c| format!("{:.1} % faster", -c * 100.0))
                    .unwrap_or_else(|| "faster".into()),
                w.tolerance * 100.0
            ),
            min_detectable_effect: None,
            iterations_for_effect: Vec::new(),
        });
    }
    // MFU above 100 % cannot be measured: the peak is wrong for the device.
    for m in Mode::ALL {
        if let Some(v) = s.mfu.get(m).filter(|v| *v > 1.0) {
            out.push(Flag {
                name: "mfu_above_peak".into(),
                figure: "mfu".into(),
                message: format!(
                    "{m} MFU {:.1} % exceeds 100 %: the peak of {} TFLOP/s ({:?}) is wrong for this device; set run.peak_tflops to its dense datasheet value",
                    v * 100.0,
                    s.peak_tflops,
                    s.peak_source
                ),
                min_detectable_effect: None,
                iterations_for_effect: Vec::new(),
            });
            break;
        }
    }
    // Impossible orderings, beyond noise (the whole interval on the wrong side).
    let mut impossible = |name: &str, figure: &str, message: String| {
        out.push(Flag {
            name: name.into(),
            figure: figure.into(),
            message,
            min_detectable_effect: None,
            iterations_for_effect: Vec::new(),
        });
    };
    if let Some([lo, hi]) = s.ci95.serialized_overhead {
        if hi < 0.0 {
            impossible(
                "serialized_faster_than_compute",
                "serialized_overhead",
                format!("the serialized step (compute + all-reduces) is shorter than the compute-only step beyond noise (overhead [{lo:.3}, {hi:.3}]): outside load or clock changes, not communication, drive these figures"),
            );
        }
    }
    if let Some([lo, hi]) = s.ci95.exposed_comm_s {
        if hi < 0.0 {
            impossible(
                "overlapped_faster_than_compute",
                "exposed_comm_s",
                format!("the overlapped step is shorter than the compute-only step beyond noise (exposed comm [{lo:.4}, {hi:.4}] s)"),
            );
        }
    }
    // The efficiency divides by the achievable gain: when that can be 0,
    // the ratio can be anything.
    if let (Some(_), Some([lo, hi])) = (s.overlap_efficiency, s.ci95.achievable_gain_s) {
        if lo <= 0.0 {
            impossible(
                "efficiency_ill_conditioned",
                "overlap_efficiency",
                format!("the achievable gain T_s − T_ideal [{lo:.4}, {hi:.4}] s includes 0: the efficiency divides by a gain that may be nothing, so its value and interval say little; compare overlap speedup and exposed communication instead"),
            );
        }
    }
    if let Some([lo, hi]) = s.ci95.step_hidden_fraction {
        if lo > 1.0 {
            impossible(
                "hidden_fraction_out_of_range",
                "step_hidden_fraction",
                format!("the step-based hidden fraction [{lo:.3}, {hi:.3}] is above 1 beyond noise: the overlapped step is shorter than compute alone, which no overlap can do"),
            );
        } else if hi < 0.0 {
            impossible(
                "hidden_fraction_out_of_range",
                "step_hidden_fraction",
                format!("the step-based hidden fraction [{lo:.3}, {hi:.3}] is below 0 beyond noise: the overlapped step is longer than compute plus the collectives run alone — see the exposed-time breakdown for how much is GEMM slowdown"),
            );
        }
    }
    if let Some([lo, hi]) = s.ci95.hidden_fraction {
        if hi < 0.0 {
            impossible(
                "hidden_fraction_out_of_range",
                "hidden_fraction",
                format!("the hidden fraction of communication [{lo:.3}, {hi:.3}] is below 0 beyond noise: under overlap the collectives leave more time exposed than they take alone (slowed by contention or waiting for peers)"),
            );
        }
    }
    out
}

impl Summary {
    /// The flags that concern a summary field (e.g. `exposed_comm_fraction`
    /// is concerned by flags on `exposed_comm_s` too).
    pub fn flags_on(&self, figure: &str) -> Vec<&Flag> {
        let family = |f: &str| {
            f.trim_end_matches("_fraction")
                .trim_end_matches("_s")
                .to_string()
        };
        self.flags
            .iter()
            .filter(|f| f.figure == figure || family(&f.figure) == family(figure))
            .collect()
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
    let b: Vec<RankBrief> = ranks.iter().map(RankBrief::of).collect();
    let with_host: Vec<(&str, &RankBrief)> = ranks
        .iter()
        .zip(&b)
        .map(|(r, b)| (r.host.as_str(), b))
        .collect();
    stragglers_of(&with_host, tolerance)
}

/// [`find_stragglers`] over node records.
pub fn find_stragglers_of_nodes(
    nodes: &[NodeRecord],
    tolerance: f64,
) -> (Vec<Straggler>, Vec<String>) {
    stragglers_of(&briefs(nodes), tolerance)
}

/// [`straggler_mode`] over node records.
pub fn straggler_mode_of_nodes(nodes: &[NodeRecord]) -> Option<Mode> {
    STRAGGLER_MODES
        .into_iter()
        .find(|m| nodes.iter().all(|n| n.all_ran(*m)))
}

/// The modes that can identify stragglers, in order of preference.
const STRAGGLER_MODES: [Mode; 4] = [
    Mode::Compute,
    Mode::Overlapped,
    Mode::Serialized,
    Mode::Comm,
];

/// The modes whose timelines choose the ranks shown, in order of
/// preference.
const TIMELINE_MODES: [Mode; 4] = [
    Mode::Overlapped,
    Mode::Serialized,
    Mode::Compute,
    Mode::Comm,
];

/// [`timeline_mode`] over node records.
fn timeline_mode_of_nodes(nodes: &[NodeRecord]) -> Option<Mode> {
    TIMELINE_MODES.into_iter().find(|m| {
        nodes
            .iter()
            .any(|n| n.modes.get(m).is_some_and(|x| x.timelines > 0))
    })
}

/// The ranks that ran `mode`, by their median step in it, fastest first,
/// ties by rank ([`ranks_by_step`] over node records): (rank, median step,
/// whether it kept a timeline of the mode).
fn step_order(nodes: &[NodeRecord], mode: Mode) -> Vec<(u64, f64, bool)> {
    let mut order: Vec<(u64, f64, bool)> = briefs(nodes)
        .iter()
        .filter_map(|(_, b)| {
            let m = b.modes.get(&mode)?;
            Some((b.rank, m.step_median_s()?, m.timeline))
        })
        .collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    order
}

/// The two ranks whose timelines the report draws: the slowest and the
/// median rank by their median step in the first mode any rank kept a
/// timeline of (overlapped, serialized, compute, comm), each replaced by the
/// nearest rank in that order that kept one; with that mode.
pub fn timeline_ranks(nodes: &[NodeRecord]) -> Option<(Mode, u64, u64)> {
    let mode = timeline_mode_of_nodes(nodes)?;
    let order = step_order(nodes, mode);
    let near = |pos: usize| -> Option<u64> {
        (0..order.len())
            .flat_map(|d| [pos.checked_sub(d), pos.checked_add(d)])
            .flatten()
            .filter_map(|p| order.get(p))
            .find(|x| x.2)
            .map(|x| x.0)
    };
    let slowest = near(order.len().saturating_sub(1))?;
    let median = near(order.len().saturating_sub(1) / 2)?;
    Some((mode, slowest, median))
}

/// [`find_stragglers`] over the ranks' briefs (in rank order), with the
/// straggler mode of [`straggler_mode`].
fn stragglers_of(briefs: &[(&str, &RankBrief)], tolerance: f64) -> (Vec<Straggler>, Vec<String>) {
    let Some(mode) = STRAGGLER_MODES
        .into_iter()
        .find(|m| briefs.iter().all(|(_, b)| b.modes.contains_key(m)))
    else {
        return (Vec::new(), Vec::new());
    };
    let per_rank: Vec<f64> = briefs
        .iter()
        .map(|(_, b)| b.modes[&mode].step_median_s().unwrap_or(f64::NAN))
        .collect();
    let Some(med) = stats::median(&per_rank) else {
        return (Vec::new(), Vec::new());
    };
    let mut hosts: Vec<String> = Vec::new();
    let stragglers = metrics::outliers(&per_rank, tolerance, true)
        .into_iter()
        .map(|i| {
            let (host, r) = briefs[i];
            let dev = metrics::relative_deviation(per_rank[i], med);
            if !hosts.iter().any(|h| h == host) {
                hosts.push(host.to_string());
            }
            Straggler {
                rank: r.rank,
                host: host.to_string(),
                device: r.device.clone(),
                metric: format!("{mode}_step_s"),
                value: per_rank[i],
                median: med,
                deviation: dev,
                reason: format!(
                    "rank {} ({}, {}): {mode} step {:.1} % slower than the median",
                    r.rank,
                    host,
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

    #[test]
    fn shared_host_reasons() {
        let idle = HostLoad {
            cores: 2,
            ranks: 2,
            load_avg_1m: 1.5,
            other_runs: Vec::new(),
        };
        assert_eq!(idle.shared_reason(), None);
        let over = HostLoad {
            ranks: 3,
            ..idle.clone()
        };
        assert_eq!(
            over.shared_reason().as_deref(),
            Some("oversubscribed: 3 ranks on 2 cores")
        );
        let busy = HostLoad {
            load_avg_1m: 2.5,
            other_runs: vec!["r1".into()],
            ..idle.clone()
        };
        assert_eq!(
            busy.shared_reason().as_deref(),
            Some("another mfubench run on the host (r1); busy: load average 2.50 above its 2 cores at start")
        );
        // Unknown cores: no claim.
        let unknown = HostLoad {
            cores: 0,
            ranks: 64,
            load_avg_1m: 99.0,
            other_runs: Vec::new(),
        };
        assert_eq!(unknown.shared_reason(), None);
    }
    use super::*;

    /// The node records of rank records (the tests' plans have no buckets
    /// that a tail needs).
    fn nodes(ranks: &[RankRecord]) -> Vec<NodeRecord> {
        aggregate::nodes_of(ranks, &plan())
    }

    fn mode(steps: &[f64], ops: &[(StreamKind, f64)]) -> ModeRecord {
        let busy = |k: StreamKind| {
            let total: f64 = ops.iter().filter(|o| o.0 == k).map(|o| o.1).sum();
            if total > 0.0 {
                vec![total; steps.len()]
            } else {
                Vec::new()
            }
        };
        ModeRecord {
            step_time_s: steps.to_vec(),
            step_start_s: Vec::new(),
            gemm_busy_s: busy(StreamKind::Compute),
            allreduce_busy_s: busy(StreamKind::Comm),
            collective_busy_s: BTreeMap::new(),
            collective_exposed_s: BTreeMap::new(),
            comm_exposed_s: Vec::new(),
            wait_for_peers_s: Vec::new(),
            wait_exposed_s: Vec::new(),
            ops: ops
                .iter()
                .enumerate()
                .map(|(i, (s, t))| OpStat {
                    name: format!("op{i}"),
                    stream: *s,
                    op: None,
                    bucket: (*s == StreamKind::Comm).then_some(0),
                    median_s: *t,
                })
                .collect(),
            timeline: Vec::new(),
            timeline_iteration: 0,
            wrong: 0,
        }
    }

    /// A timeline of one GEMM span, 0 to 1 s.
    fn one_span() -> Vec<Span> {
        vec![Span {
            name: "op".into(),
            stream: StreamKind::Compute,
            op: Some(0),
            bucket: None,
            collective: None,
            start_s: 0.0,
            end_s: 1.0,
            arrived_s: None,
        }]
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
            host_load: None,
            clock: None,
            warmup_round_s: Vec::new(),
        }
    }

    #[test]
    fn a_large_run_keeps_timelines_of_its_sample_only() {
        // 2 hosts × 4 ranks; rank r's steps scaled by 1 + r/100, except
        // rank 6, the slowest (× 2). Every mode has a one-span timeline.
        let mut ranks: Vec<RankRecord> = (0..8)
            .map(|r| {
                let host = if r < 4 { "a" } else { "b" };
                let scale = if r == 6 { 2.0 } else { 1.0 + r as f64 / 100.0 };
                let mut x = rank(r, host, scale);
                for m in x.modes.values_mut() {
                    m.timeline = one_span();
                }
                x
            })
            .collect();
        assert_eq!(timeline_mode(&ranks), Some(Mode::Overlapped));
        let order: Vec<usize> = ranks_by_step(&ranks, Mode::Overlapped)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(order, [0, 1, 2, 3, 4, 5, 7, 6]);
        // Run: slowest 6, median (index 3 of 8) rank 3. Host a: 0, 1, 3;
        // host b: 4, 5, 6 (order 4, 5, 7, 6: median index 1 = 5). Straggler 2.
        let keep = timeline_sample(&ranks, &[2]);
        assert_eq!(keep.into_iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5, 6]);
        // At or below the threshold nothing is dropped.
        keep_timeline_sample(&mut ranks, &[], 8);
        assert!(ranks
            .iter()
            .all(|r| !r.modes[&Mode::Overlapped].timeline.is_empty()));
        keep_timeline_sample(&mut ranks, &[], 4);
        let with: Vec<u64> = ranks
            .iter()
            .filter(|r| r.modes.values().any(|m| !m.timeline.is_empty()))
            .map(|r| r.rank)
            .collect();
        // Without the straggler, 2 is dropped, and 7 (host b's second).
        assert_eq!(with, [0, 1, 3, 4, 5, 6]);
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
                ready_after: "op0".into(),
            }],
            collectives: Vec::new(),
            collective_ops: Vec::new(),
        }
    }

    /// Per kind: time from comm mode (max over ranks per iteration, then
    /// the median), algbw and busbw with the kind's factor, exposure and
    /// the paired hidden fraction from overlapped mode.
    #[test]
    fn collective_summary_known_answers() {
        let key = collective_key(Collective::AllGather, Group::DpShard);
        let with = |r: u64, comm: [f64; 3], exposed: [f64; 3]| {
            let mut rec = rank(r, "a", 1.0);
            let m = rec.modes.get_mut(&Mode::Comm).unwrap();
            m.collective_busy_s.insert(key.clone(), comm.to_vec());
            let m = rec.modes.get_mut(&Mode::Overlapped).unwrap();
            m.collective_exposed_s.insert(key.clone(), exposed.to_vec());
            let m = rec.modes.get_mut(&Mode::Serialized).unwrap();
            m.collective_exposed_s.insert(key.clone(), comm.to_vec());
            rec
        };
        // Cluster per iteration: comm 2, 4, 2; exposed 0.5, 1, 1 → hidden
        // 0.75, 0.75, 0.5.
        let ranks = vec![
            with(0, [2.0, 4.0, 1.0], [0.5, 0.2, 1.0]),
            with(1, [1.0, 3.0, 2.0], [0.1, 1.0, 0.3]),
        ];
        let mut p = plan();
        p.collectives = vec![CollectiveInfo {
            kind: Collective::AllGather,
            group: Group::DpShard,
            group_size: 4,
            count: 3,
            bytes: 8_000_000_000,
        }];
        let c = &collective_summaries(&nodes(&ranks), &p)[0];
        assert_eq!(c.time_s, Some(2.0));
        assert_eq!(c.algbw_gbps, Some(4.0));
        assert_eq!(c.busbw_gbps, Some(3.0));
        assert_eq!(c.exposed_s, Some(1.0));
        assert_eq!(c.hidden_fraction, Some(0.75));
        assert_eq!(c.serialized_exposed_s, Some(2.0));
        // Intervals: the time's and the serialized exposure's (the same
        // per-iteration values here) hold their medians; busbw's is the
        // time interval's ends as bandwidths, swapped: 8 GB / t × 3/4.
        let t = c.time_s_ci95.unwrap();
        assert!(t[0] <= 2.0 && t[1] >= 2.0, "{t:?}");
        assert_eq!(c.serialized_exposed_s_ci95, Some(t));
        assert_eq!(
            c.busbw_gbps_ci95,
            Some([8.0 / t[1] * 0.75, 8.0 / t[0] * 0.75])
        );
        let ci = c.hidden_fraction_ci95.unwrap();
        assert!(ci[0] <= 0.75 && ci[1] >= 0.75);
        // A plan without collective kinds (files of schema 2) has none.
        assert!(collective_summaries(&nodes(&ranks), &plan()).is_empty());
    }

    /// DDP + tensor = 2 on 4 ranks: the gradient all-reduce runs on groups
    /// of 2 replicas; its busbw is its algbw × 2(2−1)/2 and its time is the
    /// buckets' own, not the comm step's (which holds the TP all-reduces).
    /// Plain DDP with aligned clocks: the all-reduces' own time in comm
    /// steps (max over ranks per round), not the comm step, which holds the
    /// waiting for a late rank.
    #[test]
    fn gradient_allreduce_takes_its_own_time_where_clocks_were_aligned() {
        let steps = PerMode::from_fn(|m| (m == Mode::Comm).then(|| vec![4.0, 4.0, 4.0]));
        let mut ranks = vec![rank(0, "a", 1.0), rank(1, "a", 1.0)];
        // Without waiting figures (older records): the comm step.
        let (_, t) = gradient_allreduce_times(&nodes(&ranks), &plan(), &steps, 2);
        assert_eq!(t, Some(vec![4.0, 4.0, 4.0]));
        for (r, own) in ranks.iter_mut().zip([[3.0, 3.5, 3.0], [3.2, 3.1, 2.9]]) {
            let m = r.modes.get_mut(&Mode::Comm).unwrap();
            m.allreduce_busy_s = own.to_vec();
            m.wait_for_peers_s = vec![0.5; 3];
        }
        let (n, t) = gradient_allreduce_times(&nodes(&ranks), &plan(), &steps, 2);
        assert_eq!((n, t), (2, Some(vec![3.2, 3.5, 3.0])));
    }

    #[test]
    fn gradient_allreduce_uses_its_own_group_and_time() {
        let dp = collective_key(Collective::AllReduce, Group::DpReplicate);
        let tp = collective_key(Collective::AllReduce, Group::Tp);
        let ranks: Vec<RankRecord> = (0..4)
            .map(|r| {
                let mut rec = rank(r, "a", 1.0);
                let m = rec.modes.get_mut(&Mode::Comm).unwrap();
                let base = 1.0 + r as f64 * 0.1; // rank 3 slowest
                m.collective_busy_s
                    .insert(dp.clone(), vec![base, base * 2.0, base]);
                m.collective_busy_s.insert(tp.clone(), vec![3.0; 3]);
                rec
            })
            .collect();
        let mut p = plan();
        p.collectives = vec![
            CollectiveInfo {
                kind: Collective::AllReduce,
                group: Group::Tp,
                group_size: 2,
                count: 4,
                bytes: 1_000_000_000,
            },
            CollectiveInfo {
                kind: Collective::AllReduce,
                group: Group::DpReplicate,
                group_size: 2,
                count: 1,
                bytes: 4_000_000_000,
            },
        ];
        p.collective_ops = vec![
            CollectiveRef {
                kind: Collective::AllReduce,
                group: Group::Tp,
            },
            CollectiveRef {
                kind: Collective::AllReduce,
                group: Group::DpReplicate,
            },
        ];
        let steps = PerMode::from_fn(|m| {
            let v = cluster_step_times(&ranks, m);
            (!v.is_empty()).then_some(v)
        });
        let a = gradient_allreduce(&nodes(&ranks), &p, &steps, 4);
        // Per round max over ranks: 1.3, 2.6, 1.3 → median 1.3 s.
        assert_eq!(a.group_size, Some(2));
        assert!((a.time_s.unwrap() - 1.3).abs() < 1e-12);
        let algbw = 4.0 / 1.3;
        assert!((a.algbw_gbps.unwrap() - algbw).abs() < 1e-9);
        // 2(n−1)/n = 1 for n = 2.
        assert_eq!(a.busbw_gbps, a.algbw_gbps);
        // Plain DDP: the comm step on the world (factor 2·3/4).
        let ddp = plan();
        let a = gradient_allreduce(&nodes(&ranks), &ddp, &steps, 4);
        assert_eq!(a.group_size, Some(4));
        assert_eq!(a.time_s, stats::median(steps.get_ref(Mode::Comm).unwrap()));
        assert!((a.busbw_gbps.unwrap() / a.algbw_gbps.unwrap() - 1.5).abs() < 1e-12);
    }

    /// Comm mode at 0 s (nothing to communicate): the hidden fraction is
    /// undefined, so it is absent, not NaN, and the summary survives a
    /// 12 ranks on 3 hosts placed round-robin (rank r on host r mod 3),
    /// each rank's figures different (busy, exposed and waiting times per
    /// round, a throttled rank, warmup rounds, a wrong count).
    fn interleaved_ranks() -> Vec<RankRecord> {
        (0..12u64)
            .map(|r| {
                let host = ["a", "b", "c"][(r % 3) as usize];
                let mut x = rank(r, host, 1.0 + ((r * 7) % 12) as f64 / 50.0);
                x.local_rank = r / 3;
                x.wrong = u64::from(r == 5);
                x.warmup_round_s = vec![2.0 + r as f64 / 10.0, 1.5];
                for (k, m) in x.modes.values_mut().enumerate() {
                    let f = 1.0 + (r as f64 + k as f64) / 37.0;
                    m.gemm_busy_s = m.gemm_busy_s.iter().map(|v| v * f).collect();
                    m.allreduce_busy_s = m.allreduce_busy_s.iter().map(|v| v / f).collect();
                    m.comm_exposed_s = m.step_time_s.iter().map(|v| v / 10.0 * f).collect();
                    m.wait_for_peers_s = vec![0.01 * r as f64; m.step_time_s.len()];
                    m.wait_exposed_s = vec![0.001 * f; m.step_time_s.len()];
                }
                if r == 7 {
                    x.telemetry = vec![TelemetrySample {
                        mode: Mode::Compute,
                        at: "end".into(),
                        sm_clock_mhz: Some(900),
                        temperature_c: None,
                        power_w: None,
                        throttle_reasons: vec!["hw_slowdown".into()],
                    }];
                }
                x
            })
            .collect()
    }

    fn inputs(p: &PlanInfo) -> SummaryInputs<'_> {
        SummaryInputs {
            plan: p,
            peak_tflops: 1000.0,
            peak_source: PeakSource::Spec,
            straggler_tolerance: 0.05,
            recompute: false,
            schedule: Schedule::Interleaved,
            model_layers: 4,
            warmup: crate::warmup::WarmupRule::new(2, 2, 0.1),
        }
    }

    /// The summary rank 0 computes from node records that came over the
    /// wire (JSON), in whatever order the leaders sent them, is the flat
    /// summary of the same rank records, figure for figure.
    #[test]
    fn the_summary_of_node_records_is_the_flat_summary() {
        let ranks = interleaved_ranks();
        let p = plan();
        let flat = summarize(&ranks, inputs(&p));
        let mut nodes = aggregate::nodes_of(&ranks, &p);
        assert_eq!(
            nodes.iter().map(|n| n.host.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(
            nodes[1].ranks.iter().map(|b| b.rank).collect::<Vec<_>>(),
            [1, 4, 7, 10]
        );
        nodes.reverse();
        let wire: Vec<NodeRecord> = nodes
            .iter()
            .map(|n| serde_json::from_str(&serde_json::to_string(n).unwrap()).unwrap())
            .collect();
        assert_eq!(wire, nodes);
        let hier = summarize_nodes(&wire, inputs(&p));
        assert_eq!(
            serde_json::to_value(&hier).unwrap(),
            serde_json::to_value(&flat).unwrap()
        );
        // The per-rank parts stay per rank, in rank order.
        assert_eq!(hier.wrong, 1);
        assert_eq!(hier.wait_for_peers_s[&Mode::Comm].len(), 12);
        assert_eq!(hier.wait_for_peers_s[&Mode::Comm][5], 0.05);
        assert!(hier.clocks_throttled[0].starts_with("rank 7 (b, GPU 7)"));
        assert!(hier.exposed_breakdown.is_some());
        // The cluster step is the max over all 12 ranks.
        assert_eq!(
            node_step_times(&wire, Mode::Overlapped),
            cluster_step_times(&ranks, Mode::Overlapped)
        );
        // run.json's node path gives the same record as the flat one.
        let one = |i: usize| round_series_of_nodes(&wire, &p).into_iter().nth(i);
        assert_eq!(one(0), round_series(&ranks, &p).into_iter().next());
    }

    /// Known answers of the two node-level rules: the critical rank of a
    /// round is the longest step, ties the highest rank, across nodes; a
    /// median over ranks of a per-rank ratio is the median of the nodes'
    /// medians.
    #[test]
    fn node_rules_known_answers() {
        // Two nodes: a = ranks 0, 1; b = rank 2. Compute steps 10 on every
        // rank (a tie): the critical is rank 2. Overlapped: rank 1 slowest.
        let mut ranks = vec![rank(0, "a", 1.0), rank(1, "a", 1.0), rank(2, "b", 1.0)];
        for (r, o) in ranks.iter_mut().zip([11.0, 13.0, 12.0]) {
            let m = r.modes.get_mut(&Mode::Overlapped).unwrap();
            m.step_time_s = vec![o; 3];
        }
        let p = plan();
        let nodes = aggregate::nodes_of(&ranks, &p);
        assert_eq!(critical(&nodes, Mode::Compute, 0).unwrap().rank, 2);
        assert_eq!(critical(&nodes, Mode::Overlapped, 0).unwrap().rank, 1);
        // GEMM contention per round: rank 0 11/10 = 1.1, rank 1 1.3, rank 2
        // 2.0. Node a's median 1.2, node b's 2.0: the median of the two is
        // 1.6 (the median over the three ranks would be 1.3).
        for (r, g) in ranks.iter_mut().zip([11.0, 13.0, 20.0]) {
            let m = r.modes.get_mut(&Mode::Overlapped).unwrap();
            m.gemm_busy_s = vec![g; 3];
        }
        let nodes = aggregate::nodes_of(&ranks, &p);
        let c = contention_per_iteration(&nodes, |n| &n.contention_gemm);
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|x| (x - 1.6).abs() < 1e-12), "{c:?}");
        // On one node it is the median over its ranks.
        let one = aggregate::nodes_of(&ranks[..2], &p);
        let c = contention_per_iteration(&one, |n| &n.contention_gemm);
        assert!(c.iter().all(|x| (x - 1.2).abs() < 1e-12), "{c:?}");
    }

    /// The timelines a sharded run keeps: rank 0's list (the run's slowest
    /// and median rank, the stragglers) plus each node's own sample is the
    /// flat sample.
    #[test]
    fn the_shards_keep_the_flat_timeline_sample() {
        let mut ranks = interleaved_ranks();
        for x in &mut ranks {
            x.modes.get_mut(&Mode::Overlapped).unwrap().timeline = one_span();
        }
        let p = plan();
        let nodes = aggregate::nodes_of(&ranks, &p);
        let keep = RunRecord::timeline_keep_of_nodes(&nodes, &[4]);
        let flat: BTreeSet<u64> = timeline_sample(&ranks, &[4])
            .into_iter()
            .map(|i| ranks[i].rank)
            .collect();
        let mut per_node = BTreeSet::new();
        for host in ["a", "b", "c"] {
            let mut mine: Vec<RankRecord> =
                ranks.iter().filter(|r| r.host == host).cloned().collect();
            keep_timeline_sample(&mut mine, &keep, 0);
            per_node.extend(
                mine.iter()
                    .filter(|r| !r.modes[&Mode::Overlapped].timeline.is_empty())
                    .map(|r| r.rank),
            );
        }
        assert_eq!(per_node, flat);
        assert!(flat.len() < 12, "{flat:?}");
    }

    /// JSON round trip.
    #[test]
    fn undefined_paired_figures_are_absent_not_nan() {
        let mut ranks = vec![rank(0, "a", 1.0), rank(1, "b", 1.0)];
        for r in &mut ranks {
            let comm = r.modes.get_mut(&Mode::Comm).unwrap();
            comm.step_time_s = vec![0.0; 3];
        }
        let p = plan();
        let s = summarize(
            &ranks,
            SummaryInputs {
                plan: &p,
                peak_tflops: 1000.0,
                peak_source: PeakSource::Spec,
                straggler_tolerance: 0.05,
                recompute: false,
                schedule: Schedule::Interleaved,
                model_layers: 4,
                warmup: crate::warmup::WarmupRule::new(2, 2, 0.1),
            },
        );
        assert_eq!(s.hidden_fraction, None);
        assert_eq!(s.ci95.hidden_fraction, None);
        assert_eq!(s.exposed_comm_s, Some(1.0));
        let text = serde_json::to_string(&s).unwrap();
        assert!(!text.contains("null"), "{text}");
        let back: Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(back.hidden_fraction, None);
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
                schedule: Schedule::Interleaved,
                model_layers: 4,
                warmup: crate::warmup::WarmupRule::new(2, 2, 0.1),
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
        assert_eq!(s.full_model_tokens_per_second.compute, Some(100.0));
        // These records have no per-iteration exposed collective time: the
        // step-based figure only.
        assert_eq!(s.step_hidden_fraction, Some(0.75));
        assert_eq!(s.hidden_fraction, None);
        assert_eq!(s.exposed_breakdown, None);
        // The one bucket is ready after the last GEMM: its whole 4 s
        // all-reduce is the exposed tail, the achievable step is T_s itself
        // and there is nothing to hide.
        assert_eq!(s.last_bucket_tail_s, Some(4.0));
        assert_eq!(s.overlap_efficiency, None);
        // Constant per-iteration figures: point intervals (3 iterations:
        // [min, max], coverage 1 − 2/8).
        assert_eq!(s.ci95.step_time_s.compute, Some([10.0, 10.0]));
        assert_eq!(s.ci95.step_time_s.overlapped, Some([11.0, 12.0]));
        assert_eq!(s.ci95.exposed_comm_s, Some([1.0, 2.0]));
        assert_eq!(s.ci95.mfu.compute, Some([0.5, 0.5]));
        assert_eq!(s.ci95.paired_iterations, 3);
        assert_eq!(s.ci95.coverage, 0.75);
        assert_eq!(s.schedule, Schedule::Interleaved);
        assert_eq!(s.flags.len(), 1);
        assert_eq!(s.flags[0].name, "too_few_iterations");
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

    /// One rank whose modes have these per-iteration step times.
    fn synthetic(c: &[f64], a: &[f64], s: &[f64], o: &[f64]) -> Summary {
        use StreamKind::*;
        let mut r = rank(0, "a", 1.0);
        r.modes.insert(Mode::Compute, mode(c, &[(Compute, 1.0)]));
        r.modes.insert(Mode::Comm, mode(a, &[(Comm, 1.0)]));
        r.modes
            .insert(Mode::Serialized, mode(s, &[(Compute, 1.0), (Comm, 1.0)]));
        let mut om = mode(o, &[(Compute, 1.0), (Comm, 1.0)]);
        // Equal GEMM time in both modes: all of T_o − T_c is exposed
        // collective time, so the hidden fraction is the step-based one.
        om.comm_exposed_s = o.iter().zip(c).map(|(o, c)| o - c).collect();
        r.modes.insert(Mode::Overlapped, om);
        let p = plan();
        summarize(
            &[r],
            SummaryInputs {
                plan: &p,
                peak_tflops: 1000.0,
                peak_source: PeakSource::Spec,
                straggler_tolerance: 0.05,
                recompute: false,
                schedule: Schedule::Interleaved,
                model_layers: 1,
                warmup: crate::warmup::WarmupRule::new(2, 2, 0.1),
            },
        )
    }

    fn names(s: &Summary) -> Vec<&str> {
        s.flags.iter().map(|f| f.name.as_str()).collect()
    }

    /// Noise of ±`amp` around `v`, alternating, 10 iterations.
    fn noisy(v: f64, amp: f64) -> Vec<f64> {
        (0..10)
            .map(|i| v + if i % 2 == 0 { amp } else { -amp } * (1.0 + i as f64 / 10.0))
            .collect()
    }

    #[test]
    fn each_flag_on_both_sides_of_its_condition() {
        let c = vec![10.0; 10];
        let a = vec![4.0; 10];
        // Clear, consistent overlap gain: no flag at all.
        let ok = synthetic(&c, &a, &[14.0; 10], &noisy(11.0, 0.1));
        assert!(ok.flags.is_empty(), "{:?}", ok.flags);
        assert!(ok.overlap_speedup.unwrap() > 1.2);

        // Overlapped ≈ serialized with noise: the gain is within noise, and
        // the flag suggests more iterations.
        let s = noisy(14.0, 1.0);
        let o: Vec<f64> = noisy(14.0, 1.0).into_iter().rev().collect();
        let f = synthetic(&c, &a, &s, &o);
        assert!(
            names(&f).contains(&"overlap_gain_within_noise"),
            "{:?}",
            f.flags
        );
        let flag = &f.flags_on("overlap_speedup")[0];
        assert_eq!(flag.figure, "overlap_speedup");

        // Hidden fraction around 0 (T_o ≈ T_c + T_a) vs clearly 0.75.
        let f = synthetic(&c, &a, &[14.0; 10], &noisy(14.0, 0.5));
        assert!(names(&f).contains(&"hidden_fraction_within_noise"));
        assert!(!names(&ok).contains(&"hidden_fraction_within_noise"));

        // Serialized shorter than compute in every iteration: impossible.
        let f = synthetic(&c, &a, &noisy(9.0, 0.1), &noisy(11.0, 0.1));
        assert!(names(&f).contains(&"serialized_faster_than_compute"));
        assert_eq!(f.flags_on("serialized_overhead").len(), 1);
        // Serialized ≈ compute within noise: not beyond noise, no flag.
        let f = synthetic(&c, &a, &noisy(10.0, 0.5), &noisy(11.0, 0.1));
        assert!(!names(&f).contains(&"serialized_faster_than_compute"));

        // Overlapped shorter than compute: impossible, and then the hidden
        // fraction is above 1 beyond noise.
        let f = synthetic(&c, &a, &[14.0; 10], &noisy(9.0, 0.1));
        assert!(names(&f).contains(&"overlapped_faster_than_compute"));
        assert!(names(&f).contains(&"hidden_fraction_out_of_range"));
        // exposed_comm_fraction is concerned by the exposed_comm_s flag.
        assert_eq!(f.flags_on("exposed_comm_fraction").len(), 1);
        let f = synthetic(&c, &a, &[14.0; 10], &noisy(10.2, 0.1));
        assert!(!names(&f).contains(&"overlapped_faster_than_compute"));
        assert!(!names(&f).contains(&"hidden_fraction_out_of_range"));

        // A peak below what was achieved: MFU above 100 % is flagged.
        let mut p = synthetic(&c, &a, &[14.0; 10], &noisy(11.0, 0.1));
        p.mfu.compute = Some(1.7);
        assert_eq!(
            flags(&p)
                .iter()
                .filter(|f| f.name == "mfu_above_peak")
                .count(),
            1
        );
        assert!(!names(&ok).contains(&"mfu_above_peak"));
        // Warmup ended by its cap while still 20 % faster: flagged with the
        // change; stable or a fixed count: not.
        let rule = crate::warmup::WarmupRule::new(1, 3, 0.1);
        let mut w = synthetic(&c, &a, &[14.0; 10], &noisy(11.0, 0.1));
        w.warmup = rule.outcome(&[&[3.0, 1.5, 1.2], &[3.0, 1.2, 1.19]]);
        let fl = flags(&w);
        let fl: Vec<&Flag> = fl
            .iter()
            .filter(|f| f.name == "warmup_not_stable")
            .collect();
        assert_eq!(fl.len(), 1);
        assert!(
            fl[0].message.contains("cap of 3 rounds") && fl[0].message.contains("20.0 % faster"),
            "{}",
            fl[0].message
        );
        w.warmup = rule.outcome(&[&[3.0, 1.5, 1.4], &[3.0, 1.2, 1.19]]);
        assert!(!flags(&w).iter().any(|f| f.name == "warmup_not_stable"));
        w.warmup = crate::warmup::WarmupRule::new(3, 3, 0.1).outcome(&[&[3.0, 1.5, 1.2]]);
        assert!(!flags(&w).iter().any(|f| f.name == "warmup_not_stable"));

        // Too few iterations for a 95 % interval.
        let f = synthetic(&c[..5], &a[..5], &[14.0; 5], &[11.0; 5]);
        assert_eq!(names(&f), vec!["too_few_iterations"]);
    }

    #[test]
    fn power_known_answers() {
        // Half-width 0.1: 0.1 × (1.960 + 0.842) / 1.960.
        let m = min_detectable_effect(0.9, 1.1).unwrap();
        assert!((m - 0.142_941).abs() < 1e-5, "{m}");
        assert_eq!(min_detectable_effect(1.0, 1.0), None);
        // Detecting half the current MDE takes 4× the rounds.
        assert_eq!(rounds_for_effect(10, 0.2, 0.1), Some(40));
        // Never fewer than a 95 % interval needs.
        assert_eq!(rounds_for_effect(10, 0.01, 0.1), Some(6));
        // Out of reach: None, printed as "more than", never a clamp.
        assert_eq!(rounds_for_effect(10, 1000.0, 0.05), None);
        let text = power_statement(
            10,
            0.2,
            &[
                EffectRounds {
                    effect: 0.1,
                    rounds: Some(40),
                },
                EffectRounds {
                    effect: 0.05,
                    rounds: None,
                },
            ],
        );
        assert!(text.contains("±0.200"), "{text}");
        assert!(text.contains("±0.10 needs ≈ 40 rounds"), "{text}");
        assert!(text.contains("more than 100000 rounds"), "{text}");
        assert!(text.contains("reducing the noise"), "{text}");
    }

    #[test]
    fn within_noise_flags_state_the_detectable_effect_not_a_clamp() {
        let c = vec![10.0; 10];
        let s = noisy(14.0, 1.0);
        let o: Vec<f64> = noisy(14.0, 1.0).into_iter().rev().collect();
        let f = synthetic(&c, &[4.0; 10], &s, &o);
        let flag = f
            .flags
            .iter()
            .find(|f| f.name == "overlap_gain_within_noise")
            .expect("flagged");
        let [lo, hi] = f.ci95.overlap_speedup.unwrap();
        let mde = flag.min_detectable_effect.unwrap();
        assert!((mde - (hi - lo) / 2.0 * MDE_PER_HALF_WIDTH).abs() < 1e-12);
        assert_eq!(flag.iterations_for_effect.len(), 2);
        assert!(flag.message.contains("80 % power"), "{}", flag.message);
        let cap = crate::config::limits::MAX_ITERATIONS.to_string();
        assert!(
            !flag.message.contains(&format!("≈ {cap}")),
            "{}",
            flag.message
        );
        for fl in f.flags.iter().filter(|f| f.name.ends_with("_within_noise")) {
            assert!(fl.min_detectable_effect.is_some(), "{fl:?}");
        }
    }

    #[test]
    fn exposed_breakdown_known_answers() {
        // T_o − T_c = 30 ms: 15 ms slower GEMMs, 12 ms exposed collective,
        // 2 ms waiting for a peer, 1 ms the rest.
        let (g, e, w, k) = metrics::exposed_breakdown(0.130, 0.100, 0.095, 0.080, 0.012, 0.002);
        assert!((g - 0.015).abs() < 1e-12 && e == 0.012 && w == 0.002);
        assert!((k - 0.001).abs() < 1e-12, "{k}");
        assert!((metrics::collective_hidden_fraction(0.012, 0.040) - 0.7).abs() < 1e-12);
        assert!(metrics::collective_hidden_fraction(0.012, 0.0).is_nan());

        // Two ranks; each round's critical rank differs per mode: rank 1 is
        // slowest in overlapped round 0, rank 0 in compute round 0.
        use StreamKind::*;
        let mk = |c: [f64; 2], gc: [f64; 2], o: [f64; 2], go: [f64; 2], eo: [f64; 2]| {
            let mut r = rank(0, "a", 1.0);
            let mut cm = mode(&c, &[(Compute, 1.0)]);
            cm.gemm_busy_s = gc.to_vec();
            let mut om = mode(&o, &[(Compute, 1.0), (Comm, 1.0)]);
            om.gemm_busy_s = go.to_vec();
            om.comm_exposed_s = eo.to_vec();
            r.modes.insert(Mode::Compute, cm);
            r.modes
                .insert(Mode::Comm, mode(&[0.04, 0.05], &[(Comm, 1.0)]));
            r.modes.insert(Mode::Overlapped, om);
            r
        };
        let mut r0 = mk(
            [0.100, 0.101],
            [0.095, 0.096],
            [0.120, 0.131],
            [0.100, 0.110],
            [0.010, 0.015],
        );
        r0.rank = 0;
        let mut r1 = mk(
            [0.099, 0.102],
            [0.094, 0.098],
            [0.130, 0.125],
            [0.112, 0.104],
            [0.012, 0.011],
        );
        r1.rank = 1;
        let ranks = [r0, r1];
        // Round 0: overlapped critical = rank 1 (0.130), compute = rank 0
        // (0.100): gemm 0.112 − 0.095, exposed 0.012, skew the rest.
        let (g, e, w, k) = round_breakdown(&nodes(&ranks), 0).unwrap();
        assert!((g - 0.017).abs() < 1e-12 && e == 0.012, "{g} {e}");
        // Records without waiting (no aligned clocks) wait 0.
        assert_eq!(w, 0.0);
        assert!((g + e + w + k - (0.130 - 0.100)).abs() < 1e-12);
        // Round 1: overlapped critical = rank 0 (0.131), compute = rank 1
        // (0.102).
        let (g, e, w, k) = round_breakdown(&nodes(&ranks), 1).unwrap();
        assert!((g - (0.110 - 0.098)).abs() < 1e-12 && e == 0.015, "{g} {e}");
        assert!((g + e + w + k - (0.131 - 0.102)).abs() < 1e-12);
        // With the critical rank's exposed waiting: its own part, taken
        // from the skew.
        let mut waited = ranks.clone();
        waited[0]
            .modes
            .get_mut(&Mode::Overlapped)
            .unwrap()
            .wait_exposed_s = vec![0.001, 0.004];
        let (g2, e2, w2, k2) = round_breakdown(&nodes(&waited), 1).unwrap();
        assert_eq!((g2, e2, w2), (g, e, 0.004));
        assert!((k2 - (k - 0.004)).abs() < 1e-12);
        // Without per-iteration exposed times (older records): no breakdown.
        let mut old = ranks.clone();
        for r in &mut old {
            r.modes
                .get_mut(&Mode::Overlapped)
                .unwrap()
                .comm_exposed_s
                .clear();
        }
        assert_eq!(round_breakdown(&nodes(&old), 0), None);
    }

    #[test]
    fn summary_breakdown_parts_and_sustained_mfu_recompute() {
        let c = noisy(10.0, 0.2);
        let a = vec![4.0; 10];
        let o = noisy(11.0, 0.3);
        let s = synthetic(&c, &a, &[14.0; 10], &o);
        let b = s.exposed_breakdown.expect("breakdown");
        // In `synthetic` all of T_o − T_c is exposed collective time.
        let per_round: Vec<f64> = o.iter().zip(&c).map(|(o, c)| o - c).collect();
        assert_eq!(Some(b.exposed_collective_s), stats::median(&per_round));
        assert_eq!(b.gemm_slowdown_s, 0.0);
        assert!(b.sync_skew_s.abs() < 1e-9);
        // hidden = 1 − exposed / T_a per round, median.
        let hidden: Vec<f64> = per_round.iter().map(|e| 1.0 - e / 4.0).collect();
        assert_eq!(s.hidden_fraction, stats::median(&hidden));
        assert_eq!(s.step_hidden_fraction, stats::median(&hidden));
        // Sustained MFU: total FLOPs over total time = MFU at the mean step.
        let mean = o.iter().sum::<f64>() / o.len() as f64;
        let p = plan();
        assert_eq!(
            s.mfu_sustained.overlapped,
            Some(metrics::mfu(p.flops.model, mean, 1000.0))
        );
        assert_eq!(s.mfu_sustained.comm, None);
        let [lo, hi] = s.ci95.mfu_sustained.overlapped.unwrap();
        let v = s.mfu_sustained.overlapped.unwrap();
        assert!(lo < v && v < hi, "{lo} {v} {hi}");
        // Every interval's rounds and coverage are recorded.
        assert_eq!(s.ci95_n.get("overlap_speedup"), Some(&10));
        assert_eq!(s.ci95_n.get("exposed_breakdown.sync_skew_s"), Some(&10));
        assert!(s.ci95_coverage["overlap_speedup"] >= 0.95);
    }

    #[test]
    fn efficiency_is_a_ratio_of_paired_medians_flagged_when_ill_conditioned() {
        // `synthetic`'s one bucket is ready after the only GEMM: its tail
        // is its 1 s op, T_ideal = max(T_c + 1, T_a) = 11 s.
        let c = vec![10.0; 8];
        let (ts, to) = (
            noisy(14.0, 0.2)[..8].to_vec(),
            noisy(11.5, 0.1)[..8].to_vec(),
        );
        let s = synthetic(&c, &[4.0; 8], &ts, &to);
        let gain: Vec<f64> = ts.iter().zip(&to).map(|(s, o)| s - o).collect();
        let ideal: Vec<f64> = ts.iter().map(|s| s - 11.0).collect();
        let want = stats::median(&gain).unwrap() / stats::median(&ideal).unwrap();
        assert!((s.overlap_efficiency.unwrap() - want).abs() < 1e-12);
        let [lo, hi] = s.ci95.overlap_efficiency.unwrap();
        assert!(lo <= want && want <= hi, "{lo} {want} {hi}");
        // Known answer of the ratio of medians.
        let gain = [3.0, 2.0, 4.0, 3.5];
        let ideal = [4.0, 4.0, 4.0, 4.0];
        let ci = stats::ratio_of_medians_ci95(&gain, &ideal).unwrap();
        assert!(ci[0] <= 3.25 / 4.0 && 3.25 / 4.0 <= ci[1], "{ci:?}");
        // A denominator whose interval includes 0 raises the flag.
        let mut f = s.clone();
        f.overlap_efficiency = Some(0.8);
        f.ci95.achievable_gain_s = Some([-0.001, 0.01]);
        assert!(flags(&f)
            .iter()
            .any(|fl| fl.name == "efficiency_ill_conditioned"));
        f.ci95.achievable_gain_s = Some([0.002, 0.01]);
        assert!(!flags(&f)
            .iter()
            .any(|fl| fl.name == "efficiency_ill_conditioned"));
    }

    #[test]
    fn drift_and_throttling_are_flagged() {
        let c: Vec<f64> = (0..12).map(|i| 10.0 * (1.0 + 0.005 * i as f64)).collect();
        let s = synthetic(
            &c,
            &[4.0; 12],
            &[14.0; 12],
            &noisy(11.0, 0.1)[..10].repeat(2)[..12],
        );
        let drift: Vec<&Flag> = s
            .flags
            .iter()
            .filter(|f| f.name == "step_time_drift")
            .collect();
        assert_eq!(drift.len(), 1, "{:?}", s.flags);
        assert_eq!(drift[0].figure, "step_time_s.compute");
        assert!(
            drift[0].message.contains("slowed by 5.4 %"),
            "{}",
            drift[0].message
        );
        // Throttle reasons and a clock drop.
        let mut r = rank(0, "a", 1.0);
        let sample = |mode, at: &str, clock, reasons: &[&str]| TelemetrySample {
            mode,
            at: at.into(),
            sm_clock_mhz: Some(clock),
            temperature_c: None,
            power_w: None,
            throttle_reasons: reasons.iter().map(|x| x.to_string()).collect(),
        };
        r.telemetry = vec![
            sample(Mode::Overlapped, "start", 1980, &[]),
            sample(Mode::Overlapped, "end", 1700, &[]),
            sample(Mode::Compute, "end", 1980, &["sw_thermal"]),
        ];
        let t = throttled(&nodes(&[r]));
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(t
            .iter()
            .any(|l| l.contains("1980 MHz at its start, 1700 MHz")));
        assert!(t.iter().any(|l| l.contains("compute at end: sw_thermal")));
    }

    #[test]
    fn a_figure_that_drops_rounds_gets_its_own_too_few_flag() {
        // 6 rounds; comm mode took 0 s in 1 of them: the hidden fractions
        // are undefined there, so 5 rounds (93.75 %) define them.
        let c = vec![10.0; 6];
        let a = [4.0, 4.0, 0.0, 4.0, 4.0, 4.0];
        let s = synthetic(&c, &a, &[14.0; 6], &[11.0, 11.1, 11.2, 11.0, 10.9, 11.05]);
        assert_eq!(s.ci95.paired_iterations, 6);
        assert_eq!(s.ci95_n.get("hidden_fraction"), Some(&5));
        assert!((s.ci95_coverage["hidden_fraction"] - 0.9375).abs() < 1e-12);
        let too_few: Vec<&str> = s
            .flags
            .iter()
            .filter(|f| f.name == "too_few_iterations")
            .map(|f| f.figure.as_str())
            .collect();
        assert!(too_few.contains(&"hidden_fraction"), "{:?}", s.flags);
        assert!(!too_few.contains(&"overlap_speedup"), "{:?}", s.flags);
    }
}

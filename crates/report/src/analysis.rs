//! From a [`RunRecord`] to a [`Report`]: every figure the exporters print.
//!
//! The cluster summary is recomputed from the raw per-rank records with
//! core's [`summarize`] (the same function the worker uses), so the report
//! never trusts a number it cannot derive, and a different straggler
//! tolerance can be applied after the fact. When the stored summary
//! disagrees with the recomputed one, the report says so in `warnings`.

use std::collections::HashMap;

use mfubench_core::aggregate::NodeRecord;
use mfubench_core::config::{Acceptance, Mode};
use mfubench_core::metrics;
use mfubench_core::result::{
    briefs, find_stragglers_of_nodes, node_step_times, shared_hosts_of, straggler_mode_of_nodes,
    summarize_nodes, timeline_ranks, AllreduceSummary, BucketInfo, Contention, FlopsPerStep,
    PeakSource, RankRecord, RunRecord, Span, Straggler, Summary, TelemetrySample,
};
use mfubench_core::stats::{self, Stats};
use serde::Serialize;

use crate::verdict::Verdict;

/// Headline figures of one mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeHeadline {
    /// The mode.
    pub mode: Mode,
    /// Timed iterations (cluster steps).
    pub iterations: usize,
    /// Median cluster step time, seconds.
    pub step_median_s: f64,
    /// 95th percentile of the cluster step times, seconds.
    pub step_p95_s: f64,
    /// Fastest cluster step, seconds.
    pub step_min_s: f64,
    /// Sum of the cluster step times of the timed iterations, seconds.
    pub step_total_s: f64,
    /// Achieved model TFLOP/s per device (modes with GEMMs).
    pub tflops_per_device: Option<f64>,
    /// Model FLOPs utilisation at the median step (modes with GEMMs).
    pub mfu: Option<f64>,
    /// Sustained MFU: total FLOPs over the total time of the timed rounds
    /// (modes with GEMMs).
    pub mfu_sustained: Option<f64>,
    /// Hardware FLOPs utilisation (when recomputing).
    pub hfu: Option<f64>,
    /// Tokens per second of the executed slice, whole cluster (modes with
    /// GEMMs).
    pub tokens_per_second: Option<f64>,
    /// Tokens per second of the whole model (slice rate × run.layers /
    /// model.layers).
    pub full_model_tokens_per_second: Option<f64>,
}

/// Overlap figures (need the modes named in their formulas).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OverlapFigures {
    /// T_o − T_c, seconds.
    pub exposed_comm_s: Option<f64>,
    /// (T_o − T_c) / T_o.
    pub exposed_comm_fraction: Option<f64>,
    /// (T_s − T_c) / T_s.
    pub serialized_overhead: Option<f64>,
    /// T_o − T_c split by cause (medians over rounds).
    pub exposed_breakdown: Option<mfubench_core::result::ExposedBreakdown>,
    /// 1 − exposed collective / T_a (median over rounds).
    pub hidden_fraction: Option<f64>,
    /// (T_c + T_a − T_o) / T_a (median over rounds).
    pub step_hidden_fraction: Option<f64>,
    /// T_s / T_o.
    pub overlap_speedup: Option<f64>,
    /// (T_s − T_o) / (T_s − T_ideal), T_ideal = max(T_c + tail, T_a).
    pub overlap_efficiency: Option<f64>,
    /// The last bucket's exposed tail (in T_ideal), seconds.
    pub last_bucket_tail_s: Option<f64>,
    /// GEMM and all-reduce slowdown under overlap.
    pub contention: Contention,
}

/// One rank in one mode (a row of summary.csv).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankModeRow {
    /// MPI rank.
    pub rank: u64,
    /// Host name.
    pub host: String,
    /// Rank on its host.
    pub local_rank: u64,
    /// Device, e.g. `GPU 3`.
    pub device: String,
    /// The mode.
    pub mode: Mode,
    /// Timed iterations.
    pub iterations: usize,
    /// Median step, seconds.
    pub step_median_s: f64,
    /// p95 step, seconds.
    pub step_p95_s: f64,
    /// Fastest step, seconds.
    pub step_min_s: f64,
    /// Slowest step, seconds.
    pub step_max_s: f64,
    /// p95 / median.
    pub jitter: f64,
    /// This rank's model TFLOP/s at its median step (modes with GEMMs).
    pub tflops: Option<f64>,
    /// This rank's MFU at its median step (modes with GEMMs).
    pub mfu: Option<f64>,
    /// Σ per-op medians on the compute stream, seconds.
    pub gemm_time_s: f64,
    /// Σ per-op medians on the comm stream, seconds.
    pub allreduce_time_s: f64,
    /// Wrong all-reduce elements in this mode.
    pub wrong: u64,
}

/// One rank across modes (the per-rank table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankRow {
    /// MPI rank.
    pub rank: u64,
    /// Host name.
    pub host: String,
    /// Rank on its host.
    pub local_rank: u64,
    /// Device.
    pub device: String,
    /// Median step in the straggler mode, seconds.
    pub step_median_s: Option<f64>,
    /// Model TFLOP/s at that step (when the straggler mode has GEMMs).
    pub rate_tflops: Option<f64>,
    /// (step − median over ranks) / median over ranks.
    pub deviation: Option<f64>,
    /// p95 / median of this rank's steps in the straggler mode.
    pub jitter: Option<f64>,
    /// Wrong all-reduce elements, all modes.
    pub wrong: u64,
    /// Slower than the median by more than the straggler tolerance.
    pub straggler: bool,
    /// Why this rank is flagged (empty when it is not).
    pub flags: Vec<String>,
}

/// One host (the per-node table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRow {
    /// Host name.
    pub host: String,
    /// Ranks on the host.
    pub ranks: usize,
    /// Median of its ranks' rates, TFLOP/s.
    pub rate_median_tflops: Option<f64>,
    /// Slowest rank's rate, TFLOP/s.
    pub rate_min_tflops: Option<f64>,
    /// Fastest rank's rate, TFLOP/s.
    pub rate_max_tflops: Option<f64>,
    /// Slowest rank's median step in the straggler mode, seconds.
    pub step_max_s: Option<f64>,
    /// Largest jitter (p95/median) of its ranks.
    pub jitter_max: Option<f64>,
    /// Stragglers on the host.
    pub stragglers: usize,
    /// Wrong elements on the host.
    pub wrong: u64,
    /// Why the host is flagged (empty when it is not).
    pub flags: Vec<String>,
}

/// One bucket's all-reduce in one mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BucketRow {
    /// Comm or overlapped.
    pub mode: Mode,
    /// Bucket index.
    pub index: usize,
    /// Bytes all-reduced.
    pub bytes: u64,
    /// Median over ranks of the rank's median all-reduce time, seconds.
    pub time_s: Option<f64>,
    /// bytes / time, GB/s.
    pub algbw_gbps: Option<f64>,
    /// algbw · 2(n−1)/n, GB/s.
    pub busbw_gbps: Option<f64>,
}

/// One step of one rank as it ran (the iteration with that rank's median
/// step time), for the timeline plot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepTimeline {
    /// The mode of the step.
    pub mode: Mode,
    /// Which timed iteration it is (0-based).
    pub iteration: usize,
    /// Timed iterations of the mode on this rank.
    pub iterations: usize,
    /// That iteration's step time on this rank, seconds.
    pub step_s: Option<f64>,
    /// Its ops with finite, ordered start and end, in recorded order.
    pub spans: Vec<Span>,
}

/// The recorded steps of one rank chosen for the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankTimeline {
    /// Why this rank is shown: `slowest` or `median`.
    pub role: String,
    /// The mode whose median step time chose the rank.
    pub chosen_by: Mode,
    /// MPI rank.
    pub rank: u64,
    /// Host name.
    pub host: String,
    /// Device.
    pub device: String,
    /// Its serialized and overlapped steps (or, when neither ran, its
    /// compute and comm steps), in that order.
    pub steps: Vec<StepTimeline>,
}

/// One telemetry sample of one rank.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryRow {
    /// MPI rank.
    pub rank: u64,
    /// Host name.
    pub host: String,
    /// Device.
    pub device: String,
    /// The sample.
    pub sample: TelemetrySample,
}

/// Facts about the run shown above the figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// The run.json the report was made from.
    pub source: String,
    /// Run identifier.
    pub run_id: String,
    /// Version of mfubench that wrote the run.
    pub tool_version: String,
    /// run.json layout version.
    pub schema_version: u32,
    /// Start time.
    pub started_at: String,
    /// End time.
    pub finished_at: String,
    /// Backend that ran.
    pub backend: String,
    /// Number of ranks.
    pub world_size: u64,
    /// Number of hosts.
    pub hosts: usize,
    /// Model (preset name or `custom`).
    pub model: String,
    /// FNV-1a 64 hash of the resolved config as JSON (hex): runs with the
    /// same hash ran the same configuration.
    pub config_hash: String,
    /// Blocks per step.
    pub layers: u64,
    /// Tokens per rank per step.
    pub tokens: u64,
    /// GEMM dtype.
    pub dtype: String,
    /// Gradient dtype.
    pub grad_dtype: String,
    /// Device models seen, most common first.
    pub devices: Vec<String>,
    /// Whether all-reduce results were verified.
    pub check: bool,
    /// Whether recomputation was on.
    pub recompute: bool,
    /// Modes that ran.
    pub modes: Vec<Mode>,
    /// Whether the devices were simulated GPUs (`--sim-gpu`): their timings
    /// are CPU timings, and every output says so.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
}

/// Whether any rank ran on a simulated GPU (`device_info.simulated`, or a
/// device name carrying the simulator's mark).
pub fn simulated(ranks: &[mfubench_core::result::RankRecord]) -> bool {
    ranks.iter().any(|r| {
        r.device_info.get("simulated").is_some_and(|v| v == "true")
            || r.device_name.ends_with(mfubench_core::simgpu::NAME_MARK)
    })
}

/// Everything a report shows; `summary.json` is this, serialized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// About the run.
    pub run: RunInfo,
    /// False when the run stopped (timeout, dead rank, Ctrl-C) before every
    /// configured mode ran: the figures cover the modes that finished and
    /// the verdict is INCOMPLETE.
    pub complete: bool,
    /// Peak TFLOP/s per device used for MFU.
    pub peak_tflops: f64,
    /// Where the peak came from.
    pub peak_source: PeakSource,
    /// FLOPs per rank per step.
    pub flops_per_step: FlopsPerStep,
    /// Per mode that ran.
    pub headline: Vec<ModeHeadline>,
    /// Overlap figures.
    pub overlap: OverlapFigures,
    /// Per mode with collectives, each rank's median waiting for peers per
    /// step, seconds (index: rank); empty without aligned clocks.
    pub wait_for_peers_s: std::collections::BTreeMap<Mode, Vec<f64>>,
    /// How the timed steps were ordered (`interleaved` pairs the modes).
    pub schedule: mfubench_core::config::Schedule,
    /// How warmup ended (None: no warmup, or a run written before adaptive
    /// warmup).
    pub warmup: Option<mfubench_core::warmup::WarmupOutcome>,
    /// 95 % confidence intervals of the headline and overlap figures.
    pub ci95: mfubench_core::result::Ci95,
    /// Rounds behind each paired figure's interval (summary.ci95_n).
    pub ci95_n: std::collections::BTreeMap<String, usize>,
    /// Exact coverage of each paired figure's interval
    /// (summary.ci95_coverage).
    pub ci95_coverage: std::collections::BTreeMap<String, f64>,
    /// Figures not to be trusted as they stand, and why.
    pub flags: Vec<mfubench_core::result::Flag>,
    /// All-reduce size and bandwidth (comm mode).
    pub allreduce: AllreduceSummary,
    /// Per kind of collective and group: bytes, bandwidth, exposure and
    /// hidden fraction (run files of schema 3).
    pub collectives: Vec<mfubench_core::result::CollectiveSummary>,
    /// Wrong all-reduce elements, all ranks and modes.
    pub wrong: u64,
    /// The acceptance thresholds applied.
    pub acceptance: Acceptance,
    /// Mode whose per-rank step identifies stragglers.
    pub straggler_mode: Option<Mode>,
    /// Ranks slower than the median by more than the tolerance.
    pub stragglers: Vec<Straggler>,
    /// Hosts with a straggler.
    pub slow_hosts: Vec<String>,
    /// Per host, in host order.
    pub nodes: Vec<NodeRow>,
    /// Per rank, in rank order.
    pub ranks: Vec<RankRow>,
    /// Per bucket, comm mode then overlapped mode.
    pub buckets: Vec<BucketRow>,
    /// Per rank and mode (summary.csv); left out of summary.json, whose
    /// size would otherwise grow with ranks × modes.
    #[serde(skip)]
    pub rank_modes: Vec<RankModeRow>,
    /// The steps of the slowest and the median rank (timeline plots); left
    /// out of summary.json, which holds figures, not raw spans.
    #[serde(skip)]
    pub timelines: Vec<RankTimeline>,
    /// The plan's buckets (sizes and when each is ready, for the timeline).
    #[serde(skip)]
    pub plan_buckets: Vec<BucketInfo>,
    /// Kind and group of each of the plan's collectives, by span index
    /// (the timeline's lane per group and kind; empty for DDP).
    #[serde(skip)]
    pub plan_collective_ops: Vec<mfubench_core::result::CollectiveRef>,
    /// Every telemetry sample of every rank (empty without GPU telemetry).
    #[serde(skip)]
    pub telemetry: Vec<TelemetryRow>,
    /// The PASS/FAIL result of every rule.
    pub verdict: Verdict,
    /// Things a reader should know (e.g. a stored summary that disagrees).
    pub warnings: Vec<String>,
    /// Hosts shared at the start of the run (oversubscribed, another
    /// mfubench run, load above the cores), as `host: why`: the MFU is
    /// marked beside it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_hosts: Vec<String>,
}

pub use mfubench_core::result::straggler_mode;

/// The mark beside an MFU measured on a shared host.
pub const SHARED_MARK: &str = "⚠ shared host";

impl Report {
    /// An MFU cell's text with the shared-host mark when it applies.
    pub fn mfu_text(&self, cell: String) -> String {
        if self.shared_hosts.is_empty() {
            cell
        } else {
            format!("{cell} {SHARED_MARK}")
        }
    }
}

/// Builds the report of a run with the given acceptance thresholds.
/// The report's figures from a run, with an empty verdict, and the summary
/// they were computed from ([`crate::acceptance::analyze`] adds the
/// verdict).
pub fn measure(
    run: &RunRecord,
    source: &str,
    acc: &Acceptance,
) -> (Report, mfubench_core::result::Summary) {
    measure_with(run, &run.ranks, source, acc)
}

/// [`measure`] of a run whose rank records may be in shards: the figures
/// come from the per-node aggregates ([`RunRecord::node_records`]), and
/// the timelines and telemetry from `loaded`, the rank records at hand
/// (all of them in a flat run; in a sharded one, those
/// [`crate::read::read_run`] loaded: the two the report draws).
pub fn measure_with(
    run: &RunRecord,
    loaded: &[RankRecord],
    source: &str,
    acc: &Acceptance,
) -> (Report, mfubench_core::result::Summary) {
    let nodes = run.node_records();
    let nodes: &[NodeRecord] = &nodes;
    let world: u64 = nodes.iter().map(|n| n.ranks.len() as u64).sum();
    let flops = run.plan.flops;
    // Recomputed from the records and the run's inputs only; the stored
    // summary is read just to verify it (compare_stored).
    let inputs = run.summary_inputs(acc.straggler_tolerance);
    let peak = inputs.peak_tflops;
    let s = summarize_nodes(nodes, inputs);
    let mut warnings = compare_stored(&run.summary, &s);
    if !run.complete {
        warnings.insert(
            0,
            format!(
                "partial run: the worker stopped (or is still running) before every configured mode ran; this file holds {} of {} mode(s)",
                nodes.first().map(|n| n.modes.len()).unwrap_or(0),
                run.config.run.modes.len()
            ),
        );
    }
    let telemetry_held: u64 = nodes.iter().map(|n| n.telemetry_samples).sum();
    let telemetry_read: u64 = loaded.iter().map(|r| r.telemetry.len() as u64).sum();
    if telemetry_read < telemetry_held {
        warnings.push(format!(
            "telemetry of {} rank(s) shown ({telemetry_read} of {telemetry_held} samples); the rest is in the shards under ranks/ (throttling is reported for every rank)",
            loaded.len()
        ));
    }

    let shared_hosts: Vec<String> = shared_hosts_of(nodes)
        .into_iter()
        .map(|(h, why)| format!("{h}: {why}"))
        .collect();
    if !shared_hosts.is_empty() {
        warnings.push(format!(
            "shared host(s) at the start, so MFU and step times are lower than the hardware gives (MFU marked {SHARED_MARK}): {}",
            shared_hosts.join("; ")
        ));
    }
    let headline = Mode::ALL
        .into_iter()
        .filter_map(|m| {
            let st: Stats = s.step_time_stats.get(m)?;
            Some(ModeHeadline {
                mode: m,
                iterations: st.count,
                step_median_s: st.median,
                step_p95_s: st.p95,
                step_min_s: st.min,
                step_total_s: node_step_times(nodes, m).iter().sum(),
                tflops_per_device: s.tflops_per_device.get(m),
                mfu: s.mfu.get(m),
                mfu_sustained: s.mfu_sustained.get(m),
                hfu: s.hfu.and_then(|h| h.get(m)),
                tokens_per_second: s.tokens_per_second.get(m),
                full_model_tokens_per_second: s.full_model_tokens_per_second.get(m),
            })
        })
        .collect();

    let smode = straggler_mode_of_nodes(nodes);
    let (rank_rows, rank_modes) = rank_tables(run, nodes, smode, &s.stragglers);
    let node_rows = node_table(&rank_rows);
    // Buckets run on the gradient all-reduces' group (the replicas with tensor
    // parallelism), not the world.
    let buckets = bucket_table(run, nodes, s.allreduce.group_size.unwrap_or(world));

    let mut modes: Vec<Mode> = run.config.run.modes.clone();
    modes.retain(|m| s.step_time_stats.get(*m).is_some());

    let mut allreduce = s.allreduce;
    if world <= 1 {
        // busbw = algbw·2(n−1)/n is 0 on one rank: not a bandwidth of anything.
        allreduce.busbw_gbps = None;
        warnings.push(format!(
            "{world} rank: nothing is communicated, so all-reduce bandwidth, exposed \
             communication and the hidden fraction say nothing about a network; \
             their acceptance rules are SKIPPED"
        ));
    }
    let report = Report {
        complete: run.complete,
        run: RunInfo {
            source: source.to_string(),
            run_id: run.run_id.clone(),
            tool_version: run.tool_version.clone(),
            schema_version: run.schema_version,
            started_at: run.started_at.clone(),
            finished_at: run.finished_at.clone(),
            backend: run.backend.to_string(),
            world_size: run.world_size,
            hosts: count_hosts(nodes),
            model: run.config.model.name.clone(),
            config_hash: config_hash(&run.config),
            layers: run.plan.layers,
            tokens: run.plan.tokens,
            dtype: run.config.run.dtype.to_string(),
            grad_dtype: run.config.run.grad_dtype.to_string(),
            devices: device_names(nodes),
            check: run.config.run.check,
            recompute: run.config.run.recompute,
            modes,
            simulated: nodes.iter().any(|n| n.simulated),
        },
        peak_tflops: peak,
        peak_source: s.peak_source,
        flops_per_step: flops,
        headline,
        wait_for_peers_s: s.wait_for_peers_s.clone(),
        overlap: OverlapFigures {
            exposed_comm_s: s.exposed_comm_s,
            exposed_comm_fraction: s.exposed_comm_fraction,
            serialized_overhead: s.serialized_overhead,
            exposed_breakdown: s.exposed_breakdown,
            hidden_fraction: s.hidden_fraction,
            step_hidden_fraction: s.step_hidden_fraction,
            overlap_speedup: s.overlap_speedup,
            overlap_efficiency: s.overlap_efficiency,
            last_bucket_tail_s: s.last_bucket_tail_s,
            contention: s.contention,
        },
        schedule: s.schedule,
        warmup: s.warmup,
        ci95: s.ci95.clone(),
        ci95_n: s.ci95_n.clone(),
        ci95_coverage: s.ci95_coverage.clone(),
        flags: s.flags.clone(),
        allreduce,
        collectives: s.collectives.clone(),
        wrong: s.wrong,
        acceptance: acc.clone(),
        straggler_mode: smode,
        stragglers: s.stragglers.clone(),
        slow_hosts: s.slow_hosts.clone(),
        nodes: node_rows,
        ranks: rank_rows,
        buckets,
        rank_modes,
        timelines: timelines(nodes, loaded),
        plan_buckets: run.plan.buckets.clone(),
        plan_collective_ops: run.plan.collective_ops.clone(),
        telemetry: loaded
            .iter()
            .flat_map(|r| {
                r.telemetry.iter().map(|t| TelemetryRow {
                    rank: r.rank,
                    host: r.host.clone(),
                    device: r.device.clone(),
                    sample: t.clone(),
                })
            })
            .collect(),
        verdict: Verdict::default(),
        warnings,
        shared_hosts,
    };
    (report, s)
}

/// FNV-1a 64 over the config serialised as JSON (field order is fixed by
/// the struct, so equal configs hash equally), as 16 hex digits.
pub fn config_hash(config: &mfubench_core::config::Config) -> String {
    format!(
        "{:016x}",
        fnv1a64(&serde_json::to_vec(config).unwrap_or_default())
    )
}

/// The 64-bit FNV-1a hash.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The slowest and the median rank by their median step in the first of
/// overlapped, serialized, compute, comm that has recorded timelines, with
/// their recorded steps. The median rank is left out when it is the
/// slowest (one rank, or ties). The ranks are ordered over the whole run
/// ([`mfubench_core::result::ranks_by_step`]); a large run keeps the
/// timelines of a sample that holds both ([`timeline_sample`]), and where a
/// chosen rank has none the nearest rank in that order that has one stands
/// in.
///
/// [`timeline_sample`]: mfubench_core::result::timeline_sample
fn timelines(nodes: &[NodeRecord], ranks: &[RankRecord]) -> Vec<RankTimeline> {
    let Some((chosen_by, slowest, median)) = timeline_ranks(nodes) else {
        return Vec::new();
    };
    let find = |rank: u64| ranks.iter().position(|r| r.rank == rank);
    let (Some(slowest), Some(median)) = (find(slowest), find(median)) else {
        return Vec::new();
    };
    let has_timelines = |m: Mode| {
        nodes
            .iter()
            .any(|n| n.modes.get(&m).is_some_and(|x| x.timelines > 0))
    };
    let shown: &[Mode] = if has_timelines(Mode::Serialized) || has_timelines(Mode::Overlapped) {
        &[Mode::Serialized, Mode::Overlapped]
    } else {
        &[Mode::Compute, Mode::Comm]
    };
    let view = |i: usize, role: &str| {
        let r = &ranks[i];
        RankTimeline {
            role: role.to_string(),
            chosen_by,
            rank: r.rank,
            host: r.host.clone(),
            device: r.device.clone(),
            steps: shown
                .iter()
                .filter_map(|m| {
                    let rec = r.modes.get(m).filter(|rec| !rec.timeline.is_empty())?;
                    Some(StepTimeline {
                        mode: *m,
                        iteration: rec.timeline_iteration,
                        iterations: rec.step_time_s.len(),
                        step_s: rec.step_time_s.get(rec.timeline_iteration).copied(),
                        spans: rec
                            .timeline
                            .iter()
                            .filter(|s| {
                                s.start_s.is_finite() && s.end_s.is_finite() && s.end_s >= s.start_s
                            })
                            .cloned()
                            .collect(),
                    })
                })
                .collect(),
        }
    };
    let mut out = vec![view(slowest, "slowest")];
    if median != slowest {
        out.push(view(median, "median"));
    }
    out
}

fn count_hosts(nodes: &[NodeRecord]) -> usize {
    nodes
        .iter()
        .map(|n| n.host.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// Device models with their count, most common first (`H100 ×16`).
fn device_names(nodes: &[NodeRecord]) -> Vec<String> {
    let mut counts: Vec<(&str, u64)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (name, n) in nodes.iter().flat_map(|n| &n.device_names) {
        let name = if name.is_empty() {
            "unknown"
        } else {
            name.as_str()
        };
        match index.get(name) {
            Some(&i) => counts[i].1 += n,
            None => {
                index.insert(name, counts.len());
                counts.push((name, *n));
            }
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
        .into_iter()
        .map(|(n, c)| format!("{n} ×{c}"))
        .collect()
}

/// Warnings when the summary stored by the worker disagrees with the one
/// recomputed here (a worker bug, or a hand-edited file).
fn compare_stored(stored: &Summary, fresh: &Summary) -> Vec<String> {
    let mut w = Vec::new();
    let differs = |a: f64, b: f64| (a - b).abs() > 1e-9 * a.abs().max(b.abs()).max(1e-300);
    for m in Mode::ALL {
        let pairs = [
            (
                "step time",
                stored.step_time_s.get(m),
                fresh.step_time_s.get(m),
            ),
            ("MFU", stored.mfu.get(m), fresh.mfu.get(m)),
        ];
        for (what, a, b) in pairs {
            match (a, b) {
                (Some(a), Some(b)) if differs(a, b) => w.push(format!(
                    "{m} {what} stored in run.json ({a}) differs from the value recomputed from the rank records ({b}); the report uses the recomputed value"
                )),
                (Some(_), None) | (None, Some(_)) => w.push(format!(
                    "{m} {what} is {} in the stored summary but {} from the rank records; the report uses the rank records",
                    if a.is_some() { "present" } else { "absent" },
                    if b.is_some() { "present" } else { "absent" },
                )),
                _ => {}
            }
        }
    }
    if stored.wrong != fresh.wrong {
        w.push(format!(
            "wrong elements stored in the summary ({}) differ from the sum over ranks ({}); the report uses the sum over ranks",
            stored.wrong, fresh.wrong
        ));
    }
    w
}

fn rank_tables(
    run: &RunRecord,
    nodes: &[NodeRecord],
    smode: Option<Mode>,
    stragglers: &[Straggler],
) -> (Vec<RankRow>, Vec<RankModeRow>) {
    let flops = run.plan.flops.model;
    let peak = run.summary.peak_tflops;
    let ranks = briefs(nodes);
    let mut rank_modes = Vec::with_capacity(ranks.len() * 4);
    let mut rows = Vec::with_capacity(ranks.len());
    let mut smode_median: Vec<Option<f64>> = Vec::with_capacity(ranks.len());
    let mut smode_jitter: Vec<Option<f64>> = Vec::with_capacity(ranks.len());
    for (host, r) in &ranks {
        let mut sm = None;
        let mut sj = None;
        for (&mode, m) in &r.modes {
            let Some(st) = m.steps else {
                continue;
            };
            let jitter = st.p95 / st.median;
            let has_gemm = mode.has_compute();
            rank_modes.push(RankModeRow {
                rank: r.rank,
                host: host.to_string(),
                local_rank: r.local_rank,
                device: r.device.clone(),
                mode,
                iterations: st.count,
                step_median_s: st.median,
                step_p95_s: st.p95,
                step_min_s: st.min,
                step_max_s: st.max,
                jitter,
                tflops: has_gemm.then(|| metrics::tflops(flops, st.median)),
                mfu: has_gemm.then(|| metrics::mfu(flops, st.median, peak)),
                gemm_time_s: m.gemm_time_s,
                allreduce_time_s: m.allreduce_time_s,
                wrong: m.wrong,
            });
            if Some(mode) == smode {
                sm = Some(st.median);
                sj = Some(jitter);
            }
        }
        smode_median.push(sm);
        smode_jitter.push(sj);
    }
    let present: Vec<f64> = smode_median.iter().flatten().copied().collect();
    let med = stats::median(&present);
    let has_gemm = smode.is_some_and(Mode::has_compute);
    let mut reasons: HashMap<u64, &str> = HashMap::new();
    for s in stragglers {
        reasons.insert(s.rank, &s.reason);
    }
    for (i, (host, r)) in ranks.iter().enumerate() {
        let step = smode_median[i];
        let mut flags = Vec::new();
        if let Some(reason) = reasons.get(&r.rank) {
            flags.push((*reason).to_string());
        }
        if r.wrong > 0 {
            flags.push(format!(
                "rank {} ({}, {}): {} wrong all-reduce element{}",
                r.rank,
                host,
                r.device,
                r.wrong,
                if r.wrong == 1 { "" } else { "s" }
            ));
        }
        rows.push(RankRow {
            rank: r.rank,
            host: host.to_string(),
            local_rank: r.local_rank,
            device: r.device.clone(),
            step_median_s: step,
            rate_tflops: step.filter(|_| has_gemm).map(|t| metrics::tflops(flops, t)),
            deviation: step
                .zip(med)
                .map(|(t, m)| metrics::relative_deviation(t, m)),
            jitter: smode_jitter[i],
            wrong: r.wrong,
            straggler: reasons.contains_key(&r.rank),
            flags,
        });
    }
    (rows, rank_modes)
}

fn node_table(rows: &[RankRow]) -> Vec<NodeRow> {
    // Hosts in order of their first rank (run.hosts may be absent or stale).
    let mut order: Vec<&str> = Vec::new();
    let mut members: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        members
            .entry(r.host.as_str())
            .or_insert_with(|| {
                order.push(r.host.as_str());
                Vec::new()
            })
            .push(i);
    }
    order
        .into_iter()
        .map(|host| {
            let idx = &members[host];
            let rates: Vec<f64> = idx.iter().filter_map(|&i| rows[i].rate_tflops).collect();
            let steps: Vec<f64> = idx.iter().filter_map(|&i| rows[i].step_median_s).collect();
            let jit: Vec<f64> = idx.iter().filter_map(|&i| rows[i].jitter).collect();
            let flagged: Vec<&RankRow> = idx
                .iter()
                .map(|&i| &rows[i])
                .filter(|r| !r.flags.is_empty())
                .collect();
            let stragglers = idx.iter().filter(|&&i| rows[i].straggler).count();
            let wrong: u64 = idx.iter().map(|&i| rows[i].wrong).sum();
            let mut flags = Vec::new();
            if !flagged.is_empty() {
                let list: Vec<String> = flagged.iter().map(|r| r.rank.to_string()).collect();
                flags.push(format!(
                    "{host}: flagged rank{} {}",
                    if list.len() == 1 { "" } else { "s" },
                    list.join(", ")
                ));
            }
            NodeRow {
                host: host.to_string(),
                ranks: idx.len(),
                rate_median_tflops: stats::median(&rates),
                rate_min_tflops: rates.iter().copied().reduce(f64::min),
                rate_max_tflops: rates.iter().copied().reduce(f64::max),
                step_max_s: steps.iter().copied().reduce(f64::max),
                jitter_max: jit.iter().copied().reduce(f64::max),
                stragglers,
                wrong,
                flags,
            }
        })
        .collect()
}

fn bucket_table(run: &RunRecord, nodes: &[NodeRecord], group: u64) -> Vec<BucketRow> {
    let buckets = &run.plan.buckets;
    let mut out = Vec::new();
    for mode in [Mode::Comm, Mode::Overlapped] {
        let per_node: Vec<&Vec<Option<f64>>> = nodes
            .iter()
            .filter_map(|n| n.bucket_median_s.get(&mode))
            .collect();
        if per_node.is_empty() {
            continue;
        }
        for (b, info) in buckets.iter().enumerate() {
            let of_nodes: Vec<f64> = per_node.iter().filter_map(|v| *v.get(b)?).collect();
            let time = stats::median(&of_nodes);
            let alg = time
                .filter(|t| *t > 0.0)
                .map(|t| metrics::algbw_gbps(info.bytes as f64, t));
            out.push(BucketRow {
                mode,
                index: info.index,
                bytes: info.bytes,
                time_s: time,
                algbw_gbps: alg,
                busbw_gbps: alg
                    .filter(|_| group > 1)
                    .map(|a| metrics::busbw_gbps(a, group)),
            });
        }
    }
    out
}

/// Straggler list at a given tolerance (core's test, re-exported for callers
/// that want the list without a whole report).
pub fn stragglers_at(run: &RunRecord, tolerance: f64) -> (Vec<Straggler>, Vec<String>) {
    find_stragglers_of_nodes(&run.node_records(), tolerance)
}

#[cfg(test)]
mod tests {
    #[test]
    fn straggler_mode_prefers_compute() {
        assert_eq!(
            super::straggler_mode(&[]),
            Some(mfubench_core::config::Mode::Compute)
        );
    }
}

//! Per-node aggregates: what the cluster summary needs from a node's ranks.
//!
//! At 100,000 ranks rank 0 cannot hold every rank record (each is tens of
//! kilobytes: per-op medians, timelines, telemetry). The summary
//! ([`crate::result::summarize_nodes`]) is therefore written over one
//! [`NodeRecord`] per node, built on the node by its leader
//! ([`NodeRecord::of`]); the full rank records go to a shard file per node
//! (`ranks/<host>.json`, [`RankShards`]).
//!
//! Every figure of the summary is either
//! - a **maximum over ranks** (the cluster step, the collectives' busy and
//!   exposed times, the critical rank of a round): the node keeps its own
//!   maximum, per iteration, and the maximum of the nodes' maxima is the
//!   maximum over ranks, exactly;
//! - a **per-rank scalar** (each rank's median step and median wait, its
//!   warmup rounds, its wrong count, its throttling lines): the node keeps
//!   one [`RankBrief`] per rank, a few numbers, so stragglers and the
//!   per-rank waits stay per rank;
//! - a **median over ranks of a per-rank figure** (the contention ratios
//!   per round, the last bucket's exposed tail): the node keeps the median
//!   over its ranks, and the cluster figure is the median of the nodes'
//!   medians (docs/metrics.md says so; on one node it is the median over
//!   ranks).
//!
//! [`nodes_of`] builds the same records from a flat list of rank records,
//! and the flat summary ([`crate::result::summarize`]) is the node summary
//! of those records: one formula per figure, whichever path gathered the
//! records. Rank 0 receives per node a record whose size grows with the
//! iterations and with one brief per rank, not with the ops or timelines.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::config::Mode;
use crate::metrics;
use crate::result::{HostLoad, ModeRecord, OpStat, PlanInfo, RankRecord, StreamKind};
use crate::stats;

/// Runs above this many ranks write their rank records to one shard per
/// node (`ranks/<host>.json`) and keep only the per-node aggregates in
/// run.json; smaller runs keep every rank record in run.json.
pub const SHARD_ABOVE_RANKS: u64 = 16;

/// Where a sharded run's rank records are (run.json's `rank_shards`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankShards {
    /// One file per node, in node order.
    pub files: Vec<ShardFile>,
}

/// One node's shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardFile {
    /// The node's host name.
    pub host: String,
    /// Path relative to the run directory (`ranks/<host>.json`).
    pub path: String,
    /// World ranks whose records it holds, in rank order.
    pub ranks: Vec<u64>,
}

/// What a shard file holds: a node's rank records, in rank order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// The node's host name.
    pub host: String,
    /// The node's rank records (timelines kept for a sample only, as in
    /// run.json).
    pub ranks: Vec<RankRecord>,
}

/// The shard file name of a host: `ranks/<host>.json`, with any character
/// other than ASCII letters, digits, `-`, `_` and `.` replaced by `_` (a
/// host name is not a path).
pub fn shard_path(host: &str) -> String {
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = if safe.is_empty() || safe.chars().all(|c| c == '.') {
        "host".to_string()
    } else {
        safe
    };
    format!("ranks/{safe}.json")
}

/// One rank of a node, reduced to the scalars the summary and the
/// report's per-rank tables need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankBrief {
    /// World rank.
    pub rank: u64,
    /// Rank on its host.
    pub local_rank: u64,
    /// Device label.
    pub device: String,
    /// Per mode the rank ran.
    pub modes: BTreeMap<Mode, ModeBrief>,
    /// Its warmup round times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warmup_round_s: Vec<f64>,
    /// Wrong results it counted.
    pub wrong: u64,
}

/// One mode of one rank, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeBrief {
    /// Its step times' median, p95, min, max and count (None: no timed
    /// step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<stats::Stats>,
    /// Its median waiting for peers, where it recorded any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_median_s: Option<f64>,
    /// Σ of its per-op medians on the compute stream, seconds.
    pub gemm_time_s: f64,
    /// Σ of its per-op medians on the comm stream, seconds.
    pub allreduce_time_s: f64,
    /// Wrong all-reduce elements in this mode.
    #[serde(default)]
    pub wrong: u64,
    /// Whether its record keeps this mode's timeline.
    #[serde(default)]
    pub timeline: bool,
}

impl ModeBrief {
    /// The median step (None: no timed step).
    pub fn step_median_s(&self) -> Option<f64> {
        self.steps.map(|s| s.median)
    }
}

/// The rank whose step was the longest of a round on a node (ties: the
/// highest rank), with the figures the exposed-time breakdown takes from it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CriticalRank {
    /// World rank.
    pub rank: u64,
    /// Its step in that round.
    pub step_s: f64,
    /// Its GEMMs' busy time in that round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gemm_busy_s: Option<f64>,
    /// Its exposed communication in that round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm_exposed_s: Option<f64>,
    /// Its exposed waiting for peers in that round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_exposed_s: Option<f64>,
}

impl CriticalRank {
    /// The later of two criticals: the longer step, ties the higher rank.
    pub(crate) fn max(a: CriticalRank, b: CriticalRank) -> CriticalRank {
        match a.step_s.total_cmp(&b.step_s).then(a.rank.cmp(&b.rank)) {
            std::cmp::Ordering::Less => b,
            _ => a,
        }
    }
}

/// One mode on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeMode {
    /// Ranks of the node that ran the mode.
    pub ranks: u64,
    /// Per iteration, the longest step over those ranks (as many iterations
    /// as the rank with the fewest).
    pub step_time_s: Vec<f64>,
    /// Per iteration, the critical rank among the ranks that reached it (as
    /// many iterations as the rank with the most).
    pub critical: Vec<CriticalRank>,
    /// Per iteration, the longest all-reduce busy time over the node's
    /// ranks; None unless every rank of the node ran the mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allreduce_busy_max_s: Option<Vec<f64>>,
    /// Per collective key, per iteration, the longest busy time over the
    /// node's ranks (keys every rank of the node recorded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub collective_busy_max_s: BTreeMap<String, Vec<f64>>,
    /// Per collective key, per iteration, the longest exposed time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub collective_exposed_max_s: BTreeMap<String, Vec<f64>>,
    /// Whether every rank of the node recorded its waiting for peers in
    /// this mode (its clock was aligned).
    #[serde(default)]
    pub waits_recorded: bool,
    /// Ranks of the node that recorded a timeline of this mode.
    #[serde(default)]
    pub timelines: u64,
}

/// Contention of one stream on one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeContention {
    /// Per iteration, the median over the node's ranks of overlapped busy
    /// time / busy time alone (None: no rank ran the stream alone that
    /// round); None when a rank lacks either mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_iteration: Option<Vec<Option<f64>>>,
    /// The median over ranks of the same ratio of per-op medians (records
    /// without busy times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of_medians: Option<f64>,
}

/// One node's ranks, aggregated on the node (see the module note).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Host name.
    pub host: String,
    /// One brief per rank, in rank order.
    pub ranks: Vec<RankBrief>,
    /// Per mode any rank ran.
    pub modes: BTreeMap<Mode, NodeMode>,
    /// GEMM contention (overlapped vs compute mode).
    #[serde(default)]
    pub contention_gemm: NodeContention,
    /// All-reduce contention (overlapped vs comm mode).
    #[serde(default)]
    pub contention_allreduce: NodeContention,
    /// The median over the node's ranks of the last bucket's exposed tail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_bucket_tail_s: Option<f64>,
    /// Telemetry lines that show throttling, with their rank.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clocks_throttled: Vec<(u64, String)>,
    /// What else shared the host at the start (its first rank's reading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_load: Option<HostLoad>,
    /// Comm and overlapped modes: per bucket, the median over the node's
    /// ranks of each rank's median all-reduce time of that bucket (a
    /// bucket all-reduced in pieces counts as their sum).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bucket_median_s: BTreeMap<Mode, Vec<Option<f64>>>,
    /// Device models and how many of the node's ranks have each, in order
    /// of first appearance ("" for unknown).
    #[serde(default)]
    pub device_names: Vec<(String, u64)>,
    /// Whether any rank ran on a simulated GPU.
    #[serde(default)]
    pub simulated: bool,
    /// Telemetry samples its ranks' records hold (in the shard).
    #[serde(default)]
    pub telemetry_samples: u64,
}

/// Per iteration the maximum of several series (as many iterations as the
/// shortest); None for no series.
pub(crate) fn max_per_iteration<'a>(
    series: impl IntoIterator<Item = &'a [f64]>,
) -> Option<Vec<f64>> {
    let mut out: Option<Vec<f64>> = None;
    for v in series {
        out = Some(match out {
            None => v.to_vec(),
            Some(o) => o.iter().zip(v).map(|(a, b)| a.max(*b)).collect(),
        });
    }
    out
}

/// Per iteration, the maximum over several series of `key`, where every
/// record has the key (None otherwise).
fn max_of_key(
    records: &[&ModeRecord],
    pick: impl Fn(&ModeRecord) -> Option<&Vec<f64>>,
) -> Option<Vec<f64>> {
    let v: Vec<&Vec<f64>> = records.iter().map(|m| pick(m)).collect::<Option<_>>()?;
    max_per_iteration(v.iter().map(|x| x.as_slice()))
}

/// A rank's busy time of a stream per iteration.
fn busy(m: &ModeRecord, stream: StreamKind) -> &[f64] {
    match stream {
        StreamKind::Compute => &m.gemm_busy_s,
        StreamKind::Comm => &m.allreduce_busy_s,
    }
}

fn contention_of(ranks: &[&RankRecord], stream: StreamKind, alone: Mode) -> NodeContention {
    let pairs: Vec<(&ModeRecord, &ModeRecord)> = ranks
        .iter()
        .filter_map(|r| Some((r.modes.get(&Mode::Overlapped)?, r.modes.get(&alone)?)))
        .collect();
    let of_medians = stats::median(
        &pairs
            .iter()
            .filter_map(|(o, a)| {
                let (o, a) = (o.stream_time_s(stream), a.stream_time_s(stream));
                (a > 0.0).then(|| metrics::contention(o, a))
            })
            .collect::<Vec<f64>>(),
    );
    let per_iteration = (!pairs.is_empty() && pairs.len() == ranks.len()).then(|| {
        let iters = pairs
            .iter()
            .map(|(o, a)| busy(o, stream).len().min(busy(a, stream).len()))
            .min()
            .unwrap_or(0);
        (0..iters)
            .map(|i| {
                let r: Vec<f64> = pairs
                    .iter()
                    .filter(|(_, a)| busy(a, stream)[i] > 0.0)
                    .map(|(o, a)| metrics::contention(busy(o, stream)[i], busy(a, stream)[i]))
                    .collect();
                stats::median(&r)
            })
            .collect()
    });
    NodeContention {
        per_iteration,
        of_medians,
    }
}

/// The last bucket's exposed tail of one rank ([`metrics::exposed_tail_s`]),
/// from its per-op medians in comm and compute modes.
fn rank_tail(r: &RankRecord, plan: &PlanInfo) -> Option<f64> {
    let last = plan.buckets.last()?;
    let a_last = r
        .modes
        .get(&Mode::Comm)?
        .ops
        .iter()
        .find(|o| o.bucket == Some(last.index))?
        .median_s;
    let gemms: Vec<&OpStat> = r
        .modes
        .get(&Mode::Compute)?
        .ops
        .iter()
        .filter(|o| o.stream == StreamKind::Compute)
        .collect();
    let ready = gemms.iter().position(|o| o.name == last.ready_after)?;
    let after: f64 = gemms[ready + 1..].iter().map(|o| o.median_s).sum();
    Some(metrics::exposed_tail_s(a_last, after))
}

/// A rank's telemetry lines that show throttling.
fn throttled(r: &RankRecord) -> Vec<String> {
    let mut out = Vec::new();
    let who = format!("rank {} ({}, {})", r.rank, r.host, r.device);
    for t in &r.telemetry {
        if !t.throttle_reasons.is_empty() {
            out.push(format!(
                "{who}, {} at {}: {}",
                t.mode,
                t.at,
                t.throttle_reasons.join(", ")
            ));
        }
    }
    for m in Mode::ALL {
        let clock = |at: &str| {
            r.telemetry
                .iter()
                .find(|t| t.mode == m && t.at == at)
                .and_then(|t| t.sm_clock_mhz)
        };
        if let (Some(a), Some(b)) = (clock("start"), clock("end")) {
            if f64::from(b) <= 0.9 * f64::from(a) {
                out.push(format!(
                    "{who}, {m}: SM clock {a} MHz at its start, {b} MHz at its end"
                ));
            }
        }
    }
    out
}

impl RankBrief {
    /// A rank's brief.
    pub fn of(r: &RankRecord) -> RankBrief {
        RankBrief {
            rank: r.rank,
            local_rank: r.local_rank,
            device: r.device.clone(),
            modes: r
                .modes
                .iter()
                .map(|(m, x)| {
                    (
                        *m,
                        ModeBrief {
                            steps: stats::Stats::of(&x.step_time_s),
                            wait_median_s: stats::median(&x.wait_for_peers_s),
                            gemm_time_s: x.stream_time_s(StreamKind::Compute),
                            allreduce_time_s: x.stream_time_s(StreamKind::Comm),
                            wrong: x.wrong,
                            timeline: !x.timeline.is_empty(),
                        },
                    )
                })
                .collect(),
            warmup_round_s: r.warmup_round_s.clone(),
            wrong: r.wrong,
        }
    }

    /// Its median step in `mode` (outer None: it did not run the mode).
    pub fn step_median_s(&self, mode: Mode) -> Option<Option<f64>> {
        self.modes.get(&mode).map(ModeBrief::step_median_s)
    }
}

/// Per bucket, one rank's median all-reduce time in a mode (pieces summed).
fn rank_buckets(m: &ModeRecord, buckets: usize) -> Vec<Option<f64>> {
    let mut out: Vec<Option<f64>> = vec![None; buckets];
    for op in m.ops.iter().filter(|o| o.stream == StreamKind::Comm) {
        if let Some(slot) = op.bucket.and_then(|b| out.get_mut(b)) {
            *slot = Some(slot.unwrap_or(0.0) + op.median_s);
        }
    }
    out
}

/// Per bucket, the median over ranks of their times in a mode; None
/// when no rank ran the mode.
fn bucket_medians(ranks: &[&RankRecord], mode: Mode, buckets: usize) -> Option<Vec<Option<f64>>> {
    let per_rank: Vec<Vec<Option<f64>>> = ranks
        .iter()
        .filter_map(|r| Some(rank_buckets(r.modes.get(&mode)?, buckets)))
        .collect();
    (!per_rank.is_empty()).then(|| {
        (0..buckets)
            .map(|b| stats::median(&per_rank.iter().filter_map(|v| v[b]).collect::<Vec<f64>>()))
            .collect()
    })
}

impl NodeMode {
    fn of(node_ranks: usize, records: &[(u64, &ModeRecord)]) -> NodeMode {
        let steps = max_per_iteration(records.iter().map(|(_, m)| m.step_time_s.as_slice()))
            .unwrap_or_default();
        let longest = records
            .iter()
            .map(|(_, m)| m.step_time_s.len())
            .max()
            .unwrap_or(0);
        let critical = (0..longest)
            .filter_map(|i| {
                records
                    .iter()
                    .filter(|(_, m)| m.step_time_s.len() > i)
                    .map(|(rank, m)| CriticalRank {
                        rank: *rank,
                        step_s: m.step_time_s[i],
                        gemm_busy_s: m.gemm_busy_s.get(i).copied(),
                        comm_exposed_s: m.comm_exposed_s.get(i).copied(),
                        wait_exposed_s: m.wait_exposed_s.get(i).copied(),
                    })
                    .reduce(CriticalRank::max)
            })
            .collect();
        let all: Vec<&ModeRecord> = records.iter().map(|(_, m)| *m).collect();
        let every = records.len() == node_ranks;
        let keys = |pick: &dyn Fn(&ModeRecord) -> &BTreeMap<String, Vec<f64>>| {
            let mut out = BTreeMap::new();
            if !every {
                return out;
            }
            if let Some(first) = all.first() {
                for key in pick(first).keys() {
                    if let Some(v) = max_of_key(&all, |m| pick(m).get(key)) {
                        out.insert(key.clone(), v);
                    }
                }
            }
            out
        };
        NodeMode {
            ranks: records.len() as u64,
            step_time_s: steps,
            critical,
            allreduce_busy_max_s: every
                .then(|| max_of_key(&all, |m| Some(&m.allreduce_busy_s)))
                .flatten(),
            collective_busy_max_s: keys(&|m| &m.collective_busy_s),
            collective_exposed_max_s: keys(&|m| &m.collective_exposed_s),
            waits_recorded: every && all.iter().all(|m| !m.wait_for_peers_s.is_empty()),
            timelines: all.iter().filter(|m| !m.timeline.is_empty()).count() as u64,
        }
    }
}

impl NodeRecord {
    /// The aggregate of one node's rank records (in rank order).
    pub fn of(host: &str, ranks: &[&RankRecord], plan: &PlanInfo) -> NodeRecord {
        let mut modes = BTreeMap::new();
        for m in Mode::ALL {
            let recs: Vec<(u64, &ModeRecord)> = ranks
                .iter()
                .filter_map(|r| Some((r.rank, r.modes.get(&m)?)))
                .collect();
            if !recs.is_empty() {
                modes.insert(m, NodeMode::of(ranks.len(), &recs));
            }
        }
        NodeRecord {
            host: host.to_string(),
            ranks: ranks.iter().map(|r| RankBrief::of(r)).collect(),
            modes,
            contention_gemm: contention_of(ranks, StreamKind::Compute, Mode::Compute),
            contention_allreduce: contention_of(ranks, StreamKind::Comm, Mode::Comm),
            last_bucket_tail_s: stats::median(
                &ranks
                    .iter()
                    .filter_map(|r| rank_tail(r, plan))
                    .collect::<Vec<f64>>(),
            ),
            clocks_throttled: ranks
                .iter()
                .flat_map(|r| throttled(r).into_iter().map(|l| (r.rank, l)))
                .collect(),
            host_load: ranks.iter().find_map(|r| r.host_load.clone()),
            device_names: {
                let mut v: Vec<(String, u64)> = Vec::new();
                for r in ranks {
                    match v.iter_mut().find(|(n, _)| *n == r.device_name) {
                        Some((_, c)) => *c += 1,
                        None => v.push((r.device_name.clone(), 1)),
                    }
                }
                v
            },
            simulated: ranks.iter().any(|r| {
                r.device_info.get("simulated").is_some_and(|v| v == "true")
                    || r.device_name.ends_with(crate::simgpu::NAME_MARK)
            }),
            telemetry_samples: ranks.iter().map(|r| r.telemetry.len() as u64).sum(),
            bucket_median_s: [Mode::Comm, Mode::Overlapped]
                .into_iter()
                .filter_map(|m| Some((m, bucket_medians(ranks, m, plan.buckets.len())?)))
                .collect(),
        }
    }

    /// Whether every rank of the node ran `mode`.
    pub fn all_ran(&self, mode: Mode) -> bool {
        self.modes
            .get(&mode)
            .is_some_and(|m| m.ranks == self.ranks.len() as u64)
    }
}

/// The node records of a flat list of rank records: one per host, in order
/// of each host's first rank, each over its ranks in the list's order.
pub fn nodes_of(ranks: &[RankRecord], plan: &PlanInfo) -> Vec<NodeRecord> {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut hosts: Vec<(&str, Vec<&RankRecord>)> = Vec::new();
    for r in ranks {
        let i = *index.entry(r.host.as_str()).or_insert_with(|| {
            hosts.push((&r.host, Vec::new()));
            hosts.len() - 1
        });
        hosts[i].1.push(r);
    }
    hosts
        .iter()
        .map(|(h, rs)| NodeRecord::of(h, rs, plan))
        .collect()
}

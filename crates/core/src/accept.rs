//! `mfubench accept`: the staged acceptance suite, as data and math.
//!
//! What lives here (no I/O, no MPI):
//! - [`AcceptSettings`]: the `[accept]` table of the config (thresholds,
//!   sizes, which stages), with defaults and validation;
//! - the pair schedules of the link stage: [`tournament`] (every pair of
//!   nodes exactly once, all pairs of a round in parallel) and, above
//!   `accept.max_pair_nodes`, [`sampled`] (ring plus seeded random
//!   matchings, covering every node);
//! - the `accept.json` schema ([`AcceptRecord`], schema-versioned) with one
//!   result type per stage;
//! - the rules ([`evaluate`]) that turn stage results into findings
//!   (PASS / FAIL / INCONCLUSIVE / SKIPPED), each naming the device, node
//!   or link it is about;
//! - the nccl-tests bus-bandwidth factors ([`busbw_factor`]).

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::config::ConfigError;
pub use crate::metrics::{busbw_factor, Collective};
use crate::stats;

/// Layout version of `accept.json`; bumped on any change an older reader
/// would misread.
pub const ACCEPT_SCHEMA_VERSION: u32 = 1;

/// A stage of the suite, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// GEMMs alone on every device at once: per-device TFLOP/s.
    Device,
    /// All-reduce inside each node: per-node bus bandwidth.
    Node,
    /// Point-to-point between every pair of nodes: the link matrix.
    Link,
    /// Whole-cluster all-reduce over a size range (nccl-tests columns).
    Sweep,
    /// The four-mode training step (run.json beside accept.json).
    Step,
}

impl Stage {
    /// Every stage, in run order.
    pub const ALL: [Stage; 5] = [
        Stage::Device,
        Stage::Node,
        Stage::Link,
        Stage::Sweep,
        Stage::Step,
    ];

    /// The stage's name as written in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Device => "device",
            Stage::Node => "node",
            Stage::Link => "link",
            Stage::Sweep => "sweep",
            Stage::Step => "step",
        }
    }

    /// Parses a stage name.
    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|x| x.name() == s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a comma-separated stage list (`device,link`) into stages in run
/// order, each once; the error names the unknown stage and the known ones.
pub fn parse_stages(list: &str) -> Result<Vec<Stage>, String> {
    let mut out = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let s = Stage::parse(word).ok_or_else(|| {
            format!(
                "unknown stage \"{word}\"; stages are {}",
                Stage::ALL.map(Stage::name).join(", ")
            )
        })?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() {
        return Err("no stage given; stages are device, node, link, sweep, step".into());
    }
    out.sort();
    Ok(out)
}

/// `[accept]` of the config. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcceptSettings {
    /// Stages to run, in run order (default all five).
    pub stages: Vec<Stage>,
    /// A device whose GEMM rate is below this fraction of the median
    /// device's is named (default 0.92).
    pub min_device_fraction: f64,
    /// A node whose intra-node all-reduce bus bandwidth (bandwidth-bound
    /// size) is below this fraction of the median node's is named
    /// (default 0.9).
    pub min_node_fraction: f64,
    /// A link whose bandwidth is below this fraction of the reference (the
    /// median over nodes of each node's fastest link) is named (default 0.8).
    pub min_link_fraction: f64,
    /// Above this many nodes the link stage runs the sampled schedule
    /// instead of every pair (default 64).
    pub max_pair_nodes: u64,
    /// Random matchings the sampled schedule adds to its ring (default 8).
    pub sampled_rounds: u64,
    /// Timed repetitions of every measurement of the device, node, link
    /// and sweep stages, after one untimed one (default 10).
    pub iterations: u32,
    /// Node stage: the latency-bound message size in bytes (default 8 KiB).
    pub node_small_bytes: u64,
    /// Node stage: the bandwidth-bound message size in bytes (default 64 MiB).
    pub node_large_bytes: u64,
    /// Link stage: bytes each side of a pair sends per exchange (default 64 MiB).
    pub link_bytes: u64,
    /// Sweep stage: smallest all-reduce in bytes (default 8).
    pub sweep_begin: u64,
    /// Sweep stage: largest all-reduce in bytes (default 128 MiB).
    pub sweep_end: u64,
    /// Sweep stage: factor between sizes (default 2).
    pub sweep_factor: u64,
}

impl Default for AcceptSettings {
    fn default() -> Self {
        AcceptSettings {
            stages: Stage::ALL.to_vec(),
            min_device_fraction: 0.92,
            min_node_fraction: 0.9,
            min_link_fraction: 0.8,
            max_pair_nodes: 64,
            sampled_rounds: 8,
            iterations: 10,
            node_small_bytes: 8 << 10,
            node_large_bytes: 64 << 20,
            link_bytes: 64 << 20,
            sweep_begin: 8,
            sweep_end: 128 << 20,
            sweep_factor: 2,
        }
    }
}

/// Largest message any accept stage sends, bytes (16 GiB).
pub const MAX_ACCEPT_BYTES: u64 = 16 << 30;

impl AcceptSettings {
    /// Whether every setting is the default (run.json then omits them).
    pub fn is_default(&self) -> bool {
        *self == AcceptSettings::default()
    }

    /// Checks every value; the error names the field (`accept.…`) and the rule.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |field: &str, message: String| ConfigError::Invalid {
            file: file.to_string(),
            field: format!("accept.{field}"),
            message,
        };
        for (f, x) in [
            ("min_device_fraction", self.min_device_fraction),
            ("min_node_fraction", self.min_node_fraction),
            ("min_link_fraction", self.min_link_fraction),
        ] {
            if !(x.is_finite() && (0.0..=1.0).contains(&x)) {
                return Err(err(
                    f,
                    format!("accept.{f} = {x} must be a fraction between 0 and 1"),
                ));
            }
        }
        if self.stages.is_empty() {
            return Err(err(
                "stages",
                "accept.stages is empty; list one or more of \"device\", \"node\", \"link\", \"sweep\", \"step\"".into(),
            ));
        }
        if self.max_pair_nodes < 2 {
            return Err(err(
                "max_pair_nodes",
                format!(
                    "accept.max_pair_nodes = {} must be at least 2",
                    self.max_pair_nodes
                ),
            ));
        }
        if !(1..=1000).contains(&self.sampled_rounds) {
            return Err(err(
                "sampled_rounds",
                format!(
                    "accept.sampled_rounds = {} must be between 1 and 1000",
                    self.sampled_rounds
                ),
            ));
        }
        if !(1..=100_000).contains(&self.iterations) {
            return Err(err(
                "iterations",
                format!(
                    "accept.iterations = {} must be between 1 and 100000",
                    self.iterations
                ),
            ));
        }
        for (f, x) in [
            ("node_small_bytes", self.node_small_bytes),
            ("node_large_bytes", self.node_large_bytes),
            ("link_bytes", self.link_bytes),
            ("sweep_begin", self.sweep_begin),
            ("sweep_end", self.sweep_end),
        ] {
            if !(4..=MAX_ACCEPT_BYTES).contains(&x) {
                return Err(err(
                    f,
                    format!("accept.{f} = {x} must be between 4 bytes and 16 GiB"),
                ));
            }
        }
        if self.sweep_end < self.sweep_begin {
            return Err(err(
                "sweep_end",
                format!(
                    "accept.sweep_end = {} is below accept.sweep_begin = {}",
                    self.sweep_end, self.sweep_begin
                ),
            ));
        }
        if self.sweep_factor < 2 {
            return Err(err(
                "sweep_factor",
                format!(
                    "accept.sweep_factor = {} must be at least 2",
                    self.sweep_factor
                ),
            ));
        }
        Ok(())
    }

    /// The sweep's message sizes in bytes: begin, begin·f, … up to end,
    /// each rounded down to a whole number of 4-byte (f32) elements.
    pub fn sweep_sizes(&self) -> Vec<u64> {
        let mut out = Vec::new();
        let mut s = self.sweep_begin;
        while s <= self.sweep_end {
            let bytes = (s / 4).max(1) * 4;
            if out.last() != Some(&bytes) {
                out.push(bytes);
            }
            match s.checked_mul(self.sweep_factor.max(2)) {
                Some(n) => s = n,
                None => break,
            }
        }
        out
    }
}

/// Settings given on the command line (`mfubench accept` and the worker's
/// `--accept` mode); `Some` replaces the config's `[accept]` value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcceptOverrides {
    /// `--stages device,link`.
    pub stages: Option<Vec<Stage>>,
    /// `--min-device-fraction`.
    pub min_device_fraction: Option<f64>,
    /// `--min-node-fraction`.
    pub min_node_fraction: Option<f64>,
    /// `--min-link-fraction`.
    pub min_link_fraction: Option<f64>,
    /// `--sweep-begin` / `-b`, bytes.
    pub sweep_begin: Option<u64>,
    /// `--sweep-end` / `-e`, bytes.
    pub sweep_end: Option<u64>,
    /// `--sweep-factor` / `-f`.
    pub sweep_factor: Option<u64>,
}

impl AcceptOverrides {
    /// `base` with these overrides applied, validated (errors name the
    /// `accept.` field).
    pub fn apply(&self, base: &AcceptSettings, file: &str) -> Result<AcceptSettings, ConfigError> {
        let mut s = base.clone();
        if let Some(v) = &self.stages {
            s.stages = v.clone();
        }
        if let Some(v) = self.min_device_fraction {
            s.min_device_fraction = v;
        }
        if let Some(v) = self.min_node_fraction {
            s.min_node_fraction = v;
        }
        if let Some(v) = self.min_link_fraction {
            s.min_link_fraction = v;
        }
        if let Some(v) = self.sweep_begin {
            s.sweep_begin = v;
        }
        if let Some(v) = self.sweep_end {
            s.sweep_end = v;
        }
        if let Some(v) = self.sweep_factor {
            s.sweep_factor = v;
        }
        s.validate(file)?;
        Ok(s)
    }

    /// The same overrides as worker arguments (what the launcher forwards).
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(v) = &self.stages {
            a.push("--stages".into());
            a.push(v.iter().map(|s| s.name()).collect::<Vec<_>>().join(","));
        }
        let mut f = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(flag.to_string());
                a.push(v);
            }
        };
        f(
            "--min-device-fraction",
            self.min_device_fraction.map(|x| x.to_string()),
        );
        f(
            "--min-node-fraction",
            self.min_node_fraction.map(|x| x.to_string()),
        );
        f(
            "--min-link-fraction",
            self.min_link_fraction.map(|x| x.to_string()),
        );
        f("--sweep-begin", self.sweep_begin.map(|x| x.to_string()));
        f("--sweep-end", self.sweep_end.map(|x| x.to_string()));
        f("--sweep-factor", self.sweep_factor.map(|x| x.to_string()));
        a
    }
}

/// Parses a byte size: a number with an optional K, M or G suffix (powers
/// of 1024, as nccl-tests' `-b 8 -e 1G`), e.g. `8`, `64K`, `1G`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            format!(
                "\"{s}\" is not a size: give bytes, optionally with K, M or G (e.g. 8, 64K, 1G)"
            )
        })
}

/// A pair of nodes (indices into the node list), `a < b`.
pub type Pair = (usize, usize);

/// The round-robin tournament of `n` nodes (circle method): every pair
/// exactly once, each round a set of disjoint pairs that run in parallel.
/// n − 1 rounds for even n; for odd n a phantom node makes it n rounds, in
/// each of which one node sits out (the bye).
pub fn tournament(n: usize) -> Vec<Vec<Pair>> {
    if n < 2 {
        return Vec::new();
    }
    let m = if n % 2 == 0 { n } else { n + 1 };
    // Slot 0 is fixed; the others rotate by one each round.
    let mut rounds = Vec::with_capacity(m - 1);
    for r in 0..m - 1 {
        let at = |slot: usize| -> usize {
            if slot == 0 {
                0
            } else {
                1 + (slot - 1 + r) % (m - 1)
            }
        };
        let mut round = Vec::with_capacity(m / 2);
        for i in 0..m / 2 {
            let (x, y) = (at(i), at(m - 1 - i));
            if x < n && y < n {
                round.push((x.min(y), x.max(y)));
            }
        }
        round.sort_unstable();
        rounds.push(round);
    }
    rounds
}

/// The sampled schedule for more nodes than `accept.max_pair_nodes`: the
/// ring (node i with i + 1 mod n; two rounds for even n, three for odd),
/// then `extra` random perfect matchings (a seeded shuffle of the nodes,
/// paired in order; the same on every rank). Every node is in at least two
/// ring pairs, so a node whose links are all slow is still recognisable.
pub fn sampled(n: usize, extra: usize, seed: u64) -> Vec<Vec<Pair>> {
    if n < 2 {
        return Vec::new();
    }
    let ring: Vec<Pair> = if n == 2 {
        vec![(0, 1)]
    } else {
        (0..n)
            .map(|i| (i.min((i + 1) % n), i.max((i + 1) % n)))
            .collect()
    };
    let mut rounds: Vec<Vec<Pair>> = Vec::new();
    // Ring edges i = 0, 2, 4, … then 1, 3, 5, …; with n odd the last edge
    // (n−1, 0) shares node 0 with edge 0 and goes to a third round.
    let even: Vec<Pair> = ring.iter().step_by(2).copied().collect();
    let odd: Vec<Pair> = ring.iter().skip(1).step_by(2).copied().collect();
    if n % 2 == 1 && n > 2 {
        let last = *even.last().expect("n > 2");
        rounds.push(even[..even.len() - 1].to_vec());
        rounds.push(odd);
        rounds.push(vec![last]);
    } else {
        rounds.push(even);
        if !odd.is_empty() {
            rounds.push(odd);
        }
    }
    let mut state = seed | 1;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for _ in 0..extra {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let mut round: Vec<Pair> = order
            .chunks_exact(2)
            .map(|c| (c[0].min(c[1]), c[0].max(c[1])))
            .collect();
        round.sort_unstable();
        rounds.push(round);
    }
    for r in &mut rounds {
        r.sort_unstable();
    }
    rounds
}

/// Seed of the sampled schedule (fixed, so reruns compare the same pairs).
pub const SAMPLED_SEED: u64 = 0x6d66_7562_656e_6368;

/// The link stage's schedule for `n` nodes and the name it is recorded under.
pub fn link_schedule(n: usize, settings: &AcceptSettings) -> (&'static str, Vec<Vec<Pair>>) {
    if n as u64 > settings.max_pair_nodes {
        (
            "sampled",
            sampled(n, settings.sampled_rounds as usize, SAMPLED_SEED),
        )
    } else {
        ("tournament", tournament(n))
    }
}

/// The outcome of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Measured and within the threshold.
    Pass,
    /// Measured, and the measurement cannot tell (too few devices, nodes
    /// or links to compare).
    Inconclusive,
    /// The stage did not run, or there was nothing to measure.
    Skipped,
    /// Measured and outside the threshold.
    Fail,
}

impl Status {
    /// The upper-case word printed in verdict lines.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Inconclusive => "INCONCLUSIVE",
            Status::Skipped => "SKIPPED",
        }
    }
}

/// What a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Component {
    /// A device: one rank.
    Device {
        /// MPI rank.
        rank: u64,
        /// Its host.
        host: String,
        /// Rank on the host.
        local_rank: u64,
    },
    /// A node (host).
    Node {
        /// Host name.
        host: String,
    },
    /// A link between two nodes.
    Link {
        /// One host.
        a: String,
        /// The other host.
        b: String,
    },
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Device {
                rank,
                host,
                local_rank,
            } => write!(f, "device rank {rank} ({host}, local rank {local_rank})"),
            Component::Node { host } => write!(f, "node {host}"),
            Component::Link { a, b } => write!(f, "link {a} <-> {b}"),
        }
    }
}

/// One verdict line: a rule's outcome, for the whole stage or for one
/// component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stage the rule belongs to.
    pub stage: Stage,
    /// Rule name (`device_rate`, `node_busbw`, `link_bandwidth`,
    /// `node_links`, `sweep_wrong`, `stage_complete`).
    pub rule: String,
    /// Outcome.
    pub status: Status,
    /// The device, node or link named; None for a stage-wide line.
    #[serde(default)]
    pub component: Option<Component>,
    /// The numbers behind the outcome, or why it could not be decided.
    pub message: String,
}

/// One CPU telemetry reading of a rank (the CPU backend's "telemetry with
/// reasons"): clock and temperature where the host exposes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuTelemetry {
    /// Mean of the `cpu MHz` lines of /proc/cpuinfo.
    #[serde(default)]
    pub mhz: Option<f64>,
    /// Highest /sys/class/thermal zone temperature, °C.
    #[serde(default)]
    pub temp_c: Option<f64>,
    /// 1-minute load average of the host.
    #[serde(default)]
    pub load1: Option<f64>,
    /// CPU time the rank got during the stage / (wall time × its GEMM
    /// threads): 1 = it ran whenever it wanted to; well below 1 = other
    /// work took its cores (contention, a CPU hog, throttled cgroup).
    #[serde(default)]
    pub cpu_share: Option<f64>,
}

impl CpuTelemetry {
    /// The reason text shown beside a flagged device.
    pub fn reason(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = self.cpu_share {
            parts.push(format!("got {:.0} % of its threads' CPU time", c * 100.0));
        }
        if let Some(m) = self.mhz {
            parts.push(format!("cpu clock {m:.0} MHz"));
        }
        if let Some(t) = self.temp_c {
            parts.push(format!("{t:.0} °C"));
        }
        if let Some(l) = self.load1 {
            parts.push(format!("load {l:.2}"));
        }
        if parts.is_empty() {
            "no telemetry on this host".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Device stage: one entry per rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceResult {
    /// MPI rank.
    pub rank: u64,
    /// Host name.
    pub host: String,
    /// Rank on its host.
    pub local_rank: u64,
    /// Device (`cpu`, `GPU 3`).
    pub device: String,
    /// Device model name.
    pub device_name: String,
    /// Median over iterations of the compute-only step, seconds.
    pub step_s: f64,
    /// Every timed compute-only step, seconds.
    pub step_time_s: Vec<f64>,
    /// FLOPs per step / median step, TFLOP/s.
    pub tflops: f64,
    /// Datasheet peak of the device, when known.
    #[serde(default)]
    pub spec_peak_tflops: Option<f64>,
    /// Telemetry sampled right after the stage.
    #[serde(default)]
    pub telemetry: CpuTelemetry,
}

/// Device stage results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStage {
    /// Model FLOPs of one compute-only step (the plan's GEMMs).
    pub flops_per_step: f64,
    /// Timed steps per device.
    pub iterations: u32,
    /// One entry per rank, by rank.
    pub devices: Vec<DeviceResult>,
}

/// Node stage: one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeResult {
    /// Host name.
    pub host: String,
    /// Ranks on the node.
    pub ranks: u64,
    /// Median all-reduce time per size (slowest rank of the node per
    /// iteration), seconds; parallel to [`NodeStage::sizes_bytes`].
    pub time_s: Vec<f64>,
    /// Fastest iteration per size (slowest rank of the node), seconds.
    #[serde(default)]
    pub best_time_s: Vec<f64>,
    /// algbw per size from the fastest iteration, GB/s: the node's
    /// capacity, as for links ([`PairResult::gbps`]); intermittent slowness
    /// shows in `time_s`.
    pub algbw_gbps: Vec<f64>,
    /// busbw per size (2(n−1)/n · algbw), GB/s.
    pub busbw_gbps: Vec<f64>,
}

/// Node stage results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStage {
    /// Message sizes: latency-bound, then bandwidth-bound.
    pub sizes_bytes: Vec<u64>,
    /// Timed all-reduces per size.
    pub iterations: u32,
    /// One entry per node, in node order.
    pub nodes: Vec<NodeResult>,
}

/// Link stage: one measured pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairResult {
    /// Index of one node in [`LinkStage::hosts`].
    pub a: usize,
    /// Index of the other node.
    pub b: usize,
    /// Round the pair ran in (0-based).
    pub round: usize,
    /// Median exchange time (each side sends `bytes` and receives `bytes`
    /// at once; the slower side's median), seconds.
    pub time_s: f64,
    /// Fastest exchange (the slower side's fastest), seconds.
    #[serde(default)]
    pub best_time_s: f64,
    /// bytes / best_time_s in each direction, GB/s: the link's capacity. A
    /// link cannot run faster than it is, while CPU contention on a shared
    /// host only slows exchanges down, so the fastest exchange is the
    /// robust estimate (the median is kept beside it).
    pub gbps: f64,
}

/// Link stage results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkStage {
    /// Nodes, in node order (the host of each node's first rank).
    pub hosts: Vec<String>,
    /// `tournament` or `sampled`.
    pub schedule: String,
    /// Rounds of the schedule (pairs of node indices).
    pub rounds: Vec<Vec<Pair>>,
    /// Bytes each side sends per exchange.
    pub bytes: u64,
    /// Timed exchanges per pair.
    pub iterations: u32,
    /// Every measured pair.
    pub pairs: Vec<PairResult>,
}

impl LinkStage {
    /// Every measured link once: a pair the schedule ran in several rounds
    /// (the sampled schedule can repeat one) keeps its fastest result.
    pub fn links(&self) -> Vec<PairResult> {
        let mut best: std::collections::BTreeMap<(usize, usize), PairResult> =
            std::collections::BTreeMap::new();
        for p in &self.pairs {
            let e = best.entry((p.a, p.b)).or_insert_with(|| p.clone());
            if p.gbps > e.gbps {
                *e = p.clone();
            }
        }
        best.into_values().collect()
    }

    /// The bandwidth matrix, GB/s (symmetric, None on the diagonal and for
    /// pairs the schedule did not measure).
    pub fn matrix(&self) -> Vec<Vec<Option<f64>>> {
        let n = self.hosts.len();
        let mut m = vec![vec![None; n]; n];
        for p in &self.links() {
            if p.a < n && p.b < n {
                m[p.a][p.b] = Some(p.gbps);
                m[p.b][p.a] = Some(p.gbps);
            }
        }
        m
    }
}

/// Sweep stage: one size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// Message size, bytes.
    pub size_bytes: u64,
    /// Elements.
    pub count: u64,
    /// Median over iterations of the slowest rank's time, microseconds.
    pub time_us: f64,
    /// size / time, GB/s.
    pub algbw_gbps: f64,
    /// algbw · 2(n−1)/n, GB/s.
    pub busbw_gbps: f64,
    /// Elements that differ from the known sum, over all ranks (untimed
    /// checked all-reduce).
    pub wrong: u64,
}

/// Sweep stage results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepStage {
    /// Collective (`all_reduce`).
    pub collective: Collective,
    /// Element type (`float`).
    #[serde(rename = "type")]
    pub dtype: String,
    /// Reduction (`sum`).
    pub redop: String,
    /// Ranks taking part.
    pub ranks: u64,
    /// Timed repetitions per size.
    pub iterations: u32,
    /// One row per size.
    pub rows: Vec<SweepRow>,
    /// Mean busbw over the rows (nccl-tests' "Avg bus bandwidth"), GB/s.
    pub avg_busbw_gbps: f64,
}

/// Step stage: where the training-step run is and its headline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStage {
    /// run.json of the step, relative to the run directory.
    pub run_json: String,
    /// Overlapped-mode MFU, when measured.
    #[serde(default)]
    pub mfu_overlapped: Option<f64>,
    /// Compute-mode MFU, when measured.
    #[serde(default)]
    pub mfu_compute: Option<f64>,
}

/// `accept.json`: the acceptance suite's results, written after every stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptRecord {
    /// Layout version ([`ACCEPT_SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// mfubench version that wrote it.
    pub tool_version: String,
    /// Run id (directory name).
    pub run_id: String,
    /// When the suite started, RFC 3339 UTC.
    pub started_at: String,
    /// When this file was written, RFC 3339 UTC.
    pub written_at: String,
    /// False until every requested stage has run: a file left by a crash
    /// or a kill holds the finished stages and is INCOMPLETE.
    pub complete: bool,
    /// Backend (`cpu`, `cuda`).
    pub backend: String,
    /// World size.
    pub world_size: u64,
    /// Nodes in node order.
    pub hosts: Vec<String>,
    /// The settings in force (config `[accept]` with flags applied).
    pub settings: AcceptSettings,
    /// Stages requested, in run order.
    pub stages: Vec<Stage>,
    /// Device stage, once it ran.
    #[serde(default)]
    pub device: Option<DeviceStage>,
    /// Node stage, once it ran.
    #[serde(default)]
    pub node: Option<NodeStage>,
    /// Link stage, once it ran.
    #[serde(default)]
    pub link: Option<LinkStage>,
    /// Sweep stage, once it ran.
    #[serde(default)]
    pub sweep: Option<SweepStage>,
    /// Step stage, once it ran.
    #[serde(default)]
    pub step: Option<StepStage>,
    /// The findings of [`evaluate`] with `settings`.
    #[serde(default)]
    pub findings: Vec<Finding>,
}

fn fmt_gbps(x: f64) -> String {
    format!("{x:.3} GB/s")
}

/// Applies the rules to the record's stages with `s`'s thresholds: one
/// finding per rule and stage, plus one per named device, node or link.
/// Requested stages that have no results (a kill, a crash) are FAIL
/// (`stage_complete`): an acceptance run that did not measure something
/// has not shown it is fine. Stages not requested are SKIPPED.
pub fn evaluate(r: &AcceptRecord, s: &AcceptSettings) -> Vec<Finding> {
    let mut out = Vec::new();
    for stage in Stage::ALL {
        let requested = r.stages.contains(&stage);
        let present = match stage {
            Stage::Device => r.device.is_some(),
            Stage::Node => r.node.is_some(),
            Stage::Link => r.link.is_some(),
            Stage::Sweep => r.sweep.is_some(),
            Stage::Step => r.step.is_some(),
        };
        if !requested {
            out.push(Finding {
                stage,
                rule: "stage_complete".into(),
                status: Status::Skipped,
                component: None,
                message: "not requested".into(),
            });
            continue;
        }
        if !present {
            out.push(Finding {
                stage,
                rule: "stage_complete".into(),
                status: Status::Fail,
                component: None,
                message:
                    "requested but has no results (the run stopped before it finished: INCOMPLETE)"
                        .into(),
            });
            continue;
        }
        match stage {
            Stage::Device => device_rule(r.device.as_ref().expect("present"), s, &mut out),
            Stage::Node => node_rule(r.node.as_ref().expect("present"), s, &mut out),
            Stage::Link => link_rules(r.link.as_ref().expect("present"), s, &mut out),
            Stage::Sweep => sweep_rule(r.sweep.as_ref().expect("present"), &mut out),
            Stage::Step => {
                let st = r.step.as_ref().expect("present");
                out.push(Finding {
                    stage,
                    rule: "step_ran".into(),
                    status: Status::Pass,
                    component: None,
                    message: format!(
                        "training step measured (MFU overlapped {}); its [acceptance] rules are in the report of {}",
                        st.mfu_overlapped
                            .map(|m| format!("{:.1} %", m * 100.0))
                            .unwrap_or_else(|| "-".into()),
                        st.run_json
                    ),
                });
            }
        }
    }
    out
}

/// Whether a measured value is below a limit; NaN (not measured) counts as
/// below, so that a missing number can never pass.
fn below(x: f64, limit: f64) -> bool {
    x.is_nan() || x < limit
}

fn device_rule(d: &DeviceStage, s: &AcceptSettings, out: &mut Vec<Finding>) {
    let rates: Vec<f64> = d.devices.iter().map(|x| x.tflops).collect();
    let Some(med) = stats::median(&rates) else {
        out.push(Finding {
            stage: Stage::Device,
            rule: "device_rate".into(),
            status: Status::Skipped,
            component: None,
            message: "no device measured".into(),
        });
        return;
    };
    if d.devices.len() < 2 {
        out.push(Finding {
            stage: Stage::Device,
            rule: "device_rate".into(),
            status: Status::Inconclusive,
            component: None,
            message: format!("one device ({med:.3} TFLOP/s): no other device to compare it with"),
        });
        return;
    }
    let limit = s.min_device_fraction * med;
    let mut bad = 0;
    for x in &d.devices {
        if below(x.tflops, limit) {
            bad += 1;
            out.push(Finding {
                stage: Stage::Device,
                rule: "device_rate".into(),
                status: Status::Fail,
                component: Some(Component::Device {
                    rank: x.rank,
                    host: x.host.clone(),
                    local_rank: x.local_rank,
                }),
                message: format!(
                    "{:.3} TFLOP/s < {} × median {:.3} TFLOP/s ({})",
                    x.tflops,
                    s.min_device_fraction,
                    med,
                    x.telemetry.reason()
                ),
            });
        }
    }
    if bad == 0 {
        out.push(Finding {
            stage: Stage::Device,
            rule: "device_rate".into(),
            status: Status::Pass,
            component: None,
            message: format!(
                "{} devices, every one ≥ {} × median {:.3} TFLOP/s (lowest {:.3})",
                d.devices.len(),
                s.min_device_fraction,
                med,
                rates.iter().copied().fold(f64::INFINITY, f64::min)
            ),
        });
    }
}

fn node_rule(n: &NodeStage, s: &AcceptSettings, out: &mut Vec<Finding>) {
    let large = n.sizes_bytes.len().saturating_sub(1);
    let multi: Vec<&NodeResult> = n.nodes.iter().filter(|x| x.ranks >= 2).collect();
    for x in n.nodes.iter().filter(|x| x.ranks < 2) {
        out.push(Finding {
            stage: Stage::Node,
            rule: "node_busbw".into(),
            status: Status::Skipped,
            component: Some(Component::Node {
                host: x.host.clone(),
            }),
            message: "one rank on the node: no intra-node all-reduce to measure".into(),
        });
    }
    let bw: Vec<f64> = multi
        .iter()
        .map(|x| x.busbw_gbps.get(large).copied().unwrap_or(f64::NAN))
        .collect();
    let Some(med) = stats::median(&bw) else {
        out.push(Finding {
            stage: Stage::Node,
            rule: "node_busbw".into(),
            status: Status::Skipped,
            component: None,
            message: "no node has two or more ranks".into(),
        });
        return;
    };
    if multi.len() < 2 {
        out.push(Finding {
            stage: Stage::Node,
            rule: "node_busbw".into(),
            status: Status::Inconclusive,
            component: None,
            message: format!(
                "one node measured ({}): no other node to compare it with",
                fmt_gbps(med)
            ),
        });
        return;
    }
    let limit = s.min_node_fraction * med;
    let mut bad = 0;
    for (x, b) in multi.iter().zip(&bw) {
        if below(*b, limit) {
            bad += 1;
            out.push(Finding {
                stage: Stage::Node,
                rule: "node_busbw".into(),
                status: Status::Fail,
                component: Some(Component::Node {
                    host: x.host.clone(),
                }),
                message: format!(
                    "intra-node busbw {} < {} × median {}",
                    fmt_gbps(*b),
                    s.min_node_fraction,
                    fmt_gbps(med)
                ),
            });
        }
    }
    if bad == 0 {
        out.push(Finding {
            stage: Stage::Node,
            rule: "node_busbw".into(),
            status: Status::Pass,
            component: None,
            message: format!(
                "{} nodes, every one ≥ {} × median busbw {}",
                multi.len(),
                s.min_node_fraction,
                fmt_gbps(med)
            ),
        });
    }
}

/// The link rule's reference bandwidth: the median over nodes of each
/// node's fastest measured link. (The median over pairs fails on small
/// clusters: with 3 nodes one bad node is in 2 of the 3 pairs, and the
/// median pair is then a slow one.) None without measured pairs.
pub fn link_reference(l: &LinkStage) -> Option<f64> {
    let best: Vec<f64> = l
        .matrix()
        .iter()
        .filter_map(|row| row.iter().flatten().copied().reduce(f64::max))
        .collect();
    stats::median(&best)
}

fn link_rules(l: &LinkStage, s: &AcceptSettings, out: &mut Vec<Finding>) {
    let n = l.hosts.len();
    let Some(reference) = link_reference(l) else {
        out.push(Finding {
            stage: Stage::Link,
            rule: "link_bandwidth".into(),
            status: Status::Skipped,
            component: None,
            message: format!("{n} node(s): no pair of nodes to measure"),
        });
        return;
    };
    if n < 3 {
        out.push(Finding {
            stage: Stage::Link,
            rule: "link_bandwidth".into(),
            status: Status::Inconclusive,
            component: None,
            message: format!(
                "two nodes, one link ({}): no other link to compare it with",
                fmt_gbps(reference)
            ),
        });
        return;
    }
    let limit = s.min_link_fraction * reference;
    let slow = |p: &PairResult| below(p.gbps, limit);
    let mut bad = 0;
    let links = l.links();
    for p in links.iter().filter(|p| slow(p)) {
        bad += 1;
        out.push(Finding {
            stage: Stage::Link,
            rule: "link_bandwidth".into(),
            status: Status::Fail,
            component: Some(Component::Link {
                a: l.hosts[p.a].clone(),
                b: l.hosts[p.b].clone(),
            }),
            message: format!(
                "{} < {} × reference {} (median over nodes of their fastest link)",
                fmt_gbps(p.gbps),
                s.min_link_fraction,
                fmt_gbps(reference)
            ),
        });
    }
    // A node every one of whose (two or more) measured links is slow is the
    // likelier culprit than each of its links.
    for (i, host) in l.hosts.iter().enumerate() {
        let mine: Vec<&PairResult> = links.iter().filter(|p| p.a == i || p.b == i).collect();
        if mine.len() >= 2 && mine.iter().all(|p| slow(p)) {
            let best = mine.iter().map(|p| p.gbps).fold(0.0, f64::max);
            out.push(Finding {
                stage: Stage::Link,
                rule: "node_links".into(),
                status: Status::Fail,
                component: Some(Component::Node { host: host.clone() }),
                message: format!(
                    "all {} of its links are slow (fastest {} < {} × reference {})",
                    mine.len(),
                    fmt_gbps(best),
                    s.min_link_fraction,
                    fmt_gbps(reference)
                ),
            });
        }
    }
    if bad == 0 {
        out.push(Finding {
            stage: Stage::Link,
            rule: "link_bandwidth".into(),
            status: Status::Pass,
            component: None,
            message: format!(
                "{} links ({} schedule), every one ≥ {} × reference {}",
                links.len(),
                l.schedule,
                s.min_link_fraction,
                fmt_gbps(reference)
            ),
        });
    }
}

fn sweep_rule(w: &SweepStage, out: &mut Vec<Finding>) {
    let wrong: u64 = w.rows.iter().map(|r| r.wrong).sum();
    let (status, message) = if w.rows.is_empty() {
        (Status::Skipped, "no size in the sweep".to_string())
    } else if wrong > 0 {
        let sizes: Vec<String> = w
            .rows
            .iter()
            .filter(|r| r.wrong > 0)
            .map(|r| r.size_bytes.to_string())
            .collect();
        (
            Status::Fail,
            format!(
                "{wrong} wrong element(s), at size(s) {} bytes",
                sizes.join(", ")
            ),
        )
    } else if w.ranks < 2 {
        (
            Status::Inconclusive,
            "one rank: the all-reduce is a copy".to_string(),
        )
    } else {
        (
            Status::Pass,
            format!(
                "{} sizes on {} ranks, #wrong 0, avg busbw {}",
                w.rows.len(),
                w.ranks,
                fmt_gbps(w.avg_busbw_gbps)
            ),
        )
    };
    out.push(Finding {
        stage: Stage::Sweep,
        rule: "sweep_wrong".into(),
        status,
        component: None,
        message,
    });
}

/// The overall verdict of a set of findings: FAIL if any failed, else
/// INCONCLUSIVE if any was, else PASS (SKIPPED lines do not count; all
/// skipped is INCONCLUSIVE: nothing was shown).
pub fn overall(findings: &[Finding], complete: bool) -> Status {
    if findings.iter().any(|f| f.status == Status::Fail) {
        Status::Fail
    } else if !complete
        || findings.iter().any(|f| f.status == Status::Inconclusive)
        || findings.iter().all(|f| f.status == Status::Skipped)
    {
        Status::Inconclusive
    } else {
        Status::Pass
    }
}

/// The components named by failed findings, each once, in finding order.
pub fn bad_components(findings: &[Finding]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in findings.iter().filter(|f| f.status == Status::Fail) {
        if let Some(c) = &f.component {
            let name = c.to_string();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn tournament_covers_every_pair_once() {
        for n in 2..=65usize {
            let rounds = tournament(n);
            let want_rounds = if n % 2 == 0 { n - 1 } else { n };
            assert_eq!(rounds.len(), want_rounds, "n = {n}");
            let mut seen = BTreeSet::new();
            for r in &rounds {
                // Disjoint pairs within a round; at most one bye.
                let mut nodes = BTreeSet::new();
                for &(a, b) in r {
                    assert!(a < b && b < n, "n = {n}: {a}, {b}");
                    assert!(nodes.insert(a) && nodes.insert(b), "n = {n}: node twice");
                    assert!(seen.insert((a, b)), "n = {n}: pair ({a}, {b}) twice");
                }
                assert_eq!(nodes.len(), n - n % 2, "n = {n}");
            }
            assert_eq!(seen.len(), n * (n - 1) / 2, "n = {n}");
        }
        assert!(tournament(1).is_empty() && tournament(0).is_empty());
        assert_eq!(tournament(2), vec![vec![(0, 1)]]);
        assert_eq!(tournament(3).len(), 3);
    }

    #[test]
    fn sampled_covers_every_node() {
        for n in [2usize, 3, 4, 5, 65, 66, 67, 100, 257, 1000] {
            let rounds = sampled(n, 8, SAMPLED_SEED);
            let mut degree = vec![0usize; n];
            for r in &rounds {
                let mut nodes = BTreeSet::new();
                for &(a, b) in r {
                    assert!(a < b && b < n);
                    assert!(
                        nodes.insert(a) && nodes.insert(b),
                        "n = {n}: node twice in a round"
                    );
                    degree[a] += 1;
                    degree[b] += 1;
                }
            }
            // The ring puts every node in two pairs (one for n = 2), the
            // matchings each add one (or a bye for odd n).
            let min = degree.iter().min().copied().unwrap();
            assert!(min >= if n == 2 { 1 } else { 2 }, "n = {n}: {min}");
            assert!(rounds.len() <= 3 + 8);
        }
        // Same seed, same schedule on every rank.
        assert_eq!(sampled(100, 8, 7), sampled(100, 8, 7));
        let s = AcceptSettings {
            max_pair_nodes: 4,
            ..Default::default()
        };
        assert_eq!(link_schedule(4, &s).0, "tournament");
        assert_eq!(link_schedule(5, &s).0, "sampled");
    }

    #[test]
    fn busbw_factors_follow_nccl_tests() {
        // nccl-tests PERFORMANCE.md: all-reduce 2(n−1)/n; reduce-scatter and
        // all-gather (n−1)/n.
        for (n, ar, rs) in [(2u64, 1.0, 0.5), (3, 4.0 / 3.0, 2.0 / 3.0), (4, 1.5, 0.75)] {
            assert!((busbw_factor(Collective::AllReduce, n) - ar).abs() < 1e-15);
            assert!((busbw_factor(Collective::ReduceScatter, n) - rs).abs() < 1e-15);
            assert!((busbw_factor(Collective::AllGather, n) - rs).abs() < 1e-15);
        }
        assert_eq!(busbw_factor(Collective::SendRecv, 7), 1.0);
        assert_eq!(busbw_factor(Collective::AllReduce, 0), 0.0);
        // Same as the run summary's formula.
        assert_eq!(
            crate::metrics::busbw_gbps(3.0, 3),
            3.0 * busbw_factor(Collective::AllReduce, 3)
        );
    }

    #[test]
    fn sizes_and_stage_lists() {
        let s = AcceptSettings {
            sweep_begin: 8,
            sweep_end: 1 << 10,
            sweep_factor: 2,
            ..Default::default()
        };
        assert_eq!(s.sweep_sizes(), vec![8, 16, 32, 64, 128, 256, 512, 1024]);
        let s = AcceptSettings {
            sweep_begin: 6,
            sweep_end: 100,
            sweep_factor: 4,
            ..Default::default()
        };
        assert_eq!(s.sweep_sizes(), vec![4, 24, 96]);
        assert_eq!(parse_bytes("8"), Ok(8));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("2m"), Ok(2 << 20));
        assert!(parse_bytes("x").is_err() && parse_bytes("").is_err());
        assert_eq!(
            parse_stages("link, device,link"),
            Ok(vec![Stage::Device, Stage::Link])
        );
        assert!(parse_stages("gpu")
            .unwrap_err()
            .contains("unknown stage \"gpu\""));
        assert!(parse_stages(",").is_err());
        AcceptSettings::default().validate("f").unwrap();
        let bad = AcceptSettings {
            min_link_fraction: 1.5,
            ..Default::default()
        };
        assert_eq!(
            bad.validate("f").unwrap_err().field(),
            Some("accept.min_link_fraction")
        );
        let bad = AcceptSettings {
            sweep_begin: 1 << 20,
            sweep_end: 8,
            ..Default::default()
        };
        assert_eq!(
            bad.validate("f").unwrap_err().field(),
            Some("accept.sweep_end")
        );
    }

    fn record() -> AcceptRecord {
        AcceptRecord {
            schema_version: ACCEPT_SCHEMA_VERSION,
            tool_version: "t".into(),
            run_id: "r".into(),
            started_at: String::new(),
            written_at: String::new(),
            complete: true,
            backend: "cpu".into(),
            world_size: 3,
            hosts: vec!["a".into(), "b".into(), "c".into()],
            settings: AcceptSettings::default(),
            stages: vec![Stage::Link],
            device: None,
            node: None,
            link: None,
            sweep: None,
            step: None,
            findings: Vec::new(),
        }
    }

    fn link(gbps: &[(usize, usize, f64)], hosts: usize) -> LinkStage {
        LinkStage {
            hosts: (0..hosts).map(|i| format!("h{i}")).collect(),
            schedule: "tournament".into(),
            rounds: tournament(hosts),
            bytes: 1,
            iterations: 1,
            pairs: gbps
                .iter()
                .map(|&(a, b, g)| PairResult {
                    a,
                    b,
                    round: 0,
                    time_s: 1.0 / g,
                    best_time_s: 1.0 / g,
                    gbps: g,
                })
                .collect(),
        }
    }

    #[test]
    fn slow_host_names_its_links_then_the_host() {
        // Three nodes, h2 throttled: its two links at 0.1, the other at 1.
        let mut r = record();
        r.link = Some(link(&[(0, 1, 1.0), (0, 2, 0.1), (1, 2, 0.1)], 3));
        assert_eq!(link_reference(r.link.as_ref().unwrap()), Some(1.0));
        let f = evaluate(&r, &r.settings);
        let fails: Vec<String> = f
            .iter()
            .filter(|x| x.status == Status::Fail)
            .map(|x| x.component.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(
            fails,
            ["link h0 <-> h2", "link h1 <-> h2", "node h2"],
            "{f:#?}"
        );
        assert_eq!(overall(&f, true), Status::Fail);
        assert_eq!(bad_components(&f).len(), 3);
        // Healthy: PASS, and the other stages SKIPPED.
        r.link = Some(link(&[(0, 1, 1.0), (0, 2, 0.95), (1, 2, 0.9)], 3));
        let f = evaluate(&r, &r.settings);
        assert_eq!(overall(&f, true), Status::Pass, "{f:#?}");
        assert_eq!(f.iter().filter(|x| x.status == Status::Skipped).count(), 4);
        // 0.79 of the reference fails at 0.8, a single link: no node named.
        r.link = Some(link(&[(0, 1, 1.0), (0, 2, 0.79), (1, 2, 1.0)], 3));
        let f = evaluate(&r, &r.settings);
        let fails: Vec<_> = f.iter().filter(|x| x.status == Status::Fail).collect();
        assert_eq!(fails.len(), 1);
        assert_eq!(
            fails[0].component.as_ref().unwrap().to_string(),
            "link h0 <-> h2"
        );
        // A pair measured in two rounds (the sampled schedule can repeat
        // one) counts once, with its faster result.
        r.link = Some(link(
            &[(0, 1, 1.0), (0, 2, 0.95), (0, 1, 0.1), (1, 2, 0.9)],
            3,
        ));
        let f = evaluate(&r, &r.settings);
        assert_eq!(overall(&f, true), Status::Pass, "{f:#?}");
        assert_eq!(r.link.as_ref().unwrap().links().len(), 3);
        assert!(f.iter().any(|x| x.message.starts_with("3 links")));
        // Two nodes: one link, nothing to compare: INCONCLUSIVE.
        r.link = Some(link(&[(0, 1, 0.01)], 2));
        let f = evaluate(&r, &r.settings);
        assert_eq!(overall(&f, true), Status::Inconclusive);
    }

    #[test]
    fn device_and_node_rules() {
        let dev = |rank: u64, t: f64| DeviceResult {
            rank,
            host: format!("h{}", rank / 2),
            local_rank: rank % 2,
            device: "cpu".into(),
            device_name: "x".into(),
            step_s: 1.0 / t,
            step_time_s: vec![1.0 / t],
            tflops: t,
            spec_peak_tflops: None,
            telemetry: CpuTelemetry {
                mhz: Some(1000.0),
                temp_c: None,
                load1: None,
                cpu_share: None,
            },
        };
        let mut r = record();
        r.stages = vec![Stage::Device, Stage::Node];
        r.device = Some(DeviceStage {
            flops_per_step: 1.0,
            iterations: 1,
            // Median 1.0; 0.92 × 1.0: 0.91 fails, 0.93 passes.
            devices: vec![
                dev(0, 1.0),
                dev(1, 0.91),
                dev(2, 1.1),
                dev(3, 0.93),
                dev(4, 1.0),
            ],
        });
        let node = |h: &str, ranks: u64, bw: f64| NodeResult {
            host: h.into(),
            ranks,
            time_s: vec![1.0, 1.0],
            best_time_s: vec![1.0, 1.0],
            algbw_gbps: vec![bw, bw],
            busbw_gbps: vec![0.001, bw],
        };
        r.node = Some(NodeStage {
            sizes_bytes: vec![8, 1 << 20],
            iterations: 1,
            nodes: vec![
                node("h0", 2, 10.0),
                node("h1", 2, 8.0),
                node("h2", 2, 10.5),
                node("h3", 1, 0.0),
            ],
        });
        let f = evaluate(&r, &r.settings);
        let fails: Vec<String> = f
            .iter()
            .filter(|x| x.status == Status::Fail)
            .map(|x| format!("{} {}", x.component.as_ref().unwrap(), x.message))
            .collect();
        assert_eq!(fails.len(), 2, "{fails:#?}");
        assert!(fails[0].starts_with("device rank 1 (h0, local rank 1)"));
        assert!(fails[0].contains("cpu clock 1000 MHz"));
        assert!(fails[1].starts_with("node h1 intra-node busbw 8.000 GB/s"));
        assert!(f.iter().any(|x| x.status == Status::Skipped
            && x.component == Some(Component::Node { host: "h3".into() })));
        // One device only: INCONCLUSIVE, never PASS.
        r.device.as_mut().unwrap().devices.truncate(1);
        r.node = None;
        r.stages = vec![Stage::Device, Stage::Node];
        let f = evaluate(&r, &r.settings);
        assert!(f
            .iter()
            .any(|x| x.stage == Stage::Device && x.status == Status::Inconclusive));
        // The node stage was requested but has no results: FAIL (incomplete).
        assert!(f.iter().any(|x| x.stage == Stage::Node
            && x.rule == "stage_complete"
            && x.status == Status::Fail));
        assert_eq!(overall(&f, false), Status::Fail);
    }

    #[test]
    fn sweep_rule_counts_wrong() {
        let mut r = record();
        r.stages = vec![Stage::Sweep];
        let row = |w: u64| SweepRow {
            size_bytes: 8,
            count: 2,
            time_us: 1.0,
            algbw_gbps: 1.0,
            busbw_gbps: 1.0,
            wrong: w,
        };
        r.sweep = Some(SweepStage {
            collective: Collective::AllReduce,
            dtype: "float".into(),
            redop: "sum".into(),
            ranks: 3,
            iterations: 1,
            rows: vec![row(0), row(2)],
            avg_busbw_gbps: 1.0,
        });
        let f = evaluate(&r, &r.settings);
        assert_eq!(overall(&f, true), Status::Fail);
        r.sweep.as_mut().unwrap().rows[1].wrong = 0;
        assert_eq!(overall(&evaluate(&r, &r.settings), true), Status::Pass);
        assert_eq!(
            overall(&evaluate(&r, &r.settings), false),
            Status::Inconclusive
        );
    }

    #[test]
    fn accept_table_in_the_config() {
        use crate::config::{parse_config, ConfigError};
        let base = "[model]\npreset = \"tiny\"\n[run]\nbackend = \"cpu\"\n";
        let c = parse_config(base, "c.toml").unwrap();
        assert!(c.accept.is_default());
        let c = parse_config(
            &format!("{base}[accept]\nstages = [\"link\", \"device\"]\nlink_bytes = 1024\n"),
            "c.toml",
        )
        .unwrap();
        assert_eq!(c.accept.stages, vec![Stage::Link, Stage::Device]);
        assert_eq!(c.accept.link_bytes, 1024);
        assert_eq!(c.accept.min_device_fraction, 0.92);
        let e = parse_config(
            &format!("{base}[accept]\nmin_node_fraction = 2.0\n"),
            "c.toml",
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("accept.min_node_fraction"), "{e}");
        assert!(
            e.to_string()
                .starts_with("c.toml: accept.min_node_fraction"),
            "{e}"
        );
        let e = parse_config(&format!("{base}[accept]\nlink_mb = 2\n"), "c.toml").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
        assert!(e.to_string().contains("link_mb"), "{e}");
        let e =
            parse_config(&format!("{base}[accept]\nstages = [\"gpu\"]\n"), "c.toml").unwrap_err();
        assert!(e.to_string().contains("gpu"), "{e}");
        // Overrides replace and are validated.
        let o = AcceptOverrides {
            sweep_factor: Some(1),
            ..Default::default()
        };
        assert_eq!(
            o.apply(&c.accept, "c.toml").unwrap_err().field(),
            Some("accept.sweep_factor")
        );
        let o = AcceptOverrides {
            stages: Some(vec![Stage::Sweep]),
            sweep_end: Some(1 << 20),
            ..Default::default()
        };
        let s = o.apply(&c.accept, "c.toml").unwrap();
        assert_eq!(
            (s.stages.clone(), s.sweep_end),
            (vec![Stage::Sweep], 1 << 20)
        );
        assert_eq!(o.to_args(), ["--stages", "sweep", "--sweep-end", "1048576"]);
    }

    #[test]
    fn record_round_trips() {
        let mut r = record();
        r.link = Some(link(&[(0, 1, 1.0)], 2));
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<AcceptRecord>(&j).unwrap(), r);
        assert!(j.contains("\"schema_version\":1"));
    }
}

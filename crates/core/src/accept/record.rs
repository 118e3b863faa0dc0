//! The `accept.json` schema: one result type per stage, the findings, and
//! the record that holds them (schema-versioned).

use serde::{Deserialize, Serialize};
use std::fmt;

use super::{AcceptSettings, Pair, Stage};
use crate::metrics::{busbw_factor, Collective};
use crate::result::PeakSource;

/// Layout version of `accept.json`; bumped on any change an older reader
/// would misread. 3: a finding's status may be `INCOMPLETE` (a requested
/// stage without results; older files say `FAIL` there), which an older
/// reader cannot parse. Files of versions 1 and 2 read as they are.
pub const ACCEPT_SCHEMA_VERSION: u32 = 3;

/// The outcome of one rule: the one vocabulary of run and suite rules.
pub use crate::verdict::Status;

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
        /// The rail (network interface) it was measured on; None: the path
        /// MPI or NCCL picks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rail: Option<String>,
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
            Component::Link { a, b, rail: None } => write!(f, "link {a} <-> {b}"),
            Component::Link {
                a,
                b,
                rail: Some(r),
            } => write!(f, "link {a} <-> {b} (rail {r})"),
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
    /// `node_links`, `sweep_wrong`, `stage_complete`, `gpu_xid`).
    pub rule: String,
    /// Outcome.
    pub status: Status,
    /// The device, node or link named; None for a stage-wide line.
    #[serde(default)]
    pub component: Option<Component>,
    /// The numbers behind the outcome, or why it could not be decided.
    pub message: String,
}

/// Config stage: what every node is made of, each compared with the
/// majority of nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigStage {
    /// One entry per node, reported by its first rank, in node order.
    pub nodes: Vec<NodeFacts>,
}

/// One node's configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// Host name.
    pub host: String,
    /// Field → value (`kernel`, `cpu.model`, `cpu.governor`,
    /// `nic.eth0.mtu`, `mpi.library`, …); a field the node could not
    /// read is absent.
    pub facts: std::collections::BTreeMap<String, String>,
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

/// One NVML reading of a GPU, taken after a stage's measurements. Fields
/// NVML could not read are empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuReading {
    /// The stage it was taken after.
    pub stage: Option<Stage>,
    /// SM clock, MHz.
    #[serde(default)]
    pub sm_clock_mhz: Option<u32>,
    /// Highest SM clock the GPU supports, MHz.
    #[serde(default)]
    pub max_sm_clock_mhz: Option<u32>,
    /// Power draw, W.
    #[serde(default)]
    pub power_w: Option<f64>,
    /// Enforced power limit, W.
    #[serde(default)]
    pub power_limit_w: Option<f64>,
    /// GPU temperature, °C.
    #[serde(default)]
    pub temperature_c: Option<u32>,
    /// The raw NVML clock-event ("throttle") reason mask, unknown bits
    /// kept.
    #[serde(default)]
    pub throttle_bits: Option<u64>,
    /// Names of the reasons in `throttle_bits` (`hw_thermal_slowdown`;
    /// unknown bits as `other(0x…)`).
    #[serde(default)]
    pub throttle_reasons: Vec<String>,
    /// Corrected ECC errors since the driver loaded (volatile counter).
    #[serde(default)]
    pub ecc_corrected: Option<u64>,
    /// Uncorrected ECC errors since the driver loaded (volatile counter).
    #[serde(default)]
    pub ecc_uncorrected: Option<u64>,
    /// Current PCIe link generation.
    #[serde(default)]
    pub pcie_gen: Option<u32>,
    /// Highest PCIe link generation of the GPU and the slot.
    #[serde(default)]
    pub pcie_max_gen: Option<u32>,
    /// Current PCIe link width (lanes).
    #[serde(default)]
    pub pcie_width: Option<u32>,
    /// Widest PCIe link of the GPU and the slot (lanes).
    #[serde(default)]
    pub pcie_max_width: Option<u32>,
}

/// What a throttle reason name means, in the words a verdict line uses.
pub fn throttle_phrase(name: &str) -> String {
    match name {
        "gpu_idle" => "idle".into(),
        "applications_clocks_setting" => "application clocks set".into(),
        "sw_power_cap" => "power cap".into(),
        "hw_slowdown" => "hardware slowdown".into(),
        "sync_boost" => "sync boost".into(),
        "sw_thermal_slowdown" => "thermal slowdown (software)".into(),
        "hw_thermal_slowdown" => "thermal slowdown".into(),
        "hw_power_brake_slowdown" => "power brake".into(),
        "display_clock_setting" => "display clock".into(),
        other => format!("throttle reason {other}"),
    }
}

impl GpuReading {
    /// The reason text shown beside a flagged GPU: what is off, first;
    /// "sm clock 1410 MHz, thermal slowdown".
    pub fn reason(&self) -> String {
        let mut parts = Vec::new();
        match (self.sm_clock_mhz, self.max_sm_clock_mhz) {
            (Some(c), Some(m)) if m > 0 && c < m => {
                parts.push(format!("sm clock {c} MHz (max {m})"))
            }
            (Some(c), _) => parts.push(format!("sm clock {c} MHz")),
            _ => {}
        }
        parts.extend(
            self.throttle_reasons
                .iter()
                .filter(|r| r.as_str() != "gpu_idle")
                .map(|r| throttle_phrase(r)),
        );
        if let Some(t) = self.temperature_c {
            parts.push(format!("{t} °C"));
        }
        match (self.power_w, self.power_limit_w) {
            (Some(p), Some(l)) => parts.push(format!("{p:.0} W of {l:.0} W")),
            (Some(p), None) => parts.push(format!("{p:.0} W")),
            _ => {}
        }
        if let Some(u) = self.ecc_uncorrected.filter(|u| *u > 0) {
            parts.push(format!("{u} uncorrected ECC error(s)"));
        }
        if let Some(c) = self.ecc_corrected.filter(|c| *c > 0) {
            parts.push(format!("{c} corrected ECC error(s)"));
        }
        match (
            self.pcie_gen,
            self.pcie_max_gen,
            self.pcie_width,
            self.pcie_max_width,
        ) {
            (Some(g), Some(mg), Some(w), Some(mw)) if g < mg || w < mw => {
                parts.push(format!("PCIe gen{g} x{w} (max gen{mg} x{mw})"))
            }
            _ => {}
        }
        if parts.is_empty() {
            "no GPU telemetry".into()
        } else {
            parts.join(", ")
        }
    }
}

/// A GPU's identity and its readings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuTelemetry {
    /// NVML UUID (`GPU-…`).
    pub uuid: String,
    /// Board serial number, where NVML reports one.
    #[serde(default)]
    pub serial: Option<String>,
    /// PCI bus id (`00000000:04:00.0`).
    #[serde(default)]
    pub pci_bus_id: Option<String>,
    /// Readings, one per stage taken so far, in stage order.
    #[serde(default)]
    pub readings: Vec<GpuReading>,
    /// XID errors NVML reported since the suite opened ([`XidWatch`]);
    /// `not_recorded` in files written before XIDs were watched.
    #[serde(default)]
    pub xid: XidWatch,
}

/// XID errors of one code seen in one poll: NVML delivers XIDs as events
/// (`nvmlEventTypeXidCriticalError`) to an event set registered before
/// they happen, polled after every stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XidEvent {
    /// The XID code (79: the GPU fell off the bus, 48: double-bit ECC, …);
    /// None where NVML reports it as unknown (its value 999).
    pub code: Option<u64>,
    /// The stage after which the poll saw it: it happened during that stage
    /// (or in the barrier before it).
    pub stage: Stage,
    /// When the poll saw it, RFC 3339 UTC (NVML's event carries no time of
    /// its own).
    pub at: String,
    /// Events of this code that poll delivered (NVML reports the latest
    /// XID of the device for every pending event, so repeats are counted,
    /// not listed).
    pub count: u64,
}

/// Whether and what XID errors of a GPU were watched since the suite
/// opened. A GPU whose driver cannot report XIDs says so: it never reads
/// as an empty (clean) list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum XidWatch {
    /// Not watched: a file from before XIDs were recorded.
    #[default]
    NotRecorded,
    /// An event set was registered when the suite opened and polled after
    /// every stage.
    Watched {
        /// When the event set was registered, RFC 3339 UTC.
        since: String,
        /// XIDs seen, in the order polled (empty: none since `since`).
        events: Vec<XidEvent>,
        /// The last poll that failed (e.g. "GPU is lost"), if any: events
        /// after it may be missing.
        #[serde(default)]
        poll_error: Option<String>,
    },
    /// NVML or the driver does not deliver XID events for this GPU
    /// (`NotSupported`, an NVML without the event functions, or a GPU
    /// whose supported event types lack XIDs).
    NotSupported {
        /// NVML's answer.
        reason: String,
    },
    /// Registering the event set failed for another reason (no
    /// permission, NVML error).
    Failed {
        /// NVML's answer.
        reason: String,
    },
}

impl XidWatch {
    /// A watch opened at `since` with no XIDs yet.
    pub fn watched(since: &str) -> XidWatch {
        XidWatch::Watched {
            since: since.to_string(),
            events: Vec::new(),
            poll_error: None,
        }
    }

    /// Records what one poll after `stage` at `at` delivered: the code of
    /// every event (None: unknown), or the poll's failure. A watch that is
    /// not `Watched` is left as it is.
    pub fn record(&mut self, polled: Result<Vec<Option<u64>>, String>, stage: Stage, at: &str) {
        let XidWatch::Watched {
            events, poll_error, ..
        } = self
        else {
            return;
        };
        match polled {
            Ok(codes) => {
                for code in codes {
                    match events
                        .iter_mut()
                        .find(|e| e.code == code && e.stage == stage)
                    {
                        Some(e) => e.count += 1,
                        None => events.push(XidEvent {
                            code,
                            stage,
                            at: at.to_string(),
                            count: 1,
                        }),
                    }
                }
            }
            Err(e) => *poll_error = Some(format!("after the {stage} stage: {e}")),
        }
    }

    /// The XIDs seen, when watched.
    pub fn events(&self) -> &[XidEvent] {
        match self {
            XidWatch::Watched { events, .. } => events,
            _ => &[],
        }
    }

    /// "XID 79 during link, XID 13 during sweep (×4)": the XIDs seen, for a
    /// reason text; None when there are none.
    pub fn seen(&self) -> Option<String> {
        let events = self.events();
        (!events.is_empty()).then(|| {
            events
                .iter()
                .map(|e| {
                    let code = e
                        .code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "unknown".into());
                    let times = if e.count > 1 {
                        format!(" (×{})", e.count)
                    } else {
                        String::new()
                    };
                    format!("XID {code} during {}{times}", e.stage)
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// The state in one phrase: "xid: none since …", the XIDs seen, "xid:
    /// not supported (…)", "xid: not watched (…)" or "xid: not recorded".
    pub fn text(&self) -> String {
        match self {
            XidWatch::NotRecorded => "xid: not recorded".into(),
            XidWatch::Watched {
                since,
                events,
                poll_error,
            } => {
                let mut s = if events.is_empty() {
                    format!("xid: none since {since}")
                } else {
                    self.seen().unwrap_or_default()
                };
                if let Some(e) = poll_error {
                    s += &format!(" (a poll failed {e})");
                }
                s
            }
            XidWatch::NotSupported { reason } => format!("xid: not supported ({reason})"),
            XidWatch::Failed { reason } => format!("xid: not watched ({reason})"),
        }
    }
}

impl GpuTelemetry {
    /// "GPU-…, serial 1321…, PCI 00000000:04:00.0".
    pub fn identity(&self) -> String {
        let mut s = self.uuid.clone();
        if let Some(x) = &self.serial {
            s += &format!(", serial {x}");
        }
        if let Some(x) = &self.pci_bus_id {
            s += &format!(", PCI {x}");
        }
        s
    }

    /// The reading taken after `stage`, if any.
    pub fn at(&self, stage: Stage) -> Option<&GpuReading> {
        self.readings.iter().find(|r| r.stage == Some(stage))
    }
}

/// One rank's GPU telemetry over the whole suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankGpu {
    /// MPI rank.
    pub rank: u64,
    /// Host name.
    pub host: String,
    /// Rank on its host.
    pub local_rank: u64,
    /// Identity and per-stage readings.
    pub gpu: GpuTelemetry,
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
    /// The peak the device's rate is set against ([`device_peak`]):
    /// `run.peak_tflops` when set, else the datasheet's; None when neither
    /// is known (never a calibrated or made-up number).
    #[serde(default)]
    pub peak_tflops: Option<f64>,
    /// Where `peak_tflops` comes from (`config` or `spec`).
    #[serde(default)]
    pub peak_source: Option<PeakSource>,
    /// Telemetry sampled right after the stage.
    #[serde(default)]
    pub telemetry: CpuTelemetry,
    /// On GPUs: the device's identity and its NVML reading right after
    /// the stage; None on CPUs and where NVML is missing.
    #[serde(default)]
    pub gpu: Option<GpuTelemetry>,
    /// The rate expected of the device and the rate as % of it
    /// ([`super::device_expected`]); None without a peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<super::Expected>,
}

/// The peak a device's rate is set against and where it comes from:
/// `run.peak_tflops` when the config sets it (the user's statement of the
/// device's peak), else the datasheet entry of core's table
/// ([`crate::peak`]); None when neither is known. A calibrated rate is not
/// a peak to judge a device against: the device stage then says "no
/// datasheet peak".
pub fn device_peak(config: Option<f64>, spec: Option<f64>) -> Option<(f64, PeakSource)> {
    let valid = |p: f64| p.is_finite() && p > 0.0;
    match (config.filter(|p| valid(*p)), spec.filter(|p| valid(*p))) {
        (Some(p), _) => Some((p, PeakSource::Config)),
        (None, Some(p)) => Some((p, PeakSource::Spec)),
        (None, None) => None,
    }
}

impl DeviceResult {
    /// The reason text beside a flagged device: the GPU's identity and
    /// reading where there is one, else the host's telemetry.
    pub fn reason(&self) -> String {
        match &self.gpu {
            Some(g) => {
                let xid = g.xid.seen().map(|x| format!(", {x}")).unwrap_or_default();
                match g.at(Stage::Device) {
                    Some(r) => format!("{}; {}{xid}", g.identity(), r.reason()),
                    None => format!("{}; no GPU telemetry{xid}", g.identity()),
                }
            }
            None => self.telemetry.reason(),
        }
    }

    /// TFLOP/s over the peak, when there is one.
    pub fn peak_fraction(&self) -> Option<f64> {
        self.peak_tflops
            .filter(|p| *p > 0.0)
            .map(|p| self.tflops / p)
    }

    /// "62.1 % of the datasheet's 989.0 TFLOP/s", or "no datasheet peak".
    pub fn peak_text(&self) -> String {
        match (self.peak_fraction(), self.peak_tflops, self.peak_source) {
            (Some(f), Some(p), src) => format!(
                "{:.1} % of {} {p:.1} TFLOP/s",
                f * 100.0,
                match src {
                    Some(PeakSource::Config) => "run.peak_tflops",
                    _ => "the datasheet's",
                }
            ),
            _ => "no datasheet peak".into(),
        }
    }
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
    /// Why the node ran fewer timed all-reduces than `iterations` at some
    /// size: the next would have overrun `accept.node_budget_s`. None when
    /// every one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
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
    /// `gbps` against the line rate of the NIC it can use: the slower end's
    /// fastest NIC, from the config stage ([`super::link_expected`]); None
    /// without a known line rate on both ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<super::Expected>,
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
    /// How many of `rounds`, at the end, were isolation rounds: suspects
    /// re-paired with known-good nodes after the screen
    /// ([`super::isolation_rounds`]); 0 in files written before them.
    #[serde(default)]
    pub isolation_rounds: usize,
    /// Bytes each side sends per exchange.
    pub bytes: u64,
    /// Timed exchanges per pair: `accept.iterations`, or fewer where the
    /// stage's time budget stopped it (`stopped` says so).
    pub iterations: u32,
    /// Every measured pair.
    pub pairs: Vec<PairResult>,
    /// Why the stage ran fewer timed passes than `accept.iterations`: the
    /// next pass would have overrun `accept.link_budget_s`. None when every
    /// pass ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The same schedule run again on each rail of `accept.rails` (NIC i
    /// with NIC i); empty without rails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rails: Vec<RailStage>,
}

/// The link schedule on one rail: TCP between the node leaders' IPv4
/// addresses on one network interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailStage {
    /// The interface (`accept.rails` entry), e.g. `eth1`.
    pub rail: String,
    /// Each node's IPv4 address on it, in node order; None: the node has
    /// none (it is left out of the rail's pairs and named).
    pub addresses: Vec<Option<String>>,
    /// Rounds run (the link stage's schedule without the isolation
    /// rounds, less the pairs with a node that has no address).
    pub rounds: Vec<Vec<Pair>>,
    /// Timed exchanges per pair (fewer than `accept.iterations` where the
    /// link stage's budget stopped it).
    pub iterations: u32,
    /// Every measured pair, as [`LinkStage::pairs`].
    pub pairs: Vec<PairResult>,
    /// Why fewer passes ran than asked, as [`LinkStage::stopped`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl RailStage {
    /// The rail's pairs as a link stage of its own (for the link rules, the
    /// matrix and the expected values): `of`'s hosts, bytes and schedule.
    pub fn as_link(&self, of: &LinkStage) -> LinkStage {
        LinkStage {
            hosts: of.hosts.clone(),
            schedule: of.schedule.clone(),
            rounds: self.rounds.clone(),
            isolation_rounds: 0,
            bytes: of.bytes,
            iterations: self.iterations,
            pairs: self.pairs.clone(),
            stopped: self.stopped.clone(),
            rails: Vec::new(),
        }
    }
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

/// Sweep stage: one size of one collective, in nccl-tests' columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// Bytes of the whole collective (nccl-tests' `size`): the all-reduced
    /// buffer, the gathered buffer, the buffer reduce-scattered.
    pub size_bytes: u64,
    /// Elements (nccl-tests' `count`): of the buffer for all-reduce, of one
    /// rank's block for reduce-scatter and all-gather.
    pub count: u64,
    /// Median over iterations of the slowest rank's time, microseconds.
    pub time_us: f64,
    /// size / time, GB/s.
    pub algbw_gbps: f64,
    /// algbw · the collective's bus factor ([`busbw_factor`]), GB/s.
    pub busbw_gbps: f64,
    /// Elements that differ from the known answer, over all ranks (an
    /// untimed checked call per size): the sums for all-reduce, this rank's
    /// shard of the sums for reduce-scatter, every rank's block for
    /// all-gather.
    pub wrong: u64,
}

/// The message geometry of one sweep size: what is sent for a requested
/// `size_bytes` of `collective` over `ranks` ranks with elements of
/// `elem_bytes`. Returns (nccl-tests' `count`, the bytes of the whole
/// collective): for all-reduce the whole buffer; for reduce-scatter and
/// all-gather `size / ranks` elements per rank, rounded down, and the
/// whole collective `ranks` such blocks (nccl-tests rounds the same way).
/// None when that is no element at all (the size is left out).
pub fn sweep_geometry(
    collective: Collective,
    size_bytes: u64,
    elem_bytes: u64,
    ranks: u64,
) -> Option<(u64, u64)> {
    let elements = size_bytes / elem_bytes.max(1);
    let (count, total) = match collective {
        Collective::AllReduce | Collective::SendRecv => (elements, elements),
        Collective::ReduceScatter | Collective::AllGather | Collective::AllToAll => {
            let per = elements / ranks.max(1);
            (per, per * ranks.max(1))
        }
    };
    (count > 0).then_some((count, total * elem_bytes))
}

impl SweepRow {
    /// A row from its measured time: algbw = size / time, busbw = algbw ·
    /// the bus factor of `collective` over `ranks` (nccl-tests'
    /// PERFORMANCE.md).
    pub fn new(
        collective: Collective,
        ranks: u64,
        size_bytes: u64,
        count: u64,
        time_s: f64,
        wrong: u64,
    ) -> SweepRow {
        let algbw = crate::metrics::algbw_gbps(size_bytes as f64, time_s);
        SweepRow {
            size_bytes,
            count,
            time_us: time_s * 1e6,
            algbw_gbps: algbw,
            busbw_gbps: algbw * busbw_factor(collective, ranks),
            wrong,
        }
    }
}

/// Sweep stage: the table of one collective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepTable {
    /// Collective (`all_reduce`, `reduce_scatter`, `all_gather`).
    pub collective: Collective,
    /// Reduction (`sum`; `none` for all-gather, as nccl-tests prints it).
    pub redop: String,
    /// One row per size.
    pub rows: Vec<SweepRow>,
    /// Mean busbw over the rows (nccl-tests' "Avg bus bandwidth"), GB/s.
    pub avg_busbw_gbps: f64,
    /// Why the table ends before `accept.sweep_end`: the next size would
    /// have overrun `accept.sweep_budget_s` (the size, the predicted time
    /// and the budget). Absent when every size ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The α-β fit of the table's times ([`super::alpha_beta`]); None
    /// below 3 rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<super::AlphaBeta>,
    /// The largest size's busbw against the NIC line rate of the slowest
    /// node's fastest NIC ([`super::fill_expected`]); None on one node or
    /// without known line rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<super::Expected>,
}

impl SweepTable {
    /// The table of `rows`, with its redop and average busbw.
    pub fn new(collective: Collective, rows: Vec<SweepRow>) -> SweepTable {
        let avg = if rows.is_empty() {
            0.0
        } else {
            rows.iter().map(|x| x.busbw_gbps).sum::<f64>() / rows.len() as f64
        };
        SweepTable {
            collective,
            redop: match collective {
                Collective::AllGather | Collective::SendRecv | Collective::AllToAll => "none",
                Collective::AllReduce | Collective::ReduceScatter => "sum",
            }
            .into(),
            rows,
            avg_busbw_gbps: avg,
            stopped: None,
            fit: None,
            expected: None,
        }
    }
}

/// Sweep stage results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepStage {
    /// Element type (`float`).
    #[serde(rename = "type")]
    pub dtype: String,
    /// Ranks taking part.
    pub ranks: u64,
    /// Timed repetitions per size.
    pub iterations: u32,
    /// One table per collective of `accept.sweep_collectives`, in that order.
    pub tables: Vec<SweepTable>,
}

/// The nodes left out of the stages that run every rank together (sweep,
/// step) because an earlier stage found them bad (`accept.keep_bad` keeps
/// them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeftOut {
    /// Hosts left out, in node order; empty when none was (no bad node, or
    /// kept: see `kept`).
    pub hosts: Vec<String>,
    /// The stages they were left out of.
    pub stages: Vec<Stage>,
    /// Why bad nodes were kept in some or all of those stages
    /// (`--keep-bad`; rank 0's node is bad; every node is bad; a parallel
    /// layout that needs every node), or None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
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
    /// Why the step ran fewer timed rounds than `run.iterations`: the rest
    /// would have overrun `accept.step_budget_s`. None when every one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
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
    /// Config stage, once it ran (absent in files written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigStage>,
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
    /// The nodes the sweep and step stages left out, decided before the
    /// first of them from the findings so far ([`super::left_out`]); None
    /// before that point, or when neither stage was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_out: Option<LeftOut>,
    /// On GPUs: every rank's GPU readings, one after each finished stage
    /// (empty on CPUs and without NVML).
    #[serde(default)]
    pub gpus: Vec<RankGpu>,
    /// The findings of [`evaluate`](super::evaluate) with `settings`.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Figures that moved beyond a node's own history or the fleet
    /// ([`super::regressions`]), added by the launcher from the history
    /// directory; each is a `node_regressed` finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regressions: Vec<super::Regression>,
    /// Each node figure against the node's own past (same GPU serials)
    /// where it has one ([`super::trends`]), added by the launcher from the
    /// history directory: the report's history column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trends: Vec<super::Trend>,
    /// About the devices as a whole: `simulated = "true"` for the simulated
    /// GPU of `--sim-gpu` (as in run.json's per-rank `device_info`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub device_info: std::collections::BTreeMap<String, String>,
}

impl AcceptRecord {
    /// Whether the suite ran on simulated GPUs.
    pub fn simulated(&self) -> bool {
        self.device_info
            .get("simulated")
            .is_some_and(|v| v == "true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accept::test_support::{link, record};

    #[test]
    fn the_device_peak_is_the_config_s_then_the_datasheet_s_never_made_up() {
        assert_eq!(
            device_peak(Some(100.0), Some(989.0)),
            Some((100.0, PeakSource::Config))
        );
        assert_eq!(
            device_peak(None, Some(989.0)),
            Some((989.0, PeakSource::Spec))
        );
        assert_eq!(device_peak(None, None), None);
        assert_eq!(device_peak(Some(f64::NAN), None), None);
        let mut d = DeviceResult {
            rank: 0,
            host: "h".into(),
            local_rank: 0,
            device: "GPU 0".into(),
            device_name: "NVIDIA H100 80GB HBM3".into(),
            step_s: 1.0,
            step_time_s: vec![1.0],
            tflops: 494.5,
            spec_peak_tflops: Some(989.0),
            peak_tflops: Some(989.0),
            peak_source: Some(PeakSource::Spec),
            telemetry: CpuTelemetry::default(),
            gpu: None,
            expected: None,
        };
        assert_eq!(d.peak_fraction(), Some(0.5));
        assert_eq!(d.peak_text(), "50.0 % of the datasheet's 989.0 TFLOP/s");
        (d.peak_tflops, d.peak_source) = (Some(618.25), Some(PeakSource::Config));
        assert_eq!(d.peak_text(), "80.0 % of run.peak_tflops 618.2 TFLOP/s");
        (d.peak_tflops, d.peak_source) = (None, None);
        assert_eq!(d.peak_fraction(), None);
        assert_eq!(d.peak_text(), "no datasheet peak");
    }

    #[test]
    fn gpu_reasons_on_known_readings() {
        let r = GpuReading {
            stage: Some(Stage::Device),
            sm_clock_mhz: Some(1410),
            max_sm_clock_mhz: Some(1980),
            power_w: Some(452.4),
            power_limit_w: Some(700.0),
            temperature_c: Some(91),
            throttle_bits: Some(0x40 | 0x1000),
            throttle_reasons: vec!["hw_thermal_slowdown".into(), "other(0x1000)".into()],
            ecc_corrected: Some(0),
            ecc_uncorrected: Some(2),
            pcie_gen: Some(4),
            pcie_max_gen: Some(5),
            pcie_width: Some(16),
            pcie_max_width: Some(16),
        };
        assert_eq!(
            r.reason(),
            "sm clock 1410 MHz (max 1980), thermal slowdown, throttle reason other(0x1000), 91 °C, 452 W of 700 W, 2 uncorrected ECC error(s), PCIe gen4 x16 (max gen5 x16)"
        );
        // A healthy GPU at full clock, idle bit only: the clock and
        // temperature, nothing flagged.
        let ok = GpuReading {
            sm_clock_mhz: Some(1980),
            max_sm_clock_mhz: Some(1980),
            temperature_c: Some(45),
            throttle_reasons: vec!["gpu_idle".into()],
            pcie_gen: Some(5),
            pcie_max_gen: Some(5),
            pcie_width: Some(16),
            pcie_max_width: Some(16),
            ..Default::default()
        };
        assert_eq!(ok.reason(), "sm clock 1980 MHz, 45 °C");
        assert_eq!(GpuReading::default().reason(), "no GPU telemetry");
        let g = GpuTelemetry {
            uuid: "GPU-12345678-9abc-def0-0123-456789abcdef".into(),
            serial: Some("1321021034567".into()),
            pci_bus_id: Some("00000000:04:00.0".into()),
            readings: vec![r.clone()],
            xid: XidWatch::default(),
        };
        assert_eq!(
            g.identity(),
            "GPU-12345678-9abc-def0-0123-456789abcdef, serial 1321021034567, PCI 00000000:04:00.0"
        );
        assert_eq!(g.at(Stage::Device), Some(&r));
        assert_eq!(g.at(Stage::Node), None);
    }

    #[test]
    fn sweep_rows_follow_nccl_tests_at_2_3_4_ranks() {
        // 1 MiB requested, f32, every collective at n = 2, 3, 4: count,
        // size, algbw and busbw by nccl-tests' formulas (all-reduce
        // 2(n−1)/n, reduce-scatter and all-gather (n−1)/n of algbw).
        let mib = 1u64 << 20;
        for n in [2u64, 3, 4] {
            assert_eq!(
                sweep_geometry(Collective::AllReduce, mib, 4, n),
                Some((mib / 4, mib))
            );
            let per = mib / 4 / n;
            for c in [Collective::ReduceScatter, Collective::AllGather] {
                assert_eq!(sweep_geometry(c, mib, 4, n), Some((per, per * n * 4)));
            }
            // 1 ms per call: algbw = bytes / 1e-3 s / 1e9.
            let ar = SweepRow::new(Collective::AllReduce, n, mib, mib / 4, 1e-3, 0);
            let alg = mib as f64 / 1e-3 / 1e9;
            assert!((ar.algbw_gbps - alg).abs() < 1e-12);
            let nf = n as f64;
            assert!((ar.busbw_gbps - alg * 2.0 * (nf - 1.0) / nf).abs() < 1e-12);
            assert_eq!(ar.time_us, 1000.0);
            let bytes = per * n * 4;
            for c in [Collective::ReduceScatter, Collective::AllGather] {
                let r = SweepRow::new(c, n, bytes, per, 1e-3, 0);
                let alg = bytes as f64 / 1e-3 / 1e9;
                assert!((r.busbw_gbps - alg * (nf - 1.0) / nf).abs() < 1e-12);
            }
        }
        // 3 ranks, 8 bytes = 2 floats: no whole element per rank.
        assert_eq!(sweep_geometry(Collective::AllGather, 8, 4, 3), None);
        assert_eq!(sweep_geometry(Collective::AllReduce, 8, 4, 3), Some((2, 8)));
        // 3 ranks, 20 bytes = 5 floats: one per rank, 12 bytes in all.
        assert_eq!(
            sweep_geometry(Collective::ReduceScatter, 20, 4, 3),
            Some((1, 12))
        );
        let t = SweepTable::new(
            Collective::AllGather,
            vec![
                SweepRow::new(Collective::AllGather, 2, 8, 1, 1e-6, 0),
                SweepRow::new(Collective::AllGather, 2, 16, 2, 1e-6, 0),
            ],
        );
        assert_eq!(t.redop, "none");
        assert!((t.avg_busbw_gbps - (0.004 + 0.008) / 2.0).abs() < 1e-12);
        assert_eq!(
            SweepTable::new(Collective::ReduceScatter, vec![]).redop,
            "sum"
        );
    }

    #[test]
    fn xid_watch_records_and_says_what_it_knows() {
        let mut w = XidWatch::watched("2026-01-01T00:00:00Z");
        assert_eq!(w.text(), "xid: none since 2026-01-01T00:00:00Z");
        assert_eq!(w.seen(), None);
        w.record(Ok(vec![Some(13), Some(13), Some(13)]), Stage::Sweep, "t1");
        w.record(Ok(vec![Some(13), Some(79)]), Stage::Step, "t2");
        assert_eq!(
            w.events(),
            &[
                XidEvent {
                    code: Some(13),
                    stage: Stage::Sweep,
                    at: "t1".into(),
                    count: 3
                },
                XidEvent {
                    code: Some(13),
                    stage: Stage::Step,
                    at: "t2".into(),
                    count: 1
                },
                XidEvent {
                    code: Some(79),
                    stage: Stage::Step,
                    at: "t2".into(),
                    count: 1
                },
            ]
        );
        assert_eq!(
            w.text(),
            "XID 13 during sweep (×3), XID 13 during step, XID 79 during step"
        );
        w.record(Err("GPU is lost".into()), Stage::Step, "t3");
        assert!(w
            .text()
            .ends_with("(a poll failed after the step stage: GPU is lost)"));
        // Not supported is said, never an empty list; recording into it
        // changes nothing.
        let mut n = XidWatch::NotSupported {
            reason: "NVML: Not Supported".into(),
        };
        n.record(Ok(vec![Some(79)]), Stage::Device, "t");
        assert_eq!(n.text(), "xid: not supported (NVML: Not Supported)");
        assert!(n.events().is_empty());
        assert_eq!(XidWatch::default().text(), "xid: not recorded");
        // The JSON says which it is; a file without the field reads as
        // not recorded.
        let j = serde_json::to_value(&n).unwrap();
        assert_eq!(j["status"], "not_supported");
        let j = serde_json::to_value(&w).unwrap();
        assert_eq!(j["status"], "watched");
        assert_eq!(j["events"][2]["code"], 79);
        let g: GpuTelemetry = serde_json::from_str(r#"{"uuid":"GPU-1"}"#).unwrap();
        assert_eq!(g.xid, XidWatch::NotRecorded);
    }

    #[test]
    fn record_round_trips() {
        let mut r = record();
        r.link = Some(link(&[(0, 1, 1.0)], 2));
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<AcceptRecord>(&j).unwrap(), r);
        assert!(j.contains(&format!("\"schema_version\":{ACCEPT_SCHEMA_VERSION}")));
    }
}

//! `mfubench soak`: the burn-in's data and its rules. Data and math only.
//!
//! A soak repeats rounds of the benchmark's steps (the chosen modes,
//! interleaved; default overlapped) until its duration has passed, and
//! cuts the time into **windows** (default 1 min). When a window closes,
//! every rank's figures for it ([`RankWindow`]: GEMM rate, step p50/p99,
//! collective bus bandwidth, telemetry, silent-data-corruption digests,
//! wrong collective elements) are gathered on rank 0, which appends one
//! line to `soak.jsonl` and syncs it ([`SoakLine`]). The file is the
//! soak's result:
//! - a `start` line (the settings), a `window` line per closed window, an
//!   `end` line when the soak ended by itself or at a window boundary after
//!   a stop request; a file without `end` is INCOMPLETE (killed), and every
//!   window it holds is still judged and shown;
//! - each line is whole or absent: a line cut by a kill is not valid JSON
//!   and is dropped by the reader ([`parse_log`]), which says so.
//!
//! **Rules** ([`judge`]), each with its thresholds in `[soak]`
//! ([`SoakThresholds`]):
//! - `fail_slow`: a rank whose window GEMM rate stays more than
//!   `fail_slow_fraction` below its own first `baseline_windows` windows,
//!   or below the fleet's median of the same window, for
//!   `fail_slow_windows` consecutive windows; named with the window (and
//!   time) it started. The GEMM rate (model FLOPs / the compute stream's
//!   busy time) is the rank's own: unlike the step time it does not include
//!   waiting for a slow peer, so the slow rank is named, not its peers.
//! - `thermal_drift`: temperature risen more than
//!   `max_temperature_rise_c`, or clock fallen more than
//!   `max_clock_drop_fraction`, from the rank's baseline windows.
//! - `clocks_throttled`: a window whose throttle reasons include a thermal,
//!   hardware-slowdown or power-brake reason ([`HARD_THROTTLE`]); the power
//!   cap (`sw_power_cap`) is shown, not failed: a GPU at its power limit
//!   under full load is normal.
//! - `jitter`: step p99/p50 above `max_jitter` in a window.
//! - `sdc`: the same deterministic GEMMs on identical inputs (from a shared
//!   seed) on every rank; bitwise digests compared across ranks of one
//!   device model (a rank outside the majority is named) and each against
//!   an f64 reference (a rank beyond the tolerance is named).
//! - `collective_check`: wrong all-reduce elements in the checked steps run
//!   at every window's close.
//! - `xid` / `ecc`: an XID event, or uncorrected ECC errors grown, in a
//!   window.
//!
//! A rule whose readings no rank has (GPU rules on the CPU backend, clock
//! and temperature where the host exposes none) is not judged and is
//! listed as such, never as PASS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Mode};
use crate::verdict::Status;

/// The soak's log, in the run folder.
pub const SOAK_FILE: &str = "soak.jsonl";
/// Asks the ranks to end the soak at the next window boundary (the
/// launcher creates it on Ctrl-C, SIGTERM or its timeout).
pub const STOP_FILE: &str = "soak.stop";
/// Version of the lines of soak.jsonl.
pub const SOAK_SCHEMA_VERSION: u32 = 1;
/// Shortest window, seconds.
pub const MIN_WINDOW_S: f64 = 1.0;
/// Throttle reasons that fail `clocks_throttled` (NVML's names).
pub const HARD_THROTTLE: &[&str] = &[
    "hw_slowdown",
    "sw_thermal_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
];

/// `[soak]` of the config: the rules' thresholds. Every field has a
/// default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoakThresholds {
    /// `fail_slow`: a window rate this fraction below the baseline is slow
    /// (default 0.2).
    pub fail_slow_fraction: f64,
    /// `fail_slow`: consecutive slow windows that fire the rule (default 2).
    pub fail_slow_windows: u32,
    /// The first windows that form each rank's own baseline (default 2).
    pub baseline_windows: u32,
    /// `jitter`: highest step p99/p50 in a window (default 3).
    pub max_jitter: f64,
    /// `thermal_drift`: highest temperature rise over the baseline, °C
    /// (default 15).
    pub max_temperature_rise_c: f64,
    /// `thermal_drift`: highest clock drop below the baseline, as a
    /// fraction (default 0.1).
    pub max_clock_drop_fraction: f64,
    /// `sdc`: rounds between digest checks; 0 checks once per window, at its
    /// close (default 0).
    pub sdc_every_rounds: u64,
    /// `sdc`: GEMMs per digest check (default 64).
    pub sdc_gemms: u32,
}

impl Default for SoakThresholds {
    fn default() -> Self {
        SoakThresholds {
            fail_slow_fraction: 0.2,
            fail_slow_windows: 2,
            baseline_windows: 2,
            max_jitter: 3.0,
            max_temperature_rise_c: 15.0,
            max_clock_drop_fraction: 0.1,
            sdc_every_rounds: 0,
            sdc_gemms: 64,
        }
    }
}

impl SoakThresholds {
    /// Whether every setting is the default (run.json then omits them).
    pub fn is_default(&self) -> bool {
        *self == SoakThresholds::default()
    }

    /// Checks every value; the error names the field (`soak.…`).
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |field: &str, message: String| ConfigError::Invalid {
            file: file.to_string(),
            field: format!("soak.{field}"),
            message,
        };
        for (f, x) in [
            ("fail_slow_fraction", self.fail_slow_fraction),
            ("max_clock_drop_fraction", self.max_clock_drop_fraction),
        ] {
            if !(x.is_finite() && x > 0.0 && x < 1.0) {
                return Err(err(
                    f,
                    format!("soak.{f} = {x} must be a fraction between 0 and 1, e.g. 0.2"),
                ));
            }
        }
        if !(self.max_jitter.is_finite() && self.max_jitter >= 1.0) {
            return Err(err(
                "max_jitter",
                format!(
                    "soak.max_jitter = {} must be a ratio p99/p50 of at least 1, e.g. 3",
                    self.max_jitter
                ),
            ));
        }
        if !(self.max_temperature_rise_c.is_finite() && self.max_temperature_rise_c > 0.0) {
            return Err(err(
                "max_temperature_rise_c",
                format!(
                    "soak.max_temperature_rise_c = {} must be a positive number of °C, e.g. 15",
                    self.max_temperature_rise_c
                ),
            ));
        }
        for (f, x) in [
            ("fail_slow_windows", self.fail_slow_windows),
            ("baseline_windows", self.baseline_windows),
        ] {
            if !(1..=1000).contains(&x) {
                return Err(err(f, format!("soak.{f} = {x} must be between 1 and 1000")));
            }
        }
        if !(1..=4096).contains(&self.sdc_gemms) {
            return Err(err(
                "sdc_gemms",
                format!(
                    "soak.sdc_gemms = {} must be between 1 and 4096",
                    self.sdc_gemms
                ),
            ));
        }
        Ok(())
    }
}

/// What `mfubench soak` asks of the ranks (the worker's `--soak-*` flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakRun {
    /// How long the soak runs, seconds.
    pub duration_s: f64,
    /// Length of a window, seconds.
    pub window_s: f64,
    /// The modes each round runs, interleaved; empty: the config's
    /// `run.modes`.
    pub modes: Vec<Mode>,
}

impl SoakRun {
    /// Checks the duration and window; the error names the flag.
    pub fn check(&self) -> Result<(), String> {
        if !(self.window_s.is_finite() && self.window_s >= MIN_WINDOW_S) {
            return Err(format!(
                "--window {} s: a window must be at least {MIN_WINDOW_S} s, e.g. --window 1m",
                self.window_s
            ));
        }
        if !(self.duration_s.is_finite() && self.duration_s >= self.window_s) {
            return Err(format!(
                "--duration {} s is shorter than one window ({} s): give a longer --duration or a shorter --window",
                self.duration_s, self.window_s
            ));
        }
        Ok(())
    }

    /// Windows the soak closes when it runs its whole duration.
    pub fn windows(&self) -> u64 {
        (self.duration_s / self.window_s).floor().max(1.0) as u64
    }
}

/// One line of soak.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SoakLine {
    /// The first line: what was asked.
    Start(SoakStart),
    /// A closed window.
    Window(SoakWindow),
    /// The last line, when the soak ended at a window boundary.
    End(SoakEnd),
}

/// The first line of soak.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakStart {
    /// [`SOAK_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The run id.
    pub run_id: String,
    /// When the first window opened, RFC 3339 UTC.
    pub started_at: String,
    /// Ranks.
    pub world_size: u64,
    /// The backend that ran (`cpu` or `cuda`).
    pub backend: String,
    /// Whether the GPUs were simulated (the simulated GPU).
    pub simulated: bool,
    /// Duration, window and modes asked for.
    pub run: SoakRun,
    /// The rules' thresholds.
    pub thresholds: SoakThresholds,
    /// The peak the MFU column uses, TFLOP/s per device.
    pub peak_tflops: f64,
}

/// One closed window: every rank's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakWindow {
    /// 0-based window number.
    pub index: u32,
    /// When it opened, seconds since the first window opened (rank 0's
    /// clock).
    pub start_s: f64,
    /// When it closed, seconds since the first window opened.
    pub end_s: f64,
    /// Rounds run in the window (a round: one step of every mode).
    pub rounds: u64,
    /// Every rank's figures, in rank order.
    pub ranks: Vec<RankWindow>,
}

/// One rank's figures over one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RankWindow {
    /// MPI rank.
    pub rank: u64,
    /// Host name.
    pub host: String,
    /// Device, e.g. `cpu` or `GPU 3`.
    pub device: String,
    /// Device model.
    #[serde(default)]
    pub device_name: String,
    /// GPU serial, where NVML reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Timed steps in the window (every mode).
    pub steps: u64,
    /// GEMM rate: model FLOPs of a step / the median of the steps' compute
    /// busy time, TFLOP/s (the first mode with GEMMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tflops: Option<f64>,
    /// Median step time of the first mode, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_p50_s: Option<f64>,
    /// 99th percentile of the step time of the first mode, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_p99_s: Option<f64>,
    /// Bus bandwidth of the step's largest kind of collective (bytes per
    /// step / median busy time × the kind's factor), GB/s; modes with
    /// collectives only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busbw_gbps: Option<f64>,
    /// The collective `busbw_gbps` measures (`all_reduce/dp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busbw_of: Option<String>,
    /// Wrong elements in the window's checked steps.
    pub wrong: u64,
    /// Readings at the window's close.
    pub telemetry: WindowTelemetry,
    /// Silent-data-corruption checks of the window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sdc: Vec<SdcSample>,
}

/// Device and host readings at a window's close; absent where the
/// device or host does not expose them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowTelemetry {
    /// GPU SM clock, MHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm_clock_mhz: Option<f64>,
    /// GPU memory clock, MHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_clock_mhz: Option<f64>,
    /// GPU temperature, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
    /// GPU power draw, W.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    /// Active GPU throttle reasons (NVML's names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_reasons: Vec<String>,
    /// Volatile uncorrected ECC errors so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_uncorrected: Option<u64>,
    /// XID codes NVML delivered during the window (0: unknown code).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xids: Vec<u64>,
    /// Whether XIDs were watched on this GPU (false: the driver cannot
    /// report them, or there is no GPU).
    #[serde(default)]
    pub xid_watched: bool,
    /// Mean CPU clock of the host, MHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_mhz: Option<f64>,
    /// Highest thermal-zone temperature of the host, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_temp_c: Option<f64>,
    /// 1-minute load average of the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load1: Option<f64>,
}

impl WindowTelemetry {
    /// The device clock the drift rule follows: the SM clock, else the CPU
    /// clock.
    pub fn clock_mhz(&self) -> Option<f64> {
        self.sm_clock_mhz.or(self.cpu_mhz)
    }

    /// The temperature the drift rule follows: the GPU's, else the host's.
    pub fn temp_c(&self) -> Option<f64> {
        self.temperature_c.or(self.cpu_temp_c)
    }
}

/// One silent-data-corruption check on one rank.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SdcSample {
    /// The round after which it ran (the same on every rank).
    pub round: u64,
    /// FNV-1a digest of the outputs' bits, hex.
    pub digest: String,
    /// Largest ‖C − C_ref‖/‖C_ref‖ over its GEMMs against the f64
    /// reference.
    pub ref_rel_error: f64,
    /// The limit of `ref_rel_error` for the dtype.
    pub ref_tolerance: f64,
}

/// The last line of soak.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakEnd {
    /// Why it ended: `duration`, `stopped` (Ctrl-C, SIGTERM or the
    /// launcher's timeout asked it to), `signal` (a rank got SIGTERM).
    pub reason: String,
    /// Windows closed.
    pub windows: u32,
    /// When it ended, RFC 3339 UTC.
    pub finished_at: String,
}

/// soak.jsonl read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SoakLog {
    /// The start line.
    pub start: Option<SoakStart>,
    /// The windows, in order.
    pub windows: Vec<SoakWindow>,
    /// The end line; None: the soak was killed (INCOMPLETE).
    pub end: Option<SoakEnd>,
    /// Lines that could not be read (a line cut by a kill), 1-based.
    pub unreadable: Vec<usize>,
}

impl SoakLog {
    /// Whether the soak ended at a window boundary (an `end` line).
    pub fn complete(&self) -> bool {
        self.end.is_some()
    }
}

/// Reads soak.jsonl text; lines that do not parse are listed in
/// `unreadable`, never fatal.
pub fn parse_log(text: &str) -> SoakLog {
    let mut log = SoakLog::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<SoakLine>(line) {
            Ok(SoakLine::Start(s)) => log.start = Some(s),
            Ok(SoakLine::Window(w)) => log.windows.push(w),
            Ok(SoakLine::End(e)) => log.end = Some(e),
            Err(_) => log.unreadable.push(i + 1),
        }
    }
    log
}

/// FNV-1a over bytes: the SDC digest (stable across machines and builds).
pub fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// FNV-1a's offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Per-rank figures of one window from its steps: (GEMM TFLOP/s, step p50,
/// step p99). `flops`: model FLOPs of one step; `gemm_busy_s`: per step,
/// the compute stream's busy time; `step_s`: step times.
pub fn step_figures(
    flops: f64,
    step_s: &[f64],
    gemm_busy_s: &[f64],
) -> (Option<f64>, Option<f64>, Option<f64>) {
    let busy = crate::stats::median(gemm_busy_s).filter(|b| *b > 0.0);
    (
        busy.filter(|_| flops > 0.0)
            .map(|b| crate::metrics::tflops(flops, b)),
        crate::stats::median(step_s),
        crate::stats::percentile(step_s, 99.0),
    )
}

/// A rank's window figures from its mode records: the GEMM rate and step
/// p50/p99 of the first of `modes` that has GEMMs, and the bus bandwidth of
/// the plan's largest kind of collective in the first of `modes` that
/// runs it (busy time per step: from the last arrival). Identity,
/// telemetry, SDC and wrong elements are the caller's.
pub fn rank_window_figures(
    plan: &crate::plan::StepPlan,
    modes: &[Mode],
    records: &BTreeMap<Mode, crate::result::ModeRecord>,
) -> RankWindow {
    let mut out = RankWindow {
        steps: records.values().map(|m| m.step_time_s.len() as u64).sum(),
        ..Default::default()
    };
    if let Some(m) = modes
        .iter()
        .filter(|m| m.has_compute())
        .find_map(|m| records.get(m))
    {
        let (r, p50, p99) = step_figures(plan.model_flops(), &m.step_time_s, &m.gemm_busy_s);
        (out.tflops, out.step_p50_s, out.step_p99_s) = (r, p50, p99);
    } else if let Some(m) = modes.iter().find_map(|m| records.get(m)) {
        out.step_p50_s = crate::stats::median(&m.step_time_s);
        out.step_p99_s = crate::stats::percentile(&m.step_time_s, 99.0);
    }
    let infos = crate::result::CollectiveInfo::of(plan);
    if let Some(info) = infos.iter().max_by_key(|i| i.bytes) {
        let key = info.key();
        let busy = modes
            .iter()
            .filter(|m| m.has_comm())
            .find_map(|m| records.get(m)?.collective_busy_s.get(&key));
        if let Some(t) = busy
            .and_then(|b| crate::stats::median(b))
            .filter(|t| *t > 0.0)
        {
            out.busbw_gbps = Some(
                crate::metrics::algbw_gbps(info.bytes as f64, t)
                    * crate::metrics::busbw_factor(info.kind, info.group_size),
            );
            out.busbw_of = Some(key);
        }
    }
    out
}

/// One SDC check from the device's outputs: the digest of every output's
/// bits (FNV-1a over each value's f64 bits, outputs in order) and the
/// largest relative error against the f64 `reference`.
pub fn sdc_sample(
    round: u64,
    outputs: &[Vec<f64>],
    reference: &[f64],
    tolerance: f64,
) -> SdcSample {
    let mut h = FNV_OFFSET;
    let norm = reference.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut worst: f64 = 0.0;
    for o in outputs {
        for x in o {
            h = fnv1a(&x.to_bits().to_le_bytes(), h);
        }
        let diff = o
            .iter()
            .zip(reference)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        let e = if o.len() == reference.len() && norm > 0.0 {
            diff / norm
        } else {
            f64::INFINITY
        };
        // NaN (an output of NaN) stays NaN: it never passes.
        worst = if e.is_nan() || worst.is_nan() {
            f64::NAN
        } else {
            worst.max(e)
        };
    }
    SdcSample {
        round,
        digest: format!("{h:016x}"),
        ref_rel_error: worst,
        ref_tolerance: tolerance,
    }
}

/// The inputs of every SDC check: `n` values from `seed` (xorshift64*),
/// in [-1, -1/64] ∪ [1/64, 1], the same on every rank and machine.
pub fn sdc_inputs(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let x = (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
            let v = x * 2.0 - 1.0;
            if v.abs() >= 1.0 / 64.0 {
                v
            } else {
                (1.0 / 64.0f64).copysign(v)
            }
        })
        .collect()
}

/// Row-major `m×k · k×n` in f64: the SDC reference.
pub fn reference_gemm(a: &[f64], b: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p];
            for j in 0..n {
                c[i * n + j] += x * b[p * n + j];
            }
        }
    }
    c
}

/// One rule's finding about one rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakFinding {
    /// The rule (`fail_slow`, `sdc`, …).
    pub rule: String,
    /// The rank named.
    pub rank: u64,
    /// Its host.
    pub host: String,
    /// Its device (`GPU 1`, `cpu`).
    pub device: String,
    /// The GPU's serial, where NVML reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The window where the finding starts.
    pub window: u32,
    /// When that window opened, seconds since the soak's start.
    pub at_s: f64,
    /// What was seen, one line.
    pub detail: String,
}

/// Every rule's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakVerdict {
    /// Per rule (in [`RULES`] order): PASS, FAIL, or SKIPPED with why.
    pub rules: Vec<(String, Status, String)>,
    /// Every finding, by window then rank.
    pub findings: Vec<SoakFinding>,
    /// PASS or FAIL over the judged rules; INCOMPLETE when the soak did
    /// not run its duration (no end line: killed; an end line of a stop or
    /// a signal: ended early) or closed no window. Its FAIL lines still
    /// fail.
    pub overall: Status,
}

/// The rules, in the order they are printed.
pub const RULES: &[&str] = &[
    "fail_slow",
    "thermal_drift",
    "clocks_throttled",
    "jitter",
    "sdc",
    "collective_check",
    "xid",
    "ecc",
];

/// Per rank, its windows in order: (window, figures).
fn by_rank(log: &SoakLog) -> BTreeMap<u64, Vec<(&SoakWindow, &RankWindow)>> {
    let mut out: BTreeMap<u64, Vec<(&SoakWindow, &RankWindow)>> = BTreeMap::new();
    for w in &log.windows {
        for r in &w.ranks {
            out.entry(r.rank).or_default().push((w, r));
        }
    }
    out
}

fn finding(rule: &str, w: &SoakWindow, r: &RankWindow, detail: String) -> SoakFinding {
    SoakFinding {
        rule: rule.into(),
        rank: r.rank,
        host: r.host.clone(),
        device: r.device.clone(),
        serial: r.serial.clone(),
        window: w.index,
        at_s: w.start_s,
        detail,
    }
}

/// The median of the first `n` values that are present.
fn baseline(values: impl Iterator<Item = Option<f64>>, n: usize) -> Option<f64> {
    let v: Vec<f64> = values.flatten().take(n).collect();
    if v.len() < n {
        return None;
    }
    crate::stats::median(&v)
}

/// Judges every rule on `log` with `t` ([`SoakVerdict`]).
pub fn judge(log: &SoakLog, t: &SoakThresholds) -> SoakVerdict {
    let ranks = by_rank(log);
    let mut findings = Vec::new();
    let mut rules: Vec<(String, Status, String)> = Vec::new();
    let mut rule = |name: &str, applies: Option<String>, found: Vec<SoakFinding>| {
        let status = match (&applies, found.is_empty()) {
            (Some(_), _) => Status::Skipped,
            (None, true) => Status::Pass,
            (None, false) => Status::Fail,
        };
        rules.push((name.into(), status, applies.unwrap_or_default()));
        findings.extend(found);
    };
    let base_n = t.baseline_windows as usize;

    // fail_slow: own baseline, or the fleet's median of the window.
    let fleet: BTreeMap<u32, f64> = log
        .windows
        .iter()
        .filter_map(|w| {
            let v: Vec<f64> = w.ranks.iter().filter_map(|r| r.tflops).collect();
            Some((w.index, crate::stats::median(&v)?))
        })
        .collect();
    let mut found = Vec::new();
    for series in ranks.values() {
        let own = baseline(series.iter().map(|(_, r)| r.tflops), base_n);
        let mut run: Vec<(&SoakWindow, &RankWindow, f64, f64)> = Vec::new();
        for (w, r) in series {
            let Some(rate) = r.tflops else {
                run.clear();
                continue;
            };
            let limit_own = own.map(|b| b * (1.0 - t.fail_slow_fraction));
            let limit_fleet = fleet
                .get(&w.index)
                .map(|m| m * (1.0 - t.fail_slow_fraction));
            let slow_own = w.index as usize >= base_n && limit_own.is_some_and(|l| rate < l);
            let slow_fleet = limit_fleet.is_some_and(|l| rate < l);
            if slow_own || slow_fleet {
                let against = if slow_own {
                    own.unwrap_or(0.0)
                } else {
                    fleet[&w.index]
                };
                run.push((w, r, rate, against));
                if run.len() == t.fail_slow_windows as usize {
                    let (w0, r0, rate0, base0) = run[0];
                    let by = if slow_own {
                        "its own first windows"
                    } else {
                        "the fleet's median"
                    };
                    found.push(finding(
                        "fail_slow",
                        w0,
                        r0,
                        format!(
                            "GEMM rate {rate0:.3} TFLOP/s, {:.0} % below {by} ({base0:.3}), for {} windows from window {} (t = {:.0} s)",
                            (1.0 - rate0 / base0) * 100.0,
                            t.fail_slow_windows,
                            w0.index,
                            w0.start_s
                        ),
                    ));
                }
            } else {
                run.clear();
            }
        }
    }
    let any_rate = ranks.values().flatten().any(|(_, r)| r.tflops.is_some());
    rule(
        "fail_slow",
        (!any_rate).then(|| "no window measured a GEMM rate".to_string()),
        found,
    );

    // thermal_drift: temperature up, clock down, against the baseline.
    let mut found = Vec::new();
    let mut any = false;
    for series in ranks.values() {
        let t0 = baseline(series.iter().map(|(_, r)| r.telemetry.temp_c()), base_n);
        let c0 = baseline(series.iter().map(|(_, r)| r.telemetry.clock_mhz()), base_n);
        any |= t0.is_some() || c0.is_some();
        for (w, r) in series.iter().skip(base_n) {
            let hot = match (t0, r.telemetry.temp_c()) {
                (Some(a), Some(b)) if b - a > t.max_temperature_rise_c => Some(format!(
                    "temperature {b:.0} °C, {:.0} °C above its first windows ({a:.0} °C)",
                    b - a
                )),
                _ => None,
            };
            let slow = match (c0, r.telemetry.clock_mhz()) {
                (Some(a), Some(b)) if a > 0.0 && 1.0 - b / a > t.max_clock_drop_fraction => {
                    Some(format!(
                        "clock {b:.0} MHz, {:.0} % below its first windows ({a:.0} MHz)",
                        (1.0 - b / a) * 100.0
                    ))
                }
                _ => None,
            };
            if let Some(d) = hot.or(slow) {
                found.push(finding("thermal_drift", w, r, d));
                break;
            }
        }
    }
    rule(
        "thermal_drift",
        (!any).then(|| format!("no clock or temperature readings over {base_n} baseline windows")),
        found,
    );

    // clocks_throttled: hard throttle reasons, per GPU, first window.
    let mut found = Vec::new();
    let gpu = ranks
        .values()
        .flatten()
        .any(|(_, r)| r.telemetry.sm_clock_mhz.is_some());
    for series in ranks.values() {
        if let Some((w, r, hard)) = series.iter().find_map(|(w, r)| {
            let hard: Vec<&str> = r
                .telemetry
                .throttle_reasons
                .iter()
                .map(String::as_str)
                .filter(|x| HARD_THROTTLE.contains(x))
                .collect();
            (!hard.is_empty()).then_some((w, r, hard))
        }) {
            let n = series
                .iter()
                .filter(|(_, r)| {
                    r.telemetry
                        .throttle_reasons
                        .iter()
                        .any(|x| HARD_THROTTLE.contains(&x.as_str()))
                })
                .count();
            found.push(finding(
                "clocks_throttled",
                w,
                r,
                format!(
                    "throttled ({}) at {} MHz, in {n} of {} windows",
                    hard.join(", "),
                    r.telemetry.sm_clock_mhz.unwrap_or(0.0),
                    series.len()
                ),
            ));
        }
    }
    rule(
        "clocks_throttled",
        (!gpu).then(|| "no GPU clock readings (CPU backend or no NVML)".to_string()),
        found,
    );

    // jitter: p99/p50 per window.
    let mut found = Vec::new();
    for series in ranks.values() {
        let bad: Vec<_> = series
            .iter()
            .filter_map(|(w, r)| {
                let j = r.step_p99_s? / r.step_p50_s.filter(|p| *p > 0.0)?;
                (j > t.max_jitter).then_some((w, r, j))
            })
            .collect();
        if let Some((w, r, j)) = bad.first() {
            found.push(finding(
                "jitter",
                w,
                r,
                format!(
                    "step p99/p50 {j:.2} > {} in {} of {} windows",
                    t.max_jitter,
                    bad.len(),
                    series.len()
                ),
            ));
        }
    }
    rule("jitter", None, found);

    // sdc: digests across ranks of one device model, and the reference.
    let mut found = Vec::new();
    let mut any = false;
    for w in &log.windows {
        let mut models: BTreeMap<&str, Vec<&RankWindow>> = BTreeMap::new();
        for r in &w.ranks {
            models.entry(r.device_name.as_str()).or_default().push(r);
        }
        let mut named: Vec<u64> = Vec::new();
        for r in &w.ranks {
            for s in &r.sdc {
                any = true;
                // NaN never passes.
                let passed = s
                    .ref_rel_error
                    .partial_cmp(&s.ref_tolerance)
                    .is_some_and(|o| o != std::cmp::Ordering::Greater);
                if !passed && !named.contains(&r.rank) {
                    named.push(r.rank);
                    found.push(finding(
                        "sdc",
                        w,
                        r,
                        format!(
                            "round {}: GEMM result {:.2e} from the f64 reference (limit {:.0e})",
                            s.round, s.ref_rel_error, s.ref_tolerance
                        ),
                    ));
                }
            }
        }
        for group in models.values() {
            let rounds: std::collections::BTreeSet<u64> = group
                .iter()
                .flat_map(|r| r.sdc.iter().map(|s| s.round))
                .collect();
            for round in rounds {
                let mut votes: BTreeMap<&str, Vec<&RankWindow>> = BTreeMap::new();
                for r in group {
                    if let Some(s) = r.sdc.iter().find(|s| s.round == round) {
                        votes.entry(s.digest.as_str()).or_default().push(r);
                    }
                }
                if votes.len() < 2 {
                    continue;
                }
                let settled = group.iter().any(|r| named.contains(&r.rank));
                let top = votes.values().map(Vec::len).max().unwrap_or(0);
                let leaders = votes.values().filter(|v| v.len() == top).count();
                for (digest, rs) in &votes {
                    // Outside a strict majority; a tie names every side.
                    if rs.len() == top && leaders == 1 {
                        continue;
                    }
                    // A tie the f64 reference has settled names no one more.
                    if leaders > 1 && settled {
                        continue;
                    }
                    for r in rs {
                        if named.contains(&r.rank) {
                            continue;
                        }
                        named.push(r.rank);
                        found.push(finding(
                            "sdc",
                            w,
                            r,
                            format!(
                                "round {round}: digest {digest} differs from {} of {} ranks of the same device ({})",
                                group.len() - rs.len(),
                                group.len(),
                                if leaders == 1 { "majority" } else { "no majority: every side named" }
                            ),
                        ));
                    }
                }
            }
        }
    }
    rule(
        "sdc",
        (!any).then(|| "no digest check ran".to_string()),
        found,
    );

    // collective_check.
    let mut found = Vec::new();
    for series in ranks.values() {
        if let Some((w, r)) = series.iter().find(|(_, r)| r.wrong > 0) {
            let total: u64 = series.iter().map(|(_, r)| r.wrong).sum();
            found.push(finding(
                "collective_check",
                w,
                r,
                format!("{total} wrong collective element(s), the first in this window"),
            ));
        }
    }
    rule("collective_check", None, found);

    // xid.
    let mut found = Vec::new();
    let watched = ranks
        .values()
        .flatten()
        .any(|(_, r)| r.telemetry.xid_watched);
    for series in ranks.values() {
        if let Some((w, r)) = series.iter().find(|(_, r)| !r.telemetry.xids.is_empty()) {
            found.push(finding(
                "xid",
                w,
                r,
                format!(
                    "XID {}",
                    r.telemetry
                        .xids
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    rule(
        "xid",
        (!watched && found.is_empty())
            .then(|| "XIDs not watched (no GPU, or the driver cannot report them)".to_string()),
        found,
    );

    // ecc: uncorrected errors grown since the first window (or present).
    let mut found = Vec::new();
    let mut any = false;
    for series in ranks.values() {
        let first = series.iter().find_map(|(_, r)| r.telemetry.ecc_uncorrected);
        any |= first.is_some();
        if let Some((w, r, n)) = series.iter().find_map(|(w, r)| {
            let n = r.telemetry.ecc_uncorrected?;
            (n > 0).then_some((w, r, n))
        }) {
            found.push(finding(
                "ecc",
                w,
                r,
                format!(
                    "{n} volatile uncorrected ECC error(s){}",
                    if first == Some(n) && w.index == 0 {
                        " from the first window"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    rule(
        "ecc",
        (!any)
            .then(|| "no ECC counters (CPU backend, or the GPU does not report them)".to_string()),
        found,
    );

    findings.sort_by(|a, b| (a.window, a.rank, &a.rule).cmp(&(b.window, b.rank, &b.rule)));
    let judged: Vec<Status> = rules
        .iter()
        .map(|(_, s, _)| *s)
        .filter(|s| *s != Status::Skipped)
        .collect();
    let ended_early = log.end.as_ref().is_some_and(|e| e.reason != "duration");
    let overall = if !log.complete() || ended_early || log.windows.is_empty() {
        Status::Incomplete
    } else {
        crate::verdict::overall(judged, true)
    };
    SoakVerdict {
        rules,
        findings,
        overall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(rank: u64, tflops: f64) -> RankWindow {
        RankWindow {
            rank,
            host: format!("h{}", rank / 2),
            device: "cpu".into(),
            device_name: "Xeon".into(),
            steps: 10,
            tflops: Some(tflops),
            step_p50_s: Some(0.1),
            step_p99_s: Some(0.12),
            ..Default::default()
        }
    }

    /// `rates[w][r]`: rank r's rate in window w, 10 s windows.
    fn log(rates: &[&[f64]]) -> SoakLog {
        SoakLog {
            start: None,
            windows: rates
                .iter()
                .enumerate()
                .map(|(i, rs)| SoakWindow {
                    index: i as u32,
                    start_s: i as f64 * 10.0,
                    end_s: (i + 1) as f64 * 10.0,
                    rounds: 10,
                    ranks: rs
                        .iter()
                        .enumerate()
                        .map(|(r, x)| rank(r as u64, *x))
                        .collect(),
                })
                .collect(),
            end: Some(SoakEnd {
                reason: "duration".into(),
                windows: rates.len() as u32,
                finished_at: String::new(),
            }),
            unreadable: vec![],
        }
    }

    fn status(v: &SoakVerdict, rule: &str) -> Status {
        v.rules.iter().find(|(n, _, _)| n == rule).unwrap().1
    }

    #[test]
    fn a_quiet_soak_passes_and_gpu_rules_are_not_judged_on_cpu() {
        let l = log(&[&[1.0, 1.0], &[1.02, 0.99], &[0.98, 1.01], &[1.0, 1.0]]);
        let v = judge(&l, &SoakThresholds::default());
        assert!(v.findings.is_empty(), "{:?}", v.findings);
        assert_eq!(status(&v, "fail_slow"), Status::Pass);
        assert_eq!(status(&v, "jitter"), Status::Pass);
        for r in ["clocks_throttled", "xid", "ecc", "sdc", "thermal_drift"] {
            assert_eq!(status(&v, r), Status::Skipped, "{r}");
        }
        assert_eq!(v.overall, Status::Pass);
        // Killed: no end line.
        let mut k = l.clone();
        k.end = None;
        assert_eq!(
            judge(&k, &SoakThresholds::default()).overall,
            Status::Incomplete
        );
    }

    #[test]
    fn fail_slow_names_the_rank_and_the_window_it_started() {
        // Rank 1 halves from window 3 on; rank 0 is steady.
        let l = log(&[
            &[1.0, 1.0],
            &[1.0, 1.0],
            &[1.0, 1.0],
            &[1.0, 0.5],
            &[1.0, 0.5],
            &[1.0, 0.5],
        ]);
        let v = judge(&l, &SoakThresholds::default());
        assert_eq!(v.findings.len(), 1, "{:?}", v.findings);
        let f = &v.findings[0];
        assert_eq!(
            (f.rule.as_str(), f.rank, f.window, f.at_s),
            ("fail_slow", 1, 3, 30.0)
        );
        assert!(
            f.detail
                .contains("50 % below its own first windows (1.000)"),
            "{}",
            f.detail
        );
        assert_eq!(v.overall, Status::Fail);
        // One slow window is not enough with fail_slow_windows = 2.
        let l = log(&[&[1.0, 1.0], &[1.0, 1.0], &[1.0, 0.5], &[1.0, 1.0]]);
        assert!(judge(&l, &SoakThresholds::default()).findings.is_empty());
        // Slow from the start: against the fleet's median (4 ranks).
        let l = log(&[&[1.0, 1.0, 1.0, 0.5], &[1.0, 1.0, 1.0, 0.5]]);
        let v = judge(&l, &SoakThresholds::default());
        assert_eq!(v.findings[0].rank, 3);
        assert!(v.findings[0].detail.contains("the fleet's median"));
    }

    #[test]
    fn sdc_names_the_rank_outside_the_majority_or_beyond_the_reference() {
        let mut l = log(&[&[1.0, 1.0, 1.0], &[1.0, 1.0, 1.0]]);
        let ok = |round| SdcSample {
            round,
            digest: "aa".into(),
            ref_rel_error: 1e-6,
            ref_tolerance: 1e-3,
        };
        for w in &mut l.windows {
            for r in &mut w.ranks {
                r.sdc = vec![ok(w.index as u64 * 10)];
            }
        }
        assert_eq!(
            status(&judge(&l, &SoakThresholds::default()), "sdc"),
            Status::Pass
        );
        l.windows[1].ranks[2].sdc[0].digest = "bb".into();
        let v = judge(&l, &SoakThresholds::default());
        assert_eq!(v.findings.len(), 1);
        assert_eq!((v.findings[0].rank, v.findings[0].window), (2, 1));
        assert!(v.findings[0].detail.contains("differs from 2 of 3"));
        // Two ranks: no majority, but the reference tells which.
        let mut l = log(&[&[1.0, 1.0]]);
        l.windows[0].ranks[0].sdc = vec![ok(0)];
        l.windows[0].ranks[1].sdc = vec![SdcSample {
            digest: "bb".into(),
            ref_rel_error: 0.5,
            ..ok(0)
        }];
        let v = judge(&l, &SoakThresholds::default());
        assert_eq!(v.findings.len(), 1, "{:?}", v.findings);
        assert_eq!(v.findings[0].rank, 1);
        assert!(v.findings[0].detail.contains("f64 reference"));
        // A NaN error never passes.
        l.windows[0].ranks[1].sdc[0].ref_rel_error = f64::NAN;
        assert_eq!(judge(&l, &SoakThresholds::default()).findings[0].rank, 1);
    }

    #[test]
    fn throttle_drift_jitter_xid_ecc_and_wrong_elements() {
        let mut l = log(&[&[1.0, 1.0], &[1.0, 1.0], &[1.0, 1.0], &[1.0, 1.0]]);
        for w in &mut l.windows {
            for r in &mut w.ranks {
                r.telemetry.sm_clock_mhz = Some(1980.0);
                r.telemetry.temperature_c = Some(60.0);
                r.telemetry.ecc_uncorrected = Some(0);
                r.telemetry.xid_watched = true;
                r.telemetry.throttle_reasons = vec!["sw_power_cap".into()];
            }
        }
        let v = judge(&l, &SoakThresholds::default());
        assert!(v.findings.is_empty(), "{:?}", v.findings);
        assert_eq!(v.overall, Status::Pass);
        fn r1(l: &mut SoakLog, w: usize) -> &mut RankWindow {
            &mut l.windows[w].ranks[1]
        }
        r1(&mut l, 2).telemetry.throttle_reasons = vec!["hw_thermal_slowdown".into()];
        r1(&mut l, 3).telemetry.temperature_c = Some(80.0);
        r1(&mut l, 1).step_p99_s = Some(0.5);
        r1(&mut l, 3).telemetry.xids = vec![79];
        r1(&mut l, 2).telemetry.ecc_uncorrected = Some(3);
        r1(&mut l, 0).wrong = 4;
        let v = judge(&l, &SoakThresholds::default());
        let got: Vec<(&str, u64, u32)> = v
            .findings
            .iter()
            .map(|f| (f.rule.as_str(), f.rank, f.window))
            .collect();
        assert_eq!(
            got,
            vec![
                ("collective_check", 1, 0),
                ("jitter", 1, 1),
                ("clocks_throttled", 1, 2),
                ("ecc", 1, 2),
                ("thermal_drift", 1, 3),
                ("xid", 1, 3),
            ]
        );
        assert!(v.findings[1].detail.contains("p99/p50 5.00 > 3"));
        assert!(v.findings[4].detail.contains("20 °C above"));
        // A clock drop alone is drift too.
        let mut l2 = log(&[&[1.0], &[1.0], &[1.0]]);
        for (i, w) in l2.windows.iter_mut().enumerate() {
            w.ranks[0].telemetry.cpu_mhz = Some(if i == 2 { 2000.0 } else { 3000.0 });
        }
        let v = judge(&l2, &SoakThresholds::default());
        assert!(
            v.findings[0].detail.contains("33 % below"),
            "{:?}",
            v.findings
        );
    }

    #[test]
    fn lines_round_trip_and_a_cut_line_is_dropped() {
        let l = log(&[&[1.0, 2.0]]);
        let mut text = String::new();
        for w in &l.windows {
            text += &serde_json::to_string(&SoakLine::Window(w.clone())).unwrap();
            text += "\n";
        }
        let full = text.clone();
        text += &full[..full.len() / 2];
        let back = parse_log(&text);
        assert_eq!(back.windows, l.windows);
        assert_eq!(back.unreadable, vec![2]);
        assert!(!back.complete());
    }

    #[test]
    fn sdc_sample_known_answers() {
        let r = vec![3.0, 4.0];
        let ok = sdc_sample(7, &[vec![3.0, 4.0], vec![3.0, 4.0]], &r, 1e-6);
        assert_eq!(ok.ref_rel_error, 0.0);
        // ‖(0, 0.5)‖ / ‖(3, 4)‖ = 0.1.
        let bad = sdc_sample(7, &[vec![3.0, 4.0], vec![3.0, 4.5]], &r, 1e-6);
        assert!((bad.ref_rel_error - 0.1).abs() < 1e-12);
        assert_ne!(ok.digest, bad.digest);
        assert_eq!(
            ok.digest,
            sdc_sample(9, &[vec![3.0, 4.0], vec![3.0, 4.0]], &r, 1.0).digest
        );
        let nan = sdc_sample(1, &[vec![f64::NAN, 4.0], vec![3.0, 4.0]], &r, 1e-6);
        assert!(nan.ref_rel_error.is_nan());
        assert_eq!(
            reference_gemm(&[1.0, 2.0], &[3.0, 4.0], 1, 1, 2),
            vec![11.0]
        );
        let x = sdc_inputs(5, 1000);
        assert_eq!(x, sdc_inputs(5, 1000));
        assert!(x.iter().all(|v| v.abs() >= 1.0 / 64.0 && v.abs() <= 1.0));
    }

    #[test]
    fn figures_and_settings_known_answers() {
        // 2 TFLOP per step, compute busy 1 s median: 2 TFLOP/s.
        let (r, p50, p99) = step_figures(2e12, &[1.0, 2.0, 3.0], &[0.5, 1.0, 4.0]);
        assert_eq!(r, Some(2.0));
        assert_eq!(p50, Some(2.0));
        assert!(p99.unwrap() > 2.9);
        assert_eq!(step_figures(2e12, &[], &[]), (None, None, None));
        assert_eq!(fnv1a(b"a", FNV_OFFSET), 0xaf63dc4c8601ec8c);
        let run = SoakRun {
            duration_s: 120.0,
            window_s: 10.0,
            modes: vec![],
        };
        assert_eq!(run.windows(), 12);
        assert!(run.check().is_ok());
        assert!(SoakRun {
            window_s: 0.5,
            ..run.clone()
        }
        .check()
        .unwrap_err()
        .contains("--window"));
        assert!(SoakRun {
            duration_s: 5.0,
            ..run
        }
        .check()
        .unwrap_err()
        .contains("--duration"));
        let t = SoakThresholds {
            fail_slow_fraction: 1.5,
            ..Default::default()
        };
        assert!(t
            .validate("c.toml")
            .unwrap_err()
            .to_string()
            .contains("soak.fail_slow_fraction"));
        assert!(SoakThresholds::default().validate("c.toml").is_ok());
    }
}

//! `mfubench compare BASELINE NEW`: the headline figures side by side with
//! direction-aware deltas, and a regression verdict.
//!
//! Judged figures (those that can fail the comparison) are ratios of
//! like-for-like rates and times: step times, TFLOP/s, MFU, bandwidths and
//! the overlap speedup, plus any rise of the wrong-element count. Figures
//! that are differences near zero (exposed communication, hidden fraction)
//! are shown with their change in percentage points but not judged: a
//! relative change of a number near zero says nothing — unless a baseline
//! file gives them a tolerance in percentage points.
//!
//! A **baseline file** (`mfubench compare --baseline FILE NEW`) is a TOML
//! file committed next to the reference run: `run = "PATH"` (the reference
//! run.json or run directory, relative to the file) and a `[tolerances]`
//! table of figure name → `"5%"` (relative) or `"2pp"` (percentage points),
//! with `default` for the judged figures not listed. See [`BaselineFile`].
//!
//! Runs that differ only in iteration counts, warmup or the watchdog
//! timeout measured the same thing and are compared without `--force`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mfubench_core::config::Mode;
use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use crate::acceptance::analyze;
use crate::analysis::Report;
use crate::error::ReportError;
use crate::fmt as f;
use crate::read::{read_run, LoadedRun};
use mfubench_core::metrics;
use mfubench_core::result::{round_series_of_nodes, RunRecord};
use mfubench_core::stats;

/// Options of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// Largest tolerated worsening of a judged figure, as a fraction (0.05 = 5 %).
    pub max_regression: f64,
    /// Compare even when the configurations differ.
    pub force: bool,
    /// Per-figure tolerances (figure name as in the table, e.g.
    /// `overlapped MFU`), replacing `max_regression` for that figure; a
    /// figure in percentage points is judged only when it has one.
    pub tolerances: BTreeMap<String, Tolerance>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            max_regression: 0.05,
            force: false,
            tolerances: BTreeMap::new(),
        }
    }
}

/// How far a figure may worsen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tolerance {
    /// A fraction of the baseline value (`"5%"` = 0.05).
    Relative(f64),
    /// Percentage points of a fraction (`"2pp"` = 0.02).
    Points(f64),
}

impl Tolerance {
    /// Parses `"5%"` or `"2pp"` (spaces allowed, non-negative, finite).
    pub fn parse(text: &str) -> Result<Tolerance, String> {
        let t = text.trim();
        let (num, points) = if let Some(n) = t.strip_suffix("pp") {
            (n.trim(), true)
        } else if let Some(n) = t.strip_suffix('%') {
            (n.trim(), false)
        } else {
            return Err(format!(
                "{text:?}: give a percentage (\"5%\") or percentage points (\"2pp\")"
            ));
        };
        let v: f64 = num
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{text:?}: {num:?} is not a non-negative number"))?;
        Ok(if points {
            Tolerance::Points(v / 100.0)
        } else {
            Tolerance::Relative(v / 100.0)
        })
    }

    fn show(self) -> String {
        match self {
            Tolerance::Relative(x) => f::pct(x),
            Tolerance::Points(x) => format!("{:.1} pp", x * 100.0),
        }
    }
}

/// A committed baseline: the reference run and per-figure tolerances.
///
/// ```toml
/// run = "h100x16-reference/run.json"   # relative to this file
/// [tolerances]
/// default = "5%"                       # judged figures not listed below
/// "overlapped MFU" = "3%"
/// "all-reduce busbw" = "10%"
/// "exposed communication" = "2pp"      # now judged, in percentage points
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineFile {
    /// The reference run (resolved against the file's folder).
    pub run: PathBuf,
    /// `default`, if given.
    pub default: Option<Tolerance>,
    /// Every other tolerance, by figure name.
    pub tolerances: BTreeMap<String, Tolerance>,
}

impl BaselineFile {
    /// Reads and checks a baseline file.
    pub fn read(path: &Path) -> Result<BaselineFile, ReportError> {
        let bad = |message: String| ReportError::BadOption {
            option: format!("--baseline {}", path.display()),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let mut run = None;
        let mut tolerances = BTreeMap::new();
        let mut default = None;
        for (k, v) in &table {
            match (k.as_str(), v) {
                ("run", toml::Value::String(r)) => run = Some(r.clone()),
                ("tolerances", toml::Value::Table(t)) => {
                    for (name, v) in t {
                        let tol = match v {
                            toml::Value::String(s) => Tolerance::parse(s),
                            _ => Err("give a string such as \"5%\" or \"2pp\"".to_string()),
                        }
                        .map_err(|e| bad(format!("tolerances.{name:?}: {e}")))?;
                        if name == "default" {
                            default = Some(tol);
                        } else {
                            tolerances.insert(name.clone(), tol);
                        }
                    }
                }
                _ => {
                    return Err(bad(format!(
                        "unknown or mistyped key {k:?}: a baseline file has `run = \"PATH\"` and a [tolerances] table"
                    )))
                }
            }
        }
        let run =
            run.ok_or_else(|| bad("no `run = \"PATH\"`: name the reference run.json".into()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(BaselineFile {
            run: dir.join(run),
            default,
            tolerances,
        })
    }
}

/// Which direction of change is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Lower is better (times).
    Lower,
    /// Higher is better (rates, MFU, bandwidth).
    Higher,
}

/// How a figure is printed and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Seconds; relative delta.
    Time,
    /// TFLOP/s; relative delta.
    Tflops,
    /// A fraction judged by its relative change (MFU).
    Utilisation,
    /// A fraction compared in percentage points, not judged.
    Points,
    /// GB/s; relative delta.
    Bandwidth,
    /// A ratio such as a speedup; relative delta.
    Ratio,
    /// A count; any rise is a regression.
    Count,
}

/// One figure of both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareRow {
    /// What is compared, e.g. `overlapped MFU`.
    pub figure: String,
    /// How it is printed and compared.
    pub kind: Kind,
    /// Direction of improvement.
    pub better: Better,
    /// Baseline value.
    pub baseline: Option<f64>,
    /// New value.
    pub new: Option<f64>,
    /// (new − baseline) / |baseline| (percentage points for [`Kind::Points`]).
    pub delta: Option<f64>,
    /// Whether this figure can fail the comparison.
    pub judged: bool,
    /// The tolerance it was judged with (None when not judged).
    pub tolerance: Option<Tolerance>,
    /// Interval of `delta` from the two runs' per-round values (bootstrap
    /// of the difference of medians at the family-wise level of
    /// [`Comparison::family`]); None for counts and records without
    /// per-round values.
    pub interval: Option<[f64; 2]>,
    /// REGRESSED, WITHIN TOLERANCE, WITHIN NOISE, IMPROVED or NOT JUDGED.
    pub verdict: RowVerdict,
    /// Worse than the limit (verdict REGRESSED).
    pub regressed: bool,
}

/// A judged figure's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RowVerdict {
    /// Worse beyond noise and beyond its tolerance (the whole interval of
    /// the worsening past the tolerance), a count that rose, or a figure
    /// the new run lacks.
    Regressed,
    /// Worse beyond noise, not past its tolerance (or, without an
    /// interval, worse by at most its tolerance).
    WithinTolerance,
    /// The interval of the change holds no change.
    WithinNoise,
    /// Better beyond noise.
    Improved,
    /// Shown, not judged.
    NotJudged,
}

impl RowVerdict {
    /// The word printed in the table.
    pub fn word(self) -> &'static str {
        match self {
            RowVerdict::Regressed => "REGRESSED",
            RowVerdict::WithinTolerance => "WITHIN TOLERANCE",
            RowVerdict::WithinNoise => "WITHIN NOISE",
            RowVerdict::Improved => "IMPROVED",
            RowVerdict::NotJudged => "(not judged)",
        }
    }
}

/// Family-wise error rate of a comparison: the chance that two runs of
/// the same system get any REGRESSED figure from noise. Each figure's
/// interval is at 1 − FAMILY_ALPHA / (judged figures) (Bonferroni).
pub const FAMILY_ALPHA: f64 = 0.05;

/// The result of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Baseline run.json.
    pub baseline: PathBuf,
    /// New run.json.
    pub new: PathBuf,
    /// Baseline run id.
    pub baseline_id: String,
    /// New run id.
    pub new_id: String,
    /// Largest tolerated worsening (fraction).
    pub max_regression: f64,
    /// Config fields that differ (only non-empty with `force`).
    pub config_differences: Vec<String>,
    /// Every figure.
    pub rows: Vec<CompareRow>,
    /// Figures judged with an interval: each interval is at
    /// 1 − [`FAMILY_ALPHA`] / family (Bonferroni), so that false alarms
    /// stay at 5 % over all of them.
    pub family: usize,
}

impl Comparison {
    /// Rows that regressed past the limit.
    pub fn regressions(&self) -> impl Iterator<Item = &CompareRow> {
        self.rows.iter().filter(|r| r.regressed)
    }

    /// True when at least one judged figure regressed past the limit.
    pub fn regressed(&self) -> bool {
        self.regressions().next().is_some()
    }

    /// The side-by-side table and the verdict, for a terminal.
    pub fn render(&self) -> String {
        let mut out = format!(
            "mfubench compare: baseline {} ({}) vs new {} ({})\n",
            self.baseline_id,
            self.baseline.display(),
            self.new_id,
            self.new.display()
        );
        if !self.config_differences.is_empty() {
            out.push_str(&format!(
                "warning: the configurations differ (compared because of --force): {}\n",
                self.config_differences.join(", ")
            ));
        }
        let mut b = Builder::default();
        b.push_record(
            [
                "figure",
                "baseline",
                "new",
                "delta",
                "better",
                "tolerance",
                "",
            ]
            .map(String::from),
        );
        for r in &self.rows {
            let show = |v: Option<f64>| match r.kind {
                Kind::Time => f::opt(v, f::time),
                Kind::Tflops => f::opt(v, f::tflops),
                Kind::Utilisation | Kind::Points => f::opt(v, f::pct),
                Kind::Bandwidth => f::opt(v, f::gbps),
                Kind::Ratio => f::opt(v, f::ratio),
                Kind::Count => f::opt(v, |x| format!("{x:.0}")),
            };
            let change = |d: f64| match r.kind {
                Kind::Points => format!("{:+.1} pp", d * 100.0),
                Kind::Count => format!("{d:+.0}"),
                _ => f::delta_pct(d),
            };
            let delta = match (r.delta, r.interval) {
                (None, _) => "n/a".to_string(),
                (Some(d), Some([lo, hi])) => {
                    format!("{} [{}, {}]", change(d), change(lo), change(hi))
                }
                (Some(d), None) => change(d),
            };
            let verdict = r.verdict.word().to_string();
            b.push_record([
                r.figure.clone(),
                show(r.baseline),
                show(r.new),
                delta,
                match r.better {
                    Better::Lower => "lower".into(),
                    Better::Higher => "higher".into(),
                },
                match (r.kind, r.tolerance) {
                    (Kind::Count, Some(_)) => "any rise".to_string(),
                    (_, t) => t.map(Tolerance::show).unwrap_or_default(),
                },
                verdict,
            ]);
        }
        let mut t = b.build();
        t.with(Style::psql());
        t.modify(Columns::new(1..4), Alignment::right());
        out.push_str(&t.to_string());
        out.push('\n');
        out.push_str(&format!(
            "deltas: [95 % family-wise interval] of the change, a bootstrap of the difference of the runs' medians over their rounds, Bonferroni-corrected over {} judged figure(s); REGRESSED only when the whole interval is past the tolerance\n",
            self.family
        ));
        let regs: Vec<&CompareRow> = self.regressions().collect();
        if regs.is_empty() {
            // Never a plain PASS over figures that could not tell.
            let noise: Vec<&str> = self
                .rows
                .iter()
                .filter(|r| r.verdict == RowVerdict::WithinNoise && r.interval.is_some())
                .map(|r| r.figure.as_str())
                .collect();
            out.push_str(&format!(
                "verdict: PASS: no figure regressed past its tolerance (default {}){}\n",
                f::pct(self.max_regression),
                if noise.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} of {} judged figure(s) WITHIN NOISE (their intervals, in the delta column, bound the change these runs can see): {}",
                        noise.len(),
                        self.rows.iter().filter(|r| r.judged).count(),
                        noise.join(", ")
                    )
                }
            ));
        } else {
            let names: Vec<String> = regs
                .iter()
                .map(|r| match (r.kind, r.delta) {
                    (Kind::Count, Some(d)) => format!("{} ({d:+.0})", r.figure),
                    (_, Some(d)) => format!("{} ({})", r.figure, f::delta_pct(d)),
                    _ => r.figure.clone(),
                })
                .collect();
            out.push_str(&format!(
                "verdict: FAIL: {} regressed past {}: {}\n",
                regs.len(),
                if self.rows.iter().any(|r| r
                    .tolerance
                    .is_some_and(|t| t != Tolerance::Relative(self.max_regression)))
                {
                    "its tolerance".to_string()
                } else {
                    f::pct(self.max_regression)
                },
                names.join(", ")
            ));
        }
        out
    }
}

impl Comparison {
    /// The comparison as JSON (every row, the verdict).
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "verdict".into(),
                serde_json::Value::from(if self.regressed() { "FAIL" } else { "PASS" }),
            );
        }
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    }

    /// JUnit XML (quick-junit): one testcase per judged figure, a failure
    /// when it regressed past its tolerance.
    pub fn junit(&self) -> Result<String, ReportError> {
        use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
        let name = format!("mfubench.compare.{}", self.new_id);
        let mut suite = TestSuite::new(name.as_str());
        suite.add_property(Property::new("baseline", self.baseline_id.as_str()));
        suite.add_property(Property::new("new", self.new_id.as_str()));
        for r in self.rows.iter().filter(|r| r.judged) {
            let line = format!(
                "{}: baseline {:?}, new {:?}, delta {:?}, tolerance {}",
                r.figure,
                r.baseline,
                r.new,
                r.delta,
                r.tolerance.map(Tolerance::show).unwrap_or_default()
            );
            let status = if r.regressed {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(line.as_str()).set_type("regression");
                s
            } else {
                TestCaseStatus::success()
            };
            let mut c = TestCase::new(r.figure.as_str(), status);
            c.set_classname(name.as_str());
            if !r.regressed {
                c.set_system_out(line.as_str());
            }
            suite.add_test_case(c);
        }
        let mut report = quick_junit::Report::new("mfubench-compare");
        report.add_test_suite(suite);
        report.to_string().map_err(|e| ReportError::BadOption {
            option: "--junit".into(),
            message: format!("cannot write the JUnit XML: {e}"),
        })
    }
}

/// Flattens a JSON value into `a.b.c → value` leaves.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// `[run]` keys that change how long or how often a run measures, not what:
/// runs differing only in these are comparable without `--force`.
pub const COMPARABLE_RUN_KEYS: [&str; 5] = [
    "iterations",
    "warmup",
    "warmup_max",
    "warmup_tolerance",
    "op_timeout_s",
];

/// Fields of the configuration (and world size, backend) that differ, as
/// `field: baseline → new`. Acceptance thresholds and the acceptance
/// suite's `[accept]` settings are not part of what a run measured and are
/// ignored.
pub fn config_differences(a: &LoadedRun, b: &LoadedRun) -> Vec<String> {
    let leaves = |r: &LoadedRun| {
        let mut m = BTreeMap::new();
        let mut cfg = serde_json::to_value(&r.record.config).unwrap_or(serde_json::Value::Null);
        if let Some(o) = cfg.as_object_mut() {
            o.remove("acceptance");
            // How long or how often it was measured, not what.
            if let Some(run) = o.get_mut("run").and_then(|r| r.as_object_mut()) {
                for k in COMPARABLE_RUN_KEYS {
                    run.remove(k);
                }
            }
            o.remove("accept");
        }
        flatten("config", &cfg, &mut m);
        m.insert("world_size".into(), r.record.world_size.to_string());
        m.insert("backend".into(), r.record.backend.to_string());
        m
    };
    let (la, lb) = (leaves(a), leaves(b));
    let mut keys: Vec<&String> = la.keys().chain(lb.keys()).collect();
    keys.sort();
    keys.dedup();
    let absent = "(absent)".to_string();
    keys.into_iter()
        .filter_map(|k| {
            let x = la.get(k).unwrap_or(&absent);
            let y = lb.get(k).unwrap_or(&absent);
            (x != y).then(|| format!("{k}: {x} → {y}"))
        })
        .collect()
}

/// Reads both runs and compares them.
pub fn compare_runs(
    baseline: &Path,
    new: &Path,
    opts: CompareOptions,
) -> Result<Comparison, ReportError> {
    let a = read_run(baseline)?;
    let b = read_run(new)?;
    compare_loaded(&a, &b, opts)
}

/// Compares two runs already read.
pub fn compare_loaded(
    a: &LoadedRun,
    b: &LoadedRun,
    opts: CompareOptions,
) -> Result<Comparison, ReportError> {
    if !(opts.max_regression.is_finite() && opts.max_regression >= 0.0) {
        return Err(ReportError::BadOption {
            option: "--max-regression".into(),
            message: format!(
                "{} must be a non-negative percentage such as 5%",
                opts.max_regression
            ),
        });
    }
    for (name, t) in &opts.tolerances {
        let v = match t {
            Tolerance::Relative(v) | Tolerance::Points(v) => *v,
        };
        if !(v.is_finite() && v >= 0.0) {
            return Err(ReportError::BadOption {
                option: format!("tolerance of {name:?}"),
                message: format!("{v} must be non-negative"),
            });
        }
    }
    let diffs = config_differences(a, b);
    if !diffs.is_empty() && !opts.force {
        return Err(ReportError::ConfigMismatch {
            baseline: a.path.clone(),
            new: b.path.clone(),
            fields: diffs,
        });
    }
    let ra = analyze(
        &a.record,
        &a.path.display().to_string(),
        &a.record.config.acceptance,
    );
    let rb = analyze(
        &b.record,
        &b.path.display().to_string(),
        &b.record.config.acceptance,
    );
    let mut rows = rows(&ra, &rb, opts.max_regression, &opts.tolerances);
    let family = judge_with_intervals(&mut rows, (&a.record, &ra), (&b.record, &rb));
    let figure_kind = |name: &str| {
        rows.iter()
            .find(|r| r.figure.trim_end_matches(" (peaks differ)") == name)
            .map(|r| r.kind)
    };
    for (name, t) in &opts.tolerances {
        let bad = |message: String| ReportError::BadOption {
            option: format!("tolerance of {name:?}"),
            message,
        };
        match (figure_kind(name), t) {
            (None, _) => {
                let known: Vec<&str> = rows
                    .iter()
                    .map(|r| r.figure.trim_end_matches(" (peaks differ)"))
                    .collect();
                return Err(bad(format!(
                    "no such figure in these runs; figures: {}",
                    known.join(", ")
                )));
            }
            (Some(Kind::Points), Tolerance::Relative(_)) => {
                return Err(bad(
                    "this figure is a fraction compared in percentage points: give e.g. \"2pp\""
                        .into(),
                ))
            }
            (Some(Kind::Count), _) => {
                return Err(bad(
                    "any rise of a count is a regression: no tolerance applies".into(),
                ))
            }
            (Some(k), Tolerance::Points(_)) if k != Kind::Points => {
                return Err(bad(
                    "this figure is compared by its relative change: give e.g. \"5%\"".into(),
                ))
            }
            _ => {}
        }
    }
    Ok(Comparison {
        baseline: a.path.clone(),
        new: b.path.clone(),
        baseline_id: a.record.run_id.clone(),
        new_id: b.record.run_id.clone(),
        max_regression: opts.max_regression,
        config_differences: diffs,
        rows,
        family,
    })
}

/// The per-round values of a compared figure, in the row's unit (step
/// times, TFLOP/s, MFU, fractions, speedups, GB/s); None for figures
/// without them (counts, older records).
fn series_of(s: &BTreeMap<String, Vec<f64>>, r: &Report, figure: &str) -> Option<Vec<f64>> {
    let flops = r.flops_per_step.model;
    let mode_of = |suffix: &str| {
        let name = figure.strip_suffix(suffix)?;
        Mode::ALL.into_iter().find(|m| m.name() == name)
    };
    if let Some(m) = mode_of(" step (median)") {
        return s.get(&format!("step_time_s.{m}")).cloned();
    }
    if let Some(m) = mode_of(" TFLOP/s per device") {
        let t = s.get(&format!("step_time_s.{m}"))?;
        return Some(t.iter().map(|t| metrics::tflops(flops, *t)).collect());
    }
    if let Some(m) = mode_of(" MFU") {
        let t = s.get(&format!("step_time_s.{m}"))?;
        return Some(
            t.iter()
                .map(|t| metrics::mfu(flops, *t, r.peak_tflops))
                .collect(),
        );
    }
    let bw = |factor: f64| -> Option<Vec<f64>> {
        let t = s.get("allreduce_time_s")?;
        let bytes = r.allreduce.bytes as f64;
        Some(
            t.iter()
                .filter(|t| **t > 0.0)
                .map(|t| metrics::algbw_gbps(bytes, *t) * factor)
                .collect(),
        )
    };
    match figure {
        "exposed communication" => s.get("exposed_comm_fraction").cloned(),
        "hidden fraction" => s.get("hidden_fraction").cloned(),
        "overlap speedup" => s.get("overlap_speedup").cloned(),
        "all-reduce algbw" => bw(1.0),
        "all-reduce busbw" => {
            let factor = r.allreduce.busbw_gbps? / r.allreduce.algbw_gbps?;
            bw(factor)
        }
        _ => None,
    }
}

/// Judges every judged row that has per-round values in both runs from an
/// interval of its change (see [`RowVerdict`]); the others keep the point
/// judgement. Returns the size of the family the intervals are corrected
/// for.
fn judge_with_intervals(
    rows: &mut [CompareRow],
    (ra, a): (&RunRecord, &Report),
    (rb, b): (&RunRecord, &Report),
) -> usize {
    // Once per run: every row reads its figure from these.
    let (sa, sb) = (
        round_series_of_nodes(&ra.node_records(), &ra.plan),
        round_series_of_nodes(&rb.node_records(), &rb.plan),
    );
    let series: Vec<Option<(Vec<f64>, Vec<f64>)>> = rows
        .iter()
        .map(|r| {
            let name = r.figure.trim_end_matches(" (peaks differ)");
            let (x, y) = (series_of(&sa, a, name)?, series_of(&sb, b, name)?);
            (r.judged && r.kind != Kind::Count && !x.is_empty() && !y.is_empty()).then_some((x, y))
        })
        .collect();
    let family = series.iter().flatten().count();
    let alpha = FAMILY_ALPHA / family.max(1) as f64;
    for (r, xy) in rows.iter_mut().zip(series) {
        if let Some((x, y)) = xy {
            let deltas: Vec<f64> = stats::bootstrap_medians(&x, &y)
                .into_iter()
                .filter_map(|(mx, my)| match r.kind {
                    Kind::Points => Some(my - mx),
                    _ if mx != 0.0 => Some((my - mx) / mx.abs()),
                    _ => None,
                })
                .collect();
            r.interval = stats::central_interval(&deltas, alpha);
        }
        r.verdict = verdict_of(r);
        r.regressed = r.verdict == RowVerdict::Regressed;
    }
    family
}

/// A row's verdict: from its interval when it has one, else from its
/// point change (the judgement of files without per-round values).
fn verdict_of(r: &CompareRow) -> RowVerdict {
    if !r.judged {
        return RowVerdict::NotJudged;
    }
    let tol = match r.tolerance {
        Some(Tolerance::Relative(t) | Tolerance::Points(t)) => t,
        None => 0.0,
    };
    // Worsening is positive.
    let worse = |d: f64| if r.better == Better::Lower { d } else { -d };
    match (r.kind, r.interval, r.delta) {
        (_, _, None) => {
            if r.baseline.is_some() && r.new.is_none() {
                RowVerdict::Regressed
            } else {
                RowVerdict::WithinNoise
            }
        }
        (Kind::Count, _, Some(d)) => {
            if worse(d) > 0.0 {
                RowVerdict::Regressed
            } else if worse(d) < 0.0 {
                RowVerdict::Improved
            } else {
                RowVerdict::WithinNoise
            }
        }
        (_, Some([lo, hi]), _) => {
            let (wlo, whi) = {
                let (p, q) = (worse(lo), worse(hi));
                (p.min(q), p.max(q))
            };
            if wlo > tol {
                RowVerdict::Regressed
            } else if wlo > 0.0 {
                RowVerdict::WithinTolerance
            } else if whi < 0.0 {
                RowVerdict::Improved
            } else {
                RowVerdict::WithinNoise
            }
        }
        (_, None, Some(d)) => {
            let w = worse(d);
            if w > tol {
                RowVerdict::Regressed
            } else if w > 0.0 {
                RowVerdict::WithinTolerance
            } else if w < 0.0 {
                RowVerdict::Improved
            } else {
                RowVerdict::WithinNoise
            }
        }
    }
}

fn rows(
    a: &Report,
    b: &Report,
    limit: f64,
    tolerances: &BTreeMap<String, Tolerance>,
) -> Vec<CompareRow> {
    let mut rows = Vec::new();
    // MFU of runs with different peaks (e.g. two CPU calibrations) measures
    // different things: show it, but judge the TFLOP/s rows instead.
    let same_peak = (a.peak_tflops - b.peak_tflops).abs() <= 1e-9 * a.peak_tflops.abs();
    let mut push = |figure: String, kind: Kind, better: Better, x: Option<f64>, y: Option<f64>| {
        let mfu_incomparable = kind == Kind::Utilisation && !same_peak;
        let given = tolerances.get(&figure).copied();
        // Percentage-point figures are judged only with a tolerance of their own.
        let judged = !mfu_incomparable && (!matches!(kind, Kind::Points) || given.is_some());
        let tolerance = judged.then(|| match kind {
            Kind::Points => given.unwrap_or(Tolerance::Points(0.0)),
            Kind::Count => Tolerance::Relative(0.0),
            _ => given.unwrap_or(Tolerance::Relative(limit)),
        });
        let figure = if mfu_incomparable {
            format!("{figure} (peaks differ)")
        } else {
            figure
        };
        let delta = match (kind, x, y) {
            (Kind::Points | Kind::Count, Some(x), Some(y)) => Some(y - x),
            (_, Some(x), Some(y)) if x != 0.0 => Some((y - x) / x.abs()),
            _ => None,
        };
        let worsening = delta.map(|d| if better == Better::Lower { d } else { -d });
        // A figure the baseline measured and the new run did not (a partial
        // run, a mode that failed) is a regression, not a pass.
        let regressed = judged
            && match (kind, worsening, tolerance) {
                (Kind::Count, Some(w), _) => w > 0.0,
                // Relative change against a relative tolerance; points
                // against points (a relative tolerance on a points figure
                // is read as points of the fraction).
                (_, Some(w), Some(Tolerance::Relative(t) | Tolerance::Points(t))) => w > t,
                _ => x.is_some() && y.is_none(),
            };
        rows.push(CompareRow {
            figure,
            kind,
            better,
            baseline: x,
            new: y,
            delta,
            judged,
            tolerance,
            interval: None,
            verdict: RowVerdict::NotJudged,
            regressed,
        });
    };
    let head = |r: &Report, m: Mode| r.headline.iter().find(|h| h.mode == m).cloned();
    for m in Mode::ALL {
        let (ha, hb) = (head(a, m), head(b, m));
        if ha.is_none() && hb.is_none() {
            continue;
        }
        push(
            format!("{m} step (median)"),
            Kind::Time,
            Better::Lower,
            ha.as_ref().map(|h| h.step_median_s),
            hb.as_ref().map(|h| h.step_median_s),
        );
        if m.has_compute() {
            push(
                format!("{m} TFLOP/s per device"),
                Kind::Tflops,
                Better::Higher,
                ha.as_ref().and_then(|h| h.tflops_per_device),
                hb.as_ref().and_then(|h| h.tflops_per_device),
            );
            push(
                format!("{m} MFU"),
                Kind::Utilisation,
                Better::Higher,
                ha.as_ref().and_then(|h| h.mfu),
                hb.as_ref().and_then(|h| h.mfu),
            );
        }
    }
    let (oa, ob) = (&a.overlap, &b.overlap);
    push(
        "exposed communication".into(),
        Kind::Points,
        Better::Lower,
        oa.exposed_comm_fraction,
        ob.exposed_comm_fraction,
    );
    push(
        "hidden fraction".into(),
        Kind::Points,
        Better::Higher,
        oa.hidden_fraction,
        ob.hidden_fraction,
    );
    push(
        "overlap speedup".into(),
        Kind::Ratio,
        Better::Higher,
        oa.overlap_speedup,
        ob.overlap_speedup,
    );
    push(
        "all-reduce algbw".into(),
        Kind::Bandwidth,
        Better::Higher,
        a.allreduce.algbw_gbps,
        b.allreduce.algbw_gbps,
    );
    push(
        "all-reduce busbw".into(),
        Kind::Bandwidth,
        Better::Higher,
        a.allreduce.busbw_gbps,
        b.allreduce.busbw_gbps,
    );
    push(
        "wrong elements".into(),
        Kind::Count,
        Better::Lower,
        Some(a.wrong as f64),
        Some(b.wrong as f64),
    );
    rows
}

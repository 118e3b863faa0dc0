//! Acceptance: the `[acceptance]` thresholds of the config, overridden by
//! command-line flags, turned into one PASS/FAIL line per rule.
//!
//! A rule whose figure was not measured (its mode did not run, the
//! correctness check was off) FAILS with the reason: an acceptance run that
//! skipped what a rule checks has not shown that the cluster meets it.
//! Never green by omission: on a 1-rank run the communication rules
//! (`min_busbw_gbps`, `max_exposed_comm_fraction`, and `max_wrong` unless
//! it fails) are SKIPPED (nothing is communicated), and in a run that stopped early
//! (timeout, dead rank, Ctrl-C) a rule whose mode never ran is INCOMPLETE
//! and so is the whole verdict. Neither is PASS.

use mfubench_core::config::{Acceptance, Mode};
use mfubench_core::result::{Flag, Summary};

use crate::analysis::{measure, Report};
use crate::error::ReportError;

/// A run's report with its verdict: [`measure`] (the figures), then
/// [`evaluate`] (the rules) on them.
pub fn analyze(
    run: &mfubench_core::result::RunRecord,
    source: &str,
    acc: &mfubench_core::config::Acceptance,
) -> Report {
    let (mut report, summary) = measure(run, source, acc);
    report.verdict = evaluate(&report, &summary);
    report
}

/// Thresholds given on the command line; `Some` replaces the config's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcceptanceOverrides {
    /// Lowest overlapped-mode MFU (0–1).
    pub min_mfu: Option<f64>,
    /// Highest exposed communication fraction (0–1).
    pub max_exposed_comm_fraction: Option<f64>,
    /// Lowest comm-mode bus bandwidth, GB/s.
    pub min_busbw_gbps: Option<f64>,
    /// Straggler tolerance (relative, e.g. 0.05).
    pub straggler_tolerance: Option<f64>,
    /// Most wrong all-reduce elements tolerated.
    pub max_wrong: Option<u64>,
}

impl AcceptanceOverrides {
    /// The config's thresholds with these overrides applied, after checking
    /// every value is in range.
    pub fn apply(&self, base: &Acceptance) -> Result<Acceptance, ReportError> {
        let bad = |option: &str, message: String| ReportError::BadOption {
            option: option.to_string(),
            message,
        };
        let frac = |option: &str, v: Option<f64>| -> Result<Option<f64>, ReportError> {
            match v {
                Some(x) if !(x.is_finite() && (0.0..=1.0).contains(&x)) => Err(bad(
                    option,
                    format!("{x} is out of range: give a fraction between 0 and 1 (or a percentage such as 40%)"),
                )),
                _ => Ok(v),
            }
        };
        let min_mfu = frac("min_mfu", self.min_mfu.or(base.min_mfu))?;
        let max_exposed = frac(
            "max_exposed_comm_fraction",
            self.max_exposed_comm_fraction
                .or(base.max_exposed_comm_fraction),
        )?;
        let busbw = self.min_busbw_gbps.or(base.min_busbw_gbps);
        if let Some(b) = busbw.filter(|b| !(b.is_finite() && *b >= 0.0)) {
            return Err(bad(
                "min_busbw_gbps",
                format!("{b} must be a non-negative number of GB/s"),
            ));
        }
        let tol = self.straggler_tolerance.unwrap_or(base.straggler_tolerance);
        if !(tol.is_finite() && tol >= 0.0) {
            return Err(bad(
                "straggler_tolerance",
                format!("{tol} must be a non-negative fraction (0.05 = 5 %)"),
            ));
        }
        Ok(Acceptance {
            min_mfu,
            max_exposed_comm_fraction: max_exposed,
            min_busbw_gbps: busbw,
            straggler_tolerance: tol,
            max_wrong: self.max_wrong.unwrap_or(base.max_wrong),
        })
    }
}

pub use crate::verdict::{RuleResult, Status, Verdict};

/// Turns a PASS or FAIL into INCONCLUSIVE when the measurement cannot
/// decide: the limit lies strictly inside the figure's 95 % interval, or
/// flags concern the figure.
fn judge_noise(
    mut r: RuleResult,
    ci: Option<[f64; 2]>,
    flags: &[&Flag],
    show: impl Fn(f64) -> String,
) -> RuleResult {
    if r.measured.is_none() || !matches!(r.status, Status::Pass | Status::Fail) {
        return r;
    }
    if !flags.is_empty() {
        let names: Vec<&str> = flags.iter().map(|f| f.name.as_str()).collect();
        r.status = Status::Inconclusive;
        r.detail
            .push_str(&format!("; inconclusive: flagged {}", names.join(", ")));
    } else if let Some([lo, hi]) = ci {
        if lo < r.limit && r.limit < hi {
            r.status = Status::Inconclusive;
            r.detail.push_str(&format!(
                "; inconclusive: the limit lies inside the 95 % interval [{}, {}] (more iterations narrow it)",
                show(lo),
                show(hi)
            ));
        }
    }
    r
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn rule(
    name: &str,
    measured: Result<f64, String>,
    limit: f64,
    at_least: bool,
    show: impl Fn(f64) -> String,
    what: &str,
) -> RuleResult {
    let op = if at_least { ">=" } else { "<=" };
    match measured {
        Ok(v) => {
            let ok = if at_least { v >= limit } else { v <= limit };
            let sym = match (ok, at_least) {
                (true, true) => "≥",
                (true, false) => "≤",
                (false, true) => "<",
                (false, false) => ">",
            };
            RuleResult {
                rule: name.to_string(),
                status: if ok { Status::Pass } else { Status::Fail },
                measured: Some(v),
                limit,
                op: op.to_string(),
                detail: format!("{what} {} {sym} {}", show(v), show(limit)),
            }
        }
        Err(reason) => RuleResult {
            rule: name.to_string(),
            status: Status::Fail,
            measured: None,
            limit,
            op: op.to_string(),
            detail: format!("{what} not measured: {reason} (limit {})", show(limit)),
        },
    }
}

/// A rule that was not judged, with the reason.
fn not_judged(
    name: &str,
    status: Status,
    limit: f64,
    at_least: bool,
    show: impl Fn(f64) -> String,
    what: &str,
    reason: &str,
) -> RuleResult {
    RuleResult {
        rule: name.to_string(),
        status,
        measured: None,
        limit,
        op: if at_least { ">=" } else { "<=" }.to_string(),
        detail: format!(
            "{what} not judged: {} ({reason}; limit {})",
            status.word(),
            show(limit)
        ),
    }
}

/// Why a communication rule cannot be judged on this run, if it cannot.
fn comm_skip_reason(report: &Report) -> Option<String> {
    (report.run.world_size <= 1)
        .then(|| format!("{} rank: nothing is communicated", report.run.world_size))
}

/// A figure missing from a run that stopped early is INCOMPLETE (the mode
/// may simply not have had its turn); from a complete run it is a FAIL.
fn missing(
    report: &Report,
    modes: &[Mode],
    name: &str,
    limit: f64,
    at_least: bool,
    show: impl Fn(f64) -> String + Copy,
    what: &str,
) -> RuleResult {
    let reason = missing_mode(report, modes);
    if report.complete {
        rule(name, Err(reason), limit, at_least, show, what)
    } else {
        not_judged(
            name,
            Status::Incomplete,
            limit,
            at_least,
            show,
            what,
            &format!("the run stopped early and {reason}"),
        )
    }
}

/// A rule that failed only because its figure was not measured, in a run
/// that stopped early, is INCOMPLETE rather than FAIL.
fn incomplete_if_partial(report: &Report, mut r: RuleResult) -> RuleResult {
    if !report.complete && r.status == Status::Fail && r.measured.is_none() {
        r.status = Status::Incomplete;
        r.detail = r.detail.replacen(
            " not measured: ",
            " not judged: INCOMPLETE (the run stopped early): ",
            1,
        );
    }
    r
}

fn missing_mode(report: &Report, modes: &[Mode]) -> String {
    let ran: Vec<&str> = report.run.modes.iter().map(|m| m.name()).collect();
    let need: Vec<&str> = modes.iter().map(|m| m.name()).collect();
    format!(
        "needs the {} mode{}, the run had {}",
        need.join(" and "),
        if need.len() == 1 { "" } else { "s" },
        if ran.is_empty() {
            "none".to_string()
        } else {
            ran.join(", ")
        }
    )
}

/// Evaluates every rule of `report.acceptance` on the report's figures.
pub fn evaluate(report: &Report, s: &Summary) -> Verdict {
    let a = &report.acceptance;
    let mut rules = Vec::new();
    let skip = comm_skip_reason(report);
    if let Some(limit) = a.min_mfu {
        let (name, what) = ("min_mfu", "overlapped MFU");
        rules.push(match s.mfu.overlapped {
            Some(v) => judge_noise(
                rule(name, Ok(v), limit, true, pct, what),
                s.ci95.mfu.overlapped,
                &s.flags_on("mfu"),
                pct,
            ),
            None => missing(report, &[Mode::Overlapped], name, limit, true, pct, what),
        });
    }
    if let Some(limit) = a.max_exposed_comm_fraction {
        let (name, what) = ("max_exposed_comm_fraction", "exposed communication");
        rules.push(match (&skip, s.exposed_comm_fraction) {
            (Some(why), _) => not_judged(name, Status::Skipped, limit, false, pct, what, why),
            (None, Some(v)) => judge_noise(
                rule(name, Ok(v), limit, false, pct, what),
                s.ci95.exposed_comm_fraction,
                &s.flags_on("exposed_comm_fraction"),
                pct,
            ),
            (None, None) => missing(
                report,
                &[Mode::Compute, Mode::Overlapped],
                name,
                limit,
                false,
                pct,
                what,
            ),
        });
    }
    if let Some(limit) = a.min_busbw_gbps {
        let (name, what) = ("min_busbw_gbps", "all-reduce busbw");
        let gbps = |x: f64| format!("{x:.2} GB/s");
        rules.push(match (&skip, s.allreduce.busbw_gbps) {
            (Some(why), _) => not_judged(name, Status::Skipped, limit, true, gbps, what, why),
            (None, Some(v)) => {
                // busbw ∝ 1/T_a: the comm step's interval, inverted.
                let ci = s.ci95.step_time_s.comm.and_then(|[lo, hi]| {
                    let per_s = v * s.allreduce.time_s?;
                    Some([per_s / hi, per_s / lo])
                });
                judge_noise(rule(name, Ok(v), limit, true, gbps, what), ci, &[], gbps)
            }
            (None, None) => missing(report, &[Mode::Comm], name, limit, true, gbps, what),
        });
    }
    // Stragglers: the figure is the worst rank's deviation from the median.
    let tol = a.straggler_tolerance;
    let worst =
        report
            .ranks
            .iter()
            .filter_map(|r| r.deviation)
            .fold(None, |acc: Option<f64>, d| {
                Some(match acc {
                    // NaN marks a rank with no usable step; it must fail the rule.
                    Some(x) if x.is_nan() => x,
                    Some(x) => {
                        if d.is_nan() {
                            d
                        } else {
                            x.max(d)
                        }
                    }
                    None => d,
                })
            });
    let v = match (report.straggler_mode, worst) {
        (None, _) => Err("no mode was run by every rank".to_string()),
        (Some(_), None) => Err("no rank has a step time".to_string()),
        (Some(_), Some(w)) => Ok(w),
    };
    let mut r = rule(
        "straggler_tolerance",
        v,
        tol,
        false,
        |x| format!("{:+.1} %", x * 100.0),
        &format!(
            "slowest rank vs median ({} step)",
            report.straggler_mode.map(Mode::name).unwrap_or("no")
        ),
    );
    // core flags by the same test; keep its list authoritative for PASS.
    if r.measured.is_some() {
        let n = report.stragglers.len();
        r.status = if n == 0 && r.status == Status::Pass {
            Status::Pass
        } else {
            Status::Fail
        };
        if n > 0 {
            let names: Vec<String> = report
                .stragglers
                .iter()
                .take(3)
                .map(|s| s.rank.to_string())
                .collect();
            r.detail.push_str(&format!(
                "; {n} straggler{}: rank{} {}{}",
                if n == 1 { "" } else { "s" },
                if n == 1 { "" } else { "s" },
                names.join(", "),
                if n > 3 { ", …" } else { "" }
            ));
        }
    }
    rules.push(incomplete_if_partial(report, r));

    let v = if !report.run.check {
        Err("the correctness check was off (run.check = false)".to_string())
    } else if !report.run.modes.iter().any(|m| m.has_comm()) {
        Err(format!(
            "no all-reduce ran (modes: {})",
            report
                .run
                .modes
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else {
        Ok(s.wrong as f64)
    };
    let r = rule(
        "max_wrong",
        v,
        a.max_wrong as f64,
        false,
        |x| format!("{x:.0}"),
        "wrong all-reduce elements",
    );
    // With the check off the figure can never exist: that FAILs whatever
    // happened to the run.
    let mut r = if report.run.check {
        incomplete_if_partial(report, r)
    } else {
        r
    };
    // One rank reduces nothing: no wrong element there shows nothing about
    // communication (a wrong one still fails).
    if let (Some(why), Status::Pass) = (&skip, r.status) {
        r.status = Status::Skipped;
        r.detail = format!("{}: SKIPPED ({why})", r.detail);
    }
    rules.push(r);
    let status = if !report.complete {
        Status::Incomplete
    } else if rules.iter().any(|r| r.status == Status::Fail) {
        Status::Fail
    } else if rules.iter().any(|r| r.status == Status::Inconclusive) {
        Status::Inconclusive
    } else if rules.iter().any(|r| r.status != Status::Pass) {
        Status::Skipped
    } else {
        Status::Pass
    };
    Verdict {
        passed: status == Status::Pass,
        rules,
        status,
    }
}

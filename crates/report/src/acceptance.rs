//! Acceptance: the `[acceptance]` thresholds of the config, overridden by
//! command-line flags, turned into one line per rule in core's vocabulary
//! ([`mfubench_core::verdict`]).
//!
//! A measured figure is judged against its limit with its 95 % interval
//! ([`mfubench_core::verdict::judge`]): PASS, FAIL, or INCONCLUSIVE when the
//! limit lies inside the interval or the figure is flagged. A figure that
//! was not measured is never FAIL (a missing number is not a bad one) and
//! never PASS ([`Status::missing`]): in a run that stopped early (timeout,
//! dead rank, Ctrl-C) a rule whose mode never ran is INCOMPLETE, and so is
//! the whole verdict; a rule this run cannot measure is SKIPPED — its mode
//! was not requested, the correctness check was off, or on a 1-rank run the
//! communication rules (`min_busbw_gbps`, `max_exposed_comm_fraction`, and
//! `max_wrong` unless it fails: nothing is communicated). A SKIPPED rule is
//! not a pass either: the verdict is SKIPPED and the exit code 1.

use mfubench_core::config::{Acceptance, Mode};
use mfubench_core::result::{Flag, Summary};
use mfubench_core::verdict::{judge, Bound};

use crate::analysis::{measure_with, Report};
use crate::error::ReportError;

/// A run's report with its verdict: [`measure`] (the figures), then
/// [`evaluate`] (the rules) on them.
pub fn analyze(
    run: &mfubench_core::result::RunRecord,
    source: &str,
    acc: &mfubench_core::config::Acceptance,
) -> Report {
    analyze_with(run, &run.ranks, source, acc)
}

/// [`analyze`] with the rank records at hand (see [`measure_with`]): a
/// sharded run read by [`crate::read::read_run`] has only those the report
/// draws.
pub fn analyze_with(
    run: &mfubench_core::result::RunRecord,
    loaded: &[mfubench_core::result::RankRecord],
    source: &str,
    acc: &mfubench_core::config::Acceptance,
) -> Report {
    let (mut report, summary) = measure_with(run, loaded, source, acc);
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
/// decide: flags concern the figure, or the limit lies strictly inside the
/// figure's 95 % interval ([`judge`]).
fn judge_noise(
    mut r: RuleResult,
    bound: Bound,
    ci: Option<[f64; 2]>,
    flags: &[&Flag],
    show: impl Fn(f64) -> String,
) -> RuleResult {
    let Some(v) = r.measured else {
        return r;
    };
    if !matches!(r.status, Status::Pass | Status::Fail) {
        return r;
    }
    if !flags.is_empty() {
        let names: Vec<&str> = flags.iter().map(|f| f.name.as_str()).collect();
        r.status = Status::Inconclusive;
        r.detail
            .push_str(&format!("; inconclusive: flagged {}", names.join(", ")));
    } else if let Some([lo, hi]) = ci {
        if judge(v, bound, r.limit, ci) == Status::Inconclusive {
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

/// A measured figure against its limit ([`judge`], without an interval:
/// [`judge_noise`] adds it): PASS, FAIL, or INCONCLUSIVE when it is not a
/// number.
fn rule(
    name: &str,
    v: f64,
    limit: f64,
    bound: Bound,
    show: impl Fn(f64) -> String,
    what: &str,
) -> RuleResult {
    let status = judge(v, bound, limit, None);
    RuleResult {
        rule: name.to_string(),
        status,
        measured: Some(v),
        limit,
        op: bound.op().to_string(),
        detail: format!(
            "{what} {} {} {}",
            show(v),
            if v.is_nan() {
                "?"
            } else {
                bound.symbol(status == Status::Pass)
            },
            show(limit)
        ),
    }
}

/// A rule that was not judged (SKIPPED or INCOMPLETE), with the reason.
fn not_judged(
    name: &str,
    status: Status,
    limit: f64,
    bound: Bound,
    show: impl Fn(f64) -> String,
    what: &str,
    reason: &str,
) -> RuleResult {
    RuleResult {
        rule: name.to_string(),
        status,
        measured: None,
        limit,
        op: bound.op().to_string(),
        detail: format!(
            "{what} not judged: {} ({reason}; limit {})",
            status.word(),
            show(limit)
        ),
    }
}

/// A rule whose figure was not measured ([`Status::missing`]): INCOMPLETE
/// in a run that stopped early (what it needs may not have had its turn),
/// else SKIPPED (this run does not measure it). Never FAIL.
fn unmeasured(
    report: &Report,
    name: &str,
    limit: f64,
    bound: Bound,
    show: impl Fn(f64) -> String,
    what: &str,
    reason: &str,
) -> RuleResult {
    let status = Status::missing(!report.complete);
    let reason = if report.complete {
        format!("not measured: {reason}")
    } else {
        format!("the run stopped early and {reason}")
    };
    not_judged(name, status, limit, bound, show, what, &reason)
}

/// Why a communication rule cannot be judged on this run, if it cannot.
fn comm_skip_reason(report: &Report) -> Option<String> {
    (report.run.world_size <= 1)
        .then(|| format!("{} rank: nothing is communicated", report.run.world_size))
}

/// A rule whose modes did not run: [`unmeasured`], naming them.
fn missing(
    report: &Report,
    modes: &[Mode],
    name: &str,
    limit: f64,
    bound: Bound,
    show: impl Fn(f64) -> String,
    what: &str,
) -> RuleResult {
    let reason = missing_mode(report, modes);
    unmeasured(report, name, limit, bound, show, what, &reason)
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
        // Sustained (total FLOPs over total time): stalls count, which the
        // median step hides; judged with its bootstrap interval.
        let (name, what, bound) = ("min_mfu", "overlapped sustained MFU", Bound::AtLeast);
        rules.push(match s.mfu_sustained.overlapped {
            Some(v) => judge_noise(
                rule(name, v, limit, bound, pct, what),
                bound,
                s.ci95.mfu_sustained.overlapped,
                &s.flags_on("mfu"),
                pct,
            ),
            None => missing(report, &[Mode::Overlapped], name, limit, bound, pct, what),
        });
    }
    if let Some(limit) = a.max_exposed_comm_fraction {
        let (name, what, bound) = (
            "max_exposed_comm_fraction",
            "exposed communication",
            Bound::AtMost,
        );
        rules.push(match (&skip, s.exposed_comm_fraction) {
            (Some(why), _) => not_judged(name, Status::Skipped, limit, bound, pct, what, why),
            (None, Some(v)) => judge_noise(
                rule(name, v, limit, bound, pct, what),
                bound,
                s.ci95.exposed_comm_fraction,
                &s.flags_on("exposed_comm_fraction"),
                pct,
            ),
            (None, None) => missing(
                report,
                &[Mode::Compute, Mode::Overlapped],
                name,
                limit,
                bound,
                pct,
                what,
            ),
        });
    }
    if let Some(limit) = a.min_busbw_gbps {
        let (name, what, bound) = ("min_busbw_gbps", "all-reduce busbw", Bound::AtLeast);
        let gbps = |x: f64| format!("{x:.2} GB/s");
        rules.push(match (&skip, s.allreduce.busbw_gbps) {
            (Some(why), _) => not_judged(name, Status::Skipped, limit, bound, gbps, what, why),
            (None, Some(v)) => {
                // busbw ∝ 1/time: the gradient all-reduces' time interval
                // (their own group and time), inverted.
                let ci = s.allreduce.time_s_ci95.and_then(|[lo, hi]| {
                    let per_s = v * s.allreduce.time_s?;
                    Some([per_s / hi, per_s / lo])
                });
                judge_noise(
                    rule(name, v, limit, bound, gbps, what),
                    bound,
                    ci,
                    &[],
                    gbps,
                )
            }
            (None, None) => missing(report, &[Mode::Comm], name, limit, bound, gbps, what),
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
                    // NaN marks a rank whose step time is not a number: core
                    // flags it as a straggler, which fails the rule below.
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
    let (name, bound) = ("straggler_tolerance", Bound::AtMost);
    let show = |x: f64| format!("{:+.1} %", x * 100.0);
    let what = format!(
        "slowest rank vs median ({} step)",
        report.straggler_mode.map(Mode::name).unwrap_or("no")
    );
    rules.push(match (report.straggler_mode, worst) {
        (None, _) => unmeasured(
            report,
            name,
            tol,
            bound,
            show,
            &what,
            "no mode was run by every rank",
        ),
        (Some(_), None) => unmeasured(
            report,
            name,
            tol,
            bound,
            show,
            &what,
            "no rank has a step time",
        ),
        (Some(_), Some(w)) => {
            let mut r = rule(name, w, tol, bound, show, &what);
            // core flags by the same test; its list is authoritative: a
            // flagged rank fails the rule.
            let n = report.stragglers.len();
            if n > 0 {
                r.status = Status::Fail;
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
            r
        }
    });

    let (name, what, bound) = ("max_wrong", "wrong all-reduce elements", Bound::AtMost);
    let limit = a.max_wrong as f64;
    let count = |x: f64| format!("{x:.0}");
    let mut r = if !report.run.check {
        // The check was not requested: the figure cannot exist, whatever
        // happened to the run.
        not_judged(
            name,
            Status::Skipped,
            limit,
            bound,
            count,
            what,
            "not measured: the correctness check was off (run.check = false)",
        )
    } else if !report.run.modes.iter().any(|m| m.has_comm()) {
        let reason = format!(
            "no all-reduce ran (modes: {})",
            report
                .run
                .modes
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        unmeasured(report, name, limit, bound, count, what, &reason)
    } else {
        rule(name, s.wrong as f64, limit, bound, count, what)
    };
    // One rank reduces nothing: no wrong element there shows nothing about
    // communication (a wrong one still fails).
    if let (Some(why), Status::Pass) = (&skip, r.status) {
        r.status = Status::Skipped;
        r.detail = format!("{}: SKIPPED ({why})", r.detail);
    }
    rules.push(r);
    let status = mfubench_core::verdict::overall(rules.iter().map(|r| r.status), report.complete);
    Verdict {
        passed: status == Status::Pass,
        rules,
        status,
    }
}

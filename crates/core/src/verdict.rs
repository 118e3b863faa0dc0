//! One verdict vocabulary for every rule mfubench judges: the run's
//! `[acceptance]` rules (`mfubench report`, `mfubench run`) and the
//! suite's rules (`mfubench accept`). Data only.
//!
//! - [`Status`]: the five outcomes, declared in their severity order (the
//!   derived `Ord`), and their words (`PASS`, `SKIPPED`, `INCONCLUSIVE`,
//!   `FAIL`, `INCOMPLETE`: the words of run.json's summary, summary.json and
//!   accept.json);
//! - [`Status::missing`]: the one treatment of a figure that was not
//!   measured: INCOMPLETE when the run stopped, SKIPPED when this run cannot
//!   measure it, never FAIL;
//! - [`judge`]: a measured figure against its limit, with its interval;
//! - [`overall`]: rule results combined into one verdict (the worst);
//! - [`exit_code`]: the verdict as `mfubench`'s exit code.

use serde::{Deserialize, Serialize};

use crate::protocol::exit;

/// The outcome of one rule, or of a set of rules.
///
/// The variants are declared in severity order, which is the derived `Ord`:
/// PASS < SKIPPED < INCONCLUSIVE < FAIL < INCOMPLETE. A set of rules is as
/// bad as its worst rule ([`overall`]). INCOMPLETE ranks first because a
/// run that stopped has no verdict on the cluster (exit 3, a run failure,
/// unless `--allow-partial` judges what it measured); its FAIL lines are
/// still shown and still fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Measured, and the measurement meets the limit.
    Pass,
    /// Not judged: this run cannot measure it (one rank: nothing is
    /// communicated; a mode, stage or check that was not requested; a node
    /// with one rank; a GPU whose driver hides XIDs).
    Skipped,
    /// Measured, and the measurement cannot decide: the limit lies inside
    /// the figure's 95 % interval, the figure is flagged or not a number,
    /// or there is nothing to compare it with (one device, one node, one
    /// link). Exit 1 unless `--allow-inconclusive`.
    Inconclusive,
    /// Measured, and the measurement does not meet the limit. Never the
    /// outcome of a figure that was not measured.
    Fail,
    /// Not judged: the run stopped (timeout, dead rank, Ctrl-C) before it
    /// measured the figure. Exit 3 unless `--allow-partial`.
    Incomplete,
}

impl Status {
    /// Every status, in severity order.
    pub const ALL: [Status; 5] = [
        Status::Pass,
        Status::Skipped,
        Status::Inconclusive,
        Status::Fail,
        Status::Incomplete,
    ];

    /// The upper-case word printed in verdict lines and written in
    /// summary.json and accept.json.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Skipped => "SKIPPED",
            Status::Inconclusive => "INCONCLUSIVE",
            Status::Fail => "FAIL",
            Status::Incomplete => "INCOMPLETE",
        }
    }

    /// The status of a rule whose figure was not measured: INCOMPLETE when
    /// the run stopped early (what it needs may not have had its turn),
    /// else SKIPPED (this run cannot measure it). Never FAIL: a missing
    /// number is not a bad one, and never PASS either.
    pub fn missing(run_stopped: bool) -> Status {
        if run_stopped {
            Status::Incomplete
        } else {
            Status::Skipped
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// How a figure must relate to its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// figure ≥ limit (rates, MFU, bandwidth).
    AtLeast,
    /// figure ≤ limit (fractions of time, deviations, wrong elements).
    AtMost,
}

impl Bound {
    /// Whether `value` meets `limit`; NaN never does.
    pub fn met(self, value: f64, limit: f64) -> bool {
        match self {
            Bound::AtLeast => value >= limit,
            Bound::AtMost => value <= limit,
        }
    }

    /// `>=` or `<=`, as written in summary.json.
    pub fn op(self) -> &'static str {
        match self {
            Bound::AtLeast => ">=",
            Bound::AtMost => "<=",
        }
    }

    /// The relation a judged value has to its limit: `≥`/`≤` when it meets
    /// it, `<`/`>` when it does not.
    pub fn symbol(self, met: bool) -> &'static str {
        match (self, met) {
            (Bound::AtLeast, true) => "≥",
            (Bound::AtMost, true) => "≤",
            (Bound::AtLeast, false) => "<",
            (Bound::AtMost, false) => ">",
        }
    }
}

/// Whether `limit` lies strictly inside `interval` (the figure's 95 %
/// interval): the measurement cannot tell which side of it the figure is.
pub fn limit_inside(limit: f64, interval: Option<[f64; 2]>) -> bool {
    interval.is_some_and(|[lo, hi]| lo < limit && limit < hi)
}

/// A measured figure against its limit: INCONCLUSIVE when the figure is not
/// a number or the limit lies strictly inside its interval, else PASS when
/// it meets the limit and FAIL when it does not. (A figure that was not
/// measured at all is not judged: [`Status::missing`].)
pub fn judge(value: f64, bound: Bound, limit: f64, interval: Option<[f64; 2]>) -> Status {
    if value.is_nan() || limit_inside(limit, interval) {
        Status::Inconclusive
    } else if bound.met(value, limit) {
        Status::Pass
    } else {
        Status::Fail
    }
}

/// The verdict of a set of rule results: INCOMPLETE when the run did not
/// complete, else the worst of them in severity order; INCONCLUSIVE when
/// there are none (nothing judged: nothing was shown, never PASS).
pub fn overall(statuses: impl IntoIterator<Item = Status>, complete: bool) -> Status {
    if !complete {
        return Status::Incomplete;
    }
    statuses.into_iter().max().unwrap_or(Status::Inconclusive)
}

/// The exit code of a verdict ([`crate::protocol::exit`]): 0 when every
/// rule is PASS, INCONCLUSIVE with `allow_inconclusive`, or INCOMPLETE
/// with `allow_partial`; else 3 when the run did not complete or a rule is
/// INCOMPLETE (unless `allow_partial`, which judges what was measured);
/// else 1 (a rule FAILED, was SKIPPED — not a pass — or INCONCLUSIVE). No
/// rule at all counts as one INCONCLUSIVE rule.
pub fn exit_code(
    statuses: impl IntoIterator<Item = Status>,
    complete: bool,
    allow_partial: bool,
    allow_inconclusive: bool,
) -> u8 {
    let mut statuses: Vec<Status> = statuses.into_iter().collect();
    if statuses.is_empty() {
        statuses.push(Status::Inconclusive);
    }
    let stopped = !complete || statuses.contains(&Status::Incomplete);
    if stopped && !allow_partial {
        return exit::RUN_FAILED;
    }
    let accepted = statuses.iter().all(|s| match s {
        Status::Pass => true,
        Status::Inconclusive => allow_inconclusive,
        Status::Incomplete => allow_partial,
        Status::Skipped | Status::Fail => false,
    });
    if accepted {
        exit::OK
    } else {
        exit::ACCEPTANCE_FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn severity_order_is_declared_once() {
        let mut v = Status::ALL.to_vec();
        v.reverse();
        v.sort();
        assert_eq!(v, Status::ALL);
        assert_eq!(
            Status::ALL.map(Status::word),
            ["PASS", "SKIPPED", "INCONCLUSIVE", "FAIL", "INCOMPLETE"]
        );
    }

    #[test]
    fn overall_is_the_worst_rule() {
        assert_eq!(overall([Pass, Pass], true), Pass);
        assert_eq!(overall([Pass, Skipped], true), Skipped);
        assert_eq!(overall([Skipped, Inconclusive, Pass], true), Inconclusive);
        assert_eq!(overall([Inconclusive, Fail, Skipped], true), Fail);
        assert_eq!(overall([Fail, Incomplete], true), Incomplete);
        // A run that stopped is INCOMPLETE whatever its rules say.
        assert_eq!(overall([Pass, Fail], false), Incomplete);
        // Nothing judged is never PASS.
        assert_eq!(overall([], true), Inconclusive);
    }

    #[test]
    fn missing_data_is_never_fail() {
        assert_eq!(Status::missing(true), Incomplete);
        assert_eq!(Status::missing(false), Skipped);
        // NaN is not a measurement: neither PASS nor FAIL.
        assert_eq!(judge(f64::NAN, Bound::AtLeast, 1.0, None), Inconclusive);
        assert_eq!(judge(f64::NAN, Bound::AtMost, 1.0, None), Inconclusive);
    }

    #[test]
    fn judge_compares_with_the_limit_and_its_interval() {
        assert_eq!(judge(2.0, Bound::AtLeast, 1.0, None), Pass);
        assert_eq!(judge(1.0, Bound::AtLeast, 1.0, None), Pass);
        assert_eq!(judge(0.5, Bound::AtLeast, 1.0, None), Fail);
        assert_eq!(judge(0.5, Bound::AtMost, 1.0, None), Pass);
        assert_eq!(judge(1.5, Bound::AtMost, 1.0, None), Fail);
        // The limit strictly inside the interval: cannot decide.
        assert_eq!(
            judge(0.9, Bound::AtLeast, 1.0, Some([0.8, 1.1])),
            Inconclusive
        );
        assert_eq!(
            judge(0.9, Bound::AtMost, 1.0, Some([0.8, 1.1])),
            Inconclusive
        );
        // On its edge or outside: decided.
        assert_eq!(judge(1.2, Bound::AtLeast, 1.0, Some([1.0, 1.3])), Pass);
        assert_eq!(judge(0.7, Bound::AtLeast, 1.0, Some([0.6, 0.9])), Fail);
        assert_eq!(Bound::AtLeast.symbol(false), "<");
        assert_eq!(Bound::AtMost.op(), "<=");
    }

    #[test]
    fn exit_codes() {
        use exit::{ACCEPTANCE_FAILED as ONE, OK, RUN_FAILED as THREE};
        let code = |s: &[Status], complete, partial, inconclusive| {
            exit_code(s.iter().copied(), complete, partial, inconclusive)
        };
        assert_eq!(code(&[Pass, Pass], true, false, false), OK);
        assert_eq!(code(&[Pass, Fail], true, false, true), ONE);
        // SKIPPED is not a pass, with or without the allowances.
        assert_eq!(code(&[Pass, Skipped], true, true, true), ONE);
        assert_eq!(code(&[Skipped, Inconclusive], true, false, true), ONE);
        assert_eq!(code(&[Pass, Inconclusive], true, false, false), ONE);
        assert_eq!(code(&[Pass, Inconclusive], true, false, true), OK);
        assert_eq!(code(&[Inconclusive], true, false, true), OK);
        // A run that stopped: 3, unless --allow-partial judges what it
        // measured (a FAIL still fails).
        assert_eq!(code(&[Pass, Incomplete], false, false, false), THREE);
        assert_eq!(code(&[Pass, Fail], false, false, false), THREE);
        assert_eq!(code(&[Pass, Incomplete], false, true, false), OK);
        assert_eq!(code(&[Fail, Incomplete], false, true, false), ONE);
        // A rule left INCOMPLETE in a record that says it completed.
        assert_eq!(code(&[Pass, Incomplete], true, false, false), THREE);
        // Nothing judged is INCONCLUSIVE.
        assert_eq!(code(&[], true, false, false), ONE);
        assert_eq!(code(&[], true, false, true), OK);
    }

    #[test]
    fn old_files_words_parse() {
        // accept.json findings and summary.json verdicts written before the
        // vocabulary was one: the same upper-case words.
        for (word, status) in [
            ("PASS", Pass),
            ("FAIL", Fail),
            ("INCONCLUSIVE", Inconclusive),
            ("SKIPPED", Skipped),
            ("INCOMPLETE", Incomplete),
        ] {
            let json = format!("\"{word}\"");
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
            assert_eq!(serde_json::to_string(&status).unwrap(), json);
            assert_eq!(status.word(), word);
        }
    }
}

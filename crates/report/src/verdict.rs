//! The verdict vocabulary of a run's report: one [`Status`] per rule
//! ([`RuleResult`]) and the run's [`Verdict`]. A module of its own so that
//! the figures ([`crate::analysis`]) and the rules ([`crate::acceptance`])
//! both depend on it and not on each other.

use serde::Serialize;

/// Result of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// The measured value meets the limit.
    Pass,
    /// It does not, or it was not measured.
    Fail,
    /// Not judged: the run cannot measure it (1 rank: nothing is communicated).
    Skipped,
    /// Not judged: the run stopped (timeout, dead rank, Ctrl-C) before the mode it needs ran.
    Incomplete,
    /// The measurement cannot decide: the limit lies inside the figure's
    /// 95 % interval, or the figure is flagged (within noise, impossible
    /// ordering of the modes). Exit 1 unless `--allow-inconclusive`.
    Inconclusive,
}

impl Status {
    /// The word printed in reports and used in summary.json.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skipped => "SKIPPED",
            Status::Incomplete => "INCOMPLETE",
            Status::Inconclusive => "INCONCLUSIVE",
        }
    }
}

/// One acceptance rule, evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleResult {
    /// Rule name as in `[acceptance]`, e.g. `min_mfu`.
    pub rule: String,
    /// PASS, FAIL, SKIPPED, INCOMPLETE or INCONCLUSIVE.
    pub status: Status,
    /// The measured figure (None when it was not measured).
    pub measured: Option<f64>,
    /// The limit.
    pub limit: f64,
    /// `>=` or `<=`: how measured must relate to limit.
    pub op: String,
    /// One line for people: what was measured against what.
    pub detail: String,
}

/// All rules of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Every rule, in `[acceptance]` order.
    pub rules: Vec<RuleResult>,
    /// True when the run completed and every rule passed.
    pub passed: bool,
    /// The verdict in one word: INCOMPLETE when the run stopped before every
    /// mode ran, else FAIL when a rule failed, else INCONCLUSIVE when a rule
    /// could not be decided within noise, else SKIPPED when a rule could not
    /// be judged, else PASS.
    pub status: Status,
}

impl Verdict {
    /// Rules that failed.
    pub fn failures(&self) -> impl Iterator<Item = &RuleResult> {
        self.rules.iter().filter(|r| r.status == Status::Fail)
    }

    /// Rules with the given status.
    pub fn count(&self, status: Status) -> usize {
        self.rules.iter().filter(|r| r.status == status).count()
    }

    /// Whether this verdict accepts the run: every rule passed and the run
    /// completed; with `allow_partial`, rules left INCOMPLETE by a partial
    /// run are not held against it (every measured rule must still pass);
    /// with `allow_inconclusive`, rules within noise are not either.
    pub fn accepted(&self, allow_partial: bool, allow_inconclusive: bool) -> bool {
        self.rules.iter().all(|r| match r.status {
            Status::Pass => true,
            Status::Incomplete => allow_partial,
            Status::Inconclusive => allow_inconclusive,
            Status::Fail | Status::Skipped => false,
        }) && (self.status != Status::Incomplete || allow_partial)
    }
}

impl Default for Verdict {
    fn default() -> Self {
        Verdict {
            rules: Vec::new(),
            passed: false,
            status: Status::Skipped,
        }
    }
}

//! The verdict of a run's report: one [`Status`] per rule ([`RuleResult`])
//! and the run's [`Verdict`]. The vocabulary is core's
//! ([`mfubench_core::verdict`]), shared with `mfubench accept`. A module of its own so that
//! the figures ([`crate::analysis`]) and the rules ([`crate::acceptance`])
//! both depend on it and not on each other.

use serde::Serialize;

/// Result of one rule: the one vocabulary of run and suite rules, with its
/// severity order and words ([`mfubench_core::verdict`]).
pub use mfubench_core::verdict::Status;

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
    /// The verdict in one word ([`mfubench_core::verdict::overall`]):
    /// INCOMPLETE when the run stopped before every mode ran, else the
    /// worst rule: FAIL when a rule failed, else INCONCLUSIVE when a rule
    /// could not be decided within noise, else SKIPPED when a rule could not
    /// be judged (a SKIPPED rule is not a pass), else PASS.
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

    /// Whether this verdict accepts the run: [`Verdict::exit_code`] is 0.
    pub fn accepted(&self, allow_partial: bool, allow_inconclusive: bool) -> bool {
        self.exit_code(allow_partial, allow_inconclusive) == mfubench_core::protocol::exit::OK
    }

    /// The exit code of this verdict ([`mfubench_core::verdict::exit_code`]):
    /// 3 for a run that stopped (unless `allow_partial`, which judges the
    /// rules of the modes that finished: rules left INCOMPLETE are not held
    /// against it, every measured rule must still pass), 0 when every rule
    /// passed (INCONCLUSIVE ones too with `allow_inconclusive`), else 1.
    pub fn exit_code(&self, allow_partial: bool, allow_inconclusive: bool) -> u8 {
        mfubench_core::verdict::exit_code(
            self.rules.iter().map(|r| r.status),
            self.status != Status::Incomplete,
            allow_partial,
            allow_inconclusive,
        )
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

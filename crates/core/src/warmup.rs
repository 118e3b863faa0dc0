//! When warmup ends: the rule, and what a run records of it.
//!
//! A fixed warmup count is either too short for a device whose first steps
//! pay one-off costs (page faults, allocator growth, GEMM heuristics, clock
//! ramp-up) or wasted on one that is ready at once. So warmup is a rule:
//!
//! - Every cell (mode, variant) runs one untimed step per **warmup round**;
//!   a rank's **round time** is the sum of its steps in that round (the sum
//!   of several modes is steadier than any one of them).
//! - A rank has **settled** after round w (w ≥ 2) when round w was not
//!   faster than round w − 1 by more than `run.warmup_tolerance` (default
//!   10 %): its steps have stopped getting faster. A round that got slower
//!   is noise or a slowdown, which the timed rounds' trend test
//!   (`step_time_drift`) and the telemetry report, not warmup.
//! - Warmup runs at least `run.warmup` rounds, and after that stops at the
//!   first round after which **every** rank has settled (one agreement, so
//!   that all ranks leave warmup together), or at `run.warmup_max` rounds,
//!   whichever comes first. Warmup ended by the cap without every rank
//!   settled is flagged `warmup_not_stable`.
//! - `run.warmup_max = run.warmup` is a fixed count (nothing is judged);
//!   `run.warmup = 0` is no warmup.
//!
//! The rule sees each rank's round times only, and run.json keeps them
//! ([`crate::result::RankRecord::warmup_round_s`]), so the summary's
//! [`WarmupOutcome`] is recomputed from the records like every other figure.

use serde::{Deserialize, Serialize};

/// The warmup rule of a run (from `[run]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupRule {
    /// Rounds always run (`run.warmup`).
    pub min_rounds: u32,
    /// Rounds at most (`run.warmup_max`, never below `min_rounds`).
    pub max_rounds: u32,
    /// How much faster than the round before a round may be and still count
    /// as settled (relative, `run.warmup_tolerance`).
    pub tolerance: f64,
}

impl WarmupRule {
    /// The rule of `run.warmup`, `run.warmup_max` and `run.warmup_tolerance`
    /// (a maximum below the minimum is the minimum: a fixed count).
    pub fn new(min_rounds: u32, max_rounds: u32, tolerance: f64) -> WarmupRule {
        WarmupRule {
            min_rounds,
            max_rounds: max_rounds.max(min_rounds),
            tolerance,
        }
    }

    /// The rule of a run's `[run]` settings.
    pub fn of_run(run: &crate::config::RunSettings) -> WarmupRule {
        WarmupRule::new(run.warmup, run.warmup_max, run.warmup_tolerance)
    }

    /// Whether rounds are judged at all (a fixed count is not).
    pub fn adaptive(&self) -> bool {
        self.max_rounds > self.min_rounds
    }

    /// Whether one rank has settled after the rounds in `round_s` (its round
    /// times, oldest first): the last round was not faster than the one
    /// before by more than the tolerance. Fewer than two rounds: not yet.
    pub fn settled(&self, round_s: &[f64]) -> bool {
        match round_s {
            [.., prev, last] => *last >= (1.0 - self.tolerance) * *prev,
            _ => false,
        }
    }

    /// Whether another warmup round runs after `done` rounds, given whether
    /// every rank has settled.
    pub fn another_round(&self, done: u32, every_rank_settled: bool) -> bool {
        done < self.min_rounds || (done < self.max_rounds && !every_rank_settled)
    }

    /// What a run's records say of its warmup: `ranks` holds each rank's
    /// round times (all of the same length, the rounds run). None when no
    /// warmup ran.
    pub fn outcome(&self, ranks: &[&[f64]]) -> Option<WarmupOutcome> {
        let rounds = ranks.iter().map(|r| r.len()).max()? as u32;
        if rounds == 0 {
            return None;
        }
        // The last round's change on the rank that was still speeding up
        // most (negative: faster).
        let last_change = ranks
            .iter()
            .filter_map(|r| match r {
                [.., prev, last] if *prev > 0.0 => Some(last / prev - 1.0),
                _ => None,
            })
            .min_by(f64::total_cmp);
        let stable = self
            .adaptive()
            .then(|| ranks.iter().all(|r| self.settled(r)));
        Some(WarmupOutcome {
            rounds,
            min_rounds: self.min_rounds,
            max_rounds: self.max_rounds,
            tolerance: self.tolerance,
            stable,
            last_change,
        })
    }
}

/// How a run's warmup ended (in `summary.warmup`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WarmupOutcome {
    /// Warmup rounds run.
    pub rounds: u32,
    /// Rounds the rule always runs (`run.warmup`).
    pub min_rounds: u32,
    /// Rounds the rule runs at most (`run.warmup_max`).
    pub max_rounds: u32,
    /// The rule's tolerance (relative).
    pub tolerance: f64,
    /// Whether every rank had settled when warmup ended; None for a fixed
    /// count (nothing judged).
    pub stable: Option<bool>,
    /// The last warmup round's time against the round before, on the rank
    /// whose round got faster most (−0.2: 20 % faster); None after one round.
    pub last_change: Option<f64>,
}

impl WarmupOutcome {
    /// Whether the cap ended warmup while a rank was still getting faster.
    pub fn not_stable(&self) -> bool {
        self.stable == Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_settles_when_its_round_stops_getting_faster() {
        let r = WarmupRule::new(1, 10, 0.10);
        assert!(!r.settled(&[]));
        assert!(!r.settled(&[1.0]));
        // 2.0 → 1.0: 50 % faster, not settled.
        assert!(!r.settled(&[2.0, 1.0]));
        // 1.0 → 0.95: 5 % faster, within 10 %.
        assert!(r.settled(&[2.0, 1.0, 0.95]));
        // exactly 10 % faster: settled (the bound is inclusive).
        assert!(r.settled(&[1.0, 0.9]));
        // slower: settled (a slowdown is not warmup).
        assert!(r.settled(&[1.0, 1.3]));
    }

    #[test]
    fn warmup_runs_the_minimum_then_stops_when_all_settled_or_at_the_cap() {
        let r = WarmupRule::new(2, 5, 0.10);
        assert!(r.another_round(0, true));
        assert!(r.another_round(1, true));
        assert!(!r.another_round(2, true));
        assert!(r.another_round(2, false));
        assert!(r.another_round(4, false));
        assert!(!r.another_round(5, false));
        // A fixed count: the maximum below the minimum is the minimum.
        let fixed = WarmupRule::new(3, 1, 0.10);
        assert_eq!(fixed.max_rounds, 3);
        assert!(!fixed.adaptive());
        assert!(fixed.another_round(2, true));
        assert!(!fixed.another_round(3, false));
        // No warmup.
        assert!(!WarmupRule::new(0, 0, 0.1).another_round(0, false));
    }

    #[test]
    fn the_outcome_is_recomputed_from_the_round_times() {
        let r = WarmupRule::new(1, 4, 0.10);
        // Rank 0 settled at round 3; rank 1 was still 20 % faster at round
        // 4, the cap.
        let a = [3.0, 1.2, 1.15, 1.1];
        let b = [3.0, 1.5, 1.25, 1.0];
        let o = r.outcome(&[&a, &b]).unwrap();
        assert_eq!(o.rounds, 4);
        assert_eq!(o.stable, Some(false));
        assert!(o.not_stable());
        assert!((o.last_change.unwrap() - (1.0 / 1.25 - 1.0)).abs() < 1e-12);
        // Both settled; the change shown is rank 0's 4.2 %, the larger
        // speed-up.
        let o = r.outcome(&[&a[..3], &[2.0, 1.0, 0.99]]).unwrap();
        assert_eq!(o.stable, Some(true));
        assert!((o.last_change.unwrap() - (1.15 / 1.2 - 1.0)).abs() < 1e-12);
        // A fixed count judges nothing; no rounds, no outcome.
        let fixed = WarmupRule::new(2, 2, 0.10);
        assert_eq!(fixed.outcome(&[&[2.0, 1.0]]).unwrap().stable, None);
        assert_eq!(fixed.outcome(&[&[]]), None);
        assert_eq!(fixed.outcome(&[]), None);
        // One round: no change to show.
        assert_eq!(r.outcome(&[&[1.0]]).unwrap().last_change, None);
    }
}

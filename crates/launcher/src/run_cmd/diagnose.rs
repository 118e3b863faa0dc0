//! How a job that ended is judged, and who is named: a pure function of
//! what supervision saw ([`Outcome`]), so every message is unit-tested on
//! known outcomes. `launch` reports what was measured first, then turns a
//! [`Failure`] into its exit code.
//!
//! The rules (see docs/running.md, "Faults"):
//! - Ctrl-C: interrupted (exit 130), keeping what was written.
//! - `--timeout`: the ranks that fell behind while others waited for them,
//!   else those that had not finished (exit 3).
//! - A failed job: the ranks that reported an error (the others stopped
//!   with them), the dead ranks that are deaths of their own, the ranks
//!   that fell behind and who waited for them, else the ranks that had not
//!   finished; exit 2 when every dead rank reported bad input (found before
//!   any compute), else 3.

use std::time::Duration;

use mfubench_core::protocol::exit::{RUN_FAILED, USAGE};

use super::supervise::{Outcome, StopReason, ABORT_GRACE};

/// Why a job did not finish as it should, with the one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Ctrl-C or SIGTERM (exit 130).
    Interrupted(String),
    /// Timed out, a rank died, stopped or failed (exit 3).
    Run(String),
    /// Every rank refused its input before any compute (exit 2).
    BadInput(String),
}

/// Judges a job of `np` ranks started with `program`; `kept` says where
/// the written results are ("; what was written is in DIR", or empty).
/// None when the job finished.
pub fn diagnose(
    o: &Outcome,
    np: u32,
    program: &str,
    timeout: Option<Duration>,
    kept: &str,
) -> Option<Failure> {
    let unfinished = o.unfinished(np);
    let (behind, waiting) = o.culprits(np);
    let failed_ranks = o.failed_ranks();
    // Named as waiting when others fell behind, and stopped with the rank
    // that reported an error: not deaths of their own.
    let agreed = |c: Option<i32>| c == Some(i32::from(RUN_FAILED)) || c == Some(i32::from(USAGE));
    let deaths: Vec<String> = o
        .deaths
        .iter()
        .filter(|d| {
            (behind.is_empty() || d.code != Some(i32::from(RUN_FAILED)))
                && (failed_ranks.is_empty() || !agreed(d.code))
        })
        .map(|d| o.describe_death(d))
        .collect();
    let culprit_text = |behind: &[String], waiting: &[String]| {
        let mut t = format!("; fell behind: {}", behind.join(", "));
        if !waiting.is_empty() {
            t.push_str(&format!("; waiting for them: {}", waiting.join(", ")));
        }
        t
    };
    match o.stopped {
        Some(StopReason::Interrupted) => {
            return Some(Failure::Interrupted(format!(
                "interrupted after {:.1} s{kept}",
                o.elapsed.as_secs_f64()
            )));
        }
        Some(StopReason::Timeout) => {
            let who = if !behind.is_empty() {
                culprit_text(&behind, &waiting)
            } else if unfinished.is_empty() {
                String::new()
            } else {
                format!("; ranks that had not finished: {}", unfinished.join(", "))
            };
            return Some(Failure::Run(format!(
                "timed out after {}{who}{kept}",
                humantime::format_duration(timeout.unwrap_or_default())
            )));
        }
        None => {}
    }
    if o.status.success() {
        return None;
    }
    let how = match (
        o.status.code(),
        std::os::unix::process::ExitStatusExt::signal(&o.status),
    ) {
        _ if o.killed_after_abort => format!(
            "did not end the job within {} s of the failure and was killed",
            ABORT_GRACE.as_secs()
        ),
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "failed".to_string(),
    };
    let mut msg = format!("the run failed: {program} {how}");
    if !failed_ranks.is_empty() {
        msg.push_str(&format!(
            "; failed: {}; the other ranks stopped with it",
            failed_ranks.join("; ")
        ));
    }
    if !deaths.is_empty() {
        msg.push_str(&format!("; {}", deaths.join("; ")));
    }
    if !behind.is_empty() {
        msg.push_str(&culprit_text(&behind, &waiting));
    } else if let Some(at) = o.hung_inside(np) {
        msg.push_str(&format!(
            "; every rank was inside the same op ({at}) when a watchdog gave up: it hung inside (a device, a link or the communication library), and no rank fell behind (which gave up first is a race); its ranks: {}",
            unfinished.join(", ")
        ));
    } else if !unfinished.is_empty() && failed_ranks.is_empty() {
        let other = if deaths.is_empty() { "" } else { "other " };
        msg.push_str(&format!(
            "; {other}ranks that had not finished: {}",
            unfinished.join(", ")
        ));
    }
    msg.push_str(kept);
    // The worker exits 2 for bad input it detects before any compute; a
    // rank killed by a signal is a run failure whatever mpirun returns.
    let bad_input = o.status.code() == Some(i32::from(USAGE))
        && o.deaths.iter().all(|d| d.code == Some(i32::from(USAGE)));
    Some(if bad_input {
        Failure::BadInput(msg)
    } else {
        Failure::Run(msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_cmd::events::RankDeath;
    use crate::run_cmd::supervise::test_outcome as outcome;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    const KEPT: &str = "; what was written is in /r/x";

    #[test]
    fn a_job_that_finished_is_no_failure() {
        let mut o = outcome(2);
        o.status = ExitStatus::from_raw(0);
        o.finished = [0, 1].into();
        assert_eq!(diagnose(&o, 2, "mpirun", None, ""), None);
    }

    #[test]
    fn ctrl_c_is_interrupted_keeping_what_was_written() {
        let mut o = outcome(2);
        o.stopped = Some(StopReason::Interrupted);
        o.elapsed = Duration::from_millis(2500);
        assert_eq!(
            diagnose(&o, 2, "mpirun", None, KEPT),
            Some(Failure::Interrupted(format!(
                "interrupted after 2.5 s{KEPT}"
            )))
        );
    }

    #[test]
    fn a_timeout_names_the_unfinished_ranks() {
        let mut o = outcome(3);
        o.stopped = Some(StopReason::Timeout);
        o.finished = [0].into();
        let Some(Failure::Run(m)) = diagnose(&o, 3, "mpirun", Some(Duration::from_secs(90)), "")
        else {
            panic!("not a run failure")
        };
        assert_eq!(
            m,
            "timed out after 1m 30s; ranks that had not finished: rank 1 (host host1, pid 101), rank 2 (host host2, pid 102)"
        );
    }

    #[test]
    fn a_rank_that_reported_an_error_is_named_and_the_others_stopped_with_it() {
        let mut o = outcome(2);
        o.errors = [(1, "out of memory".to_string())].into();
        let Some(Failure::Run(m)) = diagnose(&o, 2, "mpirun", None, KEPT) else {
            panic!("not a run failure")
        };
        assert!(
            m.starts_with("the run failed: mpirun exited with code 3; failed: rank 1"),
            "{m}"
        );
        assert!(
            m.contains("out of memory; the other ranks stopped with it"),
            "{m}"
        );
        assert!(m.ends_with(KEPT), "{m}");
    }

    #[test]
    fn a_killed_rank_is_a_death_of_its_own() {
        let mut o = outcome(2);
        o.status = ExitStatus::from_raw(9);
        o.deaths = vec![RankDeath {
            rank: 1,
            host: Some("host1".into()),
            what: "was killed by signal 9 (Killed)".into(),
            code: None,
        }];
        o.finished = [0].into();
        let Some(Failure::Run(m)) = diagnose(&o, 2, "srun", None, "") else {
            panic!("not a run failure")
        };
        assert!(
            m.starts_with("the run failed: srun was killed by signal 9; rank 1"),
            "{m}"
        );
        assert!(m.contains("killed by signal 9 (Killed)"), "{m}");
    }

    #[test]
    fn bad_input_on_every_rank_is_exit_2_and_a_stuck_launcher_is_said() {
        let mut o = outcome(2);
        o.status = ExitStatus::from_raw(2 << 8);
        o.deaths = (0..2)
            .map(|r| RankDeath {
                rank: r,
                host: None,
                what: "exited with code 2".into(),
                code: Some(2),
            })
            .collect();
        assert!(matches!(
            diagnose(&o, 2, "mpirun", None, ""),
            Some(Failure::BadInput(_))
        ));
        let mut o = outcome(2);
        o.killed_after_abort = true;
        let Some(Failure::Run(m)) = diagnose(&o, 2, "mpirun", None, "") else {
            panic!("not a run failure")
        };
        assert!(
            m.starts_with(&format!(
                "the run failed: mpirun did not end the job within {} s of the failure and was killed",
                ABORT_GRACE.as_secs()
            )),
            "{m}"
        );
    }
}

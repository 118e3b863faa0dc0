//! The contract between the launcher (`mfubench`) and the worker ranks
//! (`mfubench-worker`), defined once: the progress events the worker prints
//! and the launcher parses, the line prefix that marks them, the
//! environment variable that carries the launch description, the exit codes
//! of both programs, and the rules for run ids.
//!
//! Progress events are single lines on stdout: [`EVENT_PREFIX`] followed by
//! one JSON object tagged by `"event"` ([`Event`]). Every rank prints
//! `hello` at start, `waiting` when it has waited more than a second for
//! the others, and `rank_done` before a normal exit; rank 0 prints `start`,
//! `iteration`, `mode_done` and `done`. Every rank also prints a
//! `heartbeat` every [`HEARTBEAT_EVERY`] from a thread of its own (where it
//! is: mode, iteration, op), so that the launcher can tell a rank that
//! stopped reporting (stopped, hung in the kernel, or cut off from the
//! network) from the ranks waiting for it, on any host; and `aborting`
//! just before its watchdog ends the job. Everything else on
//! stdout/stderr is for people. A launcher ignores events it does not know
//! (`Unknown`), so a newer worker can add events.

use serde::{Deserialize, Serialize};

/// The prefix of a progress event line.
pub const EVENT_PREFIX: &str = "@@mfubench ";

/// Environment variable through which the launcher passes its
/// [`crate::result::LaunchInfo`] (JSON) to the ranks, for run.json.
pub const LAUNCH_ENV: &str = "MFUBENCH_LAUNCH_JSON";

/// Set (to anything) on the ranks, makes every node leader of a run large
/// enough to shard its rank records send its shard to rank 0, which writes
/// it, as a leader does by itself when it does not see rank 0's results
/// folder (a folder not shared between nodes). Forward it with `--env`.
pub const SHARDS_THROUGH_RANK0_ENV: &str = "MFUBENCH_SHARDS_THROUGH_RANK0";

/// How often every rank prints a `heartbeat` event. Low enough for
/// thousands of ranks through mpirun's output forwarding; a rank silent for
/// [`SILENT_AFTER`] while others were heard is named as the one that
/// stopped reporting.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A rank not heard from (no heartbeat, no line) for this long when the job
/// failed, while other ranks were, stopped reporting: three heartbeats
/// missed.
pub const SILENT_AFTER: std::time::Duration = std::time::Duration::from_secs(3);

/// Exit codes of `mfubench` and `mfubench-worker` (documented in docs/running.md).
pub mod exit {
    /// Everything passed (or the command had nothing to judge).
    pub const OK: u8 = 0;
    /// The run completed but an acceptance rule (or a comparison) failed,
    /// or a rule was INCONCLUSIVE without `--allow-inconclusive`.
    pub const ACCEPTANCE_FAILED: u8 = 1;
    /// Bad command line, config or input file; a backend that cannot run
    /// here; not enough memory — found before any compute.
    pub const USAGE: u8 = 2;
    /// The run failed or timed out (the watchdog aborts with this code).
    pub const RUN_FAILED: u8 = 3;
    /// Interrupted (Ctrl-C / SIGTERM); results already written are kept.
    pub const INTERRUPTED: u8 = 130;
}

/// A progress event of the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Every rank at start.
    Hello {
        /// MPI rank.
        rank: u64,
        /// Host name.
        #[serde(default)]
        host: String,
        /// Rank on its host.
        #[serde(default)]
        local_rank: u64,
        /// Process id (on its host).
        #[serde(default)]
        pid: u32,
        /// Device, e.g. `cpu`, `GPU 3`.
        #[serde(default)]
        device: String,
        /// The Slurm step this rank runs in (`JOBID.STEPID`), when started
        /// by srun: the launcher `scancel`s it if the step does not end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slurm_step: Option<String>,
        /// Open MPI's job id (`OMPI_MCA_ess_base_jobid`), which names the
        /// job's shared-memory segments: removed by the launcher when a
        /// killed job left them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ompi_jobid: Option<u64>,
        /// Open MPI's session directory of the job on this host
        /// (`OMPI_MCA_orte_jobfam_session_dir`; with Open MPI 5, PRRTE's
        /// `PMIX_SERVER_TMPDIR`), likewise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ompi_session_dir: Option<String>,
        /// Open MPI 5's job id, hashed from `PMIX_NAMESPACE` as Open MPI
        /// does, which names the job's `sm_segment.*` files: removed by the
        /// launcher when a killed job left them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ompi5_jobid: Option<u64>,
    },
    /// Rank 0: the run begins.
    Start {
        /// Run id.
        #[serde(default)]
        run_id: String,
        /// Run directory.
        #[serde(default)]
        run_dir: String,
        /// Ranks.
        #[serde(default)]
        world_size: u64,
        /// Modes in configured order.
        #[serde(default)]
        modes: Vec<String>,
        /// `interleaved` or `blocked`.
        #[serde(default)]
        schedule: String,
        /// Warmup rounds always run.
        #[serde(default)]
        warmup: u32,
        /// Warmup rounds at most (more than `warmup`: warmup ends when the
        /// step time is stable).
        #[serde(default)]
        warmup_max: u32,
        /// Timed iterations per mode.
        #[serde(default)]
        iterations: u32,
        /// Peak TFLOP/s per device used for MFU.
        #[serde(default)]
        peak_tflops: f64,
        /// Where the peak came from (`spec`, `config`, `calibrated`).
        #[serde(default)]
        peak_source: String,
    },
    /// Rank 0 after each step.
    Iteration {
        /// Mode name.
        mode: String,
        /// `warmup`, `timed` or `check`.
        #[serde(default)]
        phase: String,
        /// 1-based within the phase.
        iter: u32,
        /// Iterations in the phase.
        of: u32,
        /// This step's time on rank 0, seconds.
        #[serde(default)]
        step_s: f64,
    },
    /// Rank 0: a mode has all its timed steps.
    ModeDone {
        /// Mode name.
        mode: String,
        /// Median step time of rank 0, seconds.
        #[serde(default)]
        median_step_s: f64,
    },
    /// Rank 0 (`mfubench soak`): a window closed and its line is in
    /// soak.jsonl.
    SoakWindow {
        /// 0-based window number.
        index: u32,
        /// Windows the soak closes if it runs its whole duration.
        windows: u64,
        /// When it closed, seconds since the first window opened.
        end_s: f64,
        /// Median over ranks of the window's GEMM rate, TFLOP/s.
        #[serde(default)]
        median_tflops: Option<f64>,
    },
    /// Rank 0: run.json written.
    Done {
        /// Run directory.
        #[serde(default)]
        run_dir: String,
        /// Path of run.json.
        #[serde(default)]
        run_json: String,
    },
    /// A rank that has waited more than a second for the other ranks (at
    /// the barrier before a step, or in a collective): it is healthy and
    /// waiting, so when the job fails the launcher names the ranks that did
    /// not say this as the ones that fell behind. Sent once per wait.
    Waiting {
        /// MPI rank.
        rank: u64,
        /// Where it waits, e.g. `barrier before mode comm, timed iteration 3`.
        #[serde(default)]
        at: String,
    },
    /// Every rank, every [`HEARTBEAT_EVERY`], from a thread of its own:
    /// where it is. A stopped or unreachable rank stops sending these.
    Heartbeat {
        /// MPI rank.
        rank: u64,
        /// Mode of the current step (empty before the first step).
        #[serde(default)]
        mode: String,
        /// Which step, e.g. `timed iteration 3`, `warmup iteration 1`.
        #[serde(default)]
        iteration: String,
        /// What the rank does in it, e.g. `barrier`, `step`, `gather`.
        #[serde(default)]
        op: String,
    },
    /// A rank whose watchdog gave up and is about to end the job (MPI_Abort
    /// or exit 3): the launcher starts its abort grace period.
    Aborting {
        /// MPI rank.
        rank: u64,
        /// Why, e.g. `waited 5 s at the barrier before mode comm`.
        #[serde(default)]
        reason: String,
    },
    /// A rank that hit an error of its own (it also prints it): the launcher
    /// names it as the rank that failed, and the ranks that stopped with it
    /// (the same exit code, agreed) as such.
    RankError {
        /// MPI rank.
        rank: u64,
        /// The error, e.g. `cannot write /data/r1/run.json: No space left on device`.
        #[serde(default)]
        message: String,
    },
    /// Every rank just before exiting normally.
    RankDone {
        /// MPI rank.
        rank: u64,
    },
    /// An event this launcher does not know (a newer worker): ignored.
    #[serde(other)]
    Unknown,
}

impl Event {
    /// The line a worker prints for this event (without the newline).
    pub fn to_line(&self) -> String {
        // Serializing an enum of plain fields cannot fail.
        format!(
            "{EVENT_PREFIX}{}",
            serde_json::to_string(self).unwrap_or_default()
        )
    }

    /// Parses the text of a worker line: `Some(Ok)` for an event,
    /// `Some(Err)` for a malformed one, `None` for human text.
    pub fn parse_line(text: &str) -> Option<Result<Event, serde_json::Error>> {
        let json = text.trim_end_matches('\r').strip_prefix(EVENT_PREFIX)?;
        Some(serde_json::from_str(json))
    }
}

/// Why a run id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--run-id \"{0}\": use a plain directory name of letters, digits, '-', '_' and '.' (at most 128 characters, not starting with '.' or '-')")]
pub struct BadRunId(pub String);

/// Checks a run id: it names a directory under the results folder, so it
/// must be one plain path component.
pub fn validate_run_id(id: &str) -> Result<(), BadRunId> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && !id.starts_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(BadRunId(id.to_string()))
    }
}

/// The default run id for a run started at `epoch_secs` by process `pid`:
/// UTC time plus the low 16 bits of the pid, e.g. `20261128-134501-1a2b`.
pub fn default_run_id(epoch_secs: i64, pid: u32) -> String {
    format!(
        "{}-{:04x}",
        crate::time::utc_stamp(epoch_secs),
        pid & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_lines() {
        let e = Event::Iteration {
            mode: "comm".into(),
            phase: "timed".into(),
            iter: 3,
            of: 10,
            step_s: 0.25,
        };
        let line = e.to_line();
        assert!(line.starts_with("@@mfubench {\"event\":\"iteration\""));
        assert_eq!(Event::parse_line(&line).unwrap().unwrap(), e);
        assert!(Event::parse_line("hello").is_none());
        assert!(Event::parse_line("@@mfubench {").unwrap().is_err());
        assert_eq!(
            Event::parse_line("@@mfubench {\"event\":\"from_the_future\"}")
                .unwrap()
                .unwrap(),
            Event::Unknown
        );
    }

    #[test]
    fn run_id_rules() {
        for ok in ["20261128-134501-1a2b", "job.123", "a_b"] {
            assert!(validate_run_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "..",
            "a b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(validate_run_id(bad).is_err(), "{bad}");
        }
        assert_eq!(default_run_id(0, 0x12345), "19700101-000000-2345");
        assert!(validate_run_id(&default_run_id(1_800_000_000, 7)).is_ok());
    }
}

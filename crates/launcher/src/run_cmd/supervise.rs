//! Supervising a running job: live output by rank, progress, timeout,
//! Ctrl-C / SIGTERM, dead ranks, and leaving nothing behind.
//!
//! The launcher program (mpirun / srun) is started in a process group of
//! its own. That does two things: Ctrl-C at the terminal reaches only
//! `mfubench` (which then stops the job in order instead of racing it), and
//! the whole local job — launcher program, local ranks, rsh agents — can be
//! signalled at once with `killpg`. Stopping is SIGTERM to the group (mpirun
//! and srun then tear down remote ranks too), then SIGKILL after a grace
//! period, then a last sweep over the PIDs the ranks announced in their
//! hello events, restricted to processes whose command line carries this
//! run's id so that a recycled PID is never hit.
//!
//! **Aborts finish.** When a rank's watchdog gives up (its `aborting` event)
//! or mpirun / srun reports a dead rank, the launcher program normally ends
//! the job by itself; but mpirun waits for the daemon of an unreachable host
//! forever. So [`ABORT_GRACE`] after the first abort or death the launcher
//! SIGKILLs the launcher program's process group (and, under srun,
//! `scancel`s the step, saying whether slurmctld accepted it) and goes on:
//! its exit never waits on a host that cannot be reached. What may be left
//! on such a host is in docs/running.md.
//!
//! **Culprits.** Every rank sends a heartbeat (where it is) every second;
//! when the job fails, a rank not heard from for
//! [`mfubench_core::protocol::SILENT_AFTER`] while others were is named as
//! the one that stopped reporting, on any host — besides local ranks seen
//! stopped (state T) in /proc.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::cleanup::{remove_stale, MpiFiles};
use super::command::LauncherKind;
use super::events::{parse_event, split_tag, DeathParser, Event, RankDeath, Stream};
use mfubench_core::protocol::SILENT_AFTER;

/// Time between SIGTERM and SIGKILL when stopping a job.
const GRACE: Duration = Duration::from_secs(3);
/// Time mpirun / srun gets to end the job by itself after a rank aborted
/// or died, before its process group is killed (documented in docs/running.md).
pub const ABORT_GRACE: Duration = Duration::from_secs(10);
/// Longest wait for `scancel`.
const SCANCEL_LIMIT: Duration = Duration::from_secs(5);
/// How long to keep reading output after the launcher program exited
/// (orphaned ranks may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);
/// Interval of the plain progress lines on a non-TTY.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// What to run and how.
#[derive(Debug)]
pub struct Job {
    /// mpirun or srun (decides how output lines are tagged).
    pub kind: LauncherKind,
    /// The command, program first.
    pub argv: Vec<String>,
    /// Extra environment for the launcher program.
    pub env: Vec<(String, String)>,
    /// Ranks expected.
    pub np: u32,
    /// Run id (used to recognise our own worker processes).
    pub run_id: String,
    /// Stop the job after this long.
    pub timeout: Option<Duration>,
    /// Draw an indicatif progress bar (stderr is a terminal).
    pub tty: bool,
    /// A soak: the first Ctrl-C, SIGTERM or timeout creates this file (the
    /// ranks end at the next window boundary) and waits this long before
    /// stopping the job outright.
    pub soft_stop: Option<(std::path::PathBuf, Duration)>,
    /// A soak: called with each window's index when rank 0 says it closed.
    pub on_soak_window: Option<WindowHook>,
}

/// A soak's per-window callback ([`Job::on_soak_window`]).
#[derive(Clone)]
pub struct WindowHook(pub std::sync::Arc<dyn Fn(u32) + Send + Sync>);

impl std::fmt::Debug for WindowHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WindowHook")
    }
}

/// Why the job was stopped by us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `--timeout` expired.
    Timeout,
    /// SIGINT or SIGTERM reached `mfubench`.
    Interrupted,
}

/// What a rank told us about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankInfo {
    /// Host name.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// Its Slurm step (`JOBID.STEPID`), under srun.
    pub slurm_step: Option<String>,
    /// Open MPI's job id and session directory, as the rank saw them.
    pub ompi_jobid: Option<u64>,
    /// See [`RankInfo::ompi_jobid`].
    pub ompi_session_dir: Option<String>,
    /// Open MPI 5's job id (names its `sm_segment.*` files).
    pub ompi5_jobid: Option<u64>,
}

/// What was last heard from a rank before the job failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    /// How long before the failure it was last heard from.
    pub for_s: f64,
    /// Its last heartbeat's position, e.g. `mode comm, timed iteration 3, step`
    /// or, in the acceptance suite, `accept link stage, round 2/3, pass 4/5
    /// (timed)`.
    pub last_at: String,
}

/// How the job ended and what was seen on the way.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status of the launcher program.
    pub status: ExitStatus,
    /// Set when we stopped the job.
    pub stopped: Option<StopReason>,
    /// A soak asked to end at a window boundary (and ended by itself):
    /// why.
    pub soft_stopped: Option<StopReason>,
    /// Ranks that said hello.
    pub ranks: BTreeMap<u64, RankInfo>,
    /// Ranks that said rank_done.
    pub finished: BTreeSet<u64>,
    /// Ranks that said they were waiting for others, and where (the last
    /// such event of each).
    pub waiting: BTreeMap<u64, String>,
    /// Process states (`/proc/PID/stat`) of local ranks that were not
    /// waiting, noted when another rank said it waited.
    pub states: BTreeMap<u64, char>,
    /// Dead ranks reported by mpirun / srun before the job failed (not the
    /// ones its teardown ended).
    pub deaths: Vec<RankDeath>,
    /// run.json announced by rank 0's done event.
    pub run_json: Option<String>,
    /// Worker processes still alive after the final sweep (should be none).
    pub survivors: Vec<u32>,
    /// Ranks that stopped reporting: silent for
    /// [`mfubench_core::protocol::SILENT_AFTER`] or more when the job
    /// failed, while another rank was heard from within it.
    pub silent: BTreeMap<u64, Silence>,
    /// The launcher program did not end within [`ABORT_GRACE`] of an abort
    /// or a dead rank, and its process group was killed.
    pub killed_after_abort: bool,
    /// Errors the ranks reported of their own (`rank_error`), the first of
    /// each rank.
    pub errors: BTreeMap<u64, String>,
    /// Ranks whose watchdog gave up waiting for the others (`aborting`),
    /// with its reason: waiters, whatever their process state is after.
    pub aborting: BTreeMap<u64, String>,
    /// Where each rank last said it was (its heartbeats): `accept node
    /// stage, all_reduce …`, `mode comm, timed iteration 3, step`.
    pub positions: BTreeMap<u64, String>,
    /// Open MPI files of the killed job removed (session directory,
    /// shared-memory segments).
    pub removed: Vec<std::path::PathBuf>,
    /// Wall time of the job.
    pub elapsed: Duration,
}

impl Outcome {
    /// "rank 1 (host X, pid P)" for every expected rank that had not said
    /// rank_done and is not reported dead; ranks that never said hello are
    /// named as such.
    pub fn unfinished(&self, np: u32) -> Vec<String> {
        (0..u64::from(np))
            .filter(|r| !self.finished.contains(r) && !self.deaths.iter().any(|d| d.rank == *r))
            .map(|r| match self.ranks.get(&r) {
                Some(i) => format!("rank {r} (host {}, pid {})", i.host, i.pid),
                None => format!("rank {r} (never started)"),
            })
            .collect()
    }

    /// The ranks that held the job up, when it failed or timed out: the
    /// unfinished ranks (not reported dead) seen stopped (state T) or gone,
    /// or that stopped reporting (heartbeats) while others did not; failing
    /// those, when other ranks said they were waiting, every rank that never
    /// said so; and, separately, the ranks that were waiting for them. Both
    /// empty of culprits when no rank can be told from another.
    pub fn culprits(&self, np: u32) -> (Vec<String>, Vec<String>) {
        if !self.errors.is_empty() {
            // A rank said what went wrong: it is the culprit, named with its
            // error ([`Outcome::failed_ranks`]); the others stopped with it.
            return (Vec::new(), Vec::new());
        }
        let mut behind = Vec::new();
        let mut others = Vec::new();
        let mut waiting = Vec::new();
        for r in 0..u64::from(np) {
            if self.finished.contains(&r) {
                continue;
            }
            if let Some(d) = self.deaths.iter().find(|d| d.rank == r) {
                // A rank that ended itself with the run-failed code was its
                // watchdog giving up on the others: it waited.
                if d.code == Some(i32::from(crate::exit::RUN_FAILED)) {
                    waiting.push(format!("{} (its watchdog gave up)", self.describe_death(d)));
                }
                continue;
            }
            let who = match self.ranks.get(&r) {
                Some(i) => format!("rank {r} (host {}, pid {})", i.host, i.pid),
                None => format!("rank {r} (never started)"),
            };
            let stopped = matches!(self.states.get(&r), Some('T') | Some('t'));
            if let Some(reason) = self.aborting.get(&r).filter(|_| !stopped) {
                // Its watchdog gave up waiting for the others and it ended
                // itself: a waiter, even though its process is gone by the
                // time the states are read.
                waiting.push(format!("{who} (its watchdog gave up: {reason})"));
                continue;
            }
            let silent = self.silent.get(&r).map(|s| {
                format!(
                    "stopped reporting {:.1} s before the failure (last at {})",
                    s.for_s, s.last_at
                )
            });
            match (self.states.get(&r), silent) {
                (Some('T') | Some('t'), s) => {
                    let s = s.map(|s| format!("; {s}")).unwrap_or_default();
                    behind.push(format!("{who}: process stopped (state T){s}"));
                }
                // Gone while another rank was reported dead: ended by the
                // teardown mpirun / srun started, a victim.
                (Some('Z'), _) if self.deaths.is_empty() => {
                    behind.push(format!("{who}: process gone"))
                }
                (_, Some(s)) => behind.push(format!("{who}: {s}")),
                _ => {
                    if let Some(at) = self.waiting.get(&r) {
                        waiting.push(format!("{who} waiting at {at}"));
                    } else if let Some(at) = self.in_collective_given_up(r) {
                        // Inside the op where another rank's watchdog gave
                        // up: waiting in it too, not behind (who gives up
                        // first is a race when the op itself hung).
                        waiting.push(format!("{who} inside the same op ({at})"));
                    } else {
                        // Running or sleeping, and it never said it waited:
                        // stuck in its own work; named only if others waited.
                        others.push(who);
                    }
                }
            }
        }
        if waiting.is_empty() && behind.is_empty() {
            // Nobody said it waited and none was seen stopped: no rank can
            // be told from another.
            return (Vec::new(), others);
        }
        if waiting.is_empty() {
            // A stopped rank, and the others (not seen waiting yet).
            return (behind, others);
        }
        if behind.is_empty() {
            // Others waited, and these neither waited nor were seen stopped
            // or silent: stuck in their own work.
            behind = others;
        }
        (behind, waiting)
    }

    /// Where rank `r` last was, when that is where a rank whose watchdog
    /// gave up last was too (both inside one op), and that rank had not
    /// said it was waiting for peers. (A rank that said so waited for
    /// someone: one that sits in the same coarse position without saying
    /// it, e.g. late into a step, is behind.)
    fn in_collective_given_up(&self, r: u64) -> Option<&str> {
        let at = self
            .positions
            .get(&r)
            .filter(|p| !p.is_empty() && *p != "start-up")?;
        self.aborting
            .keys()
            .any(|a| *a != r && !self.waiting.contains_key(a) && self.positions.get(a) == Some(at))
            .then_some(at.as_str())
    }

    /// The op every unfinished rank was inside when the job failed, when
    /// they all were in the same one and a watchdog gave up there: the op
    /// itself hung (a device, a link or the communication library) and no
    /// rank fell behind.
    pub fn hung_inside(&self, np: u32) -> Option<&str> {
        let unfinished: Vec<u64> = (0..u64::from(np))
            .filter(|r| !self.finished.contains(r))
            .collect();
        let first = *unfinished.first()?;
        let at = self
            .positions
            .get(&first)
            .filter(|p| !p.is_empty() && *p != "start-up")?;
        let all_there = unfinished.iter().all(|r| {
            self.positions.get(r) == Some(at)
                && !matches!(self.states.get(r), Some('T') | Some('t'))
        });
        let gave_up = unfinished.iter().any(|r| self.aborting.contains_key(r));
        (all_there && gave_up && self.errors.is_empty() && self.silent.is_empty())
            .then_some(at.as_str())
    }

    /// "rank 0 (host H, pid P): ERROR" for every rank that reported an error.
    pub fn failed_ranks(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|(r, e)| match self.ranks.get(r) {
                Some(i) => format!("rank {r} (host {}, pid {}): {e}", i.host, i.pid),
                None => format!("rank {r}: {e}"),
            })
            .collect()
    }

    /// A dead rank with its host, from the launcher's report or else from
    /// the rank's hello.
    pub fn describe_death(&self, d: &RankDeath) -> String {
        let host = d
            .host
            .clone()
            .or_else(|| self.ranks.get(&d.rank).map(|i| i.host.clone()))
            .unwrap_or_else(|| "unknown host".to_string());
        let pid = self
            .ranks
            .get(&d.rank)
            .map(|i| format!(", pid {}", i.pid))
            .unwrap_or_default();
        format!("rank {} (host {host}{pid}) {}", d.rank, d.what)
    }
}

/// This host's name, as the ranks report theirs.
fn local_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
}

/// The state letter of a local process (`R`, `S`, `T`, `Z`…), None if gone.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces or parentheses: the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Progress display: a bar on a terminal, plain lines elsewhere.
struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    total: u64,
    done: u64,
    first_iter_at: Option<Instant>,
    last_plain: Option<Instant>,
    current: String,
    np: u32,
    hellos: usize,
    /// Warmup rounds always run (the total counts these).
    warmup: u32,
}

impl Progress {
    fn new(tty: bool, np: u32) -> Progress {
        let bar = tty.then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_message(format!("starting {np} rank(s)…"));
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress {
            bar,
            started: Instant::now(),
            total: 0,
            done: 0,
            first_iter_at: None,
            last_plain: None,
            warmup: 0,
            current: String::new(),
            np,
            hellos: 0,
        }
    }

    /// Prints a line without tearing the bar.
    fn out(&self, err: bool, line: &str) {
        let print = || {
            if err {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            } else {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        };
        match &self.bar {
            Some(b) => b.suspend(print),
            None => print(),
        }
    }

    fn hello(&mut self) {
        self.hellos += 1;
        if self.hellos == self.np as usize {
            self.note(&format!("all {} rank(s) started", self.np));
        }
    }

    fn note(&self, line: &str) {
        self.out(true, &format!("mfubench: {line}"));
    }

    fn start(&mut self, modes: usize, warmup: u32, iterations: u32) {
        self.total = modes as u64 * u64::from(warmup + iterations);
        self.warmup = warmup;
        if let Some(b) = &self.bar {
            b.set_length(self.total);
            b.set_position(0);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:20.cyan/blue} {pos}/{len} {wide_msg} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
        }
    }

    /// Seconds left, from the mean iteration time so far.
    fn eta(&self) -> Option<f64> {
        let t0 = self.first_iter_at?;
        if self.done < 2 || self.total == 0 {
            return None;
        }
        let per = t0.elapsed().as_secs_f64() / (self.done - 1) as f64;
        Some(per * self.total.saturating_sub(self.done) as f64)
    }

    fn iteration(&mut self, mode: &str, phase: &str, iter: u32, of: u32, step_s: f64) {
        self.done += 1;
        // Warmup rounds beyond the minimum (the step time not yet stable)
        // lengthen the run: the total counts only the minimum.
        if phase == "warmup" && iter > self.warmup {
            self.total += 1;
            if let Some(b) = &self.bar {
                b.set_length(self.total);
            }
        }
        if self.first_iter_at.is_none() {
            self.first_iter_at = Some(Instant::now());
        }
        // The interleaved schedule changes mode every step: a new plain
        // line per phase, not per mode.
        let key = phase.to_string();
        let changed = key != self.current;
        self.current = key;
        let msg = format!("{mode} {phase} {iter}/{of} step {step_s:.4} s");
        match &self.bar {
            Some(b) => {
                b.set_position(self.done);
                b.set_message(msg);
            }
            None => {
                let due = self.last_plain.is_none_or(|t| t.elapsed() >= PLAIN_EVERY);
                if changed || due || iter == of {
                    self.last_plain = Some(Instant::now());
                    let eta = self
                        .eta()
                        .map(|e| format!(", ETA {e:.0} s"))
                        .unwrap_or_default();
                    self.note(&format!(
                        "progress: {msg} ({}/{} steps, {:.0} s elapsed{eta})",
                        self.done,
                        self.total,
                        self.started.elapsed().as_secs_f64()
                    ));
                }
            }
        }
    }

    fn mode_done(&self, mode: &str, median: f64) {
        self.note(&format!("{mode}: done, median step {median:.4} s (rank 0)"));
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Line from one of the launcher program's pipes.
type Line = (Stream, String);

async fn read_lines<R: AsyncRead + Unpin>(r: R, stream: Stream, tx: mpsc::UnboundedSender<Line>) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let s = String::from_utf8_lossy(&buf);
                let s = s.trim_end_matches(['\n', '\r']).to_string();
                if tx.send((stream, s)).is_err() {
                    break;
                }
            }
        }
    }
}

/// Mutable state of the supervision loop.
struct State {
    /// A soak's callback per closed window.
    on_soak_window: Option<WindowHook>,
    kind: LauncherKind,
    progress: Progress,
    ranks: BTreeMap<u64, RankInfo>,
    finished: BTreeSet<u64>,
    waiting: BTreeMap<u64, String>,
    states: BTreeMap<u64, char>,
    deaths: Vec<RankDeath>,
    death_parser: DeathParser,
    run_json: Option<String>,
    bad_events: usize,
    /// When each rank was last heard from (any line of it).
    last_heard: BTreeMap<u64, Instant>,
    /// Each rank's last heartbeat position.
    positions: BTreeMap<u64, String>,
    /// The first abort, dead rank or timeout: when the job failed.
    failed_at: Option<Instant>,
    /// The first error each rank reported.
    errors: BTreeMap<u64, String>,
    /// Ranks that said their watchdog gave up (`aborting`) before the job
    /// failed, and why.
    aborting: BTreeMap<u64, String>,
}

impl State {
    /// Notes the process state of the local ranks that have not finished
    /// (while they exist: after a failure they are gone). A state is kept
    /// until a newer one is read; "stopped" is kept for good.
    fn note_states(&mut self) {
        // Up to the failure only: what the teardown does to the ranks
        // afterwards (SIGCONT, zombies) says nothing about who failed.
        if self.failed_at.is_some() {
            return;
        }
        let local = local_hostname();
        for (r, i) in &self.ranks {
            if !self.finished.contains(r) && Some(i.host.as_str()) == local.as_deref() {
                if let Some(c) = process_state(i.pid) {
                    // A rank once seen stopped stays "stopped": the abort
                    // that follows continues and kills it (SIGCONT, then a
                    // zombie), which is no news.
                    if !matches!(self.states.get(r), Some('T' | 't')) {
                        self.states.insert(*r, c);
                    }
                }
            }
        }
    }

    fn line(&mut self, read_from: Stream, line: &str) {
        let t = split_tag(self.kind, read_from, line);
        let Some(rank) = t.rank else {
            if let Some(d) = self.death_parser.feed(&t.text) {
                // A rank that died after the job failed was ended by the
                // teardown (srun --kill-on-bad-exit, mpirun after an abort):
                // a victim, not news.
                if self.failed_at.is_none() || self.deaths.first().is_some_and(|f| f.rank == d.rank)
                {
                    self.failed();
                    self.deaths.push(d);
                }
            }
            self.progress.out(read_from == Stream::Err, &t.text);
            return;
        };
        // Up to the failure only: a stopped rank continued by the abort
        // (SIGCONT) speaks again, which is no news.
        if self.failed_at.is_none() {
            self.last_heard.insert(rank, Instant::now());
        }
        match parse_event(&t.text) {
            Some(Ok(ev)) => self.event(ev),
            Some(Err(e)) => {
                // A truncated or garbled event is worth seeing, once in a while.
                self.bad_events += 1;
                if self.bad_events <= 3 {
                    self.progress.note(&format!(
                        "rank {rank}: unreadable progress event ({e}): {}",
                        t.text
                    ));
                }
            }
            None => self.progress.out(
                t.stream == Stream::Err,
                &format!("[rank {rank}] {}", t.text),
            ),
        }
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Hello {
                rank,
                host,
                pid,
                slurm_step,
                ompi_jobid,
                ompi_session_dir,
                ompi5_jobid,
                ..
            } => {
                self.ranks.insert(
                    rank,
                    RankInfo {
                        host,
                        pid,
                        slurm_step,
                        ompi_jobid,
                        ompi_session_dir,
                        ompi5_jobid,
                    },
                );
                self.progress.hello();
            }
            Event::Start {
                modes,
                warmup,
                warmup_max,
                iterations,
                world_size,
                run_dir,
                schedule,
                ..
            } => {
                let warmup_text = if warmup_max > warmup {
                    format!("{warmup} to {warmup_max} warmup (until the step time is stable)")
                } else {
                    format!("{warmup} warmup")
                };
                let timed = if schedule == "soak" {
                    "then windows until the duration has passed".to_string()
                } else {
                    format!("+ {iterations} timed iterations each")
                };
                self.progress.note(&format!(
                    "run started: {world_size} rank(s), modes {}, {warmup_text} {timed}, writing {run_dir}",
                    modes.join(", ")
                ));
                self.progress.start(modes.len(), warmup, iterations);
            }
            Event::Iteration {
                mode,
                phase,
                iter,
                of,
                step_s,
            } => self.progress.iteration(&mode, &phase, iter, of, step_s),
            Event::ModeDone {
                mode,
                median_step_s,
            } => self.progress.mode_done(&mode, median_step_s),
            Event::Done { run_json, .. } => self.run_json = Some(run_json),
            Event::SoakWindow {
                index,
                windows,
                end_s,
                median_tflops,
            } => {
                self.progress.note(&format!(
                    "soak: window {}/{windows} closed at {end_s:.0} s{}",
                    index + 1,
                    median_tflops
                        .map(|r| format!(", median GEMM rate {r:.3} TFLOP/s"))
                        .unwrap_or_default()
                ));
                if let Some(f) = &self.on_soak_window {
                    (f.0)(index);
                }
            }
            Event::RankDone { rank } => {
                self.finished.insert(rank);
            }
            Event::Waiting { rank, at } => {
                self.waiting.insert(rank, at);
                self.note_states();
            }
            Event::Heartbeat {
                rank,
                mode,
                iteration,
                op,
            } => {
                let at = [
                    (!mode.is_empty()).then(|| format!("mode {mode}")),
                    (!iteration.is_empty()).then_some(iteration),
                    (!op.is_empty()).then_some(op),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
                self.positions.insert(
                    rank,
                    if at.is_empty() {
                        "start-up".to_string()
                    } else {
                        at
                    },
                );
            }
            Event::Aborting { rank, reason } => {
                // Aborts up to the failure count, and one after it only from
                // a rank that was still reporting when the failure came (its
                // watchdog gave up on the same collective a moment after the
                // first rank's did): after the failure, mpirun's teardown
                // sends SIGCONT to a stopped rank before killing it, and its
                // watchdog, finding its op overdue, aborts too — a culprit,
                // silent at the failure, that must not turn into a waiter.
                if self.counts_as_waiter(rank) {
                    self.aborting.entry(rank).or_insert_with(|| reason.clone());
                }
                if self.failed_at.is_none() {
                    let host = self
                        .ranks
                        .get(&rank)
                        .map(|i| format!(" on {}", i.host))
                        .unwrap_or_default();
                    self.progress.note(&format!(
                        "rank {rank}{host} ends the job: {reason}; {} gets {} s to stop it",
                        self.kind.program(),
                        ABORT_GRACE.as_secs()
                    ));
                }
                self.failed();
            }
            Event::RankError { rank, message } => {
                self.errors.entry(rank).or_insert(message);
            }
            Event::Unknown => {}
        }
    }

    /// Notes the moment the job failed (the first abort, death or timeout):
    /// silence is measured up to it.
    fn failed(&mut self) {
        if self.failed_at.is_none() {
            self.note_states();
            self.failed_at = Some(Instant::now());
        }
    }

    /// Whether an `aborting` event of `rank` now makes it a waiter: before
    /// the failure always; after it, when the rank was not silent at the
    /// failure.
    fn counts_as_waiter(&self, rank: u64) -> bool {
        match self.failed_at {
            None => true,
            Some(t) => !self.silent(t).contains_key(&rank),
        }
    }

    /// The ranks silent for [`SILENT_AFTER`] or more at `at`, while another
    /// rank was heard within it (none when nobody was: then silence tells
    /// one rank from another no better than the launcher's own stall).
    fn silent(&self, at: Instant) -> BTreeMap<u64, Silence> {
        let quiet = |r: &u64| {
            self.last_heard
                .get(r)
                .map(|t| at.saturating_duration_since(*t))
        };
        let heard_recently = self
            .ranks
            .keys()
            .any(|r| quiet(r).is_some_and(|q| q < SILENT_AFTER));
        if !heard_recently {
            return BTreeMap::new();
        }
        self.ranks
            .keys()
            .filter(|r| !self.finished.contains(r))
            .filter_map(|r| {
                let q = quiet(r)?;
                (q >= SILENT_AFTER).then(|| {
                    (
                        *r,
                        Silence {
                            for_s: q.as_secs_f64(),
                            last_at: self
                                .positions
                                .get(r)
                                .cloned()
                                .unwrap_or_else(|| "start-up".to_string()),
                        },
                    )
                })
            })
            .collect()
    }

    /// The Slurm steps the ranks run in (srun only).
    fn slurm_steps(&self) -> BTreeSet<String> {
        if self.kind != LauncherKind::Srun {
            return BTreeSet::new();
        }
        self.ranks
            .values()
            .filter_map(|i| i.slurm_step.clone())
            .collect()
    }
}

/// Cancels Slurm steps, waiting for `scancel` at most [`SCANCEL_LIMIT`];
/// returns what happened, to be printed (None when there is no step).
/// scancel exits 0 only when slurmctld accepted the cancel of a step it
/// knows, so "cancelled" is said only then.
fn scancel(steps: &BTreeSet<String>) -> Option<String> {
    if steps.is_empty() {
        return None;
    }
    let list = steps.iter().cloned().collect::<Vec<_>>().join(" ");
    let child = std::process::Command::new("scancel")
        .args(steps)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Some(format!("cannot run scancel for Slurm step {list}: {e}")),
    };
    let deadline = Instant::now() + SCANCEL_LIMIT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Some(scancel_said(&list, status.success(), &err));
            }
            Err(e) => return Some(format!("scancel {list}: {e}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(format!(
                    "scancel {list} did not answer within {} s (slurmctld unreachable?): the step may still run; cancel it with `scancel {list}`",
                    SCANCEL_LIMIT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The line printed for a finished `scancel` of `list` (its stderr's first
/// line when it failed: e.g. the step had ended already).
fn scancel_said(list: &str, ok: bool, stderr: &str) -> String {
    if ok {
        format!("cancelled Slurm step {list} (scancel)")
    } else {
        let why = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        format!("scancel {list} failed: {}", why.trim())
    }
}

fn killpg(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: plain syscall; a stale group id only yields ESRCH.
        unsafe {
            libc::killpg(pgid, sig);
        }
    }
}

/// Whether `pid` is alive and is a worker of this run (its command line
/// carries `--run-id ID`), so that recycled PIDs are never touched.
pub fn is_our_worker(pid: u32, run_id: &str) -> bool {
    let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
    args.windows(2)
        .any(|w| w[0] == mfubench_core::job::flag::RUN_ID.as_bytes() && w[1] == run_id.as_bytes())
}

/// SIGKILLs announced worker PIDs that are still ours; returns those that
/// survive (after a short wait for the kernel to reap them).
fn sweep(ranks: &BTreeMap<u64, RankInfo>, run_id: &str) -> Vec<u32> {
    let alive = || -> Vec<u32> {
        ranks
            .values()
            .map(|i| i.pid)
            .filter(|p| *p > 0 && is_our_worker(*p, run_id))
            .filter(|p| {
                // A zombie awaiting its parent is gone for our purposes.
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .map(|s| {
                        !s.rsplit(')')
                            .next()
                            .unwrap_or("")
                            .trim_start()
                            .starts_with('Z')
                    })
                    .unwrap_or(false)
            })
            .collect()
    };
    let pids = alive();
    for p in &pids {
        if let Ok(p) = i32::try_from(*p) {
            // SAFETY: plain syscall on a PID verified to be our worker.
            unsafe {
                libc::kill(p, libc::SIGKILL);
            }
        }
    }
    if pids.is_empty() {
        return pids;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = alive();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The PIDs of our children (processes re-parented to us as the child
/// subreaper, since our own child was reaped already).
fn our_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                // "pid (comm) state ppid …": fields after the last ')'.
                let mut f = s.rsplit_once(')').map_or("", |t| t.1).split_whitespace();
                let (state, ppid) = (f.next(), f.next());
                state != Some("Z") && ppid == Some(me.as_str())
            })
        })
        .collect()
}

/// SIGKILLs what is left of the job's local process tree after its
/// launcher program died: the processes re-parented to us (rsh/ssh agents
/// and whatever they started here, in process groups of their own), round
/// after round as their children are re-parented in turn, until none is
/// left or the deadline passes. On a real cluster this ends the ssh client,
/// so the remote daemon is hung up on once its host can be reached.
fn kill_reparented(deadline: Instant) {
    loop {
        reap_orphans(Instant::now());
        let left = our_children();
        if left.is_empty() || Instant::now() >= deadline {
            return;
        }
        for pid in left {
            // SAFETY: plain syscall on a process whose parent is us: a
            // descendant of the job we started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reaps children that were re-parented to us (see `PR_SET_CHILD_SUBREAPER`
/// in [`supervise_async`]) until none is left or the deadline passes.
fn reap_orphans(deadline: Instant) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on any child; our own tokio child was reaped already.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r > 0 {
            continue;
        }
        if r < 0 || Instant::now() >= deadline {
            return; // ECHILD: nothing left
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the job to completion (or until stopped) and reports what happened.
/// A soak's first stop: creates the stop file the ranks look for after
/// every round and says so; returns when to stop the job outright.
fn soft_stop(job: &Job, progress: &Progress, why: &str) -> tokio::time::Instant {
    let Some((file, grace)) = &job.soft_stop else {
        return tokio::time::Instant::now();
    };
    if let Err(e) = std::fs::write(file, why.as_bytes()) {
        progress.note(&format!(
            "{why}: cannot create {}: {e}; stopping the job",
            file.display()
        ));
        return tokio::time::Instant::now();
    }
    progress.note(&format!(
        "{why}: the soak ends at the next window boundary (within {:.0} s; Ctrl-C again to stop it now)",
        grace.as_secs_f64()
    ));
    tokio::time::Instant::now() + *grace
}

pub fn supervise(job: &Job) -> Result<Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(supervise_async(job))
}

async fn supervise_async(job: &Job) -> Result<Outcome> {
    // Handlers first, so a Ctrl-C during start-up is not lost.
    let mut sigint = signal(SignalKind::interrupt()).context("cannot install a SIGINT handler")?;
    let mut sigterm =
        signal(SignalKind::terminate()).context("cannot install a SIGTERM handler")?;
    // A closed terminal or ssh session: the launcher program sits in its own
    // process group, so it would not get the hang-up and would outlive us.
    let mut sighup = signal(SignalKind::hangup()).context("cannot install a SIGHUP handler")?;

    // Ranks orphaned by a dying mpirun become our children instead of
    // init's, so the clean-up below can reap them: no zombie outlives us.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let (program, args) = job.argv.split_first().context("empty launch command")?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // If mfubench itself is killed outright (SIGKILL, the OOM killer), the
    // kernel sends mpirun SIGTERM, so the job does not run on orphaned.
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let pgid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);

    let (tx, mut rx) = mpsc::unbounded_channel::<Line>();
    if let Some(o) = child.stdout.take() {
        tokio::spawn(read_lines(o, Stream::Out, tx.clone()));
    }
    if let Some(e) = child.stderr.take() {
        tokio::spawn(read_lines(e, Stream::Err, tx.clone()));
    }
    drop(tx);

    let mut st = State {
        on_soak_window: job.on_soak_window.clone(),
        kind: job.kind,
        progress: Progress::new(job.tty, job.np),
        ranks: BTreeMap::new(),
        finished: BTreeSet::new(),
        waiting: BTreeMap::new(),
        states: BTreeMap::new(),
        deaths: Vec::new(),
        death_parser: DeathParser::default(),
        run_json: None,
        bad_events: 0,
        last_heard: BTreeMap::new(),
        positions: BTreeMap::new(),
        failed_at: None,
        errors: BTreeMap::new(),
        aborting: BTreeMap::new(),
    };

    let far = tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 86_400);
    // A timeout past the far future (or one that overflows) is no timeout.
    let timeout_at = job
        .timeout
        .and_then(|t| tokio::time::Instant::now().checked_add(t))
        .map_or(far, |t| t.min(far));
    let mut kill_at = far;
    let mut stopped: Option<StopReason> = None;
    let mut soft_stopped: Option<StopReason> = None;
    let mut hard_stop_at = far;
    let mut killed_after_abort = false;
    let mut lines_open = true;

    // Local ranks' process states, read twice a second: a rank that was
    // stopped (state T) is named as such when the job fails.
    let mut states_every = tokio::time::interval(Duration::from_millis(500));
    let status = loop {
        tokio::select! {
            biased;
            line = rx.recv(), if lines_open => match line {
                Some((s, l)) => st.line(s, &l),
                None => lines_open = false,
            },
            _ = states_every.tick(), if stopped.is_none() => st.note_states(),
            _ = tokio::time::sleep_until(
                    st.failed_at.map_or(far, |t| tokio::time::Instant::from_std(t) + ABORT_GRACE)
                ), if stopped.is_none() && !killed_after_abort => {
                // The launcher program had its chance to end the job after
                // the abort; it waits for something (an unreachable host).
                killed_after_abort = true;
                st.progress.note(&format!(
                    "{program} did not end the job within {} s of the failure: killing it (process group {pgid})",
                    ABORT_GRACE.as_secs()
                ));
                killpg(pgid, libc::SIGKILL);
                if let Some(said) = scancel(&st.slurm_steps()) {
                    st.progress.note(&said);
                }
            }
            status = child.wait() => break status.context("waiting for the launcher program")?,
            _ = tokio::time::sleep_until(timeout_at), if stopped.is_none() && soft_stopped.is_none() && job.soft_stop.is_some() => {
                soft_stopped = Some(StopReason::Timeout);
                hard_stop_at = soft_stop(job, &st.progress, "timeout reached");
            }
            _ = tokio::time::sleep_until(hard_stop_at), if stopped.is_none() => {
                stopped = soft_stopped.or(Some(StopReason::Interrupted));
                st.failed();
                st.progress.note("the soak did not end at a window boundary in time: stopping the job");
                killpg(pgid, libc::SIGTERM);
                kill_at = tokio::time::Instant::now() + GRACE;
            }
            _ = tokio::time::sleep_until(timeout_at), if stopped.is_none() && job.soft_stop.is_none() => {
                stopped = Some(StopReason::Timeout);
                st.failed();
                st.progress.note(&format!(
                    "timeout of {} s reached: stopping the job",
                    job.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0)
                ));
                killpg(pgid, libc::SIGTERM);
                kill_at = tokio::time::Instant::now() + GRACE;
            }
            _ = sigint.recv() => {
                if soft_stopped.is_none() && stopped.is_none() && job.soft_stop.is_some() {
                    soft_stopped = Some(StopReason::Interrupted);
                    hard_stop_at = soft_stop(job, &st.progress, "interrupted");
                } else if stopped.is_some() {
                    // A second Ctrl-C: no more patience.
                    killpg(pgid, libc::SIGKILL);
                } else {
                    stopped = Some(StopReason::Interrupted);
                    st.progress.note("interrupted: stopping the job (Ctrl-C again to kill it at once)");
                    killpg(pgid, libc::SIGTERM);
                    kill_at = tokio::time::Instant::now() + GRACE;
                }
            }
            _ = sigterm.recv() => {
                if soft_stopped.is_none() && stopped.is_none() && job.soft_stop.is_some() {
                    soft_stopped = Some(StopReason::Interrupted);
                    hard_stop_at = soft_stop(job, &st.progress, "terminated");
                } else if stopped.is_none() {
                    stopped = Some(StopReason::Interrupted);
                    st.progress.note("terminated: stopping the job");
                    killpg(pgid, libc::SIGTERM);
                    kill_at = tokio::time::Instant::now() + GRACE;
                }
            }
            _ = sighup.recv() => {
                if stopped.is_none() {
                    stopped = Some(StopReason::Interrupted);
                    st.progress.note("hung up: stopping the job");
                    killpg(pgid, libc::SIGTERM);
                    kill_at = tokio::time::Instant::now() + GRACE;
                }
            }
            _ = tokio::time::sleep_until(kill_at), if stopped.is_some() => {
                st.progress.note("the job did not stop in time: killing it");
                killpg(pgid, libc::SIGKILL);
                if let Some(said) = scancel(&st.slurm_steps()) {
                    st.progress.note(&said);
                }
                kill_at = far;
            }
        }
    };

    // Take what is still in the pipes (the final error lines, rank_done),
    // but do not wait on ranks orphaned by a dead launcher program.
    let drain_until = tokio::time::Instant::now() + DRAIN;
    while lines_open {
        match tokio::time::timeout_at(drain_until, rx.recv()).await {
            Ok(Some((s, l))) => st.line(s, &l),
            Ok(None) | Err(_) => lines_open = false,
        }
    }
    st.progress.finish();

    let failed = stopped.is_some() || !status.success();
    if failed {
        // A launcher program that ended on its own without a report still
        // failed now: silence is measured up to here then.
        st.failed();
    }
    let silent = st.failed_at.map(|t| st.silent(t)).unwrap_or_default();
    let survivors = if failed {
        // Whatever is left of the local job (ranks of a killed mpirun, rsh
        // agents), then the announced worker PIDs.
        killpg(pgid, libc::SIGKILL);
        kill_reparented(Instant::now() + Duration::from_secs(2));
        reap_orphans(Instant::now() + Duration::from_secs(2));
        sweep(&st.ranks, &job.run_id)
    } else {
        Vec::new()
    };
    // A launcher program that did not end normally did not clean up after
    // the job: remove its files on this host once every process is gone.
    let removed = if failed && survivors.is_empty() {
        let local = local_hostname();
        let files: Vec<MpiFiles> = st
            .ranks
            .values()
            .filter(|i| Some(i.host.as_str()) == local.as_deref())
            .map(|i| MpiFiles {
                pid: i.pid,
                jobid: i.ompi_jobid,
                session_dir: i.ompi_session_dir.clone(),
                ompi5_jobid: i.ompi5_jobid,
            })
            .collect();
        remove_stale(&files, std::path::Path::new("/dev/shm"))
    } else {
        Vec::new()
    };

    Ok(Outcome {
        status,
        stopped,
        soft_stopped,
        ranks: st.ranks,
        finished: st.finished,
        waiting: st.waiting,
        states: st.states,
        deaths: st.deaths,
        run_json: st.run_json,
        survivors,
        silent,
        killed_after_abort,
        errors: st.errors,
        aborting: st.aborting,
        positions: st.positions,
        removed,
        elapsed: started.elapsed(),
    })
}

/// An outcome of `np` ranks that said hello and nothing else, mpirun
/// exiting 3: the start of the unit tests' cases (here and in diagnose.rs).
#[cfg(test)]
pub(crate) fn test_outcome(np: u64) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    {
        Outcome {
            status: ExitStatus::from_raw(3 << 8),
            stopped: None,
            soft_stopped: None,
            ranks: (0..np)
                .map(|r| {
                    (
                        r,
                        RankInfo {
                            host: format!("host{r}"),
                            pid: 100 + r as u32,
                            slurm_step: None,
                            ompi_jobid: None,
                            ompi_session_dir: None,
                            ompi5_jobid: None,
                        },
                    )
                })
                .collect(),
            finished: BTreeSet::new(),
            waiting: BTreeMap::new(),
            states: BTreeMap::new(),
            deaths: Vec::new(),
            run_json: None,
            survivors: Vec::new(),
            silent: BTreeMap::new(),
            killed_after_abort: false,
            errors: BTreeMap::new(),
            aborting: BTreeMap::new(),
            positions: BTreeMap::new(),
            removed: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(np: u64) -> Outcome {
        test_outcome(np)
    }

    #[test]
    fn the_silent_rank_is_the_culprit_and_the_others_wait() {
        let mut o = outcome(3);
        o.silent.insert(
            1,
            Silence {
                for_s: 8.25,
                last_at: "mode comm, timed iteration 3, step".into(),
            },
        );
        // Rank 1 said it waited long before it stopped: silence wins.
        o.waiting
            .insert(1, "barrier before mode comm, timed iteration 1".into());
        o.waiting
            .insert(0, "barrier before mode comm, timed iteration 3".into());
        let (behind, waiting) = o.culprits(3);
        assert_eq!(
            behind,
            ["rank 1 (host host1, pid 101): stopped reporting 8.2 s before the failure (last at mode comm, timed iteration 3, step)"]
        );
        // Rank 2 neither waited nor went silent: named beside the culprit.
        assert_eq!(
            waiting,
            ["rank 0 (host host0, pid 100) waiting at barrier before mode comm, timed iteration 3"]
        );
    }

    /// The rank whose watchdog gave up (its `aborting` event) has exited by
    /// the time the states are read: it waited, it is not "gone". Seen on
    /// a loaded machine when the stop landed in a save's gather.
    #[test]
    fn a_rank_whose_watchdog_gave_up_is_a_waiter_not_a_culprit() {
        let mut o = outcome(2);
        o.states.insert(0, 'Z');
        o.states.insert(1, 'T');
        o.aborting.insert(
            0,
            "rank 0 on host0: gathering the rank records did not complete within 8 s".into(),
        );
        let (behind, waiting) = o.culprits(2);
        assert_eq!(
            behind,
            ["rank 1 (host host1, pid 101): process stopped (state T)"]
        );
        assert_eq!(
            waiting,
            ["rank 0 (host host0, pid 100) (its watchdog gave up: rank 0 on host0: gathering the rank records did not complete within 8 s)"]
        );
        // A rank seen stopped stays the culprit even if it also said its
        // watchdog gave up.
        o.aborting.insert(1, "op overdue".into());
        let (behind, _) = o.culprits(2);
        assert_eq!(
            behind,
            ["rank 1 (host host1, pid 101): process stopped (state T)"]
        );
    }

    #[test]
    fn a_hang_inside_one_collective_names_no_rank_behind() {
        // Rank 1's watchdog gave up inside the node stage's all-reduce, and
        // rank 0 was inside it too (its heartbeats): the op hung.
        let mut o = outcome(2);
        let at = "accept node stage, all_reduce 64 MiB";
        o.states.insert(0, 'S');
        o.aborting
            .insert(1, "all_reduce did not complete within 20 s".into());
        o.positions.insert(0, at.into());
        o.positions.insert(1, at.into());
        let (behind, waiting) = o.culprits(2);
        assert!(behind.is_empty(), "{behind:?}");
        assert_eq!(waiting.len(), 2, "{waiting:?}");
        assert!(waiting[0].contains("inside the same op (accept node stage, all_reduce 64 MiB)"));
        assert_eq!(o.hung_inside(2), Some(at));
        // Rank 0 still before it (at the barrier): rank 0 fell behind.
        o.positions.insert(0, "accept node stage, barrier".into());
        let (behind, _) = o.culprits(2);
        assert_eq!(behind, ["rank 0 (host host0, pid 100)"]);
        assert_eq!(o.hung_inside(2), None);
        // The rank that gave up had said it waited (for a late peer, in the
        // same coarse position "step"): the other one is behind.
        o.positions.insert(0, at.into());
        o.waiting.insert(1, at.into());
        let (behind, _) = o.culprits(2);
        assert_eq!(behind, ["rank 0 (host host0, pid 100)"]);
        o.waiting.clear();
        // A rank seen stopped is never hidden in a shared op.
        o.positions.insert(0, at.into());
        o.states.insert(0, 'T');
        assert_eq!(o.hung_inside(2), None);
        assert!(!o.culprits(2).0.is_empty());
    }

    #[test]
    fn a_stopped_local_rank_says_so_and_a_rank_gone_in_the_teardown_is_no_culprit() {
        let mut o = outcome(2);
        o.states.insert(1, 'T');
        o.states.insert(0, 'S');
        o.waiting.insert(0, "x".into());
        let (behind, waiting) = o.culprits(2);
        assert_eq!(waiting, ["rank 0 (host host0, pid 100) waiting at x"]);
        assert_eq!(
            behind,
            ["rank 1 (host host1, pid 101): process stopped (state T)"]
        );
        // A rank reported dead: another rank gone is a victim of the teardown.
        let mut o = outcome(2);
        o.states.insert(0, 'Z');
        o.deaths.push(RankDeath {
            rank: 1,
            host: Some("host1".into()),
            what: "was killed by signal 9 (Killed)".into(),
            code: None,
        });
        let (behind, _) = o.culprits(2);
        assert!(behind.is_empty(), "{behind:?}");
    }

    #[test]
    fn scancel_says_cancelled_only_when_it_succeeded() {
        assert_eq!(
            scancel_said("12.0", true, ""),
            "cancelled Slurm step 12.0 (scancel)"
        );
        assert_eq!(
            scancel_said(
                "12.0",
                false,
                "\nscancel: error: Kill job error on job step id 12.0: Invalid job id specified\n"
            ),
            "scancel 12.0 failed: scancel: error: Kill job error on job step id 12.0: Invalid job id specified"
        );
    }

    #[test]
    fn a_rank_error_names_that_rank() {
        let mut o = outcome(2);
        o.errors.insert(
            0,
            "x/run.json: cannot write: No space left on device".into(),
        );
        assert_eq!(o.culprits(2), (Vec::<String>::new(), Vec::<String>::new()));
        assert_eq!(
            o.failed_ranks(),
            ["rank 0 (host host0, pid 100): x/run.json: cannot write: No space left on device"]
        );
    }

    #[test]
    fn silence_is_measured_up_to_the_failure_and_needs_a_rank_that_was_heard() {
        let t0 = Instant::now();
        let mut st = State {
            on_soak_window: None,
            kind: LauncherKind::Mpirun,
            progress: Progress::new(false, 2),
            ranks: outcome(2).ranks,
            finished: BTreeSet::new(),
            waiting: BTreeMap::new(),
            states: BTreeMap::new(),
            deaths: Vec::new(),
            death_parser: DeathParser::default(),
            run_json: None,
            bad_events: 0,
            last_heard: BTreeMap::new(),
            positions: BTreeMap::new(),
            failed_at: None,
            errors: BTreeMap::new(),
            aborting: BTreeMap::new(),
        };
        st.last_heard.insert(0, t0);
        st.last_heard.insert(1, t0 + Duration::from_secs(9));
        let at = t0 + Duration::from_secs(10);
        let s = st.silent(at);
        assert_eq!(s.keys().collect::<Vec<_>>(), [&0]);
        assert!((s[&0].for_s - 10.0).abs() < 1e-9);
        assert_eq!(s[&0].last_at, "start-up");
        // Nobody heard within SILENT_AFTER: no rank is told from another.
        assert!(st.silent(t0 + Duration::from_secs(60)).is_empty());

        // After a failure at t0 + 10 s, a late abort counts from rank 1
        // (heard 1 s before: its watchdog fired a moment after the first
        // rank's), not from rank 0 (silent 10 s: a stopped culprit that the
        // teardown continued).
        st.failed_at = Some(at);
        assert!(st.counts_as_waiter(1));
        assert!(!st.counts_as_waiter(0));
        st.failed_at = None;
        assert!(st.counts_as_waiter(0));
    }
}

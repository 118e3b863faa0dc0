//! `mfubench soak` on one rank: the entry ([`run`]), the log every window
//! closes into ([`SoakLog`]) and how the ranks agree to close a window or
//! to stop ([`SoakLog::decide`]). The rounds themselves are the
//! [`crate::executor::Executor::soak`]'s; the data and rules are
//! [`mfubench_core::soak`]'s.
//!
//! - **One decision per round.** After every round the ranks take the
//!   maximum of their wishes (one all-reduce of a number, under the
//!   watchdog): rank 0 asks to close the window when its time is up, and
//!   to stop when the launcher created [`STOP_FILE`] in the run folder
//!   (Ctrl-C, SIGTERM or `--timeout` reached `mfubench`); any rank asks to
//!   stop when it got SIGTERM (`scancel`, a Slurm time limit). Every rank
//!   therefore closes the same windows after the same round.
//! - **Results that survive.** Rank 0 appends each window's line to
//!   soak.jsonl and syncs it before the next round starts; run.json is
//!   rewritten at every window too (that window's steps).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mfubench_core::config::Config;
use mfubench_core::plan::StepPlan;
use mfubench_core::protocol::Event;
use mfubench_core::soak::{
    RankWindow, SoakEnd, SoakLine, SoakRun, SoakStart, SoakThresholds, SoakWindow, SOAK_FILE,
    SOAK_SCHEMA_VERSION, STOP_FILE,
};

use crate::backend::Backend;
use crate::benchmark::Benchmark;
use crate::executor::{Executor, Slot};
use crate::mpi_comm;
use crate::output;
use crate::progress::emit;
use crate::rank::{Exit, RunError};
use crate::session::Session;

/// Set by SIGTERM during a soak.
static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
}

/// From now on SIGTERM ends the soak at the next window boundary instead
/// of the process (a second SIGTERM is still caught: the launcher's or
/// Slurm's SIGKILL follows its grace).
fn catch_sigterm() {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; `signal` with a valid function pointer.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// What the ranks agreed after a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Another round in this window.
    GoOn,
    /// Close the window and open the next.
    Close,
    /// Close the window and end the soak (why: `stopped` or `signal`).
    Stop(String),
}

/// A soak's soak.jsonl, written by rank 0.
pub struct SoakLog<'s, 'r> {
    session: &'s Session<'r>,
    op_timeout: Duration,
}

impl<'s, 'r> SoakLog<'s, 'r> {
    /// Writes the start line (rank 0); every rank learns whether it was
    /// written. Collective.
    pub fn open(
        session: &'s Session<'r>,
        backend: &str,
        simulated: bool,
        run: &SoakRun,
        thresholds: &SoakThresholds,
        peak_tflops: f64,
        op_timeout_s: f64,
    ) -> Result<Self, Exit> {
        let r = session.rank;
        let log = SoakLog {
            session,
            op_timeout: Duration::from_secs_f64(op_timeout_s),
        };
        let written = if r.is_root() {
            let start = SoakLine::Start(SoakStart {
                schema_version: SOAK_SCHEMA_VERSION,
                run_id: session.run_id.clone(),
                started_at: output::rfc3339_now(),
                world_size: r.size,
                backend: backend.to_string(),
                simulated,
                run: run.clone(),
                thresholds: thresholds.clone(),
                peak_tflops,
            });
            log.append(&start)
        } else {
            Ok(())
        };
        {
            // Every wait for the other ranks has a deadline.
            let _deadline = log.deadline("agreeing the soak log's start");
            r.agree(written)?;
        }
        catch_sigterm();
        Ok(log)
    }

    fn path(&self) -> std::path::PathBuf {
        self.session.run_dir.join(SOAK_FILE)
    }

    fn append(&self, line: &SoakLine) -> Result<(), RunError> {
        let bytes = serde_json::to_vec(line).map_err(|e| RunError(e.to_string()))?;
        output::append_line(&self.path(), &bytes).map_err(|e| RunError(e.to_string()))
    }

    fn deadline(&self, what: &str) -> crate::watchdog::Watchdog {
        let r = self.session.rank;
        crate::watchdog::Watchdog::arm(
            format!("rank {} on {}: {what}", r.rank, r.host),
            self.op_timeout,
            i32::from(mfubench_core::protocol::exit::RUN_FAILED),
        )
    }

    /// The ranks' decision after a round; `time_up`: this rank's window
    /// has lasted its length (only rank 0's counts). Collective.
    pub fn decide(&self, time_up: bool) -> Decision {
        let r = self.session.rank;
        let mut mine = 0.0;
        if r.is_root() {
            if self.session.run_dir.join(STOP_FILE).exists() {
                mine = 2.0;
            } else if time_up {
                mine = 1.0;
            }
        }
        if TERMINATED.load(Ordering::SeqCst) {
            mine = 3.0;
        }
        let _deadline = self.deadline("agreeing the end of a soak window");
        match mpi_comm::max_f64(&r.world, mine) as u8 {
            0 => Decision::GoOn,
            1 => Decision::Close,
            2 => Decision::Stop("stopped".into()),
            _ => Decision::Stop("signal".into()),
        }
    }

    /// Gathers every rank's record of window `index` on rank 0, which
    /// appends the window's line and says so. Collective.
    pub fn window(
        &self,
        index: u32,
        windows: u64,
        start_s: f64,
        end_s: f64,
        rounds: u64,
        mine: &RankWindow,
    ) -> Result<(), Exit> {
        let r = self.session.rank;
        let bytes = serde_json::to_vec(mine)
            .unwrap_or_else(|e| r.abort(format!("cannot encode the window record: {e}")));
        // The gather and the agreement on the write wait for every rank.
        let _deadline = self.deadline("gathering a soak window");
        let gathered = mpi_comm::gather_bytes(&r.world, &bytes).unwrap_or_else(|e| r.abort(e));
        let written: Result<(), RunError> = match gathered {
            None => Ok(()),
            Some(all) => (|| {
                let mut ranks = Vec::with_capacity(all.len());
                for (i, b) in all.iter().enumerate() {
                    ranks.push(serde_json::from_slice::<RankWindow>(b).map_err(|e| {
                        RunError(format!("the window record of rank {i} is unreadable: {e}"))
                    })?);
                }
                let rates: Vec<f64> = ranks.iter().filter_map(|w| w.tflops).collect();
                self.append(&SoakLine::Window(SoakWindow {
                    index,
                    start_s,
                    end_s,
                    rounds,
                    ranks,
                }))?;
                emit(&Event::SoakWindow {
                    index,
                    windows,
                    end_s,
                    median_tflops: mfubench_core::stats::median(&rates),
                });
                Ok(())
            })(),
        };
        r.agree(written)
    }

    /// Rank 0 appends the end line. Collective (every rank learns whether
    /// it was written).
    pub fn end(&self, reason: &str, windows: u32) -> Result<(), Exit> {
        let r = self.session.rank;
        let written = if r.is_root() {
            self.append(&SoakLine::End(SoakEnd {
                reason: reason.to_string(),
                windows,
                finished_at: output::rfc3339_now(),
            }))
        } else {
            Ok(())
        };
        let _deadline = self.deadline("agreeing the soak log's end");
        r.agree(written)
    }
}

/// A soak of `config`'s step: the modes of `soak` (default the config's
/// `run.modes`), its duration and window. Collective.
pub fn run<B: Backend>(
    session: &Session<'_>,
    mut config: Config,
    plan: Arc<StepPlan>,
    soak: SoakRun,
) -> Result<(), Exit> {
    if !soak.modes.is_empty() {
        config.run.modes = soak.modes.clone();
    }
    let own = Session {
        rank: session.rank,
        run_id: session.run_id.clone(),
        run_dir: session.run_dir.clone(),
        hooks: session.hooks,
    };
    let thresholds = config.soak.clone();
    let run = config.run.clone();
    let b = Benchmark::<B>::open(own, None, config, plan)?;
    let mut ex = Executor::new(session, run, vec![Slot::Runs(Box::new(b))]);
    let peak = ex.share_peak()?;
    ex.soak(peak, &soak, &thresholds)
}

//! The one round executor of every timed flow: a plain run, every variant
//! of a `--vary` job and the acceptance suite's step stage. A plain run is
//! a `--vary` job of one variant (without vary.json).
//!
//! The executor runs **cells**, a (variant, mode) pair each, in rounds:
//! - **Warmup** is shared: rounds in which every cell runs one untimed,
//!   checked step, in the rotating order of the interleaved schedule, until
//!   every rank's round time has stopped getting faster (at least
//!   `run.warmup` rounds, at most `run.warmup_max`; the rule is
//!   [`WarmupRule`]'s, the round times go into every variant's records).
//! - **Timed steps.** Interleaved (default): timed round i runs one step of
//!   every cell, the cells rotated left by i ([`rotated`], a Latin square),
//!   so that outside load lands on all modes and variants alike and round
//!   i's steps form a pair for every figure that compares modes or
//!   variants. Blocked (plain runs only): each cell's steps back to back,
//!   for comparison ([`timed_order`]).
//! - **Checks**: one untimed, checked step per mode with all-reduces and
//!   variant after the timed ones.
//! - **Results as soon as they exist**: every variant's run.json is written
//!   (complete = false) after 1, 2, 4, 8, … rounds' worth of timed steps
//!   ([`is_save_point`]), so a crash or a timeout keeps what was measured,
//!   and once more at the end; after each save the caller's `after_save`
//!   runs (`--vary` writes vary.json there).
//! - **One peak**: the variants share the highest of their peaks (on the
//!   CPU backend each calibrates on its own GEMM shapes), so that their
//!   MFUs compare ([`Executor::share_peak`]).
//!
//! Every step starts after the session's barrier under the watchdog
//! ([`crate::session::Session::barrier`]); how a step is taken and
//! checked is [`Benchmark`]'s.

use std::time::Instant;

use mfubench_core::config::{Mode, RunSettings, Schedule};
use mfubench_core::protocol::Event;
use mfubench_core::result::PeakChoice;
use mfubench_core::warmup::WarmupRule;

use crate::backend::Backend;
use crate::benchmark::Benchmark;
use crate::progress::emit;
use crate::rank::Exit;
use crate::session::Session;

/// `items` rotated left by `round` (every item takes every position equally
/// often over `items.len()` rounds), as `Schedule::round_order` does for
/// modes.
pub fn rotated<T: Clone>(items: &[T], round: usize) -> Vec<T> {
    let mut v = items.to_vec();
    if !v.is_empty() {
        let k = round % v.len();
        v.rotate_left(k);
    }
    v
}

/// The timed steps of `cells` in the order they run: interleaved, round i
/// is the cells rotated by i; blocked, each cell's `iterations` steps back
/// to back.
pub fn timed_order<T: Clone>(cells: &[T], schedule: Schedule, iterations: u32) -> Vec<T> {
    let iters = iterations as usize;
    match schedule {
        Schedule::Interleaved => (0..iters).flat_map(|i| rotated(cells, i)).collect(),
        Schedule::Blocked => cells
            .iter()
            .flat_map(|c| std::iter::repeat_n(c.clone(), iters))
            .collect(),
    }
}

/// Whether the results are saved (incomplete) after `done` of `total` timed
/// steps of `cells` cells: after 1, 2, 4, 8, … rounds' worth of steps, never
/// after the last (the final save follows the checks).
pub fn is_save_point(done: usize, cells: usize, total: usize) -> bool {
    let cells = cells.max(1);
    done < total && done % cells == 0 && (done / cells).is_power_of_two()
}

/// What runs on every rank after each save: given the slots and whether
/// the results are complete (`--vary` writes vary.json there).
pub type AfterSave<'a, 'r, B> = dyn FnMut(&[Slot<'r, B>], bool) -> Result<(), Exit> + 'a;

/// One variant on this rank: running, or not run (and why).
pub enum Slot<'r, B: Backend> {
    /// Opened and running.
    Runs(Box<Benchmark<'r, B>>),
    /// Its buffers do not fit beside the variants opened before it.
    DoesNotFit(String),
}

/// The rounds of a job's variants on one rank.
pub struct Executor<'s, 'r, B: Backend> {
    session: &'s Session<'r>,
    run: RunSettings,
    slots: Vec<Slot<'r, B>>,
    /// A time budget (when it started, seconds): the timed rounds are cut
    /// to what fits after the warmup (the acceptance suite's step stage).
    budget: Option<(Instant, f64)>,
}

impl<'s, 'r, B: Backend> Executor<'s, 'r, B> {
    /// The executor of `slots` (at least one running) for the job of
    /// `session`, with the warmup, iterations, modes and schedule of `run`
    /// (the same in every variant: `--vary` refuses to vary them).
    pub fn new(session: &'s Session<'r>, run: RunSettings, slots: Vec<Slot<'r, B>>) -> Self {
        Executor {
            session,
            run,
            slots,
            budget: None,
        }
    }

    /// The same executor under a time budget: after the warmup, the timed
    /// rounds are cut to those predicted to fit, at least one
    /// ([`mfubench_core::accept::step_rounds_that_fit`], from the slowest
    /// rank's last warmup round); run.json then records the rounds run as
    /// its `run.iterations`.
    pub fn with_budget(mut self, started: Instant, budget_s: f64) -> Self {
        self.budget = Some((started, budget_s));
        self
    }

    /// The slots, in variant order.
    pub fn slots(&self) -> &[Slot<'r, B>] {
        &self.slots
    }

    fn running(&mut self) -> impl Iterator<Item = &mut Benchmark<'r, B>> {
        self.slots.iter_mut().filter_map(|s| match s {
            Slot::Runs(b) => Some(b.as_mut()),
            Slot::DoesNotFit(_) => None,
        })
    }

    /// Chooses every variant's peak and gives them all the highest (a
    /// calibration measures each plan's own GEMM shapes). Collective.
    pub fn share_peak(&mut self) -> Result<PeakChoice, Exit> {
        let mut peak: Option<PeakChoice> = None;
        for b in self.running() {
            b.choose_peak()?;
            let p = b.peak();
            if peak.is_none_or(|q| p.tflops > q.tflops) {
                peak = Some(p);
            }
        }
        let Some(peak) = peak else {
            return Err(Exit::Usage);
        };
        for b in self.running() {
            b.set_peak(peak);
        }
        Ok(peak)
    }

    /// The cells (slot, mode) of the running variants.
    fn cells(&self) -> Vec<(usize, Mode)> {
        let modes = &self.run.modes;
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Slot::Runs(_)))
            .flat_map(|(k, _)| modes.iter().map(move |&m| (k, m)))
            .collect()
    }

    fn bench(&mut self, k: usize) -> &mut Benchmark<'r, B> {
        match &mut self.slots[k] {
            Slot::Runs(b) => b,
            Slot::DoesNotFit(_) => unreachable!("cells hold running slots only"),
        }
    }

    /// Runs the warmup, the timed steps and the check steps of every cell,
    /// then declares the backends' normal end and saves the complete
    /// results; saves incomplete ones at the save points. `after_save`
    /// runs on every rank after each save (collectives allowed).
    pub fn run(
        &mut self,
        peak: PeakChoice,
        after_save: &mut AfterSave<'_, 'r, B>,
    ) -> Result<(), Exit> {
        let cells = self.cells();
        let run = self.run.clone();
        let rank = self.session.rank;
        if rank.is_root() {
            let names = cells
                .iter()
                .map(|&(k, m)| match &self.slots[k] {
                    Slot::Runs(b) => b.cell_name(m),
                    Slot::DoesNotFit(_) => m.to_string(),
                })
                .collect();
            emit(&Event::Start {
                run_id: self.session.run_id.clone(),
                run_dir: self.session.run_dir.display().to_string(),
                world_size: rank.size,
                modes: names,
                schedule: run.schedule.to_string(),
                warmup: run.warmup,
                warmup_max: run.warmup_max.max(run.warmup),
                iterations: run.iterations,
                peak_tflops: peak.tflops,
                peak_source: format!("{:?}", peak.source).to_lowercase(),
            });
        }
        let last_round_s = self.warmup(&cells);
        let iterations = self.iterations_within_budget(last_round_s);
        self.running().for_each(|b| b.sample_telemetry("start"));
        let order = timed_order(&cells, run.schedule, iterations);
        let mut first: Option<Instant> = None;
        for (j, &(k, mode)) in order.iter().enumerate() {
            self.bench(k).timed_step(mode, &mut first);
            if is_save_point(j + 1, cells.len(), order.len()) {
                self.save(false, after_save)?;
            }
        }
        self.running().for_each(|b| b.sample_telemetry("end"));
        self.raise_calibrated_peak(peak);
        self.running().for_each(|b| b.check_steps());
        self.running().for_each(|b| b.finish());
        self.save(true, after_save)
    }

    /// The shared warmup of `cells` (see the notes above); every variant
    /// records the round times.
    fn warmup(&mut self, cells: &[(usize, Mode)]) -> f64 {
        let rule = WarmupRule::of_run(&self.run);
        let mut rounds: Vec<f64> = Vec::new();
        let mut done = 0u32;
        while rule.another_round(done, done > 0 && self.every_rank_settled(&rule, &rounds)) {
            let mut round_s = 0.0;
            for (k, mode) in rotated(cells, done as usize) {
                round_s += self.bench(k).warmup_step(mode, done + 1, rule.max_rounds);
            }
            rounds.push(round_s);
            done += 1;
        }
        self.running()
            .for_each(|b| b.set_warmup_rounds(rounds.clone()));
        rounds.last().copied().unwrap_or(0.0)
    }

    /// The timed rounds to run: `run.iterations`, or under a budget those
    /// predicted to fit from the slowest rank's last warmup round (every
    /// variant then records that many). Collective under a budget.
    fn iterations_within_budget(&mut self, last_round_s: f64) -> u32 {
        let asked = self.run.iterations;
        let Some((started, budget_s)) = self.budget else {
            return asked;
        };
        let r = self.session.rank;
        let mut slowest = 0.0f64;
        {
            let _deadline = crate::watchdog::Watchdog::arm(
                format!("rank {} on {}: agreeing the step's rounds", r.rank, r.host),
                std::time::Duration::from_secs_f64(self.run.op_timeout_s),
                i32::from(mfubench_core::protocol::exit::RUN_FAILED),
            );
            use mpi::collective::SystemOperation;
            use mpi::traits::*;
            r.world
                .all_reduce_into(&last_round_s, &mut slowest, SystemOperation::max());
        }
        let elapsed = started.elapsed().as_secs_f64();
        let n = mfubench_core::accept::step_rounds_that_fit(elapsed, slowest, budget_s, asked);
        if n < asked {
            if r.is_root() {
                crate::say!(
                    "mfubench-worker: step: {n} of {asked} timed rounds: a round takes about {slowest:.2} s and {elapsed:.1} s of the {budget_s} s budget are spent (accept.step_budget_s)"
                );
            }
            self.run.iterations = n;
            self.running().for_each(|b| b.set_iterations(n));
        }
        n
    }

    /// A soak (`mfubench soak`): the warmup, then rounds of every cell (the
    /// one variant's modes, rotated as in the interleaved schedule) until
    /// `soak` has closed all its windows or a stop was asked for; at every
    /// window's close the checked steps, an SDC check (unless
    /// `thresholds.sdc_every_rounds` spaces them), run.json (that window's
    /// steps, incomplete) and one line of soak.jsonl ([`crate::soak`]).
    /// Collective.
    pub fn soak(
        &mut self,
        peak: PeakChoice,
        soak: &mfubench_core::soak::SoakRun,
        thresholds: &mfubench_core::soak::SoakThresholds,
    ) -> Result<(), Exit> {
        use crate::soak::{Decision, SoakLog};
        let cells = self.cells();
        let rank = self.session.rank;
        let modes = self.run.modes.clone();
        let windows = soak.windows();
        if rank.is_root() {
            emit(&Event::Start {
                run_id: self.session.run_id.clone(),
                run_dir: self.session.run_dir.display().to_string(),
                world_size: rank.size,
                modes: modes.iter().map(|m| m.to_string()).collect(),
                schedule: "soak".into(),
                warmup: self.run.warmup,
                warmup_max: self.run.warmup_max.max(self.run.warmup),
                iterations: 0,
                peak_tflops: peak.tflops,
                peak_source: format!("{:?}", peak.source).to_lowercase(),
            });
        }
        self.warmup(&cells);
        self.running().for_each(|b| {
            b.set_quiet();
            b.open_readings();
        });
        let (backend, simulated) = match &self.slots[0] {
            Slot::Runs(b) => (b.backend_name(), b.simulated()),
            Slot::DoesNotFit(_) => ("", false),
        };
        let log = SoakLog::open(
            self.session,
            backend,
            simulated,
            soak,
            thresholds,
            peak.tflops,
            self.run.op_timeout_s,
        )?;
        let opened = Instant::now();
        let mut window_opened = opened;
        let mut first: Option<Instant> = None;
        let (mut round, mut window, mut in_window) = (0u64, 0u32, 0u64);
        loop {
            for (k, mode) in rotated(&cells, round as usize) {
                self.bench(k).timed_step(mode, &mut first);
            }
            round += 1;
            in_window += 1;
            let every = thresholds.sdc_every_rounds;
            if every > 0 && round % every == 0 {
                self.running()
                    .for_each(|b| b.sdc_check(round, thresholds.sdc_gemms));
            }
            let decision = log.decide(window_opened.elapsed().as_secs_f64() >= soak.window_s);
            if decision == Decision::GoOn {
                continue;
            }
            let closed = Instant::now();
            let ending = match decision {
                Decision::Stop(why) => Some(why),
                _ if u64::from(window) + 1 >= windows => Some("duration".to_string()),
                _ => None,
            };
            let b = self.bench(0);
            b.check_steps();
            if every == 0 {
                b.sdc_check(round, thresholds.sdc_gemms);
            }
            if ending.is_some() {
                b.finish();
            }
            // run.json: this window's steps (complete at the last one).
            let records = b.save(ending.is_some())?;
            let mine = b.window_record(&modes, &records);
            log.window(
                window,
                windows,
                window_opened.duration_since(opened).as_secs_f64(),
                closed.duration_since(opened).as_secs_f64(),
                in_window,
                &mine,
            )?;
            if let Some(why) = ending {
                return log.end(&why, window + 1);
            }
            self.bench(0).clear_steps();
            window += 1;
            in_window = 0;
            window_opened = Instant::now();
        }
    }

    /// A calibrated peak below what the run's own GEMMs reached (the
    /// calibration ran at a loaded moment, or on shapes slower than the
    /// step's mix) would give MFU above 100 %: the peak becomes the fastest
    /// compute-mode step's rate over every rank (hardware FLOPs / step
    /// time), said in a warning; each rank's calibration stays in its
    /// record (`calibrated_tflops`). Collective, under the watchdog; a
    /// datasheet or configured peak is never changed.
    fn raise_calibrated_peak(&mut self, peak: PeakChoice) {
        if peak.source != mfubench_core::result::PeakSource::Calibrated {
            return;
        }
        let mine = self
            .running()
            .map(|b| b.best_compute_rate_tflops())
            .fold(0.0, f64::max);
        let r = self.session.rank;
        let best = {
            let _deadline = crate::watchdog::Watchdog::arm(
                format!("rank {} on {}: agreeing the peak", r.rank, r.host),
                std::time::Duration::from_secs_f64(self.run.op_timeout_s),
                i32::from(mfubench_core::protocol::exit::RUN_FAILED),
            );
            crate::mpi_comm::max_f64(&r.world, mine)
        };
        if best > peak.tflops {
            if r.is_root() {
                crate::say!(
                    "mfubench-worker: warning: the run's GEMMs reached {best:.4} TFLOP/s, above the calibration's {:.4}: MFU uses {best:.4} as the peak (the calibration ran at a slower moment)",
                    peak.tflops
                );
            }
            let raised = PeakChoice {
                tflops: best,
                source: peak.source,
            };
            self.running().for_each(|b| b.set_peak(raised));
        }
    }

    /// Whether every rank's warmup rounds so far have settled under `rule`
    /// (one agreement, so that all ranks leave warmup together); always
    /// true for a fixed count, without a collective. Collective otherwise,
    /// under the watchdog.
    fn every_rank_settled(&self, rule: &WarmupRule, rounds: &[f64]) -> bool {
        if !rule.adaptive() {
            return true;
        }
        let r = self.session.rank;
        let _deadline = crate::watchdog::Watchdog::arm(
            format!("rank {} on {}: agreeing the end of warmup", r.rank, r.host),
            std::time::Duration::from_secs_f64(self.run.op_timeout_s),
            i32::from(mfubench_core::protocol::exit::RUN_FAILED),
        );
        r.all(rule.settled(rounds))
    }

    /// Saves every running variant's run.json, then runs `after_save`.
    fn save(&self, complete: bool, after_save: &mut AfterSave<'_, 'r, B>) -> Result<(), Exit> {
        for s in &self.slots {
            if let Slot::Runs(b) = s {
                b.save(complete)?;
            }
        }
        after_save(&self.slots, complete)
    }
}

/// A plain run: one variant, no label, no vary.json. Collective.
pub fn run_plain<B: Backend>(
    session: &Session<'_>,
    config: mfubench_core::config::Config,
    plan: std::sync::Arc<mfubench_core::plan::StepPlan>,
) -> Result<(), Exit> {
    run_plain_within::<B>(session, config, plan, None)
}

/// [`run_plain`] under a time budget (when it started, seconds; see
/// [`Executor::with_budget`]). Collective.
pub fn run_plain_within<B: Backend>(
    session: &Session<'_>,
    config: mfubench_core::config::Config,
    plan: std::sync::Arc<mfubench_core::plan::StepPlan>,
    budget: Option<(Instant, f64)>,
) -> Result<(), Exit> {
    let own = Session {
        rank: session.rank,
        run_id: session.run_id.clone(),
        run_dir: session.run_dir.clone(),
        hooks: session.hooks,
    };
    let run = config.run.clone();
    let b = Benchmark::<B>::open(own, None, config, plan)?;
    let mut ex = Executor::new(session, run, vec![Slot::Runs(Box::new(b))]);
    if let Some((started, budget_s)) = budget {
        ex = ex.with_budget(started, budget_s);
    }
    let peak = ex.share_peak()?;
    ex.run(peak, &mut |_, _| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_is_a_latin_square() {
        let items = [(0, 'c'), (0, 'o'), (1, 'c'), (1, 'o')];
        assert_eq!(
            rotated(&items, 1),
            vec![(0, 'o'), (1, 'c'), (1, 'o'), (0, 'c')]
        );
        for pos in 0..4 {
            let mut seen: Vec<_> = (0..4).map(|r| rotated(&items, r)[pos]).collect();
            seen.sort();
            assert_eq!(seen, items.to_vec());
        }
        assert!(rotated::<u8>(&[], 3).is_empty());
    }

    #[test]
    fn rotation_of_modes_is_the_schedules_round_order() {
        let modes = [
            Mode::Compute,
            Mode::Comm,
            Mode::Serialized,
            Mode::Overlapped,
        ];
        for round in 0..9 {
            assert_eq!(
                rotated(&modes, round),
                Schedule::Interleaved.round_order(&modes, round)
            );
        }
    }

    #[test]
    fn timed_order_interleaves_or_blocks() {
        let cells = ['a', 'b', 'c'];
        assert_eq!(
            timed_order(&cells, Schedule::Interleaved, 2),
            vec!['a', 'b', 'c', 'b', 'c', 'a']
        );
        assert_eq!(
            timed_order(&cells, Schedule::Blocked, 2),
            vec!['a', 'a', 'b', 'b', 'c', 'c']
        );
        assert!(timed_order(&cells, Schedule::Interleaved, 0).is_empty());
    }

    #[test]
    fn saves_after_1_2_4_8_rounds_never_after_the_last_step() {
        // 3 cells, 10 rounds = 30 steps: after rounds 1, 2, 4, 8.
        let points: Vec<usize> = (1..=30).filter(|&d| is_save_point(d, 3, 30)).collect();
        assert_eq!(points, vec![3, 6, 12, 24]);
        // 4 rounds of 2 cells: the 4th round's end is the final save.
        let points: Vec<usize> = (1..=8).filter(|&d| is_save_point(d, 2, 8)).collect();
        assert_eq!(points, vec![2, 4]);
        // 1 round: only the final save.
        assert!(!(1..=4).any(|d| is_save_point(d, 4, 4)));
    }
}

//! One benchmark (a run, or one variant of a `--vary` job) on one rank:
//! its backend and buffers ([`Benchmark::open`]), its peak
//! ([`Benchmark::choose_peak`]), its steps and its run.json
//! ([`Benchmark::save`]). Which step runs when is the
//! [`crate::executor::Executor`]'s job, the same for a plain run, every
//! variant of `--vary` and the acceptance suite's step stage.
//!
//! How a step is taken (the measurement design; the order of steps is in
//! the executor's notes):
//! - Every step starts after a barrier under the watchdog
//!   ([`crate::session::Session::barrier`]); a timed step's start (seconds
//!   since the job's first timed step) is recorded.
//! - **Checks on untimed steps only.** The all-reduce results are verified
//!   on the warmup steps and on one extra untimed step per mode with
//!   all-reduces after the timed ones. Timed steps of every mode are then
//!   preceded by the same thing — a barrier — and the host work of the
//!   check (a second on large GPU buckets, enough for clocks to drop)
//!   never sits before some modes' timed steps and not others'. `wrong`
//!   counts the mismatches of those checked steps.
//! - **Collectives timed from the last arrival.** The ranks' clocks are
//!   put on rank 0's time line when the benchmark opens
//!   ([`crate::clock::align`]) and again at every save, and each timed
//!   step's start is put on it (the offset interpolated between the
//!   measurements). When the records are made, each group's ranks take the maximum of
//!   their arrivals at every collective (one all-reduce per kind of group,
//!   outside the timed steps): a collective's span then starts at the last
//!   arrival, and what a rank spent before it is its waiting for peers
//!   ([`crate::record::from_last_arrival`]).
//! - **Results as soon as they exist**: [`Benchmark::save`] gathers every
//!   rank's record and rank 0 writes run.json atomically, complete or not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::topology::{Color, SimpleCommunicator};
use mpi::traits::*;

use mfubench_core::aggregate::{
    shard_path, NodeRecord, RankShards, ShardFile, ShardRecord, SHARD_ABOVE_RANKS,
};
use mfubench_core::config::{Config, Mode};
use mfubench_core::parallel::Group;
use mfubench_core::plan::StepPlan;
use mfubench_core::protocol::{Event, LAUNCH_ENV, SHARDS_THROUGH_RANK0_ENV};
use mfubench_core::result::{
    keep_timeline_sample, HostLoad, LaunchInfo, ModeRecord, PeakChoice, PeakSource, PlanInfo,
    RankRecord, RunMeta, RunRecord, TelemetrySample, TIMELINE_SAMPLE_ABOVE,
};
use mfubench_core::stats;

use crate::backend::{Backend, DeviceRecord};
use crate::clock::AlignedClock;
use crate::mpi_comm;
use crate::output;
use crate::progress::emit;
use crate::rank::{Exit, Rank, RunError};
use crate::record::{self, mode_record};
use crate::schedule::{self, StepTiming};
use crate::session::Session;

/// How shared this rank's host is at start; warns when it is oversubscribed
/// or busy (its MFU is then lower than the hardware gives).
fn host_load(rank: &Rank, run_id: &str) -> HostLoad {
    let load = HostLoad {
        cores: output::usable_cores(),
        ranks: rank.ranks_on_host,
        load_avg_1m: output::load_avg_1m().unwrap_or(0.0),
        other_runs: output::other_runs_here(run_id),
    };
    if let Some(why) = load.shared_reason() {
        crate::say!(
            "mfubench-worker: warning: host {} is shared ({why}): its ranks' rates and MFU are lower than its hardware gives",
            rank.host
        );
    }
    load
}

/// The timed steps of one mode so far.
#[derive(Default)]
struct ModeSteps {
    timings: Vec<StepTiming>,
    starts: Vec<f64>,
    /// When each timed step started (put on rank 0's time line at each
    /// save, with the offset measured then).
    started: Vec<Instant>,
    wrong: u64,
}

/// A benchmark on one rank.
pub struct Benchmark<'r, B: Backend> {
    session: Session<'r>,
    rank: &'r Rank,
    /// The variant's label (`run.bucket_mb=4`) in progress and watchdog
    /// messages; None in a plain run.
    label: Option<String>,
    config: Config,
    plan: Arc<StepPlan>,
    backend: B,
    device: DeviceRecord,
    started_at: String,
    op_timeout: Duration,
    peak: PeakChoice,
    calibrated: Option<f64>,
    steps: BTreeMap<Mode, ModeSteps>,
    telemetry: Vec<TelemetrySample>,
    injected: bool,
    /// Steps started so far, every kind (the late-rank hook is late on the
    /// odd ones).
    steps_started: std::cell::Cell<u64>,
    host_load: Option<HostLoad>,
    /// Measured again at every save (hence a cell: saves take `&self`).
    clock: std::cell::Cell<AlignedClock>,
    /// This rank's warmup round times, seconds.
    warmup_round_s: Vec<f64>,
    /// A communicator per kind of group the plan's collectives run in.
    groups: BTreeMap<Group, SimpleCommunicator>,
    /// No per-step progress events (a soak reports per window).
    quiet: bool,
    /// The SDC checks since the last window closed.
    sdc: Vec<mfubench_core::soak::SdcSample>,
    /// The node and node-leader communicators of a run large enough to
    /// gather its records per node (see [`NodeComms`]).
    node_comms: Option<NodeComms>,
}

/// The communicators of the per-node gather (runs of more than
/// [`SHARD_ABOVE_RANKS`] ranks): this rank's node, and, on the node's
/// leader (its lowest world rank), the leaders of every node, world rank 0
/// first.
struct NodeComms {
    node: SimpleCommunicator,
    leaders: Option<SimpleCommunicator>,
}

impl NodeComms {
    /// Collective over the world.
    fn new(rank: &Rank) -> NodeComms {
        let node = rank.world.split_shared(rank.world.rank());
        let colour = if node.rank() == 0 {
            Color::with_value(0)
        } else {
            Color::undefined()
        };
        let leaders = rank.world.split_by_color_with_key(colour, rank.rank as i32);
        NodeComms { node, leaders }
    }
}

/// What world rank 0 tells the node leaders once it has the node records:
/// the ranks whose timelines the shards keep beyond each node's own sample,
/// and each node's shard path by its first rank (None: rank 0 could not
/// build the run record, and no shard is written).
#[derive(serde::Serialize, serde::Deserialize)]
struct ShardOrders {
    keep: Vec<u64>,
    paths: BTreeMap<u64, String>,
    /// Rank 0's run directory, absolute.
    dir: PathBuf,
    /// A file rank 0 wrote there: a leader that sees it shares rank 0's
    /// file system and writes its shard itself; one that does not sends
    /// the shard to rank 0, which writes it.
    marker: PathBuf,
}

/// A communicator per kind of group the plan's collectives run in (this
/// rank's group of each kind). Collective: every rank makes them in the
/// same order.
fn group_comms(rank: &Rank, plan: &StepPlan) -> BTreeMap<Group, SimpleCommunicator> {
    let kinds: BTreeSet<Group> = plan.collectives.iter().map(|c| c.group).collect();
    kinds
        .into_iter()
        .filter_map(|g| {
            let (colour, position) = plan.layout.colour_and_position(g, rank.rank);
            let comm = rank
                .world
                .split_by_color_with_key(Color::with_value(colour as i32), position as i32)?;
            Some((g, comm))
        })
        .collect()
}

impl<'r, B: Backend> Benchmark<'r, B> {
    /// Opens the backend on every rank and allocates the plan's buffers.
    /// Collective.
    pub fn open(
        session: Session<'r>,
        label: Option<String>,
        config: Config,
        plan: Arc<StepPlan>,
    ) -> Result<Self, Exit> {
        let rank = session.rank;
        let started_at = output::rfc3339_now();
        // Before our own compute adds to the load: what else shares the host.
        let host_load = (rank.local_rank == 0).then(|| host_load(rank, &session.run_id));
        let mut backend = B::open(&config, rank, plan.clone())?;
        let alloc = backend
            .allocate_gemms(&plan)
            .and_then(|_| backend.allocate_buckets(&plan));
        rank.agree(alloc)?;
        let device = backend.device();
        let (clock, groups) = {
            let _deadline = crate::watchdog::Watchdog::arm(
                format!("rank {} on {}: aligning the clocks", rank.rank, rank.host),
                Duration::from_secs_f64(config.run.op_timeout_s)
                    .max(crate::clock::ALIGN_DEADLINE_FLOOR),
                i32::from(mfubench_core::protocol::exit::RUN_FAILED),
            );
            let clock = rank.agree(crate::clock::align(rank).map_err(RunError))?;
            // The group splits are collectives too: under the same deadline.
            let nodes = (rank.size > SHARD_ABOVE_RANKS).then(|| NodeComms::new(rank));
            (clock, (group_comms(rank, &plan), nodes))
        };
        let (groups, node_comms) = groups;
        Ok(Benchmark {
            session,
            rank,
            label,
            op_timeout: Duration::from_secs_f64(config.run.op_timeout_s),
            config,
            plan,
            backend,
            device,
            started_at,
            peak: PeakChoice {
                tflops: 0.0,
                source: PeakSource::Config,
            },
            calibrated: None,
            steps: BTreeMap::new(),
            telemetry: Vec::new(),
            injected: false,
            steps_started: std::cell::Cell::new(0),
            host_load,
            clock: std::cell::Cell::new(clock),
            warmup_round_s: Vec::new(),
            groups,
            quiet: false,
            sdc: Vec::new(),
            node_comms,
        })
    }

    /// The peak MFU is computed against: `run.peak_tflops` if set; else the
    /// datasheet table when every rank found its device there (the highest,
    /// with a warning if they differ); else a calibration on every rank,
    /// max over ranks. Taken collectively: ranks that took different
    /// branches would enter different collectives (a mixed or MIG cluster).
    pub fn choose_peak(&mut self) -> Result<(), Exit> {
        let r = self.rank;
        let spec = self.device.spec_peak_tflops;
        let spec_everywhere = self.config.run.peak_tflops.is_none() && r.all(spec.is_some());
        self.peak = match (self.config.run.peak_tflops, spec) {
            (Some(p), _) => PeakChoice {
                tflops: p,
                source: PeakSource::Config,
            },
            (None, Some(mine)) if spec_everywhere => {
                let (hi, lo) = (
                    mpi_comm::max_f64(&r.world, mine),
                    -mpi_comm::max_f64(&r.world, -mine),
                );
                if hi != lo && r.is_root() {
                    crate::say!(
                        "mfubench-worker: warning: the devices of this run have different peaks ({lo} to {hi} TFLOP/s); MFU uses the highest"
                    );
                }
                PeakChoice {
                    tflops: hi,
                    source: PeakSource::Spec,
                }
            }
            (None, _) => {
                if r.is_root() && self.backend.name() != "cpu" {
                    crate::say!(
                        "mfubench-worker: {} is not in the peak table for {}; using a calibration GEMM as the peak (set run.peak_tflops for a datasheet value)",
                        self.device.name,
                        self.config.run.dtype
                    );
                }
                crate::progress::set_position("", "calibration", "barrier");
                self.session
                    .barrier(&r.world, self.op_timeout, "before calibration");
                let mine = schedule::calibrate(
                    &self.backend,
                    &self.plan,
                    5,
                    Duration::from_millis(300),
                    self.op_timeout,
                )
                .unwrap_or_else(|e| r.abort(format!("watchdog: calibration: {e}")));
                self.calibrated = Some(mine);
                PeakChoice {
                    tflops: mpi_comm::max_f64(&r.world, mine),
                    source: PeakSource::Calibrated,
                }
            }
        };
        Ok(())
    }

    /// The peak chosen by [`Benchmark::choose_peak`].
    pub fn peak(&self) -> PeakChoice {
        self.peak
    }

    /// Replaces the peak (the variants of one job share one, so that their
    /// MFUs compare).
    pub fn set_peak(&mut self, peak: PeakChoice) {
        self.peak = peak;
    }

    /// `mode` as progress events name it: `compute`, or `compute
    /// [run.bucket_mb=4]` for a variant.
    pub fn cell_name(&self, mode: Mode) -> String {
        match &self.label {
            Some(v) => format!("{mode} [{v}]"),
            None => mode.to_string(),
        }
    }

    /// A point of the run as watchdog and progress messages name it:
    /// `timed iteration 3`, or `variant run.bucket_mb=4, timed iteration 3`.
    fn what(&self, phase: &str) -> String {
        match &self.label {
            Some(v) => format!("variant {v}, {phase}"),
            None => phase.to_string(),
        }
    }

    /// One step of `mode` after a barrier, under the watchdog; returns when
    /// it started and its timings.
    fn step(&self, mode: Mode, what: &str) -> (Instant, StepTiming) {
        crate::progress::set_position(&mode.to_string(), what, "barrier");
        self.session.barrier(
            &self.rank.world,
            self.op_timeout,
            &format!("before mode {mode}, {what}"),
        );
        crate::progress::set_position(&mode.to_string(), what, "step");
        let started = self.steps_started.get();
        self.steps_started.set(started + 1);
        if let Some((r, late_s)) = self.session.hooks.late_rank {
            if r == self.rank.rank && started % 2 == 1 {
                std::thread::sleep(Duration::from_secs_f64(late_s));
            }
        }
        let t0 = Instant::now();
        let mut say_waiting = |op: &str| {
            self.session
                .waiting(&format!("{op} in mode {mode}, {what}"))
        };
        let t = schedule::run_step_noticing(
            &self.backend,
            &self.plan,
            mode,
            self.op_timeout,
            &mut say_waiting,
        )
        .unwrap_or_else(|e| {
            self.rank
                .abort(format!("watchdog: mode {mode}, {what}: {e}"))
        });
        (t0, t)
    }

    /// An untimed step whose all-reduce results are verified (when
    /// `run.check` is on and the mode has all-reduces).
    fn checked_step(&mut self, mode: Mode, what: &str) -> StepTiming {
        let checking = self.config.run.check && mode.has_comm();
        if checking {
            if let Err(e) = self.backend.prepare_check() {
                self.rank.abort(format!("check preparation: {e}"));
            }
        }
        let (_, t) = self.step(mode, what);
        if checking {
            if !self.injected && self.session.hooks.inject_wrong_rank == Some(self.rank.rank) {
                self.injected = true;
                let _ = self.backend.corrupt_one_element();
            }
            let wrong = self
                .backend
                .count_wrong()
                .unwrap_or_else(|e| self.rank.abort(format!("check: {e}")));
            if wrong > 0 {
                crate::say!(
                    "mfubench-worker: rank {} on {}: check: {wrong} wrong element(s) after the all-reduces of mode {mode}, {what}",
                    self.rank.rank,
                    self.rank.host
                );
            }
            self.steps.entry(mode).or_default().wrong += wrong;
        }
        t
    }

    /// Rank 0's step, shown live (a collective here would add a spinning
    /// wait to every step; cluster figures come at the end).
    fn progress(&self, mode: Mode, phase: &str, iter: u32, of: u32, step_s: f64) {
        if self.rank.is_root() && !(self.quiet && phase == "timed") {
            emit(&Event::Iteration {
                mode: self.cell_name(mode),
                phase: phase.into(),
                iter,
                of,
                step_s,
            });
        }
    }

    /// Warmup step `iter` of `of` of `mode` (untimed, checked), shown as
    /// progress.
    /// Returns the step's time, seconds.
    pub fn warmup_step(&mut self, mode: Mode, iter: u32, of: u32) -> f64 {
        let what = self.what(&format!("warmup iteration {iter}"));
        let t = self.checked_step(mode, &what);
        self.progress(mode, "warmup", iter, of, t.step_s);
        t.step_s
    }

    /// Cuts the timed steps per mode to `n` (a step stage under its time
    /// budget); run.json records `n` as `run.iterations`.
    pub fn set_iterations(&mut self, n: u32) {
        self.config.run.iterations = n;
    }

    /// This rank's warmup round times (every variant's steps of each
    /// round), recorded in run.json.
    pub fn set_warmup_rounds(&mut self, round_s: Vec<f64>) {
        self.warmup_round_s = round_s;
    }

    /// Samples the device telemetry of every mode (`start` or `end`).
    pub fn sample_telemetry(&mut self, at: &str) {
        for mode in self.config.run.modes.clone() {
            self.steps.entry(mode).or_default();
            self.telemetry.extend(self.backend.telemetry(mode, at));
        }
    }

    /// The next timed step of `mode`; `first` is the start of the job's
    /// first timed step (shared by the variants, so that `step_start_s`
    /// shows their interleaving).
    pub fn timed_step(&mut self, mode: Mode, first: &mut Option<Instant>) {
        let of = self.config.run.iterations;
        let n = self.steps.get(&mode).map_or(0, |s| s.timings.len()) as u32 + 1;
        let (t0, t) = self.step(mode, &self.what(&format!("timed iteration {n}")));
        let since = t0.duration_since(*first.get_or_insert(t0)).as_secs_f64();
        self.progress(mode, "timed", n, of, t.step_s);
        let s = self.steps.entry(mode).or_default();
        s.timings.push(t);
        s.starts.push(since);
        s.started.push(t0);
        if n == of && self.rank.is_root() && !self.quiet {
            let med = stats::median(&s.timings.iter().map(|t| t.step_s).collect::<Vec<_>>())
                .unwrap_or(0.0);
            emit(&Event::ModeDone {
                mode: self.cell_name(mode),
                median_step_s: med,
            });
        }
    }

    /// The untimed, checked step of every mode with all-reduces (when
    /// `run.check` is on), after the timed ones.
    pub fn check_steps(&mut self) {
        if self.config.run.check {
            for mode in self.config.run.modes.clone() {
                if mode.has_comm() {
                    let what = self.what("check step");
                    self.checked_step(mode, &what);
                }
            }
        }
    }

    /// This rank's fastest compute-mode step as a GEMM rate (hardware FLOPs
    /// of a step / its time), TFLOP/s; 0 without compute-mode steps.
    pub fn best_compute_rate_tflops(&self) -> f64 {
        let fastest = self
            .steps
            .get(&Mode::Compute)
            .and_then(|s| s.timings.iter().map(|t| t.step_s).reduce(f64::min))
            .filter(|t| *t > 0.0);
        fastest.map_or(0.0, |t| {
            mfubench_core::metrics::tflops(self.plan.hardware_flops(), t)
        })
    }

    /// The backend's name (`cpu`, `cuda`).
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Whether the device is the simulated GPU.
    pub fn simulated(&self) -> bool {
        self.device
            .info
            .get("simulated")
            .is_some_and(|v| v == "true")
    }

    /// A soak: timed steps report no progress events of their own (the
    /// soak reports each window).
    pub fn set_quiet(&mut self) {
        self.quiet = true;
    }

    /// Forgets the timed steps and wrong elements so far (a soak window
    /// closed; the figures of the next one start afresh, and memory does
    /// not grow over hours).
    pub fn clear_steps(&mut self) {
        self.steps.clear();
        self.sdc.clear();
        self.telemetry.clear();
    }

    /// One SDC check after round `round` (the same seed on every rank):
    /// `gemms` GEMMs on the device, their digest and reference error kept
    /// for the window's record.
    pub fn sdc_check(&mut self, round: u64, gemms: u32) {
        let seed = 0x5dc0_5eed ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        crate::progress::set_position("", "soak", "SDC check");
        match self.backend.sdc_probe(seed, gemms) {
            Ok(p) => self.sdc.push(mfubench_core::soak::sdc_sample(
                round,
                &p.outputs,
                &p.reference,
                p.tolerance,
            )),
            Err(e) => self.rank.abort(format!("SDC check: {e}")),
        }
    }

    /// This rank's record of a soak window: identity, the figures of
    /// `records` (what [`Benchmark::save`] returned), the device's and
    /// host's readings now, the window's SDC checks and wrong elements.
    pub fn window_record(
        &mut self,
        modes: &[Mode],
        records: &BTreeMap<Mode, ModeRecord>,
    ) -> mfubench_core::soak::RankWindow {
        let mut w = mfubench_core::soak::rank_window_figures(&self.plan, modes, records);
        w.rank = self.rank.rank;
        w.host = self.rank.host.clone();
        w.device = self.device.device.clone();
        w.device_name = self.device.name.clone();
        w.serial = self.device.info.get("serial").cloned();
        w.wrong = self.steps.values().map(|s| s.wrong).sum();
        let mut t = self.backend.window_readings();
        let host = crate::platform::cpu_telemetry();
        (t.cpu_mhz, t.cpu_temp_c, t.load1) = (host.mhz, host.temp_c, host.load1);
        w.telemetry = t;
        w.sdc = self.sdc.clone();
        w
    }

    /// The backend's readings, discarded (a soak's first call registers
    /// the XID watch before the first window).
    pub fn open_readings(&mut self) {
        let _ = self.backend.window_readings();
    }

    /// Declares the normal end of the backend's collectives (see
    /// [`Backend::finish`]); the executor calls it after the last step.
    pub fn finish(&self) {
        self.backend.finish();
    }

    /// Where run.json is written.
    pub fn run_json_path(&self) -> PathBuf {
        self.session.run_dir.join("run.json")
    }

    /// Gathers every rank's record on rank 0, which writes run.json
    /// atomically; every rank learns whether it was written.
    pub fn save(&self, complete: bool) -> Result<BTreeMap<Mode, ModeRecord>, Exit> {
        let r = self.rank;
        // The gather and the agreement wait for every rank: under a
        // deadline, so that a rank stopped or gone ends the job.
        crate::progress::set_position("", "", "gather of the rank records");
        let _deadline = crate::watchdog::Watchdog::arm(
            format!("rank {} on {}: gathering the rank records", r.rank, r.host),
            self.op_timeout,
            i32::from(mfubench_core::protocol::exit::RUN_FAILED),
        );
        let mut clock = self.clock.get();
        clock
            .remeasure(r)
            .unwrap_or_else(|e| r.abort(format!("clock alignment: {e}")));
        self.clock.set(clock);
        let modes = self.mode_records();
        let record = RankRecord {
            rank: r.rank,
            host: r.host.clone(),
            local_rank: r.local_rank,
            device: self.device.device.clone(),
            device_name: self.device.name.clone(),
            device_info: self.device.info.clone(),
            calibrated_tflops: self.calibrated,
            wrong: self.steps.values().map(|s| s.wrong).sum(),
            modes: modes.clone(),
            telemetry: self.telemetry.clone(),
            host_load: self.host_load.clone(),
            clock: Some(self.clock.get().record()),
            warmup_round_s: self.warmup_round_s.clone(),
        };
        let bytes = serde_json::to_vec(&record)
            .unwrap_or_else(|e| r.abort(format!("cannot encode the rank record: {e}")));
        let written = match &self.node_comms {
            Some(comms) => self.save_per_node(comms, &bytes, complete),
            None => {
                let gathered =
                    mpi_comm::gather_bytes(&r.world, &bytes).unwrap_or_else(|e| r.abort(e));
                match gathered {
                    Some(all) => self.write_run_json(all, complete),
                    None => Ok(()),
                }
            }
        };
        r.agree(written)?;
        if complete {
            emit(&Event::RankDone { rank: r.job_rank });
        }
        Ok(modes)
    }

    /// Each mode's record, its collectives timed from the last arrival.
    /// Collective: every rank calls it at the same save.
    fn mode_records(&self) -> BTreeMap<Mode, ModeRecord> {
        self.steps
            .iter()
            .filter(|(_, s)| !s.timings.is_empty())
            .map(|(m, s)| {
                let clock = self.clock.get();
                let at: Vec<f64> = s.started.iter().map(|t| clock.at(*t)).collect();
                let (arrivals, groups) = record::arrivals(&self.plan, &s.timings, &at);
                let last = self.last_arrivals(&arrivals, &groups);
                let timings = record::from_last_arrival(&s.timings, &at, &last);
                (*m, mode_record(&self.plan, &timings, &s.starts, s.wrong))
            })
            .collect()
    }

    /// Per arrival (`groups[i]`: the kind of group its collective runs in),
    /// the latest of the arrivals of that group's ranks. Collective: one
    /// all-reduce (maximum) per kind of group.
    fn last_arrivals(&self, arrivals: &[f64], groups: &[Group]) -> Vec<f64> {
        let mut last = arrivals.to_vec();
        if arrivals.is_empty() {
            // No collective in this mode (every rank alike).
            return last;
        }
        for (g, comm) in &self.groups {
            let send: Vec<f64> = arrivals
                .iter()
                .zip(groups)
                .map(|(a, k)| if k == g { *a } else { f64::NEG_INFINITY })
                .collect();
            let mut max = vec![0.0; send.len()];
            comm.all_reduce_into(&send[..], &mut max[..], SystemOperation::max());
            for (i, _) in groups.iter().enumerate().filter(|(_, k)| *k == g) {
                last[i] = max[i];
            }
        }
        last
    }

    /// The hierarchical save of a large run, the alternative to one gather
    /// on rank 0: each node's leader gathers its node's rank records,
    /// reduces them to a [`NodeRecord`] and sends only that to rank 0, which
    /// computes the summary; rank 0 tells the leaders which timelines to
    /// keep and where; each leader writes its node's records to
    /// `ranks/<host>.json`; once every shard is written, rank 0 writes
    /// run.json with the summary, the node records and the shards' index.
    /// Rank 0's memory and the bytes it receives grow with the nodes, not
    /// the ranks. Collective; runs under the save's deadline.
    fn save_per_node(
        &self,
        comms: &NodeComms,
        bytes: &[u8],
        complete: bool,
    ) -> Result<(), RunError> {
        let r = self.rank;
        let gathered = mpi_comm::gather_bytes(&comms.node, bytes).unwrap_or_else(|e| r.abort(e));
        let (Some(leaders), Some(all)) = (&comms.leaders, gathered) else {
            return Ok(());
        };
        let plan_info = PlanInfo::of(&self.plan, &self.config);
        let ranks: Result<Vec<RankRecord>, RunError> = all
            .iter()
            .map(|b| {
                serde_json::from_slice::<RankRecord>(b).map_err(|e| {
                    RunError(format!(
                        "a rank record of node {} is unreadable: {e}",
                        r.host
                    ))
                })
            })
            .collect();
        // Every leader takes part in every collective below, whatever failed
        // before it: errors are carried to the agreement at the end.
        let node_bytes = match &ranks {
            Ok(rs) => {
                let refs: Vec<&RankRecord> = rs.iter().collect();
                serde_json::to_vec(&NodeRecord::of(&r.host, &refs, &plan_info)).unwrap_or_default()
            }
            Err(_) => Vec::new(),
        };
        let nodes = mpi_comm::gather_bytes(leaders, &node_bytes).unwrap_or_else(|e| r.abort(e));
        let run = nodes.map(|nodes| self.run_of_nodes(nodes, complete));
        let orders = match &run {
            Some(Ok((run, keep))) => self.shard_orders(run, keep),
            _ => Vec::new(),
        };
        let orders = mpi_comm::broadcast_bytes(leaders, &orders);
        let orders = serde_json::from_slice::<ShardOrders>(&orders).map_err(|_| {
            RunError("rank 0 could not assemble the run record, so no shard was written".into())
        });
        let shard = match (ranks, &orders) {
            (Ok(rs), Ok(o)) => self.shard_bytes(rs, o),
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(e.clone()),
        };
        let shard = self.place_shard(leaders, shard, orders.as_ref().ok());
        let failed = u64::from(shard.is_err());
        let mut any = 0u64;
        leaders.all_reduce_into(&failed, &mut any, SystemOperation::max());
        match run {
            // Rank 0: its own error first (the cause of the others').
            Some(Err(e)) => Err(e),
            Some(Ok((run, _))) if any == 0 => self.write_record(&run, complete),
            Some(Ok(_)) => shard.and(Err(RunError(
                "a node leader could not write its shard of rank records; run.json was not updated"
                    .into(),
            ))),
            None => shard,
        }
    }

    /// Rank 0: the run record from the node records, and the ranks whose
    /// timelines the shards keep beyond each node's own sample.
    fn run_of_nodes(
        &self,
        all: Vec<Vec<u8>>,
        complete: bool,
    ) -> Result<(RunRecord, Vec<u64>), RunError> {
        let mut nodes = Vec::with_capacity(all.len());
        for (i, b) in all.iter().enumerate() {
            nodes.push(serde_json::from_slice::<NodeRecord>(b).map_err(|e| {
                RunError(format!(
                    "the node record of node leader {i} is unreadable (see its error line): {e}"
                ))
            })?);
        }
        let mut used = BTreeSet::new();
        let files = nodes
            .iter()
            .map(|n| {
                let mut path = shard_path(&n.host);
                // Two nodes reporting one host name keep a file each.
                let mut k = 1;
                while !used.insert(path.clone()) {
                    k += 1;
                    path = shard_path(&format!("{}-{k}", n.host));
                }
                ShardFile {
                    host: n.host.clone(),
                    path,
                    ranks: n.ranks.iter().map(|b| b.rank).collect(),
                }
            })
            .collect();
        let meta = self.run_meta(complete);
        let run = RunRecord::of_nodes(
            &self.config,
            &self.plan,
            self.peak,
            meta,
            nodes,
            RankShards { files },
        );
        let stragglers: Vec<u64> = run.summary.stragglers.iter().map(|s| s.rank).collect();
        let keep = RunRecord::timeline_keep_of_nodes(&run.nodes, &stragglers);
        Ok((run, keep))
    }

    /// Rank 0: the leaders' orders, after creating `ranks/` and the
    /// marker file that tells a leader whether it shares rank 0's files.
    fn shard_orders(&self, run: &RunRecord, keep: &[u64]) -> Vec<u8> {
        let dir = std::path::absolute(&self.session.run_dir)
            .unwrap_or_else(|_| self.session.run_dir.clone());
        let marker = dir.join(format!("ranks/.shared-{}", std::process::id()));
        let made =
            std::fs::create_dir_all(dir.join("ranks")).and_then(|_| std::fs::write(&marker, b""));
        if let Err(e) = made {
            crate::say!("mfubench-worker: cannot create {}: {e}", marker.display());
            return Vec::new();
        }
        serde_json::to_vec(&ShardOrders {
            keep: keep.to_vec(),
            paths: run
                .rank_shards
                .iter()
                .flat_map(|s| &s.files)
                .filter_map(|f| Some((*f.ranks.first()?, f.path.clone())))
                .collect(),
            dir,
            marker,
        })
        .unwrap_or_default()
    }

    /// A node leader: its node's shard (path and bytes), keeping the
    /// timelines of a sample when the run is large (the node's slowest,
    /// median and fastest rank and the ranks rank 0 named).
    fn shard_bytes(
        &self,
        mut ranks: Vec<RankRecord>,
        orders: &ShardOrders,
    ) -> Result<(PathBuf, Vec<u8>), RunError> {
        let r = self.rank;
        let path = orders.paths.get(&r.rank).ok_or_else(|| {
            RunError(format!(
                "rank 0 named no shard for the node of rank {}",
                r.rank
            ))
        })?;
        if r.size as usize > TIMELINE_SAMPLE_ABOVE {
            keep_timeline_sample(&mut ranks, &orders.keep, 0);
        }
        let shard = ShardRecord {
            host: r.host.clone(),
            ranks,
        };
        let bytes = serde_json::to_vec(&shard).map_err(|e| RunError(e.to_string()))?;
        Ok((orders.dir.join(path), bytes))
    }

    /// Writes each leader's shard: the leader itself where it sees rank 0's
    /// marker file (a shared file system), else rank 0, which receives it
    /// from that leader, one node at a time. Collective over the leaders.
    fn place_shard(
        &self,
        leaders: &SimpleCommunicator,
        shard: Result<(PathBuf, Vec<u8>), RunError>,
        orders: Option<&ShardOrders>,
    ) -> Result<(), RunError> {
        let write = |file: &std::path::Path, bytes: &[u8]| {
            output::write_atomic(file, bytes).map_err(|e| RunError(e.to_string()))
        };
        // Rank 0 writes its own node's shard.
        let shared = leaders.rank() == 0
            || (orders.is_some_and(|o| o.marker.exists())
                && std::env::var_os(SHARDS_THROUGH_RANK0_ENV).is_none());
        let mut result = match &shard {
            Ok((file, bytes)) if shared => write(file, bytes),
            Ok(_) => Ok(()),
            Err(e) => Err(e.clone()),
        };
        // Who sends its shard to rank 0: 1 = sends, 0 = wrote it or failed.
        let sends = u8::from(!shared && shard.is_ok());
        let root = leaders.process_at_rank(0);
        if leaders.rank() == 0 {
            let mut who = vec![0u8; leaders.size() as usize];
            root.gather_into_root(&sends, &mut who[..]);
            let sent = who.iter().filter(|s| **s == 1).count();
            if sent > 0 {
                crate::say!(
                    "mfubench-worker: {sent} node(s) sent their shard of rank records to rank 0, which wrote it (their leader does not see rank 0's results folder{})",
                    if std::env::var_os(SHARDS_THROUGH_RANK0_ENV).is_some() {
                        ", or was told so by MFUBENCH_SHARDS_THROUGH_RANK0"
                    } else {
                        ""
                    }
                );
            }
            for (i, _) in who.iter().enumerate().filter(|(_, s)| **s == 1) {
                let (path, _) = leaders.process_at_rank(i as i32).receive_vec::<u8>();
                let (bytes, _) = leaders.process_at_rank(i as i32).receive_vec::<u8>();
                let file = PathBuf::from(String::from_utf8_lossy(&path).into_owned());
                if let Err(e) = write(&file, &bytes) {
                    result = result.and(Err(e));
                }
            }
            if let Some(o) = orders {
                let _ = std::fs::remove_file(&o.marker);
            }
        } else {
            root.gather_into(&sends);
            if let (1, Ok((file, bytes))) = (sends, &shard) {
                root.send(file.to_string_lossy().as_bytes());
                root.send(&bytes[..]);
            }
        }
        result
    }

    /// Rank 0: builds the run record from the gathered rank records and
    /// writes it.
    fn write_run_json(&self, all: Vec<Vec<u8>>, complete: bool) -> Result<(), RunError> {
        let mut ranks = Vec::with_capacity(all.len());
        for (i, b) in all.iter().enumerate() {
            ranks.push(
                serde_json::from_slice::<RankRecord>(b)
                    .map_err(|e| RunError(format!("the record of rank {i} is unreadable: {e}")))?,
            );
        }
        let meta = self.run_meta(complete);
        let run = RunRecord::new(&self.config, &self.plan, self.peak, meta, ranks);
        self.write_record(&run, complete)
    }

    /// What the run record holds apart from the measurements.
    fn run_meta(&self, complete: bool) -> RunMeta {
        let mut launch: LaunchInfo = std::env::var(LAUNCH_ENV)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_else(|| LaunchInfo {
                command: std::env::args().collect(),
                launcher: "manual".into(),
                ..Default::default()
            });
        launch.slurm_job_id = launch
            .slurm_job_id
            .or_else(|| std::env::var("SLURM_JOB_ID").ok());
        launch.slurm_nodelist = launch.slurm_nodelist.or_else(|| {
            std::env::var("SLURM_JOB_NODELIST")
                .or_else(|_| std::env::var("SLURM_NODELIST"))
                .ok()
        });
        let mut versions = self.device.versions.clone();
        if let Ok(v) = mpi::environment::library_version() {
            versions.insert(
                "mpi".to_string(),
                // MPI_Get_library_version's buffer ends in a NUL that
                // trim() keeps.
                v.lines()
                    .next()
                    .unwrap_or("")
                    .trim_matches(|c: char| c.is_whitespace() || c == '\0')
                    .to_string(),
            );
        }
        versions.insert(
            "mfubench".to_string(),
            mfubench_core::TOOL_VERSION.to_string(),
        );
        RunMeta {
            run_id: self.session.run_id.clone(),
            started_at: self.started_at.clone(),
            finished_at: output::rfc3339_now(),
            launch,
            versions,
            env: output::captured_env(std::env::vars()),
            complete,
        }
    }

    /// Rank 0: writes run.json atomically and, at the end, says so.
    fn write_record(&self, run: &RunRecord, complete: bool) -> Result<(), RunError> {
        let path = self.run_json_path();
        let bytes = serde_json::to_vec(run).map_err(|e| RunError(e.to_string()))?;
        output::write_atomic(&path, &bytes).map_err(|e| RunError(e.to_string()))?;
        if complete {
            let s = &run.summary;
            let pct = |x: Option<f64>| {
                x.map(|v| format!("{:.1} %", v * 100.0))
                    .unwrap_or_else(|| "-".into())
            };
            crate::say!(
                "mfubench-worker: {} ranks, MFU compute {} / overlapped {}, wrong {}; wrote {}",
                self.rank.size,
                pct(s.mfu.compute),
                pct(s.mfu.overlapped),
                s.wrong,
                path.display()
            );
            emit(&Event::Done {
                run_dir: self.session.run_dir.display().to_string(),
                run_json: path.display().to_string(),
            });
        }
        Ok(())
    }
}

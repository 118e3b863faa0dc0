//! `mfubench-worker replay SPECS.json OUT.json`: the step schedule in
//! virtual time, for `mfubench project`.
//!
//! [`ModelBackend`] implements the backend traits with clocks instead of a
//! device: every stream has a virtual time; a GEMM or a collective advances
//! its stream by the duration the [`ReplaySpec`] gives it; an event takes its
//! stream's time when recorded; a wait moves a stream to the event's time.
//! [`schedule::run_step`] (the code every run executes) enqueues one step of
//! each mode on it, so the projected modes differ only in the waits the
//! schedule declares, exactly as the measured ones did, and
//! [`record::mode_record`] and [`RunRecord::new`] (the run's own summary)
//! turn the replayed steps into the figures. No MPI, no device: the replay
//! is one process, and every rank of the projected job is the same rank
//! (no stragglers, no waiting for peers; the projection says so).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use mfubench_core::config::Config;
use mfubench_core::plan::StepPlan;
use mfubench_core::project::ReplaySpec;
use mfubench_core::result::{RankRecord, RunMeta, RunRecord, Summary};

use crate::backend::{
    Backend, BackendError, Communicator, Compute, DeviceRecord, SdcProbe, StreamId, Streams,
};
use crate::rank::{Exit, Rank};
use crate::{record, schedule};

/// The backend of a replay: streams with virtual clocks.
pub struct ModelBackend {
    /// Seconds of each GEMM of the plan.
    gemm_s: Vec<f64>,
    /// Seconds of each collective of the plan.
    collective_s: Vec<f64>,
    /// Bucket → collective index.
    bucket_collective: HashMap<usize, usize>,
    clocks: RefCell<HashMap<StreamId, f64>>,
}

impl ModelBackend {
    /// A backend for `plan` whose ops take the given seconds (one per GEMM
    /// and one per collective of the plan, in plan order).
    pub fn new(
        plan: &StepPlan,
        gemm_s: Vec<f64>,
        collective_s: Vec<f64>,
    ) -> Result<ModelBackend, String> {
        if gemm_s.len() != plan.ops.len() && !gemm_s.is_empty() {
            return Err(format!(
                "{} GEMM durations for a plan of {} GEMMs",
                gemm_s.len(),
                plan.ops.len()
            ));
        }
        if collective_s.len() != plan.collectives.len() && !collective_s.is_empty() {
            return Err(format!(
                "{} collective durations for a plan of {} collectives",
                collective_s.len(),
                plan.collectives.len()
            ));
        }
        let bucket_collective = plan
            .collectives
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.bucket.map(|b| (b, i)))
            .collect();
        Ok(ModelBackend {
            gemm_s,
            collective_s,
            bucket_collective,
            clocks: RefCell::new(HashMap::new()),
        })
    }

    fn advance(&self, stream: StreamId, seconds: f64) {
        *self.clocks.borrow_mut().entry(stream).or_insert(0.0) += seconds;
    }

    fn now(&self, stream: StreamId) -> f64 {
        self.clocks.borrow().get(&stream).copied().unwrap_or(0.0)
    }

    fn missing(what: &str, i: usize) -> BackendError {
        BackendError::Failed(format!("replay: no duration for {what} {i}"))
    }
}

impl Streams for ModelBackend {
    /// The virtual time it was recorded at (NaN: not recorded).
    type Event = Cell<f64>;

    fn new_event(&self) -> Result<Cell<f64>, BackendError> {
        Ok(Cell::new(f64::NAN))
    }

    fn record(&self, stream: StreamId, event: &Cell<f64>) -> Result<(), BackendError> {
        event.set(self.now(stream));
        Ok(())
    }

    fn wait(&self, stream: StreamId, event: &Cell<f64>) -> Result<(), BackendError> {
        let t = event.get();
        if t.is_nan() {
            return Err(BackendError::Failed(
                "replay: a stream waits for an event never recorded".into(),
            ));
        }
        let mut clocks = self.clocks.borrow_mut();
        let c = clocks.entry(stream).or_insert(0.0);
        *c = c.max(t);
        Ok(())
    }

    fn sync_event(&self, event: &Cell<f64>, _timeout: Duration) -> Result<bool, BackendError> {
        Ok(!event.get().is_nan())
    }

    fn elapsed_s(&self, from: &Cell<f64>, to: &Cell<f64>) -> Result<f64, BackendError> {
        Ok(to.get() - from.get())
    }
}

impl Compute for ModelBackend {
    fn allocate_gemms(&mut self, _plan: &StepPlan) -> Result<(), BackendError> {
        Ok(())
    }

    fn gemm(&self, stream: StreamId, op: usize) -> Result<(), BackendError> {
        let d = *self
            .gemm_s
            .get(op)
            .ok_or_else(|| Self::missing("GEMM", op))?;
        self.advance(stream, d);
        Ok(())
    }
}

impl Communicator for ModelBackend {
    fn allocate_buckets(&mut self, _plan: &StepPlan) -> Result<(), BackendError> {
        Ok(())
    }

    fn all_reduce(&self, stream: StreamId, bucket: usize) -> Result<(), BackendError> {
        let i = *self
            .bucket_collective
            .get(&bucket)
            .ok_or_else(|| Self::missing("bucket", bucket))?;
        self.collective(stream, i)
    }

    fn collective(&self, stream: StreamId, index: usize) -> Result<(), BackendError> {
        let d = *self
            .collective_s
            .get(index)
            .ok_or_else(|| Self::missing("collective", index))?;
        self.advance(stream, d);
        Ok(())
    }

    fn prepare_check(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn count_wrong(&self) -> Result<u64, BackendError> {
        Ok(0)
    }

    fn corrupt_one_element(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

impl Backend for ModelBackend {
    /// A replay is not a run: it is built by [`ModelBackend::new`].
    fn open(_config: &Config, rank: &Rank, _plan: Arc<StepPlan>) -> Result<Self, Exit> {
        if rank.is_root() {
            rank.error("the model backend only replays (mfubench project)");
        }
        Err(Exit::Usage)
    }

    fn device(&self) -> DeviceRecord {
        DeviceRecord {
            device: "model".into(),
            name: "virtual time (mfubench project)".into(),
            ..Default::default()
        }
    }

    fn name(&self) -> &'static str {
        "model"
    }

    fn sdc_probe(&self, _seed: u64, _count: u32) -> Result<SdcProbe, BackendError> {
        Err(BackendError::Unavailable(
            "the model backend has no device to probe".into(),
        ))
    }
}

/// Replays one spec: every mode of its config, one step each, from the
/// plan of its world size; the run's summary of those steps.
pub fn replay(spec: &ReplaySpec) -> Result<Summary, String> {
    let layout = spec
        .config
        .parallel
        .layout(spec.ranks, spec.ranks_per_node)
        .map_err(|e| {
            format!(
                "{} ranks, {} per node: {e}",
                spec.ranks, spec.ranks_per_node
            )
        })?;
    let plan = Arc::new(StepPlan::for_layout(&spec.config, &layout));
    let mut modes = BTreeMap::new();
    for &mode in &spec.config.run.modes {
        let gemm = spec.gemm_s.get(&mode).cloned().unwrap_or_default();
        let coll = spec.collective_s.get(&mode).cloned().unwrap_or_default();
        let backend = ModelBackend::new(&plan, gemm, coll)
            .map_err(|e| format!("{} mode: {e}", mode.name()))?;
        let step = schedule::run_step(&backend, &plan, mode, Duration::from_secs(1))
            .map_err(|e| format!("{} mode: {e}", mode.name()))?;
        modes.insert(mode, record::mode_record(&plan, &[step], &[0.0], 0));
    }
    let rank = RankRecord {
        rank: 0,
        host: "projected".into(),
        local_rank: 0,
        device: "model".into(),
        device_name: "virtual time".into(),
        device_info: BTreeMap::new(),
        calibrated_tflops: None,
        modes,
        wrong: 0,
        telemetry: Vec::new(),
        host_load: None,
        clock: None,
        warmup_round_s: Vec::new(),
    };
    let meta = RunMeta {
        run_id: "projection".into(),
        started_at: String::new(),
        finished_at: String::new(),
        launch: Default::default(),
        versions: BTreeMap::new(),
        env: BTreeMap::new(),
        complete: true,
    };
    Ok(RunRecord::new(&spec.config, &plan, spec.peak, meta, vec![rank]).summary)
}

/// `mfubench-worker replay SPECS OUT`: reads a JSON array of specs, writes
/// a JSON array of their summaries (atomically). Exit 0, or 2 with the
/// reason on stderr.
pub fn main(specs: &std::path::Path, out: &std::path::Path) -> Result<(), String> {
    let bytes = std::fs::read(specs).map_err(|e| format!("{}: {e}", specs.display()))?;
    let specs: Vec<ReplaySpec> =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", specs.display()))?;
    let summaries = specs
        .iter()
        .enumerate()
        .map(|(i, s)| replay(s).map_err(|e| format!("replay {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let text = serde_json::to_vec(&summaries).map_err(|e| e.to_string())?;
    mfubench_fsio::write_atomic(out, &text).map_err(|e| format!("{}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfubench_core::config::Mode;
    use mfubench_core::project::Bound;
    use mfubench_core::result::{PeakChoice, PeakSource};

    fn spec(gemm: f64, coll: f64) -> (ReplaySpec, Arc<StepPlan>) {
        let cfg = mfubench_core::config::parse_config(
            "[model]\npreset = \"tiny\"\n[run]\nbackend = \"cpu\"\nranks = 2\nlayers = 2\nbucket_mb = 4.0\nmodes = [\"compute\", \"comm\", \"serialized\", \"overlapped\"]\n",
            "t.toml",
        )
        .unwrap();
        let layout = cfg.parallel.layout(4, 2).unwrap();
        let plan = Arc::new(StepPlan::for_layout(&cfg, &layout));
        let (g, c) = (
            vec![gemm; plan.ops.len()],
            vec![coll; plan.collectives.len()],
        );
        let mut gemm_s = BTreeMap::new();
        let mut collective_s = BTreeMap::new();
        for m in Mode::ALL {
            gemm_s.insert(m, g.clone());
            collective_s.insert(m, c.clone());
        }
        (
            ReplaySpec {
                config: cfg,
                ranks: 4,
                ranks_per_node: 2,
                bound: Bound::Mid,
                peak: PeakChoice {
                    tflops: 1.0,
                    source: PeakSource::Config,
                },
                gemm_s,
                collective_s,
            },
            plan,
        )
    }

    #[test]
    fn virtual_time_gives_the_schedules_known_answers() {
        // Every GEMM 1 ms, every bucket 10 ms.
        let (s, plan) = spec(1e-3, 10e-3);
        let (n, b) = (plan.ops.len() as f64, plan.collectives.len() as f64);
        let sum = replay(&s).unwrap();
        let t = |m| sum.step_time_s.get(m).unwrap();
        assert!((t(Mode::Compute) - n * 1e-3).abs() < 1e-12);
        assert!((t(Mode::Comm) - b * 10e-3).abs() < 1e-12);
        // Serialized: every all-reduce after the last GEMM.
        assert!((t(Mode::Serialized) - (n * 1e-3 + b * 10e-3)).abs() < 1e-12);
        // Overlapped: between the two, and at least the longer stream.
        let o = t(Mode::Overlapped);
        assert!(o < t(Mode::Serialized) - 1e-6 && o >= t(Mode::Comm).max(t(Mode::Compute)));
        // Exposed communication = T_o − T_c; hidden = 1 − exposed / T_a.
        let exposed = sum.exposed_comm_s.unwrap();
        assert!((exposed - (o - t(Mode::Compute))).abs() < 1e-9, "{exposed}");
        assert!((sum.hidden_fraction.unwrap() - (1.0 - exposed / t(Mode::Comm))).abs() < 1e-9);
    }

    #[test]
    fn collectives_that_take_no_time_hide_completely() {
        let (s, _) = spec(1e-3, 0.0);
        let sum = replay(&s).unwrap();
        assert_eq!(
            sum.step_time_s.get(Mode::Overlapped),
            sum.step_time_s.get(Mode::Compute)
        );
    }

    #[test]
    fn wrong_duration_counts_are_named() {
        let (mut s, _) = spec(1e-3, 1e-3);
        s.gemm_s.insert(Mode::Compute, vec![1e-3; 3]);
        let e = replay(&s).unwrap_err();
        assert!(
            e.starts_with("compute mode: 3 GEMM durations for a plan of"),
            "{e}"
        );
    }
}

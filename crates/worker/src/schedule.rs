//! The schedule of one training step, written once for every backend.
//!
//! Each mode enqueues the same ops; only the waits differ:
//!
//! | mode | compute stream | comm stream |
//! |---|---|---|
//! | compute | every GEMM | — |
//! | comm | — | every bucket's all-reduce |
//! | serialized | every GEMM | waits for the last GEMM, then every all-reduce |
//! | overlapped | every GEMM | bucket b waits for its last wgrad, then its all-reduce |
//!
//! A `start` event on the compute stream opens the step (the comm stream
//! waits on it, so both streams start together); an `end` event on the
//! compute stream, after it waited for the last all-reduce, closes it. Every
//! GEMM is followed by an event, so GEMM `i` spans from the event before it
//! to its own; every all-reduce is bracketed by two events. The step time is
//! `elapsed(start, end)`.
//!
//! The watchdog: the caller's thread waits for the events in the order the
//! ops were planned, each with `run.op_timeout_s`; an event that does not
//! complete in time names the op that is stuck.

use std::time::Duration;

use mfubench_core::config::Mode;
use mfubench_core::metrics::Collective;
use mfubench_core::plan::{CollectiveOp, StepPlan};
use mfubench_core::result::{Span, StreamKind};

use crate::backend::{Backend, BackendError, StreamId};

/// Why a step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// An op did not complete within the watchdog limit.
    #[error("op {op} on the {stream} stream{bucket} did not complete within {timeout_s} s")]
    Stuck {
        /// Op label.
        op: String,
        /// Stream name.
        stream: &'static str,
        /// ", bucket N" when the op is an all-reduce.
        bucket: String,
        /// The limit.
        timeout_s: f64,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Timings of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTiming {
    /// elapsed(start, end), seconds.
    pub step_s: f64,
    /// Every op, in plan order (GEMMs) then bucket order (all-reduces).
    pub spans: Vec<Span>,
}

struct Pending<'a, E> {
    event: &'a E,
    order: f64,
    label: String,
    stream: &'static str,
    bucket: Option<usize>,
}

/// The stream a collective runs on: DDP's buckets on the comm stream (as
/// before tensor and sharded data parallelism existed), every other
/// collective on its group's stream, so that collectives of different
/// groups (a TP all-reduce and an FSDP all-gather) can run at once, as on
/// the separate NCCL streams of a real framework.
pub fn stream_of(c: &CollectiveOp) -> StreamId {
    match (c.bucket, c.kind) {
        (Some(_), _) => StreamId::Comm,
        (None, Collective::ReduceScatter) => StreamId::Reduce(c.group),
        (None, _) => StreamId::Group(c.group),
    }
}

/// The streams (and communicators) a plan's collectives other than DDP's
/// buckets need, in a fixed order: every rank creates the same ones, in
/// the same order (communicator splits are collective).
pub fn group_streams(plan: &StepPlan) -> Vec<StreamId> {
    let mut out: Vec<StreamId> = Vec::new();
    for g in mfubench_core::parallel::Group::SPLIT {
        for s in [StreamId::Group(g), StreamId::Reduce(g)] {
            let used = plan.collectives.iter().any(|c| {
                (c.bucket.is_none() && stream_of(c) == s)
                    // DDP's buckets run on the replicas' communicator under TP.
                    || (c.bucket.is_some()
                        && plan.layout.tensor > 1
                        && s == StreamId::Group(g)
                        && c.group == g)
            });
            if used {
                out.push(s);
            }
        }
    }
    out
}

fn stream_name(s: StreamId) -> &'static str {
    s.name()
}

/// Where the compute stream waits for collective `c` in `mode`: before
/// GEMM `Some(i)`, or at the step's end (`None`). Overlapped: before the
/// GEMM that consumes it. Serialized: right after the GEMM it follows (the
/// collective blocks), or before its consumer if that comes first.
fn compute_waits_before(c: &CollectiveOp, mode: Mode) -> Option<usize> {
    match mode {
        Mode::Serialized => {
            let blocked = c.serialized_after.map_or(Some(0), |i| Some(i + 1));
            match (blocked, c.needed_by) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        _ => c.needed_by,
    }
}

/// Enqueues one step of `mode` on the backend, waits for it under the
/// watchdog, and returns its timings.
pub fn run_step<B: Backend>(
    backend: &B,
    plan: &StepPlan,
    mode: Mode,
    op_timeout: Duration,
) -> Result<StepTiming, StepError> {
    run_step_noticing(backend, plan, mode, op_timeout, &mut |_| {})
}

/// [`run_step`], calling `on_wait(op)` once when a collective has not
/// completed after [`crate::mpi_comm::NOTICE_AFTER`]: this rank is waiting
/// for others (a slow GEMM is this rank's own and is not reported).
///
/// Every rank enqueues the same ops in the same order (the plan is the
/// same on every rank), and a stream only ever waits for an event enqueued
/// before the wait. So the earliest op, in that order, that has not run on
/// some rank has every predecessor done on every rank and can run
/// everywhere: a collective is reached by all its ranks, and the step
/// cannot deadlock, however many group streams there are.
pub fn run_step_noticing<B: Backend>(
    backend: &B,
    plan: &StepPlan,
    mode: Mode,
    op_timeout: Duration,
    on_wait: &mut dyn FnMut(&str),
) -> Result<StepTiming, StepError> {
    let n_ops = if mode.has_compute() {
        plan.ops.len()
    } else {
        0
    };
    let n_coll = if mode.has_comm() {
        plan.collectives.len()
    } else {
        0
    };
    let colls = &plan.collectives[..n_coll];
    let start = backend.new_event()?;
    let end = backend.new_event()?;
    let gemm_end = (0..n_ops)
        .map(|_| backend.new_event())
        .collect::<Result<Vec<_>, _>>()?;
    let c_start = (0..n_coll)
        .map(|_| backend.new_event())
        .collect::<Result<Vec<_>, _>>()?;
    let c_end = (0..n_coll)
        .map(|_| backend.new_event())
        .collect::<Result<Vec<_>, _>>()?;
    // Compute waits: before GEMM i (index i) or at the end (index n_ops).
    let mut waits: Vec<Vec<usize>> = vec![Vec::new(); n_ops + 1];
    // The collectives issued at the start (index 0) or after GEMM i (i + 1).
    let mut issue: Vec<Vec<usize>> = vec![Vec::new(); n_ops + 1];
    if n_ops > 0 {
        for (ci, c) in colls.iter().enumerate() {
            issue[c.issue_after(mode).map_or(0, |i| i + 1)].push(ci);
            waits[compute_waits_before(c, mode).unwrap_or(n_ops)].push(ci);
        }
    }
    // The streams the collectives use, in order of first use.
    let mut streams: Vec<StreamId> = Vec::new();
    for c in colls {
        if !streams.contains(&stream_of(c)) {
            streams.push(stream_of(c));
        }
    }
    // GEMMs preceded by a wait get a start event of their own (their span
    // must not include the wait).
    let gemm_start = (0..n_ops)
        .map(|i| {
            (!waits[i].is_empty())
                .then(|| backend.new_event())
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()?;

    backend.record(StreamId::Compute, &start)?;
    for &s in &streams {
        backend.wait(s, &start)?;
    }
    // The last GEMM each stream was told to wait for: a second wait for
    // the same GEMM is not enqueued (serialized DDP waits once, as before).
    let mut waited: Vec<(StreamId, Option<usize>)> = Vec::new();
    let mut enqueue = |ci: usize| -> Result<(), BackendError> {
        let c = &colls[ci];
        let s = stream_of(c);
        match mode {
            Mode::Comm => {
                // Back to back, one at a time, across streams too.
                if let Some(prev) = ci.checked_sub(1) {
                    if stream_of(&colls[prev]) != s {
                        backend.wait(s, &c_end[prev])?;
                    }
                }
            }
            _ => {
                let after = c.issue_after(mode);
                let last = waited.iter_mut().find(|(x, _)| *x == s);
                let fresh = last.as_ref().is_none_or(|(_, a)| *a != after);
                if let (Some(i), true) = (after, fresh) {
                    backend.wait(s, &gemm_end[i])?;
                }
                match last {
                    Some(entry) => entry.1 = after,
                    None => waited.push((s, after)),
                }
            }
        }
        if let Some(a) = c.after_collective.filter(|&a| a < n_coll) {
            if stream_of(&colls[a]) != s {
                backend.wait(s, &c_end[a])?;
            }
        }
        backend.record(s, &c_start[ci])?;
        match c.bucket {
            Some(b) => backend.all_reduce(s, b)?,
            None => backend.collective(s, ci)?,
        }
        backend.record(s, &c_end[ci])
    };
    if n_ops == 0 {
        for ci in 0..n_coll {
            enqueue(ci)?;
        }
    } else {
        // Each collective is enqueued right after the GEMM it waits for,
        // as DDP's and FSDP's hooks issue them, so a deep plan cannot fill
        // the launch queue with GEMMs while the collectives wait to be
        // issued.
        for &ci in &issue[0] {
            enqueue(ci)?;
        }
        for (i, ev) in gemm_end.iter().enumerate() {
            for &ci in &waits[i] {
                backend.wait(StreamId::Compute, &c_end[ci])?;
            }
            if let Some(Some(e)) = gemm_start.get(i) {
                backend.record(StreamId::Compute, e)?;
            }
            backend.gemm(StreamId::Compute, i)?;
            backend.record(StreamId::Compute, ev)?;
            for &ci in &issue[i + 1] {
                enqueue(ci)?;
            }
        }
    }
    // The end waits for the last collective of every stream.
    for &s in &streams {
        if let Some(ci) = (0..n_coll).rev().find(|&ci| stream_of(&colls[ci]) == s) {
            backend.wait(StreamId::Compute, &c_end[ci])?;
        }
    }
    backend.record(StreamId::Compute, &end)?;

    // Watchdog: wait in the order the ops can complete.
    let mut pending: Vec<Pending<'_, B::Event>> = Vec::with_capacity(n_ops + n_coll + 1);
    for (i, ev) in gemm_end.iter().enumerate() {
        pending.push(Pending {
            event: ev,
            order: i as f64,
            label: plan.ops[i].label(),
            stream: "compute",
            bucket: None,
        });
    }
    for (ci, ev) in c_end.iter().enumerate() {
        let c = &colls[ci];
        let order = match mode {
            Mode::Comm => ci as f64,
            _ => c.issue_after(mode).map_or(-0.5, |i| i as f64 + 0.5),
        };
        pending.push(Pending {
            event: ev,
            order,
            label: c.label(),
            stream: stream_name(stream_of(c)),
            bucket: c.bucket,
        });
    }
    pending.sort_by(|a, b| a.order.total_cmp(&b.order));
    pending.push(Pending {
        event: &end,
        order: f64::INFINITY,
        label: "step end".into(),
        stream: "compute",
        bucket: None,
    });
    let notice = crate::mpi_comm::NOTICE_AFTER.min(op_timeout);
    let mut noticed = false;
    for p in &pending {
        let waits_for_others = p.stream != "compute" || p.label == "step end";
        if waits_for_others && !noticed && n_coll > 0 {
            if backend.sync_event(p.event, notice)? {
                continue;
            }
            noticed = true;
            on_wait(&p.label);
            if backend.sync_event(p.event, op_timeout.saturating_sub(notice))? {
                continue;
            }
        } else if backend.sync_event(p.event, op_timeout)? {
            continue;
        }
        backend.give_up();
        return Err(StepError::Stuck {
            op: p.label.clone(),
            stream: p.stream,
            bucket: p
                .bucket
                .map(|b| format!(", bucket {b}"))
                .unwrap_or_default(),
            timeout_s: op_timeout.as_secs_f64(),
        });
    }

    let mut spans = Vec::with_capacity(n_ops + n_coll);
    let mut prev = &start;
    for (i, ev) in gemm_end.iter().enumerate() {
        if let Some(Some(e)) = gemm_start.get(i) {
            prev = e;
        }
        spans.push(Span {
            name: plan.ops[i].label(),
            stream: StreamKind::Compute,
            op: Some(i),
            bucket: None,
            collective: None,
            start_s: backend.elapsed_s(&start, prev)?,
            end_s: backend.elapsed_s(&start, ev)?,
            arrived_s: None,
        });
        prev = ev;
    }
    for (ci, c) in colls.iter().enumerate() {
        spans.push(Span {
            name: c.label(),
            stream: StreamKind::Comm,
            op: None,
            bucket: c.bucket,
            collective: c.bucket.is_none().then_some(ci),
            start_s: backend.elapsed_s(&start, &c_start[ci])?,
            end_s: backend.elapsed_s(&start, &c_end[ci])?,
            arrived_s: None,
        });
    }
    Ok(StepTiming {
        step_s: backend.elapsed_s(&start, &end)?,
        spans,
    })
}

/// The calibrated peak of the CPU backend, TFLOP/s: the best rate of any
/// GEMM shape of the plan. Every distinct shape (dimensions, batch and
/// transposes: the layout matters to the kernels) runs at least `min_reps`
/// timed repetitions after an untimed one, and rounds continue until
/// `min_time` has passed, so that a transient stall on a shared machine
/// cannot lower the peak — the best run of each shape counts. A step's rate
/// is a weighted mean of its GEMMs' rates, so it cannot exceed this peak
/// except by noise.
pub fn calibrate<B: Backend>(
    backend: &B,
    plan: &StepPlan,
    min_reps: usize,
    min_time: Duration,
    op_timeout: Duration,
) -> Result<f64, StepError> {
    let mut shapes: Vec<usize> = Vec::new();
    for (i, op) in plan.ops.iter().enumerate() {
        let key = |o: &mfubench_core::plan::GemmOp| (o.m, o.n, o.k, o.batch, o.trans_a, o.trans_b);
        if !shapes.iter().any(|&j| key(&plan.ops[j]) == key(op)) {
            shapes.push(i);
        }
    }
    if shapes.is_empty() {
        return Err(BackendError::Failed("the plan has no GEMM".into()).into());
    }
    let mut best = vec![f64::INFINITY; shapes.len()];
    let mut spent = 0.0;
    // Round 0 is untimed: it warms caches and the thread pool.
    for round in 0..=1000 {
        for (slot, &idx) in shapes.iter().enumerate() {
            let (a, b) = (backend.new_event()?, backend.new_event()?);
            backend.record(StreamId::Compute, &a)?;
            backend.gemm(StreamId::Compute, idx)?;
            backend.record(StreamId::Compute, &b)?;
            if !backend.sync_event(&b, op_timeout)? {
                return Err(StepError::Stuck {
                    op: format!("calibration GEMM {}", plan.ops[idx].label()),
                    stream: "compute",
                    bucket: String::new(),
                    timeout_s: op_timeout.as_secs_f64(),
                });
            }
            if round > 0 {
                let t = backend.elapsed_s(&a, &b)?;
                best[slot] = best[slot].min(t);
                spent += t;
            }
        }
        if round >= min_reps && spent >= min_time.as_secs_f64() {
            break;
        }
    }
    Ok(shapes
        .iter()
        .zip(&best)
        .map(|(&i, t)| plan.ops[i].flops() / t / 1e12)
        .fold(0.0, f64::max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Communicator, Compute, Streams};
    use crate::cpu::{CpuBackend, LocalGroup};
    use mfubench_core::config::parse_config;
    use std::sync::Arc;

    fn backend(extra: &str) -> (CpuBackend<LocalGroup>, Arc<StepPlan>) {
        backend_on(extra, None)
    }

    /// A one-rank backend for a config, on `layout` when given (its groups
    /// are one-rank groups).
    fn backend_on(
        extra: &str,
        layout: Option<mfubench_core::parallel::Layout>,
    ) -> (CpuBackend<LocalGroup>, Arc<StepPlan>) {
        let c = parse_config(
            &format!("[model]\npreset = \"tiny\"\nseq = 64\nhidden = 128\nffn = 256\nheads = 4\nkv_heads = 2\n[run]\nbackend = \"cpu\"\nbucket_mb = 0.1\n{extra}"),
            "t",
        )
        .unwrap();
        let mut plan = match layout {
            Some(l) => StepPlan::for_layout(&c, &l),
            None => StepPlan::for_config(&c),
        };
        // One-rank groups stand in for the layout's groups: the schedule is
        // the same, the collectives copy.
        for coll in &mut plan.collectives {
            coll.group_size = 1;
        }
        let plan = Arc::new(plan);
        let mut b = CpuBackend::new(
            plan.clone(),
            c.run.dtype,
            c.run.grad_dtype,
            1,
            Arc::new(LocalGroup),
        )
        .unwrap()
        .with_groups(
            mfubench_core::parallel::Group::SPLIT
                .iter()
                .flat_map(|&g| [StreamId::Group(g), StreamId::Reduce(g)])
                .map(|s| (s, Arc::new(LocalGroup)))
                .collect(),
        )
        .unwrap();
        b.allocate_gemms(&plan).unwrap();
        b.allocate_buckets(&plan).unwrap();
        (b, plan)
    }

    const T: Duration = Duration::from_secs(60);

    #[test]
    fn compute_mode_has_no_allreduce() {
        let (b, plan) = backend("");
        let t = run_step(&b, &plan, Mode::Compute, T).unwrap();
        assert!(t.spans.iter().all(|s| s.stream == StreamKind::Compute));
        assert_eq!(t.spans.len(), plan.ops.len());
        assert!(t.step_s > 0.0);
        // GEMMs are back to back and inside the step.
        for w in t.spans.windows(2) {
            assert!(w[1].start_s >= w[0].end_s - 1e-12);
        }
        assert!(t.spans.last().unwrap().end_s <= t.step_s + 1e-9);
    }

    #[test]
    fn comm_mode_has_no_gemm_and_checks_pass() {
        let (b, plan) = backend("");
        b.prepare_check().unwrap();
        assert!(
            b.count_wrong().unwrap() > 0,
            "stale buffers must fail the check"
        );
        let t = run_step(&b, &plan, Mode::Comm, T).unwrap();
        assert_eq!(t.spans.len(), plan.buckets.len());
        assert!(t.spans.iter().all(|s| s.stream == StreamKind::Comm));
        assert_eq!(b.count_wrong().unwrap(), 0);
        b.corrupt_one_element().unwrap();
        assert_eq!(b.count_wrong().unwrap(), 1);
    }

    #[test]
    fn overlapped_allreduce_starts_after_its_bucket_is_ready() {
        let (b, plan) = backend("");
        assert!(plan.buckets.len() > 2);
        let t = run_step(&b, &plan, Mode::Overlapped, T).unwrap();
        for s in t.spans.iter().filter(|s| s.stream == StreamKind::Comm) {
            let ready = &t.spans[plan.buckets[s.bucket.unwrap()].ready_after];
            assert!(
                s.start_s >= ready.end_s,
                "{} starts {} before ready {}",
                s.name,
                s.start_s,
                ready.end_s
            );
        }
        assert_eq!(b.count_wrong().unwrap(), 0);
    }

    /// A backend that logs the order in which ops are enqueued.
    struct Logging {
        inner: CpuBackend<LocalGroup>,
        log: std::sync::Mutex<Vec<String>>,
    }

    impl Streams for Logging {
        type Event = <CpuBackend<LocalGroup> as Streams>::Event;
        fn new_event(&self) -> Result<Self::Event, BackendError> {
            self.inner.new_event()
        }
        fn record(&self, s: StreamId, e: &Self::Event) -> Result<(), BackendError> {
            self.inner.record(s, e)
        }
        fn wait(&self, s: StreamId, e: &Self::Event) -> Result<(), BackendError> {
            self.inner.wait(s, e)
        }
        fn sync_event(&self, e: &Self::Event, t: Duration) -> Result<bool, BackendError> {
            self.inner.sync_event(e, t)
        }
        fn elapsed_s(&self, a: &Self::Event, b: &Self::Event) -> Result<f64, BackendError> {
            self.inner.elapsed_s(a, b)
        }
    }

    impl Compute for Logging {
        fn allocate_gemms(&mut self, plan: &StepPlan) -> Result<(), BackendError> {
            self.inner.allocate_gemms(plan)
        }
        fn gemm(&self, s: StreamId, op: usize) -> Result<(), BackendError> {
            self.log.lock().unwrap().push(format!("g{op}"));
            self.inner.gemm(s, op)
        }
    }

    impl Communicator for Logging {
        fn allocate_buckets(&mut self, plan: &StepPlan) -> Result<(), BackendError> {
            self.inner.allocate_buckets(plan)
        }
        fn collective(&self, s: StreamId, c: usize) -> Result<(), BackendError> {
            self.log.lock().unwrap().push(format!("c{c}"));
            self.inner.collective(s, c)
        }
        fn all_reduce(&self, s: StreamId, b: usize) -> Result<(), BackendError> {
            self.log.lock().unwrap().push(format!("a{b}"));
            self.inner.all_reduce(s, b)
        }
        fn prepare_check(&self) -> Result<(), BackendError> {
            self.inner.prepare_check()
        }
        fn count_wrong(&self) -> Result<u64, BackendError> {
            self.inner.count_wrong()
        }
        fn corrupt_one_element(&self) -> Result<(), BackendError> {
            self.inner.corrupt_one_element()
        }
    }

    impl Backend for Logging {
        fn open(
            _: &mfubench_core::config::Config,
            _: &crate::rank::Rank,
            _: Arc<StepPlan>,
        ) -> Result<Self, crate::rank::Exit> {
            Err(crate::rank::Exit::Usage)
        }
        fn device(&self) -> crate::backend::DeviceRecord {
            self.inner.device()
        }
        fn name(&self) -> &'static str {
            "logging"
        }
        fn sdc_probe(
            &self,
            seed: u64,
            count: u32,
        ) -> Result<crate::backend::SdcProbe, BackendError> {
            self.inner.sdc_probe(seed, count)
        }
    }

    /// Overlapped: each bucket's all-reduce is enqueued right after the
    /// GEMM it waits for (its last wgrad), not after every GEMM; the other
    /// modes enqueue them after the GEMMs. Deterministic: the enqueue order,
    /// not timings.
    #[test]
    fn overlapped_enqueues_each_allreduce_right_after_its_gemm() {
        let (inner, plan) = backend("");
        let b = Logging {
            inner,
            log: std::sync::Mutex::new(Vec::new()),
        };
        run_step(&b, &plan, Mode::Overlapped, T).unwrap();
        let log = b.log.lock().unwrap().clone();
        for (k, bucket) in plan.buckets.iter().enumerate() {
            let at = log.iter().position(|x| *x == format!("a{k}")).unwrap();
            assert_eq!(log[at - 1], format!("g{}", bucket.ready_after), "{log:?}");
        }
        assert!(plan.buckets[0].ready_after + 1 < plan.ops.len());
        b.log.lock().unwrap().clear();
        run_step(&b, &plan, Mode::Serialized, T).unwrap();
        let log = b.log.lock().unwrap().clone();
        let first_ar = log.iter().position(|x| x.starts_with('a')).unwrap();
        assert_eq!(first_ar, plan.ops.len(), "{log:?}");
    }

    #[test]
    fn serialized_allreduces_start_after_the_last_gemm() {
        let (b, plan) = backend("");
        let t = run_step(&b, &plan, Mode::Serialized, T).unwrap();
        let last_gemm = t.spans[plan.ops.len() - 1].end_s;
        for s in t.spans.iter().filter(|s| s.stream == StreamKind::Comm) {
            assert!(s.start_s >= last_gemm);
        }
        let last_ar = t.spans.last().unwrap().end_s;
        assert!(t.step_s >= last_ar);
    }

    #[test]
    fn calibration_gives_a_positive_rate() {
        let (b, plan) = backend("");
        let r = calibrate(&b, &plan, 2, Duration::from_millis(10), T).unwrap();
        assert!(r > 0.0 && r.is_finite());
    }

    fn one_rank(
        data: mfubench_core::parallel::DataParallel,
        tensor: u64,
    ) -> mfubench_core::parallel::Layout {
        mfubench_core::parallel::Parallel {
            data,
            tensor,
            prefetch: 1,
            expert: 1,
        }
        .layout(tensor, tensor)
        .unwrap()
    }

    /// Overlapped FSDP issues the all-gather of layer l+1 before the GEMMs
    /// of layer l finish (prefetch 1: when layer l starts); serialized
    /// issues it only after them. Deterministic: the enqueue order.
    #[test]
    fn overlapped_fsdp_prefetches_the_next_layers_allgather() {
        use mfubench_core::plan::Purpose;
        let (inner, plan) = backend_on(
            "layers = 3\n",
            Some(one_rank(mfubench_core::parallel::DataParallel::Fsdp, 1)),
        );
        let b = Logging {
            inner,
            log: std::sync::Mutex::new(Vec::new()),
        };
        let position = |log: &[String], x: String| log.iter().position(|y| *y == x).unwrap();
        for (mode, ahead) in [(Mode::Overlapped, true), (Mode::Serialized, false)] {
            b.log.lock().unwrap().clear();
            b.prepare_check().unwrap();
            run_step(&b, &plan, mode, T).unwrap();
            assert_eq!(b.count_wrong().unwrap(), 0, "{mode}");
            let log = b.log.lock().unwrap().clone();
            for l in 0..2u32 {
                let ag = plan
                    .collectives
                    .iter()
                    .position(|c| {
                        c.layer == Some(l + 1) && c.purpose == Purpose::ParamGatherForward
                    })
                    .unwrap();
                let last_gemm = plan
                    .ops
                    .iter()
                    .rposition(|o| {
                        o.layer == Some(l) && o.pass == mfubench_core::plan::Pass::Forward
                    })
                    .unwrap();
                let issued = position(&log, format!("c{ag}"));
                let finished = position(&log, format!("g{last_gemm}"));
                assert_eq!(issued < finished, ahead, "{mode} layer {l}: {log:?}");
            }
        }
    }

    /// Every pattern's collectives run and pass their checks in every mode
    /// (one rank: the groups are one-rank groups); the spans of the
    /// blocking TP all-reduces sit between the GEMMs around them.
    #[test]
    fn every_pattern_runs_every_mode_with_correct_results() {
        use mfubench_core::parallel::DataParallel::*;
        for (data, tensor) in [(Ddp, 2), (Fsdp, 1), (Fsdp, 2), (Hsdp, 1)] {
            let layout = if data == Hsdp {
                let mut l = one_rank(Fsdp, tensor);
                l.data = Hsdp;
                l
            } else {
                one_rank(data, tensor)
            };
            let (b, plan) = backend_on("layers = 2\nrecompute = true\n", Some(layout));
            assert!(!plan.collectives.is_empty());
            for mode in Mode::ALL {
                b.prepare_check().unwrap();
                let t = run_step(&b, &plan, mode, T).unwrap();
                if mode.has_comm() {
                    assert_eq!(b.count_wrong().unwrap(), 0, "{data} t={tensor} {mode}");
                    let n = t
                        .spans
                        .iter()
                        .filter(|s| s.stream == StreamKind::Comm)
                        .count();
                    assert_eq!(n, plan.collectives.len());
                }
                if mode == Mode::Overlapped && tensor > 1 {
                    for s in t.spans.iter().filter(|s| s.collective.is_some()) {
                        let c = &plan.collectives[s.collective.unwrap()];
                        if c.group != mfubench_core::parallel::Group::Tp {
                            continue;
                        }
                        let before = &t.spans[c.ready_after.unwrap()];
                        let after = &t.spans[c.needed_by.unwrap()];
                        assert!(
                            s.start_s >= before.end_s && after.start_s >= s.end_s,
                            "{}",
                            s.name
                        );
                    }
                }
            }
            b.corrupt_one_element().unwrap();
            assert_eq!(b.count_wrong().unwrap(), 1);
        }
    }
}

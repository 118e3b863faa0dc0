//! The acceptance suite on one rank (`mfubench-worker --accept`): the
//! stages of [`mfubench_core::accept`] in one MPI job, each on its own
//! communicator, with `accept.json` written by rank 0 after every stage.
//!
//! - **config**: the first rank of every node reports what the node is
//!   made of ([`crate::node_facts`]); rank 0 gathers the reports.
//! - **device**: every rank runs the plan's GEMMs alone (compute-mode steps
//!   through the schedule, on the run's backend) at the same time;
//!   per-rank TFLOP/s, against the median and the device's peak.
//! - **node**: the world split by host (the colour is the first world rank
//!   of the host, from MPI's shared-memory split as [`Rank::local_rank`]);
//!   a sum all-reduce inside each node at a
//!   latency-bound and a bandwidth-bound size; busbw from the fastest
//!   iteration (the node's capacity), the median kept beside it.
//! - **link**: the first rank of every node; in each round of the pair
//!   schedule (tournament, or sampled above `accept.max_pair_nodes`) every
//!   pair exchanges `accept.link_bytes` both ways at once
//!   ([`GroupComm::send_recv`]: `MPI_Sendrecv` on the CPU backend,
//!   `ncclSend` + `ncclRecv` in one NCCL group on CUDA), all pairs of a
//!   round at once. The schedule runs `accept.iterations` times after an
//!   untimed pass, so each pair's samples are spread over the stage; a
//!   link's bandwidth is its fastest exchange (see
//!   [`mfubench_core::accept::PairResult::gbps`]). Passes after the first
//!   timed one run while they fit `accept.link_budget_s`. With
//!   `accept.rails`, the schedule then runs once per rail over TCP between
//!   the leaders' addresses on that interface ([`crate::rail`]), each rail
//!   under a budget of its own.
//! - **the nodes left out**: before the first of the sweep and step
//!   stages, rank 0 names the nodes found bad so far
//!   ([`mfubench_core::accept::left_out`]); those stages run on the other
//!   ranks (a split team; for the step, a world of its own, renumbered)
//!   while the nodes left out wait at a quiet barrier. `--keep-bad` keeps
//!   them.
//! - **sweep**: the whole world runs each collective of
//!   `accept.sweep_collectives` (all-reduce, reduce-scatter, all-gather,
//!   f32 sums) over the size range; an untimed call of every size is
//!   checked against its known answer ([`mfubench_core::check`]) for
//!   `#wrong`.
//! - **step**: the four-mode benchmark (a plain run on the
//!   [`crate::executor::Executor`]), writing run.json
//!   beside accept.json.
//!
//! The node, link and sweep stages run on a [`Team`]: a [`GroupComm`] (an
//! MPI communicator on the CPU backend, an NCCL communicator on the CUDA
//! backend) and an MPI communicator of the same ranks in the same order,
//! for barriers, the slowest rank's time and the gathers of results. The
//! teams of the node and link stages are splits of the world's
//! (`MPI_Comm_split` and `ncclCommSplit` with the same colour and key).
//!
//! One timing harness ([`timed`]) serves the node and sweep stages: an
//! untimed call, then per iteration a barrier and the timed call, waited
//! for ([`GroupComm::synchronize`]); the time of an iteration is the
//! slowest rank's (the collective is as slow as it), and a stage reports
//! the median over iterations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::topology::{Color, Communicator, SimpleCommunicator};
use mpi::traits::*;

use mfubench_core::accept::{
    evaluate, isolation_rounds, left_out, link_schedule, AcceptRecord, AcceptSettings, Collective,
    ConfigStage, DeviceResult, DeviceStage, GpuTelemetry, LeftOut, LinkStage, NodeFacts,
    NodeResult, NodeStage, Pair, PairResult, RailStage, RankGpu, Stage, StepStage, SweepRow,
    SweepStage, SweepTable, XidWatch, ACCEPT_SCHEMA_VERSION,
};
use mfubench_core::check;
use mfubench_core::config::{BackendKind, Config, Mode};
use mfubench_core::metrics::{self, busbw_factor};
use mfubench_core::plan::StepPlan;
use mfubench_core::result::RunRecord;
use mfubench_core::stats;

use crate::backend::{Backend, BackendError, Compute};
use crate::cuda::telemetry::{Telemetry, XidWatcher};
use crate::group::{BufferIo, GroupComm};
use crate::mpi_comm;
use crate::output;
use crate::platform::Platform;
use crate::rank::{Exit, Rank, RunError};
use crate::schedule;
use crate::session::Session;

/// Elements a buffer is written or read in at a time (bounded host
/// memory for the checks of large sizes).
const IO_CHUNK: usize = 1 << 20;

/// Records where this rank is in the acceptance suite for its heartbeat
/// (`accept STAGE stage`, then e.g. `round 3/5, pass 2/6`), so that a rank
/// that stops mid-stage is named with the stage and step it stopped at.
fn position(stage: Stage, at: &str) {
    crate::progress::set_position("", &format!("accept {stage} stage"), at);
}

/// Lines the ranks of `comm` up before a timed collective: a blocking
/// barrier, which returns on every rank within microseconds of the last
/// arrival. (Not the quiet barrier of the step: its sleeps let ranks leave
/// up to ~100 µs apart, which counted in small collectives — 1 KiB
/// all-reduces took 120 µs instead of 1–2 µs — and a rank that sleeps on a
/// busy host can lose its core and wait a scheduler slice to get it back;
/// nccl-tests and mpi4py loops spin too. Every rank of `comm` runs the
/// same collective next, so spinning here takes no core from work that
/// is being timed.)
fn align(comm: &SimpleCommunicator) {
    comm.barrier();
}

/// The ranks of a stage: the group its collectives run on and an MPI
/// communicator of the same ranks in the same order (barriers, the slowest
/// rank's time, gathers of results).
pub struct Team<G> {
    /// The MPI communicator.
    pub mpi: SimpleCommunicator,
    /// The group the timed collectives run on.
    pub group: G,
    /// The deadline of every blocking call of the team's collectives
    /// (`run.op_timeout_s`): past it the rank ends the job (exit 3) instead
    /// of waiting forever for a rank that stopped. None: no deadline.
    pub op_limit: Option<Duration>,
}

impl<G: GroupComm> Team<G> {
    /// A team of `group`'s ranks with `mpi` of the same ranks; refused if
    /// the two disagree on this rank's place.
    pub fn new(mpi: SimpleCommunicator, group: G) -> Result<Team<G>, BackendError> {
        if (mpi.rank() as usize, mpi.size() as usize) != (group.rank(), group.size()) {
            return Err(BackendError::Failed(format!(
                "the group has this rank at {} of {}, MPI at {} of {}",
                group.rank(),
                group.size(),
                mpi.rank(),
                mpi.size()
            )));
        }
        Ok(Team {
            mpi,
            group,
            op_limit: None,
        })
    }

    /// This team with a deadline on every blocking call of its collectives
    /// (kept by its splits).
    pub fn with_op_limit(mut self, limit: Duration) -> Team<G> {
        self.op_limit = Some(limit);
        self
    }

    /// Arms the team's deadline for the blocking calls of `what` until the
    /// guard is dropped.
    fn deadline(&self, what: &str) -> Option<crate::watchdog::Deadline> {
        self.op_limit.map(|limit| {
            crate::watchdog::deadline(
                what,
                limit,
                i32::from(mfubench_core::protocol::exit::RUN_FAILED),
            )
        })
    }

    /// Collective over the team: splits the MPI communicator and the group
    /// with the same colour and key, so the new team's two halves hold the
    /// same ranks in the same order.
    pub fn split(&self, color: Option<u32>, key: u32) -> Result<Option<Team<G>>, BackendError> {
        let mpi_color = match color {
            Some(c) => Color::with_value(c as i32),
            None => Color::undefined(),
        };
        let mpi = self.mpi.split_by_color_with_key(mpi_color, key as i32);
        let group = self.group.split(color, key)?;
        match (mpi, group) {
            (Some(m), Some(g)) => Ok(Some(Team {
                op_limit: self.op_limit,
                ..Team::new(m, g)?
            })),
            (None, None) => Ok(None),
            _ => Err(BackendError::Failed(
                "MPI and the group disagree on a split".into(),
            )),
        }
    }
}

/// Runs `op` once untimed, then `iterations` times each after a barrier on
/// the team, waiting for its completion ([`GroupComm::synchronize`]);
/// returns the slowest rank's time of every iteration, seconds. Every
/// blocking call is under the team's deadline, named `what`. Collective
/// over the team.
pub fn timed<G: GroupComm>(
    team: &Team<G>,
    iterations: u32,
    what: &str,
    op: impl FnMut() -> Result<(), BackendError>,
) -> Result<Vec<f64>, BackendError> {
    timed_within(team, iterations, what, None, op)
}

/// [`timed`] under a stage budget (`budget`: when the stage started and its
/// seconds): after the first timed call, another runs only if the team
/// agrees (the largest elapsed time and last call over its ranks) that it
/// fits ([`mfubench_core::accept::link_pass_fits`]'s rule); the caller
/// sees fewer times than `iterations`. Collective over the team.
pub fn timed_within<G: GroupComm>(
    team: &Team<G>,
    iterations: u32,
    what: &str,
    budget: Option<(Instant, f64)>,
    mut op: impl FnMut() -> Result<(), BackendError>,
) -> Result<Vec<f64>, BackendError> {
    {
        let _deadline = team.deadline(what);
        op()?;
        team.group.synchronize()?;
    }
    let mut local: Vec<f64> = Vec::with_capacity(iterations as usize);
    for i in 0..iterations {
        if let (Some((started, budget_s)), Some(&last)) = (budget, local.last()) {
            let mine = [started.elapsed().as_secs_f64(), last];
            let mut most = [0.0f64; 2];
            {
                let _deadline = team.deadline(&format!("{what}: the time budget's agreement"));
                team.mpi
                    .all_reduce_into(&mine[..], &mut most[..], SystemOperation::max());
            }
            if i > 0 && !mfubench_core::accept::link_pass_fits(most[0], most[1], budget_s) {
                break;
            }
        }
        // Armed and disarmed outside the timed span.
        let deadline = team.deadline(what);
        align(&team.mpi);
        let t0 = Instant::now();
        op()?;
        team.group.synchronize()?;
        local.push(t0.elapsed().as_secs_f64());
        drop(deadline);
    }
    let mut slowest = vec![0.0f64; local.len()];
    let _deadline = team.deadline(what);
    team.mpi
        .all_reduce_into(&local[..], &mut slowest[..], SystemOperation::max());
    Ok(slowest)
}

/// Writes `f(i)` into elements `0..len` of `buf`, in chunks.
fn fill<G: BufferIo>(
    g: &G,
    buf: &mut G::Buf,
    len: usize,
    f: impl Fn(usize) -> f64,
) -> Result<(), BackendError> {
    for lo in (0..len).step_by(IO_CHUNK) {
        let hi = (lo + IO_CHUNK).min(len);
        let v: Vec<f64> = (lo..hi).map(&f).collect();
        g.write(buf, lo, &v)?;
    }
    Ok(())
}

/// Sums `count(offset, values)` over elements `0..len` of `buf`, read in
/// chunks.
fn count_in<G: BufferIo>(
    g: &G,
    buf: &G::Buf,
    len: usize,
    count: impl Fn(usize, Vec<f64>) -> u64,
) -> Result<u64, BackendError> {
    let mut n = 0;
    for lo in (0..len).step_by(IO_CHUNK) {
        let hi = (lo + IO_CHUNK).min(len);
        n += count(lo, g.read(buf, lo, hi - lo)?);
    }
    Ok(n)
}

/// How long the nodes left out of a stage wait for the others: a day. The
/// ranks running the stage are under their own deadlines, so a stuck one
/// ends the job long before; this bound only keeps the wait finite.
const LEFT_OUT_WAIT: Duration = Duration::from_secs(24 * 3600);

/// What one node leader's exchanges gave: its pairs (those in which it
/// is `a`), the timed passes that ran, and why fewer than asked.
struct Exchanged {
    pairs: Vec<PairResult>,
    passes: u32,
    stopped: Option<String>,
}

/// The sweep stage's clock: when it started and its budget
/// (`accept.sweep_budget_s`), shared by its tables.
pub struct SweepBudget {
    /// When the stage started.
    pub started: std::time::Instant,
    /// Seconds it may take.
    pub budget_s: f64,
    /// Whether the next table is the stage's first: its first size always
    /// runs (the stage measures something, however small its budget).
    pub first_table: bool,
}

impl SweepBudget {
    /// A budget of `budget_s` seconds from now, before the stage's first table.
    pub fn start(budget_s: f64) -> SweepBudget {
        SweepBudget {
            started: std::time::Instant::now(),
            budget_s,
            first_table: true,
        }
    }
}

/// Whether the next size of a sweep may run; `Some(why)` to stop. Every
/// rank must agree (the sizes are collective calls): the decision is made
/// on the largest elapsed time and prediction over the team.
fn sweep_stop<G: BufferIo>(
    team: &Team<G>,
    budget: &SweepBudget,
    last: Option<&SweepRow>,
    next_bytes: u64,
    calls: u32,
) -> Option<String> {
    let elapsed = budget.started.elapsed().as_secs_f64();
    let predicted = last.map_or(0.0, |r| {
        mfubench_core::accept::sweep_predicted_s(r.time_us * 1e-6, r.size_bytes, next_bytes, calls)
    });
    let mine = [elapsed, predicted];
    let mut most = [0.0f64; 2];
    {
        let _deadline = team.deadline("accept sweep stage: the time budget's agreement");
        team.mpi
            .all_reduce_into(&mine[..], &mut most[..], SystemOperation::max());
    }
    let [elapsed, predicted] = most;
    match last {
        Some(_) => (elapsed + predicted > budget.budget_s).then(|| {
            format!(
                "stopped before {next_bytes} B: the next size would take about {predicted:.3} s, past the sweep's {} s budget ({elapsed:.1} s spent; accept.sweep_budget_s)",
                budget.budget_s
            )
        }),
        None => (elapsed >= budget.budget_s).then(|| {
            format!(
                "the sweep's {} s budget was spent by the tables before it (accept.sweep_budget_s)",
                budget.budget_s
            )
        }),
    }
}

/// One collective's sweep table over `sizes` on `team`: per size an
/// untimed call checked against its known answer (`#wrong`, summed over
/// the ranks), then the timed calls; no further size once the next would
/// overrun `budget` (the table says where it stopped). Collective over the
/// team.
pub fn sweep_table<G: BufferIo>(
    team: &Team<G>,
    collective: Collective,
    sizes: &[u64],
    iterations: u32,
    budget: &SweepBudget,
) -> Result<SweepTable, BackendError> {
    let g = &team.group;
    let (me, n) = (g.rank(), g.size());
    let (me64, n64) = (me as u64, n as u64);
    // Send and receive lengths of a call whose nccl-tests count is `c`.
    let lens = |c: usize| match collective {
        Collective::ReduceScatter => (c * n, c),
        Collective::AllGather => (c, c * n),
        Collective::AllReduce | Collective::SendRecv => (c, c),
        Collective::AllToAll => (c * n, c * n),
    };
    let geometry: Vec<(usize, u64, u64)> = sizes
        .iter()
        .enumerate()
        .filter_map(|(row, &bytes)| {
            let (count, total) = mfubench_core::accept::sweep_geometry(collective, bytes, 4, n64)?;
            Some((row, count, total))
        })
        .collect();
    let (max_send, max_recv) = geometry
        .iter()
        .map(|(_, c, _)| lens(*c as usize))
        .fold((1, 1), |(a, b), (s, r)| (a.max(s), b.max(r)));
    let mut send = g.alloc(max_send)?;
    let mut recv = g.alloc(max_recv)?;
    let mut rows: Vec<SweepRow> = Vec::with_capacity(geometry.len());
    let mut stopped = None;
    for (row, count, total) in geometry {
        let first_of_stage = budget.first_table && rows.is_empty();
        if let (false, Some(why)) = (
            first_of_stage,
            sweep_stop(team, budget, rows.last(), total, iterations + 1),
        ) {
            stopped = Some(why);
            break;
        }
        let c = count as usize;
        let (sl, rl) = lens(c);
        let row64 = row as u64;
        let what = format!("accept sweep stage: {} of {total} B", collective.name());
        position(
            Stage::Sweep,
            &format!("{} {total} B, checked call", collective.name()),
        );
        let checked_deadline = team.deadline(&what);
        fill(g, &mut send, sl, |i| {
            check::send_value(collective, n64, me64, row64, i as u64)
        })?;
        // The checked call is untimed: NaNs first, so a result that was
        // not written cannot pass.
        g.poison(&mut recv)?;
        let run = |recv: &mut G::Buf| match collective {
            Collective::AllReduce => g.all_reduce_sum(&send, recv, c),
            Collective::ReduceScatter => g.reduce_scatter_sum(&send, recv, c),
            Collective::AllGather => g.all_gather(&send, recv, c),
            Collective::SendRecv | Collective::AllToAll => Err(BackendError::Failed(format!(
                "the sweep does not time {}",
                collective.name()
            ))),
        };
        run(&mut recv)?;
        g.synchronize()?;
        let wrong_mine = count_in(g, &recv, rl, |at, v| {
            check::count_wrong_result(collective, v, n64, me64, count, row64, at as u64)
        })?;

        let mut wrong = 0u64;
        team.mpi
            .all_reduce_into(&wrong_mine, &mut wrong, SystemOperation::sum());
        drop(checked_deadline);
        position(
            Stage::Sweep,
            &format!("{} {total} B, timed calls", collective.name()),
        );
        let t = timed(team, iterations, &what, || run(&mut recv))?;
        let med = stats::median(&t).unwrap_or(f64::NAN);
        rows.push(SweepRow::new(collective, n64, total, count, med, wrong));
    }
    let mut table = SweepTable::new(collective, rows);
    table.stopped = stopped;
    Ok(table)
}

/// CPU time (user + system) this process has used, seconds.
fn process_cpu_s() -> Option<f64> {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes one rusage into the buffer we own; it is
    // read only when the call succeeds.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: the call succeeded, so the struct is initialised.
    let u = unsafe { u.assume_init() };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Some(s(u.ru_utime) + s(u.ru_stime))
}

/// Gathers every rank's serialisable value on rank 0 (None elsewhere);
/// `None` values are dropped. Every rank sends at least a one-byte marker:
/// Open MPI rejects a gather in which some ranks send nothing.
fn gather_json<T: serde::Serialize + serde::de::DeserializeOwned>(
    rank: &Rank,
    config: &Config,
    comm: &SimpleCommunicator,
    mine: Option<&T>,
) -> Option<Vec<T>> {
    // Under the op timeout, as every other wait of the suite: a rank that
    // never reaches the gather ends the job (exit 3) instead of hanging it.
    let _deadline = crate::watchdog::deadline(
        "accept: gathering the stage results",
        Duration::from_secs_f64(config.run.op_timeout_s),
        i32::from(mfubench_core::protocol::exit::RUN_FAILED),
    );
    let mut bytes = vec![u8::from(mine.is_some())];
    if let Some(v) = mine {
        serde_json::to_writer(&mut bytes, v)
            .unwrap_or_else(|e| rank.abort(format!("cannot encode a stage result: {e}")));
    }
    let all = mpi_comm::gather_bytes(comm, &bytes).unwrap_or_else(|e| rank.abort(e))?;
    Some(
        all.iter()
            .filter(|b| b.first() == Some(&1))
            .map(|b| {
                serde_json::from_slice(&b[1..])
                    .unwrap_or_else(|e| rank.abort(format!("a stage result is unreadable: {e}")))
            })
            .collect(),
    )
}

/// The suite on one rank, on backend `K`.
pub struct Suite<'r, K: Platform> {
    session: Session<'r>,
    rank: &'r Rank,
    config: Config,
    plan: Arc<StepPlan>,
    /// Every rank.
    world: Team<K::Group>,
    /// This host's ranks (key = world rank).
    host: Team<K::Group>,
    /// The first rank of every node (key = world rank), on those ranks only.
    leaders: Option<Team<K::Group>>,
    /// This rank's GPU: NVML, and its identity with a reading after every
    /// stage (None on CPUs and without NVML).
    gpu: Option<(Telemetry, GpuTelemetry)>,
    /// This rank's GPU's event set for critical XIDs, registered when the
    /// suite opens and polled after every stage (None where it could not be
    /// registered: the GPU's `xid` says why).
    xid: Option<XidWatcher>,
    record: AcceptRecord,
}

impl<'r, K: Platform> Suite<'r, K> {
    /// Builds the teams (world, per host, node leaders) and the (empty)
    /// record. Collective.
    pub fn open(
        session: &Session<'r>,
        config: Config,
        plan: Arc<StepPlan>,
        settings: AcceptSettings,
    ) -> Result<Self, Exit> {
        let rank = session.rank;
        let group = K::world_group(rank, &config)?;
        let op_limit = Duration::from_secs_f64(config.run.op_timeout_s);
        let world = rank
            .agree(Team::new(rank.world.duplicate(), group))?
            .with_op_limit(op_limit);
        // A host's colour: the world rank of its first rank (MPI's
        // shared-memory split tells which ranks share the host).
        let local = rank.world.split_shared(rank.world.rank());
        let mut first = rank.rank;
        local.process_at_rank(0).broadcast_into(&mut first);
        let me = rank.rank as u32;
        let host = rank.agree(
            world
                .split(Some(first as u32), me)
                .and_then(|t| t.ok_or_else(|| BackendError::Failed("no host team".into()))),
        )?;
        let is_leader = local.rank() == 0;
        let leaders = rank.agree(world.split(is_leader.then_some(0), me))?;
        let hosts = gather_json(
            rank,
            &config,
            &rank.world,
            leaders.as_ref().map(|_| &rank.host),
        )
        .unwrap_or_default();
        let mut xid = None;
        let gpu = match K::gpu_telemetry(&world.group) {
            Ok(t) => {
                let mut id = t.identity();
                // Registered now: NVML delivers only the XIDs that happen
                // after the event set exists.
                match XidWatcher::open(&id.uuid) {
                    Ok(w) => {
                        id.xid = XidWatch::watched(&output::rfc3339_now());
                        xid = Some(w);
                    }
                    Err(state) => id.xid = state,
                }
                Some((t, id))
            }
            Err(e) => {
                if config.run.backend != BackendKind::Cpu {
                    crate::say!(
                        "mfubench-worker: rank {} on {}: warning: no GPU telemetry in the acceptance suite: {e}",
                        rank.rank,
                        rank.host
                    );
                }
                None
            }
        };
        let record = AcceptRecord {
            schema_version: ACCEPT_SCHEMA_VERSION,
            tool_version: mfubench_core::TOOL_VERSION.to_string(),
            run_id: session.run_id.clone(),
            started_at: output::rfc3339_now(),
            written_at: String::new(),
            complete: false,
            backend: config.run.backend.to_string(),
            world_size: rank.size,
            hosts,
            stages: settings.stages.clone(),
            settings,
            config: None,
            device: None,
            node: None,
            link: None,
            sweep: None,
            step: None,
            left_out: None,
            gpus: Vec::new(),
            findings: Vec::new(),
            regressions: Vec::new(),
            trends: Vec::new(),
            device_info: if config.run.backend != BackendKind::Cpu && crate::cuda::simulated() {
                [("simulated".to_string(), "true".to_string())].into()
            } else {
                Default::default()
            },
        };
        Ok(Suite {
            rank,
            config,
            plan,
            session: session.clone(),
            world,
            host,
            leaders,
            gpu,
            xid,
            record,
        })
    }

    /// The session's barrier on `comm` under the watchdog
    /// (`run.op_timeout_s`), at `at` of the suite.
    fn barrier(&self, comm: &SimpleCommunicator, at: &str) {
        let limit = Duration::from_secs_f64(self.config.run.op_timeout_s);
        self.session
            .barrier(comm, limit, &format!("of the acceptance suite {at}"));
    }

    /// Runs every requested stage, saving accept.json after each. A stage
    /// whose collective fails ends the job (exit 3); accept.json keeps the
    /// stages before it.
    pub fn run(mut self) -> Result<(), Exit> {
        self.save()?;
        for stage in self.record.stages.clone() {
            position(stage, "barrier before it");
            self.barrier(&self.rank.world, "before the stage");
            position(stage, "start");
            if self.rank.is_root() {
                crate::say!("mfubench-worker: accept: {stage} stage");
            }
            if matches!(stage, Stage::Sweep | Stage::Step) && self.record.left_out.is_none() {
                self.decide_left_out();
            }
            let done = match stage {
                Stage::Config => self.config_stage(),
                Stage::Device => self.device()?,
                Stage::Node => self.node(),
                Stage::Link => self.link(),
                Stage::Sweep => self.sweep(),
                Stage::Step => self.step()?,
            };
            if let Err(e) = done {
                self.rank.abort(format!("accept {stage} stage: {e}"));
            }
            if self.leaves_out(stage) {
                // The nodes left out wait here for the others, as long as
                // the stage takes: the ranks running it are under their
                // own deadlines (run.op_timeout_s per operation, the
                // sweep's budget), and a rank they find stuck ends the job.
                position(stage, "the nodes left out wait for the others");
                self.session.barrier(
                    &self.rank.world,
                    LEFT_OUT_WAIT,
                    "after a stage with nodes left out",
                );
            }
            position(stage, "gather of the results, save of accept.json");
            self.read_gpus(stage);
            self.save()?;
        }
        self.record.complete = true;
        self.save()?;
        // Every rank is past the last collective on the teams (the save
        // above is agreed by all).
        for t in [Some(&self.world), Some(&self.host), self.leaders.as_ref()]
            .into_iter()
            .flatten()
        {
            K::finish(&t.group);
        }
        // The protocol's last word of every rank (the step stage's
        // benchmark has said it already, unless this rank sat it out).
        if !self.record.stages.contains(&Stage::Step) || self.sits_out(Stage::Step) {
            crate::progress::emit(&mfubench_core::protocol::Event::RankDone {
                rank: self.rank.rank,
            });
        }
        Ok(())
    }

    /// Rank 0 decides which nodes the sweep and step stages leave out
    /// ([`left_out`], from the findings so far) and every rank learns it.
    /// Collective.
    fn decide_left_out(&mut self) {
        let r = self.rank;
        let decided = if r.is_root() {
            let step_keeps_all = (!self.config.parallel.is_default()).then_some(
                "its parallel layout (parallel.data, parallel.tensor) is planned for every rank",
            );
            let s = &self.record.settings;
            left_out(
                &self.record.findings,
                &self.record.hosts,
                &self.record.stages,
                s.keep_bad,
                step_keeps_all,
            )
        } else {
            None
        };
        let bytes = serde_json::to_vec(&decided).unwrap_or_default();
        let got = {
            let _deadline = self
                .world
                .deadline("accept: the nodes left out of the later stages");
            mpi_comm::broadcast_bytes(&r.world, &bytes)
        };
        let decided: Option<LeftOut> = serde_json::from_slice(&got)
            .unwrap_or_else(|e| r.abort(format!("the nodes left out are unreadable: {e}")));
        if let (true, Some(lo)) = (r.is_root(), &decided) {
            let stages: Vec<&str> = lo.stages.iter().map(|s| s.name()).collect();
            if !lo.hosts.is_empty() {
                crate::say!(
                    "mfubench-worker: accept: left out of the {} {}, found bad before: {} (--keep-bad keeps them)",
                    stages.join(" and "),
                    if stages.len() > 1 { "stages" } else { "stage" },
                    lo.hosts.join(", ")
                );
            }
            if let Some(why) = &lo.kept {
                crate::say!("mfubench-worker: accept: bad nodes: {why}");
            }
        }
        self.record.left_out = decided;
    }

    /// Whether `stage` runs without some nodes.
    fn leaves_out(&self, stage: Stage) -> bool {
        self.record
            .left_out
            .as_ref()
            .is_some_and(|lo| lo.stages.contains(&stage) && !lo.hosts.is_empty())
    }

    /// Whether this rank sits `stage` out.
    fn sits_out(&self, stage: Stage) -> bool {
        self.leaves_out(stage)
            && self
                .record
                .left_out
                .as_ref()
                .is_some_and(|lo| lo.hosts.contains(&self.rank.host))
    }

    /// Polls this rank's XIDs, takes its GPU reading after `stage` and
    /// gathers every rank's GPU telemetry on rank 0 (collective; ranks
    /// without one send none).
    fn read_gpus(&mut self, stage: Stage) {
        self.poll_xids(stage);
        let r = self.rank;
        let mine = self.gpu.as_mut().map(|(t, g)| {
            let reading = t.reading(stage);
            g.readings.retain(|x| x.stage != Some(stage));
            g.readings.push(reading);
            RankGpu {
                rank: r.rank,
                host: r.host.clone(),
                local_rank: r.local_rank,
                gpu: g.clone(),
            }
        });
        if let Some(all) = gather_json(r, &self.config, &r.world, mine.as_ref()) {
            self.record.gpus = all;
        }
    }

    /// Drains this rank's XID event set without waiting and records what it
    /// delivered as seen after `stage`.
    fn poll_xids(&mut self, stage: Stage) {
        if let (Some(w), Some((_, g))) = (&self.xid, self.gpu.as_mut()) {
            g.xid.record(w.poll(), stage, &output::rfc3339_now());
        }
    }

    /// Rank 0 evaluates the rules and writes accept.json atomically; every
    /// rank learns whether it was written.
    fn save(&mut self) -> Result<(), Exit> {
        let written = if self.rank.is_root() {
            self.record.written_at = output::rfc3339_now();
            mfubench_core::accept::fill_expected(&mut self.record, self.config.run.dtype);
            self.record.findings = evaluate(&self.record, &self.record.settings);
            let path = self.session.run_dir.join("accept.json");
            serde_json::to_vec_pretty(&self.record)
                .map_err(|e| RunError(e.to_string()))
                .and_then(|b| {
                    output::write_atomic(&path, &b)
                        .map_err(|e| RunError(format!("{}: {e}", path.display())))
                })
        } else {
            Ok(())
        };
        self.rank.agree(written)
    }

    /// Every node's facts, from its first rank, gathered on rank 0.
    fn config_stage(&mut self) -> Result<(), BackendError> {
        let r = self.rank;
        let mine = self.leaders.as_ref().map(|_| {
            let mut facts = crate::node_facts::collect(r.ranks_on_host);
            facts.extend(crate::cuda::telemetry::node_gpu_facts(
                self.config.run.backend != BackendKind::Cpu,
            ));
            NodeFacts {
                host: r.host.clone(),
                facts,
            }
        });
        if let Some(nodes) = gather_json(r, &self.config, &r.world, mine.as_ref()) {
            self.record.config = Some(ConfigStage { nodes });
        }
        Ok(())
    }

    fn device(&mut self) -> Result<Result<(), BackendError>, Exit> {
        let r = self.rank;
        let iterations = self.record.settings.iterations;
        let mut backend = K::Backend::open(&self.config, r, self.plan.clone())?;
        r.agree(backend.allocate_gemms(&self.plan))?;
        let timeout = Duration::from_secs_f64(self.config.run.op_timeout_s);
        let mut times = Vec::with_capacity(iterations as usize);
        // CPU time is taken around the steps only: time in the barrier
        // (sleeping while slower ranks finish) is not contention.
        let (mut cpu, mut wall, mut cpu_known) = (0.0, 0.0, true);
        for i in 0..=iterations {
            let what = if i == 0 {
                "untimed step".to_string()
            } else {
                format!("step {i}/{iterations}")
            };
            position(Stage::Device, &what);
            self.barrier(&r.world, "in the device stage");
            let c0 = process_cpu_s();
            let t = schedule::run_step(&backend, &self.plan, Mode::Compute, timeout)
                .unwrap_or_else(|e| r.abort(format!("watchdog: accept device stage: {e}")));
            if i > 0 {
                match (c0, process_cpu_s()) {
                    (Some(a), Some(b)) => cpu += b - a,
                    _ => cpu_known = false,
                }
                wall += t.step_s;
                times.push(t.step_s);
            }
        }
        // Read right after the GEMMs, before the clocks fall back to idle.
        let gpu_reading = self.gpu.as_ref().map(|(t, _)| t.reading(Stage::Device));
        // XIDs of the GEMMs go with the device's result (its reason text).
        self.poll_xids(Stage::Device);
        let dev = backend.device();
        let telemetry = K::telemetry(&backend, cpu_known.then_some(cpu), wall);
        backend.finish();
        drop(backend);
        let step_s = stats::median(&times).unwrap_or(f64::NAN);
        let flops = self.plan.model_flops();
        let peak =
            mfubench_core::accept::device_peak(self.config.run.peak_tflops, dev.spec_peak_tflops);
        let mine = DeviceResult {
            rank: r.rank,
            host: r.host.clone(),
            local_rank: r.local_rank,
            device: dev.device,
            device_name: dev.name,
            step_s,
            step_time_s: times,
            tflops: metrics::tflops(flops, step_s),
            spec_peak_tflops: dev.spec_peak_tflops,
            peak_tflops: peak.map(|p| p.0),
            peak_source: peak.map(|p| p.1),
            telemetry,
            gpu: self.gpu.as_ref().map(|(_, id)| GpuTelemetry {
                readings: gpu_reading.into_iter().collect(),
                ..id.clone()
            }),
            expected: None,
        };
        if let Some(devices) = gather_json(r, &self.config, &r.world, Some(&mine)) {
            self.record.device = Some(DeviceStage {
                flops_per_step: flops,
                iterations,
                devices,
            });
        }
        Ok(Ok(()))
    }

    fn node(&mut self) -> Result<(), BackendError> {
        let s = &self.record.settings;
        let sizes = vec![s.node_small_bytes / 4 * 4, s.node_large_bytes / 4 * 4];
        let team = &self.host;
        let n = team.group.size() as u64;
        let mut result = NodeResult {
            host: self.rank.host.clone(),
            ranks: n,
            time_s: Vec::new(),
            best_time_s: Vec::new(),
            algbw_gbps: Vec::new(),
            busbw_gbps: Vec::new(),
            stopped: None,
        };
        let started = Instant::now();
        if n >= 2 {
            let g = &team.group;
            let count = (*sizes.iter().max().unwrap_or(&4) / 4) as usize;
            let mut send = g.alloc(count)?;
            let mut recv = g.alloc(count)?;
            fill(g, &mut send, count, |_| 1.0)?;
            for &bytes in &sizes {
                position(Stage::Node, &format!("all_reduce {bytes} B"));
                let c = (bytes / 4) as usize;
                let what = format!("accept node stage: all_reduce of {bytes} B");
                let budget = Some((started, s.node_budget_s));
                let t = timed_within(team, s.iterations, &what, budget, || {
                    g.all_reduce_sum(&send, &mut recv, c)
                })?;
                if t.len() < s.iterations as usize && result.stopped.is_none() {
                    result.stopped = Some(format!(
                        "{} of {} timed all-reduces of {bytes} B: the next would have overrun the node stage's {} s budget (accept.node_budget_s)",
                        t.len(),
                        s.iterations,
                        s.node_budget_s
                    ));
                }
                let med = stats::median(&t).unwrap_or(f64::NAN);
                let best = t.iter().copied().fold(f64::INFINITY, f64::min);
                let alg = metrics::algbw_gbps(bytes as f64, best);
                result.time_s.push(med);
                result.best_time_s.push(best);
                result.algbw_gbps.push(alg);
                result
                    .busbw_gbps
                    .push(alg * busbw_factor(Collective::AllReduce, n));
            }
        }
        let mine = (team.group.rank() == 0).then_some(&result);
        if let Some(nodes) = gather_json(self.rank, &self.config, &self.rank.world, mine) {
            self.record.node = Some(NodeStage {
                sizes_bytes: sizes,
                iterations: s.iterations,
                nodes,
            });
        }
        Ok(())
    }

    fn link(&mut self) -> Result<(), BackendError> {
        let s = self.record.settings.clone();
        let Some(leaders) = &self.leaders else {
            return Ok(());
        };
        let g = &leaders.group;
        let n = g.size();
        let (name, mut rounds) = link_schedule(n, &s);
        // f32 elements: the bytes on the wire are what counts.
        let count = (s.link_bytes / 4) as usize;
        let bytes = count as u64 * 4;
        let mut send = g.alloc(count)?;
        let mut recv = g.alloc(count)?;
        fill(g, &mut send, count, |i| (i % 251) as f64)?;
        let started = Instant::now();
        let mut exchange = |peer: usize| -> Result<(), BackendError> {
            g.send_recv(peer, &send, &mut recv, count)?;
            g.synchronize()
        };
        let screen = self.exchange_rounds(leaders, &rounds, 0, &mut exchange, bytes, started)?;
        let (mut passes, mut stopped) = (screen.passes, screen.stopped.clone());
        let mine = screen.pairs;
        let stage = |rounds: Vec<Vec<Pair>>,
                     isolation: usize,
                     pairs: Vec<PairResult>,
                     passes: u32,
                     stopped: Option<String>| {
            let mut pairs = pairs;
            pairs.sort_by_key(|p| (p.a, p.b, p.round));
            LinkStage {
                hosts: self.record.hosts.clone(),
                schedule: name.to_string(),
                rounds,
                isolation_rounds: isolation,
                bytes,
                iterations: passes,
                pairs,
                stopped,
                rails: Vec::new(),
            }
        };
        let gathered = gather_json(self.rank, &self.config, &leaders.mpi, Some(&mine))
            .map(|all| all.into_iter().flatten().collect::<Vec<PairResult>>());
        // After a screen, suspects are re-paired with known-good nodes:
        // rank 0 decides, every node leader learns the extra rounds.
        let extra: Vec<Vec<Pair>> = if name == "sampled" {
            let decided = gathered
                .as_ref()
                .map(|pairs| {
                    let screen = stage(rounds.clone(), 0, pairs.clone(), passes, None);
                    isolation_rounds(&screen, &s)
                })
                .unwrap_or_default();
            let bytes = serde_json::to_vec(&decided).unwrap_or_default();
            let _deadline = leaders.deadline("accept link stage: the isolation rounds");
            let got = mpi_comm::broadcast_bytes(&leaders.mpi, &bytes);
            serde_json::from_slice(&got).map_err(|e| {
                BackendError::Failed(format!("the isolation rounds are unreadable: {e}"))
            })?
        } else {
            Vec::new()
        };
        let mut more: Option<Vec<PairResult>> = Some(Vec::new());
        if !extra.is_empty() {
            if self.rank.is_root() {
                crate::say!(
                    "mfubench-worker: accept: link stage: {} suspect node(s), {} isolation round(s)",
                    extra.iter().map(Vec::len).sum::<usize>(),
                    extra.len()
                );
            }
            let isolation =
                self.exchange_rounds(leaders, &extra, rounds.len(), &mut exchange, bytes, started)?;
            passes = passes.min(isolation.passes);
            stopped = stopped.or(isolation.stopped);
            let mine = isolation.pairs;
            more = gather_json(self.rank, &self.config, &leaders.mpi, Some(&mine))
                .map(|all| all.into_iter().flatten().collect());
        }
        if let (Some(mut pairs), Some(more)) = (gathered, more) {
            pairs.extend(more);
            let isolation = extra.len();
            rounds.extend(extra);
            if let (true, Some(why)) = (self.rank.is_root(), &stopped) {
                crate::say!("mfubench-worker: accept: link stage: {why}");
            }
            let link = stage(rounds, isolation, pairs, passes, stopped);
            self.record.link = Some(link);
        }
        // Then each rail on the screen's schedule (no isolation rounds).
        let schedule = link_schedule(n, &s).1;
        for rail in &s.rails {
            let measured = self.rail(leaders, rail, &schedule, bytes)?;
            if let (Some(link), Some(r)) = (self.record.link.as_mut(), measured) {
                link.rails.push(r);
            }
        }
        Ok(())
    }

    /// The link schedule on one rail ([`crate::rail`]): TCP between the
    /// leaders' addresses on interface `rail`, each pair `bytes` both ways
    /// at once, in passes under a budget of its own
    /// (`accept.link_budget_s`). A node without an address on it sits the
    /// rail out and is named by the rules. The rail's record on rank 0.
    /// Collective over the leaders.
    fn rail(
        &self,
        leaders: &Team<K::Group>,
        rail: &str,
        schedule: &[Vec<Pair>],
        bytes: u64,
    ) -> Result<Option<RailStage>, BackendError> {
        let me = leaders.group.rank();
        let n = leaders.group.size();
        let host = self.rank.host.clone();
        let failed = |what: String| BackendError::Failed(format!("rail {rail} on {host}: {what}"));
        let listener = match crate::rail::ipv4_of(rail) {
            Some(ip) => Some(
                crate::rail::listen(ip).map_err(|e| failed(format!("listening on {ip}: {e}")))?,
            ),
            None => None,
        };
        let mine = listener.as_ref().and_then(|l| match l.local_addr().ok()? {
            std::net::SocketAddr::V4(a) => Some(a),
            std::net::SocketAddr::V6(_) => None,
        });
        let mut all = vec![0u64; 2 * n];
        {
            let _deadline =
                leaders.deadline(&format!("accept link stage: rail {rail}: the addresses"));
            leaders
                .mpi
                .all_gather_into(&crate::rail::encode(mine)[..], &mut all[..]);
        }
        let addrs: Vec<Option<std::net::SocketAddrV4>> = all
            .chunks(2)
            .map(|c| crate::rail::decode([c[0], c[1]]))
            .collect();
        let rounds: Vec<Vec<Pair>> = schedule
            .iter()
            .map(|r| {
                r.iter()
                    .copied()
                    .filter(|(a, b)| addrs[*a].is_some() && addrs[*b].is_some())
                    .collect()
            })
            .collect();
        let mut partners: Vec<(usize, std::net::SocketAddrV4)> = rounds
            .iter()
            .flatten()
            .filter(|(a, b)| *a == me || *b == me)
            .filter_map(|&(a, b)| {
                let peer = if a == me { b } else { a };
                Some((peer, addrs[peer]?))
            })
            .collect();
        partners.sort_by_key(|p| p.0);
        partners.dedup_by_key(|p| p.0);
        let op = Duration::from_secs_f64(self.config.run.op_timeout_s);
        let mut peers = match &listener {
            Some(l) => {
                let _deadline =
                    leaders.deadline(&format!("accept link stage: rail {rail}: connecting"));
                Some(
                    crate::rail::RailPeers::connect(me, l, &partners, Instant::now() + op)
                        .map_err(failed)?,
                )
            }
            None => None,
        };
        // Never all-zero data: a pattern, as the other stages send.
        let send: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8 + 1).collect();
        let mut recv = vec![0u8; send.len()];
        let mut exchange = |peer: usize| -> Result<(), BackendError> {
            peers
                .as_mut()
                .ok_or_else(|| failed("paired without an address".into()))?
                .exchange(peer, &send, &mut recv)
                .map_err(failed)
        };
        let done =
            self.exchange_rounds(leaders, &rounds, 0, &mut exchange, bytes, Instant::now())?;
        let gathered = gather_json(self.rank, &self.config, &leaders.mpi, Some(&done.pairs))
            .map(|all| all.into_iter().flatten().collect::<Vec<PairResult>>());
        Ok(gathered.map(|mut pairs| {
            pairs.sort_by_key(|p| (p.a, p.b, p.round));
            if let Some(why) = &done.stopped {
                crate::say!("mfubench-worker: accept: link stage: rail {rail}: {why}");
            }
            RailStage {
                rail: rail.to_string(),
                addresses: addrs
                    .iter()
                    .map(|a| a.map(|a| a.ip().to_string()))
                    .collect(),
                rounds,
                iterations: done.passes,
                pairs,
                stopped: done.stopped,
            }
        }))
    }

    /// Runs `rounds` of pair exchanges (numbered from `first`) on the node
    /// leaders: `accept.iterations` timed passes after an untimed one, a
    /// pair's samples spread over the passes. Returns this leader's pairs
    /// in which it is `a`.
    fn exchange_rounds(
        &self,
        leaders: &Team<K::Group>,
        rounds: &[Vec<Pair>],
        first: usize,
        exchange: &mut dyn FnMut(usize) -> Result<(), BackendError>,
        bytes: u64,
        started: Instant,
    ) -> Result<Exchanged, BackendError> {
        let s = &self.record.settings;
        let me = leaders.group.rank();
        // This node's partner in every round (None: a bye, or not paired).
        let partner: Vec<Option<(usize, usize)>> = rounds
            .iter()
            .map(|round| round.iter().copied().find(|(a, b)| *a == me || *b == me))
            .collect();
        // Passes over the whole schedule, one exchange per pair and round
        // each: a pair's samples are spread over the stage, so a burst of
        // load on a shared host cannot land on one pair's samples only.
        // Pass 0 is untimed (connection set-up, first touch of buffers).
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); rounds.len()];
        let mut stopped = None;
        let (mut passes, mut last_pass_s) = (0, 0.0);
        for pass in 0..=s.iterations {
            let pass_start = Instant::now();
            if pass >= 2 {
                if let Some(why) = self.link_stop(leaders, started, last_pass_s) {
                    stopped = Some(why);
                    break;
                }
            }
            for (ri, p) in partner.iter().enumerate() {
                position(
                    Stage::Link,
                    &format!(
                        "round {}/{}, pass {pass}/{} ({})",
                        first + ri + 1,
                        first + rounds.len(),
                        s.iterations,
                        if pass == 0 { "untimed" } else { "timed" }
                    ),
                );
                // Quiet first: a node without a partner this round (or
                // whose pair finished early) must sleep, not spin on a
                // core the exchanging nodes' network stacks need; then a
                // blocking barrier lines the exchanges up.
                self.barrier(&leaders.mpi, "in the link stage");
                let deadline =
                    leaders.deadline(&format!("accept link stage: round {}", first + ri + 1));
                align(&leaders.mpi);
                let Some((a, b)) = *p else { continue };
                let peer = if a == me { b } else { a };
                let t0 = Instant::now();
                exchange(peer)?;
                if pass > 0 {
                    times[ri].push(t0.elapsed().as_secs_f64());
                }
                drop(deadline);
            }
            passes = pass;
            last_pass_s = pass_start.elapsed().as_secs_f64();
        }
        let mut mine: Vec<PairResult> = Vec::new();
        for (ri, p) in partner.iter().enumerate() {
            let Some((a, b)) = *p else { continue };
            let peer = leaders
                .mpi
                .process_at_rank(if a == me { b } else { a } as i32);
            let med = stats::median(&times[ri]).unwrap_or(f64::NAN);
            let best = times[ri].iter().copied().fold(f64::INFINITY, f64::min);
            // Each side timed its own exchanges; the pair is as slow as the
            // slower side.
            let mut theirs = [0.0f64; 2];
            let _deadline = leaders.deadline("accept link stage: exchange of the pair's times");
            mpi::point_to_point::send_receive_into(&[med, best][..], &peer, &mut theirs[..], &peer);
            let (t, tb) = (med.max(theirs[0]), best.max(theirs[1]));
            if a == me {
                mine.push(PairResult {
                    a,
                    b,
                    round: first + ri,
                    time_s: t,
                    best_time_s: tb,
                    gbps: metrics::algbw_gbps(bytes as f64, tb),
                    expected: None,
                });
            }
        }
        Ok(Exchanged {
            pairs: mine,
            passes,
            stopped,
        })
    }

    /// Whether the link stage stops before its next pass; `Some(why)` to
    /// stop. Every node leader must agree (the passes are collective): the
    /// decision is made on the largest elapsed time and last pass over the
    /// leaders. Collective over the leaders.
    fn link_stop(
        &self,
        leaders: &Team<K::Group>,
        started: Instant,
        last_pass_s: f64,
    ) -> Option<String> {
        let budget_s = self.record.settings.link_budget_s;
        let mine = [started.elapsed().as_secs_f64(), last_pass_s];
        let mut most = [0.0f64; 2];
        {
            let _deadline = leaders.deadline("accept link stage: the time budget's agreement");
            leaders
                .mpi
                .all_reduce_into(&mine[..], &mut most[..], SystemOperation::max());
        }
        let [elapsed, last] = most;
        (!mfubench_core::accept::link_pass_fits(elapsed, last, budget_s)).then(|| {
            format!(
                "stopped: the next pass would take about {last:.1} s, past the link stage's {budget_s} s budget ({elapsed:.1} s spent; accept.link_budget_s)"
            )
        })
    }

    fn sweep(&mut self) -> Result<(), BackendError> {
        // Without the nodes left out: a team of the others (rank 0 is
        // always among them), or the world.
        let kept = if self.leaves_out(Stage::Sweep) {
            let me = self.rank.rank as u32;
            match self
                .world
                .split((!self.sits_out(Stage::Sweep)).then_some(0), me)?
            {
                Some(t) => Some(t),
                None => return Ok(()),
            }
        } else {
            None
        };
        let team = kept.as_ref().unwrap_or(&self.world);
        let s = &self.record.settings;
        let sizes = s.sweep_sizes();
        let mut tables = Vec::with_capacity(s.sweep_collectives.len());
        let mut budget = SweepBudget::start(s.sweep_budget_s);
        for &c in &s.sweep_collectives {
            budget.first_table = tables.is_empty();
            if self.rank.is_root() {
                crate::say!("mfubench-worker: accept: sweep {}", c.name());
            }
            let table = sweep_table(team, c, &sizes, s.iterations, &budget)?;
            if let (true, Some(why)) = (self.rank.is_root(), &table.stopped) {
                crate::say!("mfubench-worker: accept: sweep {}: {why}", c.name());
            }
            tables.push(table);
        }
        let ranks = team.group.size() as u64;
        if let Some(t) = &kept {
            // The team's last collective is behind every rank of it.
            self.session.barrier(
                &t.mpi,
                Duration::from_secs_f64(self.config.run.op_timeout_s),
                "after the sweep without the nodes left out",
            );
            K::finish(&t.group);
        }
        if self.rank.is_root() {
            self.record.sweep = Some(SweepStage {
                dtype: "float".into(),
                ranks,
                iterations: s.iterations,
                tables,
            });
        }
        Ok(())
    }

    fn step(&mut self) -> Result<Result<(), BackendError>, Exit> {
        let budget = Some((Instant::now(), self.record.settings.step_budget_s));
        if self.leaves_out(Stage::Step) {
            // The kept ranks, numbered among themselves, run the benchmark
            // as a world of their own, planned for their number (the step
            // leaves nodes out only with the default layout: data
            // parallel over every rank).
            let color = if self.sits_out(Stage::Step) {
                Color::undefined()
            } else {
                Color::with_value(0)
            };
            let me = self.rank.rank as i32;
            let Some(comm) = self.rank.world.split_by_color_with_key(color, me) else {
                return Ok(Ok(()));
            };
            let kept = Rank::within(comm, self.rank);
            let layout = self
                .config
                .parallel
                .layout(kept.size, kept.size)
                .map_err(|e| {
                    kept.error(format!("the step without the nodes left out: {e}"));
                    Exit::RunFailed
                })?;
            let plan = Arc::new(StepPlan::for_layout(&self.config, &layout));
            let session = Session {
                rank: &kept,
                ..self.session.clone()
            };
            crate::executor::run_plain_within::<K::Backend>(
                &session,
                self.config.clone(),
                plan,
                budget,
            )?;
        } else {
            crate::executor::run_plain_within::<K::Backend>(
                &self.session,
                self.config.clone(),
                self.plan.clone(),
                budget,
            )?;
        }
        if self.rank.is_root() {
            let path = self.session.run_dir.join("run.json");
            let run: Option<RunRecord> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            self.record.step = Some(StepStage {
                run_json: "run.json".into(),
                mfu_overlapped: run.as_ref().and_then(|r| r.summary.mfu.overlapped),
                mfu_compute: run.as_ref().and_then(|r| r.summary.mfu.compute),
                stopped: run
                    .as_ref()
                    .map(|r| (r.config.run.iterations, self.config.run.iterations))
                    .filter(|(ran, asked)| ran < asked)
                    .map(|(ran, asked)| {
                        format!(
                            "{ran} of {asked} timed rounds: the rest would have overrun the step stage's {} s budget (accept.step_budget_s)",
                            self.record.settings.step_budget_s
                        )
                    }),
            });
        }
        Ok(Ok(()))
    }
}

//! The acceptance suite on one rank (`mfubench-worker --accept`): the
//! stages of [`mfubench_core::accept`] in one MPI job, each on its own
//! communicator, with `accept.json` written by rank 0 after every stage.
//!
//! - **device**: every rank runs the plan's GEMMs alone (compute-mode steps
//!   through the schedule) at the same time; per-rank TFLOP/s.
//! - **node**: the world split by host (MPI's shared-memory split, as
//!   [`Rank::local_rank`]); a sum all-reduce inside each node at a
//!   latency-bound and a bandwidth-bound size; busbw from the fastest
//!   iteration (the node's capacity), the median kept beside it.
//! - **link**: the first rank of every node; in each round of the pair
//!   schedule (tournament, or sampled above `accept.max_pair_nodes`) every
//!   pair exchanges `accept.link_bytes` with `MPI_Sendrecv`, all pairs of a
//!   round at once. The schedule runs `accept.iterations` times after an
//!   untimed pass, so each pair's samples are spread over the stage; a
//!   link's bandwidth is its fastest exchange (see
//!   [`mfubench_core::accept::PairResult::gbps`]).
//! - **sweep**: the whole world all-reduces f32 sums over the size range;
//!   an untimed all-reduce of every size is checked against the known sums
//!   ([`mfubench_core::check`]) for `#wrong`.
//! - **step**: the four-mode benchmark ([`Benchmark`]), writing run.json
//!   beside accept.json.
//!
//! One timing harness ([`timed`]) serves the node, link and sweep stages:
//! an untimed call, then per iteration a barrier and the timed call; the
//! time of an iteration is the slowest rank's (the collective is as slow as
//! it), and a stage reports the median over iterations.
//!
//! Only the CPU backend runs the suite for now: the node, link and sweep
//! stages need a communicator split and send/recv on NCCL, which the CUDA
//! backend does not have yet (exit 2, said before any compute).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::topology::{Color, Communicator, SimpleCommunicator};
use mpi::traits::*;

use mfubench_core::accept::{
    busbw_factor, evaluate, link_schedule, AcceptRecord, AcceptSettings, Collective, CpuTelemetry,
    DeviceResult, DeviceStage, LinkStage, NodeResult, NodeStage, PairResult, Stage, StepStage,
    SweepRow, SweepStage, ACCEPT_SCHEMA_VERSION,
};
use mfubench_core::check;
use mfubench_core::config::{Config, Mode};
use mfubench_core::metrics;
use mfubench_core::plan::StepPlan;
use mfubench_core::result::RunRecord;
use mfubench_core::stats;

use crate::backend::{Backend, Compute};
use crate::benchmark::{Benchmark, Hooks};
use crate::cpu::CpuBackend;
use crate::mpi_comm;
use crate::output;
use crate::rank::{Exit, Rank, RunError};
use crate::schedule;

/// Largest element count handed to one MPI call (counts are C ints).
const MAX_CHUNK: usize = 1 << 30;

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

/// Runs `op` once untimed, then `iterations` times each after a barrier on
/// `comm`; returns the slowest rank's time of every iteration, seconds.
/// Collective over `comm`.
pub fn timed(comm: &SimpleCommunicator, iterations: u32, mut op: impl FnMut()) -> Vec<f64> {
    op();
    let mut local = Vec::with_capacity(iterations as usize);
    for _ in 0..iterations {
        align(comm);
        let t0 = Instant::now();
        op();
        local.push(t0.elapsed().as_secs_f64());
    }
    let mut slowest = vec![0.0f64; local.len()];
    comm.all_reduce_into(&local[..], &mut slowest[..], SystemOperation::max());
    slowest
}

/// A zeroed buffer of `len` elements, with `madvise(MADV_HUGEPAGE)` on its
/// pages before their first touch, as numpy does for large arrays: with
/// the common THP setting `defrag = madvise` only advised memory gets huge
/// pages on a fragmented host, and the large collectives, memory-bound,
/// are then measured on the same footing as a numpy-based peer.
fn big_buffer<T: Copy + Default>(len: usize) -> Vec<T> {
    let mut v = vec![T::default(); len];
    let bytes = std::mem::size_of_val(v.as_slice());
    let start = v.as_mut_ptr() as usize;
    let aligned = start.div_ceil(4096) * 4096;
    if bytes >= 1 << 21 && aligned < start + bytes {
        // SAFETY: [aligned, start + bytes) lies inside the allocation we
        // own; madvise only advises how to back those pages and does not
        // change their contents. A failure is harmless and ignored.
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                start + bytes - aligned,
                libc::MADV_HUGEPAGE,
            );
        }
    }
    v
}

/// Sum all-reduce of f32 buffers, in chunks MPI's int counts can hold.
fn all_reduce_f32(comm: &SimpleCommunicator, send: &[f32], recv: &mut [f32]) {
    for (s, r) in send.chunks(MAX_CHUNK).zip(recv.chunks_mut(MAX_CHUNK)) {
        comm.all_reduce_into(s, r, SystemOperation::sum());
    }
}

/// Clock, temperature and load of this host, where it exposes them.
pub fn cpu_telemetry() -> CpuTelemetry {
    let mhz = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        let v: Vec<f64> = s
            .lines()
            .filter(|l| l.starts_with("cpu MHz"))
            .filter_map(|l| l.split(':').nth(1)?.trim().parse().ok())
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    });
    let temp_c = std::fs::read_dir("/sys/class/thermal").ok().and_then(|d| {
        d.filter_map(|e| {
            let t = std::fs::read_to_string(e.ok()?.path().join("temp")).ok()?;
            t.trim().parse::<f64>().ok().map(|m| m / 1000.0)
        })
        .reduce(f64::max)
    });
    let load1 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok());
    CpuTelemetry {
        mhz,
        temp_c,
        load1,
        cpu_share: None,
    }
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
    comm: &SimpleCommunicator,
    mine: Option<&T>,
) -> Option<Vec<T>> {
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

/// The suite on one rank.
pub struct Accept<'r> {
    rank: &'r Rank,
    config: Config,
    plan: Arc<StepPlan>,
    run_id: String,
    run_dir: PathBuf,
    /// This host's ranks (MPI's shared-memory split, key = world rank).
    host_comm: SimpleCommunicator,
    /// The first rank of every node (key = world rank), on those ranks only.
    leaders: Option<SimpleCommunicator>,
    record: AcceptRecord,
}

impl<'r> Accept<'r> {
    /// Builds the communicators and the (empty) record; refuses backends
    /// other than the CPU's with exit 2, before any compute.
    pub fn open(
        rank: &'r Rank,
        config: Config,
        settings: AcceptSettings,
        run_id: String,
        run_dir: PathBuf,
    ) -> Result<Self, Exit> {
        if config.run.backend != mfubench_core::config::BackendKind::Cpu {
            if rank.is_root() {
                rank.error(format!(
                    "mfubench accept: the {} backend does not run the acceptance stages yet (the node, link and sweep stages need NCCL communicator splits and send/recv); use --backend cpu",
                    config.run.backend
                ));
            }
            return Err(Exit::Usage);
        }
        let host_comm = rank.world.split_shared(rank.world.rank());
        let color = if host_comm.rank() == 0 {
            Color::with_value(0)
        } else {
            Color::undefined()
        };
        let leaders = rank.world.split_by_color_with_key(color, rank.world.rank());
        let hosts = gather_json(rank, &rank.world, leaders.as_ref().map(|_| &rank.host))
            .unwrap_or_default();
        let plan = Arc::new(StepPlan::for_config(&config));
        let record = AcceptRecord {
            schema_version: ACCEPT_SCHEMA_VERSION,
            tool_version: mfubench_core::TOOL_VERSION.to_string(),
            run_id: run_id.clone(),
            started_at: output::rfc3339_now(),
            written_at: String::new(),
            complete: false,
            backend: config.run.backend.to_string(),
            world_size: rank.size,
            hosts,
            stages: settings.stages.clone(),
            settings,
            device: None,
            node: None,
            link: None,
            sweep: None,
            step: None,
            findings: Vec::new(),
        };
        Ok(Accept {
            rank,
            config,
            plan,
            run_id,
            run_dir,
            host_comm,
            leaders,
            record,
        })
    }

    /// A barrier on `comm` under the watchdog (`run.op_timeout_s`): a rank
    /// that never arrives ends the job instead of hanging it.
    fn barrier(&self, comm: &mpi::topology::SimpleCommunicator, at: &str) {
        let limit = Duration::from_secs_f64(self.config.run.op_timeout_s);
        let (rank, host) = (self.rank.rank, &self.rank.host);
        let mut say = || {
            crate::progress::emit(&mfubench_core::protocol::Event::Waiting {
                rank,
                at: format!("accept barrier {at}"),
            })
        };
        if !mpi_comm::quiet_barrier(comm, limit, &mut say) {
            self.rank.abort(format!(
                "watchdog: rank {rank} on {host} waited {} s at the accept barrier {at} for a rank that never arrived",
                limit.as_secs_f64()
            ));
        }
    }

    /// Runs every requested stage, saving accept.json after each.
    pub fn run(mut self) -> Result<(), Exit> {
        self.save()?;
        for stage in self.record.stages.clone() {
            self.barrier(&self.rank.world, "before the stage");
            if self.rank.is_root() {
                crate::say!("mfubench-worker: accept: {stage} stage");
            }
            match stage {
                Stage::Device => self.device()?,
                Stage::Node => self.node(),
                Stage::Link => self.link(),
                Stage::Sweep => self.sweep(),
                Stage::Step => self.step()?,
            }
            self.save()?;
        }
        self.record.complete = true;
        self.save()?;
        // The protocol's last word of every rank (the step stage's
        // benchmark has said it already).
        if !self.record.stages.contains(&Stage::Step) {
            crate::progress::emit(&mfubench_core::protocol::Event::RankDone {
                rank: self.rank.rank,
            });
        }
        Ok(())
    }

    /// Rank 0 evaluates the rules and writes accept.json atomically; every
    /// rank learns whether it was written.
    fn save(&mut self) -> Result<(), Exit> {
        let written = if self.rank.is_root() {
            self.record.written_at = output::rfc3339_now();
            self.record.findings = evaluate(&self.record, &self.record.settings);
            let path = self.run_dir.join("accept.json");
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

    fn device(&mut self) -> Result<(), Exit> {
        let r = self.rank;
        let iterations = self.record.settings.iterations;
        let mut backend = <CpuBackend>::open(&self.config, r, self.plan.clone())?;
        r.agree(backend.allocate_gemms(&self.plan))?;
        let timeout = Duration::from_secs_f64(self.config.run.op_timeout_s);
        let mut times = Vec::with_capacity(iterations as usize);
        // CPU time is taken around the steps only: time in the barrier
        // (sleeping while slower ranks finish) is not contention.
        let (mut cpu, mut wall, mut cpu_known) = (0.0, 0.0, true);
        for i in 0..=iterations {
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
        let dev = backend.device();
        let threads = backend.threads().max(1) as f64;
        drop(backend);
        let mut telemetry = cpu_telemetry();
        telemetry.cpu_share = (cpu_known && wall > 0.0).then(|| cpu / (wall * threads));
        let step_s = stats::median(&times).unwrap_or(f64::NAN);
        let flops = self.plan.model_flops();
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
            telemetry,
        };
        if let Some(devices) = gather_json(r, &r.world, Some(&mine)) {
            self.record.device = Some(DeviceStage {
                flops_per_step: flops,
                iterations,
                devices,
            });
        }
        Ok(())
    }

    fn node(&mut self) {
        let s = &self.record.settings;
        let sizes = vec![s.node_small_bytes / 4 * 4, s.node_large_bytes / 4 * 4];
        let n = self.host_comm.size() as u64;
        let mut result = NodeResult {
            host: self.rank.host.clone(),
            ranks: n,
            time_s: Vec::new(),
            best_time_s: Vec::new(),
            algbw_gbps: Vec::new(),
            busbw_gbps: Vec::new(),
        };
        if n >= 2 {
            let count = (*sizes.iter().max().unwrap_or(&4) / 4) as usize;
            let send = vec![1.0f32; count];
            let mut recv = vec![0.0f32; count];
            for &bytes in &sizes {
                let c = (bytes / 4) as usize;
                let t = timed(&self.host_comm, s.iterations, || {
                    all_reduce_f32(&self.host_comm, &send[..c], &mut recv[..c])
                });
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
        let mine = (self.host_comm.rank() == 0).then_some(&result);
        if let Some(nodes) = gather_json(self.rank, &self.rank.world, mine) {
            self.record.node = Some(NodeStage {
                sizes_bytes: sizes,
                iterations: s.iterations,
                nodes,
            });
        }
    }

    fn link(&mut self) {
        let s = self.record.settings.clone();
        let Some(leaders) = &self.leaders else {
            return;
        };
        let me = leaders.rank() as usize;
        let n = leaders.size() as usize;
        let (name, rounds) = link_schedule(n, &s);
        let len = s.link_bytes as usize;
        let send = vec![0x5au8; len];
        let mut recv = vec![0u8; len];
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
        for pass in 0..=s.iterations {
            for (ri, p) in partner.iter().enumerate() {
                // Quiet first: a node without a partner this round (or
                // whose pair finished early) must sleep, not spin on a
                // core the exchanging nodes' network stacks need; then a
                // blocking barrier lines the exchanges up.
                self.barrier(leaders, "in the link stage");
                align(leaders);
                let Some((a, b)) = *p else { continue };
                let peer = leaders.process_at_rank(if a == me { b } else { a } as i32);
                let t0 = Instant::now();
                for (sc, rc) in send.chunks(MAX_CHUNK).zip(recv.chunks_mut(MAX_CHUNK)) {
                    mpi::point_to_point::send_receive_into(sc, &peer, rc, &peer);
                }
                if pass > 0 {
                    times[ri].push(t0.elapsed().as_secs_f64());
                }
            }
        }
        let mut mine: Vec<PairResult> = Vec::new();
        for (ri, p) in partner.iter().enumerate() {
            let Some((a, b)) = *p else { continue };
            let peer = leaders.process_at_rank(if a == me { b } else { a } as i32);
            let med = stats::median(&times[ri]).unwrap_or(f64::NAN);
            let best = times[ri].iter().copied().fold(f64::INFINITY, f64::min);
            // Each side timed its own exchanges; the pair is as slow as the
            // slower side.
            let mut theirs = [0.0f64; 2];
            mpi::point_to_point::send_receive_into(&[med, best][..], &peer, &mut theirs[..], &peer);
            let (t, tb) = (med.max(theirs[0]), best.max(theirs[1]));
            if a == me {
                mine.push(PairResult {
                    a,
                    b,
                    round: ri,
                    time_s: t,
                    best_time_s: tb,
                    gbps: metrics::algbw_gbps(len as f64, tb),
                });
            }
        }
        let gathered = gather_json(self.rank, leaders, Some(&mine));
        if let Some(all) = gathered {
            let mut pairs: Vec<PairResult> = all.into_iter().flatten().collect();
            pairs.sort_by_key(|p| (p.a, p.b));
            self.record.link = Some(LinkStage {
                hosts: self.record.hosts.clone(),
                schedule: name.to_string(),
                rounds,
                bytes: s.link_bytes,
                iterations: s.iterations,
                pairs,
            });
        }
    }

    fn sweep(&mut self) {
        let r = self.rank;
        let s = &self.record.settings;
        let sizes = s.sweep_sizes();
        let ranks = r.size;
        let max_count = (sizes.iter().copied().max().unwrap_or(4) / 4) as usize;
        let mut send: Vec<f32> = big_buffer(max_count);
        let mut recv: Vec<f32> = big_buffer(max_count);
        let mut rows = Vec::with_capacity(sizes.len());
        for (row, &bytes) in sizes.iter().enumerate() {
            let c = (bytes / 4) as usize;
            for (i, x) in send[..c].iter_mut().enumerate() {
                *x = check::pattern(ranks, r.rank, row as u64, i as u64) as f32;
            }
            // The checked all-reduce is untimed: NaNs first, so a result
            // that was not written cannot pass.
            recv[..c].fill(f32::NAN);
            all_reduce_f32(&r.world, &send[..c], &mut recv[..c]);
            let wrong_mine =
                check::count_wrong(recv[..c].iter().map(|&v| v as f64), ranks, row as u64, 0);
            let mut wrong = 0u64;
            r.world
                .all_reduce_into(&wrong_mine, &mut wrong, SystemOperation::sum());
            let t = timed(&r.world, s.iterations, || {
                all_reduce_f32(&r.world, &send[..c], &mut recv[..c])
            });
            let med = stats::median(&t).unwrap_or(f64::NAN);
            let alg = metrics::algbw_gbps(bytes as f64, med);
            rows.push(SweepRow {
                size_bytes: bytes,
                count: c as u64,
                time_us: med * 1e6,
                algbw_gbps: alg,
                busbw_gbps: alg * busbw_factor(Collective::AllReduce, ranks),
                wrong,
            });
        }
        if r.is_root() {
            let avg = if rows.is_empty() {
                0.0
            } else {
                rows.iter().map(|x| x.busbw_gbps).sum::<f64>() / rows.len() as f64
            };
            self.record.sweep = Some(SweepStage {
                collective: Collective::AllReduce,
                dtype: "float".into(),
                redop: "sum".into(),
                ranks,
                iterations: s.iterations,
                rows,
                avg_busbw_gbps: avg,
            });
        }
    }

    fn step(&mut self) -> Result<(), Exit> {
        let mut b = Benchmark::<CpuBackend>::open(
            self.rank,
            self.config.clone(),
            self.plan.clone(),
            self.run_id.clone(),
            self.run_dir.clone(),
            Hooks::default(),
        )?;
        b.choose_peak()?;
        b.run_modes()?;
        b.save(true)?;
        if self.rank.is_root() {
            let path = self.run_dir.join("run.json");
            let run: Option<RunRecord> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            self.record.step = Some(StepStage {
                run_json: "run.json".into(),
                mfu_overlapped: run.as_ref().and_then(|r| r.summary.mfu.overlapped),
                mfu_compute: run.as_ref().and_then(|r| r.summary.mfu.compute),
            });
        }
        Ok(())
    }
}

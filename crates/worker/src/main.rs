//! `mfubench-worker --config FILE --out DIR [--run-id ID] [--expect-world N]
//! [--backend auto|cpu|cuda]`: one rank of a benchmark, started by mpirun or
//! srun. See the crate documentation (lib.rs) for what a rank does.
//!
//! Exit codes: 0 ok; 2 usage or config error, unwritable `--out`, a backend
//! that cannot run here, not enough memory (all found before any compute);
//! 3 run failure (the watchdog aborts the job with MPI_Abort(3)).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;
use serde_json::json;

use mfubench_core::config::{parse_config_file, BackendKind, Config};
use mfubench_core::plan::StepPlan;
use mfubench_core::result::{
    summarize, LaunchInfo, PeakSource, PlanInfo, RankRecord, RunRecord, SummaryInputs,
    SCHEMA_VERSION,
};
use mfubench_core::stats;
use mfubench_worker::backend::{Backend, BackendError};
use mfubench_worker::cpu::CpuBackend;
use mfubench_worker::cuda::{self, CudaBackend};
use mfubench_worker::mpi_comm::{self, MpiAllReduce};
use mfubench_worker::output;
use mfubench_worker::progress::emit;
use mfubench_worker::record::mode_record;
use mfubench_worker::schedule::{self, StepError};

const EXIT_USAGE: i32 = 2;
const EXIT_RUN_FAILED: i32 = 3;

/// One rank of an mfubench run (started by `mfubench run`, mpirun or srun).
#[derive(Debug, Parser)]
#[command(name = "mfubench-worker", version, about)]
struct Args {
    /// Benchmark config (TOML); read by rank 0 and broadcast.
    #[arg(long)]
    config: PathBuf,
    /// Results folder; the run writes OUT/<run-id>/run.json.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Run id (directory name); default: UTC time and a process id.
    #[arg(long)]
    run_id: Option<String>,
    /// Fail unless MPI reports this many ranks (catches a worker started by
    /// another MPI's mpirun, which runs as N separate one-rank jobs).
    #[arg(long)]
    expect_world: Option<u64>,
    /// Backend, overriding the config's run.backend: auto, cpu or cuda.
    #[arg(long)]
    backend: Option<String>,
    /// Test hook: this rank corrupts one reduced element once, to show the
    /// check reports it.
    #[arg(long, hide = true)]
    inject_wrong_rank: Option<u64>,
}

/// Identity of this rank.
struct Rank {
    world: SimpleCommunicator,
    rank: u64,
    size: u64,
    host: String,
    local_rank: u64,
    ranks_on_host: u64,
}

impl Rank {
    fn error(&self, msg: impl std::fmt::Display) {
        mfubench_worker::say!(
            "mfubench-worker: rank {} on {}: error: {msg}",
            self.rank,
            self.host
        );
    }

    fn is_root(&self) -> bool {
        self.rank == 0
    }
}

fn main() {
    let args = Args::parse();
    let Some((universe, threading)) = mpi::initialize_with_threading(Threading::Multiple) else {
        mfubench_worker::say!("mfubench-worker: error: MPI could not be initialised");
        std::process::exit(EXIT_RUN_FAILED);
    };
    let code = {
        let world = universe.world();
        let local = world.split_shared(world.rank());
        let r = Rank {
            rank: world.rank() as u64,
            size: world.size() as u64,
            host: output::hostname(),
            local_rank: local.rank() as u64,
            ranks_on_host: local.size() as u64,
            world,
        };
        if threading < Threading::Multiple {
            r.error("the MPI library does not provide MPI_THREAD_MULTIPLE, which the comm stream needs; use an MPI built with thread support (Debian's OpenMPI has it)");
            EXIT_RUN_FAILED
        } else {
            run(&args, &r)
        }
    };
    // Finalize MPI (drop the universe) before choosing the exit code.
    drop(universe);
    std::process::exit(code);
}

/// Reads and validates the config on rank 0 and broadcasts it; returns the
/// config resolved for the concrete backend, or an exit code.
fn load_config(args: &Args, r: &Rank) -> Result<(Config, String), i32> {
    let file = args.config.display().to_string();
    let (code, text) = if r.is_root() {
        match std::fs::read_to_string(&args.config) {
            Ok(t) => (0, t),
            Err(e) => {
                r.error(format!("{file}: cannot read the config: {e}"));
                (EXIT_USAGE, String::new())
            }
        }
    } else {
        (0, String::new())
    };
    if mpi_comm::broadcast_code(&r.world, code) != 0 {
        return Err(EXIT_USAGE);
    }
    let text =
        String::from_utf8_lossy(&mpi_comm::broadcast_bytes(&r.world, text.as_bytes())).into_owned();
    let mut raw = parse_config_file(&text, &file).map_err(|e| {
        if r.is_root() {
            r.error(&e);
        }
        EXIT_USAGE
    })?;
    let requested = match args.backend.as_deref() {
        None => raw.run.backend.unwrap_or_default(),
        Some("auto") => BackendKind::Auto,
        Some("cpu") => BackendKind::Cpu,
        Some("cuda") => BackendKind::Cuda,
        Some(other) => {
            if r.is_root() {
                r.error(format!("--backend {other}: use auto, cpu or cuda"));
            }
            return Err(EXIT_USAGE);
        }
    };
    let concrete = match requested {
        BackendKind::Cpu => BackendKind::Cpu,
        BackendKind::Cuda => BackendKind::Cuda,
        BackendKind::Auto => {
            // CUDA when every rank sees a driver and a GPU (agreed over MPI,
            // so that all ranks pick the same backend).
            let mine = cuda::probe();
            let without = mpi_comm::sum_u64(&r.world, u64::from(mine.is_err()));
            if without == 0 {
                BackendKind::Cuda
            } else {
                if r.is_root() {
                    let why = mine.err().unwrap_or_else(|| {
                        format!("{without} rank(s) have no usable CUDA driver or GPU")
                    });
                    mfubench_worker::say!(
                        "mfubench-worker: backend auto: using the CPU backend ({why})"
                    );
                }
                BackendKind::Cpu
            }
        }
    };
    raw.run.backend = Some(concrete);
    let config = raw.resolve(&file).map_err(|e| {
        if r.is_root() {
            r.error(&e);
        }
        EXIT_USAGE
    })?;
    Ok((config, file))
}

/// Runs the whole benchmark on this rank; returns the exit code.
fn run(args: &Args, r: &Rank) -> i32 {
    if let Some(n) = args.expect_world {
        if n != r.size {
            r.error(format!(
                "MPI reports a world of {} rank(s) but --expect-world is {n}: the worker was probably started by an mpirun from a different MPI installation than the one it was built with (check `which mpirun` and `mpirun --version`)",
                r.size
            ));
            return EXIT_USAGE;
        }
    }
    let (config, _file) = match load_config(args, r) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let device = match config.run.backend {
        BackendKind::Cpu => "cpu".to_string(),
        BackendKind::Cuda | BackendKind::Auto => cuda::probe()
            .and_then(|n| cuda::select_ordinal(r.local_rank, r.ranks_on_host, n))
            .map(|o| format!("GPU {o}"))
            .unwrap_or_else(|_| "GPU ?".to_string()),
    };
    emit(
        json!({"event": "hello", "rank": r.rank, "host": r.host, "local_rank": r.local_rank,
                "pid": std::process::id(), "device": device}),
    );

    // The run directory exists and is writable before any compute.
    let run_id = args.run_id.clone().unwrap_or_else(output::default_run_id);
    let run_id = String::from_utf8_lossy(&mpi_comm::broadcast_bytes(&r.world, run_id.as_bytes()))
        .into_owned();
    let mut run_dir = PathBuf::new();
    let code = if r.is_root() {
        match output::prepare_run_dir(&args.out, &run_id) {
            Ok(d) => {
                run_dir = d;
                0
            }
            Err(e) => {
                r.error(e);
                EXIT_USAGE
            }
        }
    } else {
        0
    };
    if mpi_comm::broadcast_code(&r.world, code) != 0 {
        return EXIT_USAGE;
    }

    let plan = Arc::new(StepPlan::for_config(&config));
    match config.run.backend {
        BackendKind::Cpu => {
            let threads = config
                .run
                .gemm_threads
                .map(|t| t as usize)
                .unwrap_or_else(|| {
                    let cores = std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(1);
                    (cores / r.ranks_on_host.max(1) as usize).max(1)
                });
            let need = CpuBackend::memory_bytes(&plan, config.run.dtype, config.run.grad_dtype);
            let fits = output::mem_available_bytes()
                .is_none_or(|avail| need.saturating_mul(r.ranks_on_host) < avail);
            if !fits {
                r.error(format!(
                    "the plan needs {:.1} GiB per rank × {} ranks on this host, more than the memory available; reduce run.layers, run.micro_batch or model.seq",
                    need as f64 / (1u64 << 30) as f64,
                    r.ranks_on_host
                ));
            }
            if mpi_comm::sum_u64(&r.world, u64::from(!fits)) > 0 {
                return EXIT_USAGE;
            }
            let reducer = Arc::new(MpiAllReduce::new(r.world.duplicate()));
            let backend = CpuBackend::new(
                plan.clone(),
                config.run.dtype,
                config.run.grad_dtype,
                threads,
                reducer,
            );
            let device_info = BTreeMap::from([("gemm_threads".to_string(), threads.to_string())]);
            run_with_backend(
                args,
                r,
                &config,
                plan,
                backend,
                &run_id,
                &run_dir,
                "cpu".into(),
                output::cpu_model(),
                device_info,
                None,
            )
        }
        BackendKind::Cuda | BackendKind::Auto => {
            run_cuda(args, r, &config, plan, &run_id, &run_dir)
        }
    }
}

/// Opens the CUDA backend on every rank, makes the NCCL communicator (unique
/// id from rank 0 over MPI), runs the GEMM spot check and the benchmark.
fn run_cuda(
    args: &Args,
    r: &Rank,
    config: &Config,
    plan: Arc<StepPlan>,
    run_id: &str,
    run_dir: &std::path::Path,
) -> i32 {
    let opened = cuda::probe()
        .and_then(|n| cuda::select_ordinal(r.local_rank, r.ranks_on_host, n))
        .map_err(BackendError::Unavailable)
        .and_then(|ordinal| {
            CudaBackend::open(
                ordinal,
                plan.clone(),
                config.run.dtype,
                config.run.grad_dtype,
                r.rank,
                r.size,
            )
        });
    // Every rank must be able to run before the collective NCCL init.
    let failed = opened.as_ref().err().map(|e| backend_exit(r, e));
    if mpi_comm::sum_u64(&r.world, u64::from(failed.is_some())) > 0 {
        return failed.unwrap_or(EXIT_USAGE);
    }
    let Ok(mut backend) = opened else {
        return EXIT_USAGE;
    };
    let id = if r.is_root() {
        backend.nccl_unique_id().unwrap_or_else(|e| {
            r.error(&e);
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let id = mpi_comm::broadcast_bytes(&r.world, &id);
    let init = backend.init_comm(&id);
    let mut device_info = backend.device_info_map();
    if config.run.check && init.is_ok() {
        for (dtype, res) in backend.spot_check() {
            let line = match res {
                Ok(c) => {
                    if !c.passed() {
                        r.error(format!("GEMM spot check {dtype}: {}", c.summary()));
                    }
                    c.summary()
                }
                Err(e) => {
                    r.error(format!("GEMM spot check {dtype}: {e}"));
                    format!("error: {e}")
                }
            };
            device_info.insert(format!("gemm_check_{dtype}"), line);
        }
    }
    let spec_peak = backend.spec_peak_tflops();
    if spec_peak.is_none() && config.run.peak_tflops.is_none() && r.is_root() {
        mfubench_worker::say!(
            "mfubench-worker: {} with {} SMs is not in the peak table for {}; using a calibration GEMM as the peak (set run.peak_tflops for a datasheet value)",
            backend.info().name,
            backend.info().sm_count,
            config.run.dtype
        );
    }
    let device = format!("GPU {}", backend.info().ordinal);
    let name = backend.info().name.clone();
    run_with_backend(
        args,
        r,
        config,
        plan,
        init.map(|_| backend),
        run_id,
        run_dir,
        device,
        name,
        device_info,
        spec_peak,
    )
}

fn backend_exit(r: &Rank, e: &BackendError) -> i32 {
    r.error(e);
    match e {
        BackendError::Unavailable(_) | BackendError::OutOfMemory(_) => EXIT_USAGE,
        BackendError::Failed(_) => EXIT_RUN_FAILED,
    }
}

#[allow(clippy::too_many_arguments)]
fn run_with_backend<B: Backend>(
    args: &Args,
    r: &Rank,
    config: &Config,
    plan: Arc<StepPlan>,
    backend: Result<B, BackendError>,
    run_id: &str,
    run_dir: &std::path::Path,
    device: String,
    device_name: String,
    device_info: BTreeMap<String, String>,
    spec_peak: Option<f64>,
) -> i32 {
    let started_at = output::rfc3339_now();
    let mut backend = match backend {
        Ok(b) => b,
        Err(e) => {
            let code = backend_exit(r, &e);
            // Everyone must learn that some rank cannot run.
            mpi_comm::sum_u64(&r.world, 1);
            return code;
        }
    };
    let alloc = backend
        .allocate_gemms(&plan)
        .and_then(|_| backend.allocate_buckets(&plan));
    let failed = alloc.as_ref().err().map(|e| backend_exit(r, e));
    if mpi_comm::sum_u64(&r.world, u64::from(failed.is_some())) > 0 {
        return failed.unwrap_or(EXIT_USAGE);
    }
    let timeout = Duration::from_secs_f64(config.run.op_timeout_s);
    let fail = |r: &Rank, e: StepError, what: &str| -> ! {
        r.error(format!("watchdog: {what}: {e}; aborting the job"));
        r.world.abort(EXIT_RUN_FAILED)
    };

    // Peak: the config wins; then the datasheet table (GPUs) when every
    // rank found its device there; else the calibration, max over ranks.
    // The choice is made collectively: ranks that took different branches
    // would enter different collectives and hang (a mixed or MIG cluster).
    let spec_everywhere = config.run.peak_tflops.is_none()
        && mpi_comm::sum_u64(&r.world, u64::from(spec_peak.is_none())) == 0;
    let (peak_tflops, peak_source, calibrated) = match (config.run.peak_tflops, spec_peak) {
        (Some(p), _) => (p, PeakSource::Config, None),
        (None, Some(mine)) if spec_everywhere => {
            let (hi, lo) = (
                mpi_comm::max_f64(&r.world, mine),
                -mpi_comm::max_f64(&r.world, -mine),
            );
            if hi != lo && r.is_root() {
                mfubench_worker::say!(
                    "mfubench-worker: warning: the devices of this run have different peaks ({lo} to {hi} TFLOP/s); MFU uses the highest"
                );
            }
            (hi, PeakSource::Spec, None)
        }
        (None, _) => {
            mpi_comm::quiet_barrier(&r.world);
            let mine = schedule::calibrate(&backend, &plan, 5, Duration::from_millis(300), timeout)
                .unwrap_or_else(|e| fail(r, e, "calibration"));
            (
                mpi_comm::max_f64(&r.world, mine),
                PeakSource::Calibrated,
                Some(mine),
            )
        }
    };

    if r.is_root() {
        emit(
            json!({"event": "start", "run_id": run_id, "run_dir": run_dir, "world_size": r.size,
                    "modes": config.run.modes, "warmup": config.run.warmup, "iterations": config.run.iterations,
                    "peak_tflops": peak_tflops, "peak_source": peak_source}),
        );
    }

    // Gathers every rank's record so far on rank 0, which writes run.json;
    // returns the same exit code on every rank.
    let save =
        |modes: &BTreeMap<mfubench_core::config::Mode, mfubench_core::result::ModeRecord>,
         telemetry: &Vec<mfubench_core::result::TelemetrySample>,
         wrong: u64,
         complete: bool|
         -> i32 {
            let record = RankRecord {
                rank: r.rank,
                host: r.host.clone(),
                local_rank: r.local_rank,
                device: device.clone(),
                device_name: device_name.clone(),
                device_info: device_info.clone(),
                calibrated_tflops: calibrated,
                modes: modes.clone(),
                wrong,
                telemetry: telemetry.clone(),
            };
            let bytes = match serde_json::to_vec(&record) {
                Ok(b) => b,
                Err(e) => {
                    r.error(format!("cannot encode the rank record: {e}"));
                    r.world.abort(EXIT_RUN_FAILED)
                }
            };
            let gathered = match mpi_comm::gather_bytes(&r.world, &bytes) {
                Ok(g) => g,
                Err(e) => {
                    r.error(e);
                    r.world.abort(EXIT_RUN_FAILED)
                }
            };
            let code = match gathered {
                Some(all) => write_run_json(
                    r,
                    config,
                    &plan,
                    all,
                    run_id,
                    run_dir,
                    started_at.clone(),
                    peak_tflops,
                    peak_source,
                    complete,
                ),
                None => 0,
            };
            mpi_comm::broadcast_code(&r.world, code)
        };
    let mut modes = BTreeMap::new();
    let mut telemetry = Vec::new();
    let mut total_wrong = 0u64;
    let mut injected = false;
    let (warmup, iters) = (config.run.warmup as usize, config.run.iterations as usize);
    for (mode_index, &mode) in config.run.modes.iter().enumerate() {
        let mut timed = Vec::with_capacity(iters);
        let mut mode_wrong = 0u64;
        telemetry.extend(backend.telemetry(mode, "start"));
        for it in 0..warmup + iters {
            let checking = config.run.check && mode.has_comm();
            if checking {
                if let Err(e) = backend.prepare_check() {
                    fail(r, StepError::Backend(e), "check preparation");
                }
            }
            mpi_comm::quiet_barrier(&r.world);
            let t = schedule::run_step(&backend, &plan, mode, timeout).unwrap_or_else(|e| {
                let phase = if it < warmup { "warmup" } else { "timed" };
                fail(
                    r,
                    e,
                    &format!(
                        "mode {mode}, {phase} iteration {}",
                        if it < warmup { it + 1 } else { it - warmup + 1 }
                    ),
                )
            });
            if checking {
                if !injected && it >= warmup && args.inject_wrong_rank == Some(r.rank) {
                    injected = true;
                    let _ = backend.corrupt_one_element();
                }
                let wrong = backend
                    .count_wrong()
                    .unwrap_or_else(|e| fail(r, StepError::Backend(e), "check"));
                if wrong > 0 {
                    mfubench_worker::say!(
                        "mfubench-worker: rank {} on {}: check: {wrong} wrong element(s) after the all-reduces of mode {mode}, iteration {}",
                        r.rank, r.host, it + 1
                    );
                }
                mode_wrong += wrong;
            }
            // Rank 0's own step (a collective here would add a spinning
            // wait to every iteration); the cluster figures come at the end.
            if r.is_root() {
                let (phase, k, n) = if it < warmup {
                    ("warmup", it + 1, warmup)
                } else {
                    ("timed", it - warmup + 1, iters)
                };
                emit(
                    json!({"event": "iteration", "mode": mode, "phase": phase, "iter": k, "of": n, "step_s": t.step_s}),
                );
            }
            if it >= warmup {
                timed.push(t);
            }
        }
        telemetry.extend(backend.telemetry(mode, "end"));
        total_wrong += mode_wrong;
        let rec = mode_record(&timed, mode_wrong);
        if r.is_root() {
            // Cluster view needs all ranks; rank 0's own median is shown live.
            emit(
                json!({"event": "mode_done", "mode": mode, "median_step_s": stats::median(&rec.step_time_s)}),
            );
        }
        modes.insert(mode, rec);
        // Results are written as soon as they exist: after every mode but
        // the last, a partial run.json (complete = false) that a later
        // crash or timeout cannot take away.
        if mode_index + 1 < config.run.modes.len() {
            let code = save(&modes, &telemetry, total_wrong, false);
            if code != 0 {
                return code;
            }
        }
    }
    drop(backend);
    let code = save(&modes, &telemetry, total_wrong, true);
    if code == 0 {
        emit(json!({"event": "rank_done", "rank": r.rank}));
    }
    code
}

#[allow(clippy::too_many_arguments)]
fn write_run_json(
    r: &Rank,
    config: &Config,
    plan: &StepPlan,
    all: Vec<Vec<u8>>,
    run_id: &str,
    run_dir: &std::path::Path,
    started_at: String,
    peak_tflops: f64,
    peak_source: PeakSource,
    complete: bool,
) -> i32 {
    let mut ranks = Vec::with_capacity(all.len());
    for (i, b) in all.iter().enumerate() {
        match serde_json::from_slice::<RankRecord>(b) {
            Ok(rec) => ranks.push(rec),
            Err(e) => {
                r.error(format!("the record of rank {i} is unreadable: {e}"));
                return EXIT_RUN_FAILED;
            }
        }
    }
    let plan_info = PlanInfo::of(plan, config);
    let summary = summarize(
        &ranks,
        SummaryInputs {
            plan: &plan_info,
            peak_tflops,
            peak_source,
            straggler_tolerance: config.acceptance.straggler_tolerance,
            recompute: config.run.recompute,
        },
    );
    let mut hosts: Vec<String> = Vec::new();
    for rec in &ranks {
        if !hosts.contains(&rec.host) {
            hosts.push(rec.host.clone());
        }
    }
    let mut launch: LaunchInfo = std::env::var("MFUBENCH_LAUNCH_JSON")
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
    let mut versions = BTreeMap::new();
    if let Ok(v) = mpi::environment::library_version() {
        versions.insert(
            "mpi".to_string(),
            v.lines().next().unwrap_or("").trim().to_string(),
        );
    }
    versions.insert(
        "mfubench".to_string(),
        mfubench_core::TOOL_VERSION.to_string(),
    );
    // Device library versions (CUDA backend: driver, cuda, cublaslt, nccl),
    // as rank 0 reports them in its device_info.
    if let Some(r0) = ranks.first() {
        for (k, v) in &r0.device_info {
            if let Some(name) = k.strip_suffix("_version") {
                versions
                    .entry(name.to_string())
                    .or_insert_with(|| v.clone());
            }
        }
    }
    let run = RunRecord {
        schema_version: SCHEMA_VERSION,
        tool_version: mfubench_core::TOOL_VERSION.to_string(),
        run_id: run_id.to_string(),
        started_at,
        finished_at: output::rfc3339_now(),
        config: config.clone(),
        backend: config.run.backend,
        world_size: r.size,
        hosts,
        launch,
        versions,
        env: output::captured_env(std::env::vars()),
        plan: plan_info,
        complete,
        ranks,
        summary,
    };
    let path = run_dir.join("run.json");
    let written = serde_json::to_vec(&run)
        .map_err(|e| e.to_string())
        .and_then(|b| output::write_atomic(&path, &b).map_err(|e| e.to_string()));
    match written {
        Ok(()) if !complete => 0,
        Ok(()) => {
            let s = &run.summary;
            let pct = |x: Option<f64>| {
                x.map(|v| format!("{:.1} %", v * 100.0))
                    .unwrap_or_else(|| "-".into())
            };
            mfubench_worker::say!(
                "mfubench-worker: {} ranks, MFU compute {} / overlapped {}, wrong {}; wrote {}",
                r.size,
                pct(s.mfu.compute),
                pct(s.mfu.overlapped),
                s.wrong,
                path.display()
            );
            emit(json!({"event": "done", "run_dir": run_dir, "run_json": path}));
            0
        }
        Err(e) => {
            r.error(format!("cannot write {}: {e}", path.display()));
            EXIT_RUN_FAILED
        }
    }
}

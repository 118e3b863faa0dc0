//! `mfubench-worker --config FILE --out DIR [--run-id ID] [--expect-world N]
//! [--backend auto|cpu|cuda] [--vary KEY=V1,V2,…]`: one rank of a
//! benchmark, started by mpirun or srun. See the crate documentation
//! (lib.rs) for what a rank does; the flow itself is
//! [`mfubench_worker::benchmark::Benchmark`] (with `--vary`,
//! [`mfubench_worker::vary`]).
//!
//! Exit codes ([`mfubench_core::protocol::exit`]): 0 ok; 2 usage or config
//! error, unwritable `--out`, a backend that cannot run here, not enough
//! memory (all found before any compute); 3 run failure (the watchdog
//! aborts the job with MPI_Abort(3)).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use mpi::Threading;

use mfubench_core::config::BackendKind;
use mfubench_core::plan::StepPlan;
use mfubench_core::protocol::exit;
use mfubench_worker::accept::Accept;
use mfubench_worker::backend::Backend;
use mfubench_worker::benchmark::{Benchmark, Hooks};
use mfubench_worker::cpu::CpuBackend;
use mfubench_worker::cuda::CudaBackend;
use mfubench_worker::rank::{Exit, Rank};
use mfubench_worker::setup;

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
    /// Run every variant of the config with KEY set to each value (e.g.
    /// run.bucket_mb=1,4,16), interleaved per round: writes
    /// OUT/<run-id>/variants/<k>/run.json and OUT/<run-id>/vary.json.
    /// Given twice: every combination.
    #[arg(long, value_name = "KEY=V1,V2,…")]
    vary: Vec<String>,
    /// Run the acceptance suite (`mfubench accept`) instead of the
    /// benchmark: writes OUT/<run-id>/accept.json (and run.json for the
    /// step stage).
    #[arg(long)]
    accept: bool,
    /// Accept: stages to run, e.g. device,link (default: accept.stages).
    #[arg(long)]
    stages: Option<String>,
    /// Accept: accept.min_device_fraction.
    #[arg(long)]
    min_device_fraction: Option<f64>,
    /// Accept: accept.min_node_fraction.
    #[arg(long)]
    min_node_fraction: Option<f64>,
    /// Accept: accept.min_link_fraction.
    #[arg(long)]
    min_link_fraction: Option<f64>,
    /// Accept: smallest sweep size (bytes, K/M/G suffixes).
    #[arg(long, value_parser = mfubench_core::accept::parse_bytes)]
    sweep_begin: Option<u64>,
    /// Accept: largest sweep size (bytes, K/M/G suffixes).
    #[arg(long, value_parser = mfubench_core::accept::parse_bytes)]
    sweep_end: Option<u64>,
    /// Accept: factor between sweep sizes.
    #[arg(long)]
    sweep_factor: Option<u64>,
}

fn main() {
    // Before MPI_Init and any CUDA or NCCL call: the only point where the
    // process has one thread, which setting a variable needs (see the
    // function).
    mfubench_worker::cuda::nccl_connect_at_init();
    let args = Args::parse();
    let Some((universe, threading)) = mpi::initialize_with_threading(Threading::Multiple) else {
        mfubench_worker::say!("mfubench-worker: error: MPI could not be initialised");
        std::process::exit(i32::from(exit::RUN_FAILED));
    };
    let code = match try_main(&args, &Rank::new(universe.world(), threading)) {
        Ok(()) => exit::OK,
        Err(e) => e.code(),
    };
    // Finalize MPI (drop the universe) before choosing the exit code.
    drop(universe);
    std::process::exit(i32::from(code));
}

fn try_main(args: &Args, rank: &Rank) -> Result<(), Exit> {
    setup::check_world(rank, args.expect_world)?;
    if !args.vary.is_empty() && !args.accept {
        return mfubench_worker::vary::main(
            rank,
            mfubench_worker::vary::VaryJob {
                config: &args.config,
                backend: args.backend.as_deref(),
                vary: &args.vary,
                out: &args.out,
                run_id: args.run_id.clone(),
                hooks: Hooks {
                    inject_wrong_rank: args.inject_wrong_rank,
                },
            },
        );
    }
    let config = setup::load_config(rank, &args.config, args.backend.as_deref())?;
    setup::hello(rank, &config);
    let (run_id, run_dir) = setup::run_dir(rank, &args.out, args.run_id.clone())?;
    let layout = setup::layout(rank, &config, &args.config)?;
    let plan = Arc::new(StepPlan::for_layout(&config, &layout));
    if args.accept {
        let usage = |e: &dyn std::fmt::Display| {
            if rank.is_root() {
                rank.error(e);
            }
            Exit::Usage
        };
        let stages = match &args.stages {
            Some(list) => Some(
                mfubench_core::accept::parse_stages(list)
                    .map_err(|e| usage(&format!("--stages {list}: {e}")))?,
            ),
            None => None,
        };
        let overrides = mfubench_core::accept::AcceptOverrides {
            stages,
            min_device_fraction: args.min_device_fraction,
            min_node_fraction: args.min_node_fraction,
            min_link_fraction: args.min_link_fraction,
            sweep_begin: args.sweep_begin,
            sweep_end: args.sweep_end,
            sweep_factor: args.sweep_factor,
        };
        // Every rank applies the same overrides to the same config: no
        // collective is needed, and only rank 0 says why.
        let settings = overrides
            .apply(&config.accept, &args.config.display().to_string())
            .map_err(|e| usage(&e))?;
        return Accept::open(rank, config, plan, settings, run_id, run_dir)?.run();
    }
    let hooks = Hooks {
        inject_wrong_rank: args.inject_wrong_rank,
    };
    match config.run.backend {
        BackendKind::Cpu => benchmark::<CpuBackend>(rank, config, plan, run_id, run_dir, hooks),
        BackendKind::Cuda | BackendKind::Auto => {
            benchmark::<CudaBackend>(rank, config, plan, run_id, run_dir, hooks)
        }
    }
}

fn benchmark<B: Backend>(
    rank: &Rank,
    config: mfubench_core::config::Config,
    plan: Arc<StepPlan>,
    run_id: String,
    run_dir: PathBuf,
    hooks: Hooks,
) -> Result<(), Exit> {
    let mut b = Benchmark::<B>::open(rank, config, plan, run_id, run_dir, hooks)?;
    b.choose_peak()?;
    b.run_modes()?;
    b.finish();
    b.save(true)
}

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

use mpi::Threading;

use mfubench_core::config::BackendKind;
use mfubench_core::job::{Parsed, WorkerJob};
use mfubench_core::plan::StepPlan;
use mfubench_core::protocol::exit;
use mfubench_worker::accept::Accept;
use mfubench_worker::backend::Backend;
use mfubench_worker::benchmark::{Benchmark, Hooks};
use mfubench_worker::cpu::CpuBackend;
use mfubench_worker::cuda::CudaBackend;
use mfubench_worker::rank::{Exit, Rank};
use mfubench_worker::setup;

fn main() {
    // Before MPI_Init and any CUDA or NCCL call: the only point where the
    // process has one thread, which setting a variable needs (see the
    // function).
    mfubench_worker::cuda::nccl_connect_at_init();
    // The arguments are the launcher's WorkerJob, read back by the same
    // code that wrote them (core::job): no flag is spelled twice.
    let args = match WorkerJob::from_args(std::env::args().skip(1)) {
        Ok(Parsed::Job(j)) => *j,
        Ok(Parsed::Help) => {
            println!("{}", mfubench_core::job::USAGE);
            std::process::exit(i32::from(exit::OK));
        }
        Ok(Parsed::Version) => {
            println!("mfubench-worker {}", mfubench_core::TOOL_VERSION);
            std::process::exit(i32::from(exit::OK));
        }
        Err(e) => {
            eprintln!("mfubench-worker: error: {e}");
            std::process::exit(i32::from(exit::USAGE));
        }
    };
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

fn try_main(args: &WorkerJob, rank: &Rank) -> Result<(), Exit> {
    setup::check_world(rank, args.expect_world)?;
    let backend = args.backend.map(|b| b.to_string());
    if !args.vary.is_empty() && args.accept.is_none() {
        return mfubench_worker::vary::main(
            rank,
            mfubench_worker::vary::VaryJob {
                config: &args.config,
                backend: backend.as_deref(),
                vary: &args.vary,
                out: &args.out,
                run_id: args.run_id.clone(),
                hooks: Hooks {
                    inject_wrong_rank: args.inject_wrong_rank,
                },
            },
        );
    }
    let config = setup::load_config(rank, &args.config, backend.as_deref())?;
    setup::hello(rank, &config);
    let (run_id, run_dir) = setup::run_dir(rank, &args.out, args.run_id.clone())?;
    let layout = setup::layout(rank, &config, &args.config)?;
    let plan = Arc::new(StepPlan::for_layout(&config, &layout));
    if let Some(overrides) = &args.accept {
        let usage = |e: &dyn std::fmt::Display| {
            if rank.is_root() {
                rank.error(e);
            }
            Exit::Usage
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

//! `mfubench-worker --config FILE --out DIR [--run-id ID] [--expect-world N]
//! [--backend auto|cpu|cuda] [--vary KEY=V1,V2,…]`: one rank of a
//! benchmark, started by mpirun or srun. See the crate documentation
//! (lib.rs) for what a rank does. This file prepares the task (every usage
//! error before anything is created), opens the session and hands both to
//! [`mfubench_worker::platform::dispatch`]; the rounds are
//! [`mfubench_worker::executor::Executor`]'s.
//!
//! Exit codes ([`mfubench_core::protocol::exit`]): 0 ok; 2 usage or config
//! error, unwritable `--out`, a backend that cannot run here, not enough
//! memory (all found before any compute); 3 run failure (the watchdog
//! aborts the job with MPI_Abort(3)).

use std::sync::Arc;

use mpi::Threading;

use mfubench_core::accept::AcceptSettings;
use mfubench_core::config::Config;
use mfubench_core::job::{Parsed, WorkerJob};
use mfubench_core::plan::StepPlan;
use mfubench_core::protocol::exit;
use mfubench_worker::accept::Suite;
use mfubench_worker::platform::{self, Platform, PlatformJob};
use mfubench_worker::rank::{Exit, Rank};
use mfubench_worker::session::{Hooks, Session};
use mfubench_worker::vary::{self, VaryJob};
use mfubench_worker::{executor, setup};

fn main() {
    // `replay`: mfubench project's schedule in virtual time; no MPI.
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some(mfubench_core::job::REPLAY) {
        let code = match argv.as_slice() {
            [_, specs, out] => match mfubench_worker::replay::main(specs.as_ref(), out.as_ref()) {
                Ok(()) => exit::OK,
                Err(e) => {
                    eprintln!("mfubench-worker: replay: error: {e}");
                    exit::USAGE
                }
            },
            _ => {
                eprintln!("mfubench-worker: usage: mfubench-worker replay SPECS.json OUT.json");
                exit::USAGE
            }
        };
        std::process::exit(i32::from(code));
    }
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

/// What this job runs, prepared (every usage error found) before the
/// backend kind becomes types.
enum Task {
    /// A plain run.
    Bench { config: Config, plan: Arc<StepPlan> },
    /// `--vary`: every variant, interleaved.
    Vary(VaryJob),
    /// `--soak-duration`: a soak.
    Soak {
        config: Config,
        plan: Arc<StepPlan>,
        soak: mfubench_core::soak::SoakRun,
    },
    /// `--accept`: the acceptance suite.
    Accept {
        config: Config,
        plan: Arc<StepPlan>,
        settings: AcceptSettings,
    },
}

/// A prepared task and its session, run on the run's platform.
struct Job<'s, 'r> {
    session: &'s Session<'r>,
    task: Task,
}

impl PlatformJob for Job<'_, '_> {
    type Out = Result<(), Exit>;

    fn run<P: Platform>(self) -> Result<(), Exit> {
        match self.task {
            Task::Bench { config, plan } => {
                executor::run_plain::<P::Backend>(self.session, config, plan)
            }
            Task::Vary(job) => vary::run::<P::Backend>(self.session, job),
            Task::Soak { config, plan, soak } => {
                mfubench_worker::soak::run::<P::Backend>(self.session, config, plan, soak)
            }
            Task::Accept {
                config,
                plan,
                settings,
            } => Suite::<P>::open(self.session, config, plan, settings)?.run(),
        }
    }
}

fn try_main(args: &WorkerJob, rank: &Rank) -> Result<(), Exit> {
    setup::check_world(rank, args.expect_world)?;
    let backend = args.backend.map(|b| b.to_string());
    let (base, task) = if !args.vary.is_empty() && args.accept.is_none() {
        let (base, job) = vary::prepare(rank, &args.config, backend.as_deref(), &args.vary)?;
        (base, Task::Vary(job))
    } else {
        let config = setup::load_config(rank, &args.config, backend.as_deref())?;
        let layout = setup::layout(rank, &config, &args.config)?;
        let plan = Arc::new(StepPlan::for_layout(&config, &layout));
        let task = match &args.accept {
            // Every rank applies the same overrides to the same config: no
            // collective is needed, and only rank 0 says why.
            Some(overrides) => {
                let settings = overrides
                    .apply(&config.accept, &args.config.display().to_string())
                    .map_err(|e| setup::usage(rank, &e))?;
                Task::Accept {
                    config: config.clone(),
                    plan,
                    settings,
                }
            }
            None => match &args.soak {
                Some(soak) => Task::Soak {
                    config: config.clone(),
                    plan,
                    soak: soak.clone(),
                },
                None => Task::Bench {
                    config: config.clone(),
                    plan,
                },
            },
        };
        (config, task)
    };
    setup::hello(rank, &base);
    let (run_id, run_dir) = setup::run_dir(rank, &args.out, args.run_id.clone())?;
    let session = Session {
        rank,
        run_id,
        run_dir,
        hooks: Hooks {
            inject_wrong_rank: args.inject_wrong_rank,
            late_rank: args.late_rank,
        },
    };
    platform::dispatch(
        base.run.backend,
        Job {
            session: &session,
            task,
        },
    )
}

//! `mfubench run`: plan the launch, start the ranks, supervise, report.
//!
//! Design:
//! - **One command, as a vector.** [`command::build_argv`] turns the request
//!   into `mpirun …` or `srun --mpi=pmix …` followed by the worker and its
//!   arguments. It is never passed through a shell, so paths and ids with
//!   spaces or quotes are safe; `--dry-run` shows it shell-quoted for display.
//! - **Launcher choice.** `auto` is srun inside a Slurm allocation
//!   (`SLURM_JOB_ID` set) unless hosts are given, mpirun otherwise. mpirun
//!   gets what the worker needs: `--tag-output` (rank of every line),
//!   `--bind-to none` (per-core binding would serialise a rank's threads),
//!   `--allow-run-as-root` as root, `--oversubscribe` + yield when ranks
//!   outnumber local cores, `-x MFUBENCH_LAUNCH_JSON` and `-x NAME` for the
//!   allow-listed environment (remote ranks only see forwarded variables).
//!   The worker always gets `--expect-world N`, which catches a binary
//!   started by a foreign MPI's mpirun.
//! - **Rank count** ([`command::choose_np`]): `--np`, else `SLURM_NTASKS`
//!   inside Slurm, else the host slots, else `run.ranks`; the rule is shown.
//! - **Run folder.** `OUT/<run-id>/` is reserved by creating it before the
//!   launch, so two runs never share one and an existing run is never
//!   overwritten (`--force` replaces it).
//! - **Supervision** ([`supervise`]): tokio reads both pipes, strips rank
//!   tags, consumes `@@mfubench` events (progress bar on a TTY, plain lines
//!   otherwise) and re-prints human text as `[rank R] …`; timeout and
//!   Ctrl-C stop the job's process group; dead ranks are named with their
//!   host from mpirun/srun reports and hello events, stopped or cut-off
//!   ranks from their heartbeats; after an abort mpirun/srun get
//!   [`supervise::ABORT_GRACE`] before their process group is killed; a
//!   killed job's Open MPI files are removed ([`cleanup`]).
//! - **Verdict.** The report crate reads run.json
//!   (`mfubench_report::report_run_dir`: the same text and files as
//!   `mfubench report`, plus `--junit` / `--prom`), also after a timeout, a
//!   dead rank or Ctrl-C when some modes finished (verdict INCOMPLETE); its
//!   verdict decides between exit 0 and 1 for a completed run.

use anyhow::Result;
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mfubench_core::accept::AcceptOverrides;
use mfubench_core::config::{parse_config_file, BackendKind};
use mfubench_core::job::WorkerJob;
use mfubench_core::result::LaunchInfo;

use crate::args::{ExportArgs, ThresholdArgs};
use crate::exit::{run_failed, usage, verdict_code, INTERRUPTED, OK};

pub mod cleanup;
pub mod command;
pub mod diagnose;
pub mod events;
pub mod hostlist;
pub mod simgpu;
pub mod supervise;

use command::{LaunchSpec, LauncherKind, Placement};
use supervise::Job;

/// Environment variable carrying [`LaunchInfo`] as JSON to every rank.
pub use mfubench_core::protocol::LAUNCH_ENV;

/// `--launcher` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LauncherChoice {
    /// srun inside a Slurm allocation (unless hosts are given), else mpirun.
    Auto,
    /// Open MPI's mpirun.
    Mpirun,
    /// Slurm's srun (`--mpi=pmix`).
    Srun,
}

/// `--backend` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// CUDA when a GPU is present, else CPU.
    Auto,
    /// CPU GEMMs and MPI all-reduces.
    Cpu,
    /// cuBLASLt GEMMs and NCCL collectives.
    Cuda,
}

impl From<BackendChoice> for BackendKind {
    fn from(b: BackendChoice) -> BackendKind {
        match b {
            BackendChoice::Auto => BackendKind::Auto,
            BackendChoice::Cpu => BackendKind::Cpu,
            BackendChoice::Cuda => BackendKind::Cuda,
        }
    }
}

/// Arguments of `mfubench run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 ok, 1 acceptance failed, 2 usage or config error, \
                        3 run failed or timed out, 130 interrupted."
)]
pub struct RunArgs {
    /// Config file (TOML).
    pub config: String,
    /// Number of ranks (default: SLURM_NTASKS inside Slurm, else the sum of
    /// the slots of --hosts/--hostfile, else run.ranks of the config, else 1).
    #[arg(long)]
    pub np: Option<u32>,
    /// Hosts and their slots for mpirun, e.g. node1:8,node2:8.
    #[arg(long, conflicts_with = "hostfile")]
    pub hosts: Option<String>,
    /// Open MPI hostfile (`host slots=N` per line).
    #[arg(long)]
    pub hostfile: Option<PathBuf>,
    /// Backend, overriding run.backend of the config.
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Results folder; the run is written to OUT/<run-id>/.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Run id (default: the Slurm job id, else a UTC timestamp). An existing
    /// OUT/<run-id>/ is never overwritten: exit 2 unless --force.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Replace an existing OUT/<run-id>/ (its files are deleted first).
    #[arg(long)]
    pub force: bool,
    /// Stop the job after this long (exit 3): seconds, or e.g. 90s, 10m, 1h.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Forward this environment variable to every rank (mpirun `-x NAME`),
    /// in addition to the allow-list (NCCL_*, CUDA_*, UCX_*, MFUBENCH_*,
    /// LD_LIBRARY_PATH, PATH). Repeatable.
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,
    /// CI and monitoring files, written at the end (also for a partial run).
    #[command(flatten)]
    pub exports: ExportArgs,
    /// Acceptance thresholds (as for `mfubench report`).
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// Which program starts the ranks.
    #[arg(long, value_enum, default_value_t = LauncherChoice::Auto)]
    pub launcher: LauncherChoice,
    /// Run every variant of the config with KEY set to each value in one
    /// job, interleaved per round (e.g. run.bucket_mb=1,4,16,64); given
    /// twice, every combination. Each variant is a run.json in
    /// OUT/<run-id>/variants/<k>/, the table is OUT/<run-id>/vary.json.
    #[arg(long, value_name = "KEY=V1,V2,…")]
    pub vary: Vec<String>,
    /// Run on N simulated GPUs per host: stand-in CUDA, cuBLASLt, NCCL and
    /// NVML libraries (crates/simgpu) with real stream semantics and a race
    /// checker; implies --backend cuda. Timings are CPU timings, and every
    /// output says SIMULATED.
    #[arg(long, value_name = "N")]
    pub sim_gpu: Option<u32>,
    /// A fault injected into the simulated GPUs, KIND@HOST:GPU (xid=79,
    /// slow=0.3, corrupt, hang=all_reduce, throttle=thermal, ecc=N,
    /// link_slow=0.1; HOST and GPU may be *). Repeatable; needs --sim-gpu.
    #[arg(long = "sim-fault", value_name = "SPEC")]
    pub sim_fault: Vec<String>,
    /// Print the launch command and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Extra arguments for mpirun / srun (after `--`).
    #[arg(last = true)]
    pub extra: Vec<String>,
}

/// The error for a `--run-id` whose folder exists (exit 2).
fn run_id_taken(run_id: &str, dir: &Path) -> anyhow::Error {
    usage(format!(
        "--run-id {run_id}: {} exists already and a run is never overwritten; \
         choose another --run-id, or pass --force to replace it",
        dir.display()
    ))
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    mfubench_core::time::parse_duration(s)
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Everything decided before anything is started.
struct Plan {
    kind: LauncherKind,
    argv: Vec<String>,
    np: u32,
    np_rule: command::RankRule,
    run_id: String,
    out_dir: PathBuf,
    run_dir: PathBuf,
    timeout: Option<Duration>,
    launch_json: String,
    /// Variables set for the launcher program (and forwarded to the ranks):
    /// the simulated GPU's, with --sim-gpu.
    env: Vec<(String, String)>,
}

/// The text of the config file `path`, with its `[model] hf_config` read
/// in (as the ranks read it); a usage error names the file.
pub(crate) fn read_config(path: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("{path}: cannot read the config: {e}")))?;
    mfubench_core::hf::inline(&text, path, |p| {
        std::fs::read_to_string(p).map_err(|e| e.to_string())
    })
    .map_err(usage)
}

fn plan(
    args: &RunArgs,
    accept: Option<&AcceptOverrides>,
    soak: Option<&mfubench_core::soak::SoakRun>,
) -> Result<Plan> {
    let text = read_config(&args.config)?;
    // Checked as the ranks will check it: with the backend the command line
    // asks for (--backend, or cuda for --sim-gpu), whose defaults and dtype
    // rules differ from the file's run.backend. `auto` is settled on the
    // ranks, which know whether a GPU is there.
    let mut file = parse_config_file(&text, &args.config).map_err(|e| usage(e.to_string()))?;
    match (args.backend, args.sim_gpu) {
        (Some(BackendChoice::Cpu), _) => file.run.backend = Some(BackendKind::Cpu),
        (Some(BackendChoice::Cuda), _) | (None, Some(_)) => {
            file.run.backend = Some(BackendKind::Cuda)
        }
        _ => {}
    }
    let config = file
        .resolve(&args.config)
        .map_err(|e| usage(e.to_string()))?;
    check_vary(&text, args, accept.is_some())?;
    simgpu::check_args(args.sim_gpu, &args.sim_fault)?;
    if args.sim_gpu.is_some()
        && args
            .backend
            .is_some_and(|b| !matches!(b, BackendChoice::Cuda))
    {
        return Err(usage(
            "--sim-gpu simulates GPUs for the cuda backend: leave --backend out or give --backend cuda",
        ));
    }

    let slurm_job = env_nonempty("SLURM_JOB_ID");
    let timeout = args.timeout;

    let placement = match (&args.hosts, &args.hostfile) {
        (Some(h), _) => Placement::Hosts(command::parse_hosts(h)?),
        (None, Some(f)) => {
            // A regular file of bounded size: /dev/zero or a huge file is
            // not a hostfile, and reading it would not end.
            match std::fs::metadata(f) {
                Ok(m) if !m.is_file() => {
                    return Err(usage(format!(
                        "--hostfile {}: not a regular file",
                        f.display()
                    )))
                }
                Ok(m) if m.len() > command::MAX_HOSTFILE_BYTES => {
                    return Err(usage(format!(
                        "--hostfile {}: {} bytes, more than a hostfile's {} MiB",
                        f.display(),
                        m.len(),
                        command::MAX_HOSTFILE_BYTES >> 20
                    )))
                }
                _ => {}
            }
            let text = std::fs::read_to_string(f).map_err(|e| {
                usage(format!(
                    "--hostfile {}: cannot read the hostfile: {e}",
                    f.display()
                ))
            })?;
            let abs = std::path::absolute(f).unwrap_or_else(|_| f.clone());
            match command::parse_hostfile(&text, &f.display().to_string())? {
                (hosts, true) => Placement::HostfileExpanded(abs, hosts),
                (hosts, false) => Placement::Hostfile(abs, hosts),
            }
        }
        (None, None) => Placement::Local,
    };
    let slurm_ntasks = slurm_job
        .as_ref()
        .and_then(|_| env_nonempty("SLURM_NTASKS"));
    let (np, np_rule) = command::choose_np(
        args.np,
        slurm_ntasks.as_deref(),
        &placement,
        config.run.ranks,
    )?;
    let kind = match args.launcher {
        LauncherChoice::Mpirun => LauncherKind::Mpirun,
        LauncherChoice::Srun => LauncherKind::Srun,
        LauncherChoice::Auto if slurm_job.is_some() && placement == Placement::Local => {
            LauncherKind::Srun
        }
        LauncherChoice::Auto => LauncherKind::Mpirun,
    };

    let worker = command::worker_for_this_process()?;

    // Absolute paths: remote ranks may start in another directory.
    let config_abs =
        std::path::absolute(&args.config).map_err(|e| usage(format!("{}: {e}", args.config)))?;
    let out_abs = std::path::absolute(&args.out)
        .map_err(|e| usage(format!("--out {}: {e}", args.out.display())))?;
    let run_id = command::choose_run_id(args.run_id.as_deref(), slurm_job.as_deref(), &out_abs)?;
    if args.run_id.is_some() && !args.force && out_abs.join(&run_id).exists() {
        return Err(run_id_taken(&run_id, &out_abs.join(&run_id)));
    }
    let mut forward_env = command::forwarded_env(std::env::vars_os().map(|(k, _)| k), &args.env)?;
    let env = match args.sim_gpu {
        Some(n) => {
            let links = simgpu::prepare_links(&worker)?;
            simgpu::sim_env(
                n,
                &args.sim_fault,
                &links,
                std::env::var("LD_LIBRARY_PATH").ok().as_deref(),
                placement == Placement::Local,
                std::env::var_os("NCCL_SOCKET_IFNAME").is_some(),
            )
        }
        None => Vec::new(),
    };
    for (name, _) in &env {
        if !forward_env.contains(name) {
            forward_env.push(name.clone());
        }
    }
    forward_env.sort();

    // The worker's arguments: one WorkerJob, written and read by core::job
    // (no worker flag is spelled here), checked as the ranks would check it.
    let job = WorkerJob {
        config: config_abs.clone(),
        out: out_abs.clone(),
        run_id: Some(run_id.clone()),
        expect_world: Some(u64::from(np)),
        backend: match (args.backend, args.sim_gpu) {
            (Some(b), _) => Some(BackendKind::from(b)),
            (None, Some(_)) => Some(BackendKind::Cuda),
            (None, None) => None,
        },
        vary: args.vary.clone(),
        accept: accept.cloned(),
        soak: soak.cloned(),
        inject_wrong_rank: None,
        late_rank: None,
    };
    job.check().map_err(usage)?;
    let worker_args = job.to_args();

    let spec = LaunchSpec {
        launcher: kind,
        np,
        placement,
        worker,
        worker_args,
        extra: args.extra.clone(),
        // SAFETY: geteuid has no preconditions and cannot fail.
        as_root: unsafe { libc::geteuid() } == 0,
        local_cores: command::local_cores(),
        in_slurm: slurm_job.is_some(),
        forward_env: forward_env.clone(),
    };
    let argv = command::build_argv(&spec)?;
    let info = LaunchInfo {
        // Stored and printed redacted: `-x NAME=VALUE` values and URL
        // credentials never reach run.json or a terminal.
        command: mfubench_core::redact::redact_command(&argv),
        launcher: kind.program().to_string(),
        slurm_job_id: slurm_job,
        slurm_nodelist: env_nonempty("SLURM_JOB_NODELIST"),
        forwarded_env: forward_env,
    };
    let launch_json = serde_json::to_string(&info)?;
    Ok(Plan {
        kind,
        argv,
        np,
        np_rule,
        run_dir: out_abs.join(&run_id),
        out_dir: out_abs,
        timeout,
        run_id,
        launch_json,
        env,
    })
}

/// `--vary`: every variant must parse and validate before anything starts
/// (exit 2 with the one-line error naming the flag and the key).
fn check_vary(text: &str, args: &RunArgs, accept: bool) -> Result<()> {
    if args.vary.is_empty() {
        return Ok(());
    }
    if accept {
        return Err(usage(
            "--vary: only for `mfubench run`, not `mfubench accept`",
        ));
    }
    if args.exports.junit.is_some() || args.exports.prom.is_some() {
        return Err(usage(
            "--junit/--prom: not with --vary (one file per variant: `mfubench report OUT/<run-id>/variants/<k> --junit F`)",
        ));
    }
    let parsed = args
        .vary
        .iter()
        .map(|a| mfubench_core::vary::parse_vary_arg(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage(e.to_string()))?;
    let list = mfubench_core::vary::variants(text, &args.config, &parsed)
        .map_err(|e| usage(e.to_string()))?;
    for mut v in list {
        if let Some(b) = args.backend {
            v.file.run.backend = Some(BackendKind::from(b));
        }
        let c = v.resolve(&args.config).map_err(|e| usage(e.to_string()))?;
        if c.run.schedule != mfubench_core::config::Schedule::Interleaved {
            return Err(usage(format!(
                "--vary interleaves the variants per round: it needs run.schedule = \"interleaved\" ({} says \"{}\")",
                args.config, c.run.schedule
            )));
        }
    }
    Ok(())
}

/// The end of a `--vary` run: each variant's report files (written beside
/// its run.json, its text not printed), one line per variant, the variant
/// table; the exit code is the worst of the variants' verdicts.
fn report_vary(run_dir: &Path, args: &RunArgs) -> Result<u8> {
    let file = run_dir.join("vary.json");
    let (rec, problems) = mfubench_report::vary::read_vary(&file)
        .map_err(|e| run_failed(format!("the run finished but cannot be reported: {e}")))?;
    let opts = mfubench_report::ReportOptions {
        overrides: args.thresholds.overrides(),
        ..Default::default()
    };
    let mut code = OK;
    for v in &rec.variants {
        let dir = run_dir.join(&v.dir);
        if !dir.join("run.json").is_file() {
            continue;
        }
        let out = mfubench_report::report_run_dir(&dir.join("run.json"), &opts).map_err(|e| {
            run_failed(format!(
                "variant {} ({}) cannot be reported: {e}",
                v.index, v.label
            ))
        })?;
        code = code.max(verdict_code(
            &out.verdict,
            false,
            args.thresholds.allow_inconclusive,
        ));
        let html = crate::report_cmd::html_path(&out.files)
            .map(|p| format!("; report: {}", p.display()))
            .unwrap_or_default();
        println!(
            "variant {} ({}): verdict {}{html}",
            v.index,
            mfubench_report::text::strip_controls(&v.label),
            out.verdict.status.word()
        );
    }
    print!("{}", mfubench_report::vary::render(&rec));
    for p in &problems {
        eprintln!("mfubench: warning: {p}");
    }
    println!("results: {}", run_dir.display());
    println!("variants: {}", file.display());
    Ok(code)
}

/// How a launched job ended, when it did not fail.
pub(crate) enum Launched {
    /// `--dry-run`: the command was printed.
    DryRun,
    /// Ctrl-C: the job was stopped (exit 130).
    Interrupted,
    /// Every rank exited 0.
    Finished {
        /// OUT/<run-id>.
        run_dir: PathBuf,
        /// run.json (as announced by the worker's `done` event, else the
        /// run folder's).
        run_json: PathBuf,
        /// A soak that was asked to end early (Ctrl-C, SIGTERM, timeout)
        /// and did, at a window boundary.
        soft_stopped: Option<supervise::StopReason>,
    },
}

/// What `mfubench soak` adds to a launch.
pub(crate) struct SoakLaunch {
    /// Duration, window and modes.
    pub run: mfubench_core::soak::SoakRun,
    /// How long the ranks get to reach a window boundary after a stop.
    pub grace: Duration,
    /// Called with the run folder and the window's index after each
    /// window closed.
    pub on_window: OnWindow,
}

/// A soak's callback after each window: the run folder, the window's index.
pub(crate) type OnWindow = std::sync::Arc<dyn Fn(&Path, u32) + Send + Sync>;

/// Runs `mfubench run`: returns the exit code, or an error carrying one.
pub fn run(args: &RunArgs) -> Result<u8> {
    let (run_dir, run_json) = match launch(args, None, None)? {
        Launched::DryRun => return Ok(OK),
        Launched::Interrupted => return Ok(INTERRUPTED),
        Launched::Finished {
            run_dir, run_json, ..
        } => (run_dir, run_json),
    };
    if !args.vary.is_empty() {
        return report_vary(&run_dir, args);
    }
    if !run_json.is_file() {
        return Err(run_failed(format!(
            "the job exited 0 but {} was not written",
            run_json.display()
        )));
    }
    let verdict = report(&run_json, &run_dir, args)?;
    Ok(verdict_code(
        &verdict,
        false,
        args.thresholds.allow_inconclusive,
    ))
}

/// Plans, starts and supervises the worker ranks (the acceptance suite
/// with `accept`'s overrides, else the benchmark); a failed, timed-out or usage-error job is an
/// error carrying its exit code (its partial results reported first).
/// Shared by `mfubench run` and `mfubench accept`.
pub(crate) fn launch(
    args: &RunArgs,
    accept: Option<&AcceptOverrides>,
    soak: Option<&SoakLaunch>,
) -> Result<Launched> {
    let mut p = plan(args, accept, soak.map(|s| &s.run))?;
    eprintln!("mfubench: {} rank(s), from {}", p.np, p.np_rule.describe());
    if let Some(n) = args.sim_gpu {
        eprintln!(
            "mfubench: {} ({n} per host): the CUDA backend runs on stand-in libraries",
            mfubench_core::simgpu::BANNER
        );
    }
    if p.np == 1 {
        eprintln!(
            "mfubench: warning: 1 rank: nothing is communicated, so all-reduce bandwidth, \
             exposed communication and the hidden fraction are not measured \
             (their rules report SKIPPED); give --np, --hosts or run.ranks for more"
        );
    }
    if args.dry_run {
        println!(
            "{}",
            command::shell_join(&mfubench_core::redact::redact_command(&p.argv))
        );
        return Ok(Launched::DryRun);
    }
    // Fail before starting anything when the results folder cannot exist
    // (the worker would find out only after MPI start-up on every rank).
    std::fs::create_dir_all(&p.out_dir).map_err(|e| {
        usage(format!(
            "--out {}: cannot create the results folder: {e}",
            args.out.display()
        ))
    })?;
    let program = p.kind.program();
    if command::find_on_path(program, std::env::var_os("PATH").as_deref()).is_none() {
        return Err(usage(format!(
            "{program} not found on PATH: {}",
            p.kind.install_hint()
        )));
    }
    // Reserve OUT/<run-id>/ by creating it: of two runs that chose the same
    // id, exactly one creates it. An automatic id that lost the race is
    // chosen again; a given one is an error (or replaced with --force).
    let mut attempts = 0;
    loop {
        if args.force && args.run_id.is_some() && p.run_dir.exists() {
            eprintln!("mfubench: --force: replacing {}", p.run_dir.display());
            std::fs::remove_dir_all(&p.run_dir).map_err(|e| {
                usage(format!(
                    "--force: cannot remove {}: {e}",
                    p.run_dir.display()
                ))
            })?;
        }
        match std::fs::create_dir(&p.run_dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                attempts += 1;
                if args.run_id.is_some() && !args.force {
                    return Err(run_id_taken(&p.run_id, &p.run_dir));
                }
                if attempts > 100 {
                    return Err(usage(format!(
                        "cannot find a free run id in {}: give --run-id",
                        p.out_dir.display()
                    )));
                }
                p = plan(args, accept, soak.map(|s| &s.run))?;
            }
            Err(e) => {
                return Err(usage(format!(
                    "--out {}: cannot create {}: {e}",
                    args.out.display(),
                    p.run_dir.display()
                )))
            }
        }
    }

    eprintln!(
        "mfubench: run {} with {} rank(s): {}",
        p.run_id,
        p.np,
        command::shell_join(&mfubench_core::redact::redact_command(&p.argv))
    );
    let job = Job {
        kind: p.kind,
        argv: p.argv.clone(),
        env: std::iter::once((LAUNCH_ENV.to_string(), p.launch_json.clone()))
            .chain(p.env.iter().cloned())
            .collect(),
        np: p.np,
        run_id: p.run_id.clone(),
        timeout: p.timeout,
        tty: std::io::stderr().is_terminal(),
        soft_stop: soak.map(|s| (p.run_dir.join(mfubench_core::soak::STOP_FILE), s.grace)),
        on_soak_window: soak.map(|s| {
            let (f, dir) = (s.on_window.clone(), p.run_dir.clone());
            supervise::WindowHook(std::sync::Arc::new(move |i: u32| f(&dir, i)))
        }),
    };
    let o = supervise::supervise(&job)?;

    if !o.survivors.is_empty() {
        eprintln!(
            "mfubench: warning: worker process(es) {:?} survived SIGKILL",
            o.survivors
        );
    }
    if !o.removed.is_empty() {
        eprintln!(
            "mfubench: removed what Open MPI left of the job here: {}",
            o.removed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // A reservation nothing was written into is not a run: leave no empty
    // folder behind (remove_dir only removes an empty one).
    let _ = std::fs::remove_dir(&p.run_dir);
    let run_json = o
        .run_json
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(|| p.run_dir.join("run.json"));
    // A run's run.json, or the acceptance suite's accept.json (its
    // finished stages, marked incomplete).
    let accept_json = p.run_dir.join(mfubench_report::suite::ACCEPT_FILE);
    let kept = if run_json.is_file() || accept_json.is_file() {
        format!("; what was written is in {}", p.run_dir.display())
    } else {
        String::new()
    };
    let stopped_early = o.stopped.is_some() || !o.status.success();
    if stopped_early && run_json.is_file() {
        // The modes that finished are reported (verdict INCOMPLETE), and the
        // JUnit / Prometheus files say so, before the failure is.
        if let Err(e) = report(&run_json, &p.run_dir, args) {
            eprintln!("mfubench: the partial results cannot be reported: {e:#}");
        }
    } else if stopped_early {
        // A --vary run: the variant table of the rounds written so far.
        if let Some(f) = mfubench_report::vary::vary_file(&p.run_dir) {
            match mfubench_report::vary::read_vary(&f) {
                Ok((rec, _)) => print!("{}", mfubench_report::vary::render(&rec)),
                Err(e) => eprintln!("mfubench: the partial results cannot be reported: {e}"),
            }
        }
    }
    match diagnose::diagnose(&o, p.np, program, args.timeout, &kept) {
        None => {}
        Some(diagnose::Failure::Interrupted(msg)) => {
            eprintln!("mfubench: {msg}");
            return Ok(Launched::Interrupted);
        }
        Some(diagnose::Failure::Run(msg)) => return Err(run_failed(msg)),
        Some(diagnose::Failure::BadInput(msg)) => return Err(usage(msg)),
    }

    Ok(Launched::Finished {
        run_dir: p.run_dir,
        run_json,
        soft_stopped: o.soft_stopped,
    })
}

/// Prints the report of a run (and writes summary.md, summary.csv,
/// summary.json, report.html and the plots beside run.json, plus `--junit`
/// / `--prom`), then the results folder and last the path of report.html;
/// returns the verdict.
pub(crate) fn report(
    run_json: &Path,
    run_dir: &Path,
    args: &RunArgs,
) -> Result<mfubench_report::Verdict> {
    let opts = mfubench_report::ReportOptions {
        junit: args.exports.junit.clone(),
        prom: args.exports.prom.clone(),
        overrides: args.thresholds.overrides(),
        ..Default::default()
    };
    let out = mfubench_report::report_run_dir(run_json, &opts)
        .map_err(|e| run_failed(format!("the run finished but cannot be reported: {e}")))?;
    print!("{}", out.text);
    if !out.text.ends_with('\n') {
        println!();
    }
    let dir = run_json.parent().unwrap_or(run_dir);
    println!("results: {}", dir.display());
    for f in [&args.exports.junit, &args.exports.prom]
        .into_iter()
        .flatten()
    {
        println!("wrote {}", f.display());
    }
    if let Some(html) = crate::report_cmd::html_path(&out.files) {
        println!("report: {}", html.display());
    }
    // The report's text already lists every rule with its status.
    Ok(out.verdict)
}

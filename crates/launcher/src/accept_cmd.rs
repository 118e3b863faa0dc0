//! `mfubench accept`: the staged acceptance suite — device, node, link,
//! sweep and step stages in one MPI job (`mfubench-worker --accept`), then
//! the suite's report (tables, link matrix, sweep table), one verdict line
//! per finding and a last line naming every bad component.
//!
//! Launch, supervision, timeout and Ctrl-C are `mfubench run`'s
//! ([`crate::run_cmd::launch`]); the settings are the config's `[accept]`
//! table with this command's flags applied, checked here before anything
//! starts and forwarded to the ranks.
//!
//! Exit codes: 0 every rule passed; 1 a rule failed (or was INCONCLUSIVE
//! without `--allow-inconclusive`); 2 usage or config error; 3 the job
//! failed or timed out; 130 interrupted (the finished stages are in
//! accept.json, marked incomplete).

use anyhow::Result;
use clap::Args;

use mfubench_core::accept::{exit_code, parse_bytes, parse_stages, AcceptOverrides, Stage};
use mfubench_core::config::parse_config;

use crate::args::AcceptFractionArgs;
use crate::exit::{run_failed, usage, verdict_code, INTERRUPTED, OK};
use crate::run_cmd::{launch, report, Launched, RunArgs};

/// Arguments of `mfubench accept`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 ok, 1 a rule failed (or INCONCLUSIVE), 2 usage or config \
                        error, 3 run failed or timed out, 130 interrupted."
)]
pub struct AcceptArgs {
    /// Stages to run, comma-separated: device, node, link, sweep, step
    /// (default: accept.stages of the config, else all).
    #[arg(long, value_name = "LIST")]
    pub stages: Option<String>,
    /// Sweep: smallest all-reduce size (bytes; K, M, G suffixes).
    #[arg(short = 'b', long, value_name = "BYTES", value_parser = parse_bytes)]
    pub sweep_begin: Option<u64>,
    /// Sweep: largest all-reduce size (bytes; K, M, G suffixes).
    #[arg(short = 'e', long, value_name = "BYTES", value_parser = parse_bytes)]
    pub sweep_end: Option<u64>,
    /// Sweep: factor between sizes.
    #[arg(short = 'f', long, value_name = "N")]
    pub sweep_factor: Option<u64>,
    /// The device, node and link thresholds.
    #[command(flatten)]
    pub fractions: AcceptFractionArgs,
    /// Everything `mfubench run` takes: CONFIG, --np, --hosts, --hostfile,
    /// --backend, --out, --run-id, --timeout, --launcher, --dry-run, -- ARGS.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Runs `mfubench accept`.
pub fn run_accept(args: &AcceptArgs) -> Result<u8> {
    let stages = match &args.stages {
        Some(list) => Some(parse_stages(list).map_err(|e| usage(format!("--stages {list}: {e}")))?),
        None => None,
    };
    let overrides = args.fractions.overrides(AcceptOverrides {
        stages,
        sweep_begin: args.sweep_begin,
        sweep_end: args.sweep_end,
        sweep_factor: args.sweep_factor,
        ..Default::default()
    });
    // Bad settings are found here, before any rank starts.
    let cfg = &args.run.config;
    let text = crate::run_cmd::read_config(cfg)?;
    let config = parse_config(&text, cfg).map_err(|e| usage(e.to_string()))?;
    let settings = overrides
        .apply(&config.accept, cfg)
        .map_err(|e| usage(e.to_string()))?;

    let run_dir = match launch(&args.run, Some(&overrides))? {
        Launched::DryRun => return Ok(OK),
        Launched::Interrupted => return Ok(INTERRUPTED),
        Launched::Finished { run_dir, .. } => run_dir,
    };
    let file = run_dir.join(mfubench_report::suite::ACCEPT_FILE);
    let rec = mfubench_report::suite::read_accept(&file).map_err(|e| {
        run_failed(format!(
            "the job finished but accept.json cannot be read: {e}"
        ))
    })?;
    // The step stage's own report (its [acceptance] rules) comes first.
    let allow_inconclusive = args.run.thresholds.allow_inconclusive;
    let mut step_code = OK;
    if settings.stages.contains(&Stage::Step) {
        let run_json = run_dir.join("run.json");
        let verdict = report(&run_json, &run_dir, &args.run)?;
        step_code = verdict_code(&verdict, false, allow_inconclusive);
        println!();
    }
    let out = mfubench_report::suite::render(&rec, Some(&settings));
    print!("{}", out.text);
    println!("results: {}", run_dir.display());
    // One mapping of verdicts to exit codes (core::verdict::exit_code); the
    // worse of the suite's and the step's (3 > 1 > 0).
    let suite_code = exit_code(&out.findings, rec.complete, false, allow_inconclusive);
    Ok(suite_code.max(step_code))
}

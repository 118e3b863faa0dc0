//! `mfubench soak CONFIG --duration 2h [--window 1m] [--modes LIST]`: the
//! burn-in. Launch and supervision are `mfubench run`'s
//! ([`crate::run_cmd::launch`]), with every `run` option (Slurm included);
//! the ranks run rounds of the chosen modes until the duration has passed
//! and close a window every `--window` ([`mfubench_core::soak`]).
//!
//! - **After every window** (rank 0's `soak_window` event) report.html and
//!   the `--prom` textfile are rewritten from soak.jsonl, so a soak is
//!   watched while it runs; a rendering error there is a warning.
//! - **Stopping.** The first Ctrl-C, SIGTERM or `--timeout` creates
//!   `soak.stop` in the run folder: the ranks close the current window and
//!   end (within a window, the checks and the gather); a second one, or no
//!   end within that grace, stops the job as `run` does. Either way the
//!   report covers every window closed.
//! - **Verdict.** One line per rule (core's [`mfubench_core::soak::judge`]);
//!   rules without readings are listed as not judged, never as PASS; a soak
//!   ended early says PARTIAL.
//!
//! Exit codes: 0 every judged rule passed; 1 a rule failed; 2 usage or
//! config error; 3 the job failed, timed out, or soak.jsonl has no end
//! line; 130 interrupted (after the report of what ran).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use mfubench_core::config::parse_config;
use mfubench_core::soak::SoakRun;

use crate::exit::{run_failed, usage, INTERRUPTED, OK};
use crate::run_cmd::supervise::StopReason;
use crate::run_cmd::{launch, Launched, OnWindow, RunArgs, SoakLaunch};

/// Arguments of `mfubench soak`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 ok, 1 a rule failed, 2 usage or config error, \
                        3 run failed, timed out or did not end, 130 interrupted."
)]
pub struct SoakArgs {
    /// How long to soak: seconds, or e.g. 90s, 30m, 2h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Duration,
    /// Length of a window (one line of soak.jsonl, one point of every
    /// chart): seconds, or e.g. 10s, 1m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1m")]
    pub window: Duration,
    /// Modes each round runs, interleaved (default: overlapped; `all`:
    /// the config's run.modes).
    #[arg(long, value_name = "LIST", default_value = "overlapped")]
    pub modes: String,
    /// Everything `mfubench run` takes: CONFIG, --np, --hosts, --hostfile,
    /// --backend, --out, --run-id, --timeout, --prom, --sim-gpu,
    /// --sim-fault, --launcher, --dry-run, -- ARGS.
    #[command(flatten)]
    pub run: RunArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    mfubench_core::time::parse_duration(s)
}

/// Runs `mfubench soak`.
pub fn run_soak(args: &SoakArgs) -> Result<u8> {
    let modes = match args.modes.trim() {
        "all" => Vec::new(),
        list => mfubench_core::job::parse_modes(list)
            .map_err(|e| usage(format!("--modes {list}: {e}")))?,
    };
    let soak = SoakRun {
        duration_s: args.duration.as_secs_f64(),
        window_s: args.window.as_secs_f64(),
        modes,
    };
    soak.check().map_err(usage)?;
    if !args.run.vary.is_empty() {
        return Err(usage(
            "--vary: only for `mfubench run`, not `mfubench soak`",
        ));
    }
    let cfg = &args.run.config;
    let text = crate::run_cmd::read_config(cfg)?;
    let config = parse_config(&text, cfg).map_err(|e| usage(e.to_string()))?;
    if let Some(t) = args.run.timeout {
        if t <= args.duration {
            eprintln!(
                "mfubench: warning: --timeout {} s is not longer than --duration {} s: the soak will be stopped at a window boundary when it is reached",
                t.as_secs_f64(),
                args.duration.as_secs_f64()
            );
        }
    }
    let prom = args.run.exports.prom.clone();
    let on_window: OnWindow = Arc::new(move |dir: &Path, _| {
        if let Err(e) = mfubench_report::soak::write_soak_report(dir, prom.as_deref(), None, None) {
            eprintln!("mfubench: warning: the soak's report cannot be rewritten: {e}");
        }
    });
    let launch_soak = SoakLaunch {
        run: soak.clone(),
        // Closing a window: its checked steps, SDC check, gather and saves.
        grace: Duration::from_secs_f64(soak.window_s + 2.0 * config.run.op_timeout_s + 10.0),
        on_window,
    };
    let launched = launch(&args.run, None, Some(&launch_soak));
    let (run_dir, soft) = match launched {
        Ok(Launched::DryRun) => return Ok(OK),
        Ok(Launched::Interrupted) => (None, Some(StopReason::Interrupted)),
        Ok(Launched::Finished {
            run_dir,
            soft_stopped,
            ..
        }) => (Some(run_dir), soft_stopped),
        Err(e) => {
            // The windows closed before the failure are still reported.
            if let Some(dir) = last_run_dir(args) {
                let _ = report(&dir, args);
            }
            return Err(e);
        }
    };
    let dir = match run_dir.or_else(|| last_run_dir(args)) {
        Some(d) => d,
        None => return Ok(INTERRUPTED),
    };
    let code = report(&dir, args)?;
    Ok(match soft {
        Some(StopReason::Interrupted) => INTERRUPTED,
        Some(StopReason::Timeout) => mfubench_core::protocol::exit::RUN_FAILED,
        None => code,
    })
}

/// The run folder of this soak when the launch did not say it (it failed
/// or was interrupted): OUT/<run-id> when the id was given.
fn last_run_dir(args: &SoakArgs) -> Option<std::path::PathBuf> {
    let id = args.run.run_id.as_ref()?;
    let d = args.run.out.join(id);
    d.join(mfubench_core::soak::SOAK_FILE)
        .is_file()
        .then_some(d)
}

/// Prints the soak's report and writes report.html (and `--prom`);
/// returns the verdict's exit code.
fn report(dir: &Path, args: &SoakArgs) -> Result<u8> {
    let e = &args.run.exports;
    let out =
        mfubench_report::soak::write_soak_report(dir, e.prom.as_deref(), e.junit.as_deref(), None)
            .map_err(|e| run_failed(format!("the soak cannot be reported: {e}")))?;
    println!();
    print!("{}", out.text);
    println!("results: {}", dir.display());
    for p in [&e.junit, &e.prom].into_iter().flatten() {
        println!("wrote {}", p.display());
    }
    println!("report: {}", dir.join("report.html").display());
    Ok(exit_code(&out, false))
}

/// The exit code of a soak's verdict: 3 without an end line (unless
/// `allow_partial`), 1 when a judged rule failed, else 0.
pub fn exit_code(out: &mfubench_report::soak::SoakReport, allow_partial: bool) -> u8 {
    use mfubench_core::verdict::Status;
    let judged = out
        .verdict
        .rules
        .iter()
        .map(|(_, s, _)| *s)
        .filter(|s| *s != Status::Skipped);
    mfubench_core::verdict::exit_code(
        judged,
        out.verdict.overall != Status::Incomplete,
        allow_partial,
        false,
    )
}

//! `mfubench accept`: the staged acceptance suite — config, device, node, link,
//! sweep and step stages in one MPI job (`mfubench-worker --accept`), then
//! the suite's report (tables, link matrix, sweep table), one verdict line
//! per finding and a last line naming every bad component.
//!
//! Launch, supervision, timeout and Ctrl-C are `mfubench run`'s
//! ([`crate::run_cmd::launch`]); the settings are the config's `[accept]`
//! table with this command's flags applied, checked here before anything
//! starts and forwarded to the ranks.
//!
//! Node history: each node's figures are appended to
//! `<history>/<host>.jsonl` (default `OUT/history`) after a complete run,
//! and a figure that moved beyond the node's own past or the fleet
//! ([`regressions`]) is stored in accept.json and judged `node_regressed`.
//!
//! When a rule failed, the nodes to drain ([`bad_nodes`]) go to
//! `bad_nodes.txt` (one Slurm hostlist) and `bad_nodes_reasons.txt` (one
//! line per node), and `--on-bad CMD` runs once with `{nodes}` and
//! `{reason}` filled in (printed first; never on a PASS or a dry run; its
//! failure is reported and does not change the exit code).
//!
//! Exit codes: 0 every rule passed; 1 a rule failed (or was INCONCLUSIVE
//! without `--allow-inconclusive`); 2 usage or config error; 3 the job
//! failed or timed out; 130 interrupted (the finished stages are in
//! accept.json, marked incomplete).

use anyhow::Result;
use clap::Args;

use std::path::Path;
use std::time::{Duration, Instant};

use mfubench_core::accept::{
    bad_nodes, exit_code, node_figures, parse_bytes, parse_links, parse_stages, regressions,
    AcceptOverrides, AcceptRecord, BadNode, NodeFigures, Stage,
};
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
    /// Stages to run, comma-separated: config, device, node, link, sweep, step
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
    /// Link stage: `all` measures every pair of nodes (the tournament, at
    /// any size); `sampled` screens with a ring and random matchings, then
    /// re-pairs suspects with known-good nodes (default: the tournament up
    /// to accept.max_pair_nodes nodes, sampled above).
    #[arg(long, value_name = "all|sampled", value_parser = parse_links)]
    pub links: Option<u64>,
    /// Keep the nodes found bad by the config, device, node and link stages
    /// in the sweep and step stages (by default they are left out, so that
    /// one bad node or link cannot stretch the stages every rank runs).
    #[arg(long)]
    pub keep_bad: bool,
    /// Link stage: network interfaces, one per rail, comma-separated
    /// (`eth0,eth1`): the schedule runs again over TCP on each (NIC i with
    /// NIC i), and a slow link names its rail (accept.rails).
    #[arg(long, value_name = "IF,IF,...", value_delimiter = ',')]
    pub rails: Option<Vec<String>>,
    /// The device, node and link thresholds.
    #[command(flatten)]
    pub fractions: AcceptFractionArgs,
    /// A shell command run once at the end when a rule failed, e.g.
    /// `scontrol update nodename={nodes} state=drain reason="{reason}"`:
    /// {nodes} is the failed nodes' hostlist (as in bad_nodes.txt),
    /// {reason} a one-line summary (letters, digits and `_.,:;/%+=()-`
    /// only, so it is safe inside quotes). Printed before it runs; never
    /// run on a PASS or a dry run.
    #[arg(long, value_name = "CMD")]
    pub on_bad: Option<String>,
    /// Folder of the node histories (one `<host>.jsonl` per node; default
    /// OUT/history): each complete run's node figures are appended, and a
    /// node whose figure fell beyond its own past or the fleet is flagged
    /// `node_regressed`.
    #[arg(long, value_name = "DIR")]
    pub history: Option<std::path::PathBuf>,
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
        max_pair_nodes: args.links,
        keep_bad: args.keep_bad.then_some(true),
        rails: args.rails.clone(),
        ..Default::default()
    });
    // Bad settings are found here, before any rank starts.
    if args.on_bad.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(usage(
            "--on-bad: the command is empty; give a shell command such as 'scontrol update nodename={nodes} state=drain reason=\"{reason}\"'",
        ));
    }
    let cfg = &args.run.config;
    let text = crate::run_cmd::read_config(cfg)?;
    let config = parse_config(&text, cfg).map_err(|e| usage(e.to_string()))?;
    let settings = overrides
        .apply(&config.accept, cfg)
        .map_err(|e| usage(e.to_string()))?;

    let run_dir = match launch(&args.run, Some(&overrides), None)? {
        Launched::DryRun => return Ok(OK),
        Launched::Interrupted => return Ok(INTERRUPTED),
        Launched::Finished { run_dir, .. } => run_dir,
    };
    let file = run_dir.join(mfubench_report::suite::ACCEPT_FILE);
    let mut rec = mfubench_report::suite::read_accept(&file).map_err(|e| {
        run_failed(format!(
            "the job finished but accept.json cannot be read: {e}"
        ))
    })?;
    let history = args
        .history
        .clone()
        .unwrap_or_else(|| args.run.out.join("history"));
    judge_history(&mut rec, &history, &file)?;
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
    let bad = bad_nodes(&out.findings);
    if !bad.is_empty() {
        let nodes = write_bad_nodes(&run_dir, &bad)?;
        println!(
            "bad nodes: {nodes} ({}; reasons in {})",
            mfubench_report::suite::BAD_NODES_FILE,
            mfubench_report::suite::BAD_NODES_REASONS_FILE
        );
        if let Some(template) = &args.on_bad {
            let reason = reason_line(&rec.run_id, &bad);
            run_on_bad(&on_bad_command(template, &nodes, &reason));
        }
    }
    println!("results: {}", run_dir.display());
    // One mapping of verdicts to exit codes (core::verdict::exit_code); the
    // worse of the suite's and the step's (3 > 1 > 0).
    let suite_code = exit_code(&out.findings, rec.complete, false, allow_inconclusive);
    Ok(suite_code.max(step_code))
}

/// A history file's name for `host`: characters outside `[A-Za-z0-9._-]`
/// become `_`, so that no host name reaches outside the folder.
fn history_file(dir: &Path, host: &str) -> std::path::PathBuf {
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{}.jsonl", safe.trim_start_matches('.')))
}

/// Judges `rec`'s node figures against the history in `dir` (storing the
/// regressions in accept.json at `file`, atomically), then appends them
/// when the run is complete. An unreadable line is skipped with a warning.
fn judge_history(rec: &mut AcceptRecord, dir: &Path, file: &Path) -> Result<()> {
    let current = node_figures(rec);
    if current.iter().all(|n| n.figures.is_empty()) {
        return Ok(());
    }
    let mut past: std::collections::BTreeMap<String, Vec<NodeFigures>> = Default::default();
    for n in &current {
        let p = history_file(dir, &n.host);
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match serde_json::from_str::<NodeFigures>(line) {
                Ok(e) if e.host == n.host => past.entry(n.host.clone()).or_default().push(e),
                Ok(_) => {}
                Err(e) => eprintln!(
                    "mfubench: warning: {}:{}: not a history entry ({e}); skipped",
                    p.display(),
                    i + 1
                ),
            }
        }
    }
    rec.regressions = regressions(&current, &past, rec.settings.history_min_runs as usize);
    rec.trends = mfubench_core::accept::trends(&current, &past);
    if !rec.regressions.is_empty() || !rec.trends.is_empty() {
        rec.findings = mfubench_core::accept::evaluate(rec, &rec.settings);
        let bytes = serde_json::to_vec_pretty(rec).map_err(|e| run_failed(e.to_string()))?;
        mfubench_report::fsutil::write_atomic(file, &bytes)
            .map_err(|e| run_failed(format!("cannot rewrite {}: {e}", file.display())))?;
    }
    if !rec.complete {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| run_failed(format!("--history {}: {e}", dir.display())))?;
    for n in current.iter().filter(|n| !n.figures.is_empty()) {
        let p = history_file(dir, &n.host);
        let line = serde_json::to_string(n).map_err(|e| run_failed(e.to_string()))?;
        append_line(&p, &line)
            .map_err(|e| run_failed(format!("cannot append to {}: {e}", p.display())))?;
    }
    Ok(())
}

/// Appends one line and syncs it: a history line is written whole or not
/// at all as far as a reader after a crash can tell (a torn last line is
/// skipped with a warning).
fn append_line(p: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_all()
}

/// Writes bad_nodes.txt and bad_nodes_reasons.txt (atomically) and returns
/// the hostlist.
fn write_bad_nodes(run_dir: &Path, bad: &[BadNode]) -> Result<String> {
    let hosts: Vec<String> = bad.iter().map(|b| b.host.clone()).collect();
    let nodes = crate::run_cmd::hostlist::compress(&hosts);
    let reasons: String = bad
        .iter()
        .map(|b| format!("{}: {}\n", b.host, b.reasons.join("; ")))
        .collect();
    for (name, text) in [
        (mfubench_report::suite::BAD_NODES_FILE, format!("{nodes}\n")),
        (mfubench_report::suite::BAD_NODES_REASONS_FILE, reasons),
    ] {
        let p = run_dir.join(name);
        mfubench_report::fsutil::write_atomic(&p, text.as_bytes())
            .map_err(|e| run_failed(format!("cannot write {}: {e}", p.display())))?;
    }
    Ok(nodes)
}

/// The one-line reason for `--on-bad`: the run and the failed rules, with
/// every character outside letters, digits and `_.,:;/%+=()-` replaced by a
/// space, so that it cannot end a quoted shell word or start an expansion.
fn reason_line(run_id: &str, bad: &[BadNode]) -> String {
    let mut rules: Vec<&str> = bad
        .iter()
        .flat_map(|b| &b.reasons)
        .filter_map(|r| r.split(':').next())
        .collect();
    rules.dedup();
    let mut seen = Vec::new();
    rules.retain(|r| {
        let fresh = !seen.contains(r);
        seen.push(*r);
        fresh
    });
    let text = format!("mfubench accept {run_id}: {}", rules.join(", "));
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " _.,:;/%+=()-".contains(c) {
                c
            } else {
                ' '
            }
        })
        .collect()
}

/// `template` with `{nodes}` and `{reason}` filled in.
fn on_bad_command(template: &str, nodes: &str, reason: &str) -> String {
    template
        .replace("{nodes}", nodes)
        .replace("{reason}", reason)
}

/// Most time `--on-bad` may take before it is killed: a drain command
/// that hangs must not hang the acceptance run.
const ON_BAD_LIMIT: Duration = Duration::from_secs(120);

/// Runs `command` with `sh -c`, printing it first and its outcome after.
fn run_on_bad(command: &str) {
    println!("on-bad: running: {command}");
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mfubench: warning: --on-bad could not start sh: {e}");
            return;
        }
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                println!("on-bad: done");
                return;
            }
            Ok(Some(status)) => {
                eprintln!("mfubench: warning: --on-bad exited with {status}; the nodes are listed in bad_nodes.txt");
                return;
            }
            Ok(None) if start.elapsed() >= ON_BAD_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!(
                    "mfubench: warning: --on-bad did not finish within {} s and was killed; the nodes are listed in bad_nodes.txt",
                    ON_BAD_LIMIT.as_secs()
                );
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                eprintln!("mfubench: warning: --on-bad: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_bad_fills_in_the_nodes_and_a_safe_reason() {
        let bad = vec![
            BadNode {
                host: "n01".into(),
                reasons: vec!["node_links: node n01: 0.1 GB/s < 50 % of \"best\" $(x)".into()],
            },
            BadNode {
                host: "n02".into(),
                reasons: vec![
                    "link_bandwidth: link n02 <-> n03: slow".into(),
                    "node_links: node n02: slow".into(),
                ],
            },
        ];
        let reason = reason_line("r-1", &bad);
        assert_eq!(reason, "mfubench accept r-1: node_links, link_bandwidth");
        let cmd = on_bad_command(
            "scontrol update nodename={nodes} state=drain reason=\"{reason}\"",
            "n[01-02]",
            &reason,
        );
        assert_eq!(
            cmd,
            "scontrol update nodename=n[01-02] state=drain reason=\"mfubench accept r-1: node_links, link_bandwidth\""
        );
        // Quotes, $ and backticks never reach the shell from a run id.
        let r = reason_line("a\"$(rm)`x`", &bad);
        assert!(
            !r.contains('"') && !r.contains('$') && !r.contains('`'),
            "{r}"
        );
    }
}

//! `mfubench report` and `mfubench compare`: thin command-line layers over
//! `mfubench-report`. Exit codes: 0 all rules passed / no regression,
//! 1 a rule failed / a figure regressed, 2 bad input (unreadable, truncated,
//! malformed or future-schema run.json, bad option, configs that differ
//! without `--force`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use mfubench_report::{
    compare_runs, report_run_dir, AcceptanceOverrides, CompareOptions, Format, ReportError,
    ReportOptions,
};

use crate::exit::{usage, ACCEPTANCE_FAILED, OK};

/// Arguments of `mfubench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory or its run.json.
    pub run: PathBuf,
    /// What to print: table, json, csv (a row per rank and mode) or md.
    #[arg(long, default_value = "table", value_parser = parse_format)]
    pub format: Format,
    /// Write summary.md/csv/json, timeline.svg and ranks.svg here instead of
    /// beside run.json.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Do not write any file beside run.json (print only).
    #[arg(long)]
    pub no_files: bool,
    /// Also write a JUnit XML file with one testcase per acceptance rule.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write the headline figures in the Prometheus text format (for
    /// node_exporter's textfile collector; name it *.prom).
    #[arg(long, value_name = "FILE")]
    pub prom: Option<PathBuf>,
    /// Lowest acceptable overlapped MFU, e.g. 0.4 or 40% (overrides
    /// [acceptance] min_mfu).
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    pub min_mfu: Option<f64>,
    /// Highest acceptable exposed communication fraction, e.g. 0.1 or 10%.
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    pub max_exposed_comm_fraction: Option<f64>,
    /// Lowest acceptable all-reduce bus bandwidth, GB/s.
    #[arg(long, value_name = "GBPS")]
    pub min_busbw_gbps: Option<f64>,
    /// Straggler tolerance, e.g. 0.05 or 5% (stragglers are recomputed).
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    pub straggler_tolerance: Option<f64>,
    /// Most wrong all-reduce elements tolerated.
    #[arg(long, value_name = "N")]
    pub max_wrong: Option<u64>,
    /// Accept acceptance rules that are INCONCLUSIVE (within noise) instead
    /// of exiting 1.
    #[arg(long)]
    pub allow_inconclusive: bool,
    /// accept.json: re-judge devices with this fraction of the median
    /// (overrides the run's accept.min_device_fraction).
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    pub min_device_fraction: Option<f64>,
    /// accept.json: re-judge nodes with this fraction of the median.
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    pub min_node_fraction: Option<f64>,
    /// accept.json: re-judge links with this fraction of the reference.
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    pub min_link_fraction: Option<f64>,
}

/// Arguments of `mfubench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Baseline run directory or run.json.
    pub baseline: PathBuf,
    /// New run directory or run.json.
    pub new: PathBuf,
    /// Largest tolerated worsening of a headline figure, in percent
    /// (`5%` or `5`).
    #[arg(long, default_value = "5%", value_parser = parse_percent)]
    pub max_regression: f64,
    /// Compare runs of different configurations anyway.
    #[arg(long)]
    pub force: bool,
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("unknown format {s:?}: use table, json, csv or md"))
}

/// `0.4` or `40%` → 0.4.
fn parse_fraction(s: &str) -> Result<f64, String> {
    let (num, scale) = match s.trim().strip_suffix('%') {
        Some(n) => (n.trim(), 0.01),
        None => (s.trim(), 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a number (give e.g. 0.4 or 40%)"))?;
    let v = v * scale;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} must be a non-negative fraction"));
    }
    Ok(v)
}

/// `5%` or `5` → 0.05 (a bare number is a percentage here).
fn parse_percent(s: &str) -> Result<f64, String> {
    let num = s.trim().strip_suffix('%').unwrap_or(s.trim()).trim();
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage (give e.g. 5%)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} must be a non-negative percentage"));
    }
    Ok(v / 100.0)
}

/// Every report error is about the input or the options: exit 2.
fn coded(e: ReportError) -> anyhow::Error {
    usage(e.to_string())
}

/// Runs `mfubench report`: accept.json (from `mfubench accept`) when the
/// directory has one or it is named, and run.json when there is one.
pub fn run_report(args: &ReportArgs) -> Result<u8> {
    let mut suite_ok = true;
    if let Some(file) = mfubench_report::suite::accept_path(&args.run) {
        let rec = mfubench_report::suite::read_accept(&file).map_err(coded)?;
        let settings = mfubench_core::accept::AcceptOverrides {
            min_device_fraction: args.min_device_fraction,
            min_node_fraction: args.min_node_fraction,
            min_link_fraction: args.min_link_fraction,
            ..Default::default()
        }
        .apply(&rec.settings, &file.display().to_string())
        .map_err(|e| usage(e.to_string()))?;
        let out = mfubench_report::suite::render(&rec, Some(&settings));
        print!("{}", out.text);
        suite_ok = match out.overall {
            mfubench_core::accept::Status::Pass => true,
            mfubench_core::accept::Status::Fail => false,
            _ => args.allow_inconclusive,
        };
        let has_run = args.run.is_dir() && args.run.join("run.json").is_file();
        if !has_run {
            return Ok(if suite_ok { OK } else { ACCEPTANCE_FAILED });
        }
        println!();
    }
    let opts = ReportOptions {
        format: args.format,
        out_dir: args.out.clone(),
        write_files: !args.no_files,
        junit: args.junit.clone(),
        prom: args.prom.clone(),
        overrides: AcceptanceOverrides {
            min_mfu: args.min_mfu,
            max_exposed_comm_fraction: args.max_exposed_comm_fraction,
            min_busbw_gbps: args.min_busbw_gbps,
            straggler_tolerance: args.straggler_tolerance,
            max_wrong: args.max_wrong,
        },
    };
    let out = report_run_dir(&args.run, &opts).map_err(coded)?;
    print!("{}", out.text);
    // Machine-readable formats go to stdout alone; the file list to stderr.
    if !out.files.is_empty() {
        let names: Vec<String> = out.files.iter().map(|p| p.display().to_string()).collect();
        eprintln!("mfubench: wrote {}", names.join(", "));
    }
    if args.format != Format::Table {
        let failed = out.verdict.failures().count();
        if failed > 0 {
            eprintln!("mfubench: acceptance FAILED ({failed} rule(s)); see --format table");
        }
    }
    Ok(
        if out.verdict.accepted(args.allow_inconclusive) && suite_ok {
            OK
        } else {
            ACCEPTANCE_FAILED
        },
    )
}

/// Runs `mfubench compare`.
pub fn run_compare(args: &CompareArgs) -> Result<u8> {
    let c = compare_runs(
        &args.baseline,
        &args.new,
        CompareOptions {
            max_regression: args.max_regression,
            force: args.force,
        },
    )
    .map_err(coded)?;
    print!("{}", c.render());
    Ok(if c.regressed() { ACCEPTANCE_FAILED } else { OK })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_and_percentages() {
        assert_eq!(parse_fraction("0.4"), Ok(0.4));
        assert_eq!(parse_fraction("40%"), Ok(0.4));
        assert!(parse_fraction("-1").is_err());
        assert!(parse_fraction("abc").is_err());
        assert_eq!(parse_percent("5%"), Ok(0.05));
        assert_eq!(parse_percent("5"), Ok(0.05));
        assert!(parse_percent("x%").is_err());
        assert_eq!(parse_format("md"), Ok(Format::Markdown));
        assert!(parse_format("xml").is_err());
    }
}

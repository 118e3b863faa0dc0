//! `mfubench report` and `mfubench compare`: thin command-line layers over
//! `mfubench-report`. Exit codes: 0 all rules passed / no regression,
//! 1 a rule failed or was SKIPPED / a figure regressed, 3 the run is
//! INCOMPLETE (unless `--allow-partial`), 2 bad input (unreadable, truncated,
//! malformed or future-schema run.json, bad option, configs that differ
//! without `--force`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use mfubench_report::{
    compare_runs, report_run_dir, BaselineFile, CompareOptions, Format, ReportError, ReportOptions,
    Status, Tolerance,
};

use crate::args::{AcceptFractionArgs, ExportArgs, ThresholdArgs};
use crate::exit::{usage, verdict_code, ACCEPTANCE_FAILED, OK};
/// Fractions and percentages: core's one parser each (`flops --mfu` too).
pub use mfubench_core::units::parse_fraction;
use mfubench_core::units::parse_percentage;

/// Arguments of `mfubench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory or its run.json.
    pub run: PathBuf,
    /// What to print: table, json, csv (a row per rank and mode), md, or
    /// html (prints the path of report.html; with --no-files, the page).
    #[arg(long, default_value = "table", value_parser = parse_format)]
    pub format: Format,
    /// Write summary.md/csv/json, report.html, timeline.svg and ranks.svg
    /// here instead of beside run.json.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Do not write any file beside run.json (print only).
    #[arg(long)]
    pub no_files: bool,
    /// CI and monitoring files.
    #[command(flatten)]
    pub exports: ExportArgs,
    /// Acceptance thresholds.
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// Judge a partial run (timeout, dead rank, Ctrl-C) on the modes (or
    /// the accept.json stages) that finished instead of exiting 3 with
    /// verdict INCOMPLETE.
    #[arg(long)]
    pub allow_partial: bool,
    /// accept.json: re-judge it with these thresholds (they replace the
    /// run's accept.min_*_fraction).
    #[command(flatten)]
    pub accept: AcceptFractionArgs,
}

/// Arguments of `mfubench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// BASELINE NEW (two run directories or run.json files), or only NEW
    /// with --baseline FILE.
    #[arg(num_args = 1..=2, value_name = "RUN", required = true)]
    pub runs: Vec<PathBuf>,
    /// A committed baseline file (TOML): `run = "PATH"` (the reference run,
    /// relative to the file) and a [tolerances] table, e.g.
    /// `"overlapped MFU" = "3%"`, `"exposed communication" = "2pp"`,
    /// `default = "5%"`.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Largest tolerated worsening of a headline figure, in percent
    /// (`5%` or `5`); a baseline file's `default` replaces it.
    #[arg(long, default_value = "5%", value_parser = parse_percentage)]
    pub max_regression: f64,
    /// Compare runs of different configurations anyway.
    #[arg(long)]
    pub force: bool,
    /// What to print: table or json.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Also write a JUnit XML file: one testcase per judged figure.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s)
        .ok_or_else(|| format!("unknown format {s:?}: use table, json, csv, md or html"))
}

/// The variant table of a `--vary` run (`vary.json`): table or json; exit
/// 0, or 3 for a run that stopped before every variant finished (unless
/// `--allow-partial`). Each variant is reported on its own with
/// `mfubench report DIR/variants/<k>`.
fn report_vary(file: &std::path::Path, args: &ReportArgs) -> Result<u8> {
    let (rec, problems) = mfubench_report::vary::read_vary(file).map_err(coded)?;
    match args.format {
        Format::Table => print!("{}", mfubench_report::vary::render(&rec)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&rec)?),
        _ => {
            return Err(usage(format!(
                "{}: a --vary run's table prints as --format table or json; report a variant with `mfubench report {}/variants/<k>`",
                file.display(),
                file.parent().unwrap_or(std::path::Path::new(".")).display()
            )))
        }
    }
    for p in &problems {
        eprintln!("mfubench: warning: {p}");
    }
    if !rec.complete && !args.allow_partial {
        eprintln!("mfubench: the run is INCOMPLETE (it stopped before every variant finished); exit 3 (pass --allow-partial to accept it)");
        return Ok(crate::exit::RUN_FAILED);
    }
    Ok(OK)
}

/// Every report error is about the input or the options: exit 2.
/// A soak's folder (or its soak.jsonl): the soak's text and verdict;
/// report.html (and `--prom`) unless `--no-files`.
fn report_soak(file: &std::path::Path, args: &ReportArgs) -> Result<u8> {
    let dir = file.parent().unwrap_or(std::path::Path::new("."));
    let out = if args.no_files {
        let log = mfubench_report::soak::read_soak(file).map_err(coded)?;
        mfubench_report::soak::render(&log, None)
    } else {
        let dir = args.out.as_deref().unwrap_or(dir);
        if args.out.is_some() {
            std::fs::create_dir_all(dir)
                .map_err(|e| usage(format!("--out {}: {e}", dir.display())))?;
        }
        let log = mfubench_report::soak::read_soak(file).map_err(coded)?;
        let out = mfubench_report::soak::render(&log, None);
        mfubench_fsio::write_atomic(&dir.join("report.html"), out.html.as_bytes())
            .map_err(|e| coded(e.into()))?;
        if let Some(p) = &args.exports.prom {
            mfubench_fsio::write_atomic(p, out.prom.as_bytes()).map_err(|e| coded(e.into()))?;
        }
        if let Some(p) = &args.exports.junit {
            let x = mfubench_report::soak::junit(&log, &out.verdict).map_err(coded)?;
            mfubench_fsio::write_atomic(p, x.as_bytes()).map_err(|e| coded(e.into()))?;
        }
        eprintln!("mfubench: wrote {}", dir.join("report.html").display());
        out
    };
    print!("{}", out.text);
    Ok(crate::soak_cmd::exit_code(&out, args.allow_partial))
}

fn coded(e: ReportError) -> anyhow::Error {
    usage(e.to_string())
}

/// Runs `mfubench report`: accept.json (from `mfubench accept`) when the
/// directory has one or it is named, and run.json when there is one.
pub fn run_report(args: &ReportArgs) -> Result<u8> {
    if let Some(file) = mfubench_report::soak::soak_file(&args.run) {
        return report_soak(&file, args);
    }
    if let Some(file) = mfubench_report::vary::vary_file(&args.run) {
        let dir = file.parent().map(|d| d.join("run.json"));
        if !dir.is_some_and(|r| r.is_file()) {
            return report_vary(&file, args);
        }
    }
    let mut suite_code = OK;
    if let Some(file) = mfubench_report::suite::accept_path(&args.run) {
        let rec = mfubench_report::suite::read_accept(&file).map_err(coded)?;
        let settings = args
            .accept
            .overrides(Default::default())
            .apply(&rec.settings, &file.display().to_string())
            .map_err(|e| usage(e.to_string()))?;
        let out = mfubench_report::suite::render(&rec, Some(&settings));
        print!("{}", out.text);
        // One mapping of verdicts to exit codes (core::verdict::exit_code):
        // a record of a suite that stopped is 3 unless --allow-partial.
        suite_code = mfubench_core::accept::exit_code(
            &out.findings,
            rec.complete,
            args.allow_partial,
            args.thresholds.allow_inconclusive,
        );
        let has_run = args.run.is_dir() && args.run.join("run.json").is_file();
        if !has_run {
            return Ok(suite_code);
        }
        println!();
    }
    let opts = ReportOptions {
        format: args.format,
        out_dir: args.out.clone(),
        write_files: !args.no_files,
        junit: args.exports.junit.clone(),
        prom: args.exports.prom.clone(),
        overrides: args.thresholds.overrides(),
    };
    let out = report_run_dir(&args.run, &opts).map_err(coded)?;
    // A page is opened, not read on a terminal: print where it is (the
    // page itself only when no file was written).
    let html_file = (args.format == Format::Html)
        .then(|| html_path(&out.files))
        .flatten();
    match html_file {
        Some(p) => println!("{}", p.display()),
        None => print!("{}", out.text),
    }
    // Machine-readable formats go to stdout alone; the file list to stderr.
    if !out.files.is_empty() {
        let names: Vec<String> = out.files.iter().map(|p| p.display().to_string()).collect();
        eprintln!("mfubench: wrote {}", names.join(", "));
    }
    if args.format != Format::Table && out.verdict.status != Status::Pass {
        eprintln!(
            "mfubench: verdict {}; see --format table",
            out.verdict.status.word()
        );
    }
    if out.verdict.status == Status::Incomplete {
        eprintln!(
            "mfubench: the run is INCOMPLETE (it stopped before every mode ran){}",
            if args.allow_partial {
                "; --allow-partial: judged on the modes that finished"
            } else {
                "; exit 3 (pass --allow-partial to judge the modes that finished)"
            }
        );
    }
    let code = verdict_code(
        &out.verdict,
        args.allow_partial,
        args.thresholds.allow_inconclusive,
    );
    // The worse of the suite's and the run's (3 > 1 > 0).
    Ok(code.max(suite_code))
}

/// The report.html among the files a report wrote.
pub fn html_path(files: &[PathBuf]) -> Option<&PathBuf> {
    let name = Format::Html.exporter().file_name()?;
    files
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == name))
}

/// Runs `mfubench compare`.
pub fn run_compare(args: &CompareArgs) -> Result<u8> {
    let mut opts = CompareOptions {
        max_regression: args.max_regression,
        force: args.force,
        ..Default::default()
    };
    let (baseline, new) = match (&args.baseline, args.runs.as_slice()) {
        (Some(file), [new]) => {
            let b = BaselineFile::read(file).map_err(coded)?;
            match b.default {
                Some(Tolerance::Relative(t)) => opts.max_regression = t,
                Some(Tolerance::Points(_)) => {
                    return Err(usage(format!(
                        "--baseline {}: tolerances.default must be a percentage such as \"5%\"",
                        file.display()
                    )))
                }
                None => {}
            }
            opts.tolerances = b.tolerances;
            (b.run, new.clone())
        }
        (Some(_), _) => {
            return Err(usage(
                "with --baseline FILE give only the new run: mfubench compare --baseline FILE NEW",
            ))
        }
        (None, [baseline, new]) => (baseline.clone(), new.clone()),
        (None, _) => {
            return Err(usage(
                "give two runs (mfubench compare BASELINE NEW) or a baseline file (--baseline FILE NEW)",
            ))
        }
    };
    let c = compare_runs(&baseline, &new, opts).map_err(coded)?;
    if args.format == "json" {
        print!("{}", c.to_json());
    } else {
        print!("{}", c.render());
    }
    if let Some(p) = &args.junit {
        let xml = c.junit().map_err(coded)?;
        mfubench_report::fsutil::write_atomic(p, xml.as_bytes()).map_err(coded)?;
        eprintln!("mfubench: wrote {}", p.display());
    }
    Ok(if c.regressed() { ACCEPTANCE_FAILED } else { OK })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::fraction_for;

    #[test]
    fn fractions_and_percentages() {
        let min_mfu = fraction_for("acceptance.min_mfu");
        assert_eq!(min_mfu("0.4"), Ok(0.4));
        assert_eq!(min_mfu("40%"), Ok(0.4));
        assert!(min_mfu("-1").is_err());
        let e = min_mfu("1.5").unwrap_err();
        assert!(
            e.starts_with("acceptance.min_mfu: \"1.5\" is out of range"),
            "{e}"
        );
        assert!(min_mfu("abc").is_err());
        assert_eq!(parse_percentage("5%"), Ok(0.05));
        assert_eq!(parse_percentage("5"), Ok(0.05));
        assert!(parse_percentage("x%").is_err());
        assert_eq!(parse_format("md"), Ok(Format::Markdown));
        assert_eq!(parse_format("html"), Ok(Format::Html));
        assert!(parse_format("xml").is_err());
    }
}

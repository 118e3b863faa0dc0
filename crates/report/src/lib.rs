//! # mfubench-report: from run.json files to what people read
//!
//! Pure functions over `run.json` (no MPI, no CUDA): the cluster-wide
//! summary, per-node / per-rank / per-bucket tables, JSON / CSV / Markdown /
//! HTML exports, SVG plots, the acceptance verdict, JUnit and Prometheus
//! outputs, and run-to-run comparison.
//!
//! ## Entry points
//! - [`report_run_dir`]`(path, &ReportOptions)`: reads a run directory or
//!   run.json, writes `summary.md`, `summary.csv`, `summary.json`,
//!   `report.html` (one self-contained page, [`html`]), `timeline.svg` and
//!   `ranks.svg` beside it (or in
//!   [`ReportOptions::out_dir`]), optionally a JUnit and a Prometheus file,
//!   and returns a [`ReportOutcome`]: the text to print in the chosen
//!   format and the verdict. `mfubench report` calls it, and so does
//!   `mfubench run` at the end of a run:
//!   ```no_run
//!   # use mfubench_report::*;
//!   let out = report_run_dir(std::path::Path::new("results/run-1"), &ReportOptions::default())?;
//!   print!("{}", out.text);
//!   let exit_code = if out.verdict.passed { 0 } else { 1 };
//!   # Ok::<(), ReportError>(())
//!   ```
//! - [`suite::render`]: the acceptance suite's `accept.json` (`mfubench
//!   accept`) as tables, the link matrix, the sweep table and verdict lines.
//! - [`vary::read_vary`] and [`vary::render`]: the variant table of a
//!   `mfubench run --vary` run (`vary.json`, recomputed from the variants'
//!   run.json files).
//! - [`compare_runs`]`(baseline, new, CompareOptions)`: the side-by-side
//!   comparison behind `mfubench compare`.
//!
//! ## Design
//! - **One source of truth.** The summary is recomputed from the raw
//!   per-rank records with core's `summarize` (the worker's own function),
//!   never copied from the file; a disagreement with the stored summary is
//!   reported as a warning. The acceptance thresholds come from the run's
//!   `[acceptance]` table with command-line overrides
//!   ([`AcceptanceOverrides`]); a different straggler tolerance re-runs
//!   core's straggler test.
//! - **One [`analysis::Report`], many renderings.** Every exporter
//!   ([`export::Exporter`], one per [`Format`] plus JUnit and Prometheus,
//!   as hyperfine does) renders the same struct, so the terminal, Markdown,
//!   CSV and JSON cannot disagree. `summary.json` *is* the serialized
//!   report.
//! - **Tables declared once.** Each table is one list of columns
//!   ([`table`]: header, definition, cell, Prometheus series) that the
//!   terminal, Markdown, HTML, CSV and Prometheus renderers all read.
//! - **Bad input is an error, never a panic.** [`read`] turns truncated,
//!   malformed, inconsistent and future-schema files into one
//!   [`ReportError`] naming the file and the problem; it is fuzzed with
//!   proptest.
//! - **Scale.** Tables list every rank up to [`text::MAX_TABLE_ROWS`] and
//!   only the flagged and slowest past it; the ranks plot aggregates per
//!   node past [`plot::RANK_PLOT_LIMIT`] ranks, so report.html of a
//!   16,384-rank run is about 0.6 MB (`cargo bench -p mfubench-report`
//!   times the whole report and prints the page's size).
//! - **Definitions once.** Every figure's definition lives in
//!   [`definitions`]; report.html shows it as the figure's tooltip, the
//!   Prometheus file as its `# HELP`, and docs/metrics.md's list is checked
//!   against it.
//! - **Atomic files.** Every output is written to a temporary file in the
//!   same directory and renamed ([`fsutil::write_atomic`]).

pub mod acceptance;
pub mod analysis;
pub mod compare;
pub mod definitions;
pub mod error;
pub mod export;
pub mod fmt;
pub mod fsutil;
pub mod html;
pub mod plot;
pub mod project;
pub mod read;
pub mod soak;
pub mod suite;
mod svg;
pub mod table;
pub mod text;
pub mod vary;
pub mod verdict;

use std::path::{Path, PathBuf};

pub use acceptance::{analyze, analyze_with};
pub use acceptance::{AcceptanceOverrides, RuleResult, Status, Verdict};
pub use analysis::Report;
pub use compare::{
    compare_loaded, compare_runs, BaselineFile, CompareOptions, Comparison, Tolerance,
};
pub use error::ReportError;
pub use export::{Exporter, Format};
pub use plot::SvgTarget;
pub use read::{read_run, read_run_full, LoadedRun};

/// What [`report_run_dir`] should produce.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// Format of [`ReportOutcome::text`].
    pub format: Format,
    /// Where to write the files; `None` = beside run.json.
    pub out_dir: Option<PathBuf>,
    /// Write summary.md/csv/json and the plots (on by default).
    pub write_files: bool,
    /// Also write a JUnit XML file with one testcase per acceptance rule.
    pub junit: Option<PathBuf>,
    /// Also write the headline in the Prometheus text format.
    pub prom: Option<PathBuf>,
    /// Acceptance thresholds that replace the run's `[acceptance]` values.
    pub overrides: AcceptanceOverrides,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            format: Format::Table,
            out_dir: None,
            write_files: true,
            junit: None,
            prom: None,
            overrides: AcceptanceOverrides::default(),
        }
    }
}

/// The result of [`report_run_dir`].
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    /// The report in the requested format, ready to print.
    pub text: String,
    /// The acceptance verdict (`verdict.passed` false → exit 1).
    pub verdict: Verdict,
    /// Files written, in order.
    pub files: Vec<PathBuf>,
    /// The run.json that was read.
    pub run_file: PathBuf,
    /// Everything the report shows.
    pub report: Report,
}

/// Reads a run directory or run.json, writes the report files and returns
/// the printable text and the verdict. See the crate documentation.
pub fn report_run_dir(path: &Path, opts: &ReportOptions) -> Result<ReportOutcome, ReportError> {
    let loaded = read_run(path)?;
    report_loaded(&loaded, opts)
}

/// [`report_run_dir`] for a run already read.
pub fn report_loaded(
    loaded: &LoadedRun,
    opts: &ReportOptions,
) -> Result<ReportOutcome, ReportError> {
    let acc = opts.overrides.apply(&loaded.record.config.acceptance)?;
    let report = analyze_with(
        &loaded.record,
        loaded.rank_records(),
        &loaded.path.display().to_string(),
        &acc,
    );
    let text = opts.format.exporter().render(&report)?;
    let mut files = Vec::new();
    if opts.write_files {
        let dir = match &opts.out_dir {
            Some(d) => d.clone(),
            None => loaded
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        files = write_outputs(&report, &dir)?;
    }
    if let Some(p) = &opts.junit {
        fsutil::write_atomic(p, export::JunitExporter.render(&report)?.as_bytes())?;
        files.push(p.clone());
    }
    if let Some(p) = &opts.prom {
        fsutil::write_atomic(p, export::PrometheusExporter.render(&report)?.as_bytes())?;
        files.push(p.clone());
    }
    Ok(ReportOutcome {
        text,
        verdict: report.verdict.clone(),
        files,
        run_file: loaded.path.clone(),
        report,
    })
}

/// Writes summary.md, summary.csv, summary.json, report.html, timeline.svg
/// (the slowest rank's steps, when the run recorded timelines) and
/// ranks.svg into `dir`, creating it.
pub fn write_outputs(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for format in [Format::Markdown, Format::Csv, Format::Json, Format::Html] {
        let e = format.exporter();
        if let Some(name) = e.file_name() {
            let p = dir.join(name);
            fsutil::write_atomic(&p, e.render(report)?.as_bytes())?;
            files.push(p);
        }
    }
    let plots = [
        (
            "timeline.svg",
            plot::timeline_svg(report, 0, SvgTarget::File),
        ),
        ("ranks.svg", plot::ranks_svg(report, SvgTarget::File)),
    ];
    for (name, svg) in plots {
        if let Some(svg) = svg {
            let p = dir.join(name);
            fsutil::write_atomic(&p, svg.as_bytes())?;
            files.push(p);
        }
    }
    Ok(files)
}

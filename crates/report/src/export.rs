//! Exporters: one per output format behind one trait (as hyperfine does),
//! plus the JUnit and Prometheus writers for CI and monitoring.

use std::fmt::Write as _;

use mfubench_core::config::Mode;

use crate::acceptance::Status;
use crate::analysis::Report;
use crate::error::ReportError;
use crate::text::{self, Flavor};

/// Output formats of `mfubench report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Terminal tables (the default).
    Table,
    /// summary.json.
    Json,
    /// summary.csv: a row per rank and mode.
    Csv,
    /// summary.md.
    Markdown,
    /// report.html: one self-contained page with the plots inlined.
    Html,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 5] = [
        Format::Table,
        Format::Json,
        Format::Csv,
        Format::Markdown,
        Format::Html,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Markdown => "md",
            Format::Html => "html",
        }
    }

    /// Parses a command-line name (`markdown` is accepted for `md`).
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "markdown" => Some(Format::Markdown),
            _ => Format::ALL.into_iter().find(|f| f.name() == s),
        }
    }

    /// The exporter of this format.
    pub fn exporter(self) -> Box<dyn Exporter> {
        match self {
            Format::Table => Box::new(TableExporter),
            Format::Json => Box::new(JsonExporter),
            Format::Csv => Box::new(CsvExporter),
            Format::Markdown => Box::new(MarkdownExporter),
            Format::Html => Box::new(HtmlExporter),
        }
    }
}

/// Turns a report into the bytes of one format.
pub trait Exporter {
    /// The format.
    fn format(&self) -> Format;
    /// File written beside run.json, if the format has one.
    fn file_name(&self) -> Option<&'static str>;
    /// Renders the report.
    fn render(&self, report: &Report) -> Result<String, ReportError>;
}

/// Terminal tables.
#[derive(Debug, Clone, Copy)]
pub struct TableExporter;

impl Exporter for TableExporter {
    fn format(&self) -> Format {
        Format::Table
    }
    fn file_name(&self) -> Option<&'static str> {
        None
    }
    fn render(&self, report: &Report) -> Result<String, ReportError> {
        Ok(text::render(report, Flavor::Terminal))
    }
}

/// summary.md.
#[derive(Debug, Clone, Copy)]
pub struct MarkdownExporter;

impl Exporter for MarkdownExporter {
    fn format(&self) -> Format {
        Format::Markdown
    }
    fn file_name(&self) -> Option<&'static str> {
        Some("summary.md")
    }
    fn render(&self, report: &Report) -> Result<String, ReportError> {
        Ok(text::render(report, Flavor::Markdown))
    }
}

/// report.html.
#[derive(Debug, Clone, Copy)]
pub struct HtmlExporter;

impl Exporter for HtmlExporter {
    fn format(&self) -> Format {
        Format::Html
    }
    fn file_name(&self) -> Option<&'static str> {
        Some("report.html")
    }
    fn render(&self, report: &Report) -> Result<String, ReportError> {
        Ok(crate::html::render(report))
    }
}

/// summary.json: the [`Report`] serialized (no per-rank-and-mode rows).
#[derive(Debug, Clone, Copy)]
pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn format(&self) -> Format {
        Format::Json
    }
    fn file_name(&self) -> Option<&'static str> {
        Some("summary.json")
    }
    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let mut s = serde_json::to_string_pretty(report).map_err(|e| ReportError::BadOption {
            option: "--format json".into(),
            message: format!("cannot serialize the summary: {e}"),
        })?;
        s.push('\n');
        Ok(s)
    }
}

/// summary.csv: a row per rank and mode.
#[derive(Debug, Clone, Copy)]
pub struct CsvExporter;

/// Quotes a CSV field when it holds a separator, a quote or a line break
/// (RFC 4180). A text cell that a spreadsheet would run as a formula (it
/// starts with `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed
/// with `'` (OWASP's CSV-injection rule); numbers, negative ones too, stay
/// numbers.
pub fn csv_field(s: &str) -> String {
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err();
    let s = if formula {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

impl Exporter for CsvExporter {
    fn format(&self) -> Format {
        Format::Csv
    }
    fn file_name(&self) -> Option<&'static str> {
        Some("summary.csv")
    }
    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let columns = crate::table::csv_columns();
        let mut out = String::with_capacity(160 * (report.rank_modes.len() + 1));
        let header: Vec<&str> = columns.iter().map(|c| c.header).collect();
        out.push_str(&header.join(","));
        out.push('\n');
        let stragglers: std::collections::HashSet<u64> =
            report.stragglers.iter().map(|s| s.rank).collect();
        for row in &report.rank_modes {
            let row = crate::table::CsvRow {
                row,
                straggler: stragglers.contains(&row.rank),
            };
            let cells: Vec<String> = columns
                .iter()
                .map(|c| csv_field(&(c.value)(report, &row).text))
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        Ok(out)
    }
}

/// Seconds of timed steps behind a set of modes: Σ of the cluster step
/// times (slowest rank per iteration) of each mode that ran.
fn timed_seconds(report: &Report, modes: &[Mode]) -> f64 {
    report
        .headline
        .iter()
        .filter(|h| modes.contains(&h.mode))
        .map(|h| h.step_total_s)
        .sum()
}

pub use crate::fmt::xml_escape;

/// The modes whose figures a rule judges (all modes for run-wide rules).
fn rule_modes(rule: &str, report: &Report) -> Vec<Mode> {
    match rule {
        "min_mfu" => vec![Mode::Overlapped],
        "max_exposed_comm_fraction" => vec![Mode::Compute, Mode::Overlapped],
        "min_busbw_gbps" => vec![Mode::Comm],
        "straggler_tolerance" => report.straggler_mode.into_iter().collect(),
        _ => report.run.modes.clone(),
    }
}

/// JUnit XML (through the `quick-junit` writer) for CI dashboards: one
/// testcase per acceptance rule plus `run_complete`, which fails when the
/// run stopped before every mode ran. A SKIPPED rule is a `<skipped>`
/// testcase, an INCOMPLETE or FAILED one a `<failure>`. `time` is the timed
/// steps behind the rule's figure; the suite carries the `hostname` (first
/// host of the run) and `properties` (run id, config hash, world size, ...).
pub fn junit(report: &Report) -> Result<String, ReportError> {
    use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
    let suite_name = format!("mfubench.acceptance.{}", report.run.run_id);
    let mut suite = TestSuite::new(suite_name.as_str());
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&report.run.started_at) {
        suite.set_timestamp(t);
    }
    let total = timed_seconds(report, &Mode::ALL);
    if total.is_finite() && total >= 0.0 {
        suite.set_time(std::time::Duration::from_secs_f64(total));
    }
    if let Some(host) = report.nodes.first() {
        suite
            .extra
            .insert("hostname".into(), host.host.as_str().into());
    }
    for (k, v) in [
        ("run_id", report.run.run_id.clone()),
        ("config_hash", report.run.config_hash.clone()),
        ("world_size", report.run.world_size.to_string()),
        ("hosts", report.run.hosts.to_string()),
        ("backend", report.run.backend.clone()),
        ("model", report.run.model.clone()),
        ("complete", report.complete.to_string()),
        ("verdict", report.verdict.status.word().to_string()),
    ] {
        suite.add_property(Property::new(k, v));
    }
    let case = |name: &str, status: TestCaseStatus, secs: f64, out: &str| {
        let mut c = TestCase::new(name, status);
        c.set_classname(suite_name.as_str());
        if secs.is_finite() && secs >= 0.0 {
            c.set_time(std::time::Duration::from_secs_f64(secs));
        }
        if !out.is_empty() {
            c.set_system_out(out);
        }
        c
    };
    let failure = |kind: &str, message: &str, text: String| {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(message).set_type(kind).set_description(text);
        s
    };
    for r in &report.verdict.rules {
        let secs = timed_seconds(report, &rule_modes(&r.rule, report));
        let status = match r.status {
            Status::Pass => TestCaseStatus::success(),
            Status::Fail => failure(
                "acceptance",
                &r.detail,
                format!("{} {}: {}", r.rule, r.op, r.detail),
            ),
            Status::Incomplete => failure(
                "incomplete",
                &r.detail,
                format!("{} {}: {}", r.rule, r.op, r.detail),
            ),
            Status::Inconclusive => failure(
                "inconclusive",
                &r.detail,
                format!("{} {}: {}", r.rule, r.op, r.detail),
            ),
            Status::Skipped => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(r.detail.as_str());
                s
            }
        };
        let out = if r.status == Status::Pass {
            r.detail.as_str()
        } else {
            ""
        };
        suite.add_test_case(case(&r.rule, status, secs, out));
    }
    let modes_ran = report
        .run
        .modes
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ");
    let status = if report.complete {
        TestCaseStatus::success()
    } else {
        let msg = format!(
            "INCOMPLETE: the run stopped before every configured mode ran (finished: {})",
            if modes_ran.is_empty() {
                "none"
            } else {
                &modes_ran
            }
        );
        failure("incomplete", &msg, msg.clone())
    };
    suite.add_test_case(case("run_complete", status, total, ""));
    let mut junit = quick_junit::Report::new("mfubench");
    junit.add_test_suite(suite);
    junit.to_string().map_err(|e| ReportError::BadOption {
        option: "--junit".into(),
        message: format!("cannot write the JUnit XML: {e}"),
    })
}

/// Escapes a label value (backslash, quote, line feed: the exposition
/// format's three escapes); other control characters, which the format
/// cannot escape and a terminal would run, become `?`.
fn prom_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

struct Prom {
    out: String,
}

impl Prom {
    fn family(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP mfubench_{name} {help}");
        let _ = writeln!(self.out, "# TYPE mfubench_{name} gauge");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let l: Vec<String> = labels
            .iter()
            .map(|(k, val)| format!("{k}=\"{}\"", prom_label(val)))
            .collect();
        // Prometheus spells non-finite values NaN, +Inf, -Inf.
        let value = if v.is_nan() {
            "NaN".to_string()
        } else if v.is_infinite() {
            if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
        } else {
            format!("{v}")
        };
        if l.is_empty() {
            let _ = writeln!(self.out, "mfubench_{name} {value}");
        } else {
            let _ = writeln!(self.out, "mfubench_{name}{{{}}} {value}", l.join(","));
        }
    }

    fn single(&mut self, name: &str, help: &str, v: Option<f64>) {
        if let Some(v) = v {
            self.family(name, help);
            self.sample(name, &[], v);
        }
    }
}

/// The figures in the Prometheus text exposition format, for
/// node_exporter's textfile collector (clean under `promtool check
/// metrics`). Units are base units (seconds, bytes/s, FLOP/s, ratios 0–1).
/// What identifies the run (run id, model, backend, world size, config
/// hash) is one `mfubench_run_info` sample with value 1, joined on demand,
/// rather than labels on every series; per-host and per-rank gauges carry
/// `host` / `rank` labels.
pub fn prometheus(report: &Report) -> String {
    let mut p = Prom { out: String::new() };
    let world = report.run.world_size.to_string();
    p.family(
        "run_info",
        "The run this file describes (value 1; identifying facts as labels).",
    );
    p.sample(
        "run_info",
        &[
            ("run_id", &report.run.run_id),
            ("model", &report.run.model),
            ("backend", &report.run.backend),
            ("world_size", &world),
            ("config_hash", &report.run.config_hash),
            ("tool_version", &report.run.tool_version),
        ],
        1.0,
    );
    p.single(
        "run_complete",
        "1 when every configured mode ran, 0 for a partial run (timeout, dead rank, Ctrl-C).",
        Some(if report.complete { 1.0 } else { 0.0 }),
    );
    p.single(
        "run_timestamp_seconds",
        "When the run (or its last finished mode) ended, Unix time (its start when no end was recorded).",
        chrono::DateTime::parse_from_rfc3339(&report.run.finished_at)
            .or_else(|_| chrono::DateTime::parse_from_rfc3339(&report.run.started_at))
            .ok()
            .map(|t| t.timestamp() as f64),
    );
    p.single(
        "world_size",
        "Ranks (devices) in the run.",
        Some(report.run.world_size as f64),
    );
    p.family(
        "step_time_seconds",
        "Cluster step time (slowest rank per iteration) over iterations.",
    );
    for h in &report.headline {
        for (stat, v) in [
            ("median", h.step_median_s),
            ("p95", h.step_p95_s),
            ("min", h.step_min_s),
        ] {
            p.sample(
                "step_time_seconds",
                &[("mode", h.mode.name()), ("stat", stat)],
                v,
            );
        }
    }
    let per_mode =
        |p: &mut Prom,
         name: &str,
         help: &str,
         get: &dyn Fn(&crate::analysis::ModeHeadline) -> Option<f64>| {
            let vals: Vec<(Mode, f64)> = report
                .headline
                .iter()
                .filter_map(|h| get(h).map(|v| (h.mode, v)))
                .collect();
            if vals.is_empty() {
                return;
            }
            p.family(name, help);
            for (m, v) in vals {
                p.sample(name, &[("mode", m.name())], v);
            }
        };
    per_mode(
        &mut p,
        "mfu_ratio",
        "Model FLOPs utilisation (0-1).",
        &|h| h.mfu,
    );
    per_mode(
        &mut p,
        "hfu_ratio",
        "Hardware FLOPs utilisation incl. recomputation (0-1).",
        &|h| h.hfu,
    );
    per_mode(
        &mut p,
        "flops_per_device",
        "Achieved model FLOP/s per device.",
        &|h| h.tflops_per_device.map(|t| t * 1e12),
    );
    per_mode(
        &mut p,
        "tokens_per_second",
        "Tokens per second, whole cluster.",
        &|h| h.tokens_per_second,
    );
    let o = &report.overlap;
    p.single(
        "exposed_comm_seconds",
        "Exposed communication T_o - T_c.",
        o.exposed_comm_s,
    );
    p.single(
        "exposed_comm_ratio",
        "Exposed communication as a fraction of the overlapped step.",
        o.exposed_comm_fraction,
    );
    p.single(
        "serialized_overhead_ratio",
        "(T_s - T_c) / T_s.",
        o.serialized_overhead,
    );
    p.single(
        "hidden_comm_ratio",
        "Fraction of the all-reduce time hidden by overlap.",
        o.hidden_fraction,
    );
    p.single("overlap_speedup_ratio", "T_s / T_o.", o.overlap_speedup);
    p.single(
        "overlap_efficiency_ratio",
        "Overlap gain as a fraction of the ideal gain.",
        o.overlap_efficiency,
    );
    if o.contention.gemm.is_some() || o.contention.allreduce.is_some() {
        p.family("contention_ratio", "Op time under overlap / op time alone.");
        if let Some(v) = o.contention.gemm {
            p.sample("contention_ratio", &[("op", "gemm")], v);
        }
        if let Some(v) = o.contention.allreduce {
            p.sample("contention_ratio", &[("op", "allreduce")], v);
        }
    }
    let a = &report.allreduce;
    p.single(
        "allreduce_bytes",
        "Bytes all-reduced per step.",
        Some(a.bytes as f64),
    );
    p.single(
        "allreduce_algbw_bytes_per_second",
        "All-reduce algorithm bandwidth (comm mode).",
        a.algbw_gbps.map(|g| g * 1e9),
    );
    p.single(
        "allreduce_busbw_bytes_per_second",
        "All-reduce bus bandwidth, algbw*2(n-1)/n (comm mode).",
        a.busbw_gbps.map(|g| g * 1e9),
    );
    p.family(
        "peak_flops_per_device",
        "Dense peak FLOP/s per device used for MFU.",
    );
    let src = match report.peak_source {
        mfubench_core::result::PeakSource::Spec => "spec",
        mfubench_core::result::PeakSource::Config => "config",
        mfubench_core::result::PeakSource::Calibrated => "calibrated",
    };
    p.sample(
        "peak_flops_per_device",
        &[("source", src)],
        report.peak_tflops * 1e12,
    );
    p.single(
        "wrong_elements",
        "Wrong all-reduce elements, all ranks and modes.",
        Some(report.wrong as f64),
    );
    p.single(
        "stragglers",
        "Ranks slower than the median by more than the tolerance.",
        Some(report.stragglers.len() as f64),
    );
    let host_rows: Vec<_> = report.nodes.iter().collect();
    let per_host = |p: &mut Prom,
                    name: &str,
                    help: &str,
                    get: &dyn Fn(&crate::analysis::NodeRow) -> Option<f64>| {
        let vals: Vec<(&str, f64)> = host_rows
            .iter()
            .filter_map(|n| get(n).map(|v| (n.host.as_str(), v)))
            .collect();
        if vals.is_empty() {
            return;
        }
        p.family(name, help);
        for (h, v) in vals {
            p.sample(name, &[("host", h)], v);
        }
    };
    per_host(
        &mut p,
        "host_flops_per_device",
        "Median over the host's ranks of the model FLOP/s per device (straggler mode).",
        &|n| n.rate_median_tflops.map(|t| t * 1e12),
    );
    per_host(
        &mut p,
        "host_step_time_seconds",
        "Slowest rank's median step time on the host (straggler mode).",
        &|n| n.step_max_s,
    );
    per_host(
        &mut p,
        "host_stragglers",
        "Straggler ranks on the host.",
        &|n| Some(n.stragglers as f64),
    );
    per_host(
        &mut p,
        "host_wrong_elements",
        "Wrong all-reduce elements on the host.",
        &|n| Some(n.wrong as f64),
    );
    let per_rank = |p: &mut Prom,
                    name: &str,
                    help: &str,
                    get: &dyn Fn(&crate::analysis::RankRow) -> Option<f64>| {
        let vals: Vec<(String, &str, f64)> = report
            .ranks
            .iter()
            .filter_map(|r| get(r).map(|v| (r.rank.to_string(), r.host.as_str(), v)))
            .collect();
        if vals.is_empty() {
            return;
        }
        p.family(name, help);
        for (rank, host, v) in vals {
            p.sample(name, &[("rank", &rank), ("host", host)], v);
        }
    };
    per_rank(
        &mut p,
        "rank_flops",
        "The rank's model FLOP/s at its median step (straggler mode).",
        &|r| r.rate_tflops.map(|t| t * 1e12),
    );
    per_rank(
        &mut p,
        "rank_step_time_seconds",
        "The rank's median step time (straggler mode).",
        &|r| r.step_median_s,
    );
    per_rank(
        &mut p,
        "rank_straggler",
        "1 when the rank is slower than the median by more than the tolerance.",
        &|r| Some(if r.straggler { 1.0 } else { 0.0 }),
    );
    per_rank(
        &mut p,
        "rank_wrong_elements",
        "Wrong all-reduce elements of the rank, all modes.",
        &|r| Some(r.wrong as f64),
    );
    p.family(
        "acceptance_rule_passed",
        "1 when the acceptance rule passed, 0 when it failed.",
    );
    for r in &report.verdict.rules {
        p.sample(
            "acceptance_rule_passed",
            &[("rule", &r.rule), ("status", r.status.word())],
            if r.status == Status::Pass { 1.0 } else { 0.0 },
        );
    }
    p.single(
        "acceptance_passed",
        "1 when the run completed and every acceptance rule passed (SKIPPED and INCOMPLETE are not passes).",
        Some(if report.verdict.passed { 1.0 } else { 0.0 }),
    );
    p.out
}

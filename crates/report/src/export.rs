//! Exporters: one per output format behind one trait (as hyperfine does),
//! plus the JUnit and Prometheus writers for CI and monitoring.

use std::fmt::Write as _;

use mfubench_core::config::Mode;

use crate::acceptance::Status;
use crate::analysis::Report;
use crate::error::ReportError;
use crate::fmt as f;
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
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [Format::Table, Format::Json, Format::Csv, Format::Markdown];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Markdown => "md",
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

/// Column names of summary.csv.
pub const CSV_HEADER: &[&str] = &[
    "run_id",
    "rank",
    "host",
    "local_rank",
    "device",
    "mode",
    "iterations",
    "step_median_s",
    "step_p95_s",
    "step_min_s",
    "step_max_s",
    "jitter_p95_over_median",
    "tflops",
    "mfu",
    "gemm_time_s",
    "allreduce_time_s",
    "wrong",
    "straggler",
];

/// Quotes a CSV field when it holds a separator, a quote or a line break
/// (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
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
        let mut out = String::with_capacity(160 * (report.rank_modes.len() + 1));
        out.push_str(&CSV_HEADER.join(","));
        out.push('\n');
        let run_id = csv_field(&report.run.run_id);
        let stragglers: std::collections::HashSet<u64> =
            report.stragglers.iter().map(|s| s.rank).collect();
        for row in &report.rank_modes {
            let straggler = stragglers.contains(&row.rank);
            let _ = writeln!(
                out,
                "{run_id},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                row.rank,
                csv_field(&row.host),
                row.local_rank,
                csv_field(&row.device),
                row.mode,
                row.iterations,
                row.step_median_s,
                row.step_p95_s,
                row.step_min_s,
                row.step_max_s,
                row.jitter,
                f::raw(row.tflops),
                f::raw(row.mfu),
                row.gemm_time_s,
                row.allreduce_time_s,
                row.wrong,
                straggler
            );
        }
        Ok(out)
    }
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => o.push(c),
        }
    }
    o
}

/// JUnit XML with one testcase per acceptance rule (for CI dashboards).
pub fn junit(report: &Report) -> String {
    let v = &report.verdict;
    let failures = v.failures().count();
    let suite = format!("mfubench.acceptance.{}", report.run.run_id);
    let mut o = String::new();
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        o,
        "<testsuites name=\"mfubench\" tests=\"{}\" failures=\"{failures}\">",
        v.rules.len()
    );
    let _ = writeln!(
        o,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" timestamp=\"{}\">",
        xml_escape(&suite),
        v.rules.len(),
        xml_escape(&report.run.finished_at)
    );
    for r in &v.rules {
        let _ = write!(
            o,
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml_escape(&suite),
            xml_escape(&r.rule)
        );
        match r.status {
            Status::Pass => {
                let _ = writeln!(
                    o,
                    ">\n      <system-out>{}</system-out>\n    </testcase>",
                    xml_escape(&r.detail)
                );
            }
            Status::Fail | Status::Inconclusive => {
                let _ =
                    writeln!(
                    o,
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                    xml_escape(&r.detail),
                    if r.status == Status::Fail { "acceptance" } else { "inconclusive" },
                    xml_escape(&format!("{} {}: {}", r.rule, r.op, r.detail))
                );
            }
        }
    }
    o.push_str("  </testsuite>\n</testsuites>\n");
    o
}

fn prom_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Prom<'a> {
    out: String,
    base: &'a str,
}

impl Prom<'_> {
    fn family(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP mfubench_{name} {help}");
        let _ = writeln!(self.out, "# TYPE mfubench_{name} gauge");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let mut l = self.base.to_string();
        for (k, val) in labels {
            let _ = write!(l, ",{k}=\"{}\"", prom_label(val));
        }
        // Prometheus spells non-finite values NaN, +Inf, -Inf.
        let value = if v.is_nan() {
            "NaN".to_string()
        } else if v.is_infinite() {
            if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
        } else {
            format!("{v}")
        };
        let _ = writeln!(self.out, "mfubench_{name}{{{l}}} {value}");
    }

    fn single(&mut self, name: &str, help: &str, v: Option<f64>) {
        if let Some(v) = v {
            self.family(name, help);
            self.sample(name, &[], v);
        }
    }
}

/// The headline figures in the Prometheus text exposition format, for
/// node_exporter's textfile collector. Units are base units (seconds,
/// bytes/s, FLOP/s, ratios 0–1); every sample carries `run_id`, `model`,
/// `backend` and `world_size` labels.
pub fn prometheus(report: &Report) -> String {
    let base = format!(
        "run_id=\"{}\",model=\"{}\",backend=\"{}\",world_size=\"{}\"",
        prom_label(&report.run.run_id),
        prom_label(&report.run.model),
        prom_label(&report.run.backend),
        report.run.world_size
    );
    let mut p = Prom {
        out: String::new(),
        base: &base,
    };
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
    p.family(
        "acceptance_rule_passed",
        "1 when the acceptance rule passed, 0 when it failed.",
    );
    for r in &report.verdict.rules {
        p.sample(
            "acceptance_rule_passed",
            &[("rule", &r.rule)],
            if r.status == Status::Pass { 1.0 } else { 0.0 },
        );
    }
    p.single(
        "acceptance_passed",
        "1 when every acceptance rule passed.",
        Some(if report.verdict.passed { 1.0 } else { 0.0 }),
    );
    p.out
}

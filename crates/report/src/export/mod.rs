//! Exporters: one per output format behind one trait, one file each for
//! the formats with code of their own (as hyperfine does): summary.csv
//! ([`CsvExporter`]), JUnit ([`JunitExporter`]) and Prometheus
//! ([`PrometheusExporter`]); the
//! terminal, Markdown, HTML and JSON exporters call [`crate::text`],
//! [`crate::html`] and serde.

mod csv;
mod junit;
pub(crate) mod prometheus;

pub use self::csv::{csv_field, CsvExporter};
pub use self::junit::{junit, JunitExporter};
pub use self::prometheus::{prometheus, PrometheusExporter};
pub use crate::fmt::xml_escape;

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

/// Turns a report into the bytes of one format: the [`Format`]s of
/// `--format`, and [`JunitExporter`] and [`PrometheusExporter`] for the
/// files of `--junit` and `--prom`.
pub trait Exporter {
    /// The format's name (`table`, `csv`, …, `junit`, `prom`).
    fn name(&self) -> &'static str;
    /// File written beside run.json, if the format has one.
    fn file_name(&self) -> Option<&'static str>;
    /// Renders the report.
    fn render(&self, report: &Report) -> Result<String, ReportError>;
}

/// Terminal tables.
#[derive(Debug, Clone, Copy)]
pub struct TableExporter;

impl Exporter for TableExporter {
    fn name(&self) -> &'static str {
        Format::Table.name()
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
    fn name(&self) -> &'static str {
        Format::Markdown.name()
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
    fn name(&self) -> &'static str {
        Format::Html.name()
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
    fn name(&self) -> &'static str {
        Format::Json.name()
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

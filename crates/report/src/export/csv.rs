//! summary.csv: a row per rank and mode, the columns declared once in
//! [`crate::table::csv_columns`].

use std::collections::HashSet;

use super::{Exporter, Format};
use crate::analysis::Report;
use crate::error::ReportError;
use crate::table::{self, CsvRow};

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
    fn name(&self) -> &'static str {
        Format::Csv.name()
    }
    fn file_name(&self) -> Option<&'static str> {
        Some("summary.csv")
    }
    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let columns = table::csv_columns();
        let mut out = String::with_capacity(160 * (report.rank_modes.len() + 1));
        let header: Vec<&str> = columns.iter().map(|c| c.header).collect();
        out.push_str(&header.join(","));
        out.push('\n');
        let stragglers: HashSet<u64> = report.stragglers.iter().map(|s| s.rank).collect();
        for row in &report.rank_modes {
            let row = CsvRow {
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

//! The Prometheus text exposition format, for node_exporter's textfile
//! collector. The per-mode, per-host and per-rank series are the columns of
//! the report's tables that declare a [`Metric`]; every figure's `# HELP`
//! is its definition from [`crate::definitions`], so the metrics file says
//! what report.html's tooltips say.

use std::fmt::Write as _;

use super::Exporter;
use crate::acceptance::Status;
use crate::analysis::Report;
use crate::definitions;
use crate::error::ReportError;
use crate::table::{self, Metric, Table};

/// The Prometheus file of `--prom FILE` ([`prometheus`]).
#[derive(Debug, Clone, Copy)]
pub struct PrometheusExporter;

impl Exporter for PrometheusExporter {
    fn name(&self) -> &'static str {
        "prom"
    }
    fn file_name(&self) -> Option<&'static str> {
        None
    }
    fn render(&self, report: &Report) -> Result<String, ReportError> {
        Ok(prometheus(report))
    }
}

/// Escapes a label value (backslash, quote, line feed: the exposition
/// format's three escapes); other control characters, which the format
/// cannot escape and a terminal would run, become `?`.
pub(crate) fn prom_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The help of a figure: its definition's name, what one sample is and its
/// unit (`scope`), then the definition itself.
fn figure_help(key: &str, scope: &str) -> String {
    match definitions::get(key) {
        Some(d) => format!("{} ({scope}): {}", d.name, d.text),
        // Unknown keys are caught by the tests; the scope alone still says
        // what the series is.
        None => scope.to_string(),
    }
}

struct Prom {
    out: String,
}

impl Prom {
    fn family(&mut self, name: &str, help: &str) {
        // HELP escapes backslash and line feed only.
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
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

    /// A run-wide fact that is not a figure, with its own help.
    fn single(&mut self, name: &str, help: &str, v: Option<f64>) {
        if let Some(v) = v {
            self.family(name, help);
            self.sample(name, &[], v);
        }
    }

    /// A run-wide figure, its help from [`crate::definitions`].
    fn figure(&mut self, name: &str, key: &str, scope: &str, v: Option<f64>) {
        self.single(name, &figure_help(key, scope), v);
    }

    /// The series of a table's columns: one family per [`Metric`] name, in
    /// column order, its samples row by row; a family without a value is
    /// left out.
    fn table<R>(&mut self, report: &Report, t: &Table<R>) {
        let mut names: Vec<&str> = Vec::new();
        for m in t.columns.iter().filter_map(|c| c.metric) {
            if !names.contains(&m.name) {
                names.push(m.name);
            }
        }
        for name in names {
            let cols: Vec<(&table::Column<R>, Metric)> = t
                .columns
                .iter()
                .filter_map(|c| c.metric.filter(|m| m.name == name).map(|m| (c, m)))
                .collect();
            let mut samples: Vec<(Vec<(&str, String)>, f64)> = Vec::new();
            for row in &t.rows {
                for (c, m) in &cols {
                    let Some(v) = (c.value)(report, row).raw else {
                        continue;
                    };
                    let mut labels = (t.labels)(row);
                    labels.extend(m.label.map(|(k, v)| (k, v.to_string())));
                    samples.push((labels, v * m.scale));
                }
            }
            let Some((c, m)) = cols.first() else { continue };
            if samples.is_empty() {
                continue;
            }
            self.family(name, &figure_help(c.definition.unwrap_or(""), m.scope));
            for (labels, v) in samples {
                let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                self.sample(name, &l, v);
            }
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
    p.table(report, &table::headline(report));
    overlap(&mut p, report);
    let a = &report.allreduce;
    p.single(
        "allreduce_bytes",
        "Bytes all-reduced per step.",
        Some(a.bytes as f64),
    );
    p.figure(
        "allreduce_algbw_bytes_per_second",
        "algbw",
        "whole step, comm mode; bytes per second",
        a.algbw_gbps.map(|g| g * 1e9),
    );
    p.figure(
        "allreduce_busbw_bytes_per_second",
        "busbw",
        "whole step, comm mode; bytes per second",
        a.busbw_gbps.map(|g| g * 1e9),
    );
    p.family(
        "peak_flops_per_device",
        &figure_help(
            "peak",
            "used for MFU; source = spec, config or calibrated; FLOP/s",
        ),
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
    p.figure(
        "wrong_elements",
        "wrong",
        "all ranks and modes",
        Some(report.wrong as f64),
    );
    p.figure(
        "stragglers",
        "straggler",
        "ranks",
        Some(report.stragglers.len() as f64),
    );
    p.table(report, &table::nodes(report));
    p.table(report, &table::ranks(report));
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

/// The run-wide overlap figures.
fn overlap(p: &mut Prom, report: &Report) {
    let o = &report.overlap;
    p.figure(
        "exposed_comm_seconds",
        "exposed_comm",
        "T_o − T_c; seconds",
        o.exposed_comm_s,
    );
    p.figure(
        "exposed_comm_ratio",
        "exposed_comm",
        "(T_o − T_c) / T_o; ratio 0-1",
        o.exposed_comm_fraction,
    );
    p.figure(
        "serialized_overhead_ratio",
        "serialized_overhead",
        "ratio 0-1",
        o.serialized_overhead,
    );
    p.figure(
        "hidden_comm_ratio",
        "hidden_fraction",
        "ratio 0-1",
        o.hidden_fraction,
    );
    p.figure(
        "overlap_speedup_ratio",
        "overlap_speedup",
        "ratio",
        o.overlap_speedup,
    );
    p.figure(
        "overlap_efficiency_ratio",
        "overlap_efficiency",
        "ratio 0-1",
        o.overlap_efficiency,
    );
    if o.contention.gemm.is_some() || o.contention.allreduce.is_some() {
        // One family, two figures told apart by the op label.
        p.family(
            "contention_ratio",
            &format!(
                "{}; {}",
                figure_help("contention_gemm", "op=\"gemm\"; ratio").trim_end_matches('.'),
                figure_help("contention_allreduce", "op=\"allreduce\"; ratio")
            ),
        );
        if let Some(v) = o.contention.gemm {
            p.sample("contention_ratio", &[("op", "gemm")], v);
        }
        if let Some(v) = o.contention.allreduce {
            p.sample("contention_ratio", &[("op", "allreduce")], v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_is_the_definition() {
        let h = figure_help("mfu", "per mode; ratio 0-1");
        assert_eq!(
            h,
            format!("MFU (per mode; ratio 0-1): {}", definitions::text("mfu"))
        );
    }
}

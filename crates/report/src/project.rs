//! The outputs of `mfubench project` (projection.json): the terminal text
//! (the links fitted, what is assumed, one row per measured or projected
//! node count with each figure's 95 % interval, a validation's error
//! table) and projection.html (that text beside the plot of measured and
//! projected points, [`crate::plot::projection_svg`]).

use std::fmt::Write;

use mfubench_core::project::{Figure, Projection, VALIDATION_TARGET_PCT};

use crate::fmt;

/// The columns: (figure name in projection.json, heading, is a time).
const COLUMNS: [(&str, &str, bool); 7] = [
    ("step_time_s.compute", "T_c", true),
    ("step_time_s.comm", "T_a", true),
    ("step_time_s.serialized", "T_s", true),
    ("step_time_s.overlapped", "T_o", true),
    ("exposed_comm_s", "exposed", true),
    ("hidden_fraction", "hidden", false),
    ("mfu.overlapped", "MFU (o)", false),
];

/// A fraction as a percentage, with significant digits when tiny (the
/// CPU backend's MFU is around 0.002 %).
fn share(x: f64) -> String {
    if x != 0.0 && x.abs() < 0.001 {
        format!("{:.2e} %", x * 100.0)
    } else {
        fmt::pct(x)
    }
}

fn cell(f: Option<&Figure>, time: bool, interval: bool) -> String {
    let show = |x: f64| if time { fmt::time(x) } else { share(x) };
    match f {
        None => "n/a".into(),
        Some(f) if !interval || (f.hi - f.lo).abs() <= 1e-15 => show(f.value),
        Some(f) => format!("{} [{}, {}]", show(f.value), show(f.lo), show(f.hi)),
    }
}

/// A validation row's label: PASS or FAIL against the target for the
/// targeted figures, and "within noise" when the projection's own 95 %
/// interval is wider than the target either way (the error could not
/// have told a miss from a hit).
fn row_verdict(r: &mfubench_core::project::ValidationRow) -> &'static str {
    if !r.targeted {
        return "";
    }
    let half_width_pct = (r.interval[1] - r.interval[0]) / 2.0 / r.measured.abs() * 100.0;
    match (
        r.error_pct.abs() <= VALIDATION_TARGET_PCT,
        half_width_pct > VALIDATION_TARGET_PCT,
    ) {
        (true, false) => "  PASS (target)",
        (true, true) => "  PASS (target; within noise: the interval is wider than the target)",
        (false, _) => "  FAIL (target)",
    }
}

/// The text of a projection.
pub fn text(p: &Projection) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mfubench project: fitted on {} run(s) ({}); {} ranks per node",
        p.fit_runs.len(),
        p.fit_runs.join(", "),
        p.ranks_per_node
    );
    let _ = writeln!(
        s,
        "links (α-β fits: α per latency step, bandwidth per rank):"
    );
    for l in &p.links {
        let detail = if l.samples > 0 {
            format!(
                "{} samples, residual {}{}",
                l.samples,
                fmt::pct(l.rel_residual),
                if l.alpha_fixed_zero {
                    ", latency not resolved (α fitted as 0)"
                } else {
                    ""
                }
            )
        } else {
            "no interval".into()
        };
        let _ = writeln!(
            s,
            "  {:<11} {:>10}  α {:>9}  ({detail}; {})",
            l.class.name(),
            fmt::gbps(l.bandwidth_gbps()),
            fmt::time(l.alpha_s),
            l.source
        );
    }
    let _ = writeln!(
        s,
        "GEMMs: the runs' compute-mode times (interval: the ranks' range) × {:.3} (the compute stream's gaps); overlapped × {:.3} (measured contention)",
        p.gemm_gap_factor, p.gemm_contention
    );
    let _ = writeln!(s, "assumed:");
    for a in &p.assumptions {
        let _ = writeln!(s, "  - {a}");
    }
    let _ = writeln!(s);
    let mut rows: Vec<Vec<String>> = vec![std::iter::once("nodes".to_string())
        .chain(std::iter::once("ranks".to_string()))
        .chain(COLUMNS.iter().map(|c| c.1.to_string()))
        .collect()];
    for pt in &p.points {
        let mut row = vec![
            format!(
                "{}{}",
                pt.nodes,
                if pt.measured { " (measured)" } else { "" }
            ),
            pt.ranks.to_string(),
        ];
        for (name, _, time) in COLUMNS {
            row.push(cell(
                pt.figures.iter().find(|f| f.name == name),
                time,
                !pt.measured,
            ));
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(s, "{}", line.join("  ").trim_end());
    }
    let _ = writeln!(
        s,
        "(projected figures: estimate [95 % interval from the fits and the ranks' GEMM range])"
    );
    if let Some(v) = &p.validation {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "validation against {} ({} nodes): target: comm-mode and overlapped step within ±{VALIDATION_TARGET_PCT} %",
            v.measured_run, v.nodes
        );
        for r in &v.rows {
            let time = r.figure.starts_with("step_time") || r.figure == "exposed_comm_s";
            let show = |x: f64| if time { fmt::time(x) } else { share(x) };
            let _ = writeln!(
                s,
                "  {:<24} projected {:>22}  measured {:>10}  error {:+7.1} %{}",
                r.figure,
                format!(
                    "{} [{}, {}]",
                    show(r.projected),
                    show(r.interval[0]),
                    show(r.interval[1])
                ),
                show(r.measured),
                r.error_pct,
                row_verdict(r)
            );
        }
        let _ = writeln!(
            s,
            "validation: {}",
            if v.within_target
                && v.rows
                    .iter()
                    .any(|r| row_verdict(r).contains("within noise"))
            {
                "PASS (within noise): every targeted figure within the target, but not every projection's interval is narrower than it"
            } else if v.within_target {
                "PASS: every targeted figure within the target"
            } else {
                "FAIL: a targeted figure missed the target"
            }
        );
    }
    s
}

/// projection.html: one self-contained page (no script, no fetch).
pub fn html(p: &Projection) -> String {
    let svg = crate::plot::projection_svg(p, crate::plot::SvgTarget::Inline);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mfubench projection</title>\
<style>body{{font-family:sans-serif;margin:24px}}pre{{font-size:12px}}</style></head><body>\
<h1>mfubench projection</h1>{svg}<pre>{}</pre></body></html>\n",
        crate::fmt::xml_escape(&text(p))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfubench_core::project::ValidationRow;

    #[test]
    fn validation_rows_say_pass_fail_and_within_noise() {
        let row = |projected: f64, lo: f64, hi: f64, targeted| ValidationRow {
            figure: "step_time_s.comm".into(),
            projected,
            interval: [lo, hi],
            measured: 1.0,
            error_pct: (projected - 1.0) * 100.0,
            targeted,
        };
        assert_eq!(row_verdict(&row(1.1, 1.05, 1.15, true)), "  PASS (target)");
        // ±25 % interval around a 10 % error: a hit the fit could not tell.
        assert!(row_verdict(&row(1.1, 0.85, 1.35, true)).contains("within noise"));
        assert_eq!(row_verdict(&row(1.2, 1.15, 1.25, true)), "  FAIL (target)");
        assert_eq!(row_verdict(&row(1.2, 1.15, 1.25, false)), "");
    }
}

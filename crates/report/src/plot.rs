//! The two plots, drawn with plotters' SVG backend (no fonts needed: the
//! backend writes `<text>` elements and the viewer renders them).
//!
//! - `timeline.svg`: one overlapped step of the slowest rank, GEMMs on the
//!   compute lane and all-reduces on the comm lane, with a mark where each
//!   bucket became ready (the end of its last wgrad). The gap between a
//!   mark and the start of its all-reduce, and comm bars past the last GEMM,
//!   are what overlap failed to hide.
//! - `ranks.svg`: the per-rank compute rate against the median and the
//!   straggler tolerance band, outliers in red. Past [`RANK_PLOT_LIMIT`]
//!   ranks it draws one min–median–max bar per node instead, so that
//!   thousands of ranks stay readable.

use std::collections::HashMap;
use std::path::Path;

use mfubench_core::config::Mode;
use mfubench_core::result::{RunRecord, Span, StreamKind};
use mfubench_core::stats;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::analysis::Report;
use crate::error::ReportError;

/// Above this many ranks, ranks.svg aggregates per node.
pub const RANK_PLOT_LIMIT: usize = 512;
/// Bucket marks are labelled only up to this many buckets.
const LABELLED_BUCKETS: usize = 40;

fn plot_err(path: &Path) -> impl Fn(String) -> ReportError + '_ {
    move |message| ReportError::Plot {
        path: path.to_path_buf(),
        message,
    }
}

/// The rank whose overlapped median step is the slowest, with its timeline.
/// `None` when no rank has an overlapped timeline.
pub fn slowest_overlapped(run: &RunRecord) -> Option<(usize, &[Span])> {
    run.ranks
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let m = r.modes.get(&Mode::Overlapped)?;
            if m.timeline.is_empty() {
                return None;
            }
            Some((i, stats::median(&m.step_time_s)?, m.timeline.as_slice()))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _, t)| (i, t))
}

fn category(span: &Span) -> usize {
    if span.stream == StreamKind::Comm {
        return 4;
    }
    let n = &span.name;
    if n.ends_with(".fwd") {
        0
    } else if n.ends_with(".recompute") {
        1
    } else if n.ends_with(".dgrad") {
        2
    } else if n.ends_with(".wgrad") {
        3
    } else {
        5
    }
}

const CATEGORIES: [(&str, RGBColor); 6] = [
    ("forward GEMM", RGBColor(66, 133, 244)),
    ("recompute GEMM", RGBColor(156, 106, 222)),
    ("dgrad GEMM", RGBColor(251, 140, 0)),
    ("wgrad GEMM", RGBColor(67, 160, 71)),
    ("all-reduce", RGBColor(211, 47, 47)),
    ("other", RGBColor(120, 120, 120)),
];

/// Draws timeline.svg; returns the SVG text, or `None` when the run has no
/// overlapped timeline.
pub fn timeline_svg(run: &RunRecord, path: &Path) -> Result<Option<String>, ReportError> {
    let Some((ri, spans)) = slowest_overlapped(run) else {
        return Ok(None);
    };
    let err = plot_err(path);
    let rank = &run.ranks[ri];
    let finite: Vec<&Span> = spans
        .iter()
        .filter(|s| s.start_s.is_finite() && s.end_s.is_finite() && s.end_s >= s.start_s)
        .collect();
    let end_ms = finite.iter().map(|s| s.end_s * 1e3).fold(0.0_f64, f64::max);
    let start_ms = finite
        .iter()
        .map(|s| s.start_s * 1e3)
        .fold(0.0_f64, f64::min);
    let x_max = if end_ms > start_ms {
        end_ms
    } else {
        start_ms + 1.0
    };
    let step = run.ranks[ri]
        .modes
        .get(&Mode::Overlapped)
        .and_then(|m| m.step_time_s.get(m.timeline_iteration))
        .copied();

    // Bucket ready = end of the compute span named like the bucket's
    // `ready_after` label (its last wgrad).
    let mut gemm_end: HashMap<&str, f64> = HashMap::new();
    for s in finite.iter().filter(|s| s.stream == StreamKind::Compute) {
        gemm_end.insert(s.name.as_str(), s.end_s * 1e3);
    }
    let ready: Vec<(usize, f64)> = run
        .plan
        .buckets
        .iter()
        .filter_map(|b| gemm_end.get(b.ready_after.as_str()).map(|&t| (b.index, t)))
        .collect();

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1400, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let title = format!(
            "One overlapped step of rank {} ({}, {}), the slowest{}",
            rank.rank,
            rank.host,
            rank.device,
            step.map(|s| format!(": {:.2} ms", s * 1e3))
                .unwrap_or_default()
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(90)
            .build_cartesian_2d(start_ms..x_max * 1.01, (0..2).into_segmented())
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("time since the step's start (ms)")
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(0) => "comm".to_string(),
                SegmentValue::CenterOf(1) => "compute".to_string(),
                _ => String::new(),
            })
            .draw()
            .map_err(|e| err(e.to_string()))?;

        for (ci, (label, color)) in CATEGORIES.iter().enumerate() {
            let bars: Vec<&&Span> = finite.iter().filter(|s| category(s) == ci).collect();
            if bars.is_empty() {
                continue;
            }
            let lane = |s: &Span| if s.stream == StreamKind::Comm { 0 } else { 1 };
            let color = *color;
            chart
                .draw_series(bars.iter().map(|s| {
                    Rectangle::new(
                        [
                            (s.start_s * 1e3, SegmentValue::Exact(lane(s))),
                            (s.end_s * 1e3, SegmentValue::Exact(lane(s) + 1)),
                        ],
                        color.filled(),
                    )
                }))
                .map_err(|e| err(e.to_string()))?
                .label(*label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
            // A white outline separates back-to-back ops of one colour.
            chart
                .draw_series(bars.iter().map(|s| {
                    Rectangle::new(
                        [
                            (s.start_s * 1e3, SegmentValue::Exact(lane(s))),
                            (s.end_s * 1e3, SegmentValue::Exact(lane(s) + 1)),
                        ],
                        WHITE.stroke_width(1),
                    )
                }))
                .map_err(|e| err(e.to_string()))?;
        }
        if !ready.is_empty() {
            chart
                .draw_series(ready.iter().map(|&(_, t)| {
                    PathElement::new(
                        vec![(t, SegmentValue::Exact(0)), (t, SegmentValue::Exact(2))],
                        BLACK.stroke_width(1),
                    )
                }))
                .map_err(|e| err(e.to_string()))?
                .label("bucket ready")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x + 6, y - 6), (x + 6, y + 6)], BLACK.stroke_width(1))
                });
            if ready.len() <= LABELLED_BUCKETS {
                chart
                    .draw_series(ready.iter().map(|&(b, t)| {
                        Text::new(
                            format!("b{b}"),
                            (t, SegmentValue::Exact(2)),
                            ("sans-serif", 11).into_font(),
                        )
                    }))
                    .map_err(|e| err(e.to_string()))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(Some(svg))
}

/// Draws ranks.svg from the report's per-rank rows; `None` when no rank has
/// a step time in the straggler mode.
pub fn ranks_svg(report: &Report, path: &Path) -> Result<Option<String>, ReportError> {
    let Some(mode) = report.straggler_mode else {
        return Ok(None);
    };
    let err = plot_err(path);
    let rate = mode.has_compute();
    // Higher is better for a rate, lower for a step time (comm-only runs).
    let value = |r: &crate::analysis::RankRow| -> Option<f64> {
        if rate {
            r.rate_tflops
        } else {
            r.step_median_s.map(|s| s * 1e3)
        }
    };
    let values: Vec<f64> = report
        .ranks
        .iter()
        .filter_map(value)
        .filter(|v| v.is_finite())
        .collect();
    let steps: Vec<f64> = report
        .ranks
        .iter()
        .filter_map(|r| r.step_median_s)
        .collect();
    let (Some(med_step), false) = (stats::median(&steps), values.is_empty()) else {
        return Ok(None);
    };
    let tol = report.acceptance.straggler_tolerance;
    let f = report.flops_per_step.model;
    // The straggler test is on the step time: step > median·(1 + tol).
    let to_value = |step: f64| if rate { f / step / 1e12 } else { step * 1e3 };
    let centre = to_value(med_step);
    let threshold = to_value(med_step * (1.0 + tol));
    let other = if tol < 1.0 {
        to_value(med_step * (1.0 - tol))
    } else {
        centre
    };
    let (band_lo, band_hi) = (threshold.min(other), threshold.max(other));
    let lo = values.iter().copied().fold(band_lo, f64::min);
    let hi = values.iter().copied().fold(band_hi, f64::max);
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-12);
    let (y0, y1) = (lo - pad, hi + pad);

    let aggregate = report.ranks.len() > RANK_PLOT_LIMIT;
    let n_x = if aggregate {
        report.nodes.len()
    } else {
        report.ranks.len()
    };
    let x_max = n_x.max(1) as f64;
    let ylabel = if rate {
        format!("{mode}-mode model TFLOP/s per device")
    } else {
        format!("{mode}-mode step time (ms)")
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1400, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let title = if aggregate {
            format!(
                "Per node ({} hosts, {} ranks): min–median–max of the ranks; tolerance {:.1} %",
                report.nodes.len(),
                report.ranks.len(),
                tol * 100.0
            )
        } else {
            format!(
                "Per rank ({} ranks); tolerance {:.1} %",
                report.ranks.len(),
                tol * 100.0
            )
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..x_max - 0.5, y0..y1)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(if aggregate {
                "node (host order)"
            } else {
                "rank"
            })
            .y_desc(ylabel)
            // Ranks and nodes are whole numbers: label only integer ticks.
            .x_labels((x_max as usize + 1).min(21))
            .x_label_formatter(&|x: &f64| {
                if x.fract().abs() < 1e-9 && *x >= 0.0 {
                    format!("{}", x.round() as i64)
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(-0.5, band_lo), (x_max - 0.5, band_hi)],
                RGBColor(76, 175, 80).mix(0.15).filled(),
            )))
            .map_err(|e| err(e.to_string()))?
            .label(format!("median ± {:.1} % step-time tolerance", tol * 100.0))
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 12, y + 5)],
                    RGBColor(76, 175, 80).mix(0.3).filled(),
                )
            });
        chart
            .draw_series(LineSeries::new(
                vec![(-0.5, centre), (x_max - 0.5, centre)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| err(e.to_string()))?
            .label("median rank")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], BLACK.stroke_width(1)));
        chart
            .draw_series(LineSeries::new(
                vec![(-0.5, threshold), (x_max - 0.5, threshold)],
                RED.stroke_width(1),
            ))
            .map_err(|e| err(e.to_string()))?
            .label("straggler threshold")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], RED.stroke_width(1)));

        let blue = RGBColor(33, 102, 172);
        if aggregate {
            // Per node: a bar from the worst to the best rank, a dot at the median.
            let mut per_node: Vec<Vec<f64>> = vec![Vec::new(); report.nodes.len()];
            let index: HashMap<&str, usize> = report
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.host.as_str(), i))
                .collect();
            for r in &report.ranks {
                if let (Some(&i), Some(v)) = (index.get(r.host.as_str()), value(r)) {
                    per_node[i].push(v);
                }
            }
            let flagged: Vec<bool> = report.nodes.iter().map(|n| n.stragglers > 0).collect();
            let bars: Vec<(usize, f64, f64, f64)> = per_node
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let min = v.iter().copied().reduce(f64::min)?;
                    let max = v.iter().copied().reduce(f64::max)?;
                    Some((i, min, stats::median(v)?, max))
                })
                .collect();
            chart
                .draw_series(bars.iter().map(|&(i, lo, _, hi)| {
                    let c = if flagged[i] { RED } else { blue };
                    PathElement::new(vec![(i as f64, lo), (i as f64, hi)], c.stroke_width(1))
                }))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(bars.iter().map(|&(i, _, m, _)| {
                    let c = if flagged[i] { RED } else { blue };
                    Circle::new((i as f64, m), 2, c.filled())
                }))
                .map_err(|e| err(e.to_string()))?
                .label("node median (bar: slowest to fastest rank)")
                .legend(move |(x, y)| Circle::new((x + 6, y), 3, blue.filled()));
            let named: Vec<(usize, &str)> = report
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.stragglers > 0)
                .take(10)
                .map(|(i, n)| (i, n.host.as_str()))
                .collect();
            chart
                .draw_series(named.iter().filter_map(|&(i, host)| {
                    let (_, lo, _, _) = bars.iter().find(|b| b.0 == i)?;
                    Some(Text::new(
                        host.to_string(),
                        (i as f64, *lo),
                        ("sans-serif", 11).into_font().color(&RED),
                    ))
                }))
                .map_err(|e| err(e.to_string()))?;
        } else {
            let pts: Vec<(f64, f64, bool, u64)> = report
                .ranks
                .iter()
                .enumerate()
                .filter_map(|(i, r)| Some((i as f64, value(r)?, r.straggler, r.rank)))
                .filter(|p| p.1.is_finite())
                .collect();
            chart
                .draw_series(
                    pts.iter()
                        .filter(|p| !p.2)
                        .map(|p| Circle::new((p.0, p.1), 3, blue.filled())),
                )
                .map_err(|e| err(e.to_string()))?
                .label("rank")
                .legend(move |(x, y)| Circle::new((x + 6, y), 3, blue.filled()));
            let outl: Vec<&(f64, f64, bool, u64)> = pts.iter().filter(|p| p.2).collect();
            if !outl.is_empty() {
                chart
                    .draw_series(
                        outl.iter()
                            .map(|p| Circle::new((p.0, p.1), 5, RED.filled())),
                    )
                    .map_err(|e| err(e.to_string()))?
                    .label("straggler")
                    .legend(|(x, y)| Circle::new((x + 6, y), 4, RED.filled()));
                chart
                    .draw_series(outl.iter().take(20).map(|p| {
                        Text::new(
                            format!(" rank {}", p.3),
                            (p.0, p.1),
                            ("sans-serif", 11).into_font().color(&RED),
                        )
                    }))
                    .map_err(|e| err(e.to_string()))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(Some(svg))
}

//! The ranks plot: each rank's rate (or step time) grouped and coloured
//! by node against the median and the straggler band, or past
//! [`RANK_PLOT_LIMIT`] one min–median–max bar per node.

use std::collections::HashMap;
use std::fmt::Write as _;

use mfubench_core::config::Mode;
use mfubench_core::stats;

use super::RANK_PLOT_LIMIT;
use crate::analysis::Report;
use crate::fmt as f;
use crate::svg::{self, esc, nice_ticks, text_width, tick_label, SvgTarget};

/// Node colours, cycled (Tableau 10, red left out: red marks stragglers).
const NODE_COLORS: [&str; 9] = [
    "#4e79a7", "#f28e2b", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
    "#bab0ac",
];
const STRAGGLER: &str = "#d62728";

const RANKS_W: f64 = 1200.0;
const RANKS_H: f64 = 500.0;
const LEFT: f64 = 78.0;
const LEGEND_W: f64 = 270.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 70.0;
/// Right and bottom edges of the ranks plot's data area.
const PLOT_R: f64 = RANKS_W - LEGEND_W - 10.0;
const PLOT_B: f64 = RANKS_H - BOTTOM;

/// The value axis of the ranks plot: a rate (higher is better) or, in a
/// comm-only run, a step time in ms (lower is better), with the median
/// and the straggler band on it.
struct ValueAxis {
    mode: Mode,
    rate: bool,
    tol: f64,
    centre: f64,
    threshold: f64,
    band_lo: f64,
    band_hi: f64,
    ticks: Vec<f64>,
    tick_step: f64,
    y0: f64,
    y1: f64,
}

impl ValueAxis {
    /// `None` when no rank has a step time in the straggler mode.
    fn of(report: &Report) -> Option<ValueAxis> {
        let mode = report.straggler_mode?;
        let rate = mode.has_compute();
        let values: Vec<f64> = report
            .ranks
            .iter()
            .filter_map(|r| rank_value(rate, r))
            .collect();
        let steps: Vec<f64> = report
            .ranks
            .iter()
            .filter_map(|r| r.step_median_s)
            .collect();
        let med_step = stats::median(&steps)?;
        if values.is_empty() {
            return None;
        }
        let tol = report.acceptance.straggler_tolerance;
        let flops = report.flops_per_step.model;
        // The straggler test is on the step time: step > median·(1 + tol).
        let to_value = |step: f64| {
            if rate {
                flops / step / 1e12
            } else {
                step * 1e3
            }
        };
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
        let (ticks, tick_step) = nice_ticks(lo - pad, hi + pad, 6);
        let y0 = ticks.first().copied().unwrap_or(lo - pad).min(lo - pad);
        let y1 = ticks.last().copied().unwrap_or(hi + pad).max(hi + pad);
        Some(ValueAxis {
            mode,
            rate,
            tol,
            centre,
            threshold,
            band_lo,
            band_hi,
            ticks,
            tick_step,
            y0,
            y1,
        })
    }

    fn value(&self, r: &crate::analysis::RankRow) -> Option<f64> {
        rank_value(self.rate, r)
    }

    /// The y of a value.
    fn y(&self, v: f64) -> f64 {
        PLOT_B - (v - self.y0) / (self.y1 - self.y0).max(1e-300) * (PLOT_B - TOP)
    }

    fn text(&self, v: f64) -> String {
        value_text(self.rate, v)
    }
}

/// A rank's value on the plot: its rate, or its step time in ms
/// (comm-only runs); `None` when missing or not finite.
fn rank_value(rate: bool, r: &crate::analysis::RankRow) -> Option<f64> {
    if rate {
        r.rate_tflops
    } else {
        r.step_median_s.map(|s| s * 1e3)
    }
    .filter(|v| v.is_finite())
}

/// The x axis of the ranks plot: ranks grouped by node (host order), or
/// past [`RANK_PLOT_LIMIT`] one slot per node.
struct Slots<'a> {
    aggregate: bool,
    /// Indices into `report.ranks`, in slot order.
    order: Vec<usize>,
    node_index: HashMap<&'a str, usize>,
    count: usize,
}

impl<'a> Slots<'a> {
    fn of(report: &'a Report) -> Slots<'a> {
        let aggregate = report.ranks.len() > RANK_PLOT_LIMIT;
        let node_index: HashMap<&str, usize> = report
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.host.as_str(), i))
            .collect();
        let mut order: Vec<usize> = (0..report.ranks.len()).collect();
        order.sort_by_key(|&i| {
            (
                node_index
                    .get(report.ranks[i].host.as_str())
                    .copied()
                    .unwrap_or(usize::MAX),
                report.ranks[i].rank,
            )
        });
        let count = if aggregate {
            report.nodes.len()
        } else {
            order.len()
        }
        .max(1);
        Slots {
            aggregate,
            order,
            node_index,
            count,
        }
    }

    /// The x of a slot's centre.
    fn x(&self, slot: f64) -> f64 {
        LEFT + (slot + 0.5) / self.count as f64 * (PLOT_R - LEFT)
    }

    fn node_of(&self, host: &str) -> Option<usize> {
        self.node_index.get(host).copied()
    }
}

/// A label beside a flagged mark: x, y, text, colour.
type MarkLabel<'a> = (f64, f64, String, &'a str);

/// The ranks plot from the report's per-rank rows; `None` when no rank has
/// a step time in the straggler mode.
pub fn ranks_svg(report: &Report, target: SvgTarget) -> Option<String> {
    let axis = ValueAxis::of(report)?;
    let slots = Slots::of(report);
    let mut o = String::with_capacity(if slots.aggregate {
        700 * 1024
    } else {
        64 * 1024
    });
    let title = ranks_title(report, slots.aggregate, axis.tol);
    svg::open(&mut o, target, RANKS_W, RANKS_H, &title);
    let _ = write!(
        o,
        "<text x=\"{LEFT}\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{}</text>",
        esc(&title)
    );
    let mode = axis.mode;
    let ylabel = if axis.rate {
        format!("{mode}-mode model TFLOP/s per device")
    } else {
        format!("{mode}-mode step time (ms)")
    };
    let _ = write!(
        o,
        "<text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        (TOP + PLOT_B) / 2.0,
        esc(&ylabel)
    );
    if !slots.aggregate {
        node_bands(&mut o, report, &slots);
    }
    value_grid(&mut o, &axis);
    slot_ticks(&mut o, report, &slots);
    straggler_band(&mut o, &axis);
    let labels = if slots.aggregate {
        node_bars(&mut o, report, &axis, &slots)
    } else {
        rank_points(&mut o, report, &axis, &slots)
    };
    mark_labels(&mut o, &labels);
    ranks_legend(&mut o, report, slots.aggregate, axis.tol);
    svg::close(&mut o);
    Some(o)
}

fn ranks_title(report: &Report, aggregate: bool, tol: f64) -> String {
    if aggregate {
        format!(
            "Per node ({} hosts, {} ranks): min–median–max of each node's ranks; tolerance {}",
            report.nodes.len(),
            report.ranks.len(),
            f::pct(tol)
        )
    } else {
        format!(
            "Per rank ({} ranks on {} node{}), grouped and coloured by node; tolerance {}",
            report.ranks.len(),
            report.nodes.len(),
            if report.nodes.len() == 1 { "" } else { "s" },
            f::pct(tol)
        )
    }
}

/// Node groups: alternating background bands, named below the axis where
/// the name fits (per rank only).
fn node_bands(o: &mut String, report: &Report, slots: &Slots) {
    let order = &slots.order;
    let mut start = 0usize;
    let mut group = 0usize;
    while start < order.len() {
        let host = &report.ranks[order[start]].host;
        let end = order[start..]
            .iter()
            .position(|&i| &report.ranks[i].host != host)
            .map(|p| start + p)
            .unwrap_or(order.len());
        let (gx0, gx1) = (slots.x(start as f64 - 0.5), slots.x(end as f64 - 0.5));
        if group % 2 == 1 {
            let _ = write!(
                o,
                "<rect x=\"{gx0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f4f4f4\"/>",
                gx1 - gx0,
                PLOT_B - TOP
            );
        }
        let label = host.as_str();
        if gx1 - gx0 >= text_width(label, 11.0) + 4.0 {
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{}\">{}</text>",
                (gx0 + gx1) / 2.0,
                PLOT_B + 32.0,
                NODE_COLORS[slots.node_of(label).unwrap_or(0) % NODE_COLORS.len()],
                esc(label)
            );
        }
        start = end;
        group += 1;
    }
}

/// Light horizontal grid, y ticks and the axes.
fn value_grid(o: &mut String, axis: &ValueAxis) {
    let (plot_r, plot_b) = (PLOT_R, PLOT_B);
    for t in &axis.ticks {
        let gy = axis.y(*t);
        let _ = write!(
            o,
            "<line x1=\"{LEFT}\" y1=\"{gy:.1}\" x2=\"{plot_r}\" y2=\"{gy:.1}\" stroke=\"#e8e8e8\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            gy + 4.0,
            tick_label(*t, axis.tick_step)
        );
    }
    let _ = write!(
        o,
        "<path d=\"M{LEFT} {TOP} L{LEFT} {plot_b} L{plot_r} {plot_b}\" fill=\"none\" stroke=\"#444\"/>"
    );
}

/// X ticks: rank numbers (or node indices), at most about 20, and the x
/// axis' name.
fn slot_ticks(o: &mut String, report: &Report, slots: &Slots) {
    let (xt, _) = nice_ticks(0.0, (slots.count - 1) as f64, 20);
    for t in xt.iter().filter(|t| t.fract() == 0.0) {
        let slot = *t as usize;
        let label = if slots.aggregate {
            slot.to_string()
        } else {
            slots
                .order
                .get(slot)
                .map(|&i| report.ranks[i].rank.to_string())
                .unwrap_or_default()
        };
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{label}</text>",
            slots.x(*t),
            PLOT_B + 15.0
        );
    }
    let _ = write!(
        o,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        (LEFT + PLOT_R) / 2.0,
        RANKS_H - 12.0,
        if slots.aggregate {
            "node (host order)"
        } else {
            "rank, grouped by node"
        }
    );
}

/// Tolerance band, median and straggler threshold.
fn straggler_band(o: &mut String, axis: &ValueAxis) {
    let plot_r = PLOT_R;
    let _ = write!(
        o,
        "<rect x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#4caf50\" fill-opacity=\"0.14\"><title>{}</title></rect>",
        axis.y(axis.band_hi),
        plot_r - LEFT,
        (axis.y(axis.band_lo) - axis.y(axis.band_hi)).max(0.5),
        esc(&format!(
            "median ± {} step-time tolerance",
            f::pct(axis.tol)
        ))
    );
    let _ = write!(
        o,
        "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{plot_r}\" y2=\"{0:.1}\" stroke=\"#000\"><title>median rank: {1}</title></line>",
        axis.y(axis.centre),
        esc(&axis.text(axis.centre))
    );
    let _ = write!(
        o,
        "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{plot_r}\" y2=\"{0:.1}\" stroke=\"{STRAGGLER}\" stroke-dasharray=\"6 3\"><title>straggler threshold: {1}</title></line>",
        axis.y(axis.threshold),
        esc(&axis.text(axis.threshold))
    );
}

/// Past [`RANK_PLOT_LIMIT`] ranks: one min–median–max bar per node, red
/// with a straggler, crossed with wrong elements; returns the labels of
/// the flagged nodes (at most 12).
fn node_bars<'a>(
    o: &mut String,
    report: &'a Report,
    axis: &ValueAxis,
    slots: &Slots,
) -> Vec<MarkLabel<'a>> {
    let mut labels = Vec::new();
    let mut per_node: Vec<Vec<f64>> = vec![Vec::new(); report.nodes.len()];
    for r in &report.ranks {
        if let (Some(i), Some(v)) = (slots.node_of(r.host.as_str()), axis.value(r)) {
            per_node[i].push(v);
        }
    }
    for (i, v) in per_node.iter().enumerate() {
        let (Some(mn), Some(mx), Some(md)) = (
            v.iter().copied().reduce(f64::min),
            v.iter().copied().reduce(f64::max),
            stats::median(v),
        ) else {
            continue;
        };
        let n = &report.nodes[i];
        let c = if n.stragglers > 0 {
            STRAGGLER
        } else {
            "#2166ac"
        };
        let cx = slots.x(i as f64);
        let _ = write!(
            o,
            "<g stroke=\"{c}\" fill=\"{c}\"><title>{}</title><line x1=\"{cx:.2}\" y1=\"{:.1}\" x2=\"{cx:.2}\" y2=\"{:.1}\"/><circle cx=\"{cx:.2}\" cy=\"{:.1}\" r=\"1.6\"/></g>",
            esc(&format!(
                "{}: {} ranks; median {}, min {}, max {}; {} straggler(s), {} wrong",
                n.host,
                n.ranks,
                axis.text(md),
                axis.text(mn),
                axis.text(mx),
                n.stragglers,
                n.wrong
            )),
            axis.y(mx),
            axis.y(mn),
            axis.y(md)
        );
        if n.wrong > 0 {
            cross(o, cx, axis.y(md), &format!("{}: {} wrong", n.host, n.wrong));
        }
        if (n.stragglers > 0 || n.wrong > 0) && labels.len() < 12 {
            let what = if n.wrong > 0 {
                format!("{} ({} wrong)", n.host, n.wrong)
            } else {
                n.host.clone()
            };
            let worst = if axis.rate { mn } else { mx };
            let color = if n.stragglers > 0 { STRAGGLER } else { "#000" };
            labels.push((cx, axis.y(worst), what, color));
        }
    }
    labels
}

/// One point per rank, coloured by node, stragglers ringed, wrong ones
/// crossed; returns the labels of the flagged ranks (at most 20).
fn rank_points<'a>(
    o: &mut String,
    report: &Report,
    axis: &ValueAxis,
    slots: &Slots,
) -> Vec<MarkLabel<'a>> {
    let mut labels = Vec::new();
    for (slot, &i) in slots.order.iter().enumerate() {
        let r = &report.ranks[i];
        let Some(v) = axis.value(r) else { continue };
        let ni = slots.node_of(r.host.as_str()).unwrap_or(0);
        let (cx, cy) = (slots.x(slot as f64), axis.y(v));
        let tip = format!(
            "rank {} ({}, {}): {}{}{}{}",
            r.rank,
            r.host,
            r.device,
            axis.text(v),
            r.deviation
                .map(|d| format!(", {} vs median step", f::delta_pct(d)))
                .unwrap_or_default(),
            if r.straggler { "; straggler" } else { "" },
            if r.wrong > 0 {
                format!("; {} wrong all-reduce elements", r.wrong)
            } else {
                String::new()
            }
        );
        let _ = write!(
            o,
            "<circle cx=\"{cx:.2}\" cy=\"{cy:.1}\" r=\"4\" fill=\"{}\" stroke=\"#333\" stroke-width=\"0.5\"><title>{}</title></circle>",
            NODE_COLORS[ni % NODE_COLORS.len()],
            esc(&tip)
        );
        if r.straggler {
            let _ = write!(
                o,
                "<circle cx=\"{cx:.2}\" cy=\"{cy:.1}\" r=\"8\" fill=\"none\" stroke=\"{STRAGGLER}\" stroke-width=\"2\"><title>{}</title></circle>",
                esc(&tip)
            );
        }
        if r.wrong > 0 {
            cross(o, cx, cy, &tip);
        }
        if (r.straggler || r.wrong > 0) && labels.len() < 20 {
            let what = match (r.straggler, r.wrong) {
                (true, 0) => format!("rank {}", r.rank),
                (_, w) => format!("rank {}: {w} wrong", r.rank),
            };
            labels.push((cx, cy, what, if r.straggler { STRAGGLER } else { "#000" }));
        }
    }
    labels
}

/// The labels of flagged marks, inside the plot: right of the mark, or
/// left of it near the right edge.
fn mark_labels(o: &mut String, labels: &[MarkLabel]) {
    for (lx, ly, text, color) in labels {
        let w = text_width(text, 11.0);
        let (tx, anchor) = if lx + 12.0 + w < PLOT_R {
            (lx + 11.0, "start")
        } else {
            (lx - 11.0, "end")
        };
        let _ = write!(
            o,
            "<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" font-size=\"11\" font-weight=\"bold\" fill=\"{color}\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>",
            ly + 4.0,
            esc(text)
        );
    }
}

/// The ranks plot's legend, outside the data: one item per row.
struct Legend {
    /// Left of the swatches.
    lx: f64,
    /// Centre of round swatches.
    sx: f64,
    /// The next row's y.
    ly: f64,
}

impl Legend {
    fn item(&mut self, o: &mut String, swatch: &dyn Fn(f64) -> String, label: &str) {
        let _ = write!(
            o,
            "{}<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
            swatch(self.ly),
            self.lx + 22.0,
            self.ly + 4.0,
            esc(label)
        );
        self.ly += 18.0;
    }
}

/// The legend: band, median, threshold, stragglers, wrong elements, then
/// the node bars' meaning or the node colours.
fn ranks_legend(o: &mut String, report: &Report, aggregate: bool, tol: f64) {
    let lx = PLOT_R + 20.0;
    let sx = lx + 8.0;
    let mut legend = Legend {
        lx,
        sx,
        ly: TOP + 4.0,
    };
    legend.item(
        o,
        &|y| {
            format!(
                "<rect x=\"{lx}\" y=\"{:.1}\" width=\"16\" height=\"10\" fill=\"#4caf50\" fill-opacity=\"0.3\"/>",
                y - 5.0
            )
        },
        &format!("median ± {} step-time tolerance", f::pct(tol)),
    );
    let line = |stroke: String| {
        move |y: f64| {
            format!(
                "<line x1=\"{lx}\" y1=\"{y}\" x2=\"{:.1}\" y2=\"{y}\" {stroke}/>",
                lx + 16.0
            )
        }
    };
    legend.item(o, &line("stroke=\"#000\"".into()), "median rank");
    legend.item(
        o,
        &line(format!("stroke=\"{STRAGGLER}\" stroke-dasharray=\"6 3\"")),
        "straggler threshold",
    );
    legend.item(
        o,
        &|y| {
            if aggregate {
                format!(
                    "<line x1=\"{sx}\" y1=\"{:.1}\" x2=\"{sx}\" y2=\"{:.1}\" stroke=\"{STRAGGLER}\"/>",
                    y - 6.0,
                    y + 6.0
                )
            } else {
                format!(
                    "<circle cx=\"{sx}\" cy=\"{y}\" r=\"6\" fill=\"none\" stroke=\"{STRAGGLER}\" stroke-width=\"2\"/>"
                )
            }
        },
        &format!(
            "{}{}",
            if aggregate {
                "node with a straggler"
            } else {
                "straggler"
            },
            if report.stragglers.is_empty() {
                " (none)"
            } else {
                ""
            }
        ),
    );
    legend.item(
        o,
        &|y| {
            let mut c = String::new();
            cross(&mut c, sx, y, "wrong all-reduce elements");
            c
        },
        if report.wrong == 0 {
            "wrong all-reduce elements (none)"
        } else {
            "wrong all-reduce elements (#wrong > 0)"
        },
    );
    legend_nodes(o, report, aggregate, &mut legend);
}

/// The last legend items: what a node bar shows, or each node's colour.
fn legend_nodes(o: &mut String, report: &Report, aggregate: bool, legend: &mut Legend) {
    let sx = legend.sx;
    if aggregate {
        legend.item(
            o,
            &|y| {
                format!(
                    "<line x1=\"{sx}\" y1=\"{:.1}\" x2=\"{sx}\" y2=\"{:.1}\" stroke=\"#2166ac\"/><circle cx=\"{sx}\" cy=\"{y}\" r=\"2\" fill=\"#2166ac\"/>",
                    y - 6.0,
                    y + 6.0
                )
            },
            "node: slowest–fastest rank, dot at median",
        );
        return;
    }
    legend.item(o, &|_| String::new(), "");
    const SHOWN: usize = 12;
    for (i, n) in report.nodes.iter().enumerate().take(SHOWN) {
        let color = NODE_COLORS[i % NODE_COLORS.len()];
        legend.item(
            o,
            &|y| {
                format!(
                    "<circle cx=\"{sx}\" cy=\"{y}\" r=\"5\" fill=\"{color}\" stroke=\"#333\" stroke-width=\"0.5\"/>"
                )
            },
            &format!(
                "node {} ({} rank{})",
                n.host,
                n.ranks,
                if n.ranks == 1 { "" } else { "s" }
            ),
        );
    }
    if report.nodes.len() > SHOWN {
        legend.item(
            o,
            &|_| String::new(),
            &format!(
                "… {} more nodes (colours repeat)",
                report.nodes.len() - SHOWN
            ),
        );
    }
}

fn value_text(rate: bool, v: f64) -> String {
    if rate {
        format!("{} TFLOP/s", f::tflops(v))
    } else {
        format!("{v:.3} ms")
    }
}

/// A black × over a mark (ranks with wrong all-reduce elements).
fn cross(o: &mut String, x: f64, y: f64, tip: &str) {
    let _ = write!(
        o,
        "<path d=\"M{:.1} {:.1} l10 10 m0 -10 l-10 10\" stroke=\"#000\" stroke-width=\"2\"><title>{}</title></path>",
        x - 5.0,
        y - 5.0,
        esc(tip)
    );
}

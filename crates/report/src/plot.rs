//! The two plots, written as SVG by hand (no plotting library): every bar
//! and point carries a `<title>` (hover text), colours and labels are ours,
//! and the same markup is saved as timeline.svg / ranks.svg and inlined in
//! report.html.
//!
//! - **Timeline**: the serialized and the overlapped step of one rank, one
//!   above the other on the same time axis: GEMMs on the compute lane
//!   (coloured by kind), DDP's all-reduces on the comm lane (labelled with
//!   their bucket), every other collective on a lane of its group and kind
//!   ("tp all-reduce", "dp_shard all-gather", "dp_shard reduce-scatter":
//!   FSDP/HSDP/TP collectives of different groups overlap in time), the
//!   exposed part of communication (a collective running while no GEMM
//!   does) shaded, and in the overlapped step a mark where each
//!   bucket became ready. Drawn for the slowest rank and for the median rank
//!   ([`Report::timelines`]); lanes without ops are left out.
//! - **Ranks**: each rank's rate (or step time, comm-only runs) grouped and
//!   coloured by node, against the median and the straggler band;
//!   stragglers ringed in red and ranks with wrong all-reduce elements
//!   crossed, both labelled; the legend beside the data. Past
//!   [`RANK_PLOT_LIMIT`] ranks, one min–median–max bar per node instead, so
//!   that thousands of ranks stay readable and small.

use std::collections::HashMap;
use std::fmt::Write as _;

use mfubench_core::config::Mode;
use mfubench_core::metrics::Collective;
use mfubench_core::result::{Span, StreamKind};
use mfubench_core::stats;

use crate::analysis::{RankTimeline, Report, StepTimeline};
use crate::fmt as f;
use crate::svg::{self, esc, text_width, tick_label};
pub use crate::svg::{nice_ticks, SvgTarget};

/// Above this many ranks, the ranks plot aggregates per node.
pub const RANK_PLOT_LIMIT: usize = 512;

// ---------------------------------------------------------------- timeline

/// Kinds of bars on the timeline, with their colours.
const KINDS: [(&str, &str); 8] = [
    ("forward GEMM", "#4285f4"),
    ("recompute GEMM", "#9c6ade"),
    ("dgrad GEMM", "#f59300"),
    ("wgrad GEMM", "#43a047"),
    ("all-reduce", "#00796b"),
    ("all-gather", "#6d4c41"),
    ("reduce-scatter", "#c2185b"),
    ("other", "#787878"),
];
const EXPOSED_FILL: &str = "#e53935";

fn kind(span: &Span) -> usize {
    let n = &span.name;
    if span.stream == StreamKind::Comm {
        // Collective labels (plan::CollectiveOp::label) name their kind.
        return if n.contains(".allgather.") {
            5
        } else if n.contains(".reducescatter.") {
            6
        } else {
            4
        };
    }
    if n.ends_with(".fwd") {
        0
    } else if n.ends_with(".recompute") {
        1
    } else if n.ends_with(".dgrad") {
        2
    } else if n.ends_with(".wgrad") {
        3
    } else {
        7
    }
}

/// Union of intervals, sorted and merged.
fn union(mut v: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The exposed part of communication in one step: the intervals where an
/// all-reduce runs and no GEMM does (comm ∖ compute), in seconds.
pub fn exposed_intervals(spans: &[Span]) -> Vec<(f64, f64)> {
    let of = |k: StreamKind| {
        union(
            spans
                .iter()
                .filter(|s| s.stream == k && s.end_s > s.start_s)
                .map(|s| (s.start_s, s.end_s))
                .collect(),
        )
    };
    let comm = of(StreamKind::Comm);
    let compute = of(StreamKind::Compute);
    let mut out = Vec::new();
    for (a, b) in comm {
        let mut start = a;
        for &(c0, c1) in compute.iter().filter(|c| c.1 > a && c.0 < b) {
            if c0 > start {
                out.push((start, c0.min(b)));
            }
            start = start.max(c1);
            if start >= b {
                break;
            }
        }
        if start < b {
            out.push((start, b));
        }
    }
    out
}

fn bar_label(s: &Span) -> String {
    match s.bucket {
        Some(b) => format!("b{b}"),
        None => s.name.rsplit('.').next().unwrap_or(&s.name).to_string(),
    }
}

const LANE_H: f64 = 24.0;
const LABEL_ROW_H: f64 = 13.0;
const MAX_LABEL_ROWS: usize = 3;
const MAX_LABEL_SHIFT: f64 = 90.0;

/// Lays out all-reduce labels that do not fit inside their bar on up to
/// [`MAX_LABEL_ROWS`] rows above the lane, each as close to its bar as the
/// labels already placed allow (shifted sideways by at most
/// [`MAX_LABEL_SHIFT`] px, a leader line then joins it to its bar); returns
/// per bar `None` (label inside the bar, or no room) or `(row, centre x)`,
/// and the rows used.
fn label_rows(
    bars: &[(f64, f64, String)],
    x_min: f64,
    x_max: f64,
) -> (Vec<Option<(usize, f64)>>, usize) {
    // Per row, the [left, right] extents of the labels placed on it.
    let mut rows: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut out = Vec::with_capacity(bars.len());
    for (x0, x1, label) in bars {
        let w = text_width(label, 10.0) + 4.0;
        if x1 - x0 >= w {
            out.push(None);
            continue;
        }
        let want = (x0 + x1) / 2.0 - w / 2.0;
        let free = |row: &[(f64, f64)], left: f64| {
            left >= x_min
                && left + w <= x_max
                && (left - want).abs() <= MAX_LABEL_SHIFT
                && row
                    .iter()
                    .all(|&(l, r)| left + w + 2.0 <= l || left >= r + 2.0)
        };
        // The free left edge nearest `want` in a row: `want` itself (kept
        // inside the plot), or just beside one of the row's labels.
        let nearest = |row: &[(f64, f64)]| {
            std::iter::once(want.clamp(x_min, (x_max - w).max(x_min)))
                .chain(row.iter().flat_map(|&(l, r)| [r + 2.0, l - 2.0 - w]))
                .filter(|&left| free(row, left))
                .min_by(|a, b| (a - want).abs().total_cmp(&(b - want).abs()))
        };
        let mut best: Option<(usize, f64)> = None;
        for (r, row) in rows.iter().enumerate() {
            if let Some(left) = nearest(row) {
                if best.is_none_or(|(_, l)| (left - want).abs() < (l - want).abs() - 1e-9) {
                    best = Some((r, left));
                }
            }
        }
        if best.is_none_or(|(_, l)| (l - want).abs() > 0.5) && rows.len() < MAX_LABEL_ROWS {
            if let Some(left) = nearest(&[]) {
                rows.push(Vec::new());
                best = Some((rows.len() - 1, left));
            }
        }
        out.push(best.map(|(r, left)| {
            rows[r].push((left, left + w));
            (r, left + w / 2.0)
        }));
    }
    let used = rows.len();
    (out, used)
}

/// The comm lane of a span: `None` for the shared lane (DDP's bucket
/// all-reduces, as the comm stream has always been drawn); for any other
/// collective its group and kind ("tp all-reduce", "dp_shard
/// reduce-scatter", from the plan's [`CollectiveRef`]s), so that the
/// collectives of different groups and streams, which overlap in time, do
/// not share a lane. Files without the plan's collective list fall back to
/// the kind alone.
///
/// [`CollectiveRef`]: mfubench_core::result::CollectiveRef
pub fn comm_lane(report: &Report, s: &Span) -> Option<String> {
    if s.stream != StreamKind::Comm {
        return None;
    }
    let i = s.bucket.is_none().then_some(s.collective).flatten()?;
    Some(match report.plan_collective_ops.get(i) {
        Some(c) => {
            let k = match c.kind {
                Collective::AllReduce => 4,
                Collective::AllGather => 5,
                Collective::ReduceScatter => 6,
                Collective::SendRecv => 7,
            };
            format!("{} {}", c.group.name(), KINDS[k].0)
        }
        None => KINDS[kind(s)].0.to_string(),
    })
}

/// The timeline of one chosen rank (`report.timelines[which]`) as SVG;
/// `None` when there is no such timeline.
pub fn timeline_svg(report: &Report, which: usize, target: SvgTarget) -> Option<String> {
    let tl = report.timelines.get(which)?;
    if tl.steps.iter().all(|s| s.spans.is_empty()) {
        return None;
    }
    Some(draw_timeline(report, tl, target))
}

/// The time axis of a timeline: milliseconds to x.
struct TimeScale {
    /// Left edge of the plot (right of the lane labels).
    left: f64,
    plot_w: f64,
    min_ms: f64,
    hi_ms: f64,
    ticks: Vec<f64>,
    tick_step: f64,
}

impl TimeScale {
    const W: f64 = 1200.0;
    const RIGHT: f64 = 24.0;

    /// One axis for every step of the timeline, from the earliest start
    /// (0 or before) to the latest end, rounded up to a tick.
    fn of(report: &Report, tl: &RankTimeline) -> TimeScale {
        // Room for the lane labels: 150 px, wider when a lane of a group's
        // collectives has a longer name ("dp_shard reduce-scatter").
        let left = tl
            .steps
            .iter()
            .flat_map(|s| &s.spans)
            .filter_map(|s| comm_lane(report, s))
            .map(|name| text_width(&name, 12.0) + 16.0)
            .fold(150.0_f64, f64::max)
            .ceil();
        let plot_w = Self::W - left - Self::RIGHT;
        let end_s = tl
            .steps
            .iter()
            .flat_map(|s| s.spans.iter().map(|x| x.end_s).chain(s.step_s))
            .fold(0.0_f64, f64::max);
        let start_s = tl
            .steps
            .iter()
            .flat_map(|s| s.spans.iter().map(|x| x.start_s))
            .fold(0.0_f64, f64::min);
        let max_ms = if end_s > start_s {
            end_s * 1e3
        } else {
            start_s * 1e3 + 1.0
        };
        let min_ms = start_s * 1e3;
        let (ticks, tick_step) = nice_ticks(min_ms, max_ms, 10);
        let hi_ms = ticks
            .last()
            .copied()
            .filter(|t| *t >= max_ms)
            .unwrap_or(max_ms);
        TimeScale {
            left,
            plot_w,
            min_ms,
            hi_ms,
            ticks,
            tick_step,
        }
    }

    /// The x of a time in ms.
    fn x(&self, ms: f64) -> f64 {
        self.left + (ms - self.min_ms) / (self.hi_ms - self.min_ms).max(1e-12) * self.plot_w
    }

    fn right(&self) -> f64 {
        self.left + self.plot_w
    }
}

/// A comm lane of one step's block.
struct Lane<'a> {
    /// None: the shared comm lane (DDP's buckets); else the group and kind
    /// of its collectives.
    name: Option<String>,
    y: f64,
    spans: Vec<&'a Span>,
    label_rows: Vec<Option<(usize, f64)>>,
}

/// One step's block: its heading, the compute lane and the comm lanes.
struct Block<'a> {
    step: &'a StepTimeline,
    y: f64,
    compute_y: Option<f64>,
    comm: Vec<Lane<'a>>,
    exposed: Vec<(f64, f64)>,
}

/// The comm lanes of a step: the shared one first, then one per group and
/// kind in the order the plan issues them.
fn comm_lanes<'a>(report: &Report, step: &'a StepTimeline) -> Vec<Lane<'a>> {
    let mut lanes: Vec<Lane> = Vec::new();
    for s in step.spans.iter().filter(|s| s.stream == StreamKind::Comm) {
        let name = comm_lane(report, s);
        match lanes.iter_mut().find(|l| l.name == name) {
            Some(l) => l.spans.push(s),
            None => lanes.push(Lane {
                name,
                y: 0.0,
                spans: vec![s],
                label_rows: Vec::new(),
            }),
        }
    }
    lanes.sort_by_key(|l| l.name.is_some());
    lanes
}

/// Lays out the blocks of the steps with spans, top to bottom from `y`;
/// returns them and the y below the last.
fn layout_blocks<'a>(
    report: &Report,
    tl: &'a RankTimeline,
    xs: &TimeScale,
    mut y: f64,
) -> (Vec<Block<'a>>, f64) {
    let mut blocks = Vec::new();
    for step in tl.steps.iter().filter(|s| !s.spans.is_empty()) {
        let top = y;
        y += 18.0; // the block's heading
        let has_compute = step.spans.iter().any(|s| s.stream == StreamKind::Compute);
        let mut lanes = comm_lanes(report, step);
        let compute_y = has_compute.then(|| {
            let v = y;
            y += LANE_H + 4.0;
            v
        });
        for (i, lane) in lanes.iter_mut().enumerate() {
            let bars: Vec<(f64, f64, String)> = lane
                .spans
                .iter()
                .map(|s| (xs.x(s.start_s * 1e3), xs.x(s.end_s * 1e3), bar_label(s)))
                .collect();
            let (rows, n_rows) = label_rows(&bars, xs.left, xs.right());
            if i > 0 {
                y += 4.0;
            }
            y += n_rows as f64 * LABEL_ROW_H;
            lane.y = y;
            lane.label_rows = rows;
            y += LANE_H;
        }
        y += 8.0;
        blocks.push(Block {
            step,
            y: top,
            compute_y,
            comm: lanes,
            exposed: exposed_intervals(&step.spans),
        });
        y += 14.0;
    }
    (blocks, y)
}

fn draw_timeline(report: &Report, tl: &RankTimeline, target: SvgTarget) -> String {
    let xs = TimeScale::of(report, tl);
    let (blocks, axis_y) = layout_blocks(report, tl, &xs, 70.0);
    let h = axis_y + 44.0;
    let mut o = String::with_capacity(64 * 1024);
    let title = format!(
        "Rank {} ({}, {}), the {} rank by {} step",
        tl.rank, tl.host, tl.device, tl.role, tl.chosen_by
    );
    svg::open(&mut o, target, TimeScale::W, h, &title);
    let modes: Vec<&str> = tl.steps.iter().map(|s| s.mode.name()).collect();
    let _ = write!(
        o,
        "<text x=\"{}\" y=\"22\" font-size=\"16\" font-weight=\"bold\">{}</text>",
        xs.left,
        esc(&format!(
            "{title}: {} on one time axis",
            modes.join(" and ")
        ))
    );
    timeline_legend(&mut o, report, tl, xs.left);
    let grid_top = blocks.first().map(|b| b.y).unwrap_or(axis_y);
    time_axis(&mut o, &xs, grid_top, axis_y);
    let bytes: HashMap<usize, u64> = report
        .plan_buckets
        .iter()
        .map(|b| (b.index, b.bytes))
        .collect();
    for b in &blocks {
        draw_block(&mut o, report, &xs, &bytes, b);
    }
    svg::close(&mut o);
    o
}

/// The legend above the data, left to right: the kinds of bars present,
/// exposed communication and, in an overlapped step, the bucket-ready mark.
fn timeline_legend(o: &mut String, report: &Report, tl: &RankTimeline, left: f64) {
    let mut present = [false; KINDS.len()];
    for s in tl.steps.iter().flat_map(|s| &s.spans) {
        present[kind(s)] = true;
    }
    let mut lx = left;
    let ly = 42.0;
    let mut legend = |o: &mut String, swatch: &dyn Fn(f64) -> String, label: &str, tip: &str| {
        let _ = write!(
            o,
            "<g><title>{}</title>{}<text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            esc(tip),
            swatch(lx),
            lx + 16.0,
            ly + 10.0,
            esc(label)
        );
        lx += 26.0 + text_width(label, 12.0);
    };
    for (k, (label, color)) in KINDS.iter().enumerate() {
        if present[k] {
            let sw = |x: f64| {
                format!(
                    "<rect x=\"{x:.1}\" y=\"{ly}\" width=\"12\" height=\"12\" fill=\"{color}\"/>"
                )
            };
            legend(o, &sw, label, label);
        }
    }
    let sw = |x: f64| {
        format!(
            "<rect x=\"{x:.1}\" y=\"{ly}\" width=\"12\" height=\"12\" fill=\"{EXPOSED_FILL}\" fill-opacity=\"0.25\" stroke=\"{EXPOSED_FILL}\"/>"
        )
    };
    legend(
        o,
        &sw,
        "exposed communication",
        crate::definitions::text("exposed_in_timeline"),
    );
    if tl.steps.iter().any(|s| s.mode == Mode::Overlapped) && !report.plan_buckets.is_empty() {
        let sw = |x: f64| {
            format!(
                "<path d=\"M{:.1} {ly} l7 0 l-3.5 6 z\" fill=\"#000\"/><line x1=\"{:.1}\" y1=\"{ly}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#000\" stroke-width=\"0.8\"/>",
                x + 2.5,
                x + 6.0,
                x + 6.0,
                ly + 12.0
            )
        };
        legend(
            o,
            &sw,
            "bucket ready",
            "the end of the bucket's last wgrad: its all-reduce may start",
        );
    }
}

/// The vertical grid from `grid_top` and the time axis at `axis_y`.
fn time_axis(o: &mut String, xs: &TimeScale, grid_top: f64, axis_y: f64) {
    for t in &xs.ticks {
        let gx = xs.x(*t);
        let _ = write!(
            o,
            "<line x1=\"{gx:.1}\" y1=\"{grid_top}\" x2=\"{gx:.1}\" y2=\"{axis_y}\" stroke=\"#e6e6e6\"/>"
        );
        let _ = write!(
            o,
            "<text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            axis_y + 16.0,
            tick_label(*t, xs.tick_step)
        );
    }
    let _ = write!(
        o,
        "<line x1=\"{}\" y1=\"{axis_y}\" x2=\"{:.1}\" y2=\"{axis_y}\" stroke=\"#444\"/>",
        xs.left,
        xs.right()
    );
    let _ = write!(
        o,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time since the step's start (ms)</text>",
        xs.left + xs.plot_w / 2.0,
        axis_y + 36.0
    );
}

/// One step's block: heading, exposed shading, compute lane, comm lanes.
fn draw_block(
    o: &mut String,
    report: &Report,
    xs: &TimeScale,
    bytes: &HashMap<usize, u64>,
    b: &Block,
) {
    let step = b.step;
    let exposed_s: f64 = b.exposed.iter().map(|(a, z)| z - a).sum();
    let heading = format!(
        "{} step{}{}; exposed communication {}",
        step.mode,
        step.step_s
            .map(|s| format!(" {}", f::time(s)))
            .unwrap_or_default(),
        format_args!(
            " (timed iteration {} of {})",
            step.iteration + 1,
            step.iterations
        ),
        f::time(exposed_s)
    );
    let _ = write!(
        o,
        "<g><title>{}</title><text x=\"{}\" y=\"{:.1}\" font-size=\"13\" font-weight=\"bold\">{}</text></g>",
        esc(&format!(
            "exposed communication here: {}",
            crate::definitions::text("exposed_in_timeline")
        )),
        xs.left,
        b.y + 13.0,
        esc(&heading)
    );
    exposed_shading(o, xs, b);
    if let Some(cy) = b.compute_y {
        lane_label(o, xs, cy, &format!("{} · compute", step.mode));
        for s in step
            .spans
            .iter()
            .filter(|s| s.stream == StreamKind::Compute)
        {
            bar(o, s, xs.x(s.start_s * 1e3), xs.x(s.end_s * 1e3), cy, None);
        }
    }
    for lane in &b.comm {
        match &lane.name {
            None => lane_label(o, xs, lane.y, &format!("{} · comm", step.mode)),
            Some(name) => lane_label(o, xs, lane.y, name),
        }
        draw_comm_lane(o, xs, bytes, lane);
        if step.mode == Mode::Overlapped && lane.name.is_none() {
            ready_marks(o, report, step, lane.y, &|ms| xs.x(ms));
        }
    }
}

/// A lane's name, right-aligned left of the plot.
fn lane_label(o: &mut String, xs: &TimeScale, ly: f64, text: &str) {
    let _ = write!(
        o,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        xs.left - 8.0,
        ly + LANE_H / 2.0 + 4.0,
        esc(text)
    );
}

/// Exposed communication: shaded across the block, underlined below its
/// lanes.
fn exposed_shading(o: &mut String, xs: &TimeScale, b: &Block) {
    let first_comm = b.comm.first().map(|l| l.y);
    let last_comm = b.comm.last().map(|l| l.y);
    let lanes_top = b.compute_y.or(first_comm).unwrap_or(b.y);
    let lanes_bottom = last_comm.or(b.compute_y).unwrap_or(b.y) + LANE_H;
    for &(a, z) in &b.exposed {
        let (x0, x1) = (xs.x(a * 1e3), xs.x(z * 1e3));
        let _ = write!(
            o,
            "<rect x=\"{x0:.2}\" y=\"{lanes_top:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"{EXPOSED_FILL}\" fill-opacity=\"0.16\"><title>{}</title></rect>",
            (x1 - x0).max(0.5),
            lanes_bottom - lanes_top,
            esc(&format!(
                "exposed communication: {} ({}–{} ms): an all-reduce runs and no GEMM does",
                f::time(z - a),
                tick_label(a * 1e3, 0.001),
                tick_label(z * 1e3, 0.001)
            ))
        );
        let _ = write!(
            o,
            "<rect x=\"{x0:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"3\" fill=\"{EXPOSED_FILL}\"/>",
            lanes_bottom + 1.0,
            (x1 - x0).max(0.5)
        );
    }
}

/// The bars of a comm lane with their labels: inside a bar that is wide
/// enough, else on the rows above the lane that [`label_rows`] chose, with
/// a leader line when moved aside.
fn draw_comm_lane(o: &mut String, xs: &TimeScale, bytes: &HashMap<usize, u64>, lane: &Lane) {
    let cy = lane.y;
    for (i, s) in lane.spans.iter().enumerate() {
        let (x0, x1) = (xs.x(s.start_s * 1e3), xs.x(s.end_s * 1e3));
        let size = s.bucket.and_then(|k| bytes.get(&k)).copied();
        bar(o, s, x0, x1, cy, size);
        let label = bar_label(s);
        match lane.label_rows.get(i).copied().flatten() {
            None if x1 - x0 >= text_width(&label, 10.0) + 4.0 => {
                let _ = write!(
                    o,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#fff\" pointer-events=\"none\">{}</text>",
                    (x0 + x1) / 2.0,
                    cy + LANE_H / 2.0 + 3.5,
                    esc(&label)
                );
            }
            None => {}
            Some((row, cx)) => {
                let ty = cy - 3.0 - row as f64 * LABEL_ROW_H;
                let mid = (x0 + x1) / 2.0;
                if (cx - mid).abs() > 1.0 || row > 0 {
                    // A leader from the bar's top to its label.
                    let _ = write!(
                        o,
                        "<line x1=\"{mid:.1}\" y1=\"{cy:.1}\" x2=\"{cx:.1}\" y2=\"{:.1}\" stroke=\"#00564d\" stroke-width=\"0.6\"/>",
                        ty + 2.0
                    );
                }
                let _ = write!(
                    o,
                    "<text x=\"{cx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#00564d\" stroke=\"#fff\" stroke-width=\"2.5\" paint-order=\"stroke\">{}</text>",
                    esc(&label)
                );
            }
        }
    }
}

/// One bar with its hover text.
fn bar(o: &mut String, s: &Span, x0: f64, x1: f64, y: f64, bytes: Option<u64>) {
    let (_, color) = KINDS[kind(s)];
    let dur = s.end_s - s.start_s;
    let mut tip = format!(
        "{}: {} ({}–{} ms)",
        s.name,
        f::time(dur),
        tick_label(s.start_s * 1e3, 0.001),
        tick_label(s.end_s * 1e3, 0.001)
    );
    if let Some(b) = bytes {
        let _ = write!(
            tip,
            "; {} all-reduced, {}",
            f::bytes(b),
            if dur > 0.0 {
                format!(
                    "algbw {}",
                    f::gbps(mfubench_core::metrics::algbw_gbps(b as f64, dur))
                )
            } else {
                "no measurable time".to_string()
            }
        );
    }
    let _ = write!(
        o,
        "<rect x=\"{x0:.2}\" y=\"{y:.1}\" width=\"{:.2}\" height=\"{LANE_H}\" fill=\"{color}\" stroke=\"#fff\" stroke-width=\"0.5\"><title>{}</title></rect>",
        (x1 - x0).max(0.6),
        esc(&tip)
    );
}

/// Bucket-ready marks: a small triangle above the comm lane at the end of
/// each bucket's last wgrad.
fn ready_marks(
    o: &mut String,
    report: &Report,
    step: &StepTimeline,
    comm_y: f64,
    x: &dyn Fn(f64) -> f64,
) {
    let gemm_end: HashMap<&str, f64> = step
        .spans
        .iter()
        .filter(|s| s.stream == StreamKind::Compute)
        .map(|s| (s.name.as_str(), s.end_s))
        .collect();
    for b in &report.plan_buckets {
        let Some(&t) = gemm_end.get(b.ready_after.as_str()) else {
            continue;
        };
        let mx = x(t * 1e3);
        let _ = write!(
            o,
            "<path d=\"M{:.1} {:.1} l7 0 l-3.5 6 z\" fill=\"#000\"><title>{}</title></path><line x1=\"{mx:.1}\" y1=\"{:.1}\" x2=\"{mx:.1}\" y2=\"{:.1}\" stroke=\"#000\" stroke-width=\"0.8\"/>",
            mx - 3.5,
            comm_y - 6.0,
            esc(&format!(
                "bucket b{} ready at {} ms (after {}), {}",
                b.index,
                tick_label(t * 1e3, 0.001),
                b.ready_after,
                f::bytes(b.bytes)
            )),
            comm_y,
            comm_y + LANE_H
        );
    }
}

// ------------------------------------------------------------------- ranks

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

#[cfg(test)]
mod tests {
    use super::*;

    fn span(stream: StreamKind, a: f64, b: f64) -> Span {
        Span {
            name: "x".into(),
            stream,
            op: None,
            bucket: None,
            collective: None,
            start_s: a,
            end_s: b,
        }
    }

    #[test]
    fn exposed_is_comm_minus_compute() {
        use StreamKind::*;
        // Compute 0–4 and 6–8; comm 3–7 and 9–10: exposed 4–6 and 9–10.
        let s = vec![
            span(Compute, 0.0, 4.0),
            span(Compute, 6.0, 8.0),
            span(Comm, 3.0, 5.0),
            span(Comm, 5.0, 7.0),
            span(Comm, 9.0, 10.0),
        ];
        assert_eq!(exposed_intervals(&s), vec![(4.0, 6.0), (9.0, 10.0)]);
        // Serialized: no overlap, all communication exposed.
        let s = vec![span(Compute, 0.0, 4.0), span(Comm, 4.0, 6.0)];
        assert_eq!(exposed_intervals(&s), vec![(4.0, 6.0)]);
        // Fully hidden.
        let s = vec![span(Compute, 0.0, 4.0), span(Comm, 1.0, 2.0)];
        assert!(exposed_intervals(&s).is_empty());
    }

    #[test]
    fn labels_that_do_not_fit_go_on_rows_near_their_bar() {
        let bars = vec![
            (0.0, 100.0, "b0".to_string()),
            (100.0, 101.0, "b1".to_string()),
            (101.0, 102.0, "b2".to_string()),
        ];
        let (rows, n) = label_rows(&bars, 0.0, 1000.0);
        assert_eq!(rows, vec![None, Some((0, 100.5)), Some((1, 101.5))]);
        assert_eq!(n, 2);
        // Six narrow bars side by side: three rows, then labels move aside
        // (never overlapping in a row, never past the right edge).
        let bars: Vec<(f64, f64, String)> = (0..6)
            .map(|i| (500.0 + i as f64, 501.0 + i as f64, format!("b{i}")))
            .collect();
        let (rows, n) = label_rows(&bars, 0.0, 506.0);
        assert_eq!(n, MAX_LABEL_ROWS);
        let w = text_width("b0", 10.0) + 4.0;
        for r in 0..n {
            let mut xs: Vec<f64> = rows
                .iter()
                .flatten()
                .filter(|p| p.0 == r)
                .map(|p| p.1)
                .collect();
            xs.sort_by(f64::total_cmp);
            assert!(xs.windows(2).all(|p| p[1] - p[0] >= w), "row {r}: {xs:?}");
            assert!(xs.iter().all(|x| x + w / 2.0 <= 506.0 + 1e-9));
        }
        assert!(
            rows.iter().all(Option::is_some),
            "every bar labelled: {rows:?}"
        );
    }

    #[test]
    fn collective_bars_are_coloured_by_kind() {
        let mut s = span(StreamKind::Comm, 0.0, 1.0);
        for (name, want) in [
            ("allreduce.b0", "all-reduce"),
            ("L0.allreduce.act.fwd.out_proj", "all-reduce"),
            ("L1.allgather.param.fwd", "all-gather"),
            ("lm_head.reducescatter.grad", "reduce-scatter"),
        ] {
            s.name = name.into();
            assert_eq!(KINDS[kind(&s)].0, want, "{name}");
        }
    }
}

//! The timeline plot: the serialized and overlapped steps of one rank on
//! one time axis, a lane per stream (and per group and kind of
//! collective), exposed communication shaded.

use std::collections::HashMap;
use std::fmt::Write as _;

use mfubench_core::config::Mode;
use mfubench_core::metrics::Collective;
use mfubench_core::result::{Span, StreamKind};

use crate::analysis::{RankTimeline, Report, StepTimeline};
use crate::fmt as f;
use crate::svg::{self, esc, nice_ticks, text_width, tick_label, SvgTarget};

/// Kinds of bars on the timeline, with their colours.
const KINDS: [(&str, &str); 9] = [
    ("forward GEMM", "#4285f4"),
    ("recompute GEMM", "#9c6ade"),
    ("dgrad GEMM", "#f59300"),
    ("wgrad GEMM", "#43a047"),
    ("all-reduce", "#00796b"),
    ("all-gather", "#6d4c41"),
    ("reduce-scatter", "#c2185b"),
    ("all-to-all", "#ef6c00"),
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
        } else if n.contains(".alltoall.") {
            7
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
        8
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
                Collective::AllToAll => 7,
                Collective::SendRecv => 8,
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
        if let Some(a) = s.arrived_s.filter(|a| *a < s.start_s) {
            // This rank's wait for the last rank of the group: an outline
            // before the collective's own bar.
            let xa = xs.x(a * 1e3);
            let _ = write!(
                o,
                "<rect x=\"{xa:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"none\" stroke=\"#888\" stroke-dasharray=\"2 2\"><title>{}</title></rect>",
                cy + 2.0,
                (x0 - xa).max(0.6),
                LANE_H - 4.0,
                esc(&format!(
                    "{}: waiting {} for the last rank of its group",
                    s.name,
                    f::time(s.start_s - a)
                ))
            );
        }
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
            arrived_s: None,
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

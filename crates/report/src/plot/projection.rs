//! The projection plot (`projection.html`): step time against nodes on a
//! log₂ axis, the measured points filled, the projected ones hollow with
//! their 95 % interval as a bar, one colour per figure (T_c, T_a, T_o). A
//! validation's measured point is drawn filled beside its projection.

use std::fmt::Write as _;

use mfubench_core::project::Projection;

use crate::fmt;
use crate::svg::{self, esc, SvgTarget};

/// The figures drawn: (name, legend, colour).
const SERIES: [(&str, &str, &str); 3] = [
    ("step_time_s.compute", "T_c compute", "#7f7f7f"),
    ("step_time_s.comm", "T_a comm", "#e07b00"),
    ("step_time_s.overlapped", "T_o overlapped", "#1f5fbf"),
];

/// The plot's SVG; a point is a `<circle>` with a `<title>`: filled for
/// measured, hollow (`fill="#fff"`) for projected.
pub fn projection_svg(p: &Projection, target: SvgTarget) -> String {
    let (w, h) = (720.0, 380.0);
    let (left, right, top, bottom) = (70.0, 150.0, 20.0, 50.0);
    // (nodes, measured, series index, value, lo, hi)
    let mut marks: Vec<(u64, bool, usize, f64, f64, f64)> = Vec::new();
    for pt in &p.points {
        for (i, (name, _, _)) in SERIES.iter().enumerate() {
            if let Some(f) = pt.figures.iter().find(|f| f.name == *name) {
                marks.push((pt.nodes, pt.measured, i, f.value, f.lo, f.hi));
            }
        }
    }
    if let Some(v) = &p.validation {
        for (i, (name, _, _)) in SERIES.iter().enumerate() {
            if let Some(r) = v.rows.iter().find(|r| r.figure == *name) {
                marks.push((v.nodes, true, i, r.measured, r.measured, r.measured));
            }
        }
    }
    let mut out = String::new();
    svg::open(
        &mut out,
        target,
        w,
        h,
        "step time against nodes: measured and projected",
    );
    let x_lo = marks.iter().map(|m| m.0).min().unwrap_or(1).max(1) as f64;
    let x_hi = (marks.iter().map(|m| m.0).max().unwrap_or(2) as f64).max(x_lo * 2.0);
    let y_hi = marks.iter().map(|m| m.5).fold(0.0, f64::max).max(1e-9) * 1.08;
    let (lx_lo, lx_hi) = (x_lo.log2() - 0.3, x_hi.log2() + 0.3);
    let px = |n: f64| left + (n.log2() - lx_lo) / (lx_hi - lx_lo) * (w - left - right);
    let py = |s: f64| top + (1.0 - s / y_hi) * (h - top - bottom);
    // Axes and ticks.
    let (yt, step) = svg::nice_ticks(0.0, y_hi, 6);
    for t in yt {
        let y = py(t);
        let _ = write!(
            out,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - right,
            left - 6.0,
            y + 4.0,
            esc(&svg::tick_label(t, step)),
        );
    }
    let mut n = 1u64;
    while (n as f64) <= x_hi * 1.01 {
        if (n as f64) >= x_lo / 1.01 {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{n}</text>",
                px(n as f64),
                h - bottom + 18.0
            );
        }
        n *= 2;
    }
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">nodes ({} ranks each)</text><text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">step time (s)</text>",
        (left + w - right) / 2.0,
        h - 10.0,
        p.ranks_per_node,
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0
    );
    for (nodes, measured, i, v, lo, hi) in &marks {
        let (name, legend, colour) = SERIES[*i];
        let x = px(*nodes as f64) + (*i as f64 - 1.0) * 5.0;
        if !measured {
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                py(*lo),
                py(*hi)
            );
        }
        let title = if *measured {
            format!("{legend}, {nodes} nodes, measured: {}", fmt::time(*v))
        } else {
            format!(
                "{legend}, {nodes} nodes, projected: {} [{}, {}]",
                fmt::time(*v),
                fmt::time(*lo),
                fmt::time(*hi)
            )
        };
        let _ = write!(
            out,
            "<circle class=\"{}\" data-figure=\"{name}\" cx=\"{x:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{}\" stroke=\"{colour}\" stroke-width=\"2\"><title>{}</title></circle>",
            if *measured { "measured" } else { "projected" },
            py(*v),
            if *measured { colour } else { "#fff" },
            esc(&title)
        );
    }
    // Legend.
    let lx = w - right + 16.0;
    for (i, (_, legend, colour)) in SERIES.iter().enumerate() {
        let y = top + 14.0 + i as f64 * 18.0;
        let _ = write!(
            out,
            "<circle cx=\"{lx}\" cy=\"{y}\" r=\"5\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{legend}</text>",
            lx + 10.0,
            y + 4.0
        );
    }
    let y = top + 14.0 + 3.0 * 18.0 + 8.0;
    let _ = write!(
        out,
        "<circle cx=\"{lx}\" cy=\"{y}\" r=\"5\" fill=\"#333\"/><text x=\"{}\" y=\"{}\">measured</text><circle cx=\"{lx}\" cy=\"{}\" r=\"5\" fill=\"#fff\" stroke=\"#333\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">projected, 95 %</text>",
        lx + 10.0,
        y + 4.0,
        y + 18.0,
        lx + 10.0,
        y + 22.0
    );
    svg::close(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfubench_core::project::{Figure, ProjectedPoint};

    fn point(nodes: u64, measured: bool, t: f64) -> ProjectedPoint {
        let f = |name: &str, v: f64| Figure {
            name: name.into(),
            value: v,
            lo: if measured { v } else { v * 0.9 },
            hi: if measured { v } else { v * 1.2 },
        };
        ProjectedPoint {
            nodes,
            ranks: nodes * 8,
            measured,
            figures: vec![
                f("step_time_s.compute", t),
                f("step_time_s.comm", t / 2.0),
                f("step_time_s.overlapped", t * 1.1),
                f("mfu.overlapped", 0.4),
            ],
        }
    }

    #[test]
    fn measured_points_are_filled_projected_ones_hollow_with_their_interval() {
        let p = Projection {
            tool_version: "t".into(),
            fit_runs: vec!["a".into()],
            ranks_per_node: 8,
            links: Vec::new(),
            gemm_gap_factor: 1.0,
            gemm_contention: 1.0,
            assumptions: Vec::new(),
            points: vec![
                point(2, true, 1.0),
                point(8, false, 1.5),
                point(64, false, 2.0),
            ],
            validation: None,
        };
        let s = projection_svg(&p, SvgTarget::File);
        assert_eq!(s.matches("class=\"measured\"").count(), 3, "{s}");
        assert_eq!(s.matches("class=\"projected\"").count(), 6);
        // Each projected mark has its interval bar and says it in its title.
        assert_eq!(s.matches("stroke-width=\"2\"/>").count(), 6 + 1);
        assert!(
            s.contains(
                "<title>T_o overlapped, 64 nodes, projected: 2.200 s [1.980 s, 2.640 s]</title>"
            ),
            "{s}"
        );
        assert!(s.contains("<title>T_a comm, 2 nodes, measured: 500.00 ms</title>"));
        // Log₂ axis: 2, 4, 8, … 64 labelled.
        for n in [2, 4, 8, 16, 32, 64] {
            assert!(
                s.contains(&format!("text-anchor=\"middle\">{n}</text>")),
                "{n}"
            );
        }
        let page = crate::project::html(&p);
        assert!(
            page.contains("<svg viewBox") && page.contains("mfubench project: fitted on 1 run(s)")
        );
    }
}

//! The little SVG the plots need, written by hand: the root element, text
//! escaping, round axis ticks and their labels, and text widths for
//! layout. No plotting library: every mark carries our own hover text.

use std::fmt::Write as _;

pub use crate::fmt::xml_escape as esc;

/// Whether the SVG is a file of its own (needs the XML namespace) or
/// inlined in HTML (where the namespace is implied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvgTarget {
    /// timeline.svg, ranks.svg.
    File,
    /// Inside report.html.
    Inline,
}

/// Opens the `<svg>` element (`w` × `h` px, `label` for screen readers)
/// and paints the white background.
pub fn open(out: &mut String, target: SvgTarget, w: f64, h: f64, label: &str) {
    let ns = match target {
        // The one URL of the project's outputs: SVG's namespace name, an
        // identifier that is never fetched.
        SvgTarget::File => " xmlns=\"http://www.w3.org/2000/svg\"",
        SvgTarget::Inline => "",
    };
    let _ = write!(
        out,
        "<svg{ns} viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\" font-family=\"sans-serif\" font-size=\"12\">",
        esc(label)
    );
    let _ = write!(
        out,
        "<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>"
    );
}

/// Closes the `<svg>` element.
pub fn close(out: &mut String) {
    out.push_str("</svg>\n");
}

/// Round tick positions covering `[lo, hi]`: steps of 1, 2 or 5 × 10ᵏ,
/// about `target` of them.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let span = (hi - lo).abs().max(1e-12);
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let mut ticks = Vec::new();
    let mut i = 0;
    loop {
        let t = first + i as f64 * step;
        if t > hi + step * 1e-9 || i > 1000 {
            break;
        }
        ticks.push(t);
        i += 1;
    }
    (ticks, step)
}

/// A tick label with as many decimals as the step needs.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s.trim_start_matches(['-', '0', '.']).is_empty() {
        s[1..].to_string()
    } else {
        s
    }
}

/// Approximate width of a string in the SVG's sans-serif at `size` px.
pub fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.62
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        let (t, step) = nice_ticks(0.0, 12.3, 10);
        assert_eq!(step, 2.0);
        assert_eq!(t, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
        let (t, step) = nice_ticks(0.31, 0.78, 5);
        assert_eq!(step, 0.1);
        assert_eq!(t.len(), 4); // 0.4 … 0.7
        assert_eq!(tick_label(0.4, step), "0.4");
        assert_eq!(tick_label(-0.0, 1.0), "0");
    }
}

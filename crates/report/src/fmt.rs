//! Number formatting shared by the exporters, so that the terminal table,
//! the Markdown file and the comparison print a figure the same way.

/// Seconds with a unit that keeps 3–4 significant digits: `1.234 s`,
/// `12.34 ms`, `567.8 µs`.
pub fn time(s: f64) -> String {
    let a = s.abs();
    if !s.is_finite() {
        format!("{s}")
    } else if a >= 1.0 {
        format!("{s:.3} s")
    } else if a >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else if a < 0.05e-6 {
        // What rounds to 0.0 µs prints without a sign ("-0.0 µs" reads as
        // a measured negative time).
        "0.0 µs".to_string()
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// A fraction as a percentage with one decimal: `41.2 %`.
pub fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// A signed relative change as a percentage: `+3.4 %`.
pub fn delta_pct(x: f64) -> String {
    format!("{:+.1} %", x * 100.0)
}

/// Decimal bytes (GB = 10⁹, matching GB/s): `872.4 MB`.
pub fn bytes(b: u64) -> String {
    let x = b as f64;
    if x >= 1e12 {
        format!("{:.2} TB", x / 1e12)
    } else if x >= 1e9 {
        format!("{:.2} GB", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.1} MB", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} kB", x / 1e3)
    } else {
        format!("{b} B")
    }
}

/// TFLOP/s with one decimal, or three below 10 (CPU backends).
pub fn tflops(x: f64) -> String {
    if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// GB/s with two decimals.
pub fn gbps(x: f64) -> String {
    format!("{x:.2} GB/s")
}

/// A ratio such as a speedup or a slowdown: `1.120×`.
pub fn ratio(x: f64) -> String {
    format!("{x:.3}×")
}

/// Scientific notation with four significant digits: `1.234e14`.
pub fn sci(x: f64) -> String {
    format!("{x:.3e}")
}

/// A number rounded to an integer, with thousands separators: `1,234,567`
/// (never `-0`).
pub fn count(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let out = group_digits(&digits);
    if x < 0.0 && digits.bytes().any(|b| b != b'0') {
        format!("-{out}")
    } else {
        out
    }
}

/// An exact integer with thousands separators: `6,979,321,856` (the one
/// digit-grouping formatter of the project; `count` for floats).
pub fn group(n: u64) -> String {
    group_digits(&n.to_string())
}

fn group_digits(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A value with its 95 % interval: `value [lo, hi]` (the value alone when
/// there is no interval).
pub fn with_ci(v: f64, ci: Option<[f64; 2]>, f: impl Fn(f64) -> String) -> String {
    match ci {
        Some([lo, hi]) => format!("{} [{}, {}]", f(v), f(lo), f(hi)),
        None => f(v),
    }
}

/// `n/a` for a missing figure.
pub fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "n/a".to_string())
}

/// A float for machine-readable outputs: shortest round-trip form, empty
/// for a missing value.
pub fn raw(v: Option<f64>) -> String {
    v.map(num).unwrap_or_default()
}

/// A float for machine-readable outputs: shortest round-trip form, and
/// `0` for negative zero (spreadsheets and diff tools show `-0` as a
/// different value).
pub fn num(x: f64) -> String {
    if x == 0.0 {
        "0".to_string()
    } else {
        format!("{x}")
    }
}

/// Escapes text for XML, HTML and SVG (text and attribute values); drops
/// control characters (C0 and C1) but line breaks and tabs.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => {}
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(time(1.5), "1.500 s");
        assert_eq!(time(0.01234), "12.34 ms");
        assert_eq!(time(0.0000456), "45.6 µs");
        assert_eq!(pct(0.4123), "41.2 %");
        assert_eq!(bytes(872_400_000), "872.4 MB");
        assert_eq!(bytes(12), "12 B");
        assert_eq!(count(1234567.0), "1,234,567");
        assert_eq!(count(12.0), "12");
        assert_eq!(delta_pct(-0.051), "-5.1 %");
        assert_eq!(count(-0.4), "0");
        assert_eq!(count(-1234.0), "-1,234");
        assert_eq!(group(6_979_321_856), "6,979,321,856");
        assert_eq!(group(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(group(0), "0");
        assert_eq!(num(-0.0), "0");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(raw(Some(-0.0)), "0");
    }
}

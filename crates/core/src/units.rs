//! How people write fractions and sizes, on command lines and in configs:
//! one parser each, used by every flag of the launcher and the worker that
//! takes one (durations: [`crate::time::parse_duration`]).
//!
//! The parsers return `Result<_, String>` so that they serve directly as
//! clap value parsers: clap then prefixes the message with the flag, e.g.
//! `invalid value '1.5' for '--min-device-fraction <FRACTION>': …`.

/// Whether `x` is a fraction: finite and between 0 and 1 (both included).
/// The rule of every fraction setting (`--min-device-fraction`,
/// `accept.min_link_fraction`, `--min-mfu`, …).
pub fn is_fraction(x: f64) -> bool {
    x.is_finite() && (0.0..=1.0).contains(&x)
}

/// A share as written: a number (`0.9`) or a percentage (`90%`, `90 %`),
/// finite and not negative; `None` for anything else. A percentage is
/// converted in decimal (`70%` is exactly the `f64` of `0.7`).
fn share(s: &str) -> Option<f64> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(n) => {
            let n = n.trim();
            let x: f64 = n.parse().ok().filter(|x: &f64| x.is_finite())?;
            format!("{n}e-2")
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .unwrap_or(x / 100.0)
        }
        None => t.parse().ok().filter(|x: &f64| x.is_finite())?,
    };
    // -0 reads as 0.
    (v >= 0.0).then_some(v + 0.0)
}

/// Parses a fraction: `0.9` or `90%` → 0.9, between 0 and 1 (see
/// [`is_fraction`]). The error says what to give.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    match share(s) {
        Some(v) if is_fraction(v) => Ok(v),
        Some(_) => Err(format!(
            "{s:?} is out of range: give a fraction between 0 and 1, or a percentage up to 100% (e.g. 0.9 or 90%)"
        )),
        None => Err(format!(
            "{s:?} is not a fraction: give a number between 0 and 1, or a percentage (e.g. 0.9 or 90%)"
        )),
    }
}

/// Parses a relative amount that may exceed 1, such as a tolerance:
/// `0.05` or `5%` → 0.05, finite and not negative.
pub fn parse_ratio(s: &str) -> Result<f64, String> {
    share(s).ok_or_else(|| format!("{s:?} is not a non-negative fraction: give e.g. 0.05 or 5%"))
}

/// Parses a percentage whose `%` may be left out: `5%` or `5` → 0.05,
/// finite and not negative.
pub fn parse_percentage(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let with_sign = if t.ends_with('%') {
        t.to_string()
    } else {
        format!("{t}%")
    };
    share(&with_sign)
        .ok_or_else(|| format!("{s:?} is not a non-negative percentage (give e.g. 5%)"))
}

/// Parses a byte size: a number with an optional K, M or G suffix (powers
/// of 1024, as nccl-tests' `-b 8 -e 1G`), e.g. `8`, `64K`, `1G`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            format!(
                "\"{s}\" is not a size: give bytes, optionally with K, M or G (e.g. 8, 64K, 1G)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions() {
        assert_eq!(parse_fraction("0.9"), Ok(0.9));
        assert_eq!(parse_fraction("90%"), Ok(0.9));
        assert_eq!(parse_fraction(" 40 % "), Ok(0.4));
        // In decimal: 70 × 0.01 would be 0.7000000000000001.
        assert_eq!(parse_fraction("70%"), Ok(0.7));
        assert_eq!(parse_fraction("33.3%"), Ok(0.333));
        assert_eq!(parse_fraction("1"), Ok(1.0));
        assert_eq!(parse_fraction("100%"), Ok(1.0));
        assert_eq!(parse_fraction("0"), Ok(0.0));
        assert_eq!(parse_fraction("-0").map(|v| v.to_string()), Ok("0".into()));
        assert_eq!(parse_fraction("1e-1"), Ok(0.1));
        assert_eq!(parse_fraction("1e1%"), Ok(0.1));
        for bad in ["1.5", "150%", "-0.1", "-5%"] {
            let e = parse_fraction(bad).unwrap_err();
            assert!(
                e.contains("out of range") || e.contains("not a fraction"),
                "{bad}: {e}"
            );
            assert!(e.contains("90%"), "{e}");
        }
        for bad in [
            "abc", "", "%", "0.9x", "nan", "inf", "inf%", "NaN%", "1e999",
        ] {
            let e = parse_fraction(bad).unwrap_err();
            assert!(e.contains("is not a fraction"), "{bad}: {e}");
        }
        assert!(parse_fraction("1.5").unwrap_err().contains("out of range"));
        assert!(is_fraction(0.0) && is_fraction(1.0));
        assert!(!is_fraction(1.01) && !is_fraction(-0.01) && !is_fraction(f64::NAN));
    }

    #[test]
    fn ratios_and_percentages() {
        assert_eq!(parse_ratio("0.05"), Ok(0.05));
        assert_eq!(parse_ratio("5%"), Ok(0.05));
        assert_eq!(parse_ratio("10"), Ok(10.0));
        assert!(parse_ratio("-1").is_err() && parse_ratio("x").is_err());
        assert_eq!(parse_percentage("5%"), Ok(0.05));
        assert_eq!(parse_percentage("5"), Ok(0.05));
        assert_eq!(parse_percentage(" 3 "), Ok(0.03));
        assert_eq!(parse_percentage("150"), Ok(1.5));
        for bad in ["x%", "x", "-5", ""] {
            assert!(parse_percentage(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("8"), Ok(8));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("2m"), Ok(2 << 20));
        assert!(parse_bytes("x").is_err() && parse_bytes("").is_err());
        assert!(parse_bytes("99999999999G").is_err());
    }
}

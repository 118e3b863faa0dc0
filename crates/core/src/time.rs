//! Calendar arithmetic for timestamps in run ids and run.json (UTC). Pure
//! functions of seconds since the Unix epoch; reading the clock is the
//! caller's job. Also durations as people write them (`90s`, `10m`, `1h`).

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn parts(secs: i64) -> (i64, u32, u32, i64, i64, i64) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `YYYYmmdd-HHMMSS` (UTC), the stem of default run ids.
pub fn utc_stamp(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = parts(secs);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// RFC 3339 UTC, e.g. `2026-11-28T13:45:01Z`.
pub fn rfc3339(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = parts(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A duration as people write it: a bare number of seconds (`90`, `0.5`)
/// or a humantime duration (`90s`, `10m`, `1h30m`, `250ms`). Zero,
/// negative and non-finite values are refused; the error says what to give.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let d = match t.parse::<f64>() {
        Ok(secs) => std::time::Duration::try_from_secs_f64(secs).map_err(|_| {
            format!("{text:?} must be a positive, finite number of seconds (or e.g. 90s, 10m, 1h)")
        })?,
        Err(_) => humantime::parse_duration(t).map_err(|e| {
            format!("{text:?} is not a duration ({e}): give seconds, or e.g. 90s, 10m, 1h")
        })?,
    };
    if d.is_zero() {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs_f64());
        assert_eq!(secs("90"), Ok(90.0));
        assert_eq!(secs("0.5"), Ok(0.5));
        assert_eq!(secs("90s"), Ok(90.0));
        assert_eq!(secs("10m"), Ok(600.0));
        assert_eq!(secs("1h"), Ok(3600.0));
        assert_eq!(secs("1h30m"), Ok(5400.0));
        assert_eq!(secs("250ms"), Ok(0.25));
        for bad in ["0", "0s", "-1", "inf", "NaN", "10x", "", "m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // 2026-11-28 13:45:01 UTC.
        let t = 20_785 * 86_400 + 13 * 3600 + 45 * 60 + 1;
        assert_eq!(utc_stamp(t), "20261128-134501");
        assert_eq!(rfc3339(t), "2026-11-28T13:45:01Z");
    }
}

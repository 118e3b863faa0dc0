//! The ranks' clocks on one time line: each rank's offset from rank 0's
//! clock, estimated from ping-pong exchanges (the worker makes them over
//! MPI at start; this module is the arithmetic).
//!
//! A collective's own time runs from the last rank's arrival to its
//! completion ([`crate::result::Span::arrived_s`]); telling which rank
//! arrived last needs arrival times of different ranks, taken on different
//! clocks, on one time line. Ranks on one host read the same monotonic
//! clock (offset 0 exactly); a rank on another host asks rank 0 for its
//! clock several times and keeps the exchange with the shortest round trip
//! (Cristian's algorithm): rank 0 read its clock somewhere between the send
//! and the receipt, so the offset is known within half that round trip.
//! Clocks drift apart by a few µs a second: the offset is measured before
//! the timed steps and again at every save, and a time between two
//! measurements takes the offset interpolated between them
//! ([`offset_at`]); the last offset, its uncertainty and the drift are
//! recorded.

use serde::{Deserialize, Serialize};

/// One exchange seen from the asking rank: it read its own clock at
/// `sent_s`, rank 0 read its clock at `reply_s` when the request came, and
/// the asking rank read its own clock again at `received_s` when the reply
/// came (seconds; each on its own clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ping {
    /// The asking rank's clock when it sent the request.
    pub sent_s: f64,
    /// Rank 0's clock when it answered.
    pub reply_s: f64,
    /// The asking rank's clock when the answer came.
    pub received_s: f64,
}

/// A rank's clock against rank 0's, as run.json records it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockOffset {
    /// Add to this rank's clock to get rank 0's, seconds.
    pub offset_s: f64,
    /// The true offset lies within `offset_s ± uncertainty_s` (half the
    /// round trip of the exchange used; 0 on rank 0's host, whose ranks read
    /// the same clock), seconds.
    pub uncertainty_s: f64,
    /// Exchanges made (0 on rank 0's host).
    pub exchanges: u32,
    /// How fast the offset changed between the first and the last
    /// measurement, seconds per second (absent with one measurement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<f64>,
}

impl ClockOffset {
    /// A rank reading rank 0's own clock (rank 0, and ranks on its host).
    pub const SAME_CLOCK: ClockOffset = ClockOffset {
        offset_s: 0.0,
        uncertainty_s: 0.0,
        exchanges: 0,
        drift: None,
    };
}

/// The offset at `local_s` (this rank's clock) from two measurements
/// `(local_s, offset_s)`: interpolated between them, extrapolated beyond;
/// the first one's alone without a second or when both were taken at the
/// same time.
pub fn offset_at(first: (f64, f64), last: Option<(f64, f64)>, local_s: f64) -> f64 {
    match last {
        Some((t1, o1)) if t1 != first.0 => {
            let (t0, o0) = first;
            o0 + (o1 - o0) * (local_s - t0) / (t1 - t0)
        }
        _ => first.1,
    }
}

/// The offset from the exchange with the shortest round trip: rank 0's
/// reading minus the midpoint of the asking rank's send and receipt, within
/// half the round trip. None without an exchange whose times are finite
/// and in order.
pub fn estimate(pings: &[Ping]) -> Option<ClockOffset> {
    let best = pings
        .iter()
        .filter(|p| {
            p.sent_s.is_finite()
                && p.reply_s.is_finite()
                && p.received_s.is_finite()
                && p.received_s >= p.sent_s
        })
        .min_by(|a, b| (a.received_s - a.sent_s).total_cmp(&(b.received_s - b.sent_s)))?;
    Some(ClockOffset {
        offset_s: best.reply_s - (best.sent_s + best.received_s) / 2.0,
        uncertainty_s: (best.received_s - best.sent_s) / 2.0,
        exchanges: pings.len() as u32,
        drift: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(sent_s: f64, reply_s: f64, received_s: f64) -> Ping {
        Ping {
            sent_s,
            reply_s,
            received_s,
        }
    }

    #[test]
    fn the_shortest_round_trip_gives_the_offset() {
        // Rank 0's clock is 100 s ahead. A 10 µs round trip answered at its
        // midpoint, a 2 ms one answered late in it (its midpoint guess would
        // be 0.9 ms off), and a 4 µs one answered 1 µs after its midpoint.
        let p = [
            ping(1.0, 101.000_005, 1.000_010),
            ping(2.0, 102.001_9, 2.002),
            ping(3.0, 103.000_003, 3.000_004),
        ];
        let o = estimate(&p).expect("an offset");
        assert!((o.offset_s - 100.000_001).abs() < 1e-9, "{o:?}");
        assert!((o.uncertainty_s - 0.000_002).abs() < 1e-12, "{o:?}");
        assert_eq!(o.exchanges, 3);
        // The true offset (100 s) is within the stated uncertainty.
        assert!((o.offset_s - 100.0).abs() <= o.uncertainty_s + 1e-12);
    }

    #[test]
    fn a_clock_behind_gives_a_negative_offset() {
        let o = estimate(&[ping(50.0, 20.000_5, 50.001)]).expect("an offset");
        assert!((o.offset_s - (-30.0)).abs() < 1e-9, "{o:?}");
        assert!((o.uncertainty_s - 0.000_5).abs() < 1e-12);
    }

    #[test]
    fn offsets_between_two_measurements_are_interpolated() {
        // 10 µs at t = 100 s, 30 µs at t = 200 s: 0.2 µs a second.
        let (a, b) = ((100.0, 10e-6), Some((200.0, 30e-6)));
        assert!((offset_at(a, b, 150.0) - 20e-6).abs() < 1e-15);
        assert!((offset_at(a, b, 100.0) - 10e-6).abs() < 1e-15);
        // Beyond the last measurement: extrapolated.
        assert!((offset_at(a, b, 250.0) - 40e-6).abs() < 1e-15);
        // One measurement, or two at the same time: the first.
        assert_eq!(offset_at(a, None, 500.0), 10e-6);
        assert_eq!(offset_at(a, Some((100.0, 99.0)), 500.0), 10e-6);
    }

    #[test]
    fn no_usable_exchange_gives_none() {
        assert_eq!(estimate(&[]), None);
        assert_eq!(estimate(&[ping(2.0, 5.0, 1.0)]), None);
        assert_eq!(estimate(&[ping(f64::NAN, 5.0, 1.0)]), None);
    }
}

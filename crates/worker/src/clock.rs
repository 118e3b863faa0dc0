//! This rank's clock on rank 0's time line ([`mfubench_core::clock`] has
//! the arithmetic and why): collectives are timed from the last rank's
//! arrival, which compares arrival times taken by different ranks.
//!
//! Every process of a host reads the same monotonic clock
//! (`CLOCK_MONOTONIC`), so ranks on rank 0's host need no exchange; every
//! other rank asks rank 0 for its clock [`EXCHANGES`] times (rank 0 answers
//! the ranks one after another) and keeps the shortest round trip. Done
//! when a benchmark opens, before its timed steps, and again at every save
//! (clocks drift: a time between two measurements gets the offset
//! interpolated between them), each time under the watchdog.

use std::time::{Duration, Instant};

use mpi::traits::*;

use mfubench_core::clock::{self, ClockOffset, Ping};

use crate::rank::Rank;

/// Exchanges a rank off rank 0's host makes with rank 0.
pub const EXCHANGES: usize = 16;

/// The least time the alignment at open may take before the watchdog ends
/// the job: it is many exchanges (rank 0 answers every rank in turn), not
/// one op, so `run.op_timeout_s` alone (20 µs in a watchdog test) is no
/// bound for it.
pub const ALIGN_DEADLINE_FLOOR: Duration = Duration::from_secs(60);

/// This rank's clock, read on rank 0's time line.
#[derive(Debug, Clone, Copy)]
pub struct AlignedClock {
    /// An instant, and the monotonic clock's reading at it (seconds).
    origin: (Instant, f64),
    /// The first measurement: this rank's clock when it was taken, and
    /// the offset.
    first: (f64, ClockOffset),
    /// The latest later measurement, if any.
    last: Option<(f64, ClockOffset)>,
}

impl AlignedClock {
    /// `t` on this rank's monotonic clock, seconds.
    fn local(&self, t: Instant) -> f64 {
        let (i0, s0) = self.origin;
        let since = if t >= i0 {
            (t - i0).as_secs_f64()
        } else {
            -(i0 - t).as_secs_f64()
        };
        s0 + since
    }

    /// The instant `t` on rank 0's time line, seconds (the offset
    /// interpolated between the measurements).
    pub fn at(&self, t: Instant) -> f64 {
        let local = self.local(t);
        let first = (self.first.0, self.first.1.offset_s);
        let last = self.last.map(|(l, o)| (l, o.offset_s));
        local + clock::offset_at(first, last, local)
    }

    /// Measures the offset again (collective, as [`align`]).
    pub fn remeasure(&mut self, rank: &Rank) -> Result<(), String> {
        self.last = Some(measure(rank)?);
        Ok(())
    }

    /// What run.json records: the latest offset, the larger uncertainty of
    /// the two measurements used, every exchange, and the drift between
    /// the first and the latest measurement.
    pub fn record(&self) -> ClockOffset {
        let (t0, first) = self.first;
        match self.last {
            None => first,
            Some((t1, last)) => ClockOffset {
                offset_s: last.offset_s,
                uncertainty_s: first.uncertainty_s.max(last.uncertainty_s),
                exchanges: first.exchanges + last.exchanges,
                drift: (t1 > t0).then(|| (last.offset_s - first.offset_s) / (t1 - t0)),
            },
        }
    }
}

/// The host's monotonic clock, seconds (every process of the host reads
/// the same one).
fn monotonic_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a pointer to a live
    // local; CLOCK_MONOTONIC is always available on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// A host name as a fixed-size buffer (for a broadcast).
fn name_buf(host: &str) -> [u8; 256] {
    let mut b = [0u8; 256];
    let n = host.len().min(b.len());
    b[..n].copy_from_slice(&host.as_bytes()[..n]);
    b
}

/// Collective over the world: every rank's clock against rank 0's. Err
/// when this rank's clock could not be read.
pub fn align(rank: &Rank) -> Result<AlignedClock, String> {
    let origin = (Instant::now(), monotonic_s());
    if !origin.1.is_finite() {
        return Err("CLOCK_MONOTONIC could not be read".into());
    }
    let first = measure(rank)?;
    Ok(AlignedClock {
        origin,
        first,
        last: None,
    })
}

/// Collective over the world: this rank's clock when it measured, and its
/// offset from rank 0's.
fn measure(rank: &Rank) -> Result<(f64, ClockOffset), String> {
    let world = &rank.world;
    let root = world.process_at_rank(0);
    let when = monotonic_s();
    let mut host0 = name_buf(&rank.host);
    root.broadcast_into(&mut host0[..]);
    let same_host = host0 == name_buf(&rank.host);
    let asks = i32::from(!same_host);
    let offset = if rank.is_root() {
        let mut asking = vec![0i32; rank.size as usize];
        root.gather_into_root(&asks, &mut asking[..]);
        for (r, _) in asking.iter().enumerate().filter(|(_, a)| **a == 1) {
            let peer = world.process_at_rank(r as i32);
            for _ in 0..EXCHANGES {
                let (_sent, _) = peer.receive::<f64>();
                peer.send(&monotonic_s());
            }
        }
        ClockOffset::SAME_CLOCK
    } else {
        root.gather_into(&asks);
        if same_host {
            ClockOffset::SAME_CLOCK
        } else {
            let mut pings = Vec::with_capacity(EXCHANGES);
            for _ in 0..EXCHANGES {
                let sent_s = monotonic_s();
                root.send(&sent_s);
                let (reply_s, _) = root.receive::<f64>();
                pings.push(Ping {
                    sent_s,
                    reply_s,
                    received_s: monotonic_s(),
                });
            }
            clock::estimate(&pings)
                .ok_or_else(|| "the clock offset could not be estimated".to_string())?
        }
    };
    Ok((when, offset))
}

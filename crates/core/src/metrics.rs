//! The metric formulas of docs/metrics.md, as pure functions. Symbols: `T_c`
//! compute-mode step, `T_a` comm-mode step, `T_s` serialized step, `T_o`
//! overlapped step, all cluster step times (max over ranks, median over
//! iterations) in seconds.

use serde::{Deserialize, Serialize};

/// Achieved TFLOP/s per device: FLOPs per step / step time / 10¹².
pub fn tflops(flops: f64, step_time_s: f64) -> f64 {
    flops / step_time_s / 1e12
}

/// Model FLOPs utilisation: F / (T · peak).
pub fn mfu(flops: f64, step_time_s: f64, peak_tflops: f64) -> f64 {
    flops / (step_time_s * peak_tflops * 1e12)
}

/// All-reduce algorithm bandwidth in GB/s: bytes / t.
pub fn algbw_gbps(bytes: f64, time_s: f64) -> f64 {
    bytes / time_s / 1e9
}

/// All-reduce bus bandwidth (nccl-tests): algbw · 2(n−1)/n.
pub fn busbw_gbps(algbw_gbps: f64, ranks: u64) -> f64 {
    algbw_gbps * busbw_factor(Collective::AllReduce, ranks)
}

/// Bus-bandwidth factor of a collective over `n` ranks (nccl-tests'
/// PERFORMANCE.md): busbw = algbw × factor. All-reduce 2(n−1)/n;
/// reduce-scatter and all-gather (n−1)/n; all-to-all (n−1)/n, the share
/// of the buffer that leaves the rank when it is split evenly;
/// point-to-point (send/recv) 1.
pub fn busbw_factor(kind: Collective, n: u64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    match kind {
        Collective::AllReduce => 2.0 * (n - 1.0) / n,
        Collective::ReduceScatter | Collective::AllGather | Collective::AllToAll => (n - 1.0) / n,
        Collective::SendRecv => 1.0,
    }
}

/// The collectives mfubench times: the gradient all-reduce of DDP, the
/// all-gather and reduce-scatter of sharded data parallelism, the
/// all-to-all of expert parallelism, and the point-to-point exchange of
/// the acceptance suite's link stage. One enum
/// for the plan, the results and the acceptance suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collective {
    /// Sum all-reduce.
    AllReduce,
    /// Reduce-scatter.
    ReduceScatter,
    /// All-gather.
    AllGather,
    /// Point-to-point exchange.
    SendRecv,
    /// All-to-all with per-peer counts (MPI_Alltoallv; NCCL send/recv in
    /// one group): mixture-of-experts token dispatch and combine.
    AllToAll,
}

impl Collective {
    /// The name in results and tables, as serialised (`all_reduce`).
    pub fn name(self) -> &'static str {
        match self {
            Collective::AllReduce => "all_reduce",
            Collective::ReduceScatter => "reduce_scatter",
            Collective::AllGather => "all_gather",
            Collective::SendRecv => "send_recv",
            Collective::AllToAll => "all_to_all",
        }
    }
}

/// Seconds during which at least one of `busy` runs and none of `cover`
/// does: the measure of ∪busy ∖ ∪cover. With `busy` the spans of one kind
/// of collective in a step and `cover` the step's GEMMs, it is the time
/// that kind of communication is exposed: the compute stream has nothing
/// running then (it waits for it, or the step waits at its end).
pub fn uncovered_s(busy: &[(f64, f64)], cover: &[(f64, f64)]) -> f64 {
    fn union(v: &[(f64, f64)]) -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = v.iter().copied().filter(|(a, b)| b > a).collect();
        v.sort_by(|x, y| x.0.total_cmp(&y.0));
        let mut out: Vec<(f64, f64)> = Vec::new();
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        out
    }
    let cover = union(cover);
    union(busy)
        .iter()
        .map(|&(a, b)| {
            let covered: f64 = cover
                .iter()
                .map(|&(c, d)| (b.min(d) - a.max(c)).max(0.0))
                .sum();
            (b - a) - covered
        })
        .sum()
}

/// One round's T_o − T_c split by cause: `(gemm_slowdown, exposed_collective,
/// waiting_for_peers, sync_skew)`, where gemm_slowdown = G_o − G_c (GEMM
/// busy time of the overlapped step's critical rank minus the compute
/// step's), the exposed collective time `e_o` (collectives running, from
/// their last arrival, while no GEMM does, on the overlapped step's critical
/// rank), the exposed waiting `w_o` (that rank waiting at a collective for a
/// peer while nothing else runs) and sync_skew the rest (barrier exit skew,
/// launch gaps, waits between ops). The four add up to T_o − T_c exactly.
pub fn exposed_breakdown(
    t_o: f64,
    t_c: f64,
    g_o: f64,
    g_c: f64,
    e_o: f64,
    w_o: f64,
) -> (f64, f64, f64, f64) {
    let gemm_slowdown = g_o - g_c;
    (
        gemm_slowdown,
        e_o,
        w_o,
        (t_o - t_c) - gemm_slowdown - e_o - w_o,
    )
}

/// Hidden fraction of communication: 1 − e / T_a, the share of what the
/// collectives take alone (T_a) that overlap kept off the critical path
/// (e: exposed collective time of the overlapped step). NaN when T_a = 0.
pub fn collective_hidden_fraction(exposed_collective_s: f64, t_a: f64) -> f64 {
    if t_a > 0.0 {
        1.0 - exposed_collective_s / t_a
    } else {
        f64::NAN
    }
}

/// Exposed communication: T_o − T_c (seconds of the overlapped step not
/// explained by compute).
pub fn exposed_comm_s(t_o: f64, t_c: f64) -> f64 {
    t_o - t_c
}

/// Exposed communication as a fraction of the overlapped step: (T_o − T_c) / T_o.
pub fn exposed_comm_fraction(t_o: f64, t_c: f64) -> f64 {
    (t_o - t_c) / t_o
}

/// Serialized overhead: (T_s − T_c) / T_s.
pub fn serialized_overhead(t_s: f64, t_c: f64) -> f64 {
    (t_s - t_c) / t_s
}

/// Hidden fraction of the communication: (T_c + T_a − T_o) / T_a; 1 means all
/// of it hidden, 0 none, below 0 that overlapping made things worse.
pub fn hidden_fraction(t_c: f64, t_a: f64, t_o: f64) -> f64 {
    (t_c + t_a - t_o) / t_a
}

/// Overlap speedup: T_s / T_o.
pub fn overlap_speedup(t_s: f64, t_o: f64) -> f64 {
    t_s / t_o
}

/// The part of the last bucket's all-reduce that no schedule can hide: it
/// cannot start before its last gradient exists, so only the compute that
/// follows that gradient can cover it: max(0, a_last − c_after).
pub fn exposed_tail_s(last_allreduce_s: f64, compute_after_ready_s: f64) -> f64 {
    (last_allreduce_s - compute_after_ready_s).max(0.0)
}

/// The shortest overlapped step DDP can reach: the compute plus the
/// exposed tail of the last bucket, and never less than the all-reduces
/// alone: max(T_c + tail, T_a). (max(T_c, T_a) is not reachable: forward
/// and the last bucket cannot be hidden.)
pub fn achievable_overlapped_s(t_c: f64, t_a: f64, tail_s: f64) -> f64 {
    (t_c + tail_s).max(t_a)
}

/// Efficiency against the achievable overlap:
/// (T_s − T_o) / (T_s − T_ideal), T_ideal from [`achievable_overlapped_s`].
/// 1 = overlap as good as DDP can get, 0 = no gain. `None` when the
/// achievable gain is not positive (nothing to hide).
pub fn overlap_efficiency(t_s: f64, t_o: f64, t_ideal: f64) -> Option<f64> {
    let ideal_gain = t_s - t_ideal;
    (ideal_gain > 0.0).then(|| (t_s - t_o) / ideal_gain)
}

/// Contention: time of the same ops when overlapped divided by their time
/// when run alone (GEMMs: overlapped / compute mode; all-reduces:
/// overlapped / comm mode). 1 = no slowdown.
pub fn contention(time_overlapped_s: f64, time_alone_s: f64) -> f64 {
    time_overlapped_s / time_alone_s
}

/// Relative deviation of a value from a reference: (value − reference) / reference.
pub fn relative_deviation(value: f64, reference: f64) -> f64 {
    (value - reference) / reference
}

/// Indices of the values whose relative deviation from the median exceeds
/// `tolerance` in the bad direction (`higher_is_worse` for times, not for
/// rates). Non-finite values are always flagged.
pub fn outliers(values: &[f64], tolerance: f64, higher_is_worse: bool) -> Vec<usize> {
    let Some(med) = crate::stats::median(values) else {
        return Vec::new();
    };
    values
        .iter()
        .enumerate()
        .filter(|(_, &v)| {
            if !v.is_finite() {
                return true;
            }
            let dev = relative_deviation(v, med);
            if higher_is_worse {
                dev > tolerance
            } else {
                -dev > tolerance
            }
        })
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn mfu_and_tflops() {
        // 989 TFLOP in 2 s on a 989 TFLOP/s device: 494.5 TFLOP/s, 50 %.
        assert!(close(tflops(989e12, 2.0), 494.5));
        assert!(close(mfu(989e12, 2.0, 989.0), 0.5));
    }

    #[test]
    fn bandwidths_follow_nccl_tests() {
        // 1 GB in 0.1 s = 10 GB/s algbw; busbw on 8 ranks = 10 · 14/8 = 17.5.
        assert!(close(algbw_gbps(1e9, 0.1), 10.0));
        assert!(close(busbw_gbps(10.0, 8), 17.5));
        assert!(close(busbw_gbps(10.0, 2), 10.0));
        assert!(close(busbw_gbps(10.0, 1), 0.0));
        assert_eq!(busbw_gbps(10.0, 0), 0.0);
    }

    #[test]
    fn uncovered_known_answers() {
        // Busy 0–4 and 3–6 (union 0–6), GEMMs 1–2 and 5–10: exposed 0–1,
        // 2–5: 4 s.
        assert!(close(
            uncovered_s(&[(0.0, 4.0), (3.0, 6.0)], &[(1.0, 2.0), (5.0, 10.0)]),
            4.0
        ));
        assert_eq!(uncovered_s(&[(1.0, 2.0)], &[(0.0, 3.0)]), 0.0);
        assert!(close(uncovered_s(&[(1.0, 2.0)], &[]), 1.0));
        assert_eq!(uncovered_s(&[], &[(0.0, 1.0)]), 0.0);
        // Overlapping GEMM spans are not subtracted twice.
        assert!(close(
            uncovered_s(&[(0.0, 4.0)], &[(1.0, 3.0), (2.0, 3.0)]),
            2.0
        ));
    }

    /// nccl-tests' factors: all-reduce 2(n−1)/n, all-gather and
    /// reduce-scatter (n−1)/n.
    #[test]
    fn busbw_factor_per_kind() {
        for (n, ar, ag) in [(2, 1.0, 0.5), (3, 4.0 / 3.0, 2.0 / 3.0), (4, 1.5, 0.75)] {
            assert!(close(busbw_factor(Collective::AllReduce, n), ar));
            assert!(close(busbw_factor(Collective::AllGather, n), ag));
            assert!(close(busbw_factor(Collective::ReduceScatter, n), ag));
            assert!(close(busbw_factor(Collective::SendRecv, n), 1.0));
        }
    }

    #[test]
    fn overlap_metrics_known_answers() {
        // T_c = 10, T_a = 4, T_s = 14, T_o = 11: 1 s exposed of 11, 3 of 4
        // hidden, speedup 14/11, efficiency (14 − 11)/(14 − 10) = 0.75.
        let (tc, ta, ts, to) = (10.0, 4.0, 14.0, 11.0);
        assert!(close(exposed_comm_s(to, tc), 1.0));
        assert!(close(exposed_comm_fraction(to, tc), 1.0 / 11.0));
        assert!(close(serialized_overhead(ts, tc), 4.0 / 14.0));
        assert!(close(hidden_fraction(tc, ta, to), 0.75));
        assert!(close(overlap_speedup(ts, to), 14.0 / 11.0));
        // Last bucket 0.8 s, 0.3 s of compute after it: 0.5 s exposed tail;
        // ideal 10.5, efficiency (14 − 11)/(14 − 10.5) = 6/7.
        let tail = exposed_tail_s(0.8, 0.3);
        assert!(close(tail, 0.5));
        assert_eq!(exposed_tail_s(0.2, 0.3), 0.0);
        let ideal = achievable_overlapped_s(tc, ta, tail);
        assert!(close(ideal, 10.5));
        assert!(close(achievable_overlapped_s(2.0, ta, tail), 4.0));
        assert!(close(overlap_efficiency(ts, to, ideal).unwrap(), 6.0 / 7.0));
        // Perfect overlap: T_o = the achievable step.
        assert!(close(hidden_fraction(tc, ta, 10.0), 1.0));
        assert!(close(overlap_efficiency(ts, 10.5, ideal).unwrap(), 1.0));
        // No overlap at all: T_o = T_s.
        assert!(close(hidden_fraction(tc, ta, 14.0), 0.0));
        assert!(close(overlap_efficiency(ts, 14.0, ideal).unwrap(), 0.0));
        assert_eq!(overlap_efficiency(10.0, 10.0, 10.0), None);
    }

    #[test]
    fn contention_ratio() {
        assert!(close(contention(1.2, 1.0), 1.2));
    }

    #[test]
    fn straggler_test() {
        let steps = [1.00, 1.01, 0.99, 1.081, 1.00];
        assert_eq!(outliers(&steps, 0.05, true), vec![3]);
        assert_eq!(outliers(&steps, 0.10, true), Vec::<usize>::new());
        let rates = [100.0, 101.0, 90.0, 99.0];
        assert_eq!(outliers(&rates, 0.05, false), vec![2]);
        assert_eq!(outliers(&[1.0, f64::NAN, 1.0], 0.05, true), vec![1]);
        assert!(outliers(&[], 0.05, true).is_empty());
    }
}

//! The definition of every figure the report prints, written once.
//!
//! report.html shows these texts as the tooltip of each number and lists
//! them at the end (a printed page has no tooltips); docs/metrics.md's
//! "Metric definitions" list holds the same sentences, which a test checks.

/// One figure's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Definition {
    /// Stable key used by the renderers, e.g. `mfu`.
    pub key: &'static str,
    /// The figure's name as printed.
    pub name: &'static str,
    /// What it is and how it is derived (one or two sentences).
    pub text: &'static str,
}

/// Every definition, in the order docs/metrics.md lists them.
pub const DEFINITIONS: &[Definition] = &[
    Definition {
        key: "step_time",
        name: "cluster step time",
        text: "the time of one training step of a mode; per iteration the max over ranks (synchronous training waits for the slowest rank), reported as the median over iterations with p95 and min beside it.",
    },
    Definition {
        key: "iterations",
        name: "iterations",
        text: "timed iterations of a mode (cluster steps), after the untimed warmup.",
    },
    Definition {
        key: "flops",
        name: "FLOPs per step",
        text: "F = Σ 2·M·N·K over every executed forward and backward GEMM of one rank's step (recomputation excluded); the 6N estimate 6·N·T and 6N + 12·L·d·s·T are reported beside it.",
    },
    Definition {
        key: "tflops",
        name: "TFLOP/s per device",
        text: "F / T_mode: model FLOPs per rank per step over the step time.",
    },
    Definition {
        key: "mfu",
        name: "MFU",
        text: "model FLOPs utilisation, F / (T_mode · peak), with peak the dense per-device peak for the dtype and T_mode the median cluster step.",
    },
    Definition {
        key: "mfu_sustained",
        name: "sustained MFU",
        text: "total model FLOPs of the timed rounds over their total time, i.e. F / (mean cluster step · peak): stalls and slow rounds count, which the median hides; min_mfu is judged on it.",
    },
    Definition {
        key: "hfu",
        name: "HFU",
        text: "hardware FLOPs utilisation: MFU with recomputed forward FLOPs counted too.",
    },
    Definition {
        key: "tokens_per_second",
        name: "tokens/s (slice)",
        text: "tokens per rank per step × ranks / T_mode for the whole cluster, running the executed slice (run.layers blocks).",
    },
    Definition {
        key: "full_model_tokens_per_second",
        name: "tokens/s (full model)",
        text: "the slice's tokens/s × run.layers / model.layers: the rate of a step of the whole model (model.layers blocks, the LM head once).",
    },
    Definition {
        key: "peak",
        name: "peak",
        text: "dense TFLOP/s per device from the datasheet table (by device name and SM count), from run.peak_tflops, or calibrated at start on the CPU backend.",
    },
    Definition {
        key: "exposed_comm",
        name: "exposed communication",
        text: "median over rounds of T_o − T_c, and of (T_o − T_c) / T_o: what the overlapped step adds to compute, whatever the cause (see its breakdown).",
    },
    Definition {
        key: "exposed_breakdown",
        name: "exposed-time breakdown",
        text: "each round's T_o − T_c split on the critical rank of each mode (the rank with the longest step) into GEMM slowdown (GEMM busy time in the overlapped step minus in the compute step: contention), exposed collective (time in the overlapped step when a collective runs, from the last rank's arrival, and no GEMM does), waiting for peers (time that rank waited at a collective for a rank of its group that had not arrived, while nothing else ran) and sync skew (the rest: barrier exit skew, launch gaps); the four add up to T_o − T_c per round; each is reported as its median over rounds.",
    },
    Definition {
        key: "wait_for_peers",
        name: "waiting for peers",
        text: "per rank and mode, the median over rounds of the time the rank spent at its collectives before the last rank of their group arrived (the ranks' clocks put on rank 0's time line at start and at every save, within the uncertainty run.json records per rank); a collective's own time, its bandwidth and its exposure run from that last arrival. The ranks that wait are victims; a rank that never waits is the one they wait for.",
    },
    Definition {
        key: "serialized_overhead",
        name: "serialized overhead",
        text: "(T_s − T_c) / T_s: the share of the serialized step spent all-reducing.",
    },
    Definition {
        key: "hidden_fraction",
        name: "hidden fraction",
        text: "median over rounds of 1 − exposed collective / T_a: the share of what the collectives take alone that overlap keeps off the critical path (1 = all hidden; below 0 = under overlap they leave more exposed than they take alone).",
    },
    Definition {
        key: "step_hidden_fraction",
        name: "step-based hidden fraction",
        text: "median over rounds of (T_c + T_a − T_o) / T_a: counts GEMM slowdown and sync skew as exposed communication, so contention drives it below the hidden fraction.",
    },
    Definition {
        key: "collective_kind",
        name: "exposed and hidden per collective kind",
        text: "per kind of collective and group (all-reduce, all-gather, reduce-scatter, all-to-all on tp, dp_shard, dp_replicate, ep or dp_expert): exposed = the time in the overlapped step during which that kind runs and no GEMM does (per iteration the max over ranks); hidden = 1 − exposed / the kind's comm-mode time, paired per iteration; busbw = bytes / comm-mode time × 2(n−1)/n for all-reduce, (n−1)/n for all-gather, reduce-scatter and all-to-all (nccl-tests' factor; for the uneven all-to-alls of expert parallelism the bytes are each rank's whole send buffer, and the factor assumes the even 1/n of it that stays on the rank); serialized exposed = the same exposure in serialized mode. Intervals: time and exposures are medians over rounds with their 95 % intervals; busbw's interval is the time interval's ends turned into bandwidths (swapped, as bandwidth falls with time).",
    },
    Definition {
        key: "overlap_speedup",
        name: "overlap speedup",
        text: "T_s / T_o.",
    },
    Definition {
        key: "overlap_efficiency",
        name: "efficiency vs achievable overlap",
        text: "median over rounds of (T_s − T_o) / median over rounds of (T_s − max(T_c + tail, T_a)), the tail being the last bucket's exposed tail (its comm-mode time minus the compute after its last gradient, which no schedule can hide): the overlap gain as a fraction of the largest achievable gain, with a bootstrap interval over whole rounds; flagged efficiency_ill_conditioned when the achievable gain's interval includes 0.",
    },
    Definition {
        key: "contention_gemm",
        name: "GEMM contention",
        text: "per iteration and rank, GEMM busy time inside the overlapped step / inside the compute step; per iteration the median over each node's ranks, then over nodes (on one node: over ranks), then over iterations (1 = no slowdown).",
    },
    Definition {
        key: "contention_allreduce",
        name: "all-reduce contention",
        text: "per iteration and rank, all-reduce busy time inside the overlapped step / inside the comm step; per iteration the median over each node's ranks, then over nodes (on one node: over ranks), then over iterations (1 = no slowdown).",
    },
    Definition {
        key: "algbw",
        name: "algbw",
        text: "bytes all-reduced / time, GB/s with GB = 10⁹ B (T_a for the whole step, a bucket's median time per bucket).",
    },
    Definition {
        key: "busbw",
        name: "busbw",
        text: "algbw · 2(n−1)/n with n = ranks (the nccl-tests convention).",
    },
    Definition {
        key: "bucket_bytes",
        name: "bucket bytes",
        text: "gradient bytes in a bucket: weight gradients fill buckets of bucket_mb in the order backward produces them (PyTorch DDP's bucket_cap_mb).",
    },
    Definition {
        key: "bucket_time",
        name: "bucket time",
        text: "a bucket's all-reduce time: each rank's median over iterations; the median of those over each node's ranks, then over nodes (on one node: over ranks).",
    },
    Definition {
        key: "ci95",
        name: "95 % confidence interval",
        text: "a distribution-free 95 % interval [lo, hi] of the median (order statistics; [min, max], flagged too_few_iterations, below 6 iterations); figures that compare modes are first computed per iteration from that iteration's steps (paired). A figure whose interval spans no effect, or whose modes are in an impossible order, is flagged (⚑), and a rule on it is INCONCLUSIVE.",
    },
    Definition {
        key: "straggler",
        name: "straggler",
        text: "a rank whose median step in the straggler mode (compute when every rank ran it) is slower than the median rank by more than straggler_tolerance; a node is flagged when one of its ranks is.",
    },
    Definition {
        key: "deviation",
        name: "vs median",
        text: "(this rank's median step − the median rank's) / the median rank's, in the straggler mode.",
    },
    Definition {
        key: "jitter",
        name: "jitter",
        text: "p95 / median of one rank's step times in the straggler mode (1 = every step alike).",
    },
    Definition {
        key: "wrong",
        name: "wrong",
        text: "all-reduced elements that differ from their known exact sum (every rank fills its buckets with small integers that depend on rank and element, exact in every dtype at any rank count), like nccl-tests' #wrong.",
    },
    Definition {
        key: "exposed_in_timeline",
        name: "exposed (timeline)",
        text: "in one rank's step, the time when an all-reduce runs and no GEMM does: communication nothing hides.",
    },
    Definition {
        key: "telemetry",
        name: "telemetry",
        text: "device samples taken at the start and end of every mode (NVML on GPUs): SM clock, temperature, power draw and active throttle reasons.",
    },
];

/// The definition of `key`, if there is one.
pub fn get(key: &str) -> Option<&'static Definition> {
    DEFINITIONS.iter().find(|d| d.key == key)
}

/// The definition text of `key`; an unknown key is a programming error
/// caught by the tests, and reads as an empty tooltip.
pub fn text(key: &str) -> &'static str {
    get(key).map(|d| d.text).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_texts_end_with_a_full_stop() {
        for (i, d) in DEFINITIONS.iter().enumerate() {
            assert!(
                DEFINITIONS[..i].iter().all(|e| e.key != d.key),
                "duplicate key {}",
                d.key
            );
            assert!(d.text.ends_with('.'), "{}", d.key);
            assert!(!d.text.contains("http"), "{}", d.key);
        }
        assert!(text("mfu").starts_with("model FLOPs utilisation"));
        assert_eq!(text("no such key"), "");
    }
}

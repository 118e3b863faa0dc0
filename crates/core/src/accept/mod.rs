//! `mfubench accept`: the staged acceptance suite, as data and math.
//!
//! What lives here (no I/O, no MPI):
//! - [`AcceptSettings`]: the `[accept]` table of the config (thresholds,
//!   sizes, which stages), with defaults and validation;
//! - the pair schedules of the link stage: [`tournament`] (every pair of
//!   nodes exactly once, all pairs of a round in parallel) and, above
//!   `accept.max_pair_nodes`, [`sampled`] (ring plus seeded random
//!   matchings, covering every node);
//! - the `accept.json` schema ([`AcceptRecord`], schema-versioned) with one
//!   result type per stage, the sweep's geometry and columns per collective
//!   ([`sweep_geometry`], [`SweepRow::new`]), the device's peak
//!   ([`device_peak`]) and the GPU readings with their reason texts
//!   ([`GpuReading::reason`]);
//! - the rules ([`evaluate`]) that turn stage results into findings in
//!   the one vocabulary of [`crate::verdict`] (PASS / SKIPPED /
//!   INCONCLUSIVE / FAIL / INCOMPLETE), each naming the device, node or
//!   link it is about, the suite's verdict ([`overall`]) and exit code
//!   ([`exit_code`]);
//! - the nccl-tests bus-bandwidth factors ([`busbw_factor`]);
//! - the expected device rate with its source ([`fill_expected`]: the
//!   device's peak × an achievable fraction per dtype).
//!
//! Files: `settings.rs` (the `[accept]` table, overrides, stages),
//! `expected.rs` (expected values),
//! `history.rs` (node history and the regression rule), `nodes.rs` (the
//! report's table of nodes),
//! `schedule.rs` (pair schedules), `record.rs` (the schema), `rules.rs`
//! (evaluate and findings).

mod expected;
mod history;
mod nodes;
mod record;
mod rules;
mod schedule;
mod settings;

pub use crate::metrics::{busbw_factor, Collective};
pub use expected::*;
pub use history::*;
pub use nodes::*;
pub use record::*;
pub use rules::*;
pub use schedule::*;
pub use settings::*;

#[cfg(test)]
pub(crate) mod test_support {
    //! Records for the tests of the submodules.
    use super::*;

    pub fn record() -> AcceptRecord {
        AcceptRecord {
            schema_version: ACCEPT_SCHEMA_VERSION,
            tool_version: "t".into(),
            run_id: "r".into(),
            started_at: String::new(),
            written_at: String::new(),
            complete: true,
            backend: "cpu".into(),
            world_size: 3,
            hosts: vec!["a".into(), "b".into(), "c".into()],
            settings: AcceptSettings::default(),
            stages: vec![Stage::Link],
            config: None,
            device: None,
            node: None,
            link: None,
            sweep: None,
            step: None,
            left_out: None,
            gpus: Vec::new(),
            findings: Vec::new(),
            regressions: Vec::new(),
            trends: Vec::new(),
            device_info: Default::default(),
        }
    }

    pub fn link(gbps: &[(usize, usize, f64)], hosts: usize) -> LinkStage {
        LinkStage {
            hosts: (0..hosts).map(|i| format!("h{i}")).collect(),
            schedule: "tournament".into(),
            rounds: tournament(hosts),
            isolation_rounds: 0,
            bytes: 1,
            iterations: 1,
            pairs: gbps
                .iter()
                .map(|&(a, b, g)| PairResult {
                    a,
                    b,
                    round: 0,
                    time_s: 1.0 / g,
                    best_time_s: 1.0 / g,
                    gbps: g,
                    expected: None,
                })
                .collect(),
            stopped: None,
            rails: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busbw_factors_follow_nccl_tests() {
        // nccl-tests PERFORMANCE.md: all-reduce 2(n−1)/n; reduce-scatter and
        // all-gather (n−1)/n.
        for (n, ar, rs) in [(2u64, 1.0, 0.5), (3, 4.0 / 3.0, 2.0 / 3.0), (4, 1.5, 0.75)] {
            assert!((busbw_factor(Collective::AllReduce, n) - ar).abs() < 1e-15);
            assert!((busbw_factor(Collective::ReduceScatter, n) - rs).abs() < 1e-15);
            assert!((busbw_factor(Collective::AllGather, n) - rs).abs() < 1e-15);
        }
        assert_eq!(busbw_factor(Collective::SendRecv, 7), 1.0);
        assert_eq!(busbw_factor(Collective::AllReduce, 0), 0.0);
        // Same as the run summary's formula.
        assert_eq!(
            crate::metrics::busbw_gbps(3.0, 3),
            3.0 * busbw_factor(Collective::AllReduce, 3)
        );
    }
}

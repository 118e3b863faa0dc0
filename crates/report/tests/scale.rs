//! The 16,384-rank run (2,048 hosts × 8): generated, written, read back and
//! reported; the summary must match the generator's, the tables must stay
//! short, ranks.svg must aggregate per node and report.html stay under 5 MB. Timing is measured by
//! `cargo bench -p mfubench-report` (benches/scale.rs), not asserted here.

mod common;

use mfubench_report::{report_run_dir, Format, ReportOptions};

#[test]
fn sixteen_thousand_ranks_round_trip() {
    let g = common::scale_gen();
    let run = common::build(&g);
    assert_eq!(run.ranks.len(), 16_384);
    // Timelines for a sample only: per node its slowest, median and
    // fastest rank (3 of 8), the run's slowest and median, the stragglers.
    let with: Vec<u64> = run
        .ranks
        .iter()
        .filter(|r| r.modes.values().any(|m| !m.timeline.is_empty()))
        .map(|r| r.rank)
        .collect();
    assert!(
        with.len() >= 3 * 2048 && with.len() <= 3 * 2048 + 4,
        "{}",
        with.len()
    );
    assert!(with.contains(&9000) && with.contains(&13));
    let t = tempfile::tempdir().unwrap();
    let path = common::write_run(t.path(), &run);
    let out = report_run_dir(
        &path,
        &ReportOptions {
            format: Format::Table,
            ..ReportOptions::default()
        },
    )
    .unwrap();
    let r = &out.report;
    // The recomputed summary equals the one the generator stored.
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.run.world_size, 16_384);
    assert_eq!(r.run.hosts, 2_048);
    assert_eq!(r.nodes.len(), 2_048);
    let ranks: Vec<u64> = r.stragglers.iter().map(|s| s.rank).collect();
    assert_eq!(ranks, [13, 9000]);
    assert_eq!(r.slow_hosts, ["node-0001", "node-1125"]);
    // serde_json's default float parsing may differ from the written value
    // in the last bit, hence a relative tolerance.
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * b.abs(),
        _ => false,
    };
    for m in mfubench_core::config::Mode::ALL {
        let h = r.headline.iter().find(|h| h.mode == m);
        assert!(
            close(h.map(|h| h.step_median_s), run.summary.step_time_s.get(m)),
            "{m}"
        );
        if m.has_compute() {
            assert!(close(h.and_then(|h| h.mfu), run.summary.mfu.get(m)), "{m}");
        }
    }
    assert!(close(
        r.allreduce.busbw_gbps,
        run.summary.allreduce.busbw_gbps
    ));
    // Terminal tables list the flagged and slowest rows, not 16,384.
    assert!(
        out.text.lines().count() < 200,
        "{} lines",
        out.text.lines().count()
    );
    assert!(out.text.contains("16384 ranks: showing the"));
    let svg = std::fs::read_to_string(t.path().join("ranks.svg")).unwrap();
    assert!(svg.contains("Per node (2048 hosts, 16384 ranks)"));
    let timeline = std::fs::read_to_string(t.path().join("timeline.svg")).unwrap();
    assert!(timeline.contains("Rank 9000 (node-1125, GPU 0), the slowest rank"));
    // One page for 16,384 ranks stays small: tables cut, ranks plot per node.
    let html = std::fs::read_to_string(t.path().join("report.html")).unwrap();
    assert!(
        html.len() < 5_000_000,
        "report.html is {} bytes",
        html.len()
    );
    assert!(html.contains("Per node (2048 hosts, 16384 ranks)"));
    assert!(html.contains("16384 ranks: showing the"));
    assert!(html.contains("2048 hosts: showing the"));
    let csv = std::fs::read_to_string(t.path().join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 16_384 * 4);
}

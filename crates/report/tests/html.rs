//! report.html on runs that differ from the golden fixture: GPU telemetry
//! (one row per sample, or min / median / max past 64 ranks), a partial
//! run, and a run with no overlapped or serialized mode (no empty lanes).
//! The fixed fixture's page is checked in golden.rs.

mod common;

use mfubench_core::config::Mode;
use mfubench_core::result::{RunRecord, TelemetrySample};
use mfubench_report::{report_run_dir, Format, ReportOptions};

fn page(run: &RunRecord) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = common::write_run(tmp.path(), run);
    let out = report_run_dir(
        &path,
        &ReportOptions {
            format: Format::Html,
            ..ReportOptions::default()
        },
    )
    .unwrap();
    let written = std::fs::read_to_string(tmp.path().join("report.html")).unwrap();
    assert_eq!(out.text, written, "printed and written pages differ");
    written
}

fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<details open id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no section {id}"));
    let len = html[start..].find("</details>").unwrap();
    &html[start..start + len]
}

fn sample(mode: Mode, at: &str, clock: u32, throttle: &[&str]) -> TelemetrySample {
    TelemetrySample {
        mode,
        at: at.to_string(),
        sm_clock_mhz: Some(clock),
        temperature_c: Some(61),
        power_w: Some(612.4),
        throttle_reasons: throttle.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn telemetry_rows_and_throttled_samples() {
    let mut run = common::build(&common::Gen::default());
    for r in &mut run.ranks {
        let clock = if r.rank == 3 { 1410 } else { 1980 };
        let throttle: &[&str] = if r.rank == 3 { &["sw_thermal"] } else { &[] };
        r.telemetry = vec![
            sample(Mode::Compute, "start", 1980, &[]),
            sample(Mode::Compute, "end", clock, throttle),
        ];
    }
    let html = page(&run);
    let t = section(&html, "telemetry");
    // One row per sample, the throttled one shaded.
    assert_eq!(t.matches("<tr").count(), 1 + 8 * 2, "{t}");
    assert_eq!(t.matches("<tr class=\"flagged\">").count(), 1);
    assert!(t.contains(">1410</td>") && t.contains("<td>sw_thermal</td>"));
    assert!(t.contains(">612</td>"), "power in W");
}

#[test]
fn telemetry_past_64_ranks_is_aggregated() {
    let g = common::Gen {
        hosts: 9,
        per_host: 8,
        slow: Vec::new(),
        ..common::Gen::default()
    };
    let mut run = common::build(&g);
    for r in &mut run.ranks {
        let clock = 1900 + r.rank as u32;
        let throttle: &[&str] = if r.rank == 70 { &["hw_slowdown"] } else { &[] };
        r.telemetry = vec![sample(Mode::Overlapped, "end", clock, throttle)];
    }
    let html = page(&run);
    let t = section(&html, "telemetry");
    assert!(t.contains("min / median / max over ranks"));
    // 72 ranks, clocks 1900…1971: median of 1900..=1971 is 1935.5.
    assert!(t.contains("<td>1900 / 1936 / 1971</td>"), "{t}");
    assert!(t.contains("rank 70 (node-0008, GPU 6) overlapped end: hw_slowdown"));
    // 72 ranks: the per-rank table is cut to the flagged and slowest.
    assert!(html.contains("72 ranks: showing the"));
}

#[test]
fn partial_run_says_so_on_the_page() {
    let mut run = common::build(&common::Gen::default());
    run.complete = false;
    let html = page(&run);
    let w = section(&html, "warnings");
    assert!(w.contains("partial run"), "{w}");
    // The badge leads with the verdict's own word.
    let badge = html
        .split("id=\"verdict-badge\">")
        .nth(1)
        .and_then(|b| b.split("</div>").next())
        .unwrap();
    assert!(badge.starts_with("INCOMPLETE"), "{badge}");
    assert!(html.contains("<div class=\"verdict v-other\" id=\"verdict-badge\">"));
    assert!(html.contains("<a href=\"#warnings\">Warnings</a>"));
}

#[test]
fn compute_and_comm_only_run_has_no_empty_lanes() {
    let g = common::Gen {
        modes: Some(vec![Mode::Compute, Mode::Comm]),
        ..common::Gen::default()
    };
    let run = common::build(&g);
    let html = page(&run);
    let t = section(&html, "timeline");
    assert!(t.contains(">compute · compute</text>"), "{t}");
    assert!(t.contains(">comm · comm</text>"));
    assert!(!t.contains("compute · comm") && !t.contains("comm · compute"));
    assert!(!t.contains("serialized ·") && !t.contains("overlapped ·"));
    // Figures that need the missing modes say which.
    assert!(section(&html, "overlap").contains("n/a (needs the serialized mode)"));
}

#[test]
fn flags_sit_beside_their_figure_and_statuses_render_generically() {
    let mut run = common::build(&common::Gen::default());
    // Serialized steps shorter than compute steps in every iteration: an
    // impossible ordering, flagged on the serialized overhead.
    for r in &mut run.ranks {
        let compute = r.modes[&Mode::Compute].step_time_s.clone();
        let ser = r.modes.get_mut(&Mode::Serialized).unwrap();
        ser.step_time_s = compute.iter().map(|t| t * 0.7).collect();
    }
    // A limit inside the overlapped MFU's interval: INCONCLUSIVE.
    run.config.acceptance.min_mfu = run.summary.mfu.overlapped;
    let html = page(&run);
    assert!(
        html.contains("FAIL: 1 of 5 rules, INCONCLUSIVE: 1 of 5 rules"),
        "{}",
        section(&html, "verdict")
    );
    let o = section(&html, "overlap");
    let row = o
        .split("<tr")
        .find(|row| row.contains("serialized overhead"))
        .unwrap();
    assert!(row.starts_with(" class=\"flagged\">"), "{row}");
    assert!(row.contains("⚑ serialized_faster_than_compute"), "{row}");
    // Its message on the row right under it.
    let next = o
        .split("<tr")
        .skip_while(|r| !r.contains("serialized overhead"))
        .nth(1)
        .unwrap();
    assert!(
        next.starts_with(" class=\"flagged\"><td colspan=\"2\" class=\"text\"><div class=\"flag\">⚑ serialized_faster_than_compute: the serialized step"),
        "{next}"
    );
    // A flag on no row (the intervals as a whole) is listed under the table.
    assert!(o.contains("<p class=\"flag\">⚑ too_few_iterations (ci95): "));
    // Every rule's status as summary.json spells it, whatever it is.
    let tmp = tempfile::tempdir().unwrap();
    let out = report_run_dir(
        &common::write_run(tmp.path(), &run),
        &ReportOptions {
            write_files: false,
            ..ReportOptions::default()
        },
    )
    .unwrap();
    let v = section(&html, "verdict");
    let statuses: Vec<String> = out
        .report
        .verdict
        .rules
        .iter()
        .map(|r| format!("{:?}", r.status))
        .collect();
    assert!(statuses.iter().any(|s| s == "Inconclusive"), "{statuses:?}");
    for rule in &out.report.verdict.rules {
        let status = serde_json::to_value(rule.status).unwrap();
        let status = status.as_str().unwrap();
        assert!(
            v.contains(&format!(
                "<span class=\"st st-{}\">{status}</span></td><td>{}</td>",
                status.to_lowercase(),
                rule.rule
            )),
            "{status} {}",
            rule.rule
        );
    }
}

/// The `y` of the lane label `name` (a right-aligned `<text>` left of the
/// plot) at each of its occurrences in `svg`.
fn lane_label_ys(svg: &str, name: &str) -> Vec<f64> {
    let end = format!("text-anchor=\"end\">{name}</text>");
    svg.match_indices(&end)
        .map(|(i, _)| {
            let open = svg[..i].rfind("<text ").unwrap();
            let y = &svg[open..i];
            let y = &y[y.find(" y=\"").unwrap() + 4..];
            y[..y.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

#[test]
fn fsdp_tp_timeline_has_a_lane_per_group_and_kind() {
    use mfubench_core::plan::StepPlan;
    use mfubench_core::result::{Span, StreamKind};
    // 8 ranks on 2 hosts, TP = 2 inside a host, FSDP over the 4 TP
    // replicas: tp all-reduces, dp_shard all-gathers and reduce-scatters.
    let g = common::Gen {
        toml: format!(
            "{}\n[parallel]\ndata = \"fsdp\"\ntensor = 2\n",
            common::FIXTURE_TOML
        ),
        // The generator times DDP buckets only: its comm mode would be
        // empty here, so the modes drawn and the computing ones are kept.
        modes: Some(vec![Mode::Compute, Mode::Serialized, Mode::Overlapped]),
        ..common::Gen::default()
    };
    let mut run = common::build(&g);
    let layout = run.config.parallel.layout(8, 4).unwrap();
    let plan = StepPlan::for_layout(&run.config, &layout);
    assert_eq!(run.plan.collective_ops.len(), plan.collectives.len());
    assert!(plan.collectives.iter().all(|c| c.bucket.is_none()));
    // Every collective of the plan, in both modes with collectives, right
    // after the GEMM it follows: collectives of different groups overlap
    // in time, as they do on their own streams.
    for r in &mut run.ranks {
        for mode in [Mode::Serialized, Mode::Overlapped] {
            let m = r.modes.get_mut(&mode).unwrap();
            let gemm_end = |i: Option<usize>| {
                i.and_then(|i| m.timeline.iter().find(|s| s.op == Some(i)))
                    .map(|s| s.end_s)
                    .unwrap_or(0.0)
            };
            let spans: Vec<Span> = plan
                .collectives
                .iter()
                .enumerate()
                .map(|(ci, c)| {
                    let start = gemm_end(c.ready_after);
                    Span {
                        name: c.label(),
                        stream: StreamKind::Comm,
                        op: None,
                        bucket: None,
                        collective: Some(ci),
                        start_s: start,
                        end_s: start + 2e-4,
                        arrived_s: None,
                    }
                })
                .collect();
            m.timeline.extend(spans);
        }
    }
    let html = page(&run);
    let t = section(&html, "timeline");
    let blocks = t.matches("· compute</text>").count();
    assert!(blocks >= 2, "{blocks} steps drawn");
    // No shared comm lane (no DDP buckets); one lane per group and kind in
    // every step drawn, each at its own height.
    assert_eq!(t.matches("· comm</text>").count(), 0);
    let lanes = [
        "tp all-reduce",
        "dp_shard all-gather",
        "dp_shard reduce-scatter",
    ];
    let ys: Vec<Vec<f64>> = lanes.iter().map(|l| lane_label_ys(t, l)).collect();
    for (l, y) in lanes.iter().zip(&ys) {
        assert_eq!(y.len(), blocks, "{l}: {y:?}");
    }
    for b in 0..blocks {
        let mut at: Vec<f64> = ys.iter().map(|y| y[b]).collect();
        at.sort_by(f64::total_cmp);
        at.dedup();
        assert_eq!(at.len(), 3, "lanes share a height in step {b}: {ys:?}");
    }
    // A bar sits on its own lane: the first all-gather's bar at the
    // all-gather lane's height (label y = bar y + 24 / 2 + 4).
    let ag = plan
        .collectives
        .iter()
        .find(|c| c.kind == mfubench_core::metrics::Collective::AllGather)
        .unwrap()
        .label();
    let title = t.find(&format!("<title>{ag}: ")).unwrap();
    let rect = &t[t[..title].rfind("<rect ").unwrap()..title];
    let y = &rect[rect.find(" y=\"").unwrap() + 4..];
    let y: f64 = y[..y.find('"').unwrap()].parse().unwrap();
    assert_eq!(y + 16.0, ys[1][0], "{rect}");
    // The note says why.
    assert!(t.contains("have a lane of their own"));
}

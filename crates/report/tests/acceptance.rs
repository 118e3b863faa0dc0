//! Every acceptance rule on both sides of its threshold, missing figures,
//! and flag overrides.

mod common;

use common::{build, Gen};
use mfubench_core::config::{Acceptance, Mode};
use mfubench_report::{
    analyze, export, AcceptanceOverrides, Format, ReportError, RuleResult, Status,
};

fn rule<'a>(r: &'a mfubench_report::Report, name: &str) -> &'a RuleResult {
    r.verdict
        .rules
        .iter()
        .find(|x| x.rule == name)
        .unwrap_or_else(|| panic!("no rule {name}: {:?}", r.verdict.rules))
}

fn with(acc: Acceptance, g: &Gen) -> mfubench_report::Report {
    analyze(&build(g), "run.json", &acc)
}

fn lenient() -> Acceptance {
    Acceptance {
        min_mfu: None,
        max_exposed_comm_fraction: None,
        min_busbw_gbps: None,
        straggler_tolerance: 0.5,
        max_wrong: 0,
    }
}

#[test]
fn min_mfu_both_sides() {
    let g = Gen::default();
    let base = with(lenient(), &g);
    let mfu = base
        .headline
        .iter()
        .find(|h| h.mode == Mode::Overlapped)
        .unwrap()
        .mfu_sustained
        .unwrap();
    // Limits well outside the 95 % interval decide; one inside it cannot.
    let [lo, hi] = base.ci95.mfu_sustained.overlapped.unwrap();
    assert!(lo < mfu && mfu < hi, "{lo} {mfu} {hi}");
    let pass = with(
        Acceptance {
            min_mfu: Some(lo * 0.99),
            ..lenient()
        },
        &g,
    );
    let fail = with(
        Acceptance {
            min_mfu: Some(hi * 1.01),
            ..lenient()
        },
        &g,
    );
    let undecided = with(
        Acceptance {
            min_mfu: Some(mfu),
            ..lenient()
        },
        &g,
    );
    assert_eq!(rule(&undecided, "min_mfu").status, Status::Inconclusive);
    assert!(!undecided.verdict.passed);
    assert!(!undecided.verdict.accepted(false, false) && undecided.verdict.accepted(false, true));
    assert!(rule(&undecided, "min_mfu")
        .detail
        .contains("inside the 95 % interval"));
    assert_eq!(rule(&pass, "min_mfu").status, Status::Pass);
    assert_eq!(rule(&pass, "min_mfu").measured, Some(mfu));
    assert!(pass.verdict.passed);
    assert_eq!(rule(&fail, "min_mfu").status, Status::Fail);
    assert!(!fail.verdict.passed);
    assert!(
        rule(&fail, "min_mfu")
            .detail
            .contains("overlapped sustained MFU"),
        "{}",
        rule(&fail, "min_mfu").detail
    );
}

#[test]
fn max_exposed_comm_fraction_both_sides() {
    let g = Gen::default();
    let base = with(lenient(), &g);
    let x = base.overlap.exposed_comm_fraction.unwrap();
    assert!(x > 0.0);
    let [lo, hi] = base.ci95.exposed_comm_fraction.unwrap();
    let pass = with(
        Acceptance {
            max_exposed_comm_fraction: Some(hi * 1.01),
            ..lenient()
        },
        &g,
    );
    let fail = with(
        Acceptance {
            max_exposed_comm_fraction: Some(lo * 0.99),
            ..lenient()
        },
        &g,
    );
    let undecided = with(
        Acceptance {
            max_exposed_comm_fraction: Some(x),
            ..lenient()
        },
        &g,
    );
    assert_eq!(
        rule(&undecided, "max_exposed_comm_fraction").status,
        Status::Inconclusive
    );
    assert_eq!(
        rule(&pass, "max_exposed_comm_fraction").status,
        Status::Pass
    );
    assert_eq!(
        rule(&fail, "max_exposed_comm_fraction").status,
        Status::Fail
    );
}

#[test]
fn min_busbw_both_sides() {
    let g = Gen::default();
    let base = with(lenient(), &g);
    let bw = base.allreduce.busbw_gbps.unwrap();
    // busbw = algbw · 2(n−1)/n with n = 8.
    let alg = base.allreduce.algbw_gbps.unwrap();
    assert!((bw - alg * 14.0 / 8.0).abs() < 1e-9 * bw);
    let pass = with(
        Acceptance {
            min_busbw_gbps: Some(bw * 0.99),
            ..lenient()
        },
        &g,
    );
    let fail = with(
        Acceptance {
            min_busbw_gbps: Some(bw * 1.01),
            ..lenient()
        },
        &g,
    );
    assert_eq!(rule(&pass, "min_busbw_gbps").status, Status::Pass);
    assert_eq!(rule(&fail, "min_busbw_gbps").status, Status::Fail);
}

#[test]
fn straggler_tolerance_both_sides_recomputes_stragglers() {
    // Rank 5 is planted 8.1 % slower (7.9 % after noise).
    let g = Gen::default();
    let pass = with(
        Acceptance {
            straggler_tolerance: 0.10,
            ..lenient()
        },
        &g,
    );
    let fail = with(
        Acceptance {
            straggler_tolerance: 0.05,
            ..lenient()
        },
        &g,
    );
    assert_eq!(rule(&pass, "straggler_tolerance").status, Status::Pass);
    assert!(pass.stragglers.is_empty());
    assert_eq!(rule(&fail, "straggler_tolerance").status, Status::Fail);
    assert_eq!(fail.stragglers.len(), 1);
    assert_eq!(fail.stragglers[0].rank, 5);
    assert_eq!(fail.slow_hosts, vec!["node-0001".to_string()]);
    let worst = rule(&fail, "straggler_tolerance").measured.unwrap();
    assert!((0.05..0.10).contains(&worst), "{worst}");
    assert!(fail.ranks[5].straggler && fail.ranks[5].flags[0].contains("slower than the median"));
    assert_eq!(fail.nodes[1].stragglers, 1);
}

#[test]
fn max_wrong_both_sides() {
    let g = Gen {
        wrong: vec![(2, 2), (6, 1)],
        ..Gen::default()
    };
    let pass = with(
        Acceptance {
            max_wrong: 3,
            ..lenient()
        },
        &g,
    );
    let fail = with(
        Acceptance {
            max_wrong: 2,
            ..lenient()
        },
        &g,
    );
    assert_eq!(rule(&pass, "max_wrong").status, Status::Pass);
    assert_eq!(rule(&pass, "max_wrong").measured, Some(3.0));
    assert_eq!(rule(&fail, "max_wrong").status, Status::Fail);
    assert!(fail.ranks[2]
        .flags
        .iter()
        .any(|f| f.contains("2 wrong all-reduce elements")));
}

#[test]
fn missing_figures_are_skipped_never_fail() {
    // A complete run that did not run the modes a rule needs: the figure
    // cannot be measured in this run, SKIPPED (not a pass, not a FAIL).
    let g = Gen {
        modes: Some(vec![Mode::Compute]),
        ..Gen::default()
    };
    let acc = Acceptance {
        min_mfu: Some(0.1),
        max_exposed_comm_fraction: Some(0.5),
        min_busbw_gbps: Some(1.0),
        ..lenient()
    };
    let r = with(acc, &g);
    for name in [
        "min_mfu",
        "max_exposed_comm_fraction",
        "min_busbw_gbps",
        "max_wrong",
    ] {
        let x = rule(&r, name);
        assert_eq!(x.status, Status::Skipped, "{name}");
        assert_eq!(x.measured, None, "{name}");
        assert!(
            x.detail.contains("not judged: SKIPPED (not measured: "),
            "{name}: {}",
            x.detail
        );
    }
    assert!(rule(&r, "min_mfu")
        .detail
        .contains("needs the overlapped mode, the run had compute"));
    assert!(rule(&r, "max_wrong").detail.contains("no all-reduce ran"));
    // The straggler rule still has its figure (compute ran).
    assert_eq!(rule(&r, "straggler_tolerance").status, Status::Pass);
    assert!(r.buckets.is_empty());
    // Not a pass: the verdict is SKIPPED, exit 1 whatever is allowed.
    assert_eq!(r.verdict.status, Status::Skipped);
    assert!(!r.verdict.passed);
    assert_eq!(r.verdict.exit_code(true, true), 1);
}

#[test]
fn check_off_skips_max_wrong() {
    let mut run = build(&Gen::default());
    run.config.run.check = false;
    let r = analyze(&run, "run.json", &lenient());
    let x = rule(&r, "max_wrong");
    assert_eq!(x.status, Status::Skipped);
    assert!(x.detail.contains("run.check = false"));
    assert_eq!(r.verdict.status, Status::Skipped);
    assert_eq!(r.verdict.exit_code(false, true), 1);
    // Whatever happened to the run: the check was not requested.
    run.complete = false;
    let r = analyze(&run, "run.json", &lenient());
    assert_eq!(rule(&r, "max_wrong").status, Status::Skipped);
    assert_eq!(r.verdict.status, Status::Incomplete);
    assert_eq!(r.verdict.exit_code(false, false), 3);
}

#[test]
fn overrides_replace_config_values_and_are_range_checked() {
    let base = Acceptance::default();
    let o = AcceptanceOverrides {
        min_mfu: Some(0.4),
        straggler_tolerance: Some(0.1),
        max_wrong: Some(7),
        ..Default::default()
    };
    let a = o.apply(&base).unwrap();
    assert_eq!(
        (a.min_mfu, a.straggler_tolerance, a.max_wrong),
        (Some(0.4), 0.1, 7)
    );
    for bad in [
        AcceptanceOverrides {
            min_mfu: Some(40.0),
            ..Default::default()
        },
        AcceptanceOverrides {
            max_exposed_comm_fraction: Some(-0.1),
            ..Default::default()
        },
        AcceptanceOverrides {
            straggler_tolerance: Some(f64::NAN),
            ..Default::default()
        },
        AcceptanceOverrides {
            min_busbw_gbps: Some(-1.0),
            ..Default::default()
        },
    ] {
        assert!(
            matches!(bad.apply(&base), Err(ReportError::BadOption { .. })),
            "{bad:?}"
        );
    }
}

fn ok(c: &quick_junit::TestCase) -> bool {
    matches!(c.status, quick_junit::TestCaseStatus::Success { .. })
}

fn failed(c: &quick_junit::TestCase) -> bool {
    matches!(
        c.status,
        quick_junit::TestCaseStatus::NonSuccess {
            kind: quick_junit::NonSuccessKind::Failure,
            ..
        }
    )
}

/// The JUnit file as a maintained parser (quick-junit's reader) sees it.
fn parse_junit(x: &str) -> quick_junit::Report {
    quick_junit::Report::deserialize_from_str(x).unwrap_or_else(|e| panic!("{e}: {x}"))
}

#[test]
fn junit_has_one_testcase_per_rule_and_failures_counted() {
    let g = Gen::default();
    let r = with(
        Acceptance {
            min_mfu: Some(0.99),
            ..Acceptance::default()
        },
        &g,
    );
    let x = export::junit(&r).unwrap();
    let j = parse_junit(&x);
    assert_eq!(j.test_suites.len(), 1);
    let suite = &j.test_suites[0];
    // One testcase per rule, plus run_complete.
    assert_eq!(suite.test_cases.len(), r.verdict.rules.len() + 1);
    let fails = r.verdict.failures().count();
    assert_eq!(fails, 2); // min_mfu and straggler_tolerance
    assert_eq!(suite.failures, fails);
    assert_eq!(j.failures, fails);
    let failed: Vec<&str> = suite
        .test_cases
        .iter()
        .filter(|c| failed(c))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failed, ["min_mfu", "straggler_tolerance"]);
    // time per testcase: the timed overlapped steps behind min_mfu.
    let mfu_case = suite
        .test_cases
        .iter()
        .find(|c| c.name.as_str() == "min_mfu")
        .unwrap();
    let t = mfu_case.time.expect("time").as_secs_f64();
    let h = r
        .headline
        .iter()
        .find(|h| h.mode == Mode::Overlapped)
        .unwrap();
    // JUnit times are written in milliseconds.
    assert!(
        (t - h.step_total_s).abs() < 1e-3,
        "{t} vs {}",
        h.step_total_s
    );
    assert!(h.step_total_s >= h.step_min_s * h.iterations as f64);
    assert_eq!(
        suite.extra.get("hostname").map(|s| s.as_str()),
        Some(r.nodes[0].host.as_str())
    );
    let prop = |k: &str| {
        suite
            .properties
            .iter()
            .find(|p| p.name.as_str() == k)
            .map(|p| p.value.as_str().to_string())
    };
    assert_eq!(prop("run_id").as_deref(), Some("fixture-0001"));
    assert_eq!(prop("world_size").as_deref(), Some("8"));
    assert_eq!(prop("config_hash").map(|h| h.len()), Some(16));
    let complete = suite
        .test_cases
        .iter()
        .find(|c| c.name.as_str() == "run_complete")
        .unwrap();
    assert!(ok(complete));
}

/// A run that stopped after two of four modes.
fn partial(acc: Acceptance) -> mfubench_report::Report {
    let g = Gen {
        modes: Some(vec![Mode::Compute, Mode::Comm]),
        ..Gen::default()
    };
    let mut run = build(&g);
    run.complete = false;
    analyze(&run, "run.json", &acc)
}

#[test]
fn partial_run_is_incomplete_everywhere() {
    let r = partial(Acceptance {
        min_mfu: Some(0.1),
        min_busbw_gbps: Some(1.0),
        ..lenient()
    });
    assert!(!r.complete);
    assert_eq!(r.verdict.status, Status::Incomplete);
    assert!(!r.verdict.passed);
    // The rule whose mode never ran is INCOMPLETE, not FAIL; the rules on
    // the modes that finished are still judged.
    assert_eq!(rule(&r, "min_mfu").status, Status::Incomplete);
    assert!(
        rule(&r, "min_mfu").detail.contains("INCOMPLETE"),
        "{:?}",
        rule(&r, "min_mfu")
    );
    assert_eq!(rule(&r, "min_busbw_gbps").status, Status::Pass);
    assert!(!r.verdict.accepted(false, false));
    assert_eq!(r.verdict.exit_code(false, false), 3);
    assert!(
        r.verdict.accepted(true, false),
        "--allow-partial judges what finished"
    );
    // A measured rule that fails still fails with --allow-partial.
    let bad = partial(Acceptance {
        min_busbw_gbps: Some(1e9),
        ..lenient()
    });
    assert_eq!(bad.verdict.status, Status::Incomplete);
    assert!(!bad.verdict.accepted(true, false));
    assert_eq!(bad.verdict.exit_code(true, false), 1);
    assert_eq!(bad.verdict.exit_code(false, false), 3);

    // The finished modes are still reported.
    let modes: Vec<Mode> = r.headline.iter().map(|h| h.mode).collect();
    assert_eq!(modes, [Mode::Compute, Mode::Comm]);

    // JUnit: a failing run_complete testcase, the INCOMPLETE rule a failure.
    let j = parse_junit(&export::junit(&r).unwrap());
    let suite = &j.test_suites[0];
    let case = |n: &str| {
        suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == n)
            .unwrap()
    };
    assert!(failed(case("run_complete")));
    assert!(failed(case("min_mfu")));
    assert!(ok(case("min_busbw_gbps")));
    assert_eq!(suite.failures, 2);

    // Prometheus and summary.json.
    let p = export::prometheus(&r);
    assert!(p.contains("\nmfubench_run_complete 0\n"), "{p}");
    assert!(p.contains("\nmfubench_acceptance_passed 0\n"), "{p}");
    let json: serde_json::Value =
        serde_json::from_str(&Format::Json.exporter().render(&r).unwrap()).unwrap();
    assert_eq!(json["complete"], serde_json::Value::Bool(false));
    assert_eq!(json["verdict"]["status"], "INCOMPLETE");
    let text = Format::Table.exporter().render(&r).unwrap();
    assert!(text.contains("verdict: INCOMPLETE"), "{text}");
    assert!(!text.contains("verdict: PASS"), "{text}");
}

#[test]
fn one_rank_skips_the_communication_rules() {
    let g = Gen {
        hosts: 1,
        per_host: 1,
        slow: Vec::new(),
        ..Gen::default()
    };
    let r = with(
        Acceptance {
            min_busbw_gbps: Some(0.0),
            max_exposed_comm_fraction: Some(1.0),
            ..lenient()
        },
        &g,
    );
    assert_eq!(rule(&r, "min_busbw_gbps").status, Status::Skipped);
    assert_eq!(
        rule(&r, "max_exposed_comm_fraction").status,
        Status::Skipped
    );
    assert!(
        rule(&r, "min_busbw_gbps")
            .detail
            .contains("SKIPPED (1 rank"),
        "{:?}",
        rule(&r, "min_busbw_gbps")
    );
    assert_eq!(rule(&r, "max_wrong").status, Status::Skipped);
    assert_eq!(r.verdict.status, Status::Skipped);
    assert!(!r.verdict.passed, "a skipped rule is not a pass");
    assert!(!r.verdict.accepted(true, false));
    // busbw of one rank is not a bandwidth: not shown as 0.00.
    assert_eq!(r.allreduce.busbw_gbps, None);
    assert!(r.buckets.iter().all(|b| b.busbw_gbps.is_none()));
    let text = Format::Table.exporter().render(&r).unwrap();
    assert!(text.contains("verdict: SKIPPED"), "{text}");
    assert!(text.contains("/ n/a (n = 1"), "{text}");
    let j = parse_junit(&export::junit(&r).unwrap());
    assert_eq!(j.test_suites[0].skipped, 3);
    // A wrong element on one rank is still a failure.
    let broken = with(
        lenient(),
        &Gen {
            hosts: 1,
            per_host: 1,
            slow: Vec::new(),
            wrong: vec![(0, 3)],
            ..Gen::default()
        },
    );
    assert_eq!(rule(&broken, "max_wrong").status, Status::Fail);
    // The same run with 2 ranks judges them.
    let two = with(
        Acceptance {
            min_busbw_gbps: Some(0.0),
            ..lenient()
        },
        &Gen {
            hosts: 1,
            per_host: 2,
            slow: Vec::new(),
            ..Gen::default()
        },
    );
    assert_eq!(rule(&two, "min_busbw_gbps").status, Status::Pass);
    assert_eq!(two.verdict.status, Status::Pass);
}

#[test]
fn prometheus_text_format_is_well_formed() {
    let r = with(Acceptance::default(), &Gen::default());
    let p = export::prometheus(&r);
    let mut families = std::collections::HashSet::new();
    for line in p.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(
                families.insert(name.to_string()),
                "family {name} declared twice"
            );
            assert!(rest.ends_with(" gauge"));
        } else if !line.starts_with("# HELP ") {
            let (series, value) = line.rsplit_once(' ').expect("a value");
            let name = series.split('{').next().unwrap();
            assert!(families.contains(name), "{name} has no TYPE line");
            value.parse::<f64>().unwrap();
            // run_id lives on the _info metric only.
            assert!(
                name == "mfubench_run_info" || !series.contains("run_id="),
                "{line}"
            );
        }
    }
    assert!(p.contains(
        "mfubench_run_info{run_id=\"fixture-0001\",model=\"llama3-8b\",backend=\"cuda\",world_size=\"8\","
    ));
    assert!(p.contains("mfubench_mfu_ratio{mode=\"overlapped\"}"));
    assert!(p.contains("\nmfubench_run_complete 1\n"));
    assert!(p.contains("\nmfubench_run_timestamp_seconds "));
    // Per-rank and per-host gauges, with the straggler (rank 5) flagged.
    assert_eq!(p.matches("\nmfubench_rank_flops{").count(), 8);
    assert!(
        p.contains("mfubench_rank_straggler{rank=\"5\",host=\"node-0001\"} 1"),
        "{p}"
    );
    assert_eq!(
        p.matches("\nmfubench_host_step_time_seconds{host=").count(),
        2
    );
}

/// `promtool check metrics` (Debian package prometheus) on the file: its
/// complaints, or None when promtool is not installed.
fn promtool(text: &str) -> Option<String> {
    use std::io::Write;
    let mut child = match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => {
            common::skip(
                &common::current_test(),
                "promtool is not installed (ci/install-deps.sh installs prometheus)",
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    Some(if out.status.success() && said.trim().is_empty() {
        String::new()
    } else {
        format!("exit {:?}: {said}", out.status.code())
    })
}

#[test]
fn promtool_accepts_every_metrics_file() {
    let mut hostile = build(&Gen::default());
    // Label values that need escaping.
    hostile.ranks[0].host = "node \"a\"\\b\nc".to_string();
    hostile.run_id = "id-with-\"quote\"".to_string();
    let cases = [
        ("complete", with(Acceptance::default(), &Gen::default())),
        (
            "partial",
            partial(Acceptance {
                min_mfu: Some(0.3),
                ..lenient()
            }),
        ),
        (
            "one rank",
            with(
                Acceptance {
                    min_busbw_gbps: Some(1.0),
                    ..lenient()
                },
                &Gen {
                    hosts: 1,
                    per_host: 1,
                    slow: Vec::new(),
                    ..Gen::default()
                },
            ),
        ),
        ("hostile labels", analyze(&hostile, "run.json", &lenient())),
    ];
    for (name, report) in cases {
        let text = export::prometheus(&report);
        let Some(problems) = promtool(&text) else {
            return;
        };
        assert!(problems.is_empty(), "{name}: promtool: {problems}\n{text}");
    }
}

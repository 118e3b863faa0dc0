//! Every acceptance rule on both sides of its threshold, missing figures,
//! and flag overrides.

mod common;

use common::{build, Gen};
use mfubench_core::config::{Acceptance, Mode};
use mfubench_report::{analyze, export, AcceptanceOverrides, ReportError, RuleResult, Status};

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
        .mfu
        .unwrap();
    // Limits well outside the 95 % interval decide; one inside it cannot.
    let [lo, hi] = base.ci95.mfu.overlapped.unwrap();
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
    assert!(!undecided.verdict.accepted(false) && undecided.verdict.accepted(true));
    assert!(rule(&undecided, "min_mfu")
        .detail
        .contains("inside the 95 % interval"));
    assert_eq!(rule(&pass, "min_mfu").status, Status::Pass);
    assert_eq!(rule(&pass, "min_mfu").measured, Some(mfu));
    assert!(pass.verdict.passed);
    assert_eq!(rule(&fail, "min_mfu").status, Status::Fail);
    assert!(!fail.verdict.passed);
    assert!(
        rule(&fail, "min_mfu").detail.contains("overlapped MFU"),
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
fn missing_figures_fail_with_the_reason() {
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
        assert_eq!(x.status, Status::Fail, "{name}");
        assert_eq!(x.measured, None, "{name}");
        assert!(x.detail.contains("not measured"), "{name}: {}", x.detail);
    }
    assert!(rule(&r, "min_mfu")
        .detail
        .contains("needs the overlapped mode, the run had compute"));
    assert!(rule(&r, "max_wrong").detail.contains("no all-reduce ran"));
    // The straggler rule still has its figure (compute ran).
    assert_eq!(rule(&r, "straggler_tolerance").status, Status::Pass);
    assert!(r.buckets.is_empty());
}

#[test]
fn check_off_fails_max_wrong() {
    let mut run = build(&Gen::default());
    run.config.run.check = false;
    let r = analyze(&run, "run.json", &lenient());
    let x = rule(&r, "max_wrong");
    assert_eq!(x.status, Status::Fail);
    assert!(x.detail.contains("run.check = false"));
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
    let x = export::junit(&r);
    assert_eq!(x.matches("<testcase ").count(), r.verdict.rules.len());
    let fails = r.verdict.failures().count();
    assert_eq!(fails, 2); // min_mfu and straggler_tolerance
    assert_eq!(x.matches("<failure ").count(), fails);
    assert!(x.contains(&format!("failures=\"{fails}\"")));
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
            let (name, rest) = line.split_once('{').expect("labels");
            assert!(families.contains(name), "{name} has no TYPE line");
            let (labels, value) = rest.rsplit_once("} ").unwrap();
            assert!(labels.starts_with("run_id=\"fixture-0001\",model=\"llama3-8b\""));
            value.parse::<f64>().unwrap();
        }
    }
    assert!(p.contains("mfubench_mfu_ratio{run_id=\"fixture-0001\",model=\"llama3-8b\",backend=\"cuda\",world_size=\"8\",mode=\"overlapped\"}"));
}

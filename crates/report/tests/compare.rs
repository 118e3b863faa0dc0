//! `compare`: a planted regression, an improvement, direction awareness and
//! the refusal of different configs.

mod common;

use common::{build, write_run, Gen};
use mfubench_report::compare::Kind;
use mfubench_report::{compare_runs, BaselineFile, CompareOptions, ReportError, Tolerance};

fn pair(base: &Gen, new: &Gen) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let a = write_run(&t.path().join("a"), &build(base));
    let b = write_run(&t.path().join("b"), &build(new));
    (t, a, b)
}

fn opts(max: f64) -> CompareOptions {
    CompareOptions {
        max_regression: max,
        force: false,
        ..Default::default()
    }
}

#[test]
fn identical_runs_do_not_regress() {
    let (_t, a, b) = pair(&Gen::default(), &Gen::default());
    let c = compare_runs(&a, &b, opts(0.05)).unwrap();
    assert!(!c.regressed());
    assert!(c
        .rows
        .iter()
        .filter(|r| r.kind != Kind::Count)
        .all(|r| r.delta == Some(0.0) || r.delta.is_none()));
    assert!(c.render().contains("verdict: PASS"));
}

#[test]
fn planted_regression_is_caught_and_named() {
    // GEMMs 10 % slower: step times up ~10 %, MFU down ~9 %.
    let slow = Gen {
        gemm_efficiency: 0.55 / 1.10,
        ..Gen::default()
    };
    let (_t, a, b) = pair(&Gen::default(), &slow);
    let c = compare_runs(&a, &b, opts(0.05)).unwrap();
    assert!(c.regressed());
    let names: Vec<&str> = c.regressions().map(|r| r.figure.as_str()).collect();
    for f in [
        "compute step (median)",
        "compute MFU",
        "compute TFLOP/s per device",
        "overlapped MFU",
    ] {
        assert!(names.contains(&f), "{f} not in {names:?}");
    }
    // Comm-mode figures did not change, so they are not regressions.
    assert!(!names
        .iter()
        .any(|n| n.contains("busbw") || n.starts_with("comm")));
    let step = c
        .rows
        .iter()
        .find(|r| r.figure == "compute step (median)")
        .unwrap();
    assert!(
        (step.delta.unwrap() - 0.10).abs() < 0.02,
        "{:?}",
        step.delta
    );
    let text = c.render();
    assert!(
        text.contains("REGRESSED") && text.contains("verdict: FAIL"),
        "{text}"
    );
    // A looser limit accepts the same change.
    assert!(!compare_runs(&a, &b, opts(0.20)).unwrap().regressed());
}

#[test]
fn improvements_are_not_regressions_in_either_direction() {
    let fast = Gen {
        gemm_efficiency: 0.65,
        algbw_gbps: 80.0,
        ..Gen::default()
    };
    let (_t, a, b) = pair(&Gen::default(), &fast);
    // The overlap speedup falls 1.8 % (less to hide when comm is faster):
    // within a 5 % limit, so the comparison passes.
    let c = compare_runs(&a, &b, opts(0.05)).unwrap();
    assert!(!c.regressed(), "{}", c.render());
    let step = c
        .rows
        .iter()
        .find(|r| r.figure == "compute step (median)")
        .unwrap();
    assert!(step.delta.unwrap() < -0.1);
    let bw = c
        .rows
        .iter()
        .find(|r| r.figure == "all-reduce busbw")
        .unwrap();
    assert!(bw.delta.unwrap() > 0.2);
    // Swapped, the same figures regress.
    let c = compare_runs(&b, &a, opts(0.01)).unwrap();
    assert!(c.regressions().any(|r| r.figure == "all-reduce busbw"));
    assert!(c.regressions().any(|r| r.figure == "compute step (median)"));
}

#[test]
fn wrong_elements_rising_is_a_regression() {
    let bad = Gen {
        wrong: vec![(1, 1)],
        ..Gen::default()
    };
    let (_t, a, b) = pair(&Gen::default(), &bad);
    let c = compare_runs(&a, &b, opts(0.5)).unwrap();
    let names: Vec<&str> = c.regressions().map(|r| r.figure.as_str()).collect();
    assert_eq!(names, ["wrong elements"]);
}

#[test]
fn different_configs_are_refused_unless_forced() {
    let other = Gen {
        toml: common::FIXTURE_TOML.replace("bucket_mb = 100", "bucket_mb = 50"),
        ..Gen::default()
    };
    let (_t, a, b) = pair(&Gen::default(), &other);
    let e = compare_runs(&a, &b, opts(0.05)).unwrap_err();
    match &e {
        ReportError::ConfigMismatch { fields, .. } => {
            assert_eq!(fields, &["config.run.bucket_mb: 100.0 → 50.0".to_string()]);
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("--force"));
    let c = compare_runs(
        &a,
        &b,
        CompareOptions {
            force: true,
            ..opts(0.05)
        },
    )
    .unwrap();
    assert_eq!(c.config_differences.len(), 1);
    assert!(c.render().contains("configurations differ"));
}

#[test]
fn acceptance_thresholds_do_not_make_configs_different() {
    let other = Gen {
        toml: common::FIXTURE_TOML.replace("min_mfu = 0.30", "min_mfu = 0.50"),
        ..Gen::default()
    };
    let (_t, a, b) = pair(&Gen::default(), &other);
    assert!(compare_runs(&a, &b, opts(0.05)).is_ok());
}

#[test]
fn negative_limit_is_a_bad_option() {
    let (_t, a, b) = pair(&Gen::default(), &Gen::default());
    assert!(matches!(
        compare_runs(&a, &b, opts(-1.0)),
        Err(ReportError::BadOption { .. })
    ));
}

#[test]
fn a_figure_missing_from_the_new_run_is_a_regression() {
    // Same config, but the new run stopped before its last two modes.
    use mfubench_core::config::Mode;
    let t = tempfile::tempdir().unwrap();
    let a = write_run(&t.path().join("a"), &build(&Gen::default()));
    let mut partial = build(&Gen::default());
    partial.complete = false;
    for r in &mut partial.ranks {
        r.modes
            .retain(|m, _| matches!(m, Mode::Compute | Mode::Comm));
    }
    let b = write_run(&t.path().join("b"), &partial);
    let c = compare_runs(&a, &b, opts(0.05)).unwrap();
    assert!(c.regressed());
    let names: Vec<&str> = c.regressions().map(|r| r.figure.as_str()).collect();
    assert!(names.contains(&"overlapped step (median)"), "{names:?}");
    assert!(!names.contains(&"compute step (median)"), "{names:?}");
}

#[test]
fn mfu_is_not_judged_when_the_peaks_differ() {
    // Two CPU calibrations, say: same measurements, different peaks.
    let t = tempfile::tempdir().unwrap();
    let a = write_run(&t.path().join("a"), &build(&Gen::default()));
    let mut other_peak = build(&Gen::default());
    other_peak.summary.peak_tflops *= 0.5;
    if let Some(p) = other_peak.peak.as_mut() {
        p.tflops *= 0.5;
    }
    let b = write_run(&t.path().join("b"), &other_peak);
    let c = compare_runs(&a, &b, opts(0.05)).unwrap();
    let mfu: Vec<_> = c.rows.iter().filter(|r| r.figure.contains("MFU")).collect();
    assert!(!mfu.is_empty());
    assert!(mfu
        .iter()
        .all(|r| !r.judged && !r.regressed && r.figure.ends_with("(peaks differ)")));
    // Same measurements otherwise: nothing regressed.
    assert!(!c.regressed());
}

/// Writes a baseline file in `dir` naming `run` and returns its path.
fn baseline_file(
    dir: &std::path::Path,
    run: &std::path::Path,
    tolerances: &str,
) -> std::path::PathBuf {
    let rel = run.strip_prefix(dir).unwrap();
    let p = dir.join("baseline.toml");
    std::fs::write(
        &p,
        format!("run = \"{}\"\n[tolerances]\n{tolerances}", rel.display()),
    )
    .unwrap();
    p
}

/// What `mfubench compare --baseline FILE NEW` does with the file.
fn compare_with_file(
    file: &std::path::Path,
    new: &std::path::Path,
) -> Result<mfubench_report::Comparison, ReportError> {
    let b = BaselineFile::read(file)?;
    let mut o = opts(0.05);
    if let Some(Tolerance::Relative(t)) = b.default {
        o.max_regression = t;
    }
    o.tolerances = b.tolerances;
    compare_runs(&b.run, new, o)
}

#[test]
fn baseline_file_with_per_figure_tolerances() {
    // GEMMs 10 % slower.
    let slow = Gen {
        gemm_efficiency: 0.55 / 1.10,
        ..Gen::default()
    };
    let (t, a, b) = pair(&Gen::default(), &slow);
    // A loose default, one strict figure: only that one regresses.
    let f = baseline_file(
        t.path(),
        &a,
        "default = \"20%\"\n\"overlapped MFU\" = \"3%\"\n",
    );
    let c = compare_with_file(&f, &b).unwrap();
    let names: Vec<&str> = c.regressions().map(|r| r.figure.as_str()).collect();
    assert_eq!(names, ["overlapped MFU"]);
    let row = c
        .rows
        .iter()
        .find(|r| r.figure == "overlapped MFU")
        .unwrap();
    assert_eq!(row.tolerance, Some(Tolerance::Relative(0.03)));
    assert!(c.render().contains("tolerance"), "{}", c.render());

    // JSON and JUnit (read back with quick-junit's parser).
    let json: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
    assert_eq!(json["verdict"], "FAIL");
    let j = quick_junit::Report::deserialize_from_str(&c.junit().unwrap()).unwrap();
    assert_eq!(j.failures, 1);
    assert_eq!(
        j.test_suites[0].test_cases.len(),
        c.rows.iter().filter(|r| r.judged).count()
    );
}

#[test]
fn exposed_communication_is_judged_in_points_when_given() {
    // All-reduces 3x slower: more of them stays exposed.
    let slow_net = Gen {
        algbw_gbps: 20.0,
        ..Gen::default()
    };
    let (t, a, b) = pair(&Gen::default(), &slow_net);
    let row = |c: &mfubench_report::Comparison| {
        c.rows
            .iter()
            .find(|r| r.figure == "exposed communication")
            .cloned()
            .unwrap()
    };
    // Without a tolerance of its own it is shown, not judged.
    let plain = compare_runs(&a, &b, opts(10.0)).unwrap();
    assert!(!row(&plain).judged);
    let rise = row(&plain).delta.unwrap();
    assert!(rise > 0.01, "exposed communication rose by {rise}");
    let f = baseline_file(
        t.path(),
        &a,
        &format!(
            "default = \"1000%\"\n\"exposed communication\" = \"{}pp\"\n",
            rise * 100.0 / 2.0
        ),
    );
    let c = compare_with_file(&f, &b).unwrap();
    assert!(row(&c).judged && row(&c).regressed, "{:?}", row(&c));
    let f = baseline_file(
        t.path(),
        &a,
        &format!(
            "default = \"1000%\"\n\"exposed communication\" = \"{}pp\"\n",
            rise * 100.0 * 2.0
        ),
    );
    let c = compare_with_file(&f, &b).unwrap();
    assert!(row(&c).judged && !row(&c).regressed, "{:?}", row(&c));
}

#[test]
fn baseline_file_mistakes_are_named() {
    let (t, a, b) = pair(&Gen::default(), &Gen::default());
    for (tol, needle) in [
        ("\"exposed communication\" = \"5%\"\n", "percentage points"),
        ("\"compute MFU\" = \"2pp\"\n", "relative change"),
        ("\"overlaped MFU\" = \"2%\"\n", "no such figure"),
        ("\"compute MFU\" = \"lots\"\n", "percentage"),
        ("\"wrong elements\" = \"5%\"\n", "count"),
    ] {
        let f = baseline_file(t.path(), &a, tol);
        let e = compare_with_file(&f, &b).unwrap_err().to_string();
        assert!(e.contains(needle), "{tol}: {e}");
    }
    std::fs::write(t.path().join("norun.toml"), "[tolerances]\n").unwrap();
    let e = BaselineFile::read(&t.path().join("norun.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("run = "), "{e}");
}

#[test]
fn iteration_counts_and_timeouts_do_not_make_configs_different() {
    let other = Gen {
        toml: common::FIXTURE_TOML
            .replace("iterations = 5", "iterations = 7\nop_timeout_s = 60")
            .replace("warmup = 1", "warmup = 3"),
        ..Gen::default()
    };
    let (_t, a, b) = pair(&Gen::default(), &other);
    let c = compare_runs(&a, &b, opts(0.05)).unwrap();
    assert!(
        c.config_differences.is_empty(),
        "{:?}",
        c.config_differences
    );
}

/// Two runs of the same system (same distribution, independent noise of
/// up to 30 % per round, 12 rounds) must pass: the verdict comes from intervals
/// of the change, corrected over every judged figure, so false alarms stay
/// near 5 % per comparison. Judged on the point values with the 5 %
/// tolerance, most such pairs fail.
#[test]
fn runs_of_the_same_system_rarely_regress() {
    let pairs = 40;
    let (mut alarms, mut point_alarms) = (0, 0);
    for k in 0..pairs {
        let g = |seed: u64| Gen {
            toml: common::FIXTURE_TOML.replace("iterations = 5", "iterations = 12"),
            noise: 0.3,
            seed,
            ..Gen::default()
        };
        let (_t, a, b) = pair(&g(1000 + 2 * k), &g(1001 + 2 * k));
        let c = compare_runs(&a, &b, opts(0.05)).unwrap();
        if c.regressed() {
            alarms += 1;
        } else {
            // A pass over figures that could not tell says so.
            let noise = c
                .rows
                .iter()
                .filter(|r| r.verdict == mfubench_report::compare::RowVerdict::WithinNoise)
                .count();
            let text = c.render();
            assert!(text.contains("verdict: PASS"), "{text}");
            assert_eq!(
                noise > 0,
                text.contains("WITHIN NOISE (their intervals"),
                "{text}"
            );
        }
        // The old rule: any judged figure worse than 5 % on its point value.
        let worse = |r: &mfubench_report::compare::CompareRow| {
            let d = r.delta.unwrap_or(0.0);
            match r.better {
                mfubench_report::compare::Better::Lower => d,
                mfubench_report::compare::Better::Higher => -d,
            }
        };
        if c.rows
            .iter()
            .any(|r| r.judged && r.kind != Kind::Count && worse(r) > 0.05)
        {
            point_alarms += 1;
        }
        assert!(c.family > 0, "{}", c.render());
    }
    eprintln!(
        "same system, {pairs} pairs: {alarms} regressed with intervals, {point_alarms} on point values"
    );
    assert!(
        alarms <= 4,
        "{alarms} of {pairs} pairs of equal runs regressed"
    );
    assert!(
        point_alarms > alarms,
        "the test's noise is too small to matter"
    );
}

//! `mfubench compare` on the command line: two runs, a committed baseline
//! file with per-figure tolerances, JSON and JUnit output, argument errors.
//! Uses the report crate's golden run.json (no MPI needed).

mod common;

use common::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn golden_run() -> std::path::PathBuf {
    root().join("crates/report/tests/golden/run.json")
}

#[test]
fn compare_two_runs_and_a_baseline_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let reference = tmp.path().join("reference.json");
    std::fs::copy(golden_run(), &reference).expect("copy");
    let run_arg = golden_run();
    let new = run_arg.to_str().expect("utf-8");

    let f = run(
        mfubench_cmd().args(["compare", reference.to_str().expect("utf-8"), new]),
        LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    assert!(f.stdout.contains("verdict: PASS"), "{}", f.stdout);

    let baseline = tmp.path().join("baseline.toml");
    std::fs::write(
        &baseline,
        "run = \"reference.json\"\n[tolerances]\ndefault = \"5%\"\n\"exposed communication\" = \"2pp\"\n",
    )
    .expect("write");
    let junit = tmp.path().join("compare.xml");
    let f = run(
        mfubench_cmd().args([
            "compare",
            "--baseline",
            baseline.to_str().expect("utf-8"),
            new,
            "--format",
            "json",
            "--junit",
            junit.to_str().expect("utf-8"),
        ]),
        LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    let j: serde_json::Value = serde_json::from_str(&f.stdout).expect("JSON");
    assert_eq!(j["verdict"], "PASS");
    let exposed = j["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["figure"] == "exposed communication")
        .expect("exposed communication row")
        .clone();
    assert_eq!(exposed["judged"], true, "{exposed}");
    let x = std::fs::read_to_string(&junit).expect("JUnit file");
    let r = quick_junit::Report::deserialize_from_str(&x).expect("JUnit parses");
    assert_eq!(r.failures, 0);
    assert!(r.tests > 5, "{x}");

    // Argument mistakes: exit 2 with the fix.
    for (args, needle) in [
        (
            vec![
                "compare",
                "--baseline",
                baseline.to_str().unwrap(),
                new,
                new,
            ],
            "give only the new run",
        ),
        (vec!["compare", new], "give two runs"),
    ] {
        let f = run(mfubench_cmd().args(&args), LIMIT);
        assert_eq!(f.code(), 2, "{args:?}: {f:?}");
        assert!(f.stderr.contains(needle), "{args:?}: {}", f.stderr);
    }
    std::fs::write(
        &baseline,
        "run = \"reference.json\"\n[tolerances]\n\"compute MFU\" = \"3pp\"\n",
    )
    .expect("write");
    let f = run(
        mfubench_cmd().args(["compare", "--baseline", baseline.to_str().unwrap(), new]),
        LIMIT,
    );
    assert_eq!(f.code(), 2, "{f:?}");
    assert!(f.stderr.contains("compute MFU"), "{}", f.stderr);
}

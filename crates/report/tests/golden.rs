//! Golden tests: a small fixed run.json (built from core's types and
//! `summarize`, checked in as tests/golden/run.json) rendered in every
//! format and compared byte for byte with the files under tests/golden/.
//! `MFUBENCH_BLESS=1 cargo test -p mfubench-report --test golden` rewrites them.

mod common;

use std::path::{Path, PathBuf};

use mfubench_report::{export, report_run_dir, Format, ReportOptions};

fn golden_dir() -> PathBuf {
    // Relative to the crate, so that paths printed in the reports are stable.
    PathBuf::from("tests/golden")
}

fn bless() -> bool {
    std::env::var_os("MFUBENCH_BLESS").is_some_and(|v| v == "1")
}

fn check(name: &str, actual: &str) {
    let p = golden_dir().join(name);
    if bless() {
        // Atomic, as the three tests bless run.json concurrently.
        mfubench_report::fsutil::write_atomic(&p, actual.as_bytes()).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with MFUBENCH_BLESS=1 to create it",
            p.display()
        )
    });
    if expected != actual {
        let diff_at = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the golden file at line {}:\n  expected: {:?}\n  actual:   {:?}\n(MFUBENCH_BLESS=1 to accept)",
            p.display(),
            diff_at + 1,
            expected.lines().nth(diff_at),
            actual.lines().nth(diff_at)
        );
    }
}

fn fixture() -> PathBuf {
    let run = common::build(&common::Gen::default());
    let text = serde_json::to_string_pretty(&run).unwrap() + "\n";
    check("run.json", &text);
    golden_dir().join("run.json")
}

fn opts(format: Format, out: &Path) -> ReportOptions {
    ReportOptions {
        format,
        out_dir: Some(out.to_path_buf()),
        ..ReportOptions::default()
    }
}

#[test]
fn every_format_matches_its_golden_file() {
    let run = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let mut table_written = None;
    for format in Format::ALL {
        let out = report_run_dir(&run, &opts(format, tmp.path())).unwrap();
        let name = match format {
            Format::Table => "report.txt",
            Format::Json => "summary.json",
            Format::Csv => "summary.csv",
            Format::Markdown => "summary.md",
        };
        check(name, &out.text);
        if format == Format::Table {
            table_written = Some(out.files.clone());
        }
        // The printed text and the written file are the same bytes.
        if let Some(file) = format.exporter().file_name() {
            assert_eq!(
                std::fs::read_to_string(tmp.path().join(file)).unwrap(),
                out.text
            );
        }
    }
    let files = table_written.unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "summary.md",
            "summary.csv",
            "summary.json",
            "timeline.svg",
            "ranks.svg"
        ]
    );
    // No temporary file is left behind.
    for e in std::fs::read_dir(tmp.path()).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.starts_with('.'), "leftover temp file {n}");
    }
}

#[test]
fn junit_and_prometheus_match_golden_files() {
    let run = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let junit = tmp.path().join("acceptance.xml");
    let prom = tmp.path().join("mfubench.prom");
    let o = ReportOptions {
        junit: Some(junit.clone()),
        prom: Some(prom.clone()),
        write_files: false,
        ..opts(Format::Table, tmp.path())
    };
    let out = report_run_dir(&run, &o).unwrap();
    assert_eq!(out.files, vec![junit.clone(), prom.clone()]);
    check("junit.xml", &std::fs::read_to_string(&junit).unwrap());
    check("metrics.prom", &std::fs::read_to_string(&prom).unwrap());
    assert_eq!(
        export::junit(&out.report).unwrap(),
        std::fs::read_to_string(&junit).unwrap()
    );
}

#[test]
fn plots_show_lanes_bars_and_marks() {
    let run = fixture();
    let tmp = tempfile::tempdir().unwrap();
    report_run_dir(&run, &opts(Format::Table, tmp.path())).unwrap();
    let t = std::fs::read_to_string(tmp.path().join("timeline.svg")).unwrap();
    assert!(t.starts_with("<svg"), "{}", &t[..100.min(t.len())]);
    // The slowest rank (5, planted 8.1 % slower) is the one drawn.
    assert!(
        t.contains("rank 5 (node-0001, GPU 1)"),
        "title names the slowest rank"
    );
    for label in [
        "compute",
        "comm",
        "bucket ready",
        "all-reduce",
        "wgrad GEMM",
        "b0",
    ] {
        assert!(t.contains(label), "timeline.svg lacks {label:?}");
    }
    let r = std::fs::read_to_string(tmp.path().join("ranks.svg")).unwrap();
    for label in ["straggler", "rank 5", "median rank", "tolerance"] {
        assert!(r.contains(label), "ranks.svg lacks {label:?}");
    }
    // 8 ranks: one circle per rank, plus legend marks.
    assert!(r.matches("<circle").count() >= 8);
}

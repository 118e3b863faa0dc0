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

/// The text between `open` and `close` after each occurrence of `open`.
fn between<'a>(s: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(close) else { break };
        out.push(&rest[..j]);
        rest = &rest[j..];
    }
    out
}

/// report.html reduced to its structure: section ids and titles, each
/// table's header row, each plot's label, the timeline tabs. Numbers in
/// cells, tooltips and styles are left out (the other goldens pin the
/// numbers); a missing section, column or plot changes the outline.
fn outline(html: &str) -> String {
    let mut o = String::new();
    for h1 in between(html, "<h1>", "</h1>") {
        o.push_str(&format!("h1 {h1}\n"));
    }
    for sec in between(html, "<details open id=\"", "</details>") {
        let id = sec.split('"').next().unwrap_or("");
        let title = between(sec, "<h2>", "</h2>").concat();
        o.push_str(&format!("section {id}: {title}\n"));
        for head in between(sec, "<thead><tr>", "</tr></thead>") {
            let cols: Vec<&str> = head
                .split("</th>")
                .filter_map(|c| c.rsplit('>').next())
                .filter(|c| !c.is_empty())
                .collect();
            o.push_str(&format!("  table: {}\n", cols.join(" | ")));
        }
        for label in between(sec, "<label for=\"", "</label>") {
            o.push_str(&format!(
                "  tab: {}\n",
                label.split("\">").nth(1).unwrap_or("")
            ));
        }
        for svg in between(sec, "aria-label=\"", "\"") {
            o.push_str(&format!("  plot: {svg}\n"));
        }
    }
    o
}

/// Checks that every element of the page is closed in order (void and
/// self-closed elements aside); returns the first problem.
fn balanced(html: &str) -> Result<(), String> {
    const VOID: &[&str] = &["meta", "input", "br", "img", "link", "hr"];
    let body = html.trim_start_matches("<!DOCTYPE html>");
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag == "script" || tag == "style" || tag.starts_with("style") {
            // Skip to the closing tag: CSS and JS hold '<' and '>'.
            let close = format!("</{}>", tag.split_whitespace().next().unwrap_or(tag));
            let j = rest.find(&close).ok_or(format!("no {close}"))?;
            rest = &rest[j + close.len()..];
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or("");
            if !VOID.contains(&name) {
                stack.push(name);
            }
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed {stack:?}"))
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
            Format::Html => "report.outline",
        };
        // The page is checked by its structure (an outline of sections,
        // table headers, plots and tabs), not byte for byte.
        if format == Format::Html {
            check(name, &outline(&out.text));
        } else {
            check(name, &out.text);
        }
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
            "report.html",
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
fn plots_show_both_steps_buckets_exposed_and_nodes() {
    let run = fixture();
    let tmp = tempfile::tempdir().unwrap();
    report_run_dir(&run, &opts(Format::Table, tmp.path())).unwrap();
    let t = std::fs::read_to_string(tmp.path().join("timeline.svg")).unwrap();
    assert!(t.starts_with("<svg xmlns="), "{}", &t[..100.min(t.len())]);
    // The slowest rank (5, planted 8.1 % slower) is the one drawn.
    assert!(
        t.contains("Rank 5 (node-0001, GPU 1), the slowest rank"),
        "title names the slowest rank"
    );
    // Both steps on one axis, each with its two lanes and no empty lane.
    for lane in [
        "serialized · compute",
        "serialized · comm",
        "overlapped · compute",
        "overlapped · comm",
    ] {
        assert_eq!(t.matches(&format!(">{lane}<")).count(), 1, "{lane}");
    }
    assert!(!t.contains("recompute GEMM"), "no legend for absent kinds");
    // Every bar has hover text; the 4 buckets are labelled in both steps.
    let rects_with_title = t.matches("</title></rect>").count();
    let spans: usize = common::build(&common::Gen::default()).ranks[5]
        .modes
        .iter()
        .filter(|(m, _)| {
            matches!(
                m,
                mfubench_core::config::Mode::Serialized | mfubench_core::config::Mode::Overlapped
            )
        })
        .map(|(_, r)| r.timeline.len())
        .sum();
    assert!(rects_with_title >= spans, "{rects_with_title} < {spans}");
    for b in ["b0", "b1", "b2", "b3"] {
        assert_eq!(t.matches(&format!(">{b}</text>")).count(), 2, "{b}");
        assert!(t.contains(&format!("<title>bucket {b} ready at ")), "{b}");
    }
    assert!(t.contains("117.4 MB all-reduced, algbw"));
    // The exposed part is shaded, with its duration in the hover text.
    assert!(t.contains("<title>exposed communication: "));
    assert!(t.contains("exposed communication</text>"), "legend entry");

    let r = std::fs::read_to_string(tmp.path().join("ranks.svg")).unwrap();
    for label in [
        "straggler threshold",
        ">rank 5</text>",
        "median rank",
        "tolerance",
        "node node-0000 (4 ranks)",
        "node node-0001 (4 ranks)",
    ] {
        assert!(r.contains(label), "ranks.svg lacks {label:?}");
    }
    // One point per rank, coloured by its node: 4 of each colour.
    assert_eq!(r.matches("r=\"4\" fill=\"#4e79a7\"").count(), 4);
    assert_eq!(r.matches("r=\"4\" fill=\"#f28e2b\"").count(), 4);
}

#[test]
fn wrong_ranks_are_crossed_and_labelled() {
    let g = common::Gen {
        wrong: vec![(3, 12)],
        ..common::Gen::default()
    };
    let run = common::build(&g);
    let tmp = tempfile::tempdir().unwrap();
    let path = common::write_run(tmp.path(), &run);
    report_run_dir(&path, &opts(Format::Table, tmp.path())).unwrap();
    let r = std::fs::read_to_string(tmp.path().join("ranks.svg")).unwrap();
    assert!(r.contains(">rank 3: 12 wrong</text>"), "label");
    assert!(
        r.contains("; 12 wrong all-reduce elements</title></path>"),
        "cross"
    );
}

#[test]
fn html_is_one_self_contained_page() {
    let run = fixture();
    let tmp = tempfile::tempdir().unwrap();
    report_run_dir(&run, &opts(Format::Table, tmp.path())).unwrap();
    let html = std::fs::read_to_string(tmp.path().join("report.html")).unwrap();
    balanced(&html).unwrap();
    assert!(balanced("<p><b>x</p></b>").is_err(), "the checker can fail");
    // Nothing to fetch: no URL, no external resource of any kind.
    assert!(!html.contains("http"), "a URL in report.html");
    for needle in [" src=", "<link", "url(", "@import", "<iframe", "<object"] {
        assert!(!html.contains(needle), "report.html holds {needle:?}");
    }
    // Every section, in order.
    let mut at = 0;
    for (id, _) in mfubench_report::html::SECTIONS {
        if *id == "warnings" {
            continue; // only when there are warnings
        }
        let needle = format!("<details open id=\"{id}\">");
        let pos = html[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("section {id} missing or out of order"));
        at += pos;
    }
    // The plots are inline, and both timelines are selectable.
    assert_eq!(html.matches("<svg ").count(), 3);
    assert!(html.contains("slowest rank: 5 (node-0001)"));
    assert!(html.contains("median rank: 2 (node-0000)"));
    // Every definition is on the page, as tooltip and in the list.
    for d in mfubench_report::definitions::DEFINITIONS {
        let text = mfubench_report::export::xml_escape(d.text);
        assert!(html.contains(&text), "definition {} missing", d.key);
    }
    assert!(html.contains(&format!(
        "title=\"{}\">51.1 %<span class=\"ci\"> [50.4 %, 51.3 %]</span></td>",
        mfubench_report::export::xml_escape(mfubench_report::definitions::text("mfu"))
    )));
    // The verdict, with its status as summary.json spells it.
    assert!(html.contains("<span class=\"st st-fail\">FAIL</span>"));
    assert!(html.contains("FAIL: 1 of 5 rules"));
}

#[test]
fn docs_hold_every_definition() {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md"),
    )
    .unwrap();
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let docs = flat(&docs);
    for d in mfubench_report::definitions::DEFINITIONS {
        let line = flat(&format!("**{}**: {}", d.name, d.text));
        assert!(
            docs.contains(&line),
            "docs/metrics.md lacks the definition of {}: {line}",
            d.key
        );
    }
}

//! Hostile strings in run.json (host, device and model names, as another
//! program or a person could put there) through every exporter: no panic,
//! no terminal escape reaches the table, no HTML reaches the Markdown or
//! report.html, no CSV cell runs as a formula, JUnit stays parseable XML.

mod common;

use common::{build, Gen};
use mfubench_core::config::Acceptance;
use mfubench_report::{analyze, export, Format};
use proptest::prelude::*;

const NASTY: &[&str] = &[
    "=HYPERLINK(\"http://evil/\",\"x\")",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1)",
    "<script>alert(1)</script>",
    "\u{1b}[31mred\u{1b}[0m",
    "a|b`c`",
    "line\nbreak\rreturn",
    "\u{7}\u{0}\u{9b}",
    "ok-name",
];

fn render_all(hosts: &[String], device: &str) {
    let mut run = build(&Gen::default());
    for (i, r) in run.ranks.iter_mut().enumerate() {
        r.host = hosts[i % hosts.len()].clone();
        r.device_name = device.to_string();
    }
    let report = analyze(&run, "run.json", &Acceptance::default());
    let table = Format::Table.exporter().render(&report).unwrap();
    assert!(
        !table.chars().any(|c| c.is_control() && c != '\n'),
        "a control character reached the terminal table"
    );
    let md = Format::Markdown.exporter().render(&report).unwrap();
    assert!(!md.contains("<script>"), "raw HTML in the Markdown");
    assert!(!md.chars().any(|c| c.is_control() && c != '\n'));
    let csv = Format::Csv.exporter().render(&report).unwrap();
    for cell in csv_cells(&csv) {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']) || cell.parse::<f64>().is_ok(),
            "formula cell {cell:?}"
        );
    }
    let _ = Format::Json.exporter().render(&report).unwrap();
    // report.html (with its inline SVG plots): every string escaped, so the
    // page's own script is the only one and no markup comes from the data.
    let html = Format::Html.exporter().render(&report).unwrap();
    assert_eq!(html.matches("<script").count(), 1, "a script from the data");
    assert!(!html.contains("<b>"), "markup from the data");
    assert!(
        !html
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')),
        "a control character in report.html"
    );
    let junit = export::junit(&report).unwrap();
    assert!(!junit.contains("<script>"));
    let prom = export::prometheus(&report);
    assert!(!prom.contains('\u{1b}'));
}

/// The cells of an RFC 4180 document, unquoted.
fn csv_cells(doc: &str) -> Vec<String> {
    let (mut cells, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = doc.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if cell.is_empty() => quoted = true,
            (',' | '\n', false) => cells.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

#[test]
fn csv_reader_known_answer() {
    assert_eq!(
        csv_cells("a,\"b,\"\"c\"\"\nd\",e\nf"),
        ["a", "b,\"c\"\nd", "e", "f"]
    );
}

#[test]
fn known_hostile_strings() {
    let hosts: Vec<String> = NASTY.iter().map(|s| s.to_string()).collect();
    render_all(&hosts, "<b>GPU</b>\u{1b}]0;title\u{7}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_strings_never_break_an_exporter(
        hosts in prop::collection::vec("\\PC{0,24}|[=+@<>|`\\-\u{1b}\u{7}\r\n ]{1,8}", 1..4),
        device in "\\PC{0,16}",
    ) {
        render_all(&hosts, &device);
    }
}

//! A soak's report (`mfubench soak`, and `mfubench report` on a soak's
//! folder): soak.jsonl read back ([`read_soak`]), judged by core's rules
//! ([`mfubench_core::soak::judge`]) and rendered as text, a self-contained
//! report.html with per-node time series, and a Prometheus textfile
//! ([`render`]); [`write_soak_report`] writes them atomically, as the
//! launcher does after every window.
//!
//! **The charts** are uPlot 1.6.32 (MIT; `vendor/uplot`, inlined into the
//! page): a maintained, 50 kB canvas library that draws tens of thousands of
//! points per series at once and zooms by dragging over the x axis
//! (double-click resets), so hours of windows stay readable. Windows where
//! a rule fired are shaded red in the charts of that rank's node. Every
//! number the page shows comes from soak.jsonl; the page loads nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mfubench_core::soak::{
    judge, parse_log, SoakFinding, SoakLog, SoakThresholds, SoakVerdict, SOAK_FILE,
    SOAK_SCHEMA_VERSION,
};
use mfubench_core::verdict::Status;

use crate::error::ReportError;
use crate::fmt::xml_escape;

/// Largest soak.jsonl read (72 h of 1-minute windows of 256 ranks is
/// about 0.5 GB).
pub const MAX_SOAK_BYTES: u64 = 2 << 30;
/// Ranks listed in the text's table (the worst first); all are in the page.
pub const MAX_TEXT_ROWS: usize = 40;

const UPLOT_JS: &str = include_str!("../vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../vendor/uplot/uPlot.min.css");

/// soak.jsonl of `path` (a soak folder or the file itself), if there is
/// one.
pub fn soak_file(path: &Path) -> Option<PathBuf> {
    if path.is_dir() {
        let f = path.join(SOAK_FILE);
        f.is_file().then_some(f)
    } else {
        (path.file_name()? == SOAK_FILE).then(|| path.to_path_buf())
    }
}

/// Reads soak.jsonl: capped, version checked, a cut last line dropped.
pub fn read_soak(file: &Path) -> Result<SoakLog, ReportError> {
    let bytes = mfubench_fsio::read_capped(file, MAX_SOAK_BYTES, "soak.jsonl", "")?;
    let text = String::from_utf8_lossy(&bytes);
    let log = parse_log(&text);
    if let Some(s) = &log.start {
        if s.schema_version > SOAK_SCHEMA_VERSION {
            return Err(ReportError::FutureSchema {
                path: file.to_path_buf(),
                found: u64::from(s.schema_version),
                supported: SOAK_SCHEMA_VERSION,
            });
        }
    }
    if log.start.is_none() && log.windows.is_empty() {
        return Err(ReportError::Inconsistent {
            path: file.to_path_buf(),
            message: "no soak start line and no window: not a soak log (or the soak was killed before it started)".into(),
        });
    }
    Ok(log)
}

/// A soak's report.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// Printable text: header, rank table, one line per rule, verdict.
    pub text: String,
    /// The self-contained page.
    pub html: String,
    /// The Prometheus textfile.
    pub prom: String,
    /// The rules' outcome.
    pub verdict: SoakVerdict,
}

/// Per rank over the windows: (rank, host, device, median rate, worst
/// window's rate, its window, worst p99/p50, highest temperature,
/// throttle reasons seen).
struct RankRow {
    rank: u64,
    host: String,
    device: String,
    windows: usize,
    median: Option<f64>,
    worst: Option<(f64, u32, f64)>,
    jitter: Option<f64>,
    max_temp: Option<f64>,
    throttles: Vec<String>,
}

fn rank_rows(log: &SoakLog) -> Vec<RankRow> {
    let mut rows: BTreeMap<u64, RankRow> = BTreeMap::new();
    let mut rates: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for w in &log.windows {
        for r in &w.ranks {
            let row = rows.entry(r.rank).or_insert_with(|| RankRow {
                rank: r.rank,
                host: r.host.clone(),
                device: r.device.clone(),
                windows: 0,
                median: None,
                worst: None,
                jitter: None,
                max_temp: None,
                throttles: Vec::new(),
            });
            row.windows += 1;
            if let Some(x) = r.tflops {
                rates.entry(r.rank).or_default().push(x);
                if row.worst.is_none_or(|(y, _, _)| x < y) {
                    row.worst = Some((x, w.index, w.start_s));
                }
            }
            if let (Some(a), Some(b)) = (r.step_p99_s, r.step_p50_s.filter(|b| *b > 0.0)) {
                row.jitter = Some(row.jitter.map_or(a / b, |j: f64| j.max(a / b)));
            }
            if let Some(t) = r.telemetry.temp_c() {
                row.max_temp = Some(row.max_temp.map_or(t, |m: f64| m.max(t)));
            }
            for t in &r.telemetry.throttle_reasons {
                if !row.throttles.contains(t) {
                    row.throttles.push(t.clone());
                }
            }
        }
    }
    for (k, v) in rates {
        if let Some(row) = rows.get_mut(&k) {
            row.median = mfubench_core::stats::median(&v);
        }
    }
    let mut out: Vec<RankRow> = rows.into_values().collect();
    // Worst first: the lowest worst-window rate relative to the rank's median.
    let rel = |r: &RankRow| match (r.worst, r.median) {
        (Some((w, _, _)), Some(m)) if m > 0.0 => w / m,
        _ => f64::INFINITY,
    };
    out.sort_by(|a, b| rel(a).total_cmp(&rel(b)).then(a.rank.cmp(&b.rank)));
    out
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map(f).unwrap_or_else(|| "-".into())
}

/// The finding's verdict line.
pub fn finding_line(f: &SoakFinding) -> String {
    let serial = f
        .serial
        .as_ref()
        .map(|s| format!(", serial {s}"))
        .unwrap_or_default();
    format!(
        "FAIL {}: rank {} on {} ({}{serial}), window {} (t = {:.0} s): {}",
        f.rule, f.rank, f.host, f.device, f.window, f.at_s, f.detail
    )
}

/// The verdict's one-line summary: `PASS (5 rules judged; not judged: …)`,
/// `FAIL (…)`, `INCOMPLETE (…)`.
pub fn verdict_line(log: &SoakLog, v: &SoakVerdict) -> String {
    let judged = v
        .rules
        .iter()
        .filter(|(_, s, _)| *s != Status::Skipped)
        .count();
    let skipped: Vec<&str> = v
        .rules
        .iter()
        .filter(|(_, s, _)| *s == Status::Skipped)
        .map(|(n, _, _)| n.as_str())
        .collect();
    let failed: Vec<&str> = v
        .rules
        .iter()
        .filter(|(_, s, _)| *s == Status::Fail)
        .map(|(n, _, _)| n.as_str())
        .collect();
    let mut why = format!("{judged} rules judged");
    if !failed.is_empty() {
        why += &format!(", failed: {}", failed.join(", "));
    }
    if !skipped.is_empty() {
        why += &format!("; not judged: {}", skipped.join(", "));
    }
    if let Some(e) = &log.end {
        if e.reason != "duration" {
            let asked = log.start.as_ref().map(|s| s.run.windows()).unwrap_or(0);
            why += &format!(
                "; PARTIAL: ended early ({}) after {} of {asked} windows",
                e.reason, e.windows
            );
        }
    } else {
        why += &format!(
            "; the soak did not end (killed?): {} closed windows kept",
            log.windows.len()
        );
    }
    if log.start.as_ref().is_some_and(|s| s.simulated) {
        why += "; SIMULATED GPU";
    }
    format!("verdict: {} ({why})", v.overall)
}

/// The report of `log`, judged with `thresholds` (default: the start
/// line's).
pub fn render(log: &SoakLog, thresholds: Option<&SoakThresholds>) -> SoakReport {
    let t = thresholds
        .cloned()
        .or_else(|| log.start.as_ref().map(|s| s.thresholds.clone()))
        .unwrap_or_default();
    let verdict = judge(log, &t);
    SoakReport {
        text: text(log, &verdict),
        html: html(log, &verdict),
        prom: prom(log, &verdict),
        verdict,
    }
}

fn header(log: &SoakLog) -> String {
    let ranks = log.windows.last().map_or(0, |w| w.ranks.len());
    let span = log.windows.last().map_or(0.0, |w| w.end_s);
    match &log.start {
        Some(s) => format!(
            "mfubench soak {}: {} rank(s) on {}{}, modes {}, {} window(s) of {} s over {:.0} s (asked: {:.0} s)",
            s.run_id,
            s.world_size,
            s.backend,
            if s.simulated { " (SIMULATED GPU — timings are CPU timings)" } else { "" },
            if s.run.modes.is_empty() {
                "of the config".to_string()
            } else {
                s.run.modes.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
            },
            log.windows.len(),
            s.run.window_s,
            span,
            s.run.duration_s
        ),
        None => format!(
            "mfubench soak (start line lost): {ranks} rank(s), {} window(s) over {span:.0} s",
            log.windows.len()
        ),
    }
}

fn text(log: &SoakLog, v: &SoakVerdict) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", header(log));
    if !log.unreadable.is_empty() {
        let _ = writeln!(
            o,
            "warning: soak.jsonl line(s) {:?} could not be read (cut by a kill?) and are left out",
            log.unreadable
        );
    }
    let rows = rank_rows(log);
    let _ = writeln!(
        o,
        "\nRanks, worst window first (GEMM rate of the worst window relative to the rank's median):"
    );
    let _ = writeln!(
        o,
        "{:>5} {:<16} {:<10} {:>7} {:>12} {:>22} {:>9} {:>7}  throttle",
        "rank",
        "host",
        "device",
        "windows",
        "median TF/s",
        "worst TF/s (window)",
        "p99/p50",
        "max °C"
    );
    for r in rows.iter().take(MAX_TEXT_ROWS) {
        let _ = writeln!(
            o,
            "{:>5} {:<16} {:<10} {:>7} {:>12} {:>22} {:>9} {:>7}  {}",
            r.rank,
            r.host,
            r.device,
            r.windows,
            opt(r.median, |x| format!("{x:.4}")),
            r.worst
                .map(|(x, w, t)| format!("{x:.4} ({w}, {t:.0} s)"))
                .unwrap_or_else(|| "-".into()),
            opt(r.jitter, |x| format!("{x:.2}")),
            opt(r.max_temp, |x| format!("{x:.0}")),
            if r.throttles.is_empty() {
                "-".to_string()
            } else {
                r.throttles.join(",")
            }
        );
    }
    if rows.len() > MAX_TEXT_ROWS {
        let _ = writeln!(
            o,
            "… {} more rank(s) in report.html",
            rows.len() - MAX_TEXT_ROWS
        );
    }
    let _ = writeln!(o, "\nRules:");
    for (name, s, why) in &v.rules {
        match s {
            Status::Skipped => {
                let _ = writeln!(o, "  not judged {name}: {why}");
            }
            Status::Fail => {
                for f in v.findings.iter().filter(|f| &f.rule == name) {
                    let _ = writeln!(o, "  {}", finding_line(f));
                }
            }
            s => {
                let _ = writeln!(o, "  {s} {name}");
            }
        }
    }
    let _ = writeln!(o, "\n{}", verdict_line(log, v));
    o
}

/// The series of one chart: per rank of the node, a value per window.
fn series(
    log: &SoakLog,
    ranks: &[u64],
    f: impl Fn(&mfubench_core::soak::RankWindow) -> Option<f64>,
) -> Option<Vec<Vec<Option<f64>>>> {
    let mut any = false;
    let out: Vec<Vec<Option<f64>>> = ranks
        .iter()
        .map(|k| {
            log.windows
                .iter()
                .map(|w| {
                    let v = w.ranks.iter().find(|r| r.rank == *k).and_then(&f);
                    any |= v.is_some();
                    v.filter(|x| x.is_finite())
                })
                .collect()
        })
        .collect();
    any.then_some(out)
}

fn html(log: &SoakLog, v: &SoakVerdict) -> String {
    // Nodes and their ranks, in rank order.
    let mut nodes: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    if let Some(w) = log.windows.last() {
        for r in &w.ranks {
            nodes.entry(r.host.clone()).or_default().push(r.rank);
        }
    }
    let x: Vec<f64> = log.windows.iter().map(|w| w.end_s).collect();
    let mut charts = Vec::new();
    for (host, ranks) in &nodes {
        let bands: Vec<[f64; 2]> = v
            .findings
            .iter()
            .filter(|f| ranks.contains(&f.rank))
            .filter_map(|f| {
                let w = log.windows.iter().find(|w| w.index == f.window)?;
                Some([w.start_s, w.end_s])
            })
            .collect();
        type Pick = fn(&mfubench_core::soak::RankWindow) -> Option<f64>;
        let kinds: [(&str, &str, Pick); 5] = [
            ("GEMM rate", "TFLOP/s", |r| r.tflops),
            ("Step p99", "s", |r| r.step_p99_s),
            ("Clock", "MHz", |r| r.telemetry.clock_mhz()),
            ("Temperature", "°C", |r| r.telemetry.temp_c()),
            ("Power", "W", |r| r.telemetry.power_w),
        ];
        for (title, unit, pick) in kinds {
            if let Some(ys) = series(log, ranks, pick) {
                charts.push(serde_json::json!({
                    "node": host,
                    "title": format!("{host}: {title}"),
                    "unit": unit,
                    "labels": ranks.iter().map(|r| format!("rank {r}")).collect::<Vec<_>>(),
                    "ys": ys,
                    "bands": bands,
                }));
            }
        }
    }
    let data = serde_json::json!({ "x": x, "charts": charts });
    // Inside <script>: no "</" can end it early.
    let data = data.to_string().replace("</", "<\\/");
    let (badge, colour) = match v.overall {
        Status::Pass => ("PASS", "#1a7f37"),
        Status::Fail => ("FAIL", "#cf222e"),
        _ => (v.overall.word(), "#9a6700"),
    };
    let mut p = String::new();
    let _ = write!(
        p,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mfubench soak</title><style>{UPLOT_CSS}\nbody{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}th{{background:#f4f4f4}}.badge{{color:#fff;padding:2px 8px;border-radius:4px;font-weight:bold}}.fail{{color:#cf222e}}.chart{{display:inline-block;margin:4px}}</style></head><body>"
    );
    let _ = write!(
        p,
        "<h1>mfubench soak <span class=\"badge\" style=\"background:{colour}\">{badge}</span></h1><p>{}</p><p>{}</p>",
        xml_escape(&header(log)),
        xml_escape(&verdict_line(log, v))
    );
    let _ = write!(p, "<h2>Rules</h2><ul>");
    for (name, s, why) in &v.rules {
        match s {
            Status::Fail => {
                for f in v.findings.iter().filter(|f| &f.rule == name) {
                    let _ = write!(
                        p,
                        "<li class=\"fail\">{}</li>",
                        xml_escape(&finding_line(f))
                    );
                }
            }
            Status::Skipped => {
                let _ = write!(
                    p,
                    "<li>not judged {}: {}</li>",
                    xml_escape(name),
                    xml_escape(why)
                );
            }
            s => {
                let _ = write!(p, "<li>{s} {}</li>", xml_escape(name));
            }
        }
    }
    let _ = write!(p, "</ul><h2>Ranks, worst window first</h2><table><tr><th>rank</th><th>host</th><th>device</th><th>windows</th><th>median GEMM TFLOP/s</th><th>worst window TFLOP/s</th><th>window</th><th>t (s)</th><th>worst p99/p50</th><th>max °C</th><th>throttle reasons</th></tr>");
    for r in rank_rows(log) {
        let (w, wi, wt) = match r.worst {
            Some((x, i, t)) => (format!("{x:.4}"), i.to_string(), format!("{t:.0}")),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let _ = write!(
            p,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{w}</td><td>{wi}</td><td>{wt}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.rank,
            xml_escape(&r.host),
            xml_escape(&r.device),
            r.windows,
            opt(r.median, |x| format!("{x:.4}")),
            opt(r.jitter, |x| format!("{x:.2}")),
            opt(r.max_temp, |x| format!("{x:.0}")),
            xml_escape(&r.throttles.join(", "))
        );
    }
    let _ = write!(
        p,
        "</table><h2>Time series per node</h2><p>x: seconds since the first window opened (at each window's close). Drag over a chart to zoom, double-click to reset. Red: windows where a rule fired on a rank of the node.</p><div id=\"charts\"></div>"
    );
    let _ = write!(
        p,
        "<script>{UPLOT_JS}</script><script id=\"soak-data\" type=\"application/json\">{data}</script><script>{CHART_JS}</script></body></html>"
    );
    p
}

/// Builds one uPlot chart per entry of the embedded data.
const CHART_JS: &str = r#"(function(){
var d=JSON.parse(document.getElementById('soak-data').textContent);
var colours=['#0969da','#cf222e','#1a7f37','#9a6700','#8250df','#bf3989','#0a3069','#57606a'];
var root=document.getElementById('charts');
d.charts.forEach(function(c){
  var el=document.createElement('div');el.className='chart';root.appendChild(el);
  var series=[{label:'t (s)'}];
  c.labels.forEach(function(l,i){series.push({label:l,stroke:colours[i%colours.length],width:1.5,spanGaps:false,points:{show:d.x.length<200}});});
  var bands=c.bands;
  var opts={title:c.title,width:560,height:220,scales:{x:{time:false}},series:series,
    axes:[{label:'s'},{label:c.unit}],cursor:{drag:{x:true,y:false}},
    hooks:{drawClear:[function(u){var ctx=u.ctx;ctx.save();ctx.fillStyle='rgba(207,34,46,0.18)';
      bands.forEach(function(b){var a=u.valToPos(b[0],'x',true),z=u.valToPos(b[1],'x',true);
        ctx.fillRect(a,u.bbox.top,Math.max(2,z-a),u.bbox.height);});ctx.restore();}]}};
  new uPlot(opts,[d.x].concat(c.ys),el);
});
})();"#;

fn prom(log: &SoakLog, v: &SoakVerdict) -> String {
    use crate::export::prometheus::prom_label as l;
    let run = log
        .start
        .as_ref()
        .map(|s| s.run_id.clone())
        .unwrap_or_default();
    let mut o = String::new();
    let family = |o: &mut String, name: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    family(
        &mut o,
        "mfubench_soak_windows",
        "Windows of the soak closed so far.",
    );
    let _ = writeln!(
        o,
        "mfubench_soak_windows{{run_id=\"{}\"}} {}",
        l(&run),
        log.windows.len()
    );
    family(
        &mut o,
        "mfubench_soak_complete",
        "1 when the soak ended at a window boundary (its end line is written).",
    );
    let _ = writeln!(
        o,
        "mfubench_soak_complete{{run_id=\"{}\"}} {}",
        l(&run),
        u8::from(log.complete())
    );
    family(
        &mut o,
        "mfubench_soak_rule_failed",
        "1 when the soak rule has fired so far, 0 when it holds; rules not judged are left out.",
    );
    for (name, s, _) in &v.rules {
        if *s != Status::Skipped {
            let _ = writeln!(
                o,
                "mfubench_soak_rule_failed{{run_id=\"{}\",rule=\"{}\"}} {}",
                l(&run),
                l(name),
                u8::from(*s == Status::Fail)
            );
        }
    }
    let Some(w) = log.windows.last() else {
        return o;
    };
    type Pick = fn(&mfubench_core::soak::RankWindow) -> Option<f64>;
    let per_rank: [(&str, &str, Pick); 7] = [
        (
            "mfubench_soak_gemm_tflops",
            "GEMM rate of the rank in the last window, TFLOP/s.",
            |r| r.tflops,
        ),
        (
            "mfubench_soak_step_p50_seconds",
            "Median step time of the rank in the last window.",
            |r| r.step_p50_s,
        ),
        (
            "mfubench_soak_step_p99_seconds",
            "99th percentile step time of the rank in the last window.",
            |r| r.step_p99_s,
        ),
        (
            "mfubench_soak_busbw_gbps",
            "Bus bandwidth of the step's largest collective in the last window, GB/s.",
            |r| r.busbw_gbps,
        ),
        (
            "mfubench_soak_temperature_celsius",
            "Device (else host) temperature at the last window's close.",
            |r| r.telemetry.temp_c(),
        ),
        (
            "mfubench_soak_clock_mhz",
            "SM (else CPU) clock at the last window's close.",
            |r| r.telemetry.clock_mhz(),
        ),
        (
            "mfubench_soak_power_watts",
            "GPU power draw at the last window's close.",
            |r| r.telemetry.power_w,
        ),
    ];
    for (name, help, pick) in per_rank {
        if w.ranks.iter().all(|r| pick(r).is_none()) {
            continue;
        }
        family(&mut o, name, help);
        for r in &w.ranks {
            if let Some(x) = pick(r).filter(|x| x.is_finite()) {
                let _ = writeln!(
                    o,
                    "{name}{{run_id=\"{}\",rank=\"{}\",host=\"{}\",device=\"{}\"}} {x}",
                    l(&run),
                    r.rank,
                    l(&r.host),
                    l(&r.device)
                );
            }
        }
    }
    o
}

/// JUnit XML for CI dashboards: one testcase per soak rule (a fired rule
/// fails with its findings, a rule not judged is skipped) and
/// `soak_complete`, which fails when the soak did not run its duration.
pub fn junit(log: &SoakLog, v: &SoakVerdict) -> Result<String, ReportError> {
    use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
    let run = log
        .start
        .as_ref()
        .map(|s| s.run_id.clone())
        .unwrap_or_default();
    let name = format!("mfubench.soak.{run}");
    let mut suite = TestSuite::new(name.as_str());
    let span = log.windows.last().map_or(0.0, |w| w.end_s);
    suite.set_time(std::time::Duration::from_secs_f64(span.max(0.0)));
    suite.add_property(Property::new("windows", log.windows.len().to_string()));
    suite.add_property(Property::new("verdict", v.overall.word()));
    let failure = |kind: &str, message: &str, text: String| {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(message).set_type(kind).set_description(text);
        s
    };
    for (rule, st, why) in &v.rules {
        let status = match st {
            Status::Fail => {
                let lines: Vec<String> = v
                    .findings
                    .iter()
                    .filter(|f| &f.rule == rule)
                    .map(finding_line)
                    .collect();
                failure("soak", &lines[0], lines.join("\n"))
            }
            Status::Skipped => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(format!("not judged: {why}"));
                s
            }
            _ => TestCaseStatus::success(),
        };
        let mut c = TestCase::new(rule.as_str(), status);
        c.set_classname(name.as_str());
        suite.add_test_case(c);
    }
    let status = if v.overall == Status::Incomplete {
        let line = verdict_line(log, v);
        failure("incomplete", &line, line.clone())
    } else {
        TestCaseStatus::success()
    };
    let mut c = TestCase::new("soak_complete", status);
    c.set_classname(name.as_str());
    suite.add_test_case(c);
    let mut report = quick_junit::Report::new("mfubench");
    report.add_test_suite(suite);
    report.to_string().map_err(|e| ReportError::BadOption {
        option: "--junit".into(),
        message: format!("cannot write the JUnit XML: {e}"),
    })
}

/// Reads the soak log of `dir`, renders it, writes report.html in `dir`
/// and, with `prom` / `junit`, the Prometheus and JUnit files (all
/// atomically).
pub fn write_soak_report(
    dir: &Path,
    prom: Option<&Path>,
    junit_file: Option<&Path>,
    thresholds: Option<&SoakThresholds>,
) -> Result<SoakReport, ReportError> {
    let file = soak_file(dir).ok_or_else(|| ReportError::NoRunFile {
        path: dir.to_path_buf(),
    })?;
    let log = read_soak(&file)?;
    let out = render(&log, thresholds);
    let folder = file.parent().unwrap_or(dir);
    mfubench_fsio::write_atomic(&folder.join("report.html"), out.html.as_bytes())?;
    if let Some(p) = prom {
        mfubench_fsio::write_atomic(p, out.prom.as_bytes())?;
    }
    if let Some(p) = junit_file {
        mfubench_fsio::write_atomic(p, junit(&log, &out.verdict)?.as_bytes())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfubench_core::soak::{RankWindow, SoakEnd, SoakLine, SoakRun, SoakStart, SoakWindow};

    fn log(rates: &[[f64; 2]], end: bool) -> String {
        let mut lines = vec![SoakLine::Start(SoakStart {
            schema_version: SOAK_SCHEMA_VERSION,
            run_id: "r\"1".into(),
            started_at: String::new(),
            world_size: 2,
            backend: "cpu".into(),
            simulated: false,
            run: SoakRun {
                duration_s: 10.0 * rates.len() as f64,
                window_s: 10.0,
                modes: vec![],
            },
            thresholds: Default::default(),
            peak_tflops: 1.0,
        })];
        for (i, rs) in rates.iter().enumerate() {
            lines.push(SoakLine::Window(SoakWindow {
                index: i as u32,
                start_s: i as f64 * 10.0,
                end_s: (i + 1) as f64 * 10.0,
                rounds: 5,
                ranks: rs
                    .iter()
                    .enumerate()
                    .map(|(k, x)| RankWindow {
                        rank: k as u64,
                        host: "h</script>".into(),
                        device: "cpu".into(),
                        tflops: Some(*x),
                        step_p50_s: Some(0.1),
                        step_p99_s: Some(0.11),
                        ..Default::default()
                    })
                    .collect(),
            }));
        }
        if end {
            lines.push(SoakLine::End(SoakEnd {
                reason: "duration".into(),
                windows: rates.len() as u32,
                finished_at: String::new(),
            }));
        }
        lines
            .iter()
            .map(|l| serde_json::to_string(l).unwrap() + "\n")
            .collect()
    }

    #[test]
    fn a_quiet_soak_passes_and_names_what_it_did_not_judge() {
        let l = parse_log(&log(&[[1.0, 1.0]; 4], true));
        let r = render(&l, None);
        assert_eq!(r.verdict.overall, Status::Pass);
        assert!(r.text.contains("verdict: PASS (3 rules judged; not judged: thermal_drift, clocks_throttled, sdc, xid, ecc)"), "{}", r.text);
        // The page is self-contained and no host name ends a script early.
        assert!(r.html.contains("uPlot"));
        assert!(!r.html.contains("h</script>"));
        assert!(r.html.contains("h&lt;/script&gt;"));
        assert!(!r.html.contains("src=\"http"));
        assert!(r
            .prom
            .contains("mfubench_soak_windows{run_id=\"r\\\"1\"} 4"));
        assert!(r
            .prom
            .contains("mfubench_soak_rule_failed{run_id=\"r\\\"1\",rule=\"fail_slow\"} 0"));
        assert!(!r.prom.contains("rule=\"xid\""));
        let x = junit(&l, &r.verdict).unwrap();
        let j = quick_junit::Report::deserialize_from_str(&x).unwrap();
        assert_eq!((j.tests, j.failures), (9, 0), "{x}");
    }

    #[test]
    fn a_killed_soak_is_incomplete_and_keeps_its_windows() {
        let full = log(&[[1.0, 1.0], [1.0, 0.4], [1.0, 0.4]], false);
        // Cut in the middle of the last line, as a SIGKILL may.
        let cut = &full[..full.len() - 20];
        let l = parse_log(cut);
        assert_eq!(l.windows.len(), 2);
        assert_eq!(l.unreadable.len(), 1);
        let r = render(&l, None);
        assert_eq!(r.verdict.overall, Status::Incomplete);
        assert!(r.text.contains("verdict: INCOMPLETE"));
        assert!(
            r.text
                .contains("the soak did not end (killed?): 2 closed windows kept"),
            "{}",
            r.text
        );
        assert!(r.text.contains("could not be read"));
        let x = junit(&l, &r.verdict).unwrap();
        let j = quick_junit::Report::deserialize_from_str(&x).unwrap();
        // Two windows are all baseline: only soak_complete fails.
        assert_eq!(j.failures, 1, "{x}");
        assert!(x.contains("the soak did not end (killed?)"), "{x}");
    }

    #[test]
    fn a_fired_rule_is_named_and_shaded() {
        let l = parse_log(&log(
            &[[1.0, 1.0], [1.0, 1.0], [1.0, 0.4], [1.0, 0.4]],
            true,
        ));
        let r = render(&l, None);
        assert_eq!(r.verdict.overall, Status::Fail);
        assert!(
            r.text
                .contains("FAIL fail_slow: rank 1 on h</script> (cpu), window 2 (t = 20 s)"),
            "{}",
            r.text
        );
        assert!(r.html.contains("\"bands\":[[20.0,30.0]]"), "bands");
        // Worst first.
        let table = r.text.split("Ranks, worst").nth(1).unwrap();
        let first = table.lines().nth(2).unwrap();
        assert!(first.trim_start().starts_with('1'), "{first}");
    }
}

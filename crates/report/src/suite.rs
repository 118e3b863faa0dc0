//! The acceptance suite's report: `accept.json` (written by
//! `mfubench-worker --accept`) as text — the device and node tables, the
//! link matrix, the nccl-tests-style sweep table, one verdict line per
//! finding and a last line naming every bad component.
//!
//! The findings are recomputed from the stage results with core's rules
//! ([`mfubench_core::accept::evaluate`]) and the settings stored in the
//! file (or given ones), never copied from it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mfubench_core::accept::{
    bad_components, evaluate, node_rows, overall, AcceptRecord, AcceptSettings, Finding, Status,
    ACCEPT_SCHEMA_VERSION, NODE_COLUMNS,
};
use mfubench_core::stats;

use crate::error::ReportError;

/// File name of the suite's results in a run directory.
pub const ACCEPT_FILE: &str = "accept.json";

/// File name of the failed nodes' hostlist (one line, Slurm syntax), in
/// the run directory when a finding failed.
pub const BAD_NODES_FILE: &str = "bad_nodes.txt";

/// File name of the failed nodes' reasons, one line per node.
pub const BAD_NODES_REASONS_FILE: &str = "bad_nodes_reasons.txt";

/// Resolves a run directory or an accept.json path to accept.json, if there
/// is one (None for a directory without it).
pub fn accept_path(path: &Path) -> Option<PathBuf> {
    if path.is_dir() {
        let p = path.join(ACCEPT_FILE);
        p.is_file().then_some(p)
    } else {
        (path.file_name().and_then(|n| n.to_str()) == Some(ACCEPT_FILE)).then(|| path.to_path_buf())
    }
}

/// Reads and checks accept.json.
pub fn read_accept(file: &Path) -> Result<AcceptRecord, ReportError> {
    // The policy of every versioned file: capped, version first.
    let bytes = mfubench_fsio::read_capped(file, MAX_ACCEPT_JSON_BYTES, "accept.json", "")?;
    if let Some(v) = mfubench_fsio::schema_version(&bytes) {
        if v > u64::from(ACCEPT_SCHEMA_VERSION) {
            return Err(ReportError::FutureSchema {
                path: file.to_path_buf(),
                found: v,
                supported: ACCEPT_SCHEMA_VERSION,
            });
        }
    }
    serde_json::from_slice(&bytes).map_err(|e| ReportError::Syntax {
        path: file.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: format!("not a readable accept.json: {e}"),
    })
}

/// Largest accept.json read (a 16,384-node link matrix is tens of MB).
pub const MAX_ACCEPT_JSON_BYTES: u64 = 256 << 20;

/// The suite's report: text and verdict.
#[derive(Debug, Clone)]
pub struct SuiteReport {
    /// Printable text (tables, matrix, verdict lines, final line).
    pub text: String,
    /// Findings under the settings used.
    pub findings: Vec<Finding>,
    /// Overall status ([`mfubench_core::accept::overall`]): the worst
    /// finding, SKIPPED lines left out (INCONCLUSIVE when every line is
    /// SKIPPED), and INCOMPLETE when the file is.
    pub overall: Status,
}

fn gbps(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "-".into()
    }
}

/// "82.1 % [80.3, 83.0]", or "-" without an expected value.
fn percent(e: Option<&mfubench_core::accept::Expected>) -> String {
    match e {
        Some(e) => match e.percent_ci95 {
            Some([lo, hi]) => format!("{:.1}% [{lo:.1}, {hi:.1}]", e.percent_of_expected),
            None => format!("{:.1}%", e.percent_of_expected),
        },
        None => "-".into(),
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}G", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

/// The link matrix: GB/s each way of every measured pair, "-" elsewhere.
fn link_matrix(t: &mut String, l: &mfubench_core::accept::LinkStage) {
    let w = l.hosts.iter().map(|h| h.len()).max().unwrap_or(4).max(8);
    let mut head = format!("{:<w$}", "");
    for h in &l.hosts {
        let _ = write!(head, " {h:>w$}");
    }
    let _ = writeln!(t, "{head}");
    for (i, row) in l.matrix().iter().enumerate() {
        let mut line = format!("{:<w$}", l.hosts[i]);
        for v in row {
            let cell = v.map(gbps).unwrap_or_else(|| "-".into());
            let _ = write!(line, " {cell:>w$}");
        }
        let _ = writeln!(t, "{line}");
    }
}

/// The links against their NICs' line rates: the range and median of
/// their % of expected, and the expected rates with their source; or why
/// there is none.
fn link_expected_line(t: &mut String, l: &mfubench_core::accept::LinkStage) {
    let links = l.links();
    let known: Vec<&mfubench_core::accept::Expected> =
        links.iter().filter_map(|p| p.expected.as_ref()).collect();
    if known.is_empty() {
        let _ = writeln!(
            t,
            "vs expected: no NIC line rate known on both ends of any link (the config stage reads them: nic.<name>.speed_mbps)"
        );
        return;
    }
    let pct: Vec<f64> = known.iter().map(|e| e.percent_of_expected).collect();
    let lo = pct.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = pct.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let med = mfubench_core::stats::median(&pct).unwrap_or(f64::NAN);
    // One entry per expected rate: how many links, and one source.
    let mut rates: Vec<(f64, usize, &str)> = Vec::new();
    for e in &known {
        match rates.iter_mut().find(|r| r.0 == e.expected) {
            Some(r) => r.1 += 1,
            None => rates.push((e.expected, 1, &e.expected_source)),
        }
    }
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let shown: Vec<String> = rates
        .iter()
        .take(3)
        .map(|(x, n, src)| format!("{} GB/s each way on {n} link(s), e.g. {src}", gbps(*x)))
        .collect();
    let more = match rates.len() {
        n if n > 3 => format!(" (and {} other rates)", n - 3),
        _ => String::new(),
    };
    let _ = writeln!(
        t,
        "vs expected: {} of {} links at {lo:.1}–{hi:.1} % of their NIC line rate (median {med:.1} %); expected {}{more}",
        known.len(),
        links.len(),
        shown.join("; ")
    );
}

/// The isolation path: each pair of the isolation rounds, why it was made
/// (the suspect's screen links were all slow) and what it showed, as the
/// run judged it (its own thresholds).
fn isolation_lines(t: &mut String, l: &mfubench_core::accept::LinkStage, s: &AcceptSettings) {
    let path = mfubench_core::accept::isolation_path(l, s);
    if path.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "Isolation: the screen (rounds 1–{}) left suspects, nodes all of whose measured links were slow; each was paired with a known-good node (measured links, none slow):",
        l.rounds.len() - l.isolation_rounds
    );
    for step in path {
        let (x, g) = (&l.hosts[step.suspect], &l.hosts[step.partner]);
        let outcome = match step.gbps {
            None => "not measured".to_string(),
            Some(v) if step.slow => format!("{} GB/s, slow again: {x} is the slow node", gbps(v)),
            Some(v) => format!(
                "{} GB/s, fast: {x}'s slow links were its neighbours'",
                gbps(v)
            ),
        };
        let _ = writeln!(
            t,
            "  round {}: {x} ({} slow link(s) in the screen) with {g}: {outcome}",
            step.round + 1,
            step.screen_links
        );
    }
}

/// Renders a record; `settings` replaces the file's thresholds when given.
pub fn render(rec: &AcceptRecord, settings: Option<&AcceptSettings>) -> SuiteReport {
    let s = settings.unwrap_or(&rec.settings);
    let findings = evaluate(rec, s);
    let status = overall(&findings, rec.complete);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "mfubench accept {}: {} rank(s) on {} node(s), backend {}{}",
        rec.run_id,
        rec.world_size,
        rec.hosts.len(),
        rec.backend,
        if rec.complete {
            String::new()
        } else {
            " — INCOMPLETE (the run stopped; finished stages are shown)".into()
        }
    );
    if let Some(c) = &rec.config {
        let fields: std::collections::BTreeSet<&String> =
            c.nodes.iter().flat_map(|n| n.facts.keys()).collect();
        let _ = writeln!(
            t,
            "\nConfig stage: {} node(s), {} field(s) compared with the majority (accept.json: config.nodes)",
            c.nodes.len(),
            fields.len()
        );
    }
    if let Some(d) = &rec.device {
        let med = stats::median(&d.devices.iter().map(|x| x.tflops).collect::<Vec<_>>())
            .unwrap_or(f64::NAN);
        let _ = writeln!(
            t,
            "\nDevice stage: GEMMs alone, {} iterations, {:.3} GFLOP per step",
            d.iterations,
            d.flops_per_step / 1e9
        );
        let _ = writeln!(
            t,
            "{:>5}  {:<16} {:>5}  {:<8} {:>10} {:>9} {:>8} {:>22}  telemetry",
            "rank",
            "host",
            "local",
            "device",
            "TFLOP/s",
            "vs median",
            "vs peak",
            "vs expected [95 %]"
        );
        for x in &d.devices {
            let _ = writeln!(
                t,
                "{:>5}  {:<16} {:>5}  {:<8} {:>10.4} {:>8.1}% {:>8} {:>22}  {}",
                x.rank,
                x.host,
                x.local_rank,
                x.device,
                x.tflops,
                x.tflops / med * 100.0,
                x.peak_fraction()
                    .map(|f| format!("{:.1}%", f * 100.0))
                    .unwrap_or_else(|| "-".into()),
                percent(x.expected.as_ref()),
                x.reason()
            );
        }
        if d.devices.iter().all(|x| x.peak_tflops.is_none()) {
            let _ = writeln!(
                t,
                "vs peak, vs expected: no datasheet peak for these devices (run.peak_tflops gives one)"
            );
        } else if let Some(e) = d.devices.iter().find_map(|x| x.expected.as_ref()) {
            let _ = writeln!(
                t,
                "vs expected: {} TFLOP/s, {}",
                mfubench_core::accept::tflops_text(e.expected),
                e.expected_source
            );
        }
    }
    if let Some(n) = &rec.node {
        let _ = writeln!(
            t,
            "\nNode stage: all-reduce inside each node, busbw GB/s (fastest of {} iterations{})",
            n.iterations,
            if n.nodes.iter().any(|x| x.stopped.is_some()) {
                "; fewer where the node stage's budget stopped them: see node_budget"
            } else {
                ""
            }
        );
        let mut head = format!("{:<16} {:>5}", "host", "ranks");
        for b in &n.sizes_bytes {
            let _ = write!(head, " {:>12}", size(*b));
        }
        let _ = writeln!(t, "{head}");
        for x in &n.nodes {
            let mut line = format!("{:<16} {:>5}", x.host, x.ranks);
            for i in 0..n.sizes_bytes.len() {
                let v = x.busbw_gbps.get(i).copied().unwrap_or(f64::NAN);
                let _ = write!(line, " {:>12}", gbps(v));
            }
            let _ = writeln!(t, "{line}");
        }
    }
    if let Some(l) = &rec.link {
        let _ = writeln!(
            t,
            "\nLink stage: {} schedule, {} round(s){}, {} per exchange each way, GB/s (fastest of {} exchanges)",
            l.schedule,
            l.rounds.len(),
            if l.isolation_rounds > 0 {
                format!(
                    " ({} of them isolation: suspects re-paired with known-good nodes)",
                    l.isolation_rounds
                )
            } else {
                String::new()
            },
            size(l.bytes),
            l.iterations
        );
        link_matrix(&mut t, l);
        link_expected_line(&mut t, l);
        isolation_lines(&mut t, l, &rec.settings);
        for rail in &l.rails {
            let _ = writeln!(
                t,
                "\nRail {}: {} schedule over TCP on {} (NIC i with NIC i), {} round(s), GB/s (fastest of {} exchanges)",
                rail.rail,
                l.schedule,
                rail.rail,
                rail.rounds.len(),
                rail.iterations
            );
            let view = rail.as_link(l);
            link_matrix(&mut t, &view);
            let missing: Vec<&str> = rail
                .addresses
                .iter()
                .zip(&l.hosts)
                .filter(|(a, _)| a.is_none())
                .map(|(_, h)| h.as_str())
                .collect();
            if !missing.is_empty() {
                let _ = writeln!(
                    t,
                    "no IPv4 address on {}: {} (left out of this rail's pairs)",
                    rail.rail,
                    missing.join(", ")
                );
            }
            link_expected_line(&mut t, &view);
        }
    }
    if let Some(w) = &rec.sweep {
        // One table per collective, as nccl-tests' binaries print them.
        for tb in &w.tables {
            let _ = writeln!(
                t,
                "\nSweep stage: {} over {} ranks ({} iterations per size)",
                tb.collective.name(),
                w.ranks,
                w.iterations
            );
            let _ = writeln!(
                t,
                "{:>12} {:>12} {:>6} {:>6} {:>12} {:>8} {:>8} {:>7}",
                "size", "count", "type", "redop", "time(us)", "algbw", "busbw", "#wrong"
            );
            for r in &tb.rows {
                let _ = writeln!(
                    t,
                    "{:>12} {:>12} {:>6} {:>6} {:>12.1} {:>8.3} {:>8.3} {:>7}",
                    r.size_bytes,
                    r.count,
                    w.dtype,
                    tb.redop,
                    r.time_us,
                    r.algbw_gbps,
                    r.busbw_gbps,
                    r.wrong
                );
            }
            let _ = writeln!(t, "# Avg bus bandwidth    : {:.3} GB/s", tb.avg_busbw_gbps);
            if let Some(f) = &tb.fit {
                let _ = writeln!(
                    t,
                    "# α-β fit (each size weighted by 1/t²): α {:.1} us, bandwidth term → busbw {:.3} GB/s; furthest from it: {} B, {:.1} %",
                    f.alpha_us,
                    f.busbw_gbps,
                    f.max_deviation_at,
                    f.max_deviation * 100.0
                );
            }
            if let (Some(e), Some(last)) = (&tb.expected, tb.rows.last()) {
                let _ = writeln!(
                    t,
                    "# vs expected: busbw {:.3} GB/s at {} B is {:.1} % of {:.3} GB/s ({})",
                    last.busbw_gbps,
                    last.size_bytes,
                    e.percent_of_expected,
                    e.expected,
                    e.expected_source
                );
            }
        }
    }
    if !rec.gpus.is_empty() {
        let _ = writeln!(t, "\nGPU telemetry (NVML, after each stage)");
        for g in &rec.gpus {
            let _ = writeln!(
                t,
                "rank {} ({}, local rank {}): {}",
                g.rank,
                g.host,
                g.local_rank,
                g.gpu.identity()
            );
            let _ = writeln!(t, "  {}", g.gpu.xid.text());
            for r in &g.gpu.readings {
                let _ = writeln!(
                    t,
                    "  after {:<7} {}",
                    r.stage.map(|s| s.to_string()).unwrap_or_default(),
                    r.reason()
                );
            }
        }
    }
    if let Some(st) = &rec.step {
        let pct = |x: Option<f64>| {
            x.map(|v| format!("{:.1} %", v * 100.0))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            t,
            "\nStep stage: MFU compute {}, overlapped {} (full report: {})",
            pct(st.mfu_compute),
            pct(st.mfu_overlapped),
            st.run_json
        );
    }
    let rows = node_rows(rec, &findings);
    if rows.len() > 1 && rows.iter().any(|r| r.vs_median.iter().any(Option::is_some)) {
        let w = rows.iter().map(|r| r.host.len()).max().unwrap_or(4).max(8);
        let _ = writeln!(
            t,
            "\nNodes: each figure as % of the median node's (device TFLOP/s, node busbw, fastest link), then of its expected value (device, link); drift: fields unlike the majority's; history: each figure against the median of the node's own earlier runs (how many), REGRESSED where the history rule fired"
        );
        let mut head = format!("{:<w$}", "host");
        for (_, name) in NODE_COLUMNS {
            let _ = write!(head, " {name:>10}");
        }
        let _ = write!(head, " {:>10} {:>10}", "device exp", "link exp");
        let _ = writeln!(t, "{head}  {:<20} {:<20} named", "drift", "history");
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(", ")
            }
        };
        for r in &rows {
            let mut line = format!("{:<w$}", r.host);
            let pct = |v: &Option<f64>| {
                v.map(|x| format!("{:.1}%", x * 100.0))
                    .unwrap_or_else(|| "-".into())
            };
            for v in &r.vs_median {
                let _ = write!(line, " {:>10}", pct(v));
            }
            for (i, (name, _)) in NODE_COLUMNS.iter().enumerate() {
                if *name != "node_busbw_gbps" {
                    let _ = write!(line, " {:>10}", pct(&r.vs_expected[i]));
                }
            }
            let mut history: Vec<String> = NODE_COLUMNS
                .iter()
                .zip(&r.trend)
                .filter_map(|((name, col), t)| {
                    let (change, runs) = (*t)?;
                    let regressed = r
                        .regressed
                        .iter()
                        .any(|x| x.starts_with(&format!("{name} ")));
                    let flag = if regressed { " REGRESSED" } else { "" };
                    Some(format!("{col} {:+.1}% ({runs}){flag}", change * 100.0))
                })
                .collect();
            // A regression against the fleet has no trend of its own.
            history.extend(
                r.regressed
                    .iter()
                    .filter(|x| x.ends_with(" fleet"))
                    .map(|x| format!("{x} REGRESSED")),
            );
            let named = match (r.bad, r.left_out) {
                (true, true) => "BAD, left out of the later stages",
                (true, false) => "BAD",
                (false, true) => "left out of the later stages",
                (false, false) => "-",
            };
            let _ = writeln!(
                t,
                "{line}  {:<20} {:<20} {named}",
                list(&r.drift),
                list(&history)
            );
        }
    }
    let _ = writeln!(t, "\nVerdict:");
    for f in &findings {
        let who = f
            .component
            .as_ref()
            .map(|c| format!("{c}: "))
            .unwrap_or_default();
        let _ = writeln!(
            t,
            "{:<12} {:<6} {:<15} {who}{}",
            f.status.word(),
            f.stage.name(),
            f.rule,
            f.message
        );
    }
    let bad = bad_components(&findings);
    let _ = writeln!(
        t,
        "accept: {}{}{}",
        status.word(),
        if bad.is_empty() {
            String::new()
        } else {
            format!(" — bad: {}", bad.join(", "))
        },
        if rec.simulated() {
            format!(
                " ({}: not a hardware verdict)",
                mfubench_core::simgpu::BANNER
            )
        } else {
            String::new()
        }
    );
    SuiteReport {
        text: t,
        findings,
        overall: status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfubench_core::accept::{
        tournament, Collective, LinkStage, PairResult, Stage, SweepRow, SweepStage, SweepTable,
    };

    #[test]
    fn device_table_shows_the_peak_fraction_or_says_there_is_none() {
        use mfubench_core::accept::{CpuTelemetry, DeviceResult, DeviceStage};
        use mfubench_core::result::PeakSource;
        let dev = |rank: u64, tflops: f64, peak: Option<f64>| DeviceResult {
            rank,
            host: format!("h{rank}"),
            local_rank: 0,
            device: "GPU 0".into(),
            device_name: "g".into(),
            step_s: 1.0,
            step_time_s: vec![1.0],
            tflops,
            spec_peak_tflops: peak,
            peak_tflops: peak,
            peak_source: peak.map(|_| PeakSource::Spec),
            telemetry: CpuTelemetry::default(),
            gpu: None,
            expected: None,
        };
        let mut rec = AcceptRecord {
            schema_version: ACCEPT_SCHEMA_VERSION,
            tool_version: "t".into(),
            run_id: "r".into(),
            started_at: String::new(),
            written_at: String::new(),
            complete: true,
            backend: "cuda".into(),
            world_size: 2,
            hosts: vec!["h0".into(), "h1".into()],
            settings: AcceptSettings::default(),
            stages: vec![Stage::Device],
            config: None,
            device: Some(DeviceStage {
                flops_per_step: 1e12,
                iterations: 1,
                devices: vec![dev(0, 400.0, Some(1000.0)), dev(1, 500.0, Some(1000.0))],
            }),
            node: None,
            link: None,
            sweep: None,
            step: None,
            left_out: None,
            gpus: Vec::new(),
            findings: Vec::new(),
            regressions: Vec::new(),
            trends: Vec::new(),
            device_info: Default::default(),
        };
        let r = render(&rec, None);
        assert!(r.text.contains("vs peak"), "{}", r.text);
        assert!(r.text.contains("  88.9%    40.0%"), "{}", r.text);
        assert!(r.text.contains(" 111.1%    50.0%"), "{}", r.text);
        assert!(!r.text.contains("no datasheet peak"), "{}", r.text);
        // With the expected values filled (BF16: 1000 × 0.75 = 750 TFLOP/s):
        // 400 is 53.3 % of it and 500 is 66.7 %; one step: no 95 % interval.
        mfubench_core::accept::fill_expected(&mut rec, mfubench_core::config::Dtype::Bf16);
        let r = render(&rec, None);
        assert!(r.text.contains("vs expected [95 %]"), "{}", r.text);
        assert!(
            r.text.contains("   40.0%                  53.3%"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("   50.0%                  66.7%"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .contains("vs expected: 750.0 TFLOP/s, the datasheet's 1000.0 TFLOP/s × 0.75"),
            "{}",
            r.text
        );
        // The slower device fails (0.889 < 0.92) and its line gives the
        // fraction of its peak.
        assert!(
            r.text.contains("400.000 TFLOP/s < 0.92 × median 450.000 TFLOP/s, 40.0 % of the datasheet's 1000.0 TFLOP/s"),
            "{}",
            r.text
        );
        for d in &mut rec.device.as_mut().unwrap().devices {
            (d.peak_tflops, d.peak_source) = (None, None);
        }
        let r = render(&rec, None);
        assert!(
            r.text.contains("no datasheet peak for these devices"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("median 450.000 TFLOP/s, no datasheet peak"),
            "{}",
            r.text
        );
    }

    #[test]
    fn renders_matrix_sweep_and_verdict() {
        let hosts: Vec<String> = ["hostA", "hostB", "hostC"].map(String::from).to_vec();
        let pair = |a, b, g: f64| PairResult {
            a,
            b,
            round: 0,
            time_s: 1.0 / g,
            best_time_s: 1.0 / g,
            gbps: g,
            expected: None,
        };
        let rec = AcceptRecord {
            schema_version: ACCEPT_SCHEMA_VERSION,
            tool_version: "t".into(),
            run_id: "r1".into(),
            started_at: String::new(),
            written_at: String::new(),
            complete: true,
            backend: "cpu".into(),
            world_size: 3,
            hosts: hosts.clone(),
            settings: AcceptSettings::default(),
            stages: vec![Stage::Link, Stage::Sweep],
            config: None,
            device: None,
            node: None,
            link: Some(LinkStage {
                hosts,
                schedule: "tournament".into(),
                rounds: tournament(3),
                isolation_rounds: 0,
                bytes: 64 << 20,
                iterations: 3,
                pairs: vec![pair(0, 1, 2.0), pair(0, 2, 0.1), pair(1, 2, 0.1)],
                stopped: None,
                rails: Vec::new(),
            }),
            sweep: Some(SweepStage {
                dtype: "float".into(),
                ranks: 3,
                iterations: 3,
                tables: vec![
                    SweepTable::new(
                        Collective::AllReduce,
                        vec![SweepRow::new(Collective::AllReduce, 3, 8, 2, 10e-6, 0)],
                    ),
                    SweepTable::new(
                        Collective::AllGather,
                        vec![SweepRow::new(Collective::AllGather, 3, 12, 1, 10e-6, 0)],
                    ),
                ],
            }),
            step: None,
            left_out: None,
            gpus: Vec::new(),
            findings: Vec::new(),
            regressions: Vec::new(),
            trends: Vec::new(),
            device_info: Default::default(),
        };
        let r = render(&rec, None);
        assert_eq!(r.overall, Status::Fail);
        assert!(
            r.text.contains("hostA           -    2.000    0.100"),
            "{}",
            r.text
        );
        // Both tables, each with its redop and average; busbw by the
        // collective's factor: 8 B / 10 µs = 0.0008 GB/s · 4/3, and
        // 12 B / 10 µs = 0.0012 GB/s · 2/3.
        assert!(
            r.text.contains("Sweep stage: all_reduce over 3 ranks"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("Sweep stage: all_gather over 3 ranks"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains(
                "           8            2  float    sum         10.0    0.001    0.001       0"
            ),
            "{}",
            r.text
        );
        assert!(
            r.text.contains(
                "          12            1  float   none         10.0    0.001    0.001       0"
            ),
            "{}",
            r.text
        );
        assert_eq!(
            r.text.matches("# Avg bus bandwidth").count(),
            2,
            "{}",
            r.text
        );
        assert!(
            r.text.contains(
                "accept: FAIL — bad: link hostA <-> hostC, link hostB <-> hostC, node hostC"
            ),
            "{}",
            r.text
        );
        // The table of nodes: hostC's fastest link is 5 % of the median
        // node's (0.1 of 2.0 GB/s), and it is named.
        let row = r
            .text
            .lines()
            .find(|l| l.starts_with("hostC ") && l.contains('%'))
            .unwrap_or_else(|| panic!("no node row for hostC in\n{}", r.text));
        assert!(row.contains("5.0%") && row.ends_with(" BAD"), "{row}");
        assert!(r
            .text
            .contains("\nNodes: each figure as % of the median node's"));
        // Looser threshold given: PASS.
        let loose = AcceptSettings {
            min_link_fraction: 0.01,
            ..Default::default()
        };
        assert_eq!(render(&rec, Some(&loose)).overall, Status::Pass);
        // No config stage: no line rate, and the report says so.
        assert!(
            r.text
                .contains("vs expected: no NIC line rate known on both ends"),
            "{}",
            r.text
        );
        // Line rates from the config stage: 10 Gb/s on hostA and hostB,
        // 1 Gb/s on hostC. 2.0 GB/s of 1.25 is 160 %; 0.1 of 0.125 is 80 %.
        let mut rec = rec;
        rec.config = Some(mfubench_core::accept::ConfigStage {
            nodes: [("hostA", "10000"), ("hostB", "10000"), ("hostC", "1000")]
                .map(|(h, r)| mfubench_core::accept::NodeFacts {
                    host: h.into(),
                    facts: [("nic.eth0.speed_mbps".to_string(), r.to_string())].into(),
                })
                .to_vec(),
        });
        mfubench_core::accept::fill_expected(&mut rec, mfubench_core::config::Dtype::F32);
        let r = render(&rec, None);
        assert!(
            r.text.contains("vs expected: 3 of 3 links at 80.0–160.0 % of their NIC line rate (median 80.0 %); expected 0.125 GB/s each way on 2 link(s), e.g. NIC line rate 1000 Mb/s: hostC eth0, the slower end's fastest NIC; 1.250 GB/s each way on 1 link(s), e.g. NIC line rate 10000 Mb/s: hostA eth0, the slower end's fastest NIC"),
            "{}",
            r.text
        );
        assert!(!r.text.contains("Isolation:"));
        // An isolation round: hostC, slow on both screen links, paired again
        // with hostA (a made-up round: 3 nodes never isolate), slow again.
        let l = rec.link.as_mut().unwrap();
        l.pairs[2].round = 1;
        l.pairs[1].round = 2;
        l.pairs.push(PairResult {
            round: 3,
            ..l.pairs[1].clone()
        });
        l.rounds = vec![vec![(0, 1)], vec![(1, 2)], vec![(0, 2)], vec![(0, 2)]];
        l.pairs.retain(|p| (p.a, p.b) != (0, 2) || p.round == 3);
        l.isolation_rounds = 2;
        let r = render(&rec, None);
        assert!(
            r.text.contains("Isolation: the screen (rounds 1–2) left suspects")
                && r.text.contains("  round 3: hostC (1 slow link(s) in the screen) with hostA: not measured")
                && r.text.contains("  round 4: hostC (1 slow link(s) in the screen) with hostA: 0.100 GB/s, slow again: hostC is the slow node"),
            "{}",
            r.text
        );
    }
}

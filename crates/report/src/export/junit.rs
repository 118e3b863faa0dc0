//! JUnit XML for CI dashboards: one testcase per acceptance rule.

use mfubench_core::config::Mode;

use super::Exporter;
use crate::acceptance::Status;
use crate::analysis::Report;
use crate::error::ReportError;

/// The JUnit file of `--junit FILE` ([`junit`]).
#[derive(Debug, Clone, Copy)]
pub struct JunitExporter;

impl Exporter for JunitExporter {
    fn name(&self) -> &'static str {
        "junit"
    }
    fn file_name(&self) -> Option<&'static str> {
        None
    }
    fn render(&self, report: &Report) -> Result<String, ReportError> {
        junit(report)
    }
}

/// Seconds of timed steps behind a set of modes: Σ of the cluster step
/// times (slowest rank per iteration) of each mode that ran.
fn timed_seconds(report: &Report, modes: &[Mode]) -> f64 {
    report
        .headline
        .iter()
        .filter(|h| modes.contains(&h.mode))
        .map(|h| h.step_total_s)
        .sum()
}

/// The modes whose figures a rule judges (all modes for run-wide rules).
fn rule_modes(rule: &str, report: &Report) -> Vec<Mode> {
    match rule {
        "min_mfu" => vec![Mode::Overlapped],
        "max_exposed_comm_fraction" => vec![Mode::Compute, Mode::Overlapped],
        "min_busbw_gbps" => vec![Mode::Comm],
        "straggler_tolerance" => report.straggler_mode.into_iter().collect(),
        _ => report.run.modes.clone(),
    }
}

/// JUnit XML (through the `quick-junit` writer) for CI dashboards: one
/// testcase per acceptance rule plus `run_complete`, which fails when the
/// run stopped before every mode ran. A SKIPPED rule is a `<skipped>`
/// testcase, an INCOMPLETE or FAILED one a `<failure>`. `time` is the timed
/// steps behind the rule's figure; the suite carries the `hostname` (first
/// host of the run) and `properties` (run id, config hash, world size, ...).
pub fn junit(report: &Report) -> Result<String, ReportError> {
    use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};
    let suite_name = format!("mfubench.acceptance.{}", report.run.run_id);
    let mut suite = TestSuite::new(suite_name.as_str());
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&report.run.started_at) {
        suite.set_timestamp(t);
    }
    let total = timed_seconds(report, &Mode::ALL);
    if total.is_finite() && total >= 0.0 {
        suite.set_time(std::time::Duration::from_secs_f64(total));
    }
    if let Some(host) = report.nodes.first() {
        suite
            .extra
            .insert("hostname".into(), host.host.as_str().into());
    }
    for (k, v) in [
        ("run_id", report.run.run_id.clone()),
        ("config_hash", report.run.config_hash.clone()),
        ("world_size", report.run.world_size.to_string()),
        ("hosts", report.run.hosts.to_string()),
        ("backend", report.run.backend.clone()),
        ("model", report.run.model.clone()),
        ("complete", report.complete.to_string()),
        ("verdict", report.verdict.status.word().to_string()),
    ] {
        suite.add_property(Property::new(k, v));
    }
    let case = |name: &str, status: TestCaseStatus, secs: f64, out: &str| {
        let mut c = TestCase::new(name, status);
        c.set_classname(suite_name.as_str());
        if secs.is_finite() && secs >= 0.0 {
            c.set_time(std::time::Duration::from_secs_f64(secs));
        }
        if !out.is_empty() {
            c.set_system_out(out);
        }
        c
    };
    let failure = |kind: &str, message: &str, text: String| {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(message).set_type(kind).set_description(text);
        s
    };
    for r in &report.verdict.rules {
        let secs = timed_seconds(report, &rule_modes(&r.rule, report));
        let status = match r.status {
            Status::Pass => TestCaseStatus::success(),
            Status::Fail => failure(
                "acceptance",
                &r.detail,
                format!("{} {}: {}", r.rule, r.op, r.detail),
            ),
            Status::Incomplete => failure(
                "incomplete",
                &r.detail,
                format!("{} {}: {}", r.rule, r.op, r.detail),
            ),
            Status::Inconclusive => failure(
                "inconclusive",
                &r.detail,
                format!("{} {}: {}", r.rule, r.op, r.detail),
            ),
            Status::Skipped => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(r.detail.as_str());
                s
            }
        };
        let out = if r.status == Status::Pass {
            r.detail.as_str()
        } else {
            ""
        };
        suite.add_test_case(case(&r.rule, status, secs, out));
    }
    let modes_ran = report
        .run
        .modes
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ");
    let status = if report.complete {
        TestCaseStatus::success()
    } else {
        let msg = format!(
            "INCOMPLETE: the run stopped before every configured mode ran (finished: {})",
            if modes_ran.is_empty() {
                "none"
            } else {
                &modes_ran
            }
        );
        failure("incomplete", &msg, msg.clone())
    };
    suite.add_test_case(case("run_complete", status, total, ""));
    let mut junit = quick_junit::Report::new("mfubench");
    junit.add_test_suite(suite);
    junit.to_string().map_err(|e| ReportError::BadOption {
        option: "--junit".into(),
        message: format!("cannot write the JUnit XML: {e}"),
    })
}

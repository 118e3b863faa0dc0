//! The report's table of nodes: one row per node with each of its figures
//! as a fraction of the fleet's median node, the configuration fields
//! where it differs from the majority, its history findings, whether it
//! sat the later stages out, and whether the suite names it bad. Pure:
//! built from an `accept.json` record and its findings.

use super::{bad_nodes, node_figures, AcceptRecord, Component, Finding, Status};
use crate::stats;

/// The figures of the table, in column order: (figure name of
/// [`super::NodeFigures`], column heading).
pub const NODE_COLUMNS: [(&str, &str); 3] = [
    ("device_tflops", "device"),
    ("node_busbw_gbps", "node busbw"),
    ("link_gbps", "link"),
];

/// One node's row.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    /// Host name.
    pub host: String,
    /// Per [`NODE_COLUMNS`] entry: the node's figure over the fleet's
    /// median node's (1.0 = the median), None where the stage did not run
    /// or measured nothing on this node.
    pub vs_median: Vec<Option<f64>>,
    /// Configuration fields where the node differs from the majority
    /// (`config_drift` findings), in finding order.
    pub drift: Vec<String>,
    /// Per [`NODE_COLUMNS`] entry: the node's figure as a fraction of its
    /// expected value (device: the median over its devices; link: its
    /// fastest link's; the node stage has none), None without one.
    pub vs_expected: Vec<Option<f64>>,
    /// Per [`NODE_COLUMNS`] entry with a past: this run against the median
    /// of the node's own earlier runs, −0.12 for 12 % lower, and how many
    /// runs that median is of.
    pub trend: Vec<Option<(f64, usize)>>,
    /// History findings of the node: `figure against` (e.g. `link_gbps
    /// past`), in the record's order.
    pub regressed: Vec<String>,
    /// Whether the node sat the sweep and step stages out.
    pub left_out: bool,
    /// Whether the suite names it bad (`bad_nodes.txt`).
    pub bad: bool,
}

/// The rows of `rec`'s nodes, in node order, with `findings` (evaluated
/// with the settings the report uses). Known answers in the tests.
pub fn node_rows(rec: &AcceptRecord, findings: &[Finding]) -> Vec<NodeRow> {
    let figures = node_figures(rec);
    let medians: Vec<Option<f64>> = NODE_COLUMNS
        .iter()
        .map(|(name, _)| {
            let v: Vec<f64> = figures
                .iter()
                .filter_map(|f| f.figures.get(*name).copied())
                .collect();
            stats::median(&v).filter(|m| *m > 0.0)
        })
        .collect();
    let bad: Vec<String> = bad_nodes(findings).into_iter().map(|b| b.host).collect();
    figures
        .iter()
        .map(|f| {
            let vs_median = NODE_COLUMNS
                .iter()
                .zip(&medians)
                .map(|((name, _), m)| Some(f.figures.get(*name)? / (*m)?))
                .collect();
            let drift = findings
                .iter()
                .filter(|x| x.rule == "config_drift" && x.status == Status::Fail)
                .filter(
                    |x| matches!(&x.component, Some(Component::Node { host }) if *host == f.host),
                )
                .filter_map(|x| x.message.split(" = ").next().map(str::to_string))
                .collect();
            let device_expected: Vec<f64> = rec
                .device
                .iter()
                .flat_map(|d| &d.devices)
                .filter(|d| d.host == f.host)
                .filter_map(|d| Some(d.expected.as_ref()?.percent_of_expected / 100.0))
                .collect();
            let link_expected = rec.link.as_ref().and_then(|l| {
                let i = l.hosts.iter().position(|h| *h == f.host)?;
                l.links()
                    .into_iter()
                    .filter(|p| p.a == i || p.b == i)
                    .max_by(|x, y| x.gbps.total_cmp(&y.gbps))?
                    .expected
                    .map(|e| e.percent_of_expected / 100.0)
            });
            let vs_expected = NODE_COLUMNS
                .iter()
                .map(|(name, _)| match *name {
                    "device_tflops" => stats::median(&device_expected),
                    "link_gbps" => link_expected,
                    _ => None,
                })
                .collect();
            let trend = NODE_COLUMNS
                .iter()
                .map(|(name, _)| {
                    let t = rec
                        .trends
                        .iter()
                        .find(|t| t.host == f.host && t.figure == *name)?;
                    Some((t.change(), t.past_runs))
                })
                .collect();
            let regressed = rec
                .regressions
                .iter()
                .filter(|r| r.host == f.host)
                .map(|r| format!("{} {}", r.figure, r.against))
                .collect();
            NodeRow {
                host: f.host.clone(),
                vs_median,
                vs_expected,
                trend,
                drift,
                regressed,
                left_out: rec
                    .left_out
                    .as_ref()
                    .is_some_and(|lo| lo.hosts.contains(&f.host)),
                bad: bad.contains(&f.host),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{link, record};
    use super::super::*;
    use super::*;

    #[test]
    fn rows_give_each_figure_against_the_median_node_and_name_the_bad_one() {
        let mut r = record();
        r.stages = vec![Stage::Config, Stage::Link];
        r.hosts = vec!["h0".into(), "h1".into(), "h2".into()];
        // h2's links are at a tenth of the others: each node's fastest
        // link is 2, 2 and 0.2 GB/s; the median node's is 2.
        r.link = Some(link(&[(0, 1, 2.0), (0, 2, 0.2), (1, 2, 0.2)], 3));
        let fact = |host: &str, mtu: &str| NodeFacts {
            host: host.into(),
            facts: [("nic.eth0.mtu".to_string(), mtu.to_string())].into(),
        };
        r.config = Some(ConfigStage {
            nodes: vec![fact("h0", "1500"), fact("h1", "1500"), fact("h2", "1400")],
        });
        r.regressions = vec![Regression {
            host: "h2".into(),
            figure: "link_gbps".into(),
            value: 0.2,
            against: "past".into(),
            median: 2.0,
            n: 5,
            z: -9.0,
        }];
        r.left_out = Some(LeftOut {
            hosts: vec!["h2".into()],
            stages: vec![Stage::Sweep],
            kept: None,
        });
        let f = evaluate(&r, &r.settings);
        let rows = node_rows(&r, &f);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].vs_median, [None, None, Some(1.0)]);
        let h2 = &rows[2];
        assert_eq!(h2.host, "h2");
        assert!((h2.vs_median[2].unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(h2.drift, ["nic.eth0.mtu"]);
        assert_eq!(h2.regressed, ["link_gbps past"]);
        assert!(h2.left_out && h2.bad);
        assert!(!rows[0].bad && !rows[0].left_out && rows[0].drift.is_empty());
        // No expected values, no past: none shown.
        assert_eq!(rows[0].vs_expected, [None, None, None]);
        assert_eq!(rows[0].trend, [None, None, None]);
        // Line rates (10 Gb/s: 1.25 GB/s each way) and a past for h2: its
        // fastest link, 0.2 GB/s, is 16 % of expected and 90 % below the
        // median of its 5 earlier runs.
        for n in &mut r.config.as_mut().unwrap().nodes {
            n.facts.insert("nic.eth0.speed_mbps".into(), "10000".into());
        }
        fill_expected(&mut r, crate::config::Dtype::F32);
        r.trends = vec![Trend {
            host: "h2".into(),
            figure: "link_gbps".into(),
            value: 0.2,
            past_median: 2.0,
            past_runs: 5,
        }];
        let rows = node_rows(&r, &f);
        assert!((rows[2].vs_expected[2].unwrap() - 0.16).abs() < 1e-12);
        assert!((rows[0].vs_expected[2].unwrap() - 1.6).abs() < 1e-12);
        assert_eq!(rows[2].vs_expected[..2], [None, None]);
        let (change, runs) = rows[2].trend[2].unwrap();
        assert!((change + 0.9).abs() < 1e-12 && runs == 5);
    }
}

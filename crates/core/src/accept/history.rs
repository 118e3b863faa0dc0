//! Node history: each node's figures from every acceptance run, and the
//! rule that flags a node whose figure moved beyond its own past or beyond
//! the fleet's distribution (`node_regressed`), even when it still passes
//! the fraction rules.
//!
//! Pure: the launcher reads and appends the history files
//! (`<history>/<host>.jsonl`, one [`NodeFigures`] per line) and stores
//! what this module finds in accept.json ([`super::AcceptRecord::regressions`]).
//!
//! **Figures** of a node ([`node_figures`]): `device_tflops`, the median
//! TFLOP/s of its ranks in the device stage; `node_busbw_gbps`, its
//! bandwidth-bound busbw in the node stage; `link_gbps`, its fastest link
//! in the link stage. Higher is better for all three.
//!
//! **Identity**: the host name and the serials of its GPUs (sorted). A node
//! whose GPUs were swapped starts a new history: its past belongs to other
//! hardware.
//!
//! **The rule** ([`regressions`]), per figure, with a robust score
//! z = (x − median) / (1.4826 · MAD), the MAD floored at
//! [`MAD_FLOOR`] of the median (a history of identical numbers must not
//! make a 1 % dip infinite):
//! - own past: at least `accept.history_min_runs` earlier runs of the
//!   same identity ([`MIN_PAST`] by default);
//!   regressed when z ≤ −[`Z_LIMIT`] and x is more than [`MIN_DROP`] below
//!   the past median;
//! - fleet: at least [`MIN_FLEET`] nodes with the figure in this run;
//!   regressed when the same holds against the other nodes' median and MAD.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::AcceptRecord;
use crate::stats;

/// Robust z-score at or below which a figure has regressed.
pub const Z_LIMIT: f64 = 3.5;
/// Smallest drop below the median that counts (5 %): a tight history must
/// not flag a move no one would act on.
pub const MIN_DROP: f64 = 0.05;
/// Floor of the MAD, as a fraction of the median.
pub const MAD_FLOOR: f64 = 0.02;
/// Earlier runs of a node needed by default to judge it against its past
/// (`accept.history_min_runs`): with one, the MAD is its floor and any
/// drop past about 10 % flags, which a noisy figure (a link on a shared
/// machine) reaches by chance.
pub const MIN_PAST: usize = 3;
/// Nodes needed to judge a node against the fleet: with fewer, the other
/// nodes' median and MAD are too rough (on 5 namespace hosts sharing 2
/// cores, a healthy node's fastest link measured 28 % below the others').
pub const MIN_FLEET: usize = 8;

/// One node's figures from one acceptance run: a line of its history file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFigures {
    /// The run.
    pub run_id: String,
    /// When accept.json was written (RFC 3339).
    pub written_at: String,
    /// Host name.
    pub host: String,
    /// Serials of the node's GPUs, sorted (empty on CPUs).
    #[serde(default)]
    pub serials: Vec<String>,
    /// Figure name → value (`device_tflops`, `node_busbw_gbps`,
    /// `link_gbps`); a stage that did not run leaves its figure out.
    pub figures: BTreeMap<String, f64>,
}

/// A figure that moved beyond a node's past or the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    /// Host name.
    pub host: String,
    /// Figure name.
    pub figure: String,
    /// This run's value.
    pub value: f64,
    /// `past` (the node's own history) or `fleet` (this run's other nodes).
    pub against: String,
    /// The reference median.
    pub median: f64,
    /// Values the reference was made of.
    pub n: usize,
    /// The robust z-score.
    pub z: f64,
}

/// One node figure against the node's own past.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Host name.
    pub host: String,
    /// Figure name (`device_tflops`, `node_busbw_gbps`, `link_gbps`).
    pub figure: String,
    /// This run's value.
    pub value: f64,
    /// The median of the node's earlier runs (same GPU serials).
    pub past_median: f64,
    /// How many earlier runs.
    pub past_runs: usize,
}

impl Trend {
    /// This run against the past median: −0.12 is 12 % lower.
    pub fn change(&self) -> f64 {
        self.value / self.past_median - 1.0
    }
}

/// `figure`'s earlier values of `node`: its history's runs with the same
/// GPU serials, other than this run.
fn own_past(
    node: &NodeFigures,
    figure: &str,
    past: &BTreeMap<String, Vec<NodeFigures>>,
) -> Vec<f64> {
    past.get(&node.host)
        .into_iter()
        .flatten()
        .filter(|p| p.serials == node.serials && p.run_id != node.run_id)
        .filter_map(|p| p.figures.get(figure).copied())
        .filter(|v| v.is_finite())
        .collect()
}

/// Every figure of `current` that has at least one earlier value of its
/// node (same serials, another run), against the median of those.
pub fn trends(current: &[NodeFigures], past: &BTreeMap<String, Vec<NodeFigures>>) -> Vec<Trend> {
    let mut out = Vec::new();
    for node in current {
        for (figure, &x) in &node.figures {
            let own = own_past(node, figure, past);
            if let Some(m) = stats::median(&own).filter(|m| *m > 0.0) {
                out.push(Trend {
                    host: node.host.clone(),
                    figure: figure.clone(),
                    value: x,
                    past_median: m,
                    past_runs: own.len(),
                });
            }
        }
    }
    out
}

/// Every node's figures in `rec`, in host order.
pub fn node_figures(rec: &AcceptRecord) -> Vec<NodeFigures> {
    let mut out: Vec<NodeFigures> = Vec::new();
    for (i, host) in rec.hosts.iter().enumerate() {
        let mut figures = BTreeMap::new();
        if let Some(d) = &rec.device {
            let mine: Vec<f64> = d
                .devices
                .iter()
                .filter(|x| &x.host == host)
                .map(|x| x.tflops)
                .collect();
            if let Some(m) = stats::median(&mine) {
                figures.insert("device_tflops".to_string(), m);
            }
        }
        if let Some(n) = &rec.node {
            let large = n.sizes_bytes.len().saturating_sub(1);
            if let Some(v) = n
                .nodes
                .iter()
                .find(|x| &x.host == host)
                .and_then(|x| x.busbw_gbps.get(large).copied())
            {
                figures.insert("node_busbw_gbps".to_string(), v);
            }
        }
        if let Some(l) = &rec.link {
            if let Some(best) = l
                .matrix()
                .get(i)
                .and_then(|row| row.iter().flatten().copied().reduce(f64::max))
            {
                figures.insert("link_gbps".to_string(), best);
            }
        }
        figures.retain(|_, v| v.is_finite());
        let mut serials: Vec<String> = rec
            .gpus
            .iter()
            .filter(|g| &g.host == host)
            .filter_map(|g| g.gpu.serial.clone())
            .collect();
        serials.sort();
        out.push(NodeFigures {
            run_id: rec.run_id.clone(),
            written_at: rec.written_at.clone(),
            host: host.clone(),
            serials,
            figures,
        });
    }
    out
}

/// The robust score of `x` against `values` (None when they are empty).
fn score(x: f64, values: &[f64]) -> Option<(f64, f64)> {
    let med = stats::median(values)?;
    let dev: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
    let mad = stats::median(&dev)?.max(MAD_FLOOR * med.abs());
    if mad <= 0.0 {
        return None;
    }
    Some((med, (x - med) / (1.4826 * mad)))
}

fn regressed(x: f64, med: f64, z: f64) -> bool {
    z <= -Z_LIMIT && x < med * (1.0 - MIN_DROP)
}

/// The regressions of this run's nodes (`current`) against each node's
/// past (`past`: earlier entries by host, any order; entries of other GPU
/// serials are not its past) and against the other nodes of this run.
pub fn regressions(
    current: &[NodeFigures],
    past: &BTreeMap<String, Vec<NodeFigures>>,
    min_past: usize,
) -> Vec<Regression> {
    let mut out = Vec::new();
    for node in current {
        for (figure, &x) in &node.figures {
            // The first reference the figure regressed against, if any.
            let judge = |against: &str, values: Vec<f64>, enough: bool| {
                let (median, z) = score(x, &values).filter(|_| enough)?;
                regressed(x, median, z).then(|| Regression {
                    host: node.host.clone(),
                    figure: figure.clone(),
                    value: x,
                    against: against.into(),
                    median,
                    n: values.len(),
                    z,
                })
            };
            let own = own_past(node, figure, past);
            let others: Vec<f64> = current
                .iter()
                .filter(|o| o.host != node.host)
                .filter_map(|o| o.figures.get(figure).copied())
                .collect();
            let (own_ok, fleet_ok) = (own.len() >= min_past.max(1), others.len() + 1 >= MIN_FLEET);
            out.extend(judge("past", own, own_ok).or_else(|| judge("fleet", others, fleet_ok)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(run: &str, host: &str, tflops: f64) -> NodeFigures {
        NodeFigures {
            run_id: run.into(),
            written_at: String::new(),
            host: host.into(),
            serials: Vec::new(),
            figures: [("device_tflops".to_string(), tflops)].into(),
        }
    }

    #[test]
    fn a_trend_is_this_run_against_the_median_of_its_own_past() {
        let past: BTreeMap<String, Vec<NodeFigures>> = [(
            "n1".to_string(),
            [100.0, 90.0, 110.0]
                .iter()
                .enumerate()
                .map(|(i, &v)| entry(&format!("r{i}"), "n1", v))
                .collect(),
        )]
        .into();
        let t = trends(&[entry("now", "n1", 88.0), entry("now", "n2", 50.0)], &past);
        assert_eq!(t.len(), 1, "n2 has no past: no trend");
        assert_eq!((t[0].past_median, t[0].past_runs), (100.0, 3));
        assert!((t[0].change() + 0.12).abs() < 1e-12);
        // New GPUs (other serials): a new history, no trend.
        let mut other = entry("now", "n1", 88.0);
        other.serials = vec!["S2".into()];
        assert!(trends(&[other], &past).is_empty());
    }

    #[test]
    fn a_node_is_judged_against_its_own_past() {
        // Past 100, 101, 99, 100: MAD 0.5, floored at 2 (2 % of 100).
        let past: BTreeMap<String, Vec<NodeFigures>> = [(
            "n1".to_string(),
            [100.0, 101.0, 99.0, 100.0]
                .iter()
                .enumerate()
                .map(|(i, &v)| entry(&format!("r{i}"), "n1", v))
                .collect(),
        )]
        .into();
        // 88: z = (88 − 100) / (1.4826 · 2) = −4.05, 12 % below: regressed.
        let r = regressions(&[entry("now", "n1", 88.0)], &past, MIN_PAST);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].against.as_str(), r[0].n), ("past", 4));
        assert!((r[0].z + 12.0 / (1.4826 * 2.0)).abs() < 1e-12, "{r:?}");
        // 95: 5 % down, z = −1.7: within the node's noise.
        assert!(regressions(&[entry("now", "n1", 95.0)], &past, MIN_PAST).is_empty());
        // Too little past: nothing said.
        let short: BTreeMap<String, Vec<NodeFigures>> =
            [("n1".to_string(), vec![entry("r0", "n1", 100.0)])].into();
        assert!(regressions(&[entry("now", "n1", 50.0)], &short, MIN_PAST).is_empty());
        // accept.history_min_runs = 1: one earlier run is enough; its MAD is
        // the floor (2 of 100), so 88 is z = −4.05 as above, and 92 is
        // within noise (z = −2.7).
        let r = regressions(&[entry("now", "n1", 88.0)], &short, 1);
        assert_eq!((r.len(), r[0].n), (1, 1), "{r:?}");
        assert!(regressions(&[entry("now", "n1", 92.0)], &short, 1).is_empty());
        // Other GPUs (new serials): the past is another node's.
        let mut swapped = entry("now", "n1", 50.0);
        swapped.serials = vec!["S2".into()];
        assert!(regressions(&[swapped], &past, MIN_PAST).is_empty());
    }

    #[test]
    fn a_node_is_judged_against_the_fleet() {
        let mut now: Vec<NodeFigures> = (0..8)
            .map(|i| entry("now", &format!("n{i}"), 100.0 + i as f64))
            .collect();
        now[3] = entry("now", "n3", 80.0);
        let r = regressions(&now, &BTreeMap::new(), MIN_PAST);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].host.as_str(), r[0].against.as_str()), ("n3", "fleet"));
        assert_eq!(r[0].n, 7);
        // Seven nodes: too few to call one an outlier.
        assert!(regressions(&now[..7], &BTreeMap::new(), MIN_PAST).is_empty());
    }
}

//! The rules: stage results in, findings out (in the one vocabulary of
//! [`crate::verdict`]: PASS / SKIPPED / INCONCLUSIVE / FAIL / INCOMPLETE),
//! each naming the device, node or link it is about.

use super::*;
use crate::stats;
use crate::verdict::{self, judge, Bound};

fn fmt_gbps(x: f64) -> String {
    format!("{x:.3} GB/s")
}

/// Applies the rules to the record's stages with `s`'s thresholds: one
/// finding per rule and stage, plus one per named device, node or link.
/// Missing data is never FAIL: a requested stage that has no results (a
/// kill, a timeout: the run stopped before it) is INCOMPLETE
/// (`stage_complete`), which is not a pass either; stages not requested
/// are SKIPPED. A figure that is not a number is INCONCLUSIVE.
pub fn evaluate(r: &AcceptRecord, s: &AcceptSettings) -> Vec<Finding> {
    let mut out = Vec::new();
    for stage in Stage::ALL {
        if r.left_out.as_ref().and_then(|lo| lo.stages.first()) == Some(&stage) {
            left_out_rule(r, &mut out);
        }
        let requested = r.stages.contains(&stage);
        let present = match stage {
            Stage::Config => r.config.is_some(),
            Stage::Device => r.device.is_some(),
            Stage::Node => r.node.is_some(),
            Stage::Link => r.link.is_some(),
            Stage::Sweep => r.sweep.is_some(),
            Stage::Step => r.step.is_some(),
        };
        if !requested {
            out.push(Finding {
                stage,
                rule: "stage_complete".into(),
                status: Status::Skipped,
                component: None,
                message: "not requested".into(),
            });
            continue;
        }
        if !present {
            // INCOMPLETE even in a record that says it completed: the run
            // did not measure what was asked (never FAIL: no data).
            out.push(Finding {
                stage,
                rule: "stage_complete".into(),
                status: Status::Incomplete,
                component: None,
                message: if r.complete {
                    "requested but has no results".into()
                } else {
                    "requested but has no results (the run stopped before it finished)".into()
                },
            });
            continue;
        }
        match stage {
            Stage::Config => config_rule(r.config.as_ref().expect("present"), &mut out),
            Stage::Device => device_rule(r.device.as_ref().expect("present"), s, &mut out),
            Stage::Node => node_rule(r.node.as_ref().expect("present"), s, &r.gpus, &mut out),
            Stage::Link => {
                let l = r.link.as_ref().expect("present");
                link_rules(l, s, None, &mut out);
                for rail in &l.rails {
                    rail_rules(l, rail, s, &mut out);
                }
            }
            Stage::Sweep => sweep_rule(r.sweep.as_ref().expect("present"), &mut out),
            Stage::Step => {
                let st = r.step.as_ref().expect("present");
                if let Some(why) = &st.stopped {
                    out.push(Finding {
                        stage,
                        rule: "step_budget".into(),
                        status: Status::Inconclusive,
                        component: None,
                        message: format!("PARTIAL: {why}"),
                    });
                }
                out.push(Finding {
                    stage,
                    rule: "step_ran".into(),
                    status: Status::Pass,
                    component: None,
                    message: format!(
                        "training step measured (MFU overlapped {}); its [acceptance] rules are in the report of {}",
                        st.mfu_overlapped
                            .map(|m| format!("{:.1} %", m * 100.0))
                            .unwrap_or_else(|| "-".into()),
                        st.run_json
                    ),
                });
            }
        }
    }
    xid_rule(r, &mut out);
    regression_rule(r, &mut out);
    out
}

/// One SKIPPED line per node left out of the sweep and step stages: what
/// they measured, they measured without it.
fn left_out_rule(r: &AcceptRecord, out: &mut Vec<Finding>) {
    let Some(lo) = &r.left_out else { return };
    let Some(&first) = lo.stages.first() else {
        return;
    };
    let stages: Vec<&str> = lo.stages.iter().map(|s| s.name()).collect();
    for host in &lo.hosts {
        out.push(Finding {
            stage: first,
            rule: "left_out".into(),
            status: Status::Skipped,
            component: Some(Component::Node { host: host.clone() }),
            message: format!(
                "left out of the {} {}: found bad before {} (--keep-bad or accept.keep_bad keeps it)",
                stages.join(" and "),
                if stages.len() > 1 { "stages" } else { "stage" },
                if stages.len() > 1 { "them" } else { "it" },
            ),
        });
    }
}

/// The nodes the sweep and step stages (those of `stages`) leave out,
/// decided from the findings of the stages before them: the nodes
/// [`bad_nodes`] names, so that one bad node or link cannot stretch the
/// stages every rank runs together. They are kept, and `kept` says why,
/// with `keep_bad`; when one of them is the first node (rank 0 writes the
/// results); when every node is bad. `step_keeps_all` is why the step
/// cannot run on fewer nodes (a parallel layout), if it cannot: the step
/// then keeps them and the sweep alone leaves them out. None when neither
/// stage is in `stages`. Known answers in the tests.
pub fn left_out(
    findings: &[Finding],
    hosts: &[String],
    stages: &[Stage],
    keep_bad: bool,
    step_keeps_all: Option<&str>,
) -> Option<LeftOut> {
    let mut later: Vec<Stage> = stages
        .iter()
        .copied()
        .filter(|s| matches!(s, Stage::Sweep | Stage::Step))
        .collect();
    if later.is_empty() {
        return None;
    }
    let named: Vec<String> = bad_nodes(findings).into_iter().map(|b| b.host).collect();
    let bad: Vec<String> = hosts
        .iter()
        .filter(|h| named.contains(h))
        .cloned()
        .collect();
    let kept = |why: String| LeftOut {
        hosts: Vec::new(),
        stages: later.clone(),
        kept: (!bad.is_empty()).then_some(why),
    };
    let list = bad.join(", ");
    if bad.is_empty() {
        return Some(kept(String::new()));
    }
    if keep_bad {
        return Some(kept(format!("{list} kept (--keep-bad)")));
    }
    if bad.len() == hosts.len() {
        return Some(kept(format!("{list} kept: every node is bad")));
    }
    if hosts.first().is_some_and(|h| bad.contains(h)) {
        return Some(kept(format!(
            "{list} kept: {} is rank 0's node, which writes the results",
            hosts[0]
        )));
    }
    let mut note = None;
    if let (true, Some(why)) = (later.contains(&Stage::Step), step_keeps_all) {
        later.retain(|s| *s != Stage::Step);
        note = Some(format!("{list} kept in the step: {why}"));
    }
    Some(LeftOut {
        hosts: if later.is_empty() { Vec::new() } else { bad },
        stages: later,
        kept: note,
    })
}

/// XIDs since the suite opened: every GPU with an XID is a finding of its
/// own (FAIL, naming host, local rank and UUID); a stage-wide PASS when the
/// watched GPUs saw none. GPUs whose driver cannot report XIDs are SKIPPED
/// (said, never counted as clean); a failed poll with no XID is
/// INCONCLUSIVE. On CPUs (no GPU telemetry) there is no line. The finding's
/// stage is the one the XID was seen after; stage-wide lines carry the last
/// requested stage (the watch covers the whole suite up to it).
fn xid_rule(r: &AcceptRecord, out: &mut Vec<Finding>) {
    let last = r.stages.last().copied().unwrap_or(Stage::Device);
    if r.gpus.is_empty() {
        if r.backend != "cpu" {
            out.push(Finding {
                stage: last,
                rule: "gpu_xid".into(),
                status: Status::Skipped,
                component: None,
                message: "no GPU telemetry (NVML unavailable): XIDs not watched".into(),
            });
        }
        return;
    }
    let (mut clean, mut failed) = (0usize, 0usize);
    let mut unwatched: Vec<String> = Vec::new();
    for g in &r.gpus {
        let device = Component::Device {
            rank: g.rank,
            host: g.host.clone(),
            local_rank: g.local_rank,
        };
        match (&g.gpu.xid, g.gpu.xid.seen()) {
            (_, Some(seen)) => {
                failed += 1;
                out.push(Finding {
                    stage: g.gpu.xid.events().first().map(|e| e.stage).unwrap_or(last),
                    rule: "gpu_xid".into(),
                    status: Status::Fail,
                    component: Some(device),
                    message: format!("{seen} ({})", g.gpu.identity()),
                });
            }
            (
                XidWatch::Watched {
                    poll_error: Some(e),
                    ..
                },
                None,
            ) => out.push(Finding {
                stage: last,
                rule: "gpu_xid".into(),
                status: Status::Inconclusive,
                component: Some(device),
                message: format!(
                    "no XID seen, but a poll failed {e}: later XIDs may be missing ({})",
                    g.gpu.identity()
                ),
            }),
            (XidWatch::Watched { .. }, None) => clean += 1,
            (other, None) => unwatched.push(other.text()),
        }
    }
    if !unwatched.is_empty() {
        unwatched.dedup();
        out.push(Finding {
            stage: last,
            rule: "gpu_xid".into(),
            status: Status::Skipped,
            component: None,
            message: format!(
                "{} of {} GPU(s) not watched for XIDs: {}",
                r.gpus.len() - clean - failed,
                r.gpus.len(),
                unwatched.join("; ")
            ),
        });
    }
    if failed == 0 && clean > 0 {
        out.push(Finding {
            stage: last,
            rule: "gpu_xid".into(),
            status: Status::Pass,
            component: None,
            message: format!(
                "{clean} of {} GPU(s) watched since the suite opened: no XID",
                r.gpus.len()
            ),
        });
    }
}

/// A component's figure against `fraction × reference` ([`judge`]): PASS,
/// FAIL, or INCONCLUSIVE when the figure is not a number (a missing number
/// never passes, and is not a bad one either).
fn at_least(x: f64, limit: f64) -> Status {
    judge(x, Bound::AtLeast, limit, None)
}

fn device_rule(d: &DeviceStage, s: &AcceptSettings, out: &mut Vec<Finding>) {
    let rates: Vec<f64> = d.devices.iter().map(|x| x.tflops).collect();
    let Some(med) = stats::median(&rates) else {
        out.push(Finding {
            stage: Stage::Device,
            rule: "device_rate".into(),
            status: Status::Skipped,
            component: None,
            message: "no device measured".into(),
        });
        return;
    };
    if d.devices.len() < 2 {
        out.push(Finding {
            stage: Stage::Device,
            rule: "device_rate".into(),
            status: Status::Inconclusive,
            component: None,
            message: format!("one device ({med:.3} TFLOP/s): no other device to compare it with"),
        });
        return;
    }
    let limit = s.min_device_fraction * med;
    let mut bad = 0;
    for x in &d.devices {
        let status = at_least(x.tflops, limit);
        if status != Status::Pass {
            bad += 1;
            out.push(Finding {
                stage: Stage::Device,
                rule: "device_rate".into(),
                status,
                component: Some(Component::Device {
                    rank: x.rank,
                    host: x.host.clone(),
                    local_rank: x.local_rank,
                }),
                message: format!(
                    "{:.3} TFLOP/s {} {} × median {:.3} TFLOP/s, {} ({})",
                    x.tflops,
                    rel(status),
                    s.min_device_fraction,
                    med,
                    x.peak_text(),
                    x.reason()
                ),
            });
        }
    }
    if bad == 0 {
        out.push(Finding {
            stage: Stage::Device,
            rule: "device_rate".into(),
            status: Status::Pass,
            component: None,
            message: format!(
                "{} devices, every one ≥ {} × median {:.3} TFLOP/s (lowest {})",
                d.devices.len(),
                s.min_device_fraction,
                med,
                d.devices
                    .iter()
                    .min_by(|a, b| a.tflops.total_cmp(&b.tflops))
                    .map(|x| format!("{:.3}, {}", x.tflops, x.peak_text()))
                    .unwrap_or_default()
            ),
        });
    }
}

/// The GPU reason shown beside a flagged node: of the host's GPUs, the one
/// read at the lowest SM clock after `stage` (a throttled GPU slows the
/// node's collectives), with its local rank and identity. None without
/// GPU readings.
pub fn node_gpu_reason(gpus: &[RankGpu], host: &str, stage: Stage) -> Option<String> {
    gpus.iter()
        .filter(|g| g.host == host)
        .filter_map(|g| g.gpu.at(stage).map(|r| (g, r)))
        .min_by_key(|(_, r)| r.sm_clock_mhz.unwrap_or(u32::MAX))
        .map(|(g, r)| {
            format!(
                "GPU of local rank {} ({}): {}{}",
                g.local_rank,
                g.gpu.identity(),
                r.reason(),
                g.gpu
                    .xid
                    .seen()
                    .map(|x| format!(", {x}"))
                    .unwrap_or_default()
            )
        })
}

fn node_rule(n: &NodeStage, s: &AcceptSettings, gpus: &[RankGpu], out: &mut Vec<Finding>) {
    // Fewer all-reduces than asked: that node's figures stand on fewer
    // samples, and the stage cannot pass as a whole (a node named slow is
    // still named: its all-reduces were slow).
    for x in &n.nodes {
        if let Some(why) = &x.stopped {
            out.push(Finding {
                stage: Stage::Node,
                rule: "node_budget".into(),
                status: Status::Inconclusive,
                component: Some(Component::Node {
                    host: x.host.clone(),
                }),
                message: format!("PARTIAL: {why}"),
            });
        }
    }
    let large = n.sizes_bytes.len().saturating_sub(1);
    let multi: Vec<&NodeResult> = n.nodes.iter().filter(|x| x.ranks >= 2).collect();
    for x in n.nodes.iter().filter(|x| x.ranks < 2) {
        out.push(Finding {
            stage: Stage::Node,
            rule: "node_busbw".into(),
            status: Status::Skipped,
            component: Some(Component::Node {
                host: x.host.clone(),
            }),
            message: "one rank on the node: no intra-node all-reduce to measure".into(),
        });
    }
    let bw: Vec<f64> = multi
        .iter()
        .map(|x| x.busbw_gbps.get(large).copied().unwrap_or(f64::NAN))
        .collect();
    let Some(med) = stats::median(&bw) else {
        out.push(Finding {
            stage: Stage::Node,
            rule: "node_busbw".into(),
            status: Status::Skipped,
            component: None,
            message: "no node has two or more ranks".into(),
        });
        return;
    };
    if multi.len() < 2 {
        out.push(Finding {
            stage: Stage::Node,
            rule: "node_busbw".into(),
            status: Status::Inconclusive,
            component: None,
            message: format!(
                "one node measured ({}): no other node to compare it with",
                fmt_gbps(med)
            ),
        });
        return;
    }
    let limit = s.min_node_fraction * med;
    let mut bad = 0;
    for (x, b) in multi.iter().zip(&bw) {
        let status = at_least(*b, limit);
        if status != Status::Pass {
            bad += 1;
            out.push(Finding {
                stage: Stage::Node,
                rule: "node_busbw".into(),
                status,
                component: Some(Component::Node {
                    host: x.host.clone(),
                }),
                message: format!(
                    "intra-node busbw {} {} {} × median {}{}",
                    fmt_gbps(*b),
                    rel(status),
                    s.min_node_fraction,
                    fmt_gbps(med),
                    node_gpu_reason(gpus, &x.host, Stage::Node)
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            });
        }
    }
    if bad == 0 {
        out.push(Finding {
            stage: Stage::Node,
            rule: "node_busbw".into(),
            status: Status::Pass,
            component: None,
            message: format!(
                "{} nodes, every one ≥ {} × median busbw {}",
                multi.len(),
                s.min_node_fraction,
                fmt_gbps(med)
            ),
        });
    }
}

/// The link rule's reference bandwidth: the median over nodes of each
/// node's fastest measured link. (The median over pairs fails on small
/// clusters: with 3 nodes one bad node is in 2 of the 3 pairs, and the
/// median pair is then a slow one.) None without measured pairs.
pub fn link_reference(l: &LinkStage) -> Option<f64> {
    let best: Vec<f64> = l
        .matrix()
        .iter()
        .filter_map(|row| row.iter().flatten().copied().reduce(f64::max))
        .collect();
    stats::median(&best)
}

/// Most isolation rounds after a screen.
pub const MAX_ISOLATION_ROUNDS: usize = 4;

/// The isolation rounds after a screen (a sampled schedule): every
/// *suspect*, a node all of whose measured links are slow, is paired with
/// a *known-good* node (one with measured links, none slow) it has not met
/// yet, each good node once per round, until every suspect has a new
/// partner or [`MAX_ISOLATION_ROUNDS`] rounds. A screen cannot tell a bad
/// node from a good one between two bad neighbours (both see only slow
/// links); a link to a known-good node can: slow again, the node is bad;
/// fast, its slow links were its neighbours' fault. With one bad node
/// among N this is one round, not the tournament's N − 1. No reference,
/// no suspect or no good node: no round.
pub fn isolation_rounds(l: &LinkStage, s: &AcceptSettings) -> Vec<Vec<Pair>> {
    let Some((suspects, good)) = suspects_and_good(l, s) else {
        return Vec::new();
    };
    let m = l.matrix();
    let mut rounds: Vec<Vec<Pair>> = Vec::new();
    let mut pending = suspects;
    while !pending.is_empty() && rounds.len() < MAX_ISOLATION_ROUNDS {
        let mut used: Vec<usize> = Vec::new();
        let mut round: Vec<Pair> = Vec::new();
        let mut left: Vec<usize> = Vec::new();
        for &x in &pending {
            let met = |g: usize| {
                m[x][g].is_some() || rounds.iter().flatten().any(|&p| p == (x.min(g), x.max(g)))
            };
            match good
                .iter()
                .copied()
                .find(|&g| !used.contains(&g) && !met(g))
            {
                Some(g) => {
                    used.push(g);
                    round.push((x.min(g), x.max(g)));
                }
                None if good.iter().any(|&g| !met(g)) => left.push(x),
                None => {}
            }
        }
        if round.is_empty() {
            break;
        }
        round.sort();
        rounds.push(round);
        pending = left;
    }
    rounds
}

/// The suspects (nodes all of whose measured links are slow) and the
/// known-good nodes (measured links, none slow) of a link stage's pairs;
/// None without a reference.
fn suspects_and_good(l: &LinkStage, s: &AcceptSettings) -> Option<(Vec<usize>, Vec<usize>)> {
    let limit = s.min_link_fraction * link_reference(l)?;
    let m = l.matrix();
    let links = |i: usize| -> Vec<f64> { m[i].iter().flatten().copied().collect() };
    let all = |slow: bool| -> Vec<usize> {
        (0..l.hosts.len())
            .filter(|&i| {
                let v = links(i);
                !v.is_empty() && v.iter().all(|&g| (g < limit) == slow)
            })
            .collect()
    };
    Some((all(true), all(false)))
}

/// One pair of an isolation round: why it was made and what it showed.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationStep {
    /// The round, 0-based among all the stage's rounds.
    pub round: usize,
    /// The suspect (a node index): all its links in the screen were slow.
    pub suspect: usize,
    /// The known-good node it was paired with.
    pub partner: usize,
    /// How many links the suspect had in the screen.
    pub screen_links: usize,
    /// The pair's rate, GB/s (None: not measured, a stage cut short).
    pub gbps: Option<f64>,
    /// Whether that rate is below the rule's limit (the whole stage's
    /// reference): slow again, the suspect is the bad node; fast, its slow
    /// links were its neighbours' fault.
    pub slow: bool,
}

/// The isolation path of a link stage, for the report: each pair of the
/// isolation rounds (the last `isolation_rounds` of `rounds`), with the
/// suspect the screen (the rounds before) named and the known-good
/// partner it was given, as [`isolation_rounds`] chose them.
pub fn isolation_path(l: &LinkStage, s: &AcceptSettings) -> Vec<IsolationStep> {
    let first = l.rounds.len().saturating_sub(l.isolation_rounds);
    let mut screen = l.clone();
    screen.pairs.retain(|p| p.round < first);
    let Some((suspects, _)) = suspects_and_good(&screen, s) else {
        return Vec::new();
    };
    let limit = link_reference(l).map(|r| s.min_link_fraction * r);
    let screen_links = screen.links();
    let mut out = Vec::new();
    for (round, pairs) in l.rounds.iter().enumerate().skip(first) {
        for &(a, b) in pairs {
            let (suspect, partner) = if suspects.contains(&a) {
                (a, b)
            } else {
                (b, a)
            };
            let gbps = l
                .pairs
                .iter()
                .filter(|p| p.round == round && (p.a, p.b) == (a, b))
                .map(|p| p.gbps)
                .reduce(f64::max);
            out.push(IsolationStep {
                round,
                suspect,
                partner,
                screen_links: screen_links
                    .iter()
                    .filter(|p| p.a == suspect || p.b == suspect)
                    .count(),
                gbps,
                slow: gbps.zip(limit).is_some_and(|(g, lim)| g < lim),
            });
        }
    }
    out
}

/// The rules of one rail: a node without an address on it is named (its
/// NIC is missing or down), then the link rules on the rail's own pairs
/// against the rail's own reference.
fn rail_rules(l: &LinkStage, rail: &RailStage, s: &AcceptSettings, out: &mut Vec<Finding>) {
    for (i, a) in rail.addresses.iter().enumerate() {
        if a.is_none() {
            out.push(Finding {
                stage: Stage::Link,
                rule: "rail_address".into(),
                status: Status::Fail,
                component: Some(Component::Node {
                    host: l.hosts.get(i).cloned().unwrap_or_default(),
                }),
                message: format!(
                    "rail {}: the node has no IPv4 address on {} (the NIC is missing, down or unaddressed), so none of its links on this rail ran",
                    rail.rail, rail.rail
                ),
            });
        }
    }
    link_rules(&rail.as_link(l), s, Some(&rail.rail), out);
}

/// The link rules on one set of pairs: the link stage's own, or one
/// rail's (`rail`: its interface, named in every line and link).
fn link_rules(l: &LinkStage, s: &AcceptSettings, rail: Option<&str>, out: &mut Vec<Finding>) {
    let n = l.hosts.len();
    let on = rail.map(|r| format!("rail {r}: ")).unwrap_or_default();
    // Fewer passes than asked: every link's figure stands on fewer
    // exchanges, so the stage as a whole cannot pass (a link named slow is
    // still named: its passes were slow).
    if let Some(why) = &l.stopped {
        out.push(Finding {
            stage: Stage::Link,
            rule: "link_budget".into(),
            status: Status::Inconclusive,
            component: None,
            message: format!(
                "{on}PARTIAL: {} of {} timed passes; {why}",
                l.iterations, s.iterations
            ),
        });
    }
    let Some(reference) = link_reference(l) else {
        out.push(Finding {
            stage: Stage::Link,
            rule: "link_bandwidth".into(),
            status: Status::Skipped,
            component: None,
            message: format!("{on}{n} node(s): no pair of nodes to measure"),
        });
        return;
    };
    if n < 3 {
        out.push(Finding {
            stage: Stage::Link,
            rule: "link_bandwidth".into(),
            status: Status::Inconclusive,
            component: None,
            message: format!(
                "{on}two nodes, one link ({}): no other link to compare it with",
                fmt_gbps(reference)
            ),
        });
        return;
    }
    let limit = s.min_link_fraction * reference;
    let slow = |p: &PairResult| at_least(p.gbps, limit) == Status::Fail;
    let mut bad = 0;
    let links = l.links();
    for p in &links {
        let status = at_least(p.gbps, limit);
        if status == Status::Pass {
            continue;
        }
        bad += 1;
        out.push(Finding {
            stage: Stage::Link,
            rule: "link_bandwidth".into(),
            status,
            component: Some(Component::Link {
                a: l.hosts[p.a].clone(),
                b: l.hosts[p.b].clone(),
                rail: rail.map(str::to_string),
            }),
            message: format!(
                "{} {} {} × reference {} (median over nodes of their fastest link)",
                fmt_gbps(p.gbps),
                rel(status),
                s.min_link_fraction,
                fmt_gbps(reference)
            ),
        });
    }
    // A node every one of whose (two or more) measured links is slow is the
    // likelier culprit than each of its links.
    for (i, host) in l.hosts.iter().enumerate() {
        let mine: Vec<&PairResult> = links.iter().filter(|p| p.a == i || p.b == i).collect();
        if mine.len() >= 2 && mine.iter().all(|p| slow(p)) {
            let best = mine.iter().map(|p| p.gbps).fold(0.0, f64::max);
            out.push(Finding {
                stage: Stage::Link,
                rule: "node_links".into(),
                status: Status::Fail,
                component: Some(Component::Node { host: host.clone() }),
                message: format!(
                    "{on}all {} of its links are slow (fastest {} < {} × reference {})",
                    mine.len(),
                    fmt_gbps(best),
                    s.min_link_fraction,
                    fmt_gbps(reference)
                ),
            });
        }
    }
    if bad == 0 {
        // A sampled screen passes only the pairs it measured: a link slow
        // between two otherwise healthy nodes elsewhere is not seen, and
        // the line says how much was covered.
        let all = n * (n - 1) / 2;
        let covered = if links.len() < all {
            format!(
                "; {} of {all} pairs measured ({:.1} %): a link slow only between two healthy nodes is seen only among those (--links all measures every pair)",
                links.len(),
                100.0 * links.len() as f64 / all as f64
            )
        } else {
            String::new()
        };
        out.push(Finding {
            stage: Stage::Link,
            rule: "link_bandwidth".into(),
            status: Status::Pass,
            component: None,
            message: format!(
                "{on}{} links ({} schedule), every one ≥ {} × reference {}{covered}",
                links.len(),
                l.schedule,
                s.min_link_fraction,
                fmt_gbps(reference)
            ),
        });
    }
}

fn sweep_rule(w: &SweepStage, out: &mut Vec<Finding>) {
    if w.tables.is_empty() {
        out.push(Finding {
            stage: Stage::Sweep,
            rule: "sweep_wrong".into(),
            status: Status::Skipped,
            component: None,
            message: "no collective in the sweep".into(),
        });
    }
    for t in &w.tables {
        let name = t.collective.name();
        let wrong: u64 = t.rows.iter().map(|r| r.wrong).sum();
        let (status, message) = if t.rows.is_empty() && t.stopped.is_some() {
            (
                Status::Inconclusive,
                format!(
                    "{name}: not swept: {}",
                    t.stopped.as_deref().unwrap_or_default()
                ),
            )
        } else if t.rows.is_empty() {
            (Status::Skipped, format!("{name}: no size in the sweep"))
        } else if wrong > 0 {
            let sizes: Vec<String> = t
                .rows
                .iter()
                .filter(|r| r.wrong > 0)
                .map(|r| r.size_bytes.to_string())
                .collect();
            (
                Status::Fail,
                format!(
                    "{name}: {wrong} wrong element(s), at size(s) {} bytes",
                    sizes.join(", ")
                ),
            )
        } else if w.ranks < 2 {
            (
                Status::Inconclusive,
                format!("{name}: one rank: the collective is a copy"),
            )
        } else if let Some(why) = &t.stopped {
            // Correct where it ran, but short of the sizes asked for: not
            // a plain PASS.
            (
                Status::Inconclusive,
                format!(
                    "{name}: PARTIAL: {} sizes on {} ranks up to {} B, #wrong 0, avg busbw {}; {why}",
                    t.rows.len(),
                    w.ranks,
                    t.rows.last().map_or(0, |r| r.size_bytes),
                    fmt_gbps(t.avg_busbw_gbps)
                ),
            )
        } else {
            (
                Status::Pass,
                format!(
                    "{name}: {} sizes on {} ranks, #wrong 0, avg busbw {}",
                    t.rows.len(),
                    w.ranks,
                    fmt_gbps(t.avg_busbw_gbps)
                ),
            )
        };
        out.push(Finding {
            stage: Stage::Sweep,
            rule: "sweep_wrong".into(),
            status,
            component: None,
            message,
        });
    }
}

/// "<" for a figure below its limit, "?" for one that is not a number.
fn rel(status: Status) -> &'static str {
    if status == Status::Fail {
        "<"
    } else {
        "?"
    }
}

/// The findings that count in the suite's verdict: all but the SKIPPED
/// lines. A SKIPPED line is about something there is nothing to judge of
/// (a stage not requested, a node with one rank, a GPU whose driver hides
/// XIDs); the suite's rules compare components with each other, and one
/// absent is not a bad one. (A run's `[acceptance]` rules are thresholds
/// someone set, so there a SKIPPED rule counts and is not a pass.)
fn counted(findings: &[Finding]) -> impl Iterator<Item = Status> + '_ {
    findings
        .iter()
        .map(|f| f.status)
        .filter(|s| *s != Status::Skipped)
}

/// The suite's verdict: [`verdict::overall`] of the counted findings (the
/// worst; INCOMPLETE for a record of a run that stopped; INCONCLUSIVE when
/// every line is SKIPPED: nothing was shown).
pub fn overall(findings: &[Finding], complete: bool) -> Status {
    verdict::overall(counted(findings), complete)
}

/// The suite's exit code: [`verdict::exit_code`] of the counted findings
/// (0, 1, or 3 for a record of a run that stopped unless `allow_partial`).
pub fn exit_code(
    findings: &[Finding],
    complete: bool,
    allow_partial: bool,
    allow_inconclusive: bool,
) -> u8 {
    verdict::exit_code(
        counted(findings),
        complete,
        allow_partial,
        allow_inconclusive,
    )
}

/// The components named by failed findings, each once, in finding order.
pub fn bad_components(findings: &[Finding]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in findings.iter().filter(|f| f.status == Status::Fail) {
        if let Some(c) = &f.component {
            let name = c.to_string();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// `node_regressed`: one FAIL per figure of a node that moved beyond its
/// own past or the fleet ([`super::regressions`]), in the stage it comes from.
fn regression_rule(r: &AcceptRecord, out: &mut Vec<Finding>) {
    for g in &r.regressions {
        let stage = match g.figure.as_str() {
            "node_busbw_gbps" => Stage::Node,
            "link_gbps" => Stage::Link,
            _ => Stage::Device,
        };
        let reference = match g.against.as_str() {
            "past" => format!("the median {:.4} of its {} earlier run(s)", g.median, g.n),
            _ => format!("the median {:.4} of the {} other node(s)", g.median, g.n),
        };
        out.push(Finding {
            stage,
            rule: "node_regressed".into(),
            status: Status::Fail,
            component: Some(Component::Node {
                host: g.host.clone(),
            }),
            message: format!(
                "{} {:.4} vs {reference} ({:+.1} %, robust z {:.1})",
                g.figure,
                g.value,
                (g.value / g.median - 1.0) * 100.0,
                g.z
            ),
        });
    }
}

/// Value of a field a node did not report, in the comparison.
const ABSENT: &str = "(absent)";

/// The config stage's rule, `config_drift`: for every field any node
/// reported, the value most nodes have; a node with another value (or
/// none) is a FAIL naming the node, the field, its value and the
/// majority's. A field without a strict majority (two nodes that differ,
/// three values on four nodes) is INCONCLUSIVE: nothing says which node is
/// right. One node: SKIPPED (nothing to compare with).
fn config_rule(c: &ConfigStage, out: &mut Vec<Finding>) {
    let finding = |status, component, message: String| Finding {
        stage: Stage::Config,
        rule: "config_drift".into(),
        status,
        component,
        message,
    };
    let n = c.nodes.len();
    if n < 2 {
        out.push(finding(
            Status::Skipped,
            None,
            format!("{n} node: no other node to compare its configuration with"),
        ));
        return;
    }
    let fields: std::collections::BTreeSet<&String> =
        c.nodes.iter().flat_map(|x| x.facts.keys()).collect();
    let before = out.len();
    for field in &fields {
        fn value<'a>(x: &'a NodeFacts, field: &str) -> &'a str {
            x.facts.get(field).map_or(ABSENT, String::as_str)
        }
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for x in &c.nodes {
            *counts.entry(value(x, field)).or_default() += 1;
        }
        let (top, k) = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(v, k)| (*v, *k))
            .expect("at least one node");
        if k == n {
            continue;
        }
        if 2 * k <= n {
            let spread: Vec<String> = counts.iter().map(|(v, k)| format!("{v} on {k}")).collect();
            out.push(finding(
                Status::Inconclusive,
                None,
                format!(
                    "{field}: no value is held by most of the {n} nodes ({}), so none is the reference",
                    spread.join(", ")
                ),
            ));
            continue;
        }
        for x in c.nodes.iter().filter(|x| value(x, field) != top) {
            out.push(finding(
                Status::Fail,
                Some(Component::Node {
                    host: x.host.clone(),
                }),
                format!(
                    "{field} = {} (the majority: {top}, on {k} of {n} nodes)",
                    value(x, field)
                ),
            ));
        }
    }
    if out.len() == before {
        out.push(finding(
            Status::Pass,
            None,
            format!("all {n} nodes agree on {} fields", fields.len()),
        ));
    }
}

/// A node for the operator to drain, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadNode {
    /// Host name.
    pub host: String,
    /// One line per failed finding that names it: `rule: component:
    /// message`.
    pub reasons: Vec<String>,
}

/// The nodes the failed findings put in doubt, for `bad_nodes.txt`, in
/// finding order: the host of a failed device, a failed node, and both
/// ends of a failed link unless one of them is named already by a device
/// or node finding (then the link is explained by that node: a slow node
/// makes every link to it slow). Checking a link alone cannot tell which
/// end is at fault, so it drains both.
pub fn bad_nodes(findings: &[Finding]) -> Vec<BadNode> {
    let failed: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .collect();
    let named: Vec<&str> = failed
        .iter()
        .filter_map(|f| match &f.component {
            Some(Component::Device { host, .. } | Component::Node { host }) => Some(host.as_str()),
            _ => None,
        })
        .collect();
    let mut out: Vec<BadNode> = Vec::new();
    let mut add = |host: &str, f: &Finding| {
        let c = f
            .component
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let reason = format!("{}: {c}: {}", f.rule, f.message);
        match out.iter_mut().find(|b| b.host == host) {
            Some(b) => b.reasons.push(reason),
            None => out.push(BadNode {
                host: host.to_string(),
                reasons: vec![reason],
            }),
        }
    };
    for f in &failed {
        match &f.component {
            Some(Component::Device { host, .. } | Component::Node { host }) => add(host, f),
            Some(Component::Link { a, b, .. })
                if !named.contains(&a.as_str()) && !named.contains(&b.as_str()) =>
            {
                add(a, f);
                add(b, f);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accept::test_support::{link, record};

    #[test]
    fn config_drift_names_the_node_and_field_against_the_majority() {
        let node = |host: &str, facts: &[(&str, &str)]| NodeFacts {
            host: host.into(),
            facts: facts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let mut r = record();
        r.stages = vec![Stage::Config];
        let std = [("kernel", "6.1"), ("nic.eth0.mtu", "1500")];
        r.config = Some(ConfigStage {
            nodes: vec![
                node("a", &std),
                node("b", &std),
                node("c", &[("kernel", "6.1"), ("nic.eth0.mtu", "1400")]),
                node("d", &[("nic.eth0.mtu", "1500")]),
            ],
        });
        let f: Vec<Finding> = evaluate(&r, &r.settings)
            .into_iter()
            .filter(|f| f.stage == Stage::Config)
            .collect();
        let lines: Vec<(Status, String, String)> = f
            .iter()
            .map(|f| {
                (
                    f.status,
                    f.component
                        .as_ref()
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                    f.message.clone(),
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                (
                    Status::Fail,
                    "node d".to_string(),
                    "kernel = (absent) (the majority: 6.1, on 3 of 4 nodes)".to_string()
                ),
                (
                    Status::Fail,
                    "node c".to_string(),
                    "nic.eth0.mtu = 1400 (the majority: 1500, on 3 of 4 nodes)".to_string()
                ),
            ]
        );
        let hosts: Vec<String> = bad_nodes(&f).into_iter().map(|b| b.host).collect();
        assert_eq!(hosts, ["d", "c"]);
        // Agreement: one PASS; two nodes that differ: INCONCLUSIVE; one node: SKIPPED.
        r.config = Some(ConfigStage {
            nodes: vec![node("a", &std), node("b", &std)],
        });
        let f = evaluate(&r, &r.settings);
        assert!(f.iter().any(|f| f.stage == Stage::Config
            && f.status == Status::Pass
            && f.message == "all 2 nodes agree on 2 fields"));
        r.config = Some(ConfigStage {
            nodes: vec![
                node("a", &std),
                node("c", &[("kernel", "6.1"), ("nic.eth0.mtu", "1400")]),
            ],
        });
        let f = evaluate(&r, &r.settings);
        let c: Vec<&Finding> = f.iter().filter(|f| f.stage == Stage::Config).collect();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, Status::Inconclusive);
        assert!(
            c[0].message.starts_with("nic.eth0.mtu: no value"),
            "{}",
            c[0].message
        );
        r.config = Some(ConfigStage {
            nodes: vec![node("a", &std)],
        });
        let f = evaluate(&r, &r.settings);
        assert!(f
            .iter()
            .any(|f| f.stage == Stage::Config && f.status == Status::Skipped));
    }

    /// A ring of 8 with nodes 3 and 5 bad: node 4, between them, sees only
    /// slow links too. One isolation round pairs 3, 4 and 5 with good
    /// nodes; 3 and 5 stay slow, 4 is fast: 3 and 5 are named, 4 is not.
    #[test]
    fn isolation_clears_the_good_node_between_two_bad_ones() {
        let ring: Vec<(usize, usize, f64)> = (0..8)
            .map(|i| {
                let (a, b) = (i.min((i + 1) % 8), i.max((i + 1) % 8));
                let bad = [3, 5].contains(&a) || [3, 5].contains(&b);
                (a, b, if bad { 0.1 } else { 1.0 })
            })
            .collect();
        let mut r = record();
        r.stages = vec![Stage::Link];
        r.hosts = (0..8).map(|i| format!("h{i}")).collect();
        r.link = Some(link(&ring, 8));
        let before: Vec<String> = bad_nodes(&evaluate(&r, &r.settings))
            .into_iter()
            .map(|b| b.host)
            .collect();
        assert_eq!(before, ["h3", "h4", "h5"], "the screen alone blames h4 too");
        let iso = isolation_rounds(r.link.as_ref().unwrap(), &r.settings);
        assert_eq!(iso, [vec![(0, 3), (1, 4), (5, 7)]]);
        let mut pairs = ring.clone();
        pairs.extend([(0, 3, 0.1), (1, 4, 1.0), (5, 7, 0.1)]);
        r.link = Some(link(&pairs, 8));
        let after: Vec<String> = bad_nodes(&evaluate(&r, &r.settings))
            .into_iter()
            .map(|b| b.host)
            .collect();
        assert_eq!(after, ["h3", "h5"]);
        // Healthy, or nobody known good: no round.
        let healthy: Vec<_> = ring.iter().map(|&(a, b, _)| (a, b, 1.0)).collect();
        assert!(isolation_rounds(&link(&healthy, 8), &r.settings).is_empty());
        let all_slow: Vec<_> = ring.iter().map(|&(a, b, _)| (a, b, 0.1)).collect();
        let mut fast_one = all_slow.clone();
        fast_one[0].2 = 1.0;
        assert!(isolation_rounds(&link(&fast_one[..1], 8), &r.settings).is_empty());
    }

    /// 1,000 nodes: the screen (ring and 2 random matchings) and one
    /// isolation round find one bad node in 5 rounds; the tournament
    /// takes 999.
    #[test]
    fn one_bad_node_among_a_thousand_in_a_few_rounds() {
        let n = 1000;
        let screen = sampled(n, 2, SAMPLED_SEED);
        let mut pairs: Vec<(usize, usize, f64)> = screen
            .iter()
            .flatten()
            .map(|&(a, b)| (a, b, if a == 617 || b == 617 { 0.1 } else { 1.0 }))
            .collect();
        let settings = AcceptSettings::default();
        let iso = isolation_rounds(&link(&pairs, n), &settings);
        assert_eq!(iso.len(), 1);
        assert_eq!(iso[0].len(), 1);
        let (a, b) = iso[0][0];
        assert!(a == 617 || b == 617);
        pairs.push((a, b, 0.1));
        let mut r = record();
        r.stages = vec![Stage::Link];
        r.hosts = (0..n).map(|i| format!("h{i}")).collect();
        r.link = Some(link(&pairs, n));
        let named: Vec<String> = bad_nodes(&evaluate(&r, &settings))
            .into_iter()
            .map(|b| b.host)
            .collect();
        assert_eq!(named, ["h617"]);
        assert_eq!(screen.len() + iso.len(), 5);
        assert_eq!(tournament(n).len(), 999);
    }

    /// The isolation path of the 5-host case: the ring (2 rounds) and one
    /// matching saw h2 slow on all 3 of its links; one isolation round paired
    /// it with h0, the only node with no slow link, and it was slow again.
    #[test]
    fn the_isolation_path_names_the_suspect_its_partner_and_the_outcome() {
        let mut pairs = vec![
            (0, 1, 1.0),
            (2, 3, 0.01),
            (1, 2, 0.01),
            (3, 4, 1.0),
            (0, 4, 1.0),
            (2, 4, 0.01),
            (1, 3, 1.0),
        ];
        let rounds: Vec<Vec<Pair>> = vec![
            vec![(0, 1), (2, 3)],
            vec![(1, 2), (3, 4), (0, 4)],
            vec![(1, 3), (2, 4)],
        ];
        let mut l = link(&pairs, 5);
        let round_of =
            |a: usize, b: usize| rounds.iter().position(|r| r.contains(&(a, b))).unwrap();
        for p in &mut l.pairs {
            p.round = round_of(p.a, p.b);
        }
        l.rounds = rounds.clone();
        let settings = AcceptSettings::default();
        assert_eq!(isolation_rounds(&l, &settings), vec![vec![(0, 2)]]);
        pairs.push((0, 2, 0.01));
        let mut done = link(&pairs, 5);
        done.rounds = rounds.clone();
        done.rounds.push(vec![(0, 2)]);
        done.isolation_rounds = 1;
        for p in &mut done.pairs {
            p.round = if (p.a, p.b) == (0, 2) {
                3
            } else {
                round_of(p.a, p.b)
            };
        }
        assert_eq!(
            isolation_path(&done, &settings),
            vec![IsolationStep {
                round: 3,
                suspect: 2,
                partner: 0,
                screen_links: 3,
                gbps: Some(0.01),
                slow: true,
            }]
        );
        // Fast with its good partner: not slow; no isolation rounds: none.
        done.pairs.last_mut().unwrap().gbps = 1.0;
        assert!(!isolation_path(&done, &settings)[0].slow);
        assert_eq!(isolation_path(&l, &settings), vec![]);
    }

    /// Rails: the main path passes; on rail eth1 the pair h1–h3 is slow
    /// (named as that link on that rail, both ends in bad_nodes), and h4
    /// has no address on eth1 (named, left out of the rail's pairs).
    #[test]
    fn a_rail_names_its_slow_link_and_its_unaddressed_node() {
        let n = 5;
        let all: Vec<(usize, usize, f64)> = (0..n)
            .flat_map(|b| (0..b).map(move |a| (a, b, 1.0)))
            .collect();
        let mut l = link(&all, n);
        let rail_pairs: Vec<(usize, usize, f64)> = all
            .iter()
            .filter(|(a, b, _)| *a != 4 && *b != 4)
            .map(|&(a, b, g)| (a, b, if (a, b) == (1, 3) { 0.01 } else { g }))
            .collect();
        let rail = link(&rail_pairs, n);
        l.rails = vec![RailStage {
            rail: "eth1".into(),
            addresses: (0..n)
                .map(|i| (i != 4).then(|| format!("10.78.0.{}", i + 1)))
                .collect(),
            rounds: rail.rounds.clone(),
            iterations: 1,
            pairs: rail.pairs,
            stopped: None,
        }];
        let mut r = record();
        r.hosts = l.hosts.clone();
        r.link = Some(l);
        let f = evaluate(&r, &AcceptSettings::default());
        assert_eq!(
            bad_components(&f),
            ["node h4", "link h1 <-> h3 (rail eth1)"],
            "{f:#?}"
        );
        let addr = f.iter().find(|x| x.rule == "rail_address").unwrap();
        assert!(addr
            .message
            .starts_with("rail eth1: the node has no IPv4 address on eth1"));
        // The main path's PASS line and the rail's lines say which is which.
        assert!(f
            .iter()
            .any(|x| x.status == Status::Pass
                && x.message.starts_with("10 links (tournament schedule)")));
        let hosts: Vec<String> = bad_nodes(&f).into_iter().map(|b| b.host).collect();
        assert_eq!(hosts, ["h4", "h1", "h3"]);
        // The component's JSON keeps the rail; a link without one has none.
        let c = serde_json::to_value(
            f.iter()
                .find(|x| x.rule == "link_bandwidth" && x.status == Status::Fail)
                .unwrap()
                .component
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(c["rail"], "eth1");
        let plain = serde_json::to_value(Component::Link {
            a: "a".into(),
            b: "b".into(),
            rail: None,
        })
        .unwrap();
        assert!(plain.get("rail").is_none(), "{plain}");
    }

    /// What the link stage finds with one fault among `n` nodes under the
    /// default settings: the schedule `link_schedule` picks, the isolation
    /// rounds after a sampled screen, the findings. Healthy links measure
    /// 1.0, with a ±5 % spread; the fault's links 0.05. Returns the named
    /// components, the overall status and the rounds run.
    fn simulate(
        n: usize,
        slow: impl Fn(usize, usize) -> bool,
    ) -> (Vec<String>, Vec<String>, Status, usize) {
        let settings = AcceptSettings::default();
        let (schedule, rounds) = link_schedule(n, &settings);
        let gbps = |a: usize, b: usize| {
            if slow(a, b) {
                0.05
            } else {
                1.0 + 0.05 * (((a * 31 + b * 17) % 11) as f64 / 5.0 - 1.0)
            }
        };
        let mut stage = link(&[], n);
        stage.schedule = schedule.into();
        let measure = |round: &[Pair], stage: &mut LinkStage| {
            for &(a, b) in round {
                stage.pairs.push(PairResult {
                    a,
                    b,
                    round: 0,
                    time_s: 1.0 / gbps(a, b),
                    best_time_s: 1.0 / gbps(a, b),
                    gbps: gbps(a, b),
                    expected: None,
                });
            }
        };
        for r in &rounds {
            measure(r, &mut stage);
        }
        stage.rounds = rounds;
        if schedule == "sampled" {
            let iso = isolation_rounds(&stage, &settings);
            for r in &iso {
                measure(r, &mut stage);
            }
            stage.isolation_rounds = iso.len();
            stage.rounds.extend(iso);
        }
        let mut r = record();
        r.hosts = stage.hosts.clone();
        r.world_size = n as u64;
        let run = stage.rounds.len();
        r.link = Some(stage);
        let findings = evaluate(&r, &settings);
        let named = bad_components(&findings);
        let hosts = bad_nodes(&findings).into_iter().map(|b| b.host).collect();
        (named, hosts, overall(&findings, true), run)
    }

    /// The isolation schedule's contract (docs/accept.md), for one fault
    /// among 2 to 1,024 nodes: a slow node is always named, alone, from 3
    /// nodes on; 2 nodes are INCONCLUSIVE (one link, nothing to compare),
    /// never PASS. Up to `max_pair_nodes` (64) the tournament runs (n − 1
    /// rounds, n for odd n); above, the screen (ring: 2 rounds, 3 for odd
    /// n, and 8 matchings) and exactly one isolation round: at most 12
    /// rounds where the tournament takes n − 1. A link slow only between
    /// two healthy nodes is named alone, with its two ends and no node,
    /// wherever the schedule measured it: every pair up to 64 nodes; above,
    /// the screen's pairs, and the PASS line says how many of all pairs
    /// were measured when the fault was not among them.
    #[test]
    fn one_bad_node_or_link_among_2_to_1024_nodes() {
        let mut sizes: Vec<usize> = (2..=70).collect();
        sizes.extend([96, 127, 128, 255, 256, 511, 512, 777, 1000, 1023, 1024]);
        for n in sizes {
            let tournament_rounds = tournament(n).len();
            for bad in [0, n / 2, n - 1] {
                let (named, hosts, status, rounds) = simulate(n, |a, b| a == bad || b == bad);
                if n == 2 {
                    assert_eq!(named, Vec::<String>::new(), "n {n}");
                    assert_eq!(status, Status::Inconclusive, "n {n}");
                    continue;
                }
                // The node is named; its links may be listed too, and they
                // are explained by it: no other host is bad.
                assert!(
                    named.contains(&format!("node h{bad}")),
                    "n {n} bad {bad}: {named:?}"
                );
                assert_eq!(hosts, [format!("h{bad}")], "n {n}: {named:?}");
                assert_eq!(status, Status::Fail);
                if n <= 64 {
                    assert_eq!(rounds, tournament_rounds, "n {n}");
                } else {
                    let ring = if n % 2 == 1 { 3 } else { 2 };
                    assert_eq!(rounds, ring + 8 + 1, "n {n} bad {bad}");
                    assert!(rounds < tournament_rounds, "n {n}");
                }
            }
            if n < 3 {
                continue;
            }
            // A link slow only together: one the schedule measures (the
            // first pair of its first round) and, above 64 nodes, one it
            // does not.
            let settings = AcceptSettings::default();
            let (_, screen) = link_schedule(n, &settings);
            let measured: std::collections::BTreeSet<Pair> =
                screen.iter().flatten().copied().collect();
            let (a, b) = screen[0][0];
            let (named, hosts, status, _) = simulate(n, |x, y| (x, y) == (a, b));
            assert_eq!(named, [format!("link h{a} <-> h{b}")], "n {n}");
            assert_eq!(hosts, [format!("h{a}"), format!("h{b}")], "n {n}");
            assert_eq!(status, Status::Fail);
            if let Some(&(x, y)) = (1..n)
                .flat_map(|y| (0..y).map(move |x| (x, y)))
                .find(|p| !measured.contains(p))
                .as_ref()
            {
                assert!(n > 64, "n {n}: the tournament measures every pair");
                let (named, _, status, _) = simulate(n, |p, q| (p, q) == (x, y));
                assert!(named.is_empty() && status == Status::Pass, "n {n}");
                let mut r = record();
                r.hosts = (0..n).map(|i| format!("h{i}")).collect();
                let pairs: Vec<(usize, usize, f64)> =
                    measured.iter().map(|&(p, q)| (p, q, 1.0)).collect();
                r.link = Some(link(&pairs, n));
                let pass = evaluate(&r, &settings);
                let pass = pass
                    .iter()
                    .find(|f| f.rule == "link_bandwidth")
                    .expect("the link rule");
                assert!(
                    pass.status == Status::Pass
                        && pass.message.contains(&format!(
                            "{} of {} pairs measured",
                            measured.len(),
                            n * (n - 1) / 2
                        )),
                    "{}",
                    pass.message
                );
            }
        }
    }

    #[test]
    fn bad_nodes_are_the_named_hosts_and_unexplained_links_ends() {
        let fail = |component, rule: &str| Finding {
            stage: Stage::Link,
            rule: rule.into(),
            status: Status::Fail,
            component: Some(component),
            message: "slow".into(),
        };
        let link = |a: &str, b: &str| Component::Link {
            a: a.into(),
            b: b.into(),
            rail: None,
        };
        let node = |h: &str| Component::Node { host: h.into() };
        // h2 is slow: its links are explained by it.
        let f = vec![
            fail(link("h0", "h2"), "link_bandwidth"),
            fail(link("h1", "h2"), "link_bandwidth"),
            fail(node("h2"), "node_links"),
        ];
        let bad = bad_nodes(&f);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].host, "h2");
        assert_eq!(bad[0].reasons, ["node_links: node h2: slow"]);
        // A link alone: both ends; a device adds its host once.
        let mut f = vec![fail(link("h3", "h4"), "link_bandwidth")];
        f.push(fail(
            Component::Device {
                rank: 9,
                host: "h5".into(),
                local_rank: 1,
            },
            "device_rate",
        ));
        f.push(Finding {
            status: Status::Pass,
            ..fail(node("h6"), "node_busbw")
        });
        let hosts: Vec<String> = bad_nodes(&f).into_iter().map(|b| b.host).collect();
        assert_eq!(hosts, ["h3", "h4", "h5"]);
        assert!(bad_nodes(&[]).is_empty());
    }

    #[test]
    fn bad_nodes_are_left_out_of_the_sweep_and_step_unless_kept() {
        let fail = |component| Finding {
            stage: Stage::Link,
            rule: "node_links".into(),
            status: Status::Fail,
            component: Some(component),
            message: "slow".into(),
        };
        let node = |h: &str| Component::Node { host: h.into() };
        let hosts: Vec<String> = ["h0", "h1", "h2", "h3"].map(String::from).to_vec();
        let all = [Stage::Link, Stage::Sweep, Stage::Step];
        let f = vec![fail(node("h3")), fail(node("h2"))];
        // Left out in node order, of both later stages.
        let lo = left_out(&f, &hosts, &all, false, None).unwrap();
        assert_eq!(lo.hosts, ["h2", "h3"]);
        assert_eq!(lo.stages, [Stage::Sweep, Stage::Step]);
        assert_eq!(lo.kept, None);
        // No sweep or step: nothing to decide.
        assert_eq!(left_out(&f, &hosts, &[Stage::Link], false, None), None);
        // No bad node: none left out, nothing kept.
        let none = left_out(&[], &hosts, &all, false, None).unwrap();
        assert!(none.hosts.is_empty() && none.kept.is_none());
        // Kept, and why: --keep-bad; rank 0's node; every node.
        let k = left_out(&f, &hosts, &all, true, None).unwrap();
        assert!(k.hosts.is_empty());
        assert_eq!(k.kept.as_deref(), Some("h2, h3 kept (--keep-bad)"));
        let f0 = vec![fail(node("h0"))];
        let k = left_out(&f0, &hosts, &all, false, None).unwrap();
        assert_eq!(
            k.kept.as_deref(),
            Some("h0 kept: h0 is rank 0's node, which writes the results")
        );
        let every: Vec<Finding> = hosts.iter().skip(1).map(|h| fail(node(h))).collect();
        let two = &hosts[1..];
        let k = left_out(&every, two, &all, false, None).unwrap();
        assert_eq!(
            k.kept.as_deref(),
            Some("h1, h2, h3 kept: every node is bad")
        );
        // A step that needs every node keeps them; the sweep leaves them out.
        let lo = left_out(&f, &hosts, &all, false, Some("tensor = 2")).unwrap();
        assert_eq!(lo.stages, [Stage::Sweep]);
        assert_eq!(lo.hosts, ["h2", "h3"]);
        assert_eq!(
            lo.kept.as_deref(),
            Some("h2, h3 kept in the step: tensor = 2")
        );
        let lo = left_out(&f, &hosts, &[Stage::Step], false, Some("tensor = 2")).unwrap();
        assert!(lo.hosts.is_empty() && lo.stages.is_empty());
        // Each left-out node is a SKIPPED line of the first later stage.
        let mut r = record();
        r.stages = vec![Stage::Sweep];
        r.left_out = left_out(&f, &hosts, &all, false, None);
        let lines: Vec<Finding> = evaluate(&r, &r.settings)
            .into_iter()
            .filter(|x| x.rule == "left_out")
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(lines
            .iter()
            .all(|x| x.status == Status::Skipped && x.stage == Stage::Sweep));
        assert_eq!(lines[0].component, Some(node("h2")));
        assert!(
            lines[0]
                .message
                .starts_with("left out of the sweep and step stages: found bad before them"),
            "{}",
            lines[0].message
        );
    }

    #[test]
    fn a_link_stage_stopped_by_its_budget_is_partial() {
        let mut r = record();
        r.link = Some(link(&[(0, 1, 1.0), (0, 2, 1.0), (1, 2, 1.0)], 3));
        r.link.as_mut().unwrap().stopped = Some("stopped after 1 timed pass".into());
        let f = evaluate(&r, &r.settings);
        let p = f.iter().find(|x| x.rule == "link_budget").expect("a line");
        assert_eq!(p.status, Status::Inconclusive);
        assert_eq!(
            p.message,
            "PARTIAL: 1 of 10 timed passes; stopped after 1 timed pass"
        );
        assert_eq!(overall(&f, true), Status::Inconclusive);
    }

    #[test]
    fn slow_host_names_its_links_then_the_host() {
        // Three nodes, h2 throttled: its two links at 0.1, the other at 1.
        let mut r = record();
        r.link = Some(link(&[(0, 1, 1.0), (0, 2, 0.1), (1, 2, 0.1)], 3));
        assert_eq!(link_reference(r.link.as_ref().unwrap()), Some(1.0));
        let f = evaluate(&r, &r.settings);
        let fails: Vec<String> = f
            .iter()
            .filter(|x| x.status == Status::Fail)
            .map(|x| x.component.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(
            fails,
            ["link h0 <-> h2", "link h1 <-> h2", "node h2"],
            "{f:#?}"
        );
        assert_eq!(overall(&f, true), Status::Fail);
        assert_eq!(bad_components(&f).len(), 3);
        // Healthy: PASS, and the other stages SKIPPED.
        r.link = Some(link(&[(0, 1, 1.0), (0, 2, 0.95), (1, 2, 0.9)], 3));
        let f = evaluate(&r, &r.settings);
        assert_eq!(overall(&f, true), Status::Pass, "{f:#?}");
        assert_eq!(f.iter().filter(|x| x.status == Status::Skipped).count(), 5);
        // 0.79 of the reference fails at 0.8, a single link: no node named.
        r.link = Some(link(&[(0, 1, 1.0), (0, 2, 0.79), (1, 2, 1.0)], 3));
        let f = evaluate(&r, &r.settings);
        let fails: Vec<_> = f.iter().filter(|x| x.status == Status::Fail).collect();
        assert_eq!(fails.len(), 1);
        assert_eq!(
            fails[0].component.as_ref().unwrap().to_string(),
            "link h0 <-> h2"
        );
        // A pair measured in two rounds (the sampled schedule can repeat
        // one) counts once, with its faster result.
        r.link = Some(link(
            &[(0, 1, 1.0), (0, 2, 0.95), (0, 1, 0.1), (1, 2, 0.9)],
            3,
        ));
        let f = evaluate(&r, &r.settings);
        assert_eq!(overall(&f, true), Status::Pass, "{f:#?}");
        assert_eq!(r.link.as_ref().unwrap().links().len(), 3);
        assert!(f.iter().any(|x| x.message.starts_with("3 links")));
        // Two nodes: one link, nothing to compare: INCONCLUSIVE.
        r.link = Some(link(&[(0, 1, 0.01)], 2));
        let f = evaluate(&r, &r.settings);
        assert_eq!(overall(&f, true), Status::Inconclusive);
    }

    #[test]
    fn device_and_node_rules() {
        let dev = |rank: u64, t: f64| DeviceResult {
            rank,
            host: format!("h{}", rank / 2),
            local_rank: rank % 2,
            device: "cpu".into(),
            device_name: "x".into(),
            step_s: 1.0 / t,
            step_time_s: vec![1.0 / t],
            tflops: t,
            spec_peak_tflops: None,
            peak_tflops: None,
            peak_source: None,
            gpu: None,
            telemetry: CpuTelemetry {
                mhz: Some(1000.0),
                temp_c: None,
                load1: None,
                cpu_share: None,
            },
            expected: None,
        };
        let mut r = record();
        r.stages = vec![Stage::Device, Stage::Node];
        r.device = Some(DeviceStage {
            flops_per_step: 1.0,
            iterations: 1,
            // Median 1.0; 0.92 × 1.0: 0.91 fails, 0.93 passes.
            devices: vec![
                dev(0, 1.0),
                dev(1, 0.91),
                dev(2, 1.1),
                dev(3, 0.93),
                dev(4, 1.0),
            ],
        });
        let node = |h: &str, ranks: u64, bw: f64| NodeResult {
            host: h.into(),
            ranks,
            time_s: vec![1.0, 1.0],
            best_time_s: vec![1.0, 1.0],
            algbw_gbps: vec![bw, bw],
            busbw_gbps: vec![0.001, bw],
            stopped: None,
        };
        r.node = Some(NodeStage {
            sizes_bytes: vec![8, 1 << 20],
            iterations: 1,
            nodes: vec![
                node("h0", 2, 10.0),
                node("h1", 2, 8.0),
                node("h2", 2, 10.5),
                node("h3", 1, 0.0),
            ],
        });
        let f = evaluate(&r, &r.settings);
        let fails: Vec<String> = f
            .iter()
            .filter(|x| x.status == Status::Fail)
            .map(|x| format!("{} {}", x.component.as_ref().unwrap(), x.message))
            .collect();
        assert_eq!(fails.len(), 2, "{fails:#?}");
        assert!(fails[0].starts_with("device rank 1 (h0, local rank 1)"));
        assert!(fails[0].contains("cpu clock 1000 MHz"));
        // No peak known on a CPU: said, never made up.
        assert!(
            fails[0].contains("0.910 TFLOP/s < 0.92 × median 1.000 TFLOP/s, no datasheet peak"),
            "{}",
            fails[0]
        );
        assert!(fails[1].starts_with("node h1 intra-node busbw 8.000 GB/s"));
        assert!(fails[1].ends_with("median 10.000 GB/s"), "{}", fails[1]);
        // With GPU readings: the failed node shows its slowest GPU, named;
        // a failed GPU device shows its identity and reading.
        let reading = |clock: u32, reasons: &[&str]| GpuReading {
            stage: Some(Stage::Node),
            sm_clock_mhz: Some(clock),
            max_sm_clock_mhz: Some(1980),
            throttle_reasons: reasons.iter().map(|x| x.to_string()).collect(),
            ..Default::default()
        };
        let gpu = |rank: u64, host: &str, r: GpuReading| RankGpu {
            rank,
            host: host.into(),
            local_rank: rank % 2,
            gpu: GpuTelemetry {
                uuid: format!("GPU-{rank}"),
                serial: None,
                pci_bus_id: Some(format!("00000000:0{rank}:00.0")),
                readings: vec![r],
                xid: XidWatch::default(),
            },
        };
        r.gpus = vec![
            gpu(2, "h1", reading(1980, &[])),
            gpu(3, "h1", reading(1410, &["hw_thermal_slowdown"])),
            gpu(0, "h0", reading(1200, &[])),
        ];
        let mut d1 = r.device.as_ref().unwrap().devices[1].clone();
        d1.gpu = Some(GpuTelemetry {
            uuid: "GPU-1".into(),
            serial: Some("S1".into()),
            pci_bus_id: None,
            readings: vec![GpuReading {
                stage: Some(Stage::Device),
                ..reading(1500, &["sw_power_cap"])
            }],
            xid: XidWatch::default(),
        });
        r.device.as_mut().unwrap().devices[1] = d1;
        let f = evaluate(&r, &r.settings);
        let fails: Vec<String> = f
            .iter()
            .filter(|x| x.status == Status::Fail)
            .map(|x| x.message.clone())
            .collect();
        assert!(
            fails[0].ends_with("(GPU-1, serial S1; sm clock 1500 MHz (max 1980), power cap)"),
            "{}",
            fails[0]
        );
        assert!(
            fails[1].ends_with("(GPU of local rank 1 (GPU-3, PCI 00000000:03:00.0): sm clock 1410 MHz (max 1980), thermal slowdown)"),
            "{}",
            fails[1]
        );
        r.gpus.clear();
        assert!(f.iter().any(|x| x.status == Status::Skipped
            && x.component == Some(Component::Node { host: "h3".into() })));
        // One device only: INCONCLUSIVE, never PASS.
        r.device.as_mut().unwrap().devices.truncate(1);
        r.node = None;
        r.stages = vec![Stage::Device, Stage::Node];
        let f = evaluate(&r, &r.settings);
        assert!(f
            .iter()
            .any(|x| x.stage == Stage::Device && x.status == Status::Inconclusive));
        // The node stage was requested but has no results: INCOMPLETE,
        // never FAIL (no data), and the suite's verdict is INCOMPLETE.
        assert!(f.iter().any(|x| x.stage == Stage::Node
            && x.rule == "stage_complete"
            && x.status == Status::Incomplete));
        assert!(!f.iter().any(|x| x.status == Status::Fail), "{f:#?}");
        assert_eq!(overall(&f, false), Status::Incomplete);
        assert_eq!(overall(&f, true), Status::Incomplete);
        assert_eq!(exit_code(&f, false, false, true), 3);
        // --allow-partial judges what was measured: one device, INCONCLUSIVE.
        assert_eq!(exit_code(&f, false, true, false), 1);
        assert_eq!(exit_code(&f, false, true, true), 0);
    }

    #[test]
    fn a_gpu_with_an_xid_is_a_finding_of_its_own() {
        let gpu = |rank: u64, xid: XidWatch| RankGpu {
            rank,
            host: format!("h{}", rank / 2),
            local_rank: rank % 2,
            gpu: GpuTelemetry {
                uuid: format!("GPU-{rank}"),
                serial: None,
                pci_bus_id: None,
                readings: Vec::new(),
                xid,
            },
        };
        let mut r = record();
        r.backend = "cuda".into();
        r.stages = vec![Stage::Link, Stage::Sweep];
        r.link = Some(link(&[(0, 1, 1.0), (0, 2, 1.0), (1, 2, 1.0)], 3));
        r.sweep = Some(SweepStage {
            dtype: "float".into(),
            ranks: 4,
            iterations: 1,
            tables: Vec::new(),
        });
        let xid_lines = |f: &[Finding]| -> Vec<Finding> {
            f.iter().filter(|x| x.rule == "gpu_xid").cloned().collect()
        };
        // Four GPUs watched, rank 3 saw XID 79 after the link stage (twice)
        // and an unknown XID after the sweep.
        let mut bad = XidWatch::watched("t0");
        bad.record(Ok(vec![]), Stage::Device, "t1");
        bad.record(Ok(vec![Some(79), Some(79)]), Stage::Link, "t2");
        bad.record(Ok(vec![None]), Stage::Sweep, "t3");
        r.gpus = vec![
            gpu(0, XidWatch::watched("t0")),
            gpu(1, XidWatch::watched("t0")),
            gpu(2, XidWatch::watched("t0")),
            gpu(3, bad),
        ];
        let f = evaluate(&r, &r.settings);
        let x = xid_lines(&f);
        assert_eq!(x.len(), 1, "{x:#?}");
        assert_eq!(x[0].status, Status::Fail);
        assert_eq!(x[0].stage, Stage::Link);
        assert_eq!(
            x[0].component.as_ref().unwrap().to_string(),
            "device rank 3 (h1, local rank 1)"
        );
        assert_eq!(
            x[0].message,
            "XID 79 during link (×2), XID unknown during sweep (GPU-3)"
        );
        assert_eq!(overall(&f, true), Status::Fail);
        assert_eq!(
            bad_components(&f),
            vec!["device rank 3 (h1, local rank 1)".to_string()]
        );
        // None seen: one PASS line naming how many GPUs were watched.
        r.gpus[3] = gpu(3, XidWatch::watched("t0"));
        let x = xid_lines(&evaluate(&r, &r.settings));
        assert_eq!(x.len(), 1);
        assert_eq!(x[0].status, Status::Pass);
        assert_eq!(
            x[0].message,
            "4 of 4 GPU(s) watched since the suite opened: no XID"
        );
        // A driver without XID events: said (SKIPPED), never counted as
        // clean; with no GPU watched there is no PASS.
        for g in &mut r.gpus {
            g.gpu.xid = XidWatch::NotSupported {
                reason: "NVML: Not Supported".into(),
            };
        }
        let x = xid_lines(&evaluate(&r, &r.settings));
        assert_eq!(x.len(), 1, "{x:#?}");
        assert_eq!(x[0].status, Status::Skipped);
        assert_eq!(
            x[0].message,
            "4 of 4 GPU(s) not watched for XIDs: xid: not supported (NVML: Not Supported)"
        );
        // A failed poll without XIDs: INCONCLUSIVE for that GPU.
        let mut lost = XidWatch::watched("t0");
        lost.record(Err("GPU is lost".into()), Stage::Sweep, "t3");
        r.gpus[0].gpu.xid = lost;
        let f = evaluate(&r, &r.settings);
        assert!(f.iter().any(|x| x.rule == "gpu_xid"
            && x.status == Status::Inconclusive
            && x.message
                .contains("a poll failed after the sweep stage: GPU is lost")));
        // CUDA without NVML: one SKIPPED line; on CPUs none.
        r.gpus.clear();
        let x = xid_lines(&evaluate(&r, &r.settings));
        assert_eq!(x.len(), 1);
        assert_eq!(x[0].status, Status::Skipped);
        r.backend = "cpu".into();
        assert!(xid_lines(&evaluate(&r, &r.settings)).is_empty());
    }

    #[test]
    fn a_figure_that_is_not_a_number_is_inconclusive_never_fail() {
        // Three nodes, one link's bandwidth not a number (not measured):
        // INCONCLUSIVE for that link, no FAIL, no node named.
        let mut r = record();
        r.link = Some(link(&[(0, 1, 1.0), (0, 2, f64::NAN), (1, 2, 1.0)], 3));
        let f = evaluate(&r, &r.settings);
        assert!(!f.iter().any(|x| x.status == Status::Fail), "{f:#?}");
        let odd: Vec<&Finding> = f
            .iter()
            .filter(|x| x.status == Status::Inconclusive)
            .collect();
        assert_eq!(odd.len(), 1, "{f:#?}");
        assert_eq!(
            odd[0].component.as_ref().unwrap().to_string(),
            "link h0 <-> h2"
        );
        assert!(
            odd[0].message.starts_with("NaN GB/s ? 0.8"),
            "{}",
            odd[0].message
        );
        assert_eq!(overall(&f, true), Status::Inconclusive);
        assert!(bad_components(&f).is_empty());
        // A slow link beside it still fails.
        r.link = Some(link(&[(0, 1, 1.0), (0, 2, f64::NAN), (1, 2, 0.1)], 3));
        assert_eq!(overall(&evaluate(&r, &r.settings), true), Status::Fail);
    }

    #[test]
    fn findings_of_old_files_parse() {
        // accept.json written before the vocabulary was one.
        for (word, status) in [
            ("PASS", Status::Pass),
            ("FAIL", Status::Fail),
            ("INCONCLUSIVE", Status::Inconclusive),
            ("SKIPPED", Status::Skipped),
        ] {
            let f: Finding = serde_json::from_str(&format!(
                r#"{{"stage":"link","rule":"link_bandwidth","status":"{word}","component":null,"message":"m"}}"#
            ))
            .unwrap();
            assert_eq!(f.status, status);
        }
    }

    #[test]
    fn suite_verdict_skipped_lines_do_not_count() {
        let line = |status| Finding {
            stage: Stage::Link,
            rule: "r".into(),
            status,
            component: None,
            message: String::new(),
        };
        let f = |s: &[Status]| s.iter().map(|x| line(*x)).collect::<Vec<_>>();
        use Status::*;
        assert_eq!(overall(&f(&[Pass, Skipped]), true), Pass);
        assert_eq!(exit_code(&f(&[Pass, Skipped]), true, false, false), 0);
        assert_eq!(overall(&f(&[Skipped, Skipped]), true), Inconclusive);
        assert_eq!(exit_code(&f(&[Skipped]), true, false, false), 1);
        assert_eq!(exit_code(&f(&[Skipped]), true, false, true), 0);
        assert_eq!(overall(&f(&[Pass, Inconclusive, Fail]), true), Fail);
        assert_eq!(overall(&f(&[Pass, Incomplete, Fail]), true), Incomplete);
        assert_eq!(overall(&f(&[Pass]), false), Incomplete);
        assert_eq!(exit_code(&f(&[Pass]), false, false, false), 3);
        assert_eq!(exit_code(&f(&[Pass]), false, true, false), 0);
        assert_eq!(exit_code(&f(&[Fail, Incomplete]), false, true, false), 1);
    }

    #[test]
    fn a_flagged_device_shows_its_xids_as_a_reason() {
        let mut xid = XidWatch::watched("t0");
        xid.record(Ok(vec![Some(79)]), Stage::Device, "t1");
        let d = DeviceResult {
            rank: 1,
            host: "h0".into(),
            local_rank: 1,
            device: "GPU 1".into(),
            device_name: "x".into(),
            step_s: 1.0,
            step_time_s: vec![1.0],
            tflops: 1.0,
            spec_peak_tflops: None,
            peak_tflops: None,
            peak_source: None,
            telemetry: CpuTelemetry::default(),
            gpu: Some(GpuTelemetry {
                uuid: "GPU-1".into(),
                readings: vec![GpuReading {
                    stage: Some(Stage::Device),
                    sm_clock_mhz: Some(1410),
                    ..Default::default()
                }],
                xid,
                ..Default::default()
            }),
            expected: None,
        };
        assert_eq!(d.reason(), "GPU-1; sm clock 1410 MHz, XID 79 during device");
    }

    #[test]
    fn sweep_rule_counts_wrong() {
        let mut r = record();
        r.stages = vec![Stage::Sweep];
        let row = |w: u64| SweepRow {
            size_bytes: 8,
            count: 2,
            time_us: 1.0,
            algbw_gbps: 1.0,
            busbw_gbps: 1.0,
            wrong: w,
        };
        r.sweep = Some(SweepStage {
            dtype: "float".into(),
            ranks: 3,
            iterations: 1,
            tables: vec![
                SweepTable::new(Collective::AllReduce, vec![row(0), row(0)]),
                SweepTable::new(Collective::AllGather, vec![row(0), row(2)]),
            ],
        });
        let f = evaluate(&r, &r.settings);
        assert_eq!(overall(&f, true), Status::Fail);
        // One finding per collective; the failing one names itself and the
        // size.
        let sweep: Vec<&Finding> = f.iter().filter(|x| x.stage == Stage::Sweep).collect();
        assert_eq!(sweep.len(), 2);
        assert_eq!(sweep[0].status, Status::Pass);
        assert_eq!(sweep[1].status, Status::Fail);
        assert!(
            sweep[1]
                .message
                .starts_with("all_gather: 2 wrong element(s), at size(s) 8 bytes"),
            "{}",
            sweep[1].message
        );
        r.sweep.as_mut().unwrap().tables[1].rows[1].wrong = 0;
        assert_eq!(overall(&evaluate(&r, &r.settings), true), Status::Pass);
        // A record of a suite that stopped: INCOMPLETE, whatever passed.
        assert_eq!(
            overall(&evaluate(&r, &r.settings), false),
            Status::Incomplete
        );
        // A table the time budget cut short: correct where it ran, and
        // labelled PARTIAL, never a plain PASS; one that never ran names why.
        let w = r.sweep.as_mut().unwrap();
        w.tables[0].stopped = Some("stopped before 16 B: the next size would take about 50 s, past the 120 s budget (accept.sweep_budget_s)".into());
        w.tables[1].rows.clear();
        w.tables[1].stopped = Some("the sweep's 120 s budget was spent".into());
        let f = evaluate(&r, &r.settings);
        let sweep: Vec<&Finding> = f.iter().filter(|x| x.stage == Stage::Sweep).collect();
        assert_eq!(sweep[0].status, Status::Inconclusive);
        assert!(
            sweep[0]
                .message
                .starts_with("all_reduce: PARTIAL: 2 sizes on ")
                && sweep[0]
                    .message
                    .ends_with("past the 120 s budget (accept.sweep_budget_s)"),
            "{}",
            sweep[0].message
        );
        assert_eq!(sweep[1].status, Status::Inconclusive);
        assert_eq!(
            sweep[1].message,
            "all_gather: not swept: the sweep's 120 s budget was spent"
        );
    }
}

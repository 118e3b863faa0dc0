//! Turns the timings of the timed iterations of a mode into a
//! [`ModeRecord`]: per-iteration step times, per-op medians, and the
//! timeline of the iteration with the median step time.

use std::collections::BTreeMap;

use mfubench_core::metrics;
use mfubench_core::parallel::Group;
use mfubench_core::plan::StepPlan;
use mfubench_core::result::{CollectiveInfo, ModeRecord, OpStat, Span, StreamKind};
use mfubench_core::stats;

use crate::schedule::StepTiming;

/// Index into the plan's collectives of a collective's span.
fn collective_of(plan: &StepPlan, s: &Span) -> Option<usize> {
    s.collective.or_else(|| {
        let b = s.bucket?;
        plan.collectives.iter().position(|c| c.bucket == Some(b))
    })
}

/// Per kind of collective (key [`CollectiveInfo::key`]) and timed
/// iteration: the summed duration of its spans, and (in steps that also
/// ran GEMMs) the time it ran while no GEMM did.
pub fn collective_times(
    plan: &StepPlan,
    iterations: &[StepTiming],
) -> (BTreeMap<String, Vec<f64>>, BTreeMap<String, Vec<f64>>) {
    let (mut busy, mut exposed) = (BTreeMap::new(), BTreeMap::new());
    for info in CollectiveInfo::of(plan) {
        let key = info.key();
        let mut b = Vec::with_capacity(iterations.len());
        let mut e = Vec::with_capacity(iterations.len());
        let mut any_gemm = false;
        for t in iterations {
            let of_kind: Vec<(f64, f64)> = t
                .spans
                .iter()
                .filter(|s| s.stream == StreamKind::Comm)
                .filter(|s| {
                    collective_of(plan, s).is_some_and(|ci| {
                        let c = &plan.collectives[ci];
                        c.kind == info.kind && c.group == info.group
                    })
                })
                .map(|s| (s.start_s, s.end_s))
                .collect();
            let gemms: Vec<(f64, f64)> = t
                .spans
                .iter()
                .filter(|s| s.stream == StreamKind::Compute)
                .map(|s| (s.start_s, s.end_s))
                .collect();
            any_gemm |= !gemms.is_empty();
            b.push(of_kind.iter().map(|(a, z)| z - a).sum());
            e.push(metrics::uncovered_s(&of_kind, &gemms));
        }
        if b.iter().any(|x| *x > 0.0) {
            if any_gemm {
                exposed.insert(key.clone(), e);
            }
            busy.insert(key, b);
        }
    }
    (busy, exposed)
}

/// Per timed iteration, the time during which any collective ran (the
/// union of every comm-stream span) and no GEMM did; empty unless the
/// steps ran both GEMMs and collectives.
pub fn comm_exposed(iterations: &[StepTiming]) -> Vec<f64> {
    let spans = |t: &StepTiming, k: StreamKind| -> Vec<(f64, f64)> {
        t.spans
            .iter()
            .filter(|s| s.stream == k)
            .map(|s| (s.start_s, s.end_s))
            .collect()
    };
    let both = iterations.iter().any(|t| {
        !spans(t, StreamKind::Comm).is_empty() && !spans(t, StreamKind::Compute).is_empty()
    });
    if !both {
        return Vec::new();
    }
    iterations
        .iter()
        .map(|t| metrics::uncovered_s(&spans(t, StreamKind::Comm), &spans(t, StreamKind::Compute)))
        .collect()
}

/// Per timed iteration and collective span (in span order), this rank's
/// arrival at the collective on rank 0's time line (`at`: each step's start
/// on it), and the kind of group the collective runs in.
pub fn arrivals(plan: &StepPlan, iterations: &[StepTiming], at: &[f64]) -> (Vec<f64>, Vec<Group>) {
    let mut arrivals = Vec::new();
    let mut groups = Vec::new();
    for (t, at) in iterations.iter().zip(at) {
        for s in t.spans.iter().filter(|s| s.stream == StreamKind::Comm) {
            arrivals.push(at + s.start_s);
            groups.push(collective_of(plan, s).map_or(Group::World, |c| plan.collectives[c].group));
        }
    }
    (arrivals, groups)
}

/// The iterations with every collective span starting at `last` (the
/// latest arrival of its group's ranks, in [`arrivals`]' order, on rank
/// 0's time line) and this rank's own arrival kept as `arrived_s`: the
/// span is then the collective's own time, and `start_s − arrived_s` this
/// rank's waiting for peers. A last arrival before this rank's own (only
/// within the clocks' uncertainty) leaves the span as it was.
pub fn from_last_arrival(iterations: &[StepTiming], at: &[f64], last: &[f64]) -> Vec<StepTiming> {
    let mut last = last.iter();
    iterations
        .iter()
        .zip(at)
        .map(|(t, at)| {
            let mut t = t.clone();
            for s in t.spans.iter_mut().filter(|s| s.stream == StreamKind::Comm) {
                let Some(l) = last.next() else { break };
                let from = (l - at).max(s.start_s).min(s.end_s.max(s.start_s));
                s.arrived_s = Some(s.start_s);
                s.start_s = from;
            }
            t
        })
        .collect()
}

/// Per timed iteration, the time this rank waited for peers at its
/// collectives (Σ `start_s − arrived_s`), and the part of it during which
/// no GEMM and no collective ran (`exposed`: [`comm_exposed`] of the same
/// iterations, computed once by the caller); both empty when no span has an
/// arrival.
pub fn waiting(iterations: &[StepTiming], exposed: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let aligned = iterations
        .iter()
        .any(|t| t.spans.iter().any(|s| s.arrived_s.is_some()));
    if !aligned {
        return (Vec::new(), Vec::new());
    }
    let total = iterations
        .iter()
        .map(|t| {
            t.spans
                .iter()
                .filter_map(|s| Some(s.start_s - s.arrived_s?))
                .sum()
        })
        .collect();
    let raw: Vec<StepTiming> = iterations
        .iter()
        .map(|t| {
            let mut t = t.clone();
            for s in &mut t.spans {
                s.start_s = s.arrived_s.unwrap_or(s.start_s);
            }
            t
        })
        .collect();
    let exposed_raw = comm_exposed(&raw);
    let waiting_exposed = exposed_raw
        .iter()
        .zip(exposed)
        .map(|(r, o)| (r - o).max(0.0))
        .collect();
    (total, waiting_exposed)
}

/// Builds the record of one mode from its timed iterations (at least one)
/// and when each started (seconds since the first timed step of the run).
pub fn mode_record(
    plan: &StepPlan,
    iterations: &[StepTiming],
    step_start_s: &[f64],
    wrong: u64,
) -> ModeRecord {
    let (collective_busy_s, collective_exposed_s) = collective_times(plan, iterations);
    let step_time_s: Vec<f64> = iterations.iter().map(|t| t.step_s).collect();
    let busy = |stream: StreamKind| -> Vec<f64> {
        iterations
            .iter()
            .map(|t| {
                t.spans
                    .iter()
                    .filter(|s| s.stream == stream)
                    .map(|s| s.end_s - s.start_s)
                    .sum()
            })
            .collect()
    };
    let comm_exposed_s = comm_exposed(iterations);
    let (wait_for_peers_s, wait_exposed_s) = waiting(iterations, &comm_exposed_s);
    let first = iterations.first();
    let ops = first
        .map(|f| {
            f.spans
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let d: Vec<f64> = iterations
                        .iter()
                        .filter_map(|t| t.spans.get(i).map(|x| x.end_s - x.start_s))
                        .collect();
                    OpStat {
                        name: s.name.clone(),
                        stream: s.stream,
                        op: s.op,
                        bucket: s.bucket,
                        median_s: stats::median(&d).unwrap_or(0.0),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    // The iteration whose step time is closest to the median.
    let med = stats::median(&step_time_s).unwrap_or(0.0);
    let timeline_iteration = step_time_s
        .iter()
        .enumerate()
        .min_by(|a, b| (a.1 - med).abs().total_cmp(&(b.1 - med).abs()))
        .map(|(i, _)| i)
        .unwrap_or(0);
    ModeRecord {
        step_time_s,
        step_start_s: step_start_s.to_vec(),
        gemm_busy_s: busy(StreamKind::Compute),
        allreduce_busy_s: busy(StreamKind::Comm),
        collective_busy_s,
        collective_exposed_s,
        comm_exposed_s,
        wait_for_peers_s,
        wait_exposed_s,
        ops,
        timeline: iterations
            .get(timeline_iteration)
            .map(|t| t.spans.clone())
            .unwrap_or_default(),
        timeline_iteration,
        wrong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfubench_core::result::Span;

    fn step(s: f64, d: f64) -> StepTiming {
        StepTiming {
            step_s: s,
            spans: vec![Span {
                name: "x".into(),
                stream: StreamKind::Compute,
                op: Some(0),
                bucket: None,
                collective: None,
                start_s: 0.0,
                end_s: d,
                arrived_s: None,
            }],
        }
    }

    /// A span of `stream` from `a` to `b` s (a GEMM is op 0).
    fn span(stream: StreamKind, bucket: Option<usize>, a: f64, b: f64) -> Span {
        Span {
            name: "x".into(),
            stream,
            op: (stream == StreamKind::Compute).then_some(0),
            bucket,
            collective: None,
            start_s: a,
            end_s: b,
            arrived_s: None,
        }
    }

    fn plan() -> StepPlan {
        let c = mfubench_core::config::parse_config(
            "[model]\npreset = \"tiny\"\nseq = 32\n[run]\nlayers = 1\nbucket_mb = 1000\n",
            "t",
        )
        .unwrap();
        StepPlan::for_config(&c)
    }

    /// One bucket (all_reduce/dp_replicate) running 1–4 s, GEMMs 0–2 and
    /// 3–3.5: busy 3 s, exposed 2–3 and 3.5–4 = 1.5 s.
    #[test]
    fn collective_times_known_answer() {
        let p = plan();
        assert_eq!(p.buckets.len(), 1);
        let t = StepTiming {
            step_s: 4.0,
            spans: vec![
                span(StreamKind::Compute, None, 0.0, 2.0),
                span(StreamKind::Compute, None, 3.0, 3.5),
                span(StreamKind::Comm, Some(0), 1.0, 4.0),
            ],
        };
        let (busy, exposed) = collective_times(&p, &[t.clone(), t.clone()]);
        assert_eq!(busy["all_reduce/dp_replicate"], vec![3.0, 3.0]);
        assert_eq!(exposed["all_reduce/dp_replicate"], vec![1.5, 1.5]);
        // Two collectives overlapping each other (3.8–4.5 beside 1–4):
        // their union less the GEMMs, 2–3 and 3.5–4.5 = 2 s, not 1.5 + 0.7.
        let mut two = t.clone();
        two.spans.push(span(StreamKind::Comm, None, 3.8, 4.5));
        assert_eq!(comm_exposed(&[two]), vec![2.0]);
        // No GEMMs in the steps (comm mode): nothing to be exposed against.
        let comm_only = StepTiming {
            step_s: 3.0,
            spans: vec![span(StreamKind::Comm, Some(0), 1.0, 4.0)],
        };
        assert!(comm_exposed(&[comm_only]).is_empty());
    }

    /// Two steps of one GEMM (0–2 s) and one bucket all-reduce this rank
    /// reached at 1 s; the steps started at 100 and 200 s on rank 0's time
    /// line; the group's last rank arrived at 101.5 and 200.5 s.
    #[test]
    fn collectives_from_the_last_arrival_known_answer() {
        let p = plan();
        let t = StepTiming {
            step_s: 4.0,
            spans: vec![
                span(StreamKind::Compute, None, 0.0, 2.0),
                span(StreamKind::Comm, Some(0), 1.0, 4.0),
            ],
        };
        let steps = [t.clone(), t];
        let at = [100.0, 200.0];
        let (arrivals, groups) = arrivals(&p, &steps, &at);
        assert_eq!(arrivals, vec![101.0, 201.0]);
        assert_eq!(groups, vec![p.collectives[0].group; 2]);
        // Step 1: the last rank came after this one (1.5 s into the step);
        // step 2: this rank was the last (rank 0's time line says 0.5 s,
        // within the clocks' uncertainty): its span stays.
        let own = from_last_arrival(&steps, &at, &[101.5, 200.5]);
        assert_eq!(own[0].spans[1].start_s, 1.5);
        assert_eq!(own[0].spans[1].arrived_s, Some(1.0));
        assert_eq!(own[1].spans[1].start_s, 1.0);
        assert_eq!(own[1].spans[1].arrived_s, Some(1.0));
        // GEMM spans are left alone.
        assert_eq!(own[0].spans[0], steps[0].spans[0]);
        // Waiting 0.5 s in step 1, none in step 2; exposed: the GEMM ran
        // during the whole wait (1–1.5 s), so none of it was exposed.
        let (wait, exposed) = waiting(&own, &comm_exposed(&own));
        assert_eq!(wait, vec![0.5, 0.0]);
        assert_eq!(exposed, vec![0.0, 0.0]);
        // The record: busy and exposed times from the last arrival.
        let r = mode_record(&p, &own, &[0.0, 100.0], 0);
        assert_eq!(r.allreduce_busy_s, vec![2.5, 3.0]);
        assert_eq!(r.comm_exposed_s, vec![2.0, 2.0]);
        assert_eq!(r.wait_for_peers_s, vec![0.5, 0.0]);
        // A GEMM ending at 0.5 s: the wait (1–3 s, the last rank at 3 s)
        // is exposed from 1 to 3 s, and the collective itself (3–4 s) too.
        let mut short = steps[0].clone();
        short.spans[0].end_s = 0.5;
        let own = from_last_arrival(&[short], &[100.0], &[103.0]);
        assert_eq!(waiting(&own, &comm_exposed(&own)), (vec![2.0], vec![2.0]));
        assert_eq!(comm_exposed(&own), vec![1.0]);
        // Without aligned clocks (no arrivals): no waiting figures.
        assert_eq!(
            waiting(&steps, &comm_exposed(&steps)),
            (Vec::new(), Vec::new())
        );
    }

    #[test]
    fn medians_and_timeline_choice() {
        let r = mode_record(
            &plan(),
            &[step(3.0, 1.0), step(1.0, 3.0), step(2.0, 2.5)],
            &[0.0, 10.0, 20.0],
            0,
        );
        assert_eq!(r.step_time_s, vec![3.0, 1.0, 2.0]);
        assert_eq!(r.step_start_s, vec![0.0, 10.0, 20.0]);
        assert_eq!(r.gemm_busy_s, vec![1.0, 3.0, 2.5]);
        assert_eq!(r.allreduce_busy_s, vec![0.0, 0.0, 0.0]);
        assert_eq!(r.ops[0].median_s, 2.5);
        assert_eq!(r.timeline_iteration, 2);
        assert_eq!(r.timeline[0].end_s, 2.5);
    }
}

//! Turns the timings of the timed iterations of a mode into a
//! [`ModeRecord`]: per-iteration step times, per-op medians, and the
//! timeline of the iteration with the median step time.

use std::collections::BTreeMap;

use mfubench_core::metrics;
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
            }],
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
        let span = |stream, bucket, a, b| Span {
            name: "x".into(),
            stream,
            op: None,
            bucket,
            collective: None,
            start_s: a,
            end_s: b,
        };
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

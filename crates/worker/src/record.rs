//! Turns the timings of the timed iterations of a mode into a
//! [`ModeRecord`]: per-iteration step times, per-op medians, and the
//! timeline of the iteration with the median step time.

use mfubench_core::result::{ModeRecord, OpStat, StreamKind};
use mfubench_core::stats;

use crate::schedule::StepTiming;

/// Builds the record of one mode from its timed iterations (at least one)
/// and when each started (seconds since the first timed step of the run).
pub fn mode_record(iterations: &[StepTiming], step_start_s: &[f64], wrong: u64) -> ModeRecord {
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

    #[test]
    fn medians_and_timeline_choice() {
        let r = mode_record(
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

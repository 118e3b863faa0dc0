//! Injected faults, from `MFUBENCH_SIMGPU_FAULTS` (the launcher's
//! `--sim-fault SPEC`): the specs and their parser are
//! `mfubench_core::simgpu`'s, so the launcher refuses a bad one before
//! anything starts.
//!
//! **Delayed faults.** A spec ending in `,after=SECONDS` (e.g.
//! `slow=0.5@hostA:1,after=20`, `throttle=thermal@*:0,after=2.5`) applies
//! only once SECONDS have passed since the process first used the simulated
//! libraries: the clock ([`start`]) starts at the first call into this
//! module, which the first NVML device lookup, communicator or GEMM makes.
//! [`of_device`] filters by time at each call (the spec list is read once),
//! and its callers ask per GEMM, per NVML reading, per collective and per
//! event-set wait, so a delayed fault takes effect mid-run. Without the
//! suffix a fault applies from the start.

use std::sync::OnceLock;
use std::time::Instant;

pub use mfubench_core::simgpu::{parse, Fault, Spec};

/// Every spec of the environment (bad specs were refused by the launcher;
/// here they stop the process).
pub fn all() -> Vec<Spec> {
    let Ok(v) = std::env::var(mfubench_core::simgpu::FAULTS_VAR) else {
        return Vec::new();
    };
    v.split(';')
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse(s.trim()).unwrap_or_else(|e| crate::fatal(&e)))
        .collect()
}

/// The instant the process first called into this module: what
/// `,after=SECONDS` counts from.
pub fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Seconds since [`start`].
fn elapsed_s() -> f64 {
    start().elapsed().as_secs_f64()
}

/// The specs of this host, read from the environment once (starting the
/// clock first, so that it never starts later than the first lookup).
fn specs() -> &'static [Spec] {
    static MINE: OnceLock<Vec<Spec>> = OnceLock::new();
    MINE.get_or_init(|| {
        start();
        let host = crate::env::host_name();
        all()
            .into_iter()
            .filter(|s| s.host.as_deref().is_none_or(|h| h == host))
            .collect()
    })
}

/// Whether a fault delayed by `after_s` (None: not delayed) applies
/// `elapsed_s` seconds after the start.
pub fn active(after_s: Option<f64>, elapsed_s: f64) -> bool {
    after_s.is_none_or(|a| elapsed_s >= a)
}

/// The faults of `specs` (already those of this host) on device `gpu`
/// that apply `elapsed_s` seconds after the start.
pub fn active_on(specs: &[Spec], gpu: usize, elapsed_s: f64) -> Vec<Fault> {
    specs
        .iter()
        .filter(|s| s.gpu.is_none_or(|g| g == gpu) && active(s.after_s, elapsed_s))
        .map(|s| s.fault.clone())
        .collect()
}

/// Seconds from `elapsed_s` until the next of `specs` not yet in effect
/// starts; None when none is waiting.
pub fn next_start_in(specs: &[Spec], elapsed_s: f64) -> Option<f64> {
    specs
        .iter()
        .filter_map(|s| s.after_s)
        .filter(|a| *a > elapsed_s)
        .map(|a| a - elapsed_s)
        .min_by(f64::total_cmp)
}

/// The faults of global device `gpu` on this host in effect now (a
/// delayed one once its delay has passed).
pub fn of_device(gpu: usize) -> Vec<Fault> {
    start();
    let specs = specs();
    if specs.is_empty() {
        return Vec::new();
    }
    active_on(specs, gpu, elapsed_s())
}

/// How long until a delayed fault of this host starts; None when none is
/// waiting (for waits that must notice one, such as NVML event sets).
pub fn next_start() -> Option<std::time::Duration> {
    next_start_in(specs(), elapsed_s()).map(std::time::Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(fault: Fault, gpu: Option<usize>, after_s: Option<f64>) -> Spec {
        Spec {
            fault,
            host: None,
            gpu,
            after_s,
        }
    }

    #[test]
    fn delayed_faults_apply_once_their_time_has_come() {
        assert!(active(None, 0.0));
        assert!(!active(Some(20.0), 0.0));
        assert!(!active(Some(20.0), 19.999));
        assert!(active(Some(20.0), 20.0));
        assert!(active(Some(0.0), 0.0));

        let specs = [
            spec(Fault::Slow(0.5), Some(1), Some(20.0)),
            spec(Fault::Throttle("thermal".into()), None, Some(2.5)),
            spec(Fault::Corrupt, Some(1), None),
            spec(Fault::Ecc(3), Some(0), None),
        ];
        assert_eq!(active_on(&specs, 1, 0.0), vec![Fault::Corrupt]);
        assert_eq!(
            active_on(&specs, 1, 3.0),
            vec![Fault::Throttle("thermal".into()), Fault::Corrupt]
        );
        assert_eq!(
            active_on(&specs, 1, 20.0),
            vec![
                Fault::Slow(0.5),
                Fault::Throttle("thermal".into()),
                Fault::Corrupt
            ]
        );
        assert_eq!(active_on(&specs, 0, 0.0), vec![Fault::Ecc(3)]);
        assert_eq!(
            active_on(&specs, 0, 100.0),
            vec![Fault::Throttle("thermal".into()), Fault::Ecc(3)]
        );

        assert_eq!(next_start_in(&specs, 0.0), Some(2.5));
        assert_eq!(next_start_in(&specs, 2.0), Some(0.5));
        assert_eq!(next_start_in(&specs, 5.0), Some(15.0));
        assert_eq!(next_start_in(&specs, 20.0), None);
        assert_eq!(next_start_in(&[], 0.0), None);
    }
}

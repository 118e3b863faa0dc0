//! Injected faults, from `MFUBENCH_SIMGPU_FAULTS` (the launcher's
//! `--sim-fault SPEC`): the specs and their parser are
//! `mfubench_core::simgpu`'s, so the launcher refuses a bad one before
//! anything starts.

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

/// The faults of global device `gpu` on this host.
pub fn of_device(gpu: usize) -> Vec<Fault> {
    static ALL: std::sync::OnceLock<Vec<Spec>> = std::sync::OnceLock::new();
    let host = crate::env::host_name();
    ALL.get_or_init(all)
        .iter()
        .filter(|s| s.host.as_deref().is_none_or(|h| h == host) && s.gpu.is_none_or(|g| g == gpu))
        .map(|s| s.fault.clone())
        .collect()
}

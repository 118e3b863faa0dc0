//! Settings of the simulation, from the environment the launcher sets.

pub use mfubench_core::simgpu::{DEVICES_VAR, FAULTS_VAR, MEM_GIB_VAR, RACE_VAR, SEED_VAR};

/// Simulated devices on this host (default 1).
pub fn devices_per_host() -> usize {
    std::env::var(DEVICES_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// Memory per device, bytes.
pub fn mem_bytes() -> u64 {
    let gib: f64 = std::env::var(MEM_GIB_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|g: &f64| *g > 0.0)
        .unwrap_or(80.0);
    (gib * (1u64 << 30) as f64) as u64
}

/// The seed of per-operation delays, if any.
pub fn seed() -> Option<u64> {
    std::env::var(SEED_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

/// Whether the race checker runs.
pub fn race_check() -> bool {
    std::env::var(RACE_VAR).map(|v| v != "0").unwrap_or(true)
}

/// This host's name (namespace hosts have their own).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

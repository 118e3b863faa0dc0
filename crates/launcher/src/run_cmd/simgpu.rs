//! `--sim-gpu N` / `--sim-fault SPEC`: point the ranks at the simulated GPU
//! (crates/simgpu) instead of a real one.
//!
//! The simulator is one shared object, `libmfubench_simgpu.so`, built next
//! to `mfubench-worker` (`cargo build -p mfubench-simgpu`) or named by
//! `MFUBENCH_SIMGPU_LIB`. It is linked under the four library names the
//! backend loads (libcuda.so.1, libcublasLt.so.12/13, libnccl.so.2,
//! libnvidia-ml.so.1) in a folder of their own, which goes first on the
//! ranks' `LD_LIBRARY_PATH`; nothing else ever finds it. The settings reach
//! the ranks as environment variables (forwarded by name like every
//! `MFUBENCH_*` one). [`sim_env`] is the pure part: which variables, with
//! which values.

use std::path::{Path, PathBuf};

use anyhow::Result;
use mfubench_core::simgpu as sim;

use crate::exit::usage;

pub use mfubench_core::simgpu::{LIB_FILE, LINK_NAMES};
/// Most simulated GPUs per host.
pub const MAX_PER_HOST: u32 = 64;

/// The variables the ranks get: `per_host` devices, the fault specs (already
/// checked), the links folder first on `LD_LIBRARY_PATH`, the cuBLASLt and
/// NCCL files named explicitly (a real library elsewhere on the path is
/// never picked), and, for a single-host run, NCCL's sockets on loopback
/// unless `NCCL_SOCKET_IFNAME` is set.
pub fn sim_env(
    per_host: u32,
    faults: &[String],
    links: &Path,
    ld_library_path: Option<&str>,
    single_host: bool,
    socket_ifname_set: bool,
) -> Vec<(String, String)> {
    let dir = links.display().to_string();
    let mut v = vec![
        (sim::DEVICES_VAR.to_string(), per_host.to_string()),
        (
            "LD_LIBRARY_PATH".to_string(),
            match ld_library_path.filter(|p| !p.is_empty()) {
                Some(p) => format!("{dir}:{p}"),
                None => dir.clone(),
            },
        ),
        (
            "MFUBENCH_CUBLASLT_LIB".to_string(),
            links.join("libcublasLt.so.12").display().to_string(),
        ),
        (
            "MFUBENCH_NCCL_LIB".to_string(),
            links.join("libnccl.so.2").display().to_string(),
        ),
    ];
    if !faults.is_empty() {
        v.push((sim::FAULTS_VAR.to_string(), faults.join(";")));
    }
    if single_host && !socket_ifname_set {
        v.push(("NCCL_SOCKET_IFNAME".to_string(), "lo".to_string()));
    }
    v
}

/// Checks `--sim-gpu` and `--sim-fault` (exit 2 with the flag named).
pub fn check_args(per_host: Option<u32>, faults: &[String]) -> Result<()> {
    match per_host {
        None if !faults.is_empty() => Err(usage(
            "--sim-fault: only with --sim-gpu N (faults are injected into simulated GPUs)",
        )),
        Some(n) if n == 0 || n > MAX_PER_HOST => Err(usage(format!(
            "--sim-gpu {n}: give 1 to {MAX_PER_HOST} simulated GPUs per host"
        ))),
        _ => {
            for f in faults {
                sim::parse(f).map_err(usage)?;
            }
            Ok(())
        }
    }
}

/// Finds the simulator and links it under [`LINK_NAMES`] in a `simgpu/`
/// folder beside it (or in the temporary folder when that is read-only);
/// returns the links folder.
pub fn prepare_links(worker: &Path) -> Result<PathBuf> {
    let lib = match std::env::var_os("MFUBENCH_SIMGPU_LIB").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => worker
            .parent()
            .map(|d| d.join(LIB_FILE))
            .unwrap_or_else(|| PathBuf::from(LIB_FILE)),
    };
    if !lib.is_file() {
        return Err(usage(format!(
            "--sim-gpu: {} not found: build the simulated GPU with `ci/fetch-nvidia-headers.sh && cargo build -p mfubench-simgpu` (add --release for a release mfubench), or point MFUBENCH_SIMGPU_LIB at it",
            lib.display()
        )));
    }
    let lib = std::path::absolute(&lib).unwrap_or(lib);
    let beside = lib.parent().map(|d| d.join("simgpu"));
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let fallback = std::env::temp_dir().join(format!("mfubench-simgpu-{uid}"));
    let mut last = None;
    for dir in beside.into_iter().chain([fallback]) {
        match link_all(&lib, &dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last = Some(format!("{}: {e}", dir.display())),
        }
    }
    Err(usage(format!(
        "--sim-gpu: cannot link the simulated GPU's libraries ({})",
        last.unwrap_or_default()
    )))
}

/// Links `lib` under every name in `dir`, each by an atomic rename, so
/// concurrent runs never see a missing or half-made link.
fn link_all(lib: &Path, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for name in LINK_NAMES {
        let tmp = dir.join(format!(".{name}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(lib, &tmp)?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_for_one_host_and_for_many() {
        let v = sim_env(
            2,
            &["xid=79@*:1".into()],
            Path::new("/t/simgpu"),
            Some("/usr/lib"),
            true,
            false,
        );
        let get = |k: &str| v.iter().find(|(n, _)| n == k).map(|(_, x)| x.as_str());
        assert_eq!(get(sim::DEVICES_VAR), Some("2"));
        assert_eq!(get("LD_LIBRARY_PATH"), Some("/t/simgpu:/usr/lib"));
        assert_eq!(get("MFUBENCH_NCCL_LIB"), Some("/t/simgpu/libnccl.so.2"));
        assert_eq!(
            get("MFUBENCH_CUBLASLT_LIB"),
            Some("/t/simgpu/libcublasLt.so.12")
        );
        assert_eq!(get(sim::FAULTS_VAR), Some("xid=79@*:1"));
        assert_eq!(get("NCCL_SOCKET_IFNAME"), Some("lo"));
        let v = sim_env(1, &[], Path::new("/t/s"), None, false, false);
        assert!(v
            .iter()
            .all(|(n, _)| n != "NCCL_SOCKET_IFNAME" && n != sim::FAULTS_VAR));
        assert!(v.contains(&("LD_LIBRARY_PATH".into(), "/t/s".into())));
    }

    #[test]
    fn flags_are_checked_before_anything_starts() {
        assert!(check_args(None, &[]).is_ok());
        assert!(check_args(Some(2), &["slow=0.3@*:0".into()]).is_ok());
        let e = check_args(None, &["corrupt@*:0".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--sim-fault") && e.contains("--sim-gpu"), "{e}");
        let e = check_args(Some(0), &[]).unwrap_err().to_string();
        assert!(e.contains("--sim-gpu 0"), "{e}");
        let e = check_args(Some(1), &["melt@*:0".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown kind"), "{e}");
    }
}

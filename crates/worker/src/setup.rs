//! What a rank does before the benchmark proper, each step agreed by every
//! rank: the world size check, the config (read by rank 0, broadcast,
//! resolved for the backend every rank can run), the hello event and the
//! run directory.

use std::path::{Path, PathBuf};

use mfubench_core::config::{parse_config_file, BackendKind, Config, ConfigFile};
use mfubench_core::protocol::{self, Event};

use crate::cuda;
use crate::mpi_comm;
use crate::output;
use crate::progress::emit;
use crate::rank::{Exit, Rank, UsageError};

/// Fails (exit 2) unless MPI reports `expect` ranks.
pub fn check_world(rank: &Rank, expect: Option<u64>) -> Result<(), Exit> {
    match expect {
        Some(n) if n != rank.size => {
            rank.error(format!(
                "MPI reports a world of {} rank(s) but --expect-world is {n}: the worker was probably started by an mpirun from a different MPI installation than the one it was built with (check `which mpirun` and `mpirun --version`)",
                rank.size
            ));
            Err(Exit::Usage)
        }
        _ => Ok(()),
    }
}

/// Reads and validates the config on rank 0 and broadcasts it; returns the
/// config resolved for the concrete backend.
pub fn load_config(rank: &Rank, path: &Path, backend: Option<&str>) -> Result<Config, Exit> {
    let file = path.display().to_string();
    let text = load_text(rank, path)?;
    let raw = parse_with_backend(rank, &text, &file, backend)?;
    raw.resolve(&file).map_err(|e| usage(rank, &e))
}

/// Rank 0 reads the config file (and its `[model] hf_config`) and
/// broadcasts the text.
pub fn load_text(rank: &Rank, path: &Path) -> Result<String, Exit> {
    let file = path.display().to_string();
    let text = if rank.is_root() {
        std::fs::read_to_string(path)
            .map_err(|e| UsageError(format!("{file}: cannot read the config: {e}")))
            .and_then(|text| {
                // `[model] hf_config` is read here, once, and travels in
                // the text every rank parses.
                mfubench_core::hf::inline(&text, &file, |p| {
                    std::fs::read_to_string(p).map_err(|e| e.to_string())
                })
                .map_err(UsageError)
            })
    } else {
        Ok(String::new())
    };
    let text = rank.agree(text)?;
    Ok(
        String::from_utf8_lossy(&mpi_comm::broadcast_bytes(&rank.world, text.as_bytes()))
            .into_owned(),
    )
}

/// A usage error every rank finds alike (same text, same parse): no
/// collective is needed, and only rank 0 says why.
pub fn usage(rank: &Rank, e: &dyn std::fmt::Display) -> Exit {
    if rank.is_root() {
        rank.error(e);
    }
    Exit::Usage
}

/// Parses the config text and settles `run.backend` (`--backend`, else the
/// file's; `auto` becomes CUDA when every rank sees a driver and a GPU).
/// Collective.
pub fn parse_with_backend(
    rank: &Rank,
    text: &str,
    file: &str,
    backend: Option<&str>,
) -> Result<ConfigFile, Exit> {
    let mut raw = parse_config_file(text, file).map_err(|e| usage(rank, &e))?;
    let requested = match backend {
        None => raw.run.backend.unwrap_or_default(),
        Some("auto") => BackendKind::Auto,
        Some("cpu") => BackendKind::Cpu,
        Some("cuda") => BackendKind::Cuda,
        Some(other) => {
            return Err(usage(
                rank,
                &format!("--backend {other}: use auto, cpu or cuda"),
            ))
        }
    };
    raw.run.backend = Some(match requested {
        BackendKind::Auto => {
            // CUDA when every rank sees a driver and a GPU, so that all
            // ranks pick the same backend.
            let mine = cuda::probe();
            if rank.all(mine.is_ok()) {
                BackendKind::Cuda
            } else {
                if rank.is_root() {
                    let why = mine
                        .err()
                        .unwrap_or_else(|| "some ranks have no usable CUDA driver or GPU".into());
                    crate::say!("mfubench-worker: backend auto: using the CPU backend ({why})");
                }
                BackendKind::Cpu
            }
        }
        other => other,
    });
    Ok(raw)
}

/// Every rank announces itself to the launcher and starts its heartbeat.
pub fn hello(rank: &Rank, config: &Config) {
    let device = match config.run.backend {
        BackendKind::Cpu => "cpu".to_string(),
        BackendKind::Cuda | BackendKind::Auto => cuda::probe()
            .and_then(|n| cuda::select_ordinal(rank.local_rank, rank.ranks_on_host, n))
            .map(|o| format!("GPU {o}"))
            .unwrap_or_else(|_| "GPU ?".to_string()),
    };
    emit(&Event::Hello {
        rank: rank.rank,
        host: rank.host.clone(),
        local_rank: rank.local_rank,
        pid: std::process::id(),
        device,
        slurm_step: slurm_step(),
        ompi_jobid: std::env::var("OMPI_MCA_ess_base_jobid")
            .ok()
            .and_then(|j| j.parse().ok()),
        ompi_session_dir: ["OMPI_MCA_orte_jobfam_session_dir", "PMIX_SERVER_TMPDIR"]
            .into_iter()
            .find_map(|v| std::env::var(v).ok().filter(|d| !d.is_empty())),
        ompi5_jobid: open_mpi_5()
            .then(|| std::env::var("PMIX_NAMESPACE").ok())
            .flatten()
            .filter(|n| !n.is_empty())
            .map(|n| u64::from(ompi5_jobid(&n))),
    });
    crate::progress::start_heartbeat(rank.rank);
}

/// Whether the MPI library is Open MPI 5 or later.
fn open_mpi_5() -> bool {
    mpi::environment::library_version().is_ok_and(|v| {
        v.strip_prefix("Open MPI v")
            .and_then(|r| r.split('.').next())
            .and_then(|m| m.parse::<u32>().ok())
            .is_some_and(|major| major >= 5)
    })
}

/// Open MPI 5's job id of the PMIx namespace `nspace`, as
/// `opal_pmix_convert_nspace` computes it: Jenkins' one-at-a-time hash
/// (`OPAL_HASH_STR`, bytes as C `char`, signed here) of the name up to its
/// last `@`, folded to 16 bits as the job family, over the number after
/// the `@` (the local job) in the low 16 bits.
fn ompi5_jobid(nspace: &str) -> u32 {
    let (name, local) = match nspace.rsplit_once('@') {
        Some((n, l)) => {
            // strtoul: the leading digits, 0 if none.
            let digits: String = l.chars().take_while(char::is_ascii_digit).collect();
            (n, digits.parse::<u64>().unwrap_or(0) as u32)
        }
        None => (nspace, 0),
    };
    let mut h: u32 = 0;
    for b in name.bytes() {
        h = h.wrapping_add(b as i8 as i32 as u32);
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h = h.wrapping_add(h << 15);
    let family = ((h >> 16) ^ (h & 0xffff)) & 0xffff;
    (family << 16) | (local & 0xffff)
}

/// `JOBID.STEPID` of the Slurm step this process runs in, if any.
fn slurm_step() -> Option<String> {
    let job = std::env::var("SLURM_JOB_ID")
        .ok()
        .filter(|s| !s.is_empty())?;
    let step = std::env::var("SLURM_STEP_ID")
        .ok()
        .filter(|s| !s.is_empty())?;
    Some(format!("{job}.{step}"))
}

/// The run id (rank 0's, broadcast) and its directory, created and proven
/// writable before any compute.
pub fn run_dir(rank: &Rank, out: &Path, run_id: Option<String>) -> Result<(String, PathBuf), Exit> {
    let id = run_id
        .unwrap_or_else(|| protocol::default_run_id(output::epoch_secs(), std::process::id()));
    let id = String::from_utf8_lossy(&mpi_comm::broadcast_bytes(&rank.world, id.as_bytes()))
        .into_owned();
    let dir = if rank.is_root() {
        output::prepare_run_dir(out, &id)
    } else {
        Ok(PathBuf::new())
    };
    Ok((id, rank.agree(dir)?))
}

/// The parallel layout of the run (`[parallel]` on these ranks). DDP
/// without tensor parallelism runs on any placement; the other patterns
/// need the same number of ranks on every host, placed host by host (rank
/// r on host ⌊r / ranks per host⌋, as mpirun and srun place them by
/// default), since their groups are defined by that placement. Collective.
pub fn layout(
    rank: &Rank,
    config: &Config,
    file: &Path,
) -> Result<mfubench_core::parallel::Layout, Exit> {
    let p = config.parallel;
    let (rpn, size) = if p.is_default() {
        (rank.size, rank.size)
    } else {
        let rpn = rank.ranks_on_host.max(1);
        let hi = mpi_comm::max_f64(&rank.world, rpn as f64);
        let lo = -mpi_comm::max_f64(&rank.world, -(rpn as f64));
        let placed = rank.all(rank.local_rank == rank.rank % rpn);
        if hi != lo || !placed {
            if rank.is_root() {
                rank.error(format!(
                    "{}: parallel: data = \"{}\", tensor = {} needs the same number of ranks on every host, placed host by host (found {lo} to {hi} ranks per host{}); start the ranks by slot (mpirun's default, srun's block distribution) with the same count on every host",
                    file.display(),
                    p.data,
                    p.tensor,
                    if placed { "" } else { ", not placed host by host" }
                ));
            }
            return Err(Exit::Usage);
        }
        (rpn, rank.size)
    };
    p.layout(size, rpn).map_err(|e| {
        if rank.is_root() {
            rank.error(format!("{}: {e}", file.display()));
        }
        Exit::Usage
    })
}

#[cfg(test)]
mod tests {
    use super::ompi5_jobid;

    #[test]
    fn open_mpi_5_jobid_is_the_folded_one_at_a_time_hash() {
        // Jenkins' one-at-a-time hash of "a" is 0xca2e9442 and of the fox
        // sentence 0x519e91f5 (the published test values); folded:
        // 0xca2e ^ 0x9442 = 0x5e6c, 0x519e ^ 0x91f5 = 0xc06b.
        assert_eq!(ompi5_jobid("a"), 0x5e6c_0000);
        assert_eq!(ompi5_jobid("a@3"), 0x5e6c_0003);
        assert_eq!(
            ompi5_jobid("The quick brown fox jumps over the lazy dog@1"),
            0xc06b_0001
        );
        // Up to the last '@'; strtoul's leading digits after it.
        assert_eq!(ompi5_jobid("a@x@2"), ompi5_jobid("a@x@2junk"));
        assert_ne!(ompi5_jobid("a@x@2"), ompi5_jobid("a@2"));
    }
}

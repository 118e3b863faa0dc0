//! Files and metadata: atomic writes, the run directory, timestamps, host
//! facts and the allow-listed environment.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, fsync, then rename, so a reader never sees a partial file and
/// a crash never destroys a previous complete one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable (best effort: not every file
        // system lets a directory be opened for syncing).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `out/run_id` and proves it is writable, before any compute.
/// A run is never overwritten: an existing `out/run_id` is accepted only
/// when it is empty (`mfubench run` reserves the folder by creating it).
pub fn prepare_run_dir(out: &Path, run_id: &str) -> Result<PathBuf, String> {
    if run_id.is_empty() || run_id.contains('/') || run_id.starts_with('.') {
        return Err(format!(
            "--run-id \"{run_id}\": use a plain directory name (no '/', not starting with '.')"
        ));
    }
    let dir = out.join(run_id);
    let created = std::fs::create_dir_all(out).and_then(|()| std::fs::create_dir(&dir));
    match created {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {
            let empty = std::fs::read_dir(&dir)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !empty {
                return Err(format!(
                    "--run-id {run_id}: {} already holds a run, which is never overwritten; \
                     choose another run id (or `mfubench run --force` to replace it)",
                    dir.display()
                ));
            }
        }
        Err(e) => {
            return Err(format!(
                "--out {}: cannot create {}: {e}",
                out.display(),
                dir.display()
            ))
        }
    }
    let probe = dir.join(".write-test");
    write_atomic(&probe, b"ok").map_err(|e| {
        format!(
            "--out {}: {} is not writable: {e}",
            out.display(),
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(dir)
}

fn epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A default run id: UTC time plus the process id, e.g. `20261128-134501-1a2b`.
pub fn default_run_id() -> String {
    format!(
        "{}-{:04x}",
        mfubench_core::time::utc_stamp(epoch_secs()),
        std::process::id() & 0xffff
    )
}

/// Now as RFC 3339 UTC, e.g. `2026-11-28T13:45:01Z`.
pub fn rfc3339_now() -> String {
    mfubench_core::time::rfc3339(epoch_secs())
}

/// This host's name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer we
    // own and NUL-terminates when the name fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The CPU model name from /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Available memory in bytes (MemAvailable), if known.
pub fn mem_available_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Prefixes of the environment variables recorded in run.json.
pub const ENV_PREFIXES: [&str; 5] = ["NCCL_", "CUDA_", "SLURM_", "OMPI_", "UCX_"];

/// Name fragments that mark a secret: never recorded.
pub const SECRET_MARKERS: [&str; 4] = ["TOKEN", "KEY", "SECRET", "PASSWORD"];

/// The allow-listed environment: NCCL_*, CUDA_*, SLURM_*, OMPI_*, UCX_*,
/// minus anything whose name contains TOKEN, KEY, SECRET or PASSWORD.
pub fn captured_env(vars: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    vars.into_iter()
        .filter(|(k, _)| ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
        .filter(|(k, _)| {
            let up = k.to_ascii_uppercase();
            !SECRET_MARKERS.iter().any(|m| up.contains(m))
        })
        .collect()
}

/// Writes one line to stderr with a single write, so that lines of ranks
/// sharing mpirun's output forwarding never interleave mid-line (`eprintln!`
/// may split a formatted line into several writes).
pub fn write_stderr_line(line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let _ = std::io::stderr().lock().write_all(buf.as_bytes());
}

/// `eprintln!` as one write: see [`write_stderr_line`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::write_stderr_line(&format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_allow_list_drops_secrets() {
        let v = captured_env(
            [
                ("NCCL_DEBUG", "INFO"),
                ("SLURM_JOB_ID", "42"),
                ("NCCL_API_KEY", "x"),
                ("UCX_PASSWORD_FILE", "y"),
                ("CUDA_VISIBLE_DEVICES", "0,1"),
                ("HOME", "/root"),
                ("OMPI_MCA_token", "z"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string())),
        );
        let keys: Vec<&str> = v.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec!["CUDA_VISIBLE_DEVICES", "NCCL_DEBUG", "SLURM_JOB_ID"]
        );
    }

    #[test]
    fn atomic_write_and_run_dir() {
        let d = tempfile::tempdir().unwrap();
        let dir = prepare_run_dir(d.path(), "r1").unwrap();
        let p = dir.join("run.json");
        write_atomic(&p, b"{}").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{}");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temp files left"
        );
        assert!(prepare_run_dir(d.path(), "../x").is_err());
        // A folder holding a run is never reused; an empty (reserved) one is.
        let e = prepare_run_dir(d.path(), "r1").unwrap_err();
        assert!(e.contains("never overwritten"), "{e}");
        std::fs::create_dir(d.path().join("r2")).unwrap();
        assert!(prepare_run_dir(d.path(), "r2").is_ok());
    }
}

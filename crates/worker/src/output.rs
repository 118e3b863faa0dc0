//! Files and metadata: atomic writes, the run directory, timestamps, host
//! facts and the allow-listed environment.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use mfubench_fsio::{append_line, write_atomic};

/// Why the run directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// The run id is not a plain directory name.
    #[error(transparent)]
    BadId(#[from] mfubench_core::protocol::BadRunId),
    /// The run folder already holds a run.
    #[error("--run-id {run_id}: {dir} already holds a run, which is never overwritten; choose another run id (or `mfubench run --force` to replace it)")]
    Taken {
        /// The run id.
        run_id: String,
        /// The run folder.
        dir: String,
    },
    /// The directory cannot be created or written.
    #[error("--out {out}: {what} {dir}: {source}")]
    Io {
        /// The results folder.
        out: String,
        /// What failed.
        what: &'static str,
        /// The run directory.
        dir: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl From<&RunDirError> for crate::rank::Exit {
    fn from(_: &RunDirError) -> crate::rank::Exit {
        crate::rank::Exit::Usage
    }
}

/// Creates `out/run_id` and proves it is writable, before any compute.
/// A run is never overwritten: an existing `out/run_id` is accepted only
/// when it is empty (`mfubench run` reserves the folder by creating it).
pub fn prepare_run_dir(out: &Path, run_id: &str) -> Result<PathBuf, RunDirError> {
    mfubench_core::protocol::validate_run_id(run_id)?;
    let dir = out.join(run_id);
    let io = |what, source| RunDirError::Io {
        out: out.display().to_string(),
        what,
        dir: dir.display().to_string(),
        source,
    };
    match std::fs::create_dir_all(out).and_then(|()| std::fs::create_dir(&dir)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {
            let empty = std::fs::read_dir(&dir)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !empty {
                return Err(RunDirError::Taken {
                    run_id: run_id.to_string(),
                    dir: dir.display().to_string(),
                });
            }
        }
        Err(e) => return Err(io("cannot create", e)),
    }
    let probe = dir.join(".write-test");
    std::fs::File::create(&probe).map_err(|e| io("cannot write in", e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(dir)
}

/// Seconds since the Unix epoch.
pub fn epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Now as RFC 3339 UTC, e.g. `2026-11-28T13:45:01Z`.
pub fn rfc3339_now() -> String {
    mfubench_core::time::rfc3339(epoch_secs())
}

pub use crate::rank::hostname;

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

pub use mfubench_core::redact::captured_env;

/// The 1-minute load average (`/proc/loadavg`), if readable.
pub fn load_avg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Cores this process may run on (its CPU affinity).
pub fn usable_cores() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// Run ids of mfubench workers on this host that belong to another run than
/// `run_id` (their command line carries `--run-id OTHER`).
pub fn other_runs_here(run_id: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return runs;
    };
    for e in dir.flatten() {
        if e.file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none()
        {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if !args
            .first()
            .is_some_and(|a| a.ends_with(b"mfubench-worker"))
        {
            continue;
        }
        if let Some(w) = args
            .windows(2)
            .find(|w| w[0] == mfubench_core::job::flag::RUN_ID.as_bytes())
        {
            let id = String::from_utf8_lossy(w[1]).into_owned();
            if id != run_id && !runs.contains(&id) {
                runs.push(id);
            }
        }
    }
    runs.sort();
    runs
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
        assert!(e.to_string().contains("never overwritten"), "{e}");
        std::fs::create_dir(d.path().join("r2")).unwrap();
        assert!(prepare_run_dir(d.path(), "r2").is_ok());
    }
}

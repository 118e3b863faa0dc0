//! Open MPI's files of a killed job: its session directory
//! (`$TMPDIR/ompi.HOST.UID/pid.PID/`, Open MPI 4) and its shared-memory
//! segments (`/dev/shm/vader_segment.HOST.UID.JOBID.N`). mpirun removes them
//! when it ends normally; a SIGKILLed mpirun leaves them behind, and
//! `/dev/shm` is memory. Only the files of this job's ranks on this host
//! (as they announced them in their hello) are touched, only when every
//! process that used them is gone, and only paths of exactly these shapes.

use std::path::{Path, PathBuf};

/// What one local rank said about its Open MPI job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpiFiles {
    /// The rank's PID.
    pub pid: u32,
    /// `OMPI_MCA_ess_base_jobid`.
    pub jobid: Option<u64>,
    /// `OMPI_MCA_orte_jobfam_session_dir`.
    pub session_dir: Option<String>,
}

/// Whether `pid` is running (a zombie counts as gone).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .map_or("", |t| t.1)
            .trim_start()
            .starts_with('Z')
    })
}

/// The PID a session directory belongs to, if `dir` has the shape
/// `…/ompi.HOST.UID/pid.PID` for our user id.
fn session_dir_pid(dir: &Path, uid: u32) -> Option<u32> {
    let name = dir.file_name()?.to_str()?;
    let pid: u32 = name.strip_prefix("pid.")?.parse().ok()?;
    let top = dir.parent()?.file_name()?.to_str()?;
    let ok = top.starts_with("ompi.") && top.ends_with(&format!(".{uid}"));
    (ok && dir.is_absolute() && !dir.components().any(|c| c.as_os_str() == "..")).then_some(pid)
}

/// Whether `name` is a shared-memory segment of Open MPI job `jobid` of user
/// `uid`: `vader_segment.HOST.UID.JOBIDHEX.N`.
fn is_segment_of(name: &str, uid: u32, jobid: u64) -> bool {
    let Some(rest) = name.strip_prefix("vader_segment.") else {
        return false;
    };
    let Some((before, n)) = rest.rsplit_once('.') else {
        return false;
    };
    !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && before.ends_with(&format!(".{uid}.{jobid:x}"))
}

/// Removes the session directories and shared-memory segments of the
/// given local ranks once all of them (and the session directory's owner)
/// are gone; returns what was removed. `shm` is `/dev/shm` (a parameter for
/// the tests).
pub fn remove_stale(ranks: &[MpiFiles], shm: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    if ranks.is_empty() || ranks.iter().any(|r| running(r.pid)) {
        return removed;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut dirs: Vec<PathBuf> = ranks
        .iter()
        .filter_map(|r| r.session_dir.as_ref().map(PathBuf::from))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        let owner_gone = session_dir_pid(&d, uid).is_some_and(|owner| !running(owner));
        if owner_gone && d.is_dir() && std::fs::remove_dir_all(&d).is_ok() {
            removed.push(d);
        }
    }
    let mut jobs: Vec<u64> = ranks.iter().filter_map(|r| r.jobid).collect();
    jobs.sort_unstable();
    jobs.dedup();
    if jobs.is_empty() {
        return removed;
    }
    if let Ok(entries) = std::fs::read_dir(shm) {
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if jobs.iter().any(|j| is_segment_of(name, uid, *j))
                && std::fs::remove_file(e.path()).is_ok()
            {
                removed.push(e.path());
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_shapes() {
        assert_eq!(
            session_dir_pid(Path::new("/tmp/ompi.vm.0/pid.14301"), 0),
            Some(14301)
        );
        assert_eq!(session_dir_pid(Path::new("/tmp/ompi.vm.0/pid.x"), 0), None);
        assert_eq!(
            session_dir_pid(Path::new("/tmp/ompi.vm.1000/pid.7"), 0),
            None
        );
        assert_eq!(session_dir_pid(Path::new("/home/me/pid.7"), 0), None);
        assert_eq!(session_dir_pid(Path::new("tmp/ompi.vm.0/pid.7"), 0), None);
        // 1529020417 = 0x5b230001
        assert!(is_segment_of(
            "vader_segment.vm.0.5b230001.1",
            0,
            1529020417
        ));
        assert!(is_segment_of(
            "vader_segment.a.b.0.5b230001.12",
            0,
            1529020417
        ));
        assert!(!is_segment_of(
            "vader_segment.vm.0.5b230002.1",
            0,
            1529020417
        ));
        assert!(!is_segment_of(
            "vader_segment.vm.1000.5b230001.1",
            0,
            1529020417
        ));
        assert!(!is_segment_of(
            "vader_segment.vm.0.5b230001.x",
            0,
            1529020417
        ));
        assert!(!is_segment_of("other.vm.0.5b230001.1", 0, 1529020417));
    }

    #[test]
    fn removes_only_when_every_process_is_gone() {
        let shm = tempfile::tempdir().expect("tempdir");
        let top = tempfile::tempdir().expect("tempdir");
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let session_top = top.path().join(format!("ompi.vm.{uid}"));
        // A PID that is gone: a child we started and reaped.
        let gone = {
            let mut c = std::process::Command::new("true").spawn().expect("true");
            let p = c.id();
            c.wait().expect("wait");
            p
        };
        let dir = session_top.join(format!("pid.{gone}"));
        std::fs::create_dir_all(dir.join("0")).expect("mkdir");
        let ours = format!("vader_segment.vm.{uid}.5b230001.0");
        let theirs = format!("vader_segment.vm.{uid}.5b230002.0");
        for n in [&ours, &theirs] {
            std::fs::write(shm.path().join(n), b"x").expect("write");
        }
        let me = std::process::id();
        let rank = |pid| MpiFiles {
            pid,
            jobid: Some(0x5b23_0001),
            session_dir: Some(dir.display().to_string()),
        };
        // A rank still running (this test process): nothing is touched.
        assert!(remove_stale(&[rank(me), rank(gone)], shm.path()).is_empty());
        assert!(dir.is_dir());
        let removed = remove_stale(&[rank(gone)], shm.path());
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(!dir.exists());
        assert!(!shm.path().join(&ours).exists());
        assert!(shm.path().join(&theirs).exists(), "another job's segment");
    }
}

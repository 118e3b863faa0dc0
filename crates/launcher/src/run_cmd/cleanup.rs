//! Open MPI's files of a killed job: its session directory
//! (`$TMPDIR/ompi.HOST.UID/pid.PID/` with Open MPI 4,
//! `$TMPDIR/prte.HOST.UID/dvm.PID/` with Open MPI 5, PID being mpirun's or
//! its daemon's) and its shared-memory segments
//! (`/dev/shm/vader_segment.HOST.UID.JOBID.N` with Open MPI 4,
//! `/dev/shm/sm_segment.HOST.UID.JOBID.N` with Open MPI 5; JOBID in hex).
//! mpirun removes them
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
    /// `OMPI_MCA_orte_jobfam_session_dir`, or Open MPI 5's
    /// `PMIX_SERVER_TMPDIR`.
    pub session_dir: Option<String>,
    /// Open MPI 5's job id (hashed from `PMIX_NAMESPACE`).
    pub ompi5_jobid: Option<u64>,
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
/// `…/ompi.HOST.UID/pid.PID` (Open MPI 4) or `…/prte.HOST.UID/dvm.PID`
/// (Open MPI 5) for our user id.
fn session_dir_pid(dir: &Path, uid: u32) -> Option<u32> {
    let name = dir.file_name()?.to_str()?;
    let top = dir.parent()?.file_name()?.to_str()?;
    let (top_prefix, pid) = if let Some(p) = name.strip_prefix("pid.") {
        ("ompi.", p)
    } else {
        ("prte.", name.strip_prefix("dvm.")?)
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid: u32 = pid.parse().ok()?;
    let ok = top.starts_with(top_prefix) && top.ends_with(&format!(".{uid}"));
    (ok && dir.is_absolute() && !dir.components().any(|c| c.as_os_str() == "..")).then_some(pid)
}

/// Whether `name` is a shared-memory segment of Open MPI 4 job `jobid` of
/// user `uid`: `vader_segment.HOST.UID.JOBIDHEX.N`.
fn is_segment_of(name: &str, uid: u32, jobid: u64) -> bool {
    is_named_segment_of("vader_segment.", name, uid, jobid)
}

/// Whether `name` is a shared-memory segment of Open MPI 5 job `jobid` of
/// user `uid`: `sm_segment.HOST.UID.JOBIDHEX.N` (btl/sm's backing file).
fn is_sm_segment_of(name: &str, uid: u32, jobid: u64) -> bool {
    is_named_segment_of("sm_segment.", name, uid, jobid)
}

/// `PREFIX` + `HOST.UID.JOBIDHEX.N`.
fn is_named_segment_of(prefix: &str, name: &str, uid: u32, jobid: u64) -> bool {
    let Some(rest) = name.strip_prefix(prefix) else {
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
    let ids = |f: fn(&MpiFiles) -> Option<u64>| {
        let mut v: Vec<u64> = ranks.iter().filter_map(f).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let (jobs, jobs5) = (ids(|r| r.jobid), ids(|r| r.ompi5_jobid));
    if jobs.is_empty() && jobs5.is_empty() {
        return removed;
    }
    if let Ok(entries) = std::fs::read_dir(shm) {
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = jobs.iter().any(|j| is_segment_of(name, uid, *j))
                || jobs5.iter().any(|j| is_sm_segment_of(name, uid, *j));
            if ours && std::fs::remove_file(e.path()).is_ok() {
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
        // Open MPI 5: the documented example name
        // /dev/shm/sm_segment.x.1000.23c70000.0 (job 0x23c70000, uid 1000).
        assert!(is_sm_segment_of(
            "sm_segment.x.1000.23c70000.0",
            1000,
            0x23c7_0000
        ));
        assert!(!is_sm_segment_of(
            "sm_segment.x.1000.23c70000.0",
            0,
            0x23c7_0000
        ));
        assert!(!is_sm_segment_of(
            "sm_segment.x.1000.23c70001.0",
            1000,
            0x23c7_0000
        ));
        assert!(!is_sm_segment_of(
            "vader_segment.x.1000.23c70000.0",
            1000,
            0x23c7_0000
        ));
        assert!(!is_segment_of(
            "sm_segment.x.1000.23c70000.0",
            1000,
            0x23c7_0000
        ));
        assert!(!is_sm_segment_of(
            "sm_segment.x.1000.23c70000.",
            1000,
            0x23c7_0000
        ));
        assert_eq!(
            session_dir_pid(Path::new("/tmp/prte.vm.1000/dvm.52817"), 1000),
            Some(52817)
        );
        for bad in [
            "/tmp/prte.vm.1000/dvm.x",
            "/tmp/prte.vm.1000/dvm.",
            "/tmp/prte.vm.1000/dvm.+7",
            "/tmp/ompi.vm.1000/dvm.7",
            "/tmp/prte.vm.1000/pid.7",
            "/tmp/prte.vm.0/dvm.7",
            "/tmp/prte.vm.1000/../dvm.7",
            "tmp/prte.vm.1000/dvm.7",
            // Slurm's PMIx directory of a step is no Open MPI file.
            "/var/spool/slurmd/pmix.42.0",
        ] {
            assert_eq!(session_dir_pid(Path::new(bad), 1000), None, "{bad}");
        }
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
            ompi5_jobid: None,
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

#[cfg(test)]
mod ompi5_tests {
    use super::*;

    /// An Open MPI 5 job killed: PRRTE's session directory and btl/sm's
    /// segment go, another job's segment and an Open MPI 4 name with the
    /// same id stay.
    #[test]
    fn open_mpi_5_files_of_a_gone_job_are_removed() {
        let shm = tempfile::tempdir().expect("tempdir");
        let top = tempfile::tempdir().expect("tempdir");
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        let gone = {
            let mut c = std::process::Command::new("true").spawn().expect("true");
            let p = c.id();
            c.wait().expect("wait");
            p
        };
        let dir = top
            .path()
            .join(format!("prte.vm.{uid}"))
            .join(format!("dvm.{gone}"));
        std::fs::create_dir_all(dir.join("1")).expect("mkdir");
        let ours = format!("sm_segment.vm.{uid}.23c70000.0");
        let theirs = format!("sm_segment.vm.{uid}.23c80000.0");
        let old_shape = format!("vader_segment.vm.{uid}.23c70000.0");
        for n in [&ours, &theirs, &old_shape] {
            std::fs::write(shm.path().join(n), b"x").expect("write");
        }
        let rank = MpiFiles {
            pid: gone,
            jobid: None,
            session_dir: Some(dir.display().to_string()),
            ompi5_jobid: Some(0x23c7_0000),
        };
        let removed = remove_stale(&[rank], shm.path());
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(!dir.exists());
        assert!(!shm.path().join(&ours).exists());
        assert!(shm.path().join(&theirs).exists(), "another job's segment");
        assert!(shm.path().join(&old_shape).exists(), "an Open MPI 4 name");
    }
}

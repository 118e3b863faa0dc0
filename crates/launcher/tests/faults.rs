//! Fault injection on real processes: a link cut and a stopped rank on the
//! network-namespace hosts of ci/netns-up.sh (root), a rank SIGKILLed in
//! each mode under mpirun, a full disk. Each asserts the exit code, that the
//! culprit (not a victim) is named with its host, the time from the
//! injection to the exit, that what was measured before is kept, and that
//! no process of the job is left (by PID). Each logs the time and the line
//! that names the culprit.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Starts the fault config on hostA, hostB, hostC (one rank each) and waits
/// until a partial run.json exists (every mode has timed steps); returns
/// the run and the worker PIDs by rank.
fn start_on_three_hosts(tmp: &Path, run_id: &str) -> (Running, Vec<u32>) {
    let cfg = fault_config(tmp, OP_TIMEOUT_S);
    let mut cmd = mfubench_cmd();
    cmd.args([
        "run",
        cfg.to_str().expect("utf-8"),
        "--hosts",
        "hostA:1,hostB:1,hostC:1",
        "--out",
        tmp.to_str().expect("utf-8"),
        "--run-id",
        run_id,
        "--timeout",
        "5m",
        "--",
    ])
    .args(Netns::mpirun_args());
    let running = Running::start(&mut cmd);
    let t = Instant::now();
    let run_json = tmp.join(run_id).join("run.json");
    loop {
        let pids = worker_pids(run_id);
        if run_json.is_file() && pids.len() == 3 {
            // A few heartbeats into the timed steps.
            std::thread::sleep(Duration::from_secs(2));
            let mut by_rank = vec![0u32; 3];
            for p in pids {
                let r: usize = proc_env(p, "OMPI_COMM_WORLD_RANK")
                    .and_then(|r| r.parse().ok())
                    .expect("rank of a worker");
                by_rank[r] = p;
            }
            return (running, by_rank);
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "the run never got under way:\n{}",
            running.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts that nothing of the job is left: the workers by PID, and no
/// process at all on the fake hosts (mpirun's daemons, rsh agents).
fn assert_nothing_left(workers: &[u32], f: &Finished) {
    let left = wait_gone(workers, Duration::from_secs(10));
    assert!(left.is_empty(), "workers left behind: {left:?}\n{f:?}");
    let t = Instant::now();
    loop {
        let on_hosts: Vec<(&str, Vec<u32>)> = ["hostA", "hostB", "hostC"]
            .into_iter()
            .map(|h| (h, Netns::pids(h)))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        if on_hosts.is_empty() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "processes left on the fake hosts: {on_hosts:?}\n{f:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asserts the measured modes were kept: a partial run.json and the
/// launcher saying where it is.
fn assert_partial_kept(run_dir: &Path, f: &Finished) {
    let j = read_json(&run_dir.join("run.json"));
    assert_eq!(j["complete"], false, "{f:?}");
    assert!(
        j["ranks"][0]["modes"]
            .as_object()
            .is_some_and(|m| !m.is_empty()),
        "no mode kept: {j:#}"
    );
    assert!(
        f.stderr
            .contains(&format!("what was written is in {}", run_dir.display())),
        "{}",
        f.stderr
    );
}

/// `ip link set v-hostC down` during the run: the other ranks' watchdogs
/// end the job, mpirun cannot reach hostC's daemon and would wait for it
/// forever; the launcher kills it after its grace period. hostC's rank is
/// named as the one that stopped reporting, the others as waiting.
#[test]
fn link_down_on_one_host_ends_the_job_and_names_it() {
    let test = "link_down_on_one_host_ends_the_job_and_names_it";
    if let Some(why) = netns_missing() {
        return skip(test, &why);
    }
    require_worker();
    let _lock = TestLock::acquire();
    let _hosts = Netns::up(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let run_id = "linkdown";
    let (running, pids) = start_on_three_hosts(tmp.path(), run_id);
    let injected = Instant::now();
    let s = Command::new("ip")
        .args(["link", "set", "v-hostC", "down"])
        .status()
        .expect("ip link");
    assert!(s.success());
    let f = running.wait(Duration::from_secs(180));
    let took = injected.elapsed();
    assert_eq!(f.code(), 3, "{f:?}");
    let bound = Duration::from_secs(OP_TIMEOUT_S as u64 + ABORT_GRACE_S + SLACK_S);
    assert!(
        took < bound,
        "ended {took:?} after the link went down: {f:?}"
    );
    let culprit = format!(
        "fell behind: rank 2 (host hostC, pid {}): stopped reporting",
        pids[2]
    );
    assert!(f.stderr.contains(&culprit), "{culprit}: {}", f.stderr);
    assert!(
        f.stderr.contains("waiting for them: rank 0 (host hostA"),
        "{}",
        f.stderr
    );
    for victim in ["rank 0 ", "rank 1 "] {
        assert!(
            !behind(&f.stderr).contains(victim),
            "a waiting rank blamed: {}",
            f.stderr
        );
    }
    assert_partial_kept(&tmp.path().join(run_id), &f);
    assert_nothing_left(&pids, &f);
    log(&format!(
        "fault link down on hostC: exit {} after {:.1} s; {}",
        f.code(),
        took.as_secs_f64(),
        line_with(&f.stderr, "fell behind")
    ));
}

/// SIGSTOP of hostB's rank: the launcher cannot read /proc on another host;
/// the rank is named because it stopped reporting, hostA's rank as waiting.
#[test]
fn stopped_rank_on_another_host_is_named() {
    let test = "stopped_rank_on_another_host_is_named";
    if let Some(why) = netns_missing() {
        return skip(test, &why);
    }
    require_worker();
    let _lock = TestLock::acquire();
    let _hosts = Netns::up(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let run_id = "stopB";
    let (running, pids) = start_on_three_hosts(tmp.path(), run_id);
    let injected = Instant::now();
    // SAFETY: plain syscall on a PID found to be our worker.
    unsafe {
        libc::kill(pids[1] as i32, libc::SIGSTOP);
    }
    let f = running.wait(Duration::from_secs(180));
    let took = injected.elapsed();
    // SAFETY: as above; the process may be gone already.
    unsafe {
        libc::kill(pids[1] as i32, libc::SIGKILL);
    }
    assert_eq!(f.code(), 3, "{f:?}");
    let bound = Duration::from_secs(OP_TIMEOUT_S as u64 + ABORT_GRACE_S + SLACK_S);
    assert!(took < bound, "ended {took:?} after SIGSTOP: {f:?}");
    let culprit = format!(
        "fell behind: rank 1 (host hostB, pid {}): stopped reporting",
        pids[1]
    );
    assert!(f.stderr.contains(&culprit), "{culprit}: {}", f.stderr);
    assert!(
        f.stderr.contains("waiting for them: rank 0 (host hostA"),
        "{}",
        f.stderr
    );
    for victim in ["rank 0 ", "rank 2 "] {
        assert!(
            !behind(&f.stderr).contains(victim),
            "a waiting rank blamed: {}",
            f.stderr
        );
    }
    assert_partial_kept(&tmp.path().join(run_id), &f);
    assert_nothing_left(&pids, &f);
    log(&format!(
        "fault SIGSTOP of hostB's rank: exit {} after {:.1} s; {}",
        f.code(),
        took.as_secs_f64(),
        line_with(&f.stderr, "fell behind")
    ));
}

/// Waits until `run_dir` holds a partial run.json and rank `rank` of the
/// run is found; returns its PID and all worker PIDs.
fn wait_for_partial(
    running: &Running,
    run_dir: &Path,
    run_id: &str,
    rank: &str,
) -> (u32, Vec<u32>) {
    let t = Instant::now();
    loop {
        let pids = worker_pids(run_id);
        let r = pids
            .iter()
            .copied()
            .find(|p| proc_env(*p, "OMPI_COMM_WORLD_RANK").as_deref() == Some(rank));
        if let (Some(p), true) = (r, run_dir.join("run.json").is_file()) {
            return (p, pids);
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the run never got under way:\n{}",
            running.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn have_mpirun(test: &str) -> bool {
    if find_program("mpirun").is_none() {
        skip(
            test,
            "mpirun is not installed (ci/install-deps.sh installs it)",
        );
        return false;
    }
    true
}

/// SIGKILL of rank 1 in each mode (a run of that mode alone) under mpirun:
/// exit 3, rank 1 named with its host and the signal, within the abort
/// grace, the partial results kept, no worker left.
#[test]
fn sigkill_of_one_rank_in_each_mode() {
    one_rank_in_each_mode("sigkill_of_one_rank_in_each_mode", libc::SIGKILL);
}

/// SIGSTOP of rank 1 in each mode under mpirun: rank 0's watchdog ends the
/// job within op_timeout_s; rank 1 named as stopped (state T), rank 0 as
/// waiting; the partial results kept, no worker left.
#[test]
fn sigstop_of_one_rank_in_each_mode() {
    one_rank_in_each_mode("sigstop_of_one_rank_in_each_mode", libc::SIGSTOP);
}

fn one_rank_in_each_mode(test: &str, sig: i32) {
    if !have_mpirun(test) {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let host = hostname();
    let (what, bound) = if sig == libc::SIGKILL {
        ("SIGKILL", ABORT_GRACE_S + SLACK_S)
    } else {
        ("SIGSTOP", OP_TIMEOUT_S as u64 + ABORT_GRACE_S + SLACK_S)
    };
    for mode in ["compute", "comm", "serialized", "overlapped"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = fault_config(tmp.path(), OP_TIMEOUT_S);
        let text = std::fs::read_to_string(&cfg).expect("read");
        let mut t: toml::Table = text.parse().expect("parses");
        t["run"]
            .as_table_mut()
            .expect("[run]")
            .insert("modes".into(), toml::Value::Array(vec![mode.into()]));
        std::fs::write(&cfg, toml::to_string(&t).expect("toml")).expect("write");
        let run_id = format!("{what}-{mode}");
        let run_dir = tmp.path().join(&run_id);
        let running = Running::start(mfubench_cmd().args([
            "run",
            cfg.to_str().expect("utf-8"),
            "--out",
            tmp.path().to_str().expect("utf-8"),
            "--run-id",
            &run_id,
            "--timeout",
            "5m",
        ]));
        let (victim, all) = wait_for_partial(&running, &run_dir, &run_id, "1");
        let injected = Instant::now();
        // SAFETY: plain syscall on a PID found to be our worker.
        unsafe {
            libc::kill(victim as i32, sig);
        }
        let f = running.wait(Duration::from_secs(120));
        let took = injected.elapsed();
        // SAFETY: as above; a stopped rank must not outlive the test.
        unsafe {
            libc::kill(victim as i32, libc::SIGKILL);
        }
        assert_eq!(f.code(), 3, "{mode}: {f:?}");
        assert!(
            took < Duration::from_secs(bound),
            "{mode}: ended {took:?} after {what}: {f:?}"
        );
        let named = if sig == libc::SIGKILL {
            format!("rank 1 (host {host}, pid {victim}) was killed by signal 9")
        } else {
            format!("fell behind: rank 1 (host {host}, pid {victim}): process stopped (state T)")
        };
        assert!(f.stderr.contains(&named), "{mode}: {named}: {}", f.stderr);
        assert!(
            !behind(&f.stderr).contains("rank 0 "),
            "{mode}: the survivor blamed: {}",
            f.stderr
        );
        if sig == libc::SIGSTOP {
            assert!(
                f.stderr.contains("waiting for them: rank 0 (host"),
                "{mode}: {}",
                f.stderr
            );
        }
        let j = read_json(&run_dir.join("run.json"));
        assert_eq!(j["complete"], false);
        assert!(
            j["ranks"][0]["modes"].get(mode).is_some(),
            "{mode}: its steps so far not kept: {j:#}"
        );
        assert!(f.stderr.contains("what was written is in"), "{}", f.stderr);
        let left = wait_gone(&all, Duration::from_secs(10));
        assert!(left.is_empty(), "{mode}: workers left: {left:?}\n{f:?}");
        log(&format!(
            "fault {what} of rank 1 in mode {mode} (mpirun): exit {} after {:.1} s; {}",
            f.code(),
            took.as_secs_f64(),
            line_with(&f.stderr, "mfubench: error")
        ));
    }
}

/// A 64 KiB tmpfs mounted for a test, unmounted however it ends.
struct SmallDisk(PathBuf);

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `--out` on a 64 KiB tmpfs: rank 0 cannot write run.json. The error names
/// the path and rank 0 (the rank that failed to write, not the first rank
/// mpirun saw exit), exit 3, and "what was written is in" appears only when
/// something was: once with room for the first partial run.json, once with
/// the disk full from the start.
#[test]
fn full_disk_names_the_path_and_the_rank_that_failed_to_write() {
    let test = "full_disk_names_the_path_and_the_rank_that_failed_to_write";
    if !is_root() {
        return skip(test, "needs root (mounts a tmpfs)");
    }
    if !have_mpirun(test) {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    for (case, filler) in [
        ("room for a partial run.json", 0usize),
        ("full from the start", 60 << 10),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mnt = tmp.path().join("small");
        std::fs::create_dir(&mnt).expect("mkdir");
        let s = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&mnt)
            .status()
            .expect("mount");
        assert!(s.success(), "mount -t tmpfs failed");
        let _disk = SmallDisk(mnt.clone());
        if filler > 0 {
            // Whatever fits: the rest of the 64 KiB stays for the run folder.
            let _ = std::fs::write(mnt.join("filler"), vec![0u8; filler]);
        }
        // More timed steps than 64 KiB of run.json can hold.
        let text = std::fs::read_to_string(test_config("quick.toml")).expect("read");
        let cfg = tmp.path().join("full.toml");
        std::fs::write(&cfg, text.replace("iterations = 3", "iterations = 60")).expect("write");
        let run_id = "full";
        let f = run(
            mfubench_cmd().args([
                "run",
                cfg.to_str().expect("utf-8"),
                "--out",
                mnt.to_str().expect("utf-8"),
                "--run-id",
                run_id,
                "--timeout",
                "5m",
            ]),
            Duration::from_secs(400),
        );
        assert_eq!(f.code(), 3, "{case}: {f:?}");
        let path = mnt.join(run_id).join("run.json");
        let line = line_with(&f.stderr, "mfubench: error:");
        assert!(
            line.contains(&format!("failed: rank 0 (host {}, pid", hostname())),
            "{case}: rank 0 not named: {}",
            f.stderr
        );
        assert!(
            line.contains(&path.display().to_string()),
            "{case}: {}",
            f.stderr
        );
        assert!(
            line.contains("No space left on device"),
            "{case}: {}",
            f.stderr
        );
        assert!(
            !line.contains("rank 1 ("),
            "{case}: rank 1 blamed: {}",
            f.stderr
        );
        // "what was written is in" only when something was.
        assert_eq!(
            f.stderr.contains("what was written is in"),
            path.is_file(),
            "{case}: {}",
            f.stderr
        );
        if filler > 0 {
            assert!(!path.is_file(), "{case}: run.json fitted after all");
        } else {
            assert!(path.is_file(), "{case}: no partial run.json fitted");
        }
        log(&format!(
            "fault disk full ({case}): exit {}; {line}",
            f.code()
        ));
    }
}

/// The PID of the child of `parent` whose command is `comm`.
fn child_named(parent: u32, comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let (head, tail) = stat.rsplit_once(')')?;
        let name = head.split_once('(')?.1;
        let ppid: u32 = tail.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && name == comm).then_some(pid)
    })
}

/// SIGKILL of mpirun itself: the job fails (exit 3), no worker is left,
/// and the session directory and shared-memory segments Open MPI could not
/// remove are removed by the launcher.
#[test]
fn sigkill_of_mpirun_leaves_no_session_dir_or_segment() {
    let test = "sigkill_of_mpirun_leaves_no_session_dir_or_segment";
    if !have_mpirun(test) {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = fault_config(tmp.path(), OP_TIMEOUT_S);
    let run_id = "kill-mpirun";
    let run_dir = tmp.path().join(run_id);
    let running = Running::start(mfubench_cmd().args([
        "run",
        cfg.to_str().expect("utf-8"),
        "--out",
        tmp.path().to_str().expect("utf-8"),
        "--run-id",
        run_id,
        "--timeout",
        "5m",
    ]));
    let (rank1, all) = wait_for_partial(&running, &run_dir, run_id, "1");
    let session_dir = PathBuf::from(
        proc_env(rank1, "OMPI_MCA_orte_jobfam_session_dir").expect("Open MPI 4 session dir"),
    );
    let jobid: u64 = proc_env(rank1, "OMPI_MCA_ess_base_jobid")
        .and_then(|j| j.parse().ok())
        .expect("Open MPI job id");
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let suffix = format!(".{uid}.{jobid:x}.");
    let segments = || -> Vec<String> {
        std::fs::read_dir("/dev/shm")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| n.starts_with("vader_segment.") && n.contains(&suffix))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(session_dir.is_dir(), "{}", session_dir.display());
    assert!(
        !segments().is_empty(),
        "no shared-memory segment of job {jobid:x}"
    );
    let mpirun = child_named(running.child.id(), "mpirun").expect("mpirun's PID");
    let injected = Instant::now();
    // SAFETY: plain syscall on the mpirun our mfubench started.
    unsafe {
        libc::kill(mpirun as i32, libc::SIGKILL);
    }
    let f = running.wait(Duration::from_secs(120));
    let took = injected.elapsed();
    assert_eq!(f.code(), 3, "{f:?}");
    assert!(
        f.stderr.contains("mpirun was killed by signal 9"),
        "{}",
        f.stderr
    );
    assert!(
        took < Duration::from_secs(ABORT_GRACE_S + SLACK_S),
        "{took:?}"
    );
    let left = wait_gone(&all, Duration::from_secs(10));
    assert!(left.is_empty(), "workers left: {left:?}\n{f:?}");
    assert!(
        !session_dir.exists(),
        "{} left\n{f:?}",
        session_dir.display()
    );
    assert_eq!(segments(), Vec::<String>::new(), "{f:?}");
    assert!(
        f.stderr
            .contains("removed what Open MPI left of the job here"),
        "{}",
        f.stderr
    );
    log(&format!(
        "fault SIGKILL of mpirun: exit {} after {:.1} s; {}",
        f.code(),
        took.as_secs_f64(),
        line_with(&f.stderr, "removed what Open MPI left")
    ));
}

/// A shared host: more ranks than cores, and another mfubench run on the
/// host at start. Both are warned about, recorded in run.json
/// (`ranks[].host_load`) and marked beside the MFU in the report.
#[test]
fn shared_host_is_warned_recorded_and_marked_beside_the_mfu() {
    let test = "shared_host_is_warned_recorded_and_marked_beside_the_mfu";
    if !have_mpirun(test) {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    // The other run: a long one, stopped once this one is done.
    let cfg = fault_config(tmp.path(), 600.0);
    let other = Running::start(mfubench_cmd().args([
        "run",
        cfg.to_str().expect("utf-8"),
        "--out",
        tmp.path().to_str().expect("utf-8"),
        "--run-id",
        "other-run",
        "--timeout",
        "5m",
    ]));
    let t = Instant::now();
    while worker_pids("other-run").len() < 2 {
        assert!(t.elapsed() < Duration::from_secs(120), "{}", other.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let np = cores + 1;
    let f = run(
        mfubench_cmd().args([
            "run",
            test_config("quick.toml").to_str().expect("utf-8"),
            "--np",
            &np.to_string(),
            "--out",
            tmp.path().to_str().expect("utf-8"),
            "--run-id",
            "shared",
            "--timeout",
            "5m",
        ]),
        Duration::from_secs(400),
    );
    // SAFETY: plain syscall on our own child (the other run's mfubench).
    unsafe {
        libc::kill(other.child.id() as i32, libc::SIGTERM);
    }
    let o = other.wait(Duration::from_secs(60));
    assert_eq!(o.code(), 130, "{o:?}");
    assert!(matches!(f.code(), 0 | 1), "{f:?}");
    let host = hostname();
    let why = format!("oversubscribed: {np} ranks on {cores} cores");
    // Other agents' runs on this machine may be listed too.
    let warning = line_with(
        &f.stderr,
        &format!("warning: host {host} is shared ({why}; "),
    );
    assert!(
        warning.contains("another mfubench run on the host (") && warning.contains("other-run"),
        "{}",
        f.stderr
    );
    let j = read_json(&tmp.path().join("shared/run.json"));
    let load = &j["ranks"][0]["host_load"];
    assert_eq!(load["ranks"], np as u64, "{j:#}");
    assert_eq!(load["cores"], cores as u64, "{j:#}");
    assert!(
        load["other_runs"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r == "other-run")),
        "{j:#}"
    );
    assert!(
        j["ranks"][1].get("host_load").is_none(),
        "only local rank 0 records it"
    );
    // Beside the MFU in the headline, and why in the warnings.
    let mfu_row = f
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("compute ") && l.contains('|'))
        .unwrap_or("");
    assert!(mfu_row.contains(" ⚠ shared host"), "{}", f.stdout);
    assert!(f.stdout.contains(&format!("{host}: {why}")), "{}", f.stdout);
    let md = std::fs::read_to_string(tmp.path().join("shared/summary.md")).expect("summary.md");
    assert!(md.contains("⚠ shared host"), "{md}");
    log(&format!(
        "shared host: {}",
        line_with(&f.stderr, "is shared")
    ));
}

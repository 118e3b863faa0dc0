//! Fault injection on real processes, as one table ([`fault_tests!`] rows
//! of the harness in `common/fault.rs`): a rank SIGKILLed or SIGSTOPped in
//! each mode under mpirun, mfubench itself signalled, a rank stopped until
//! the `--timeout`, a link cut and a rank stopped on the network-namespace
//! hosts of ci/netns-up.sh (root), `mfubench accept` with a rank stopped
//! mid-stage there, and the same faults under `sbatch -N 3` on the Slurm
//! nodes of ci/slurm-multi-up.sh, with a node's step daemon hung; then
//! mpirun SIGKILLed and a full disk. Each asserts the exit code, that the
//! culprit (not a victim) is named with its host, the time from the
//! injection to the exit, that what was measured before is kept, and that
//! no process of the job is left (by PID). Each logs the time and the line
//! that names the culprit.

mod common;

use common::fault::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A signal to rank 1 of a run of `mode` alone under mpirun, once its
/// partial run.json exists.
const fn in_mode(what: &'static str, mode: &'static str, sig: i32) -> FaultCase {
    let expect = if sig == libc::SIGKILL {
        KILLED
    } else {
        Expect {
            within_s: STOP_BOUND_S,
            named: Named::StoppedStateT,
            waiting: true,
            ..KILLED
        }
    };
    FaultCase {
        what,
        config: Config::FaultMode(mode),
        fault: Fault::Signal(Target::Rank(1), sig),
        expect: Expect {
            kept: Kept::Mode(mode),
            ..expect
        },
        ..CASE
    }
}

/// A signal to mfubench itself once the run is under way (long.toml as it
/// is): exit `exit` (None: none, it is killed) saying `says`, no worker
/// left.
const fn to_mfubench(
    what: &'static str,
    sig: i32,
    exit: Option<i32>,
    says: &'static [&'static str],
) -> FaultCase {
    FaultCase {
        what,
        config: Config::Long,
        args: &["--timeout", "240"],
        at: At::Progress,
        fault: Fault::Signal(Target::Mfubench, sig),
        expect: Expect {
            exit,
            says,
            ..NOTHING
        },
        ..CASE
    }
}

/// A fault on the three namespace hosts, a few heartbeats into the timed
/// steps.
const fn on_three_hosts(what: &'static str, fault: Fault) -> FaultCase {
    FaultCase {
        what,
        launcher: Launcher::NetnsHosts,
        settle: Duration::from_secs(2),
        fault,
        expect: STOPPED_REMOTE,
        ..CASE
    }
}

/// A fault under `sbatch -N 3` (srun --kill-on-bad-exit=1), a few
/// heartbeats into the timed steps.
const fn under_slurm(what: &'static str, fault: Fault, expect: Expect) -> FaultCase {
    FaultCase {
        what,
        launcher: Launcher::SlurmMulti,
        settle: Duration::from_secs(2),
        fault,
        expect,
        ..CASE
    }
}

fault_tests! {
    /// SIGKILL of rank 1 in each mode (a run of that mode alone) under
    /// mpirun: exit 3, rank 1 named with its host and the signal, within the
    /// abort grace, the partial results kept, no worker left. (Also what
    /// local.rs's killed_rank_is_named_with_its_host checked, with exit 3
    /// for its "not 0", and the grace for its "before the timeout".)
    sigkill_of_one_rank_in_compute_mode: in_mode("SIGKILL of rank 1 in mode compute (mpirun)", "compute", libc::SIGKILL);
    sigkill_of_one_rank_in_comm_mode: in_mode("SIGKILL of rank 1 in mode comm (mpirun)", "comm", libc::SIGKILL);
    sigkill_of_one_rank_in_serialized_mode: in_mode("SIGKILL of rank 1 in mode serialized (mpirun)", "serialized", libc::SIGKILL);
    sigkill_of_one_rank_in_overlapped_mode: in_mode("SIGKILL of rank 1 in mode overlapped (mpirun)", "overlapped", libc::SIGKILL);

    /// SIGSTOP of rank 1 in each mode under mpirun: rank 0's watchdog ends
    /// the job within op_timeout_s; rank 1 named as stopped (state T), rank
    /// 0 as waiting; the partial results kept, no worker left. (Also what
    /// local.rs's stopped_rank_is_named_as_the_culprit checked.)
    sigstop_of_one_rank_in_compute_mode: in_mode("SIGSTOP of rank 1 in mode compute (mpirun)", "compute", libc::SIGSTOP);
    sigstop_of_one_rank_in_comm_mode: in_mode("SIGSTOP of rank 1 in mode comm (mpirun)", "comm", libc::SIGSTOP);
    sigstop_of_one_rank_in_serialized_mode: in_mode("SIGSTOP of rank 1 in mode serialized (mpirun)", "serialized", libc::SIGSTOP);
    sigstop_of_one_rank_in_overlapped_mode: in_mode("SIGSTOP of rank 1 in mode overlapped (mpirun)", "overlapped", libc::SIGSTOP);

    /// What a batch system or `kill` sends; Ctrl-C (SIGINT) takes the same
    /// path: exit 130, "interrupted", no worker left.
    sigterm_stops_cleanly_with_130: to_mfubench("SIGTERM of mfubench (mpirun)", libc::SIGTERM, Some(130), &["interrupted"]);
    /// A closed terminal / ssh session: mpirun, in its own process group,
    /// does not get the hang-up itself; mfubench must stop the job.
    sighup_stops_the_job_too: to_mfubench("SIGHUP of mfubench (mpirun)", libc::SIGHUP, Some(130), &[]);
    /// SIGKILL (or the OOM killer) leaves mfubench no chance to clean up:
    /// mpirun must stop by itself (its parent-death signal, or its output
    /// pipes closing).
    killing_mfubench_outright_stops_the_job: to_mfubench("SIGKILL of mfubench (mpirun)", libc::SIGKILL, None, &[]);

    /// A rank killed after the first mode's partial run.json: the modes
    /// that finished are reported INCOMPLETE in every output (stdout,
    /// summary.json, Prometheus, JUnit), and `mfubench report` exits 3, or
    /// judges them with --allow-partial.
    partial_run_is_incomplete_in_every_output: FaultCase {
        what: "SIGKILL of rank 1 after the first mode (mpirun)",
        config: Config::Custom(two_modes_config),
        args: &["--timeout", "4m", "--junit", "{tmp}/junit.xml", "--prom", "{tmp}/metrics.prom"],
        check: Some(incomplete_in_every_output),
        may_end_first: true,
        ..CASE
    };

    /// Rank 1 stopped after the first mode, with op timeouts longer than
    /// `--timeout`: the timeout ends the job, reported incomplete.
    timed_out_run_is_reported_incomplete: FaultCase {
        what: "SIGSTOP of rank 1 until --timeout 20s (mpirun)",
        config: Config::Custom(two_long_modes_config),
        args: &["--timeout", "20s", "--prom", "{tmp}/metrics.prom"],
        fault: Fault::Signal(Target::Rank(1), libc::SIGSTOP),
        expect: Expect { exit: Some(3), says: &["timed out after 20s"], ..NOTHING },
        check: Some(timed_out_incomplete),
        may_end_first: true,
        ..CASE
    };

    /// `ip link set v-hostC down` during the run: the other ranks' watchdogs
    /// end the job, mpirun cannot reach hostC's daemon and would wait for it
    /// forever; the launcher kills it after its grace period. hostC's rank
    /// is named as the one that stopped reporting, the others as waiting.
    link_down_on_one_host_ends_the_job_and_names_it: on_three_hosts("link down on hostC", Fault::LinkDown(2));
    /// SIGSTOP of hostB's rank: the launcher cannot read /proc on another
    /// host; the rank is named because it stopped reporting, hostA's rank
    /// as waiting.
    stopped_rank_on_another_host_is_named: on_three_hosts("SIGSTOP of hostB's rank", Fault::Signal(Target::Rank(1), libc::SIGSTOP));

    /// SIGSTOP of hostB's rank during the sweep stage of `mfubench accept`
    /// (3 namespace hosts): the others' watchdogs end the job; exit 3 within
    /// op_timeout + grace + slack, the stopped rank named with its host, PID
    /// and where it stopped (its heartbeat's position: the sweep stage,
    /// collective and size), the link stage kept in accept.json, which the
    /// report calls INCOMPLETE.
    accept_stopped_rank_is_named_with_its_stage: FaultCase {
        what: "SIGSTOP of hostB's rank in the accept sweep",
        command: "accept",
        config: Config::Custom(accept_stop_config),
        args: &["--stages", "link,sweep", "--np", "3", "--timeout", "240"],
        // Rank 0 says when the sweep stage starts; two heartbeats into it.
        at: At::Output("accept: sweep stage"),
        before: Some(sweep_under_way),
        check: Some(sweep_stop_kept_the_link_stage),
        expect: Expect { waiting: false, kept: Kept::Written, ..STOPPED_REMOTE },
        ..on_three_hosts("", Fault::Signal(Target::Rank(1), libc::SIGSTOP))
    };

    /// SIGKILL of rank 1 under `sbatch -N 3`: the step ends at once; rank 1
    /// named with hostB and the signal.
    sigkill_of_one_rank_under_slurm: under_slurm("SIGKILL of hostB's rank (sbatch -N 3)", Fault::Signal(Target::Rank(1), libc::SIGKILL), KILLED);
    /// SIGSTOP of rank 1 under `sbatch -N 3`: the others' watchdogs end the
    /// step; rank 1 is named as the one that stopped reporting (its host is
    /// not the launcher's), rank 0 as waiting.
    sigstop_of_one_rank_under_slurm: under_slurm("SIGSTOP of hostB's rank (sbatch -N 3)", Fault::Signal(Target::Rank(1), libc::SIGSTOP), STOPPED_REMOTE);
    /// `ip link set v-hostC down` under `sbatch -N 3`: the other ranks'
    /// watchdogs end the job, srun cannot reach hostC; the launcher kills
    /// srun after its grace, `scancel`s the step and exits 3 naming hostC's
    /// rank.
    link_down_on_one_node_under_slurm: under_slurm("link down on hostC (sbatch -N 3)", Fault::LinkDown(2), STOPPED_REMOTE);
    /// hostB's slurmstepd and rank 1 stopped under `sbatch -N 3` with
    /// Slurm's default KillWait (30 s): after the others' watchdogs abort,
    /// srun waits for hostB's task (KillWait + 2 s) and does not end the job
    /// by itself. The launcher kills srun after its grace, `scancel`s the
    /// step (scancel succeeded: slurmctld accepted the cancel of the live
    /// step) and exits 3 naming rank 1; once the node's daemon goes on, the
    /// step is gone and no worker of the job is left on any node.
    hung_node_daemon_under_slurm_reaches_scancel: FaultCase {
        check: Some(step_cancelled),
        ..under_slurm(
            "hostB's slurmstepd and rank stopped (sbatch -N 3, KillWait 30)",
            Fault::StopNodeDaemon(1),
            Expect { waiting: false, ..STOPPED_REMOTE },
        )
    };
}

/// quick.toml with `iterations` and the modes compute, then overlapped,
/// written into `dir` as `name`, with `more` after `[acceptance]`.
fn two_modes(dir: &Path, name: &str, iterations: u32, more: &str) -> PathBuf {
    let text = std::fs::read_to_string(test_config("quick.toml")).expect("read");
    let config = dir.join(name);
    let modes = format!("iterations = {iterations}\nmodes = [\"compute\", \"overlapped\"]");
    std::fs::write(
        &config,
        text.replace("iterations = 3", &modes)
            .replace("[acceptance]\n", &format!("[acceptance]\n{more}")),
    )
    .expect("write");
    config
}

/// A short compute mode, then an overlapped one: the first partial
/// run.json appears after compute; min_mfu 0.
fn two_modes_config(dir: &Path) -> PathBuf {
    two_modes(dir, "partial.toml", 3, "min_mfu = 0.0\n")
}

/// 150 iterations: the second mode is still running when rank 1 stops.
fn two_long_modes_config(dir: &Path) -> PathBuf {
    two_modes(dir, "two-modes.toml", 150, "")
}

fn incomplete_in_every_output(o: &Outcome) {
    let j = read_json(&o.run_dir.join("run.json"));
    if j["complete"] == true {
        // The last mode finished before the kill landed: nothing to test.
        return skip_allowed(
            "partial_run_is_incomplete_in_every_output",
            "the run completed before a rank could be stopped",
            "timing, not a missing install",
        );
    }
    assert_eq!(o.code, Some(3), "{o:?}");
    // The modes that finished are reported, with verdict INCOMPLETE.
    assert!(o.stdout.contains("verdict: INCOMPLETE"), "{o:?}");
    assert!(!o.stdout.contains("verdict: PASS"), "{o:?}");
    let summary = read_json(&o.run_dir.join("summary.json"));
    assert_eq!(summary["complete"], false);
    assert_eq!(summary["verdict"]["status"], "INCOMPLETE");
    let p = std::fs::read_to_string(o.path("{tmp}/metrics.prom")).expect("metrics.prom");
    assert!(p.contains("\nmfubench_run_complete 0\n"), "{p}");
    let x = std::fs::read_to_string(o.path("{tmp}/junit.xml")).expect("junit.xml");
    let jr = quick_junit::Report::deserialize_from_str(&x).expect("JUnit parses");
    let rc = jr.test_suites[0]
        .test_cases
        .iter()
        .find(|c| c.name.as_str() == "run_complete")
        .expect("run_complete testcase");
    assert!(
        matches!(rc.status, quick_junit::TestCaseStatus::NonSuccess { .. }),
        "{x}"
    );
    assert!(jr.failures >= 1, "{x}");

    // `mfubench report` on it: exit 3, or judged with --allow-partial.
    let report = |extra: &[&str]| {
        run(
            mfubench_cmd()
                .arg("report")
                .arg(&o.run_dir)
                .arg("--no-files")
                .args(extra),
            Duration::from_secs(300),
        )
    };
    let f = report(&[]);
    assert_eq!(f.code(), 3, "{f:?}");
    assert!(f.stdout.contains("verdict: INCOMPLETE"), "{}", f.stdout);
    assert!(f.stderr.contains("--allow-partial"), "{}", f.stderr);
    // min_mfu needs the overlapped mode, which never finished: INCOMPLETE,
    // not held against the run; the compute-mode rules pass.
    let f = report(&["--allow-partial"]);
    assert_eq!(f.code(), 0, "{f:?}");
}

fn timed_out_incomplete(o: &Outcome) {
    let j = read_json(&o.run_dir.join("run.json"));
    assert_eq!(j["complete"], false, "{o:?}");
    assert!(o.stdout.contains("verdict: INCOMPLETE"), "{o:?}");
    assert!(!o.stdout.contains("verdict: PASS"), "{o:?}");
    let p = std::fs::read_to_string(o.path("{tmp}/metrics.prom")).expect("metrics.prom");
    assert!(p.contains("\nmfubench_run_complete 0\n"), "{p}");
    let f = run(
        mfubench_cmd()
            .arg("report")
            .arg(&o.run_dir)
            .arg("--no-files"),
        Duration::from_secs(300),
    );
    assert_eq!(f.code(), 3, "{f:?}");
}

/// accept.toml with the fault tests' op timeout; many iterations, so that
/// the sweep lasts long enough to be stopped in (tens of seconds), over
/// small link exchanges, so that the link stage before it stays short.
fn accept_stop_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(test_config("accept.toml")).expect("config");
    let mut t: toml::Table = text.parse().expect("parses");
    t["run"]
        .as_table_mut()
        .expect("[run]")
        .insert("op_timeout_s".into(), toml::Value::Float(OP_TIMEOUT_S));
    let a = t["accept"].as_table_mut().expect("[accept]");
    a.insert("iterations".into(), toml::Value::Integer(100));
    a.insert("link_bytes".into(), toml::Value::Integer(1 << 20));
    a.insert("sweep_end".into(), toml::Value::Integer(16 << 20));
    let cfg = dir.join("stop.toml");
    std::fs::write(&cfg, toml::to_string(&t).expect("toml")).expect("write config");
    cfg
}

/// Before the fault: the link stage is written, the sweep is not.
fn sweep_under_way(run_dir: &Path) {
    let j = read_json(&run_dir.join("accept.json"));
    assert!(!j["link"].is_null(), "{j:#}");
    assert!(
        j["sweep"].is_null(),
        "the sweep ended before the fault: make it longer"
    );
}

fn sweep_stop_kept_the_link_stage(o: &Outcome) {
    assert!(
        behind(&o.stderr).contains("(last at accept sweep stage, "),
        "no position: {o:?}"
    );
    let accept_json = o.run_dir.join("accept.json");
    let j = read_json(&accept_json);
    assert_eq!(j["complete"], false, "{j:#}");
    assert_eq!(
        j["link"]["pairs"].as_array().map(Vec::len),
        Some(3),
        "{j:#}"
    );
    assert!(j["sweep"].is_null(), "{j:#}");
    let r = run(
        mfubench_cmd().arg("report").arg(&accept_json),
        Duration::from_secs(300),
    );
    // A stopped suite has no verdict on the cluster: exit 3 (partial).
    assert_eq!(r.code(), 3, "{r:?}");
    assert!(r.stdout.contains("INCOMPLETE"), "{}", r.stdout);
}

/// srun did not end the job: the grace ran out, srun was killed and the
/// step cancelled, with scancel's success, and the step is gone once the
/// node recovered.
fn step_cancelled(o: &Outcome) {
    let killed =
        format!("srun did not end the job within {ABORT_GRACE_S} s of the failure: killing it");
    assert!(o.stderr.contains(&killed), "{killed}: {o:?}");
    let cancelled = format!("mfubench: cancelled Slurm step {}.", o.run_id);
    assert!(o.stderr.contains(&cancelled), "{cancelled}: {o:?}");
    assert!(
        o.steps_left.is_empty(),
        "the step outlived the node's recovery by 30 s: {:?}\n{o:?}",
        o.steps_left
    );
    log(&format!(
        "fault hostB's slurmstepd stopped: {}",
        line_with(&o.stderr, "cancelled Slurm step")
    ));
}

/// SIGKILL of mpirun itself: the job fails (exit 3), no worker is left,
/// and the session directory and shared-memory segments Open MPI could not
/// remove are removed by the launcher. Open MPI's leftovers are found from
/// rank 1's environment before the fault.
#[test]
fn sigkill_of_mpirun_leaves_no_session_dir_or_segment() {
    let case = FaultCase {
        what: "SIGKILL of mpirun",
        fault: Fault::Signal(Target::Mpirun, libc::SIGKILL),
        expect: Expect {
            exit: Some(3),
            within_s: KILL_BOUND_S,
            says: &[
                "mpirun was killed by signal 9",
                "removed what Open MPI left of the job here",
            ],
            ..NOTHING
        },
        ..CASE
    };
    let Some(s) = start("sigkill_of_mpirun_leaves_no_session_dir_or_segment", &case) else {
        return;
    };
    let session_dir = PathBuf::from(
        proc_env(s.victim, "OMPI_MCA_orte_jobfam_session_dir").expect("Open MPI 4 session dir"),
    );
    let jobid: u64 = proc_env(s.victim, "OMPI_MCA_ess_base_jobid")
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
    let o = s.finish();
    expect(&case, &o);
    assert!(
        !session_dir.exists(),
        "{} left\n{o:?}",
        session_dir.display()
    );
    assert_eq!(segments(), Vec::<String>::new(), "{o:?}");
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
    signal(other.child.id(), libc::SIGTERM);
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

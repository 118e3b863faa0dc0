//! Multi-node Slurm: three slurmd "nodes" in the network namespaces hostA,
//! hostB, hostC (ci/netns-up.sh 3 + ci/slurm-multi-up.sh), each under its
//! own host name. `sbatch -N 3 --ntasks-per-node=1 launch/mfubench.sbatch`
//! with the CPU quickstart must complete, with run.json listing three hosts
//! and the JUnit / Prometheus files written by the one command.
//! Needs root, iproute2, util-linux, slurm-wlm and munge.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Stops the 3-node Slurm however the test ends (before the namespaces go).
struct SlurmMulti {
    dir: PathBuf,
}

impl SlurmMulti {
    fn up(dir: &Path) -> SlurmMulti {
        SlurmMulti::up_with_kill_wait(dir, None)
    }

    /// As [`SlurmMulti::up`], with slurm.conf's KillWait set (seconds).
    fn up_with_kill_wait(dir: &Path, kill_wait: Option<u32>) -> SlurmMulti {
        let _ = Command::new(root().join("ci/slurm-multi-down.sh"))
            .arg(dir)
            .status();
        let guard = SlurmMulti {
            dir: dir.to_path_buf(),
        };
        let mut up = Command::new(root().join("ci/slurm-multi-up.sh"));
        up.arg(dir);
        if let Some(w) = kill_wait {
            up.env("KILL_WAIT", w.to_string());
        }
        let f = run(&mut up, Duration::from_secs(120));
        assert_eq!(f.code(), 0, "ci/slurm-multi-up.sh failed: {f:?}");
        guard
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }
}

impl Drop for SlurmMulti {
    fn drop(&mut self) {
        let _ = Command::new(root().join("ci/slurm-multi-down.sh"))
            .arg(&self.dir)
            .status();
    }
}

#[test]
fn sbatch_across_three_namespace_nodes() {
    let test = "sbatch_across_three_namespace_nodes";
    if !is_root() {
        return skip(test, "needs root (network namespaces, Slurm daemons)");
    }
    for p in [
        "ip",
        "nsenter",
        "unshare",
        "slurmctld",
        "slurmd",
        "munged",
        "sbatch",
        "srun",
    ] {
        if find_program(p).is_none() {
            return skip(
                test,
                &format!("{p} is not installed (ci/install-deps.sh installs it)"),
            );
        }
    }
    require_worker();
    let _lock = TestLock::acquire();
    let _hosts = Netns::up(3);
    let slurm = SlurmMulti::up(
        &std::env::temp_dir().join(format!("mfubench-slurm-multi-test-{}", std::process::id())),
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let config = short_quickstart(tmp.path());
    let results = tmp.path().join("results");
    let junit = tmp.path().join("job.junit.xml");
    let prom = tmp.path().join("job.prom");
    let log = tmp.path().join("job-%j.out");
    let export = format!(
        "ALL,MFUBENCH={},MFUBENCH_OUT={},MFUBENCH_CONFIG={},MFUBENCH_TIMEOUT=4m,MFUBENCH_JUNIT={},MFUBENCH_PROM={}",
        mfubench().display(),
        results.display(),
        config.display(),
        junit.display(),
        prom.display()
    );
    let mut cmd = Command::new("sbatch");
    // Open MPI between the nodes: the bridge only (each namespace also has
    // a loopback 127.0.0.1 that Open MPI would otherwise offer its peers).
    // srun passes the environment on to the ranks.
    cmd.env("SLURM_CONF", slurm.conf())
        .env("OMPI_MCA_btl_tcp_if_include", "10.77.0.0/24")
        .current_dir(root())
        .args([
            "--parsable",
            "--wait",
            "-N",
            "3",
            "--ntasks-per-node=1",
            "--gpus-per-node=0",
        ])
        .arg(format!("--output={}", log.display()))
        .arg(format!("--export={export}"))
        .arg("launch/mfubench.sbatch");
    let running = Running::start(&mut cmd);
    let t = Instant::now();
    let job_id = loop {
        let o = running.output();
        if let Some(id) = o
            .lines()
            .next()
            .filter(|l| o.contains('\n') && !l.is_empty())
        {
            break id.trim().split(';').next().unwrap_or_default().to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "sbatch printed no job id: {o}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let f = running.wait(Duration::from_secs(600));
    let job_log = std::fs::read_to_string(tmp.path().join(format!("job-{job_id}.out")))
        .unwrap_or_else(|e| format!("(no job log: {e})"));
    assert_eq!(
        f.code(),
        0,
        "sbatch --wait failed: {f:?}\njob log:\n{job_log}"
    );
    assert!(
        job_log.contains("3 rank(s), from SLURM_NTASKS"),
        "{job_log}"
    );

    let j = read_json(&results.join(&job_id).join("run.json"));
    assert_eq!(j["world_size"], 3, "{job_log}");
    let mut hosts: Vec<String> = j["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(|h| h.as_str().map(str::to_string))
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["hostA", "hostB", "hostC"], "{j:#}");
    assert_eq!(j["launch"]["launcher"], "srun");
    assert_eq!(j["launch"]["slurm_job_id"], job_id.as_str());
    assert_eq!(j["complete"], true);
    // Across nodes, the comm rules are judged (3 ranks), and the one
    // command wrote the CI and monitoring files.
    assert!(job_log.contains("verdict: PASS"), "{job_log}");
    let x = std::fs::read_to_string(&junit).expect("the JUnit file");
    let jr = quick_junit::Report::deserialize_from_str(&x).expect("JUnit parses");
    assert_eq!(jr.failures, 0, "{x}");
    let suite = &jr.test_suites[0];
    let world = suite
        .properties
        .iter()
        .find(|p| p.name.as_str() == "world_size")
        .map(|p| p.value.as_str().to_string());
    assert_eq!(world.as_deref(), Some("3"), "{x}");
    let p = std::fs::read_to_string(&prom).expect("the Prometheus file");
    assert!(p.contains("\nmfubench_run_complete 1\n"), "{p}");
    for h in ["hostA", "hostB", "hostC"] {
        assert!(
            p.contains(&format!("mfubench_host_step_time_seconds{{host=\"{h}\"}}")),
            "{h}: {p}"
        );
    }
}

/// Whether the 3-node Slurm can be set up here; prints the skip otherwise.
fn slurm_multi_available(test: &str) -> bool {
    if !is_root() {
        skip(test, "needs root (network namespaces, Slurm daemons)");
        return false;
    }
    for p in [
        "ip",
        "nsenter",
        "unshare",
        "slurmctld",
        "slurmd",
        "munged",
        "sbatch",
        "srun",
        "scancel",
    ] {
        if find_program(p).is_none() {
            skip(
                test,
                &format!("{p} is not installed (ci/install-deps.sh installs it)"),
            );
            return false;
        }
    }
    true
}

/// `sbatch -N 3` of a run only a fault ends; once every rank runs and a
/// partial run.json exists, sends `sig` to rank 1 (on hostB) and waits for
/// the job. Returns the victim's PID, every worker PID, the job log, the
/// run folder, sbatch's exit code (the job's) and the time from the
/// signal to mfubench's exit.
/// What a Slurm fault test does to the job.
#[derive(Clone, Copy)]
enum Fault {
    /// Sends this signal to rank 1 (on hostB).
    Signal(i32),
    /// `ip link set v-hostC down` (rank 2's host), up again once mfubench
    /// has exited, so that Slurm can finish the job.
    LinkDownC,
    /// SIGSTOP of hostB's slurmstepd, then of rank 1 (its task): a node
    /// whose step daemon hangs (as one stuck in the kernel or swapping).
    /// srun then waits KillWait + 2 s for hostB's task after the abort, so
    /// the bed runs with Slurm's default KillWait (30 s), past the
    /// launcher's grace: srun does not end the job by itself. The daemon is
    /// continued once mfubench has exited (the node recovers).
    StopNodeB,
}

/// What [`sbatch_fault`] saw.
struct FaultRun {
    /// The PID of the rank the fault hit.
    victim: u32,
    /// Every worker PID of the job.
    all: Vec<u32>,
    /// The job's log (mfubench's stdout and stderr).
    job_log: String,
    /// A copy of the run folder's run.json.
    kept: PathBuf,
    /// sbatch --wait's exit code (the job's).
    code: i32,
    /// From the injection to mfubench's exit (its error line).
    took: Duration,
    /// The Slurm job id.
    job_id: String,
    /// `squeue -s` lines of the job's MPI step (not the batch step) after
    /// mfubench exited and the fault was undone, once they were gone or
    /// 30 s had passed.
    steps_left: Vec<String>,
}

fn sbatch_fault(fault: Fault) -> FaultRun {
    let victim_rank = match fault {
        Fault::Signal(_) | Fault::StopNodeB => "1",
        Fault::LinkDownC => "2",
    };
    let kill_wait = match fault {
        Fault::StopNodeB => Some(30),
        _ => None,
    };
    let _hosts = Netns::up(3);
    let slurm = SlurmMulti::up_with_kill_wait(
        &std::env::temp_dir().join(format!("mfubench-slurm-fault-{}", std::process::id())),
        kill_wait,
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = fault_config(tmp.path(), OP_TIMEOUT_S);
    let results = tmp.path().join("results");
    let log = tmp.path().join("job-%j.out");
    let export = format!(
        "ALL,MFUBENCH={},MFUBENCH_OUT={},MFUBENCH_CONFIG={},MFUBENCH_TIMEOUT=4m,MFUBENCH_JUNIT={},MFUBENCH_PROM={}",
        mfubench().display(),
        results.display(),
        config.display(),
        tmp.path().join("j.xml").display(),
        tmp.path().join("j.prom").display(),
    );
    let mut cmd = Command::new("sbatch");
    cmd.env("SLURM_CONF", slurm.conf())
        .env("OMPI_MCA_btl_tcp_if_include", "10.77.0.0/24")
        .current_dir(root())
        .args([
            "--parsable",
            "--wait",
            "-N",
            "3",
            "--ntasks-per-node=1",
            "--gpus-per-node=0",
        ])
        .arg(format!("--output={}", log.display()))
        .arg(format!("--export={export}"))
        .arg("launch/mfubench.sbatch");
    let mut running = Running::start(&mut cmd);
    let t = Instant::now();
    let (victim, all, run_dir) = loop {
        if let Ok(Some(s)) = running.child.try_wait() {
            panic!("sbatch ended ({s}) before the fault: {}", running.output());
        }
        let o = running.output();
        let id = o
            .lines()
            .next()
            .filter(|l| o.contains('\n') && !l.is_empty())
            .map(|l| l.trim().split(';').next().unwrap_or_default().to_string());
        if let Some(id) = id {
            let run_dir = results.join(&id);
            let pids = worker_pids(&id);
            let r1 = pids
                .iter()
                .copied()
                .find(|p| proc_env(*p, "SLURM_PROCID").as_deref() == Some(victim_rank));
            if let (Some(v), 3, true) = (r1, pids.len(), run_dir.join("run.json").is_file()) {
                break (v, pids, run_dir);
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(240),
            "the job never got under way: {o}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // A few heartbeats into the timed steps.
    std::thread::sleep(Duration::from_secs(2));
    let injected = Instant::now();
    let link = |state: &str| {
        let s = Command::new("ip")
            .args(["link", "set", "v-hostC", state])
            .status()
            .expect("ip link");
        assert!(s.success(), "ip link set v-hostC {state}");
    };
    // hostB's step daemon, continued however the test ends.
    let mut stepd: Option<Continue> = None;
    match fault {
        // SAFETY: plain syscall on a PID found to be our worker.
        Fault::Signal(sig) => unsafe {
            libc::kill(victim as i32, sig);
        },
        Fault::LinkDownC => link("down"),
        Fault::StopNodeB => {
            let parent = parent_pid(victim).expect("the rank's parent");
            assert_eq!(
                process_name(parent).as_deref(),
                Some("slurmstepd"),
                "rank 1's parent {parent} is not its step daemon"
            );
            stepd = Some(Continue(parent));
            // SAFETY: plain syscalls on hostB's slurmstepd of this job and
            // on its task, our worker.
            unsafe {
                libc::kill(parent as i32, libc::SIGSTOP);
                libc::kill(victim as i32, libc::SIGSTOP);
            }
        }
    }
    let job_id = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let log_path = tmp.path().join(format!("job-{job_id}.out"));
    // mfubench's exit: its last line, the error, in the job log (sbatch
    // --wait itself learns of the job's end only at its next poll).
    let took = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("mfubench: error:") || injected.elapsed() > Duration::from_secs(240) {
            break injected.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if let Fault::LinkDownC = fault {
        link("up");
    }
    // The node recovers: its daemon goes on with the requests it got.
    drop(stepd.take());
    // The job's MPI step (srun's), gone from slurmctld once the nodes
    // reported it ended.
    let t = Instant::now();
    let steps_left = loop {
        let o = Command::new("squeue")
            .env("SLURM_CONF", slurm.conf())
            .args(["-h", "-s", "-j", &job_id, "-o", "%i"])
            .output()
            .expect("squeue");
        let left: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| l.starts_with(&format!("{job_id}.")) && !l.ends_with(".batch"))
            .collect();
        if left.is_empty() || t.elapsed() > Duration::from_secs(30) {
            break left;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let f = running.wait(Duration::from_secs(300));
    // SAFETY: as above; a stopped rank must not outlive the test.
    unsafe {
        libc::kill(victim as i32, libc::SIGKILL);
    }
    let job_log =
        std::fs::read_to_string(&log_path).unwrap_or_else(|e| format!("(no job log: {e})"));
    // The run folder goes with tmp: keep what the test reads.
    let kept =
        std::env::temp_dir().join(format!("mfubench-slurm-fault-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&kept);
    let _ = std::fs::create_dir_all(&kept);
    let _ = std::fs::copy(run_dir.join("run.json"), kept.join("run.json"));
    FaultRun {
        victim,
        all,
        job_log,
        kept,
        code: f.code(),
        took,
        job_id,
        steps_left,
    }
}

/// Sends SIGCONT to a stopped process when dropped.
struct Continue(u32);

impl Drop for Continue {
    fn drop(&mut self) {
        // SAFETY: plain syscall on the process this test stopped.
        unsafe {
            libc::kill(self.0 as i32, libc::SIGCONT);
        }
    }
}

/// A process's parent PID, from /proc.
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": the fields after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A process's name (`comm`), from /proc.
fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The checks both Slurm faults share: exit 3 (sbatch --wait returns the
/// job's code), within the bound, the partial run kept, no worker left.
fn assert_slurm_fault_ended(
    code: i32,
    took: Duration,
    bound: Duration,
    kept: &Path,
    all: &[u32],
    job_log: &str,
) {
    assert_eq!(code, 3, "{job_log}");
    assert!(took < bound, "ended {took:?} after the fault:\n{job_log}");
    let j = read_json(&kept.join("run.json"));
    assert_eq!(j["complete"], false, "{job_log}");
    assert!(job_log.contains("what was written is in"), "{job_log}");
    let left = wait_gone(all, Duration::from_secs(15));
    assert!(left.is_empty(), "workers left behind: {left:?}\n{job_log}");
    let _ = std::fs::remove_dir_all(kept);
}

/// SIGKILL of rank 1 under `sbatch -N 3` (srun --kill-on-bad-exit=1): the
/// step ends at once; rank 1 named with hostB and the signal.
#[test]
fn sigkill_of_one_rank_under_slurm() {
    let test = "sigkill_of_one_rank_under_slurm";
    if !slurm_multi_available(test) {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let FaultRun {
        victim,
        all,
        job_log,
        kept,
        code,
        took,
        ..
    } = sbatch_fault(Fault::Signal(libc::SIGKILL));
    let named = format!("rank 1 (host hostB, pid {victim}) was killed by signal 9");
    assert!(job_log.contains(&named), "{named}:\n{job_log}");
    assert!(!behind(&job_log).contains("rank 0 "), "{job_log}");
    assert_slurm_fault_ended(
        code,
        took,
        Duration::from_secs(ABORT_GRACE_S + SLACK_S),
        &kept,
        &all,
        &job_log,
    );
    log(&format!(
        "fault SIGKILL of hostB's rank (sbatch -N 3): exit {code} after {:.1} s; {}",
        took.as_secs_f64(),
        line_with(&job_log, "mfubench: error")
    ));
}

/// SIGSTOP of rank 1 under `sbatch -N 3`: the others' watchdogs end the
/// step; rank 1 is named as the one that stopped reporting (its host is not
/// the launcher's), rank 0 as waiting.
#[test]
fn sigstop_of_one_rank_under_slurm() {
    let test = "sigstop_of_one_rank_under_slurm";
    if !slurm_multi_available(test) {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let FaultRun {
        victim,
        all,
        job_log,
        kept,
        code,
        took,
        ..
    } = sbatch_fault(Fault::Signal(libc::SIGSTOP));
    let named = format!("fell behind: rank 1 (host hostB, pid {victim}): stopped reporting");
    assert!(job_log.contains(&named), "{named}:\n{job_log}");
    assert!(
        job_log.contains("waiting for them: rank 0 (host hostA"),
        "{job_log}"
    );
    assert!(!behind(&job_log).contains("rank 0 "), "{job_log}");
    assert_slurm_fault_ended(
        code,
        took,
        Duration::from_secs(OP_TIMEOUT_S as u64 + ABORT_GRACE_S + SLACK_S),
        &kept,
        &all,
        &job_log,
    );
    log(&format!(
        "fault SIGSTOP of hostB's rank (sbatch -N 3): exit {code} after {:.1} s; {}",
        took.as_secs_f64(),
        line_with(&job_log, "mfubench: error")
    ));
}

/// `ip link set v-hostC down` under `sbatch -N 3`: the other ranks'
/// watchdogs end the job, srun cannot reach hostC; the launcher kills srun
/// after its grace, `scancel`s the step and exits 3 naming hostC's rank.
#[test]
fn link_down_on_one_node_under_slurm() {
    let test = "link_down_on_one_node_under_slurm";
    if !slurm_multi_available(test) {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let FaultRun {
        victim,
        all,
        job_log,
        kept,
        code,
        took,
        ..
    } = sbatch_fault(Fault::LinkDownC);
    let named = format!("fell behind: rank 2 (host hostC, pid {victim}): stopped reporting");
    assert!(job_log.contains(&named), "{named}:\n{job_log}");
    assert!(
        job_log.contains("waiting for them: rank 0 (host hostA"),
        "{job_log}"
    );
    assert_slurm_fault_ended(
        code,
        took,
        Duration::from_secs(OP_TIMEOUT_S as u64 + ABORT_GRACE_S + SLACK_S),
        &kept,
        &all,
        &job_log,
    );
    log(&format!(
        "fault link down on hostC (sbatch -N 3): exit {code} after {:.1} s; {}",
        took.as_secs_f64(),
        line_with(&job_log, "mfubench: error")
    ));
}

/// hostB's slurmstepd and rank 1 stopped under `sbatch -N 3` with Slurm's
/// default KillWait (30 s): after the others' watchdogs abort, srun waits
/// for hostB's task (KillWait + 2 s) and does not end the job by itself.
/// The launcher kills srun after its grace, `scancel`s the step (scancel
/// succeeded: slurmctld accepted the cancel of the live step) and exits 3
/// naming rank 1; once the node's daemon goes on, the step is gone and no
/// worker of the job is left on any node.
#[test]
fn hung_node_daemon_under_slurm_reaches_scancel() {
    let test = "hung_node_daemon_under_slurm_reaches_scancel";
    if !slurm_multi_available(test) {
        return;
    }
    if find_program("squeue").is_none() {
        return skip(
            test,
            "squeue is not installed (ci/install-deps.sh installs it)",
        );
    }
    require_worker();
    let _lock = TestLock::acquire();
    let r = sbatch_fault(Fault::StopNodeB);
    let job_log = &r.job_log;
    let named = format!(
        "fell behind: rank 1 (host hostB, pid {}): stopped reporting",
        r.victim
    );
    assert!(job_log.contains(&named), "{named}:\n{job_log}");
    assert!(!behind(job_log).contains("rank 0 "), "{job_log}");
    // srun did not end the job: the grace ran out, srun was killed and the
    // step cancelled, with scancel's success.
    assert!(
        job_log.contains(&format!(
            "srun did not end the job within {ABORT_GRACE_S} s of the failure: killing it"
        )),
        "{job_log}"
    );
    let cancelled = format!("mfubench: cancelled Slurm step {}.", r.job_id);
    assert!(job_log.contains(&cancelled), "{cancelled}:\n{job_log}");
    assert!(
        r.steps_left.is_empty(),
        "the step outlived the node's recovery by 30 s: {:?}\n{job_log}",
        r.steps_left
    );
    assert_slurm_fault_ended(
        r.code,
        r.took,
        Duration::from_secs(OP_TIMEOUT_S as u64 + ABORT_GRACE_S + SLACK_S),
        &r.kept,
        &r.all,
        job_log,
    );
    log(&format!(
        "fault hostB's slurmstepd and rank stopped (sbatch -N 3, KillWait 30): exit {} after {:.1} s; {}; {}",
        r.code,
        r.took.as_secs_f64(),
        line_with(job_log, "cancelled Slurm step"),
        line_with(job_log, "mfubench: error")
    ));
}

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
        let _ = Command::new(root().join("ci/slurm-multi-down.sh"))
            .arg(dir)
            .status();
        let guard = SlurmMulti {
            dir: dir.to_path_buf(),
        };
        let f = run(
            Command::new(root().join("ci/slurm-multi-up.sh")).arg(dir),
            Duration::from_secs(120),
        );
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

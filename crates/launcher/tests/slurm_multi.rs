//! Multi-node Slurm: three slurmd "nodes" in the network namespaces hostA,
//! hostB, hostC (ci/netns-up.sh 3 + ci/slurm-multi-up.sh), each under its
//! own host name. `sbatch -N 3 --ntasks-per-node=1 launch/mfubench.sbatch`
//! with the CPU quickstart must complete, with run.json listing three hosts
//! and the JUnit / Prometheus files written by the one command. (The
//! faults under `sbatch -N 3` are rows of faults.rs.)
//! Needs root, iproute2, util-linux, slurm-wlm and munge.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn sbatch_across_three_namespace_nodes() {
    let test = "sbatch_across_three_namespace_nodes";
    if let Some(why) = slurm_multi_missing() {
        return skip(test, &why);
    }
    require_worker();
    let _lock = TestLock::acquire();
    let _hosts = Netns::up(3);
    let slurm = Slurm::three_nodes(
        &std::env::temp_dir().join(format!("mfubench-slurm-multi-test-{}", std::process::id())),
        None,
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let files = SbatchFiles::in_dir(tmp.path(), short_quickstart(tmp.path()));
    let running = Running::start(&mut slurm.sbatch_on_three_nodes(&files));
    let job_id = wait_sbatch_job_id(&running);
    let f = slurm.wait_job(running, &job_id, Duration::from_secs(600));
    let job_log = files.job_log(&job_id);
    assert_eq!(
        f.code(),
        0,
        "sbatch --wait failed: {f:?}\njob log:\n{job_log}"
    );
    assert!(
        job_log.contains("3 rank(s), from SLURM_NTASKS"),
        "{job_log}"
    );

    let j = read_json(&files.results.join(&job_id).join("run.json"));
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
    let x = std::fs::read_to_string(&files.junit).expect("the JUnit file");
    let jr = quick_junit::Report::deserialize_from_str(&x).expect("JUnit parses");
    assert_eq!(jr.failures, 0, "{x}");
    let suite = &jr.test_suites[0];
    let world = suite
        .properties
        .iter()
        .find(|p| p.name.as_str() == "world_size")
        .map(|p| p.value.as_str().to_string());
    assert_eq!(world.as_deref(), Some("3"), "{x}");
    let p = std::fs::read_to_string(&files.prom).expect("the Prometheus file");
    assert!(p.contains("\nmfubench_run_complete 1\n"), "{p}");
    for h in ["hostA", "hostB", "hostC"] {
        assert!(
            p.contains(&format!("mfubench_host_step_time_seconds{{host=\"{h}\"}}")),
            "{h}: {p}"
        );
    }
}

//! A real one-node Slurm (munged, slurmctld, slurmd) started by
//! ci/slurm-up.sh: `sbatch launch/mfubench.sbatch` with the quickstart
//! config must complete and leave run.json under results/<job id>/.
//! Needs root and slurm-wlm + munge.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn sbatch_template_runs_the_quickstart() {
    let test = "sbatch_template_runs_the_quickstart";
    if !is_root() {
        return skip(test, "needs root (starts munged, slurmctld, slurmd)");
    }
    for p in ["slurmctld", "slurmd", "munged", "sbatch", "srun"] {
        if find_program(p).is_none() {
            return skip(
                test,
                &format!("{p} is not installed (apt-get install slurm-wlm munge)"),
            );
        }
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    // slurm-down.sh removes the state folder; keep it apart from our files.
    let slurm = Slurm::one_node(
        &std::env::temp_dir().join(format!("mfubench-slurm-test-{}", std::process::id())),
    );

    let files = SbatchFiles::in_dir(tmp.path(), short_quickstart(tmp.path()));
    let results = &files.results;
    let running = Running::start(&mut sbatch(
        &slurm.conf(),
        &["--nodes=1", "--ntasks-per-node=2"],
        "10m",
        &files,
    ));
    let t = Instant::now();
    let job_id = loop {
        if let Some(id) = sbatch_job_id(&running) {
            break id;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "sbatch printed no job id: {}",
            running.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        job_id.bytes().all(|b| b.is_ascii_digit()),
        "job id {job_id:?}"
    );
    let f = slurm.wait_job(running, &job_id, Duration::from_secs(600));
    let job_log = files.job_log(&job_id);
    assert_eq!(
        f.code(),
        0,
        "sbatch --wait failed: {f:?}\njob log:\n{job_log}"
    );

    let run_json = results.join(&job_id).join("run.json");
    assert!(
        run_json.is_file(),
        "no {}; job log:\n{job_log}",
        run_json.display()
    );
    let j = read_json(&run_json);
    assert_eq!(j["world_size"], 2, "{job_log}");
    assert_eq!(j["launch"]["launcher"], "srun");
    assert_eq!(j["launch"]["slurm_job_id"], job_id.as_str());
    assert!(
        job_log.contains(&format!("results: {}", results.join(&job_id).display())),
        "{job_log}"
    );
    // One command wrote the CI and monitoring files too.
    let x = std::fs::read_to_string(&files.junit).expect("the JUnit file");
    let jr = quick_junit::Report::deserialize_from_str(&x).expect("JUnit parses");
    assert_eq!(jr.failures, 0, "{x}");
    let p = std::fs::read_to_string(&files.prom).expect("the Prometheus file");
    assert!(p.contains("\nmfubench_run_complete 1\n"), "{p}");
}

#[test]
fn sbatch_script_outside_slurm_exits_2() {
    let f = run(
        Command::new("bash")
            .arg(root().join("launch/mfubench.sbatch"))
            .env_remove("SLURM_JOB_ID"),
        Duration::from_secs(30),
    );
    assert_eq!(f.code(), 2, "{f:?}");
    assert!(
        f.stderr.contains("not inside a Slurm job") && f.stderr.contains("sbatch"),
        "{}",
        f.stderr
    );
}

/// The hosts `mfubench run --hosts EXPR:1 --dry-run` passes to mpirun.
fn our_expansion(expr: &str, dir: &Path) -> Result<Vec<String>, String> {
    let f = run(
        mfubench_cmd()
            .env("MFUBENCH_WORKER", "/bin/true")
            .current_dir(dir)
            .args([
                "run",
                test_config("quick.toml").to_str().expect("utf-8"),
                "--hosts",
                &format!("{expr}:1"),
                "--dry-run",
            ]),
        Duration::from_secs(60),
    );
    if f.code() != 0 {
        return Err(f.stderr);
    }
    let list = f
        .stdout
        .split("--host ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("a --host list")
        .to_string();
    Ok(list
        .split(',')
        .map(|h| h.trim_end_matches(":1").to_string())
        .collect())
}

#[test]
fn hostlists_expand_as_scontrol_does() {
    let test = "hostlists_expand_as_scontrol_does";
    let Some(scontrol) = find_program("scontrol") else {
        return skip(
            test,
            "scontrol is not installed (apt-get install slurm-client)",
        );
    };
    // `scontrol show hostnames` only needs a config to read, no daemon.
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = tmp.path().join("slurm.conf");
    std::fs::write(
        &conf,
        "ClusterName=hostlist-test\nSlurmctldHost=localhost\n",
    )
    .expect("write");
    let valid = [
        "node[01-04,07]",
        "gpu-node-[01-02]",
        "n[08-11]",
        "n[1-02]",
        "n[9-11]",
        "b[009-011]",
        "n[5]",
        "c[1,03,5-6]",
        "a[1-2]b[3-4]",
        "rack[1-2]-n[08-10]",
        "a[1-2]b[1-3]c[1-2]",
        "x[1-2]y[1-2]z[1-2]w[1-2]",
        "login1,node[1-3],gpu[10-12]",
    ];
    for expr in valid {
        let out = Command::new(&scontrol)
            .env("SLURM_CONF", &conf)
            .args(["show", "hostnames", expr])
            .output()
            .expect("run scontrol");
        assert!(
            out.status.success(),
            "scontrol show hostnames {expr}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let ours = our_expansion(expr, tmp.path()).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(ours, theirs, "{expr}");
    }
    // What scontrol refuses, we refuse too (exit 2 naming --hosts).
    for expr in ["n[3-1]", "n[]", "n[1-2]x", "n[010-9]"] {
        let out = Command::new(&scontrol)
            .env("SLURM_CONF", &conf)
            .args(["show", "hostnames", expr])
            .output()
            .expect("run scontrol");
        let theirs = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(theirs.contains("Invalid hostlist"), "{expr}: {theirs}");
        let err = our_expansion(expr, tmp.path()).expect_err(expr);
        assert!(err.contains("--hosts"), "{expr}: {err}");
    }
}

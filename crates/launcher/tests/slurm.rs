//! A real one-node Slurm (munged, slurmctld, slurmd) started by
//! ci/slurm-up.sh: `sbatch launch/mfubench.sbatch` with the quickstart
//! config must complete and leave run.json under results/<job id>/.
//! Needs root and slurm-wlm + munge.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Stops the test Slurm however the test ends.
struct Slurm {
    dir: PathBuf,
}

impl Slurm {
    fn up(dir: &Path) -> Slurm {
        let _ = Command::new(root().join("ci/slurm-down.sh"))
            .arg(dir)
            .status();
        let guard = Slurm {
            dir: dir.to_path_buf(),
        };
        let f = run(
            Command::new(root().join("ci/slurm-up.sh")).arg(dir),
            Duration::from_secs(120),
        );
        assert_eq!(f.code(), 0, "ci/slurm-up.sh failed: {f:?}");
        guard
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let _ = Command::new(root().join("ci/slurm-down.sh"))
            .arg(&self.dir)
            .status();
    }
}

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
    let slurm = Slurm::up(
        &std::env::temp_dir().join(format!("mfubench-slurm-test-{}", std::process::id())),
    );

    let config = short_quickstart(tmp.path());
    let results = tmp.path().join("results");
    let log = tmp.path().join("job-%j.out");
    let junit = tmp.path().join("job.junit.xml");
    let prom = tmp.path().join("job.prom");
    let export = format!(
        "ALL,MFUBENCH={},MFUBENCH_OUT={},MFUBENCH_CONFIG={},MFUBENCH_TIMEOUT=10m,MFUBENCH_JUNIT={},MFUBENCH_PROM={}",
        mfubench().display(),
        results.display(),
        config.display(),
        junit.display(),
        prom.display()
    );
    // Command-line options override the template's GPU-cluster defaults
    // (2 nodes x 8 GPUs) for this one-node, CPU-only cluster.
    let mut cmd = Command::new("sbatch");
    cmd.env("SLURM_CONF", slurm.conf())
        .current_dir(root())
        .args([
            "--parsable",
            "--wait",
            "--nodes=1",
            "--ntasks-per-node=2",
            "--gpus-per-node=0",
        ])
        .arg(format!("--output={}", log.display()))
        .arg(format!("--export={export}"))
        .arg("launch/mfubench.sbatch");
    let running = Running::start(&mut cmd);
    let t = Instant::now();
    // --parsable prints the job id at submission; --wait then blocks.
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
    assert!(
        job_id.bytes().all(|b| b.is_ascii_digit()),
        "job id {job_id:?}"
    );
    let f = running.wait(Duration::from_secs(600));
    let job_log = std::fs::read_to_string(tmp.path().join(format!("job-{job_id}.out")))
        .unwrap_or_else(|e| format!("(no job log: {e})"));
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
    let x = std::fs::read_to_string(&junit).expect("the JUnit file");
    let jr = quick_junit::Report::deserialize_from_str(&x).expect("JUnit parses");
    assert_eq!(jr.failures, 0, "{x}");
    let p = std::fs::read_to_string(&prom).expect("the Prometheus file");
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

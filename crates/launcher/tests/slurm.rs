//! A real one-node Slurm (munged, slurmctld, slurmd) started by
//! ci/slurm-up.sh: `sbatch launch/mfubench.sbatch` with the quickstart
//! config must complete and leave run.json under results/<job id>/.
//! Needs root and slurm-wlm + munge.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn sbatch_template_runs_the_quickstart() {
    if let Some(why) = one_node_slurm_missing() {
        return skip("sbatch_template_runs_the_quickstart", &why);
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
    let job_id = wait_sbatch_job_id(&running);
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

/// The README's overnight soak, shortened: `sbatch launch/soak.sbatch`
/// with the quickstart, 20 s in 5 s windows.
#[test]
fn soak_sbatch_template_runs_a_short_soak() {
    if let Some(why) = one_node_slurm_missing() {
        return skip("soak_sbatch_template_runs_a_short_soak", &why);
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let slurm = Slurm::one_node(
        &std::env::temp_dir().join(format!("mfubench-slurm-soak-{}", std::process::id())),
    );
    let files = SbatchFiles::in_dir(tmp.path(), short_quickstart(tmp.path()));
    let export = format!(
        "ALL,MFUBENCH={},MFUBENCH_OUT={},MFUBENCH_JUNIT={},MFUBENCH_PROM={},MFUBENCH_DURATION=20s,MFUBENCH_WINDOW=5s",
        mfubench().display(),
        files.results.display(),
        files.junit.display(),
        files.prom.display()
    );
    let running = Running::start(
        Command::new("sbatch")
            .env("SLURM_CONF", slurm.conf())
            .current_dir(root())
            .args(["--parsable", "--wait", "--nodes=1", "--ntasks-per-node=2"])
            .args(["--gpus-per-node=0", "--time=10", "--signal=B:TERM@30"])
            .arg(format!("--output={}", files.log.display()))
            .arg(format!("--export={export}"))
            .arg("launch/soak.sbatch")
            .arg(&files.config),
    );
    let job_id = wait_sbatch_job_id(&running);
    let f = slurm.wait_job(running, &job_id, Duration::from_secs(600));
    let job_log = files.job_log(&job_id);
    assert_eq!(
        f.code(),
        0,
        "sbatch --wait failed: {f:?}\njob log:\n{job_log}"
    );
    let text = std::fs::read_to_string(files.results.join(&job_id).join("soak.jsonl"))
        .unwrap_or_else(|e| panic!("no soak.jsonl: {e}; job log:\n{job_log}"));
    let log = mfubench_core::soak::parse_log(&text);
    assert_eq!(log.windows.len(), 4, "{job_log}");
    assert!(log.complete(), "{job_log}");
    assert!(job_log.contains("verdict: PASS"), "{job_log}");
    let x = std::fs::read_to_string(&files.junit).expect("the JUnit file");
    let jr = quick_junit::Report::deserialize_from_str(&x).expect("JUnit parses");
    assert_eq!(jr.failures, 0, "{x}");
    let p = std::fs::read_to_string(&files.prom).expect("the Prometheus file");
    assert!(
        p.contains(&format!("mfubench_soak_windows{{run_id=\"{job_id}\"}} 4")),
        "{p}"
    );
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

//! `mfubench run` with real MPI ranks on this machine: the quickstart end
//! to end, the acceptance verdict, `--timeout`, concurrent runs, a 1-rank
//! run and secrets. The faults (a rank killed or stopped mid-run, SIGTERM,
//! SIGHUP or SIGKILL of mfubench, a partial or timed-out run) are rows of
//! faults.rs.
//! Needs mpirun and the worker built next to `mfubench` (cargo test
//! --workspace builds it). Timing assertions are only those the issue asks
//! for, with room for a loaded 2-core machine.

mod common;

use common::*;
use std::time::Duration;

/// Upper bound for a short run on a loaded machine.
const RUN_LIMIT: Duration = Duration::from_secs(300);

#[test]
fn quickstart_two_ranks_end_to_end() {
    if !have_mpirun("quickstart_two_ranks_end_to_end") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = short_quickstart(tmp.path());
    let out = tmp.path().join("results");
    let f = run(
        mfubench_cmd().args([
            "run",
            config.to_str().expect("utf-8 path"),
            "--np",
            "2",
            "--out",
            out.to_str().expect("utf-8 path"),
            "--run-id",
            "e2e",
        ]),
        RUN_LIMIT,
    );
    assert_eq!(f.code(), 0, "{f:?}");
    let run_dir = out.join("e2e");
    assert!(
        f.stdout
            .contains(&format!("results: {}", run_dir.display())),
        "{}",
        f.stdout
    );
    // Events are consumed, not echoed; progress shows as plain lines here.
    assert!(
        !f.stdout.contains("@@mfubench") && !f.stderr.contains("@@mfubench"),
        "{f:?}"
    );
    assert!(f.stderr.contains("mfubench: progress: "), "{}", f.stderr);
    // The compact summary.
    for m in [
        "compute",
        "comm",
        "serialized",
        "overlapped",
        "busbw",
        "hidden fraction",
        "verdict: PASS",
    ] {
        assert!(f.stdout.contains(m), "summary lacks {m}: {}", f.stdout);
    }

    let j = read_json(&run_dir.join("run.json"));
    assert_eq!(j["world_size"], 2);
    assert_eq!(j["ranks"].as_array().map(Vec::len), Some(2));
    assert_eq!(j["launch"]["launcher"], "mpirun");
    let cmd: Vec<&str> = j["launch"]["command"]
        .as_array()
        .expect("launch.command")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(cmd.first(), Some(&"mpirun"), "{cmd:?}");
    assert!(
        cmd.windows(2).any(|w| w == ["--expect-world", "2"]),
        "{cmd:?}"
    );
    assert!(
        cmd.windows(2).any(|w| w == ["--bind-to", "none"]),
        "{cmd:?}"
    );
    assert_eq!(j["summary"]["wrong"], 0);

    // The run ends with the path of its one-page report.
    let html = run_dir.join("report.html");
    assert_eq!(
        f.stdout.lines().last(),
        Some(format!("report: {}", html.display()).as_str()),
        "{}",
        f.stdout
    );
    let page = std::fs::read_to_string(&html).expect("report.html");
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("serialized · comm") && page.contains("overlapped · comm"));
    // `report --format html` prints the path; with --no-files, the page.
    let r = run(
        mfubench_cmd().args([
            "report",
            run_dir.to_str().expect("utf-8 path"),
            "--format",
            "html",
        ]),
        RUN_LIMIT,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.stdout, format!("{}\n", html.display()));
    let r = run(
        mfubench_cmd().args([
            "report",
            run_dir.to_str().expect("utf-8 path"),
            "--format",
            "html",
            "--no-files",
        ]),
        RUN_LIMIT,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(
        r.stdout.starts_with("<!DOCTYPE html>"),
        "{}",
        &r.stdout[..200.min(r.stdout.len())]
    );
}

#[test]
fn failed_acceptance_exits_1() {
    if !have_mpirun("failed_acceptance_exits_1") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(test_config("quick.toml")).expect("read");
    // No CPU reaches 99.9 % of its configured peak.
    let config = tmp.path().join("strict.toml");
    let strict = text.replace("[acceptance]\n", "[acceptance]\nmin_mfu = 0.999\n");
    assert_ne!(strict, text, "quick.toml has an [acceptance] table");
    std::fs::write(&config, strict).expect("write");
    let f = run(
        mfubench_cmd().args([
            "run",
            config.to_str().expect("utf-8"),
            "--out",
            tmp.path().join("r").to_str().expect("utf-8"),
            "--run-id",
            "strict",
        ]),
        RUN_LIMIT,
    );
    assert_eq!(f.code(), 1, "{f:?}");
    assert!(f.stdout.contains("verdict: FAIL"), "{}", f.stdout);
    assert!(
        f.stdout
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("min_mfu")),
        "{}",
        f.stdout
    );
    assert!(tmp.path().join("r/strict/run.json").is_file());
}

#[test]
fn timeout_stops_the_job_and_leaves_no_worker() {
    if !have_mpirun("timeout_stops_the_job_and_leaves_no_worker") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run_id = format!("timeout-{}", std::process::id());
    let running = Running::start(mfubench_cmd().args([
        "run",
        test_config("long.toml").to_str().expect("utf-8"),
        "--out",
        tmp.path().to_str().expect("utf-8"),
        "--run-id",
        &run_id,
        "--timeout",
        "3",
    ]));
    // Watch the workers while they run, independently of what mfubench says.
    let mut seen: Vec<u32> = Vec::new();
    while running.started.elapsed() < Duration::from_secs(3) {
        for p in worker_pids(&run_id) {
            if !seen.contains(&p) {
                seen.push(p);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let f = running.wait(Duration::from_secs(60));
    assert_eq!(f.code(), 3, "{f:?}");
    // "within a few seconds of the limit", with slack for a loaded machine.
    assert!(
        f.elapsed < Duration::from_secs(3 + 12),
        "took {:?}",
        f.elapsed
    );
    assert!(f.stderr.contains("timed out after 3s"), "{}", f.stderr);
    assert!(
        f.stderr.contains("ranks that had not finished"),
        "{}",
        f.stderr
    );
    // Ranks named with the PIDs of their hello events: none may survive.
    let named = pids_named(&f.stderr);
    assert!(
        f.stderr.contains("rank 0 (") && f.stderr.contains("rank 1 ("),
        "{}",
        f.stderr
    );
    let mut all = seen.clone();
    all.extend(&named);
    assert!(!all.is_empty(), "no worker was ever seen: {f:?}");
    let left = wait_gone(&all, Duration::from_secs(5));
    assert!(left.is_empty(), "workers left behind: {left:?}\n{f:?}");
    assert!(worker_pids(&run_id).is_empty());
}

#[test]
fn two_concurrent_runs_keep_both_results_and_forward_env_names() {
    if !have_mpirun("two_concurrent_runs_keep_both_results_and_forward_env_names") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = short_quickstart(tmp.path());
    let out = tmp.path().join("results");
    let start = || {
        let mut c = mfubench_cmd();
        c.env("MFUBENCH_TEST_SETTING", "not-a-secret-but-a-value-4711")
            .env("MY_EXTRA_VAR", "extra-value-0815")
            .args([
                "run",
                config.to_str().expect("utf-8"),
                "--np",
                "2",
                "--out",
                out.to_str().expect("utf-8"),
                "--env",
                "MY_EXTRA_VAR",
            ]);
        Running::start(&mut c)
    };
    // Same second, same --out, automatic ids.
    let a = start();
    let b = start();
    let fa = a.wait(RUN_LIMIT);
    let fb = b.wait(RUN_LIMIT);
    assert_eq!(fa.code(), 0, "{fa:?}");
    assert_eq!(fb.code(), 0, "{fb:?}");
    let dirs: Vec<_> = std::fs::read_dir(&out)
        .expect("results")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    for d in &dirs {
        let j = read_json(&d.join("run.json"));
        assert_eq!(j["complete"], true);
        let names: Vec<&str> = j["launch"]["forwarded_env"]
            .as_array()
            .expect("launch.forwarded_env")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for n in ["MFUBENCH_TEST_SETTING", "MY_EXTRA_VAR", "PATH"] {
            assert!(names.contains(&n), "{n} not in {names:?}");
        }
        let cmd = j["launch"]["command"].to_string();
        assert!(cmd.contains("\"-x\",\"MY_EXTRA_VAR\""), "{cmd}");
        // Names only: the values are written nowhere in the run folder.
        for e in std::fs::read_dir(d).expect("run dir").flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            assert!(
                !text.contains("extra-value-0815") && !text.contains("a-value-4711"),
                "{} holds a forwarded value",
                e.path().display()
            );
        }
    }

    // A given run id that exists: exit 2, and the first run is untouched.
    let first = dirs[0].file_name().unwrap().to_str().unwrap().to_string();
    let before = std::fs::read(dirs[0].join("run.json")).expect("run.json");
    let f = run(
        mfubench_cmd().args([
            "run",
            config.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
            "--run-id",
            &first,
        ]),
        RUN_LIMIT,
    );
    assert_eq!(f.code(), 2, "{f:?}");
    assert!(f.stderr.contains("never overwritten"), "{}", f.stderr);
    assert_eq!(
        std::fs::read(dirs[0].join("run.json")).expect("run.json"),
        before
    );
}

#[test]
fn one_rank_run_skips_the_communication_rules() {
    if !have_mpirun("one_rank_run_skips_the_communication_rules") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = short_quickstart(tmp.path());
    let f = run(
        mfubench_cmd().args([
            "run",
            config.to_str().expect("utf-8"),
            "--np",
            "1",
            "--out",
            tmp.path().to_str().expect("utf-8"),
            "--run-id",
            "one",
            // Threshold flags on `run`, as on `report`.
            "--min-busbw-gbps",
            "0",
            "--max-exposed-comm-fraction",
            "100%",
        ]),
        RUN_LIMIT,
    );
    // Not green: SKIPPED is not a pass.
    assert_eq!(f.code(), 1, "{f:?}");
    assert!(f.stderr.contains("warning: 1 rank"), "{}", f.stderr);
    for rule in ["min_busbw_gbps", "max_exposed_comm_fraction"] {
        assert!(
            f.stdout
                .lines()
                .any(|l| l.starts_with("SKIPPED") && l.contains(rule) && l.contains("1 rank")),
            "{rule}: {}",
            f.stdout
        );
    }
    assert!(f.stdout.contains("verdict: SKIPPED"), "{}", f.stdout);
    assert!(!f.stdout.contains("verdict: PASS"), "{}", f.stdout);
    assert!(f.stdout.contains("/ n/a (n = 1"), "{}", f.stdout);
}

/// Secrets never written: variables that look like credentials, a URL with
/// a password, Open MPI's job key and `-x NAME=VALUE` on the command line
/// appear in no output file, no stdout and no stderr of a real 2-rank run.
#[test]
fn secrets_are_never_written() {
    if !have_mpirun("secrets_are_never_written") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = short_quickstart(tmp.path());
    let out = tmp.path().join("results");
    let secret = "hunter2-Zq8";
    let f = run(
        mfubench_cmd()
            .env("NCCL_PASSWD", secret)
            .env("NCCL_AUTH_PW", secret)
            .env("SLURM_PASS", secret)
            .env("UCX_CREDENTIAL", secret)
            .env("OMPI_MCA_conn", format!("postgres://u:{secret}@db:5432/x"))
            .env("NCCL_DEBUG_FILE", format!("https://u:{secret}@logs/x"))
            .args([
                "run",
                config.to_str().expect("utf-8 path"),
                "--np",
                "2",
                "--out",
                out.to_str().expect("utf-8 path"),
                "--run-id",
                "sec",
                "--junit",
                tmp.path().join("j.xml").to_str().unwrap(),
                "--prom",
                tmp.path().join("m.prom").to_str().unwrap(),
                "--",
                "-x",
                &format!("MY_API_TOKEN={secret}"),
            ]),
        RUN_LIMIT,
    );
    assert!(f.code() == 0 || f.code() == 1, "{f:?}");
    assert!(!f.stdout.contains(secret), "stdout: {}", f.stdout);
    assert!(!f.stderr.contains(secret), "stderr: {}", f.stderr);
    let mut files = vec![tmp.path().join("j.xml"), tmp.path().join("m.prom")];
    for e in std::fs::read_dir(out.join("sec")).expect("run dir") {
        files.push(e.expect("entry").path());
    }
    assert!(files.len() > 5, "{files:?}");
    for p in files {
        let text = String::from_utf8_lossy(&std::fs::read(&p).expect("read")).into_owned();
        assert!(!text.contains(secret), "{} holds the secret", p.display());
    }
    let run = read_json(&out.join("sec/run.json"));
    assert_eq!(run["env"]["NCCL_PASSWD"], "<redacted>");
    assert!(run["launch"]["command"]
        .as_array()
        .expect("command")
        .iter()
        .any(|a| a == "MY_API_TOKEN=<redacted>"));
}

//! `mfubench run` with real MPI ranks on this machine: the quickstart end
//! to end, the acceptance verdict, `--timeout`, a rank killed mid-run, and
//! SIGTERM.
//! Needs mpirun and the worker built next to `mfubench` (cargo test
//! --workspace builds it). Timing assertions are only those the issue asks
//! for, with room for a loaded 2-core machine.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Upper bound for a short run on a loaded machine.
const RUN_LIMIT: Duration = Duration::from_secs(300);

fn have_mpirun(test: &str) -> bool {
    if find_program("mpirun").is_none() {
        skip(
            test,
            "mpirun is not installed (apt-get install openmpi-bin)",
        );
        return false;
    }
    true
}

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
fn killed_rank_is_named_with_its_host() {
    if !have_mpirun("killed_rank_is_named_with_its_host") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run_id = format!("killed-{}", std::process::id());
    let timeout = 240u64;
    let running = Running::start(mfubench_cmd().args([
        "run",
        test_config("long.toml").to_str().expect("utf-8"),
        "--out",
        tmp.path().to_str().expect("utf-8"),
        "--run-id",
        &run_id,
        "--timeout",
        &timeout.to_string(),
    ]));
    // Find rank 1 (Open MPI tells each process its rank in the environment)
    // and wait until the run is under way before killing it.
    let t = Instant::now();
    let victim = loop {
        let r1 = worker_pids(&run_id)
            .into_iter()
            .find(|p| proc_env(*p, "OMPI_COMM_WORLD_RANK").as_deref() == Some("1"));
        if let (Some(p), true) = (r1, running.output().contains("mfubench: progress:")) {
            break p;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the run never got under way:\n{}",
            running.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let all = worker_pids(&run_id);
    // SAFETY: plain syscall on a PID we just found to be our worker.
    unsafe {
        libc::kill(victim as i32, libc::SIGKILL);
    }
    let f = running.wait(Duration::from_secs(timeout + 60));
    assert_ne!(f.code(), 0, "{f:?}");
    assert!(
        !f.stderr.contains("timed out"),
        "ended by the timeout: {}",
        f.stderr
    );
    assert!(f.elapsed < Duration::from_secs(timeout), "{:?}", f.elapsed);
    let host = hostname();
    assert!(
        f.stderr.contains(&format!("rank 1 (host {host}")),
        "rank 1 and host {host} not named: {}",
        f.stderr
    );
    assert!(f.stderr.contains("signal 9"), "{}", f.stderr);
    let left = wait_gone(&all, Duration::from_secs(10));
    assert!(left.is_empty(), "workers left behind: {left:?}\n{f:?}");
}

/// Starts the long run, waits until it is under way, sends `sig` to
/// mfubench itself, and returns how mfubench ended and the worker PIDs still
/// alive afterwards (None when mpirun is missing).
fn signal_mid_run(test: &str, sig: i32) -> Option<(Finished, Vec<u32>)> {
    if !have_mpirun(test) {
        return None;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run_id = format!("{test}-{}", std::process::id());
    let running = Running::start(mfubench_cmd().args([
        "run",
        test_config("long.toml").to_str().expect("utf-8"),
        "--out",
        tmp.path().to_str().expect("utf-8"),
        "--run-id",
        &run_id,
        "--timeout",
        "240",
    ]));
    let t = Instant::now();
    while !running.output().contains("mfubench: progress:") {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the run never got under way:\n{}",
            running.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = worker_pids(&run_id);
    assert!(!all.is_empty());
    // SAFETY: plain syscall on our own child.
    unsafe {
        libc::kill(running.child.id() as i32, sig);
    }
    let f = running.wait(Duration::from_secs(60));
    let left = wait_gone(&all, Duration::from_secs(30));
    Some((f, left))
}

#[test]
fn sigterm_stops_cleanly_with_130() {
    // What a batch system or `kill` sends; Ctrl-C (SIGINT) takes the same path.
    let Some((f, left)) = signal_mid_run("sigterm_stops_cleanly_with_130", libc::SIGTERM) else {
        return;
    };
    assert_eq!(f.code(), 130, "{f:?}");
    assert!(f.stderr.contains("interrupted"), "{}", f.stderr);
    assert!(left.is_empty(), "workers left behind: {left:?}\n{f:?}");
}

#[test]
fn sighup_stops_the_job_too() {
    // A closed terminal / ssh session: mpirun, in its own process group,
    // does not get the hang-up itself; mfubench must stop the job.
    let Some((f, left)) = signal_mid_run("sighup_stops_the_job_too", libc::SIGHUP) else {
        return;
    };
    assert_eq!(f.code(), 130, "{f:?}");
    assert!(left.is_empty(), "workers left behind: {left:?}\n{f:?}");
}

#[test]
fn killing_mfubench_outright_stops_the_job() {
    // SIGKILL (or the OOM killer) leaves mfubench no chance to clean up:
    // mpirun must stop by itself (its parent-death signal, or its output
    // pipes closing).
    let Some((_, left)) = signal_mid_run("killing_mfubench_outright_stops_the_job", libc::SIGKILL)
    else {
        return;
    };
    assert!(left.is_empty(), "workers left behind: {left:?}");
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
fn partial_run_is_incomplete_in_every_output() {
    if !have_mpirun("partial_run_is_incomplete_in_every_output") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    // Compute mode short, then a comm mode that outlasts the test: the
    // first partial run.json appears after compute.
    let text = std::fs::read_to_string(test_config("quick.toml")).expect("read");
    let config = tmp.path().join("partial.toml");
    std::fs::write(
        &config,
        text.replace(
            "iterations = 3",
            "iterations = 3\nmodes = [\"compute\", \"overlapped\"]",
        )
        .replace("[acceptance]\n", "[acceptance]\nmin_mfu = 0.0\n"),
    )
    .expect("write");
    let run_id = format!("partial-{}", std::process::id());
    let run_dir = tmp.path().join(&run_id);
    let junit = tmp.path().join("junit.xml");
    let prom = tmp.path().join("metrics.prom");
    // The worker writes a partial run.json after the first mode and then
    // we stop a rank: the run stops before its last mode.
    let running = Running::start(mfubench_cmd().args([
        "run",
        config.to_str().expect("utf-8"),
        "--out",
        tmp.path().to_str().expect("utf-8"),
        "--run-id",
        &run_id,
        "--timeout",
        "4m",
        "--junit",
        junit.to_str().expect("utf-8"),
        "--prom",
        prom.to_str().expect("utf-8"),
    ]));
    let t = Instant::now();
    while !run_dir.join("run.json").is_file() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no partial run.json:\n{}",
            running.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let victim = worker_pids(&run_id)
        .into_iter()
        .find(|p| proc_env(*p, "OMPI_COMM_WORLD_RANK").as_deref() == Some("1"));
    if let Some(v) = victim {
        // SAFETY: plain syscall on a PID we just found to be our worker.
        unsafe {
            libc::kill(v as i32, libc::SIGKILL);
        }
    }
    let f = running.wait(RUN_LIMIT);
    let j = read_json(&run_dir.join("run.json"));
    if j["complete"] == true {
        // The last mode finished before the kill landed: nothing to test.
        skip_allowed(
            "partial_run_is_incomplete_in_every_output",
            "the run completed before a rank could be stopped",
            "timing, not a missing install",
        );
        return;
    }
    assert_eq!(f.code(), 3, "{f:?}");
    // The modes that finished are reported, with verdict INCOMPLETE.
    assert!(f.stdout.contains("verdict: INCOMPLETE"), "{}", f.stdout);
    assert!(!f.stdout.contains("verdict: PASS"), "{}", f.stdout);
    let summary = read_json(&run_dir.join("summary.json"));
    assert_eq!(summary["complete"], false);
    assert_eq!(summary["verdict"]["status"], "INCOMPLETE");
    let p = std::fs::read_to_string(&prom).expect("metrics.prom");
    assert!(p.contains("\nmfubench_run_complete 0\n"), "{p}");
    let x = std::fs::read_to_string(&junit).expect("junit.xml");
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
    let f = run(
        mfubench_cmd().args(["report", run_dir.to_str().expect("utf-8"), "--no-files"]),
        RUN_LIMIT,
    );
    assert_eq!(f.code(), 3, "{f:?}");
    assert!(f.stdout.contains("verdict: INCOMPLETE"), "{}", f.stdout);
    assert!(f.stderr.contains("--allow-partial"), "{}", f.stderr);
    let f = run(
        mfubench_cmd().args([
            "report",
            run_dir.to_str().expect("utf-8"),
            "--no-files",
            "--allow-partial",
        ]),
        RUN_LIMIT,
    );
    // min_mfu needs the overlapped mode, which never finished: INCOMPLETE,
    // not held against the run; the compute-mode rules pass.
    assert_eq!(f.code(), 0, "{f:?}");
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

#[test]
fn timed_out_run_is_reported_incomplete() {
    if !have_mpirun("timed_out_run_is_reported_incomplete") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(test_config("quick.toml")).expect("read");
    let config = tmp.path().join("two-modes.toml");
    // Long enough that the second mode is still running when rank 1 stops.
    std::fs::write(
        &config,
        text.replace(
            "iterations = 3",
            "iterations = 150\nmodes = [\"compute\", \"overlapped\"]",
        ),
    )
    .expect("write");
    let run_id = format!("timedout-{}", std::process::id());
    let run_dir = tmp.path().join(&run_id);
    let prom = tmp.path().join("metrics.prom");
    let running = Running::start(mfubench_cmd().args([
        "run",
        config.to_str().expect("utf-8"),
        "--out",
        tmp.path().to_str().expect("utf-8"),
        "--run-id",
        &run_id,
        "--timeout",
        "30s",
        "--prom",
        prom.to_str().expect("utf-8"),
    ]));
    // After the first mode (its partial run.json), stop rank 1: the other
    // rank waits for it until the timeout ends the job.
    let t = Instant::now();
    while !run_dir.join("run.json").is_file() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no partial run.json:\n{}",
            running.output()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let victim = worker_pids(&run_id)
        .into_iter()
        .find(|p| proc_env(*p, "OMPI_COMM_WORLD_RANK").as_deref() == Some("1"));
    let Some(victim) = victim else {
        return skip_allowed(
            "timed_out_run_is_reported_incomplete",
            "the run ended before rank 1 could be stopped",
            "timing, not a missing install",
        );
    };
    // SAFETY: plain syscall on a PID we just found to be our worker.
    unsafe {
        libc::kill(victim as i32, libc::SIGSTOP);
    }
    let f = running.wait(RUN_LIMIT);
    assert_eq!(f.code(), 3, "{f:?}");
    let j = read_json(&run_dir.join("run.json"));
    assert_eq!(j["complete"], false, "{f:?}");
    assert!(f.stderr.contains("timed out after 30s"), "{}", f.stderr);
    assert!(f.stdout.contains("verdict: INCOMPLETE"), "{}", f.stdout);
    assert!(!f.stdout.contains("verdict: PASS"), "{}", f.stdout);
    let p = std::fs::read_to_string(&prom).expect("metrics.prom");
    assert!(p.contains("\nmfubench_run_complete 0\n"), "{p}");
    let f = run(
        mfubench_cmd().args(["report", run_dir.to_str().expect("utf-8"), "--no-files"]),
        RUN_LIMIT,
    );
    assert_eq!(f.code(), 3, "{f:?}");
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

/// A hung rank (SIGSTOP) ends the job within op_timeout_s and a few
/// seconds, and the launcher names it — host, pid, "stopped" — as the rank
/// that fell behind, with the healthy rank listed as waiting for it, not
/// blamed. The exit code and the time bound hold on every attempt; the
/// naming depends on when the stop lands (a rank stopped before the
/// launcher's next look and the abort), so one more attempt is allowed.
#[test]
fn stopped_rank_is_named_as_the_culprit() {
    if !have_mpirun("stopped_rank_is_named_as_the_culprit") {
        return;
    }
    require_worker();
    let _lock = TestLock::acquire();
    let first = stop_one_rank();
    if let Err(e) = first {
        eprintln!("attempt 1: {e}");
        stop_one_rank().unwrap_or_else(|e2| panic!("attempt 1: {e}\nattempt 2: {e2}"));
    }
}

fn stop_one_rank() -> Result<(), String> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = tmp.path().join("hang.toml");
    let text = std::fs::read_to_string(test_config("long.toml")).expect("long.toml");
    let mut t: toml::Table = text.parse().expect("parses");
    let run = t["run"].as_table_mut().expect("[run]");
    run.insert("op_timeout_s".into(), toml::Value::Float(4.0));
    run.insert("check".into(), toml::Value::Boolean(false));
    std::fs::write(&cfg, toml::to_string(&t).expect("toml")).expect("write");
    let run_id = format!("stopped-{}", std::process::id());
    let running = Running::start(mfubench_cmd().args([
        "run",
        cfg.to_str().expect("utf-8"),
        "--out",
        tmp.path().to_str().expect("utf-8"),
        "--run-id",
        &run_id,
    ]));
    let t0 = Instant::now();
    let victim = loop {
        let r1 = worker_pids(&run_id)
            .into_iter()
            .find(|p| proc_env(*p, "OMPI_COMM_WORLD_RANK").as_deref() == Some("1"));
        if let (Some(p), true) = (r1, running.output().contains("timed")) {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the run never got under way:\n{}",
            running.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let all = worker_pids(&run_id);
    let stopped_at = Instant::now();
    // SAFETY: plain syscall on a PID we just found to be our worker.
    unsafe {
        libc::kill(victim as i32, libc::SIGSTOP);
    }
    let f = running.wait(Duration::from_secs(120));
    let took = stopped_at.elapsed();
    // SAFETY: as above; the process may already be gone.
    unsafe {
        libc::kill(victim as i32, libc::SIGKILL);
    }
    assert_eq!(f.code(), 3, "{f:?}");
    assert!(took < Duration::from_secs(4 + 20), "ended after {took:?}");
    let left = wait_gone(&all, Duration::from_secs(10));
    assert!(left.is_empty(), "workers left behind: {left:?}");
    let host = hostname();
    let culprit =
        format!("fell behind: rank 1 (host {host}, pid {victim}): process stopped (state T)");
    if !f.stderr.contains(&culprit) {
        return Err(format!("culprit not named ({culprit}): {}", f.stderr));
    }
    if !f.stderr.contains("waiting for them: rank 0 (host") {
        return Err(format!(
            "the waiting rank is not listed as waiting: {}",
            f.stderr
        ));
    }
    Ok(())
}

//! The CUDA backend on the simulated GPU (crates/simgpu): the real
//! `mfubench` and `mfubench-worker`, real MPI ranks, the stand-in libcuda,
//! libcublasLt, libnccl and libnvidia-ml with the race checker on. Every
//! output of such a run says SIMULATED.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(600);

/// The simulator next to the binaries (`cargo test --workspace` builds it;
/// ci/test.sh fetches the headers it needs first). Its absence is a broken
/// build, not a missing facility.
fn require_simgpu() -> PathBuf {
    let lib = mfubench().with_file_name("libmfubench_simgpu.so");
    assert!(
        lib.is_file(),
        "{} is missing: run ci/fetch-nvidia-headers.sh, then cargo build -p mfubench-simgpu",
        lib.display()
    );
    lib
}

/// `mfubench run CONFIG --sim-gpu 2` into `out/<id>`, with the simulator's
/// random per-operation delays seeded by `seed`.
fn sim_run(config: &std::path::Path, out: &std::path::Path, id: &str, seed: &str) -> Finished {
    let mut cmd = mfubench_cmd();
    cmd.args([
        "run",
        config.to_str().unwrap(),
        "--sim-gpu",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--run-id",
        id,
    ])
    .env(mfubench_core::simgpu::SEED_VAR, seed);
    if is_root() {
        cmd.args(["--", "--allow-run-as-root"]);
    }
    run(&mut cmd, LIMIT)
}

#[test]
fn quickstart_on_two_simulated_gpus_runs_every_mode_with_no_wrong_element() {
    require_worker();
    require_simgpu();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().unwrap();
    let config = short_quickstart(tmp.path());
    let out = tmp.path().join("results");
    // Random per-operation delays shake out missing waits.
    let f = sim_run(&config, &out, "sim", "7");
    assert!(
        f.stderr.contains(mfubench_core::simgpu::BANNER),
        "{}",
        f.stderr
    );
    assert!(f.code() == 0 || f.code() == 1, "{f:?}");
    let run_json = read_json(&out.join("sim/run.json"));
    assert_eq!(run_json["backend"], "cuda", "{run_json}");
    let ranks = run_json["ranks"].as_array().expect("ranks");
    assert_eq!(ranks.len(), 2);
    for r in ranks {
        assert_eq!(r["device_info"]["simulated"], "true", "{r}");
        assert!(
            r["device_name"].as_str().unwrap().ends_with("(simulated)"),
            "{r}"
        );
        assert_eq!(r["wrong"], 0, "rank {} counted wrong elements", r["rank"]);
        for m in ["compute", "comm", "serialized", "overlapped"] {
            assert!(
                r["modes"][m].is_object(),
                "rank {} lacks mode {m}",
                r["rank"]
            );
        }
    }
    // The two ranks ran on two different simulated GPUs.
    assert_ne!(
        ranks[0]["device_info"]["uuid"], ranks[1]["device_info"]["uuid"],
        "{run_json}"
    );
    let md = std::fs::read_to_string(out.join("sim/summary.md")).unwrap();
    assert!(md.contains("SIMULATED GPU"), "{md}");
    let html = std::fs::read_to_string(out.join("sim/report.html")).unwrap();
    assert!(html.contains("id=\"simulated-banner\""));
    assert!(f.stdout.contains("SIMULATED GPU"), "{}", f.stdout);
}

#[test]
fn sim_flags_are_checked_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, want) in [
        (vec!["--sim-fault", "xid=79@*:0"], "--sim-gpu"),
        (
            vec!["--sim-gpu", "2", "--sim-fault", "melt@*:0"],
            "unknown kind",
        ),
        (vec!["--sim-gpu", "0"], "--sim-gpu 0"),
        (vec!["--sim-gpu", "2", "--backend", "cpu"], "--backend cuda"),
    ] {
        let mut cmd = mfubench_cmd();
        cmd.args(["run", "configs/quickstart.toml", "--out"])
            .arg(tmp.path())
            .args(&args)
            .current_dir(root());
        let f = run(&mut cmd, Duration::from_secs(60));
        assert_eq!(f.code(), 2, "{args:?}: {f:?}");
        assert!(f.stderr.contains(want), "{args:?}: {}", f.stderr);
        assert_eq!(
            f.stderr.lines().filter(|l| l.contains("error")).count(),
            1,
            "{}",
            f.stderr
        );
    }
}

/// `mfubench accept` on 2 simulated GPUs of this host with `faults`; the
/// stages and extra flags given.
fn sim_accept(
    out: &std::path::Path,
    id: &str,
    stages: &str,
    faults: &[&str],
    flags: &[&str],
) -> Finished {
    let tmp_cfg = out.join(format!("{id}.toml"));
    // The test shape with a short op timeout: an injected hang must end the
    // job quickly.
    let text = std::fs::read_to_string(test_config("accept.toml"))
        .unwrap()
        .replace("[run]\n", "[run]\nop_timeout_s = 20.0\n");
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(&tmp_cfg, text).unwrap();
    let mut cmd = mfubench_cmd();
    cmd.args([
        "accept",
        tmp_cfg.to_str().unwrap(),
        "--np",
        "2",
        "--sim-gpu",
        "2",
        "--stages",
        stages,
    ])
    .args([
        "--out",
        out.to_str().unwrap(),
        "--run-id",
        id,
        "--timeout",
        "240",
    ]);
    for f in faults {
        cmd.args(["--sim-fault", f]);
    }
    cmd.args(flags);
    if is_root() {
        cmd.args(["--", "--allow-run-as-root"]);
    }
    run(&mut cmd, LIMIT)
}

#[test]
fn accept_on_simulated_gpus_names_the_faulty_gpu() {
    require_worker();
    require_simgpu();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let host = hostname();

    // An XID 79 on GPU 1: FAIL naming its rank, host, GPU identity and code.
    let f = sim_accept(&out, "xid", "device,sweep", &["xid=79@*:1"], &[]);
    assert_eq!(f.code(), 1, "{f:?}");
    let want =
        format!("FAIL         device gpu_xid         device rank 1 ({host}, local rank 1): XID 79");
    assert!(f.stdout.contains(&want), "{}", f.stdout);
    assert!(f.stdout.contains("not a hardware verdict"), "{}", f.stdout);
    let j = read_json(&out.join("xid/accept.json"));
    assert_eq!(j["device_info"]["simulated"], "true", "{j:#}");
    assert_eq!(j["backend"], "cuda");

    // GEMMs of GPU 1 at 20 % speed: the device stage names it.
    let f = sim_accept(
        &out,
        "slow",
        "config,device",
        &["slow=0.2@*:1"],
        &["--min-device-fraction", "0.7"],
    );
    assert_eq!(f.code(), 1, "{f:?}");
    let j = read_json(&out.join("slow/accept.json"));
    // The config stage's GPU facts, from (simulated) NVML and NCCL.
    let facts = &j["config"]["nodes"][0]["facts"];
    for key in [
        "gpu.driver",
        "gpu.cuda",
        "gpu.count",
        "gpu.0.model",
        "gpu.0.pcie_max_gen",
        "gpu.0.pcie_width",
        "nccl",
    ] {
        assert!(
            facts[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}: {facts:#}"
        );
    }

    assert!(
        f.stdout.contains("accept: FAIL — bad: device rank 1"),
        "{}",
        f.stdout
    );
    assert!(!f.stdout.contains("bad: device rank 0"), "{}", f.stdout);

    // Its next all-reduce never completes: exit 3 within the op timeout.
    // A hung collective looks the same from every rank of it: each one's
    // watchdog gives up 20 s after it entered, in whichever order the
    // machine's load gives. The launcher sees every rank inside the same op
    // (their heartbeats) and says that it hung inside, naming no rank as
    // behind: which gave up first is a race, not evidence.
    let t = std::time::Instant::now();
    let f = sim_accept(&out, "hang", "node", &["hang=all_reduce@*:1"], &[]);
    assert_eq!(f.code(), 3, "{f:?}");
    assert!(
        t.elapsed() < Duration::from_secs(20 + 10 + 30),
        "{:?}",
        t.elapsed()
    );
    assert!(
        f.stderr
            .contains("every rank was inside the same op (accept node stage"),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("no rank fell behind"), "{}", f.stderr);
    assert!(!f.stderr.contains("fell behind: rank"), "{}", f.stderr);
    assert!(
        f.stderr.contains("did not complete within 20 s"),
        "{}",
        f.stderr
    );
    // The fault was GPU 1's (the simulator says so on rank 1's stderr).
    assert!(
        f.stderr.contains("injected fault: all_reduce on device 1"),
        "{}",
        f.stderr
    );
}

#[test]
fn accept_on_three_namespace_hosts_names_the_slow_simulated_link() {
    let test = "accept_on_three_namespace_hosts_names_the_slow_simulated_link";
    if let Some(why) = netns_missing() {
        return skip(test, &why);
    }
    require_worker();
    require_simgpu();
    let _lock = TestLock::acquire();
    let _hosts = Netns::up(3);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let mut cmd = mfubench_cmd();
    cmd.args([
        "accept",
        test_config("accept.toml").to_str().unwrap(),
        "--stages",
        "link,sweep",
        "--np",
        "6",
        "--hosts",
        "hostA:2,hostB:2,hostC:2",
        "--sim-gpu",
        "2",
        "--sim-fault",
        "link_slow=0.05@hostC:*",
        "--out",
        out.to_str().unwrap(),
        "--run-id",
        "link",
        "--timeout",
        "240",
        "--",
    ])
    .args(Netns::mpirun_args());
    let f = run(&mut cmd, LIMIT);
    assert_eq!(f.code(), 1, "{f:?}");
    assert!(
        f.stdout
            .contains("accept: FAIL — bad: link hostA <-> hostC, link hostB <-> hostC, node hostC"),
        "{}",
        f.stdout
    );
    let j = read_json(&out.join("link/accept.json"));
    assert_eq!(j["device_info"]["simulated"], "true");
    // Six ranks on six different simulated GPUs, two per host.
    let uuids: std::collections::BTreeSet<String> = j["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["gpu"]["uuid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(uuids.len(), 6, "{:#}", j["gpus"]);
}

/// A GPU whose GEMMs run at 30 % makes its peer wait more than a second in
/// every collective: the step must wait (not abort the communicators, as
/// the CUDA backend once did after the schedule's 1 s notice), every
/// element must still be right, and the slow rank is the straggler. (Two
/// modes: compute names the straggler, overlapped makes the peer wait.)
#[test]
fn a_slow_simulated_gpu_is_a_straggler_not_a_broken_collective() {
    require_worker();
    require_simgpu();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("configs/quickstart.toml"))
        .unwrap()
        .replace("iterations = 12", "iterations = 3")
        .replace(
            "modes = [\"compute\", \"comm\", \"serialized\", \"overlapped\"]",
            "modes = [\"compute\", \"overlapped\"]",
        );
    assert!(text.contains("modes = [\"compute\", \"overlapped\"]"));
    let config = tmp.path().join("q.toml");
    std::fs::write(&config, text).unwrap();
    let out = tmp.path().join("results");
    let mut cmd = mfubench_cmd();
    cmd.args([
        "run",
        config.to_str().unwrap(),
        "--sim-gpu",
        "2",
        "--sim-fault",
        "slow=0.3@*:1",
    ])
    .args(["--out", out.to_str().unwrap(), "--run-id", "slow"]);
    if is_root() {
        cmd.args(["--", "--allow-run-as-root"]);
    }
    let f = run(&mut cmd, LIMIT);
    assert_eq!(f.code(), 1, "{f:?}");
    assert!(!f.stderr.contains("aborted"), "{}", f.stderr);
    let j = read_json(&out.join("slow/run.json"));
    assert_eq!(j["summary"]["wrong"], 0, "{:#}", j["summary"]);
    let stragglers: Vec<u64> = j["summary"]["stragglers"]
        .as_array()
        .expect("summary.stragglers")
        .iter()
        .map(|s| s["rank"].as_u64().or_else(|| s.as_u64()).unwrap())
        .collect();
    assert_eq!(stragglers, [1], "{:#}", j["summary"]["stragglers"]);
}

/// FP8 GEMMs (E4M3, scale pointers, TN) through the whole CUDA path; the
/// launcher checks the config with the backend the command line asks for
/// (the file says cpu, which has no fp8).
#[test]
fn fp8_runs_on_simulated_gpus() {
    require_worker();
    require_simgpu();
    let tmp = tempfile::tempdir().unwrap();
    let config = short_quickstart(tmp.path());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[run]\n", "[run]\ndtype = \"fp8\"\n");
    std::fs::write(&config, text).unwrap();
    // The file alone is refused for the cpu backend; --backend cuda is fine.
    let f = run(
        mfubench_cmd().args(["run", config.to_str().unwrap(), "--dry-run"]),
        Duration::from_secs(60),
    );
    assert_eq!(f.code(), 2, "{f:?}");
    let f = run(
        mfubench_cmd().args([
            "run",
            config.to_str().unwrap(),
            "--backend",
            "cuda",
            "--dry-run",
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(f.code(), 0, "{f:?}");
    let _lock = TestLock::acquire();
    let out = tmp.path().join("results");
    let mut cmd = mfubench_cmd();
    cmd.args([
        "run",
        config.to_str().unwrap(),
        "--sim-gpu",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--run-id",
        "fp8",
    ]);
    if is_root() {
        cmd.args(["--", "--allow-run-as-root"]);
    }
    let f = run(&mut cmd, LIMIT);
    assert!(f.code() == 0 || f.code() == 1, "{f:?}");
    let j = read_json(&out.join("fp8/run.json"));
    assert_eq!(
        j["config"]["run"]["dtype"], "fp8",
        "{:#}",
        j["config"]["run"]
    );
    assert_eq!(j["summary"]["wrong"], 0);
}

/// Expert parallelism through the whole CUDA path: a 4-expert, top-2,
/// Zipf-routed MoE split over 2 simulated GPUs, its uneven all-to-alls
/// grouped ncclSend/ncclRecv on the ep communicator (split from the
/// world), every one checked, with random per-operation delays that shake
/// out a missing wait.
#[test]
fn expert_parallel_all_to_all_on_simulated_gpus() {
    require_worker();
    require_simgpu();
    let tmp = tempfile::tempdir().unwrap();
    let config = short_quickstart(tmp.path());
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[model]\n",
        "[model]\nexperts = 4\ntop_k = 2\nrouting = \"zipf:1.2\"\nmoe_chunks = 2\n",
    );
    std::fs::write(&config, format!("{text}\n[parallel]\nexpert = 2\n")).unwrap();
    let _lock = TestLock::acquire();
    let out = tmp.path().join("results");
    let f = sim_run(&config, &out, "ep", "11");
    assert!(f.code() == 0 || f.code() == 1, "{f:?}");
    let j = read_json(&out.join("ep/run.json"));
    assert_eq!(j["backend"], "cuda");
    assert!(
        f.stderr.contains(mfubench_core::simgpu::BANNER),
        "{}",
        f.stderr
    );
    for r in j["ranks"].as_array().unwrap() {
        assert_eq!(r["wrong"], 0, "rank {} counted wrong elements", r["rank"]);
        assert_eq!(r["device_info"]["simulated"], "true", "{r}");
    }
    let a2a = j["summary"]["collectives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "all_to_all")
        .unwrap_or_else(|| panic!("{:#}", j["summary"]["collectives"]));
    assert_eq!(a2a["group"], "ep");
    assert_eq!(a2a["group_size"], 2);
    assert!(a2a["exposed_s_ci95"].is_array(), "{a2a:#}");
    assert!(a2a["busbw_gbps"].as_f64().unwrap() > 0.0, "{a2a:#}");
}

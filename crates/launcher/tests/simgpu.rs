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

#[test]
fn quickstart_on_two_simulated_gpus_runs_every_mode_with_no_wrong_element() {
    require_worker();
    require_simgpu();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().unwrap();
    let config = short_quickstart(tmp.path());
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
        "sim",
    ])
    // Random per-operation delays shake out missing waits.
    .env(mfubench_core::simgpu::SEED_VAR, "7");
    if is_root() {
        cmd.args(["--", "--allow-run-as-root"]);
    }
    let f = run(&mut cmd, LIMIT);
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
            assert!(r["modes"][m].is_object(), "rank {} lacks mode {m}", r["rank"]);
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
        (vec!["--sim-gpu", "2", "--sim-fault", "melt@*:0"], "unknown kind"),
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
        assert_eq!(f.stderr.lines().filter(|l| l.contains("error")).count(), 1, "{}", f.stderr);
    }
}

//! The parallelism patterns with real MPI ranks: FSDP with tensor
//! parallelism and HSDP on two namespace hosts of two ranks each
//! (ci/netns-up.sh), FSDP on one host with 3 and 4 ranks. Every mode runs,
//! every collective's result is checked (`wrong` 0), and the bytes per kind
//! in run.json equal the closed forms computed here from the model shape.
//! The namespace-host case runs twice: on the CPU backend, and on the CUDA
//! backend over 2 simulated GPUs per host (`--sim-gpu 2`: NCCL splits,
//! all-gather, reduce-scatter and TP all-reduces across the hosts).

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The test shape: hidden 128, ffn 384, 4 heads, 2 kv heads of 32, gated:
/// QKV 128 × 256, out 128 × 128, up/gate/down 3 × 128 × 384.
const PARAMS_PER_LAYER: u64 = 128 * 256 + 128 * 128 + 3 * 128 * 384;
/// Tokens × hidden of one step (seq 128, micro-batch 1).
const ACTIVATIONS: u64 = 128 * 128;
/// f32 on the CPU backend.
const BYTES: u64 = 4;
/// bf16 gradients, the CUDA backend's default.
const CUDA_BYTES: u64 = 2;

fn config(dir: &Path, name: &str, layers: u64, parallel: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "[model]\npreset = \"tiny\"\nhidden = 128\nffn = 384\nheads = 4\nkv_heads = 2\nseq = 128\n\
             [run]\nbackend = \"cpu\"\nlayers = {layers}\nwarmup = 1\niterations = 6\ngemm_threads = 1\npeak_tflops = 0.05\n\
             [acceptance]\nstraggler_tolerance = 10.0\n[parallel]\n{parallel}\n"
        ),
    )
    .unwrap();
    p
}

/// Bytes per step of one kind of collective in run.json's plan.
fn plan_bytes(j: &Value, kind: &str, group: &str) -> (u64, u64) {
    let c = j["plan"]["collectives"]
        .as_array()
        .expect("plan.collectives")
        .iter()
        .find(|c| c["kind"] == kind && c["group"] == group)
        .unwrap_or_else(|| panic!("no {kind}/{group} in {:#}", j["plan"]));
    (
        c["bytes"].as_u64().unwrap(),
        c["group_size"].as_u64().unwrap(),
    )
}

/// Every mode ran on every rank, nothing was wrong, and every kind has its
/// comm-mode time, bandwidths and overlapped exposure with an interval.
fn check_run(j: &Value, ranks: u64, kinds: usize) {
    assert_eq!(j["world_size"], ranks, "{j:#}");
    assert_eq!(j["summary"]["wrong"], 0);
    for r in j["ranks"].as_array().unwrap() {
        for m in ["compute", "comm", "serialized", "overlapped"] {
            assert_eq!(
                r["modes"][m]["step_time_s"].as_array().map(Vec::len),
                Some(6),
                "{m}"
            );
        }
    }
    let rows = j["summary"]["collectives"]
        .as_array()
        .expect("summary.collectives");
    assert_eq!(rows.len(), kinds, "{rows:#?}");
    for c in rows {
        for f in [
            "time_s",
            "algbw_gbps",
            "busbw_gbps",
            "exposed_s",
            "hidden_fraction",
        ] {
            assert!(c[f].as_f64().is_some_and(f64::is_finite), "{f}: {c:#}");
        }
        for f in ["exposed_s_ci95", "hidden_fraction_ci95"] {
            assert_eq!(c[f].as_array().map(Vec::len), Some(2), "{f}: {c:#}");
        }
    }
}

fn run_job(cfg: &Path, out: &Path, id: &str, where_: &[&str], extra: &[&str]) -> Value {
    let mut cmd = mfubench_cmd();
    cmd.args(["run", cfg.to_str().unwrap()]).args(where_).args([
        "--out",
        out.to_str().unwrap(),
        "--run-id",
        id,
        "--timeout",
        "5m",
    ]);
    if !extra.is_empty() {
        cmd.arg("--").args(extra);
    }
    let f = run(&mut cmd, Duration::from_secs(400));
    assert_eq!(f.code(), 0, "{f:?}");
    read_json(&out.join(id).join("run.json"))
}

/// `tensor = 2, data = "fsdp"` and `data = "hsdp"` on 2 namespace hosts ×
/// 2 ranks.
#[test]
fn fsdp_tp_and_hsdp_on_two_namespace_hosts() {
    let test = "fsdp_tp_and_hsdp_on_two_namespace_hosts";
    if let Some(why) = netns_missing() {
        return skip(test, &why);
    }
    require_worker();
    let _lock = TestLock::acquire();
    let _hosts = Netns::up(2);
    let f = run(
        Command::new(root().join("ci/mpirun-ns.sh")).arg("--print-args"),
        Duration::from_secs(30),
    );
    assert_eq!(f.code(), 0, "{f:?}");
    let extra: Vec<&str> = f.stdout.lines().collect();
    let tmp = tempfile::tempdir().unwrap();
    fsdp_tp_and_hsdp(tmp.path(), &[], &extra, BYTES, "");
    let sim = mfubench().with_file_name("libmfubench_simgpu.so");
    assert!(
        sim.is_file(),
        "{} is missing: ci/fetch-nvidia-headers.sh, then cargo build -p mfubench-simgpu",
        sim.display()
    );
    fsdp_tp_and_hsdp(tmp.path(), &["--sim-gpu", "2"], &extra, CUDA_BYTES, "sim-");
}

/// FSDP + TP and HSDP on hostA:2,hostB:2 with `args`; gradients of `bytes`
/// each; run ids prefixed with `prefix`.
fn fsdp_tp_and_hsdp(dir: &Path, args: &[&str], extra: &[&str], bytes: u64, prefix: &str) {
    let mut hosts = vec!["--hosts", "hostA:2,hostB:2"];
    hosts.extend_from_slice(args);
    let layers = 2;
    let simulated = |j: &Value| {
        j["ranks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["device_info"]["simulated"] == "true")
    };

    // FSDP over the 2 data-parallel ranks of each TP position, TP = 2
    // inside each host.
    let cfg = config(dir, "fsdp.toml", layers, "data = \"fsdp\"\ntensor = 2");
    let j = run_job(&cfg, dir, &format!("{prefix}fsdp-tp"), &hosts, extra);
    check_run(&j, 4, 3);
    assert_eq!(simulated(&j), !args.is_empty(), "{:#}", j["ranks"]);
    let slice = PARAMS_PER_LAYER / 2;
    // All-gather: a layer's slice before its forward and its backward.
    assert_eq!(
        plan_bytes(&j, "all_gather", "dp_shard"),
        (2 * slice * layers * bytes, 2)
    );
    assert_eq!(
        plan_bytes(&j, "reduce_scatter", "dp_shard"),
        (slice * layers * bytes, 2)
    );
    // TP: 2 activation all-reduces per layer forward, 2 backward.
    assert_eq!(
        plan_bytes(&j, "all_reduce", "tp"),
        (4 * layers * ACTIVATIONS * bytes, 2)
    );
    let hosts_of_tp: Vec<&str> = j["ranks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts_of_tp, ["hostA", "hostA", "hostB", "hostB"]);

    // HSDP: shard inside a host (2), all-reduce the shard across hosts (2).
    let cfg = config(dir, "hsdp.toml", layers, "data = \"hsdp\"");
    let j = run_job(&cfg, dir, &format!("{prefix}hsdp"), &hosts, extra);
    check_run(&j, 4, 3);
    assert_eq!(
        plan_bytes(&j, "all_gather", "dp_shard"),
        (2 * PARAMS_PER_LAYER * layers * bytes, 2)
    );
    assert_eq!(
        plan_bytes(&j, "reduce_scatter", "dp_shard"),
        (PARAMS_PER_LAYER * layers * bytes, 2)
    );
    assert_eq!(
        plan_bytes(&j, "all_reduce", "dp_replicate"),
        (PARAMS_PER_LAYER / 2 * layers * bytes, 2)
    );
}

/// One host: FSDP + TP on 4 ranks; HSDP refused (exit 2, the field named);
/// FSDP on 3 ranks (shards padded to a multiple of 3) prefetches the next
/// layer's all-gather under the current layer's GEMMs in overlapped mode,
/// as its recorded spans show.
#[test]
fn fsdp_on_one_host() {
    let test = "fsdp_on_one_host";
    if find_program("mpirun").is_none() {
        return skip(test, "mpirun is not installed");
    }
    require_worker();
    let _lock = TestLock::acquire();
    let tmp = tempfile::tempdir().unwrap();

    let cfg = config(tmp.path(), "fsdp.toml", 1, "data = \"fsdp\"\ntensor = 2");
    let j = run_job(&cfg, tmp.path(), "fsdp4", &["--np", "4"], &[]);
    check_run(&j, 4, 3);
    assert_eq!(
        plan_bytes(&j, "all_gather", "dp_shard"),
        (PARAMS_PER_LAYER * BYTES, 2)
    );

    let cfg = config(tmp.path(), "hsdp.toml", 1, "data = \"hsdp\"");
    let mut cmd = mfubench_cmd();
    cmd.args(["run", cfg.to_str().unwrap(), "--np", "2", "--out"])
        .arg(tmp.path())
        .args(["--timeout", "2m"]);
    let f = run(&mut cmd, Duration::from_secs(200));
    assert_eq!(f.code(), 2, "{f:?}");
    assert!(
        f.stderr.contains("parallel.data") && f.stderr.contains("at least 2 nodes"),
        "{}",
        f.stderr
    );

    // 3 layers of a larger shape, so that a layer's GEMMs take
    // milliseconds: the all-gather of layer 2 starts before layer 1's
    // forward GEMMs end.
    let p = tmp.path().join("fsdp3.toml");
    std::fs::write(
        &p,
        "[model]\npreset = \"tiny\"\n[run]\nbackend = \"cpu\"\nlayers = 3\nwarmup = 1\niterations = 6\ngemm_threads = 1\npeak_tflops = 0.05\n[acceptance]\nstraggler_tolerance = 10.0\n[parallel]\ndata = \"fsdp\"\n",
    )
    .unwrap();
    let j = run_job(&p, tmp.path(), "fsdp3", &["--np", "3"], &[]);
    check_run(&j, 3, 2);
    let (bytes, n) = plan_bytes(&j, "all_gather", "dp_shard");
    // tiny: QKV 512 × 1024 (8 heads, 4 kv heads of 64), out 512 × 512, FFN 3 × 512 × 1536.
    let tiny_layer: u64 = 512 * 1024 + 512 * 512 + 3 * 512 * 1536;
    assert_eq!((bytes, n), (2 * 3 * tiny_layer.div_ceil(3) * 3 * BYTES, 3));
    for r in j["ranks"].as_array().unwrap() {
        let spans = r["modes"]["overlapped"]["timeline"].as_array().unwrap();
        let at = |name: &str, field: &str| {
            spans
                .iter()
                .find(|s| s["name"] == name)
                .and_then(|s| s[field].as_f64())
                .unwrap_or_else(|| panic!("{name} not in {spans:#?}"))
        };
        // When this rank issued it (its arrival; the span itself starts at
        // the group's last arrival).
        let issued = spans
            .iter()
            .find(|s| s["name"] == "L2.allgather.param.fwd")
            .and_then(|s| s["arrived_s"].as_f64())
            .unwrap_or_else(|| at("L2.allgather.param.fwd", "start_s"));
        assert!(
            issued < at("L1.ffn_down.fwd", "end_s"),
            "rank {}: {spans:#?}",
            r["rank"]
        );
    }
}

//! The CUDA backend on a machine without a GPU: a clear message and exit 2,
//! never a panic; `--backend auto` falls back to the CPU backend.
//!
//! On a machine with a CUDA driver these tests print "skipped: TEST: CUDA
//! driver present …" (the GPU paths are in `cuda_gpu.rs`).

mod common;

use common::{have_mpirun, mpirun, skipping, WORKER};
use std::path::Path;
use std::process::Output;

fn worker(np: usize, args: &[&str]) -> Output {
    mpirun(np, WORKER).args(args).output().expect("mpirun runs")
}

fn skip() -> bool {
    if mfubench_worker::cuda::driver_present() {
        skipping::skip_allowed(
            &skipping::current_test(),
            "CUDA driver present",
            "a GPU machine, not CI's kind; cuda_gpu.rs runs there",
        );
        return true;
    }
    if !have_mpirun() {
        skipping::skip(
            &skipping::current_test(),
            "mpirun not found (ci/install-deps.sh installs openmpi-bin)",
        );
        return true;
    }
    false
}

fn quickstart() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/quickstart.toml")
        .display()
        .to_string()
}

#[test]
fn backend_cuda_without_a_driver_exits_2_naming_the_library() {
    if skip() {
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let o = worker(
        1,
        &[
            "--config",
            &quickstart(),
            "--backend",
            "cuda",
            "--out",
            out_dir.path().to_str().unwrap(),
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(text.contains("libcuda.so.1"), "{text}");
    assert!(text.contains("LD_LIBRARY_PATH"), "{text}");
    assert!(text.contains("--backend cpu"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    // Nothing was written: the run failed before any compute.
    let written: Vec<_> = walk(out_dir.path());
    assert!(
        !written.iter().any(|p| p.ends_with("run.json")),
        "{written:?}"
    );
}

#[test]
fn backend_cuda_on_two_ranks_fails_on_both_without_hanging() {
    if skip() {
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let o = worker(
        2,
        &[
            "--config",
            &quickstart(),
            "--backend",
            "cuda",
            "--out",
            out_dir.path().to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("rank 1"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn backend_auto_without_a_driver_uses_the_cpu() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[model]\npreset = \"tiny\"\n[run]\nbackend = \"auto\"\nlayers = 1\nwarmup = 0\niterations = 1\nmodes = [\"compute\", \"comm\"]\npeak_tflops = 1.0\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = worker(
        1,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--run-id",
            "r",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("backend auto: using the CPU backend"), "{err}");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("r/run.json")).unwrap()).unwrap();
    assert_eq!(run["backend"], "cpu");
    assert_eq!(run["ranks"][0]["device"], "cpu");
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                v.extend(walk(&path));
            } else {
                v.push(path);
            }
        }
    }
    v
}

#[test]
fn accept_on_cuda_without_a_driver_exits_2_with_the_no_gpu_message() {
    if skip() {
        return;
    }
    // One rank and two: every rank ends at the world group's opening
    // (agreed), before any stage, with the no-driver message.
    for np in [1, 2] {
        let out_dir = tempfile::tempdir().unwrap();
        let o = worker(
            np,
            &[
                "--config",
                &quickstart(),
                "--backend",
                "cuda",
                "--out",
                out_dir.path().to_str().unwrap(),
                "--accept",
                "--stages",
                "device,node,link,sweep",
            ],
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(2), "{np} rank(s): {text}");
        assert!(text.contains("no CUDA driver: libcuda.so.1"), "{text}");
        assert!(text.contains("--backend cpu"), "{text}");
        assert!(!text.contains("not supported"), "{text}");
        assert!(!text.contains("panicked"), "{text}");
        if np == 2 {
            assert!(text.contains("rank 1"), "{text}");
        }
        let written: Vec<_> = walk(out_dir.path());
        assert!(
            !written.iter().any(|p| p.ends_with("accept.json")),
            "{written:?}"
        );
    }
}

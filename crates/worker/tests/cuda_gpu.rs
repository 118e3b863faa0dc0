//! GPU tests of the CUDA backend. Compiled everywhere; on a machine without
//! a CUDA driver and GPU each prints "skipped: TEST: no CUDA driver (no GPU;
//! expected in CI)" and passes, with `CI=true` too.
//! Where the libraries live: see `mfubench_worker::cuda::discovery`
//! (pip's nvidia-* wheels are found without any variable).
//!
//! `ci/gpu-check.sh` runs this binary on the GPU machine, carried there by
//! `ci/gpu-prepare.sh` (`cargo test --no-run`): the worker binary it starts
//! is then `MFUBENCH_WORKER_BIN`, since the path cargo compiled in does not
//! exist there.

use std::sync::Arc;
use std::time::Duration;

use mfubench_core::config::{parse_config, Dtype, Mode};
use mfubench_core::plan::StepPlan;
use mfubench_worker::backend::{Backend, Communicator, Compute, StreamId, Streams};
use mfubench_worker::cuda::nccl::{self, NcclComm, NcclLib};
use mfubench_worker::cuda::{self, CudaBackend, DeviceBuf};
use mfubench_worker::schedule;

mod common;

use common::{have_mpirun, mpirun_plain, skipping};

/// Prints a skip note for want of a GPU, visible in every test run; never a
/// failure, even with `CI=true`: CI machines have no GPU.
fn skipped(why: &str) {
    skipping::skip_allowed(&skipping::current_test(), why, "no GPU; expected in CI");
}

const T: Duration = Duration::from_secs(120);

/// The worker binary: `MFUBENCH_WORKER_BIN` when set (a carried test
/// binary), else the one cargo built beside this test.
fn worker_bin() -> std::path::PathBuf {
    std::env::var_os("MFUBENCH_WORKER_BIN")
        .filter(|v| !v.is_empty())
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_mfubench-worker").into())
}

/// The number of visible GPUs, or None after printing why the test skips.
fn gpus() -> Option<usize> {
    if !cuda::driver_present() {
        skipped("no CUDA driver");
        return None;
    }
    match cuda::probe() {
        Ok(n) => Some(n),
        Err(e) => {
            skipped(&format!("no usable GPU: {e}"));
            None
        }
    }
}

/// The tiny model at sequence 128: every path of a step in a few GEMMs
/// small enough for the simulated GPU (crates/simgpu), which runs them on
/// the CPU.
fn plan(dtype: &str) -> (Arc<StepPlan>, Dtype, Dtype) {
    let c = parse_config(
        &format!("[model]\npreset = \"tiny\"\nseq = 128\n[run]\nbackend = \"cuda\"\nlayers = 2\nbucket_mb = 1.0\ndtype = \"{dtype}\"\n"),
        "t",
    )
    .unwrap();
    (
        Arc::new(StepPlan::for_config(&c)),
        c.run.dtype,
        c.run.grad_dtype,
    )
}

fn backend(dtype: &str) -> CudaBackend {
    let (p, d, g) = plan(dtype);
    let mut b = CudaBackend::open(0, p.clone(), d, g, 0, 1).unwrap_or_else(|e| panic!("{e}"));
    let id = b.nccl_unique_id().unwrap();
    b.init_comm(&id).unwrap();
    b.allocate_gemms(&p).unwrap();
    b.allocate_buckets(&p).unwrap();
    b
}

#[test]
fn every_mode_runs_and_the_allreduce_check_passes() {
    if gpus().is_none() {
        return;
    }
    let b = backend("bf16");
    let (p, _, _) = plan("bf16");
    for mode in [
        Mode::Compute,
        Mode::Comm,
        Mode::Serialized,
        Mode::Overlapped,
    ] {
        b.prepare_check().unwrap();
        let t = schedule::run_step(&b, &p, mode, T).unwrap();
        assert!(t.step_s > 0.0, "{mode}");
        if mode.has_comm() {
            assert_eq!(b.count_wrong().unwrap(), 0, "{mode}");
        }
        if mode == Mode::Overlapped {
            for s in t.spans.iter().filter(|s| s.bucket.is_some()) {
                let ready = &t.spans[p.buckets[s.bucket.unwrap()].ready_after];
                assert!(s.start_s >= ready.end_s - 1e-6, "{}", s.name);
            }
        }
    }
    b.prepare_check().unwrap();
    assert!(b.count_wrong().unwrap() > 0, "stale buffers must fail");
    schedule::run_step(&b, &p, Mode::Comm, T).unwrap();
    b.corrupt_one_element().unwrap();
    assert_eq!(b.count_wrong().unwrap(), 1);
    assert_eq!(b.name(), "cuda");
    let info = b.device_info_map();
    for k in [
        "gpu_name",
        "sm_count",
        "compute_capability",
        "cublaslt_version",
        "nccl_version",
    ] {
        assert!(info.contains_key(k), "{k}: {info:?}");
    }
    if let Some(s) = b.telemetry(Mode::Compute, "start") {
        assert!(s.sm_clock_mhz.is_some());
    }
}

#[test]
fn gemm_spot_checks_pass_for_every_dtype() {
    if gpus().is_none() {
        return;
    }
    let b = backend("bf16");
    for (d, r) in b.spot_check() {
        let c = r.unwrap_or_else(|e| panic!("{d}: {e}"));
        assert!(c.passed(), "{d}: {}", c.summary());
    }
}

#[test]
fn other_dtypes_run_a_compute_step() {
    if gpus().is_none() {
        return;
    }
    for d in ["fp16", "tf32", "f32", "fp8"] {
        let (p, dt, g) = plan(d);
        let mut b = match CudaBackend::open(0, p.clone(), dt, g, 0, 1) {
            Ok(b) => b,
            Err(e) if d == "fp8" => {
                println!("fp8 not available here: {e}");
                continue;
            }
            Err(e) => panic!("{d}: {e}"),
        };
        b.allocate_gemms(&p).unwrap();
        let t = schedule::run_step(&b, &p, Mode::Compute, T).unwrap();
        assert!(t.step_s > 0.0, "{d}");
    }
}

#[test]
fn sync_event_times_out_instead_of_hanging() {
    if gpus().is_none() {
        return;
    }
    let b = backend("bf16");
    let (p, _, _) = plan("bf16");
    let e = b.new_event().unwrap();
    // Enough queued work that a real GPU is still busy after 1 µs; the
    // simulated GPU (crates/simgpu) runs GEMMs on the CPU, where 50 rounds
    // of the plan would take minutes and 2 are already slow.
    let simulated = b.info().name.ends_with(mfubench_core::simgpu::NAME_MARK);
    let rounds = if simulated { 2 } else { 50 };
    for _ in 0..rounds {
        for i in 0..p.ops.len() {
            b.gemm(StreamId::Compute, i).unwrap();
        }
    }
    b.record(StreamId::Compute, &e).unwrap();
    // Either it already finished (a very fast GPU) or the poll gives up.
    let _ = b.sync_event(&e, Duration::from_micros(1)).unwrap();
    assert!(b.sync_event(&e, T).unwrap());
}

/// One rank's `NcclComm` on its own, outside any backend: a send/recv
/// with itself inside one NCCL group (NCCL allows that; one node's accept
/// link stage never runs the group bracket of `send_recv`), read back and
/// compared, and a split with `NCCL_SPLIT_NOCOLOR`, which joins no
/// communicator and so gives `Ok(None)`.
#[test]
fn one_rank_nccl_self_send_recv_and_a_nocolor_split() {
    if gpus().is_none() {
        return;
    }
    let ctx = cudarc::driver::safe::CudaContext::new(0).unwrap();
    ctx.bind_to_thread().unwrap();
    let lib = Arc::new(NcclLib::open().unwrap_or_else(|e| panic!("{e}")));
    let id = lib.unique_id().unwrap_or_else(|e| panic!("{e}"));
    let comm = NcclComm::init_rank(lib, 1, id, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((comm.rank(), comm.size()), (0, 1));
    let n = 4099; // not a multiple of anything NCCL would round to
    let vals: Vec<f64> = (0..n).map(|i| (i % 251) as f64 * 0.25 - 31.0).collect();
    let sent = cuda::encode(Dtype::F32, &vals);
    let send = DeviceBuf::new(&ctx, sent.len() as u64).unwrap();
    let recv = DeviceBuf::new(&ctx, sent.len() as u64).unwrap();
    send.upload(0, &sent).unwrap();
    recv.memset(0xff).unwrap();
    let stream = ctx.new_stream().unwrap();
    let f32_ = nccl::nccl_dtype(Dtype::F32).unwrap();
    // SAFETY: both buffers hold `n` f32 elements on this context's device
    // and outlive the stream's work (it is waited for below); the stream is
    // live.
    unsafe { comm.send_recv(0, send.ptr(), recv.ptr(), n, f32_, stream.cu_stream() as _) }
        .unwrap_or_else(|e| panic!("{e}"));
    // Polled, not a blocking synchronize: a hung exchange fails the test.
    let done = stream.record_event(None).unwrap();
    let start = std::time::Instant::now();
    while !done.try_is_complete().unwrap() {
        comm.async_error().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            start.elapsed() < T,
            "the self send/recv did not complete in {T:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut got = vec![0u8; sent.len()];
    recv.download(0, &mut got).unwrap();
    let wrong = got
        .chunks(4)
        .zip(sent.chunks(4))
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        wrong, 0,
        "{wrong} of {n} elements differ after the self send/recv"
    );
    // A peer outside the communicator is refused before NCCL sees it.
    // SAFETY: as above (the call returns before enqueuing anything).
    let e = unsafe { comm.send_recv(1, send.ptr(), recv.ptr(), n, f32_, stream.cu_stream() as _) }
        .unwrap_err();
    assert!(e.to_string().contains("peer 1"), "{e}");
    match comm.split(None, 0) {
        Ok(None) => {}
        Ok(Some(c)) => panic!(
            "a NOCOLOR split gave a communicator of {} rank(s)",
            c.size()
        ),
        Err(e) => panic!("{e}"),
    }
    comm.async_error().unwrap_or_else(|e| panic!("{e}"));
    stream.synchronize().unwrap();
    comm.mark_finished();
}

#[test]
fn one_rank_worker_run_writes_gpu_details() {
    if gpus().is_none() {
        return;
    }
    if !have_mpirun() {
        skipping::skip(
            &skipping::current_test(),
            "mpirun not found (ci/install-deps.sh installs openmpi-bin)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[model]\npreset = \"tiny\"\nseq = 128\n[run]\nbackend = \"cuda\"\nlayers = 2\nwarmup = 1\niterations = 2\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = mpirun_plain(1, worker_bin())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--run-id", "g"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("g/run.json")).unwrap()).unwrap();
    assert_eq!(run["backend"], "cuda");
    assert_eq!(run["ranks"][0]["device"], "GPU 0");
    assert_eq!(run["ranks"][0]["wrong"], 0);
    assert!(
        run["versions"]["cublaslt"].is_string(),
        "{}",
        run["versions"]
    );
    let info = &run["ranks"][0]["device_info"];
    assert!(
        info["gemm_check_bf16"].as_str().unwrap().starts_with("ok"),
        "{info}"
    );
}

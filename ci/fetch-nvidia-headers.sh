#!/usr/bin/env bash
# Fetches NVIDIA's C headers (cuda.h, cublasLt.h, nccl.h, nvml.h and what
# they include) from PyPI's nvidia-* wheels and extracts only the headers to
# target/nvidia-headers/include. crates/simgpu compiles its stand-in
# libraries against them (bindgen), so every exported signature and enum
# value is checked against NVIDIA's. Never committed: fetched here.
#
#   ci/fetch-nvidia-headers.sh            # idempotent; prints the include dir
#
# The wheels are cached in ${MFUBENCH_WHEEL_CACHE:-~/.cache/mfubench/wheels}
# (about 740 MB, 20-30 s to download); the headers take 20 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${MFUBENCH_NVIDIA_HEADERS:-$PWD/target/nvidia-headers}
CACHE=${MFUBENCH_WHEEL_CACHE:-$HOME/.cache/mfubench/wheels}
# One CUDA 12.9 set, the versions the CUDA review checked against.
WHEELS=(
  nvidia-cuda-runtime-cu12==12.9.79   # cuda.h, cuda_runtime.h, cuda_fp16/bf16/fp8.h
  nvidia-cuda-nvcc-cu12==12.9.86      # crt/host_defines.h (included by driver_types.h)
  nvidia-cuda-cccl-cu12==12.9.27      # nv/target (included by cuda_fp16.h)
  nvidia-cublas-cu12==12.9.3.13       # cublasLt.h, cublas_api.h
  nvidia-nccl-cu12==2.32.3            # nccl.h
  nvidia-nvml-dev-cu12==12.9.79       # nvml.h
)
stamp="$DEST/.wheels"
want=$(printf '%s\n' "${WHEELS[@]%%#*}" | tr -d ' ')
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$DEST/include/cuda.h" ]; then
  echo "$DEST/include"; exit 0
fi
command -v python3 >/dev/null || { echo "fetch-nvidia-headers: python3 is needed (pip download)" >&2; exit 2; }
mkdir -p "$CACHE"
for w in "${WHEELS[@]%%#*}"; do
  w=$(echo "$w" | tr -d ' ')
  name=${w%%==*}; ver=${w##*==}
  glob="$(echo "$name" | tr - _)-${ver}-*.whl"
  # shellcheck disable=SC2086
  if ! ls "$CACHE"/$glob >/dev/null 2>&1; then
    echo "fetch-nvidia-headers: downloading $w" >&2
    python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$CACHE" "$w" >&2 ||
      { echo "fetch-nvidia-headers: pip could not download $w (PyPI reachable?)" >&2; exit 2; }
  fi
done
tmp=$(mktemp -d "${DEST%/*}/.nvh.XXXXXX" 2>/dev/null || { mkdir -p "${DEST%/*}"; mktemp -d "${DEST%/*}/.nvh.XXXXXX"; })
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/include"
for w in "${WHEELS[@]%%#*}"; do
  w=$(echo "$w" | tr -d ' ')
  name=${w%%==*}; ver=${w##*==}
  f=$(ls "$CACHE"/"$(echo "$name" | tr - _)-${ver}"-*.whl | head -1)
  python3 - "$f" "$tmp/include" <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        parts = n.split('/')
        # nvidia/<pkg>/include/<path> -> include/<path>
        if len(parts) > 3 and parts[0] == 'nvidia' and parts[2] == 'include' and not n.endswith('/'):
            dst = os.path.join(out, *parts[3:])
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with z.open(n) as src, open(dst, 'wb') as d:
                d.write(src.read())
PY
done
echo "$want" > "$tmp/.wheels"
rm -rf "$DEST"; mv "$tmp" "$DEST"; trap - EXIT
echo "$DEST/include"

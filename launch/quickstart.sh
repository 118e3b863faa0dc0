#!/bin/bash
# mfubench quickstart: install what is missing, build, run the quickstart
# benchmark (tiny model, 2 ranks, CPU backend) and print its summary.
#
#   launch/quickstart.sh [extra `mfubench run` options]
#
# Debian/Ubuntu packages are installed with apt-get only when missing
# (as root, or through sudo). Results go to results/<run id>/.
# Exit code: that of `mfubench run` (0 ok, 1 acceptance failed, 2 config
# error, 3 run failed, 130 interrupted).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'quickstart: %s\n' "$*" >&2; }

# Build and run requirements: mpirun + MPI headers (the worker links Open
# MPI through bindgen, which needs libclang), a C compiler and pkg-config.
# Checked by package, as ci/install-deps.sh does: a file test would be
# fooled by e.g. libclang-cpp.so.14, which is not the libclang bindgen loads.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
need=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in openmpi-bin libopenmpi-dev libclang-dev build-essential pkg-config; do
    installed "$p" || need+=("$p")
  done
else
  command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
  command -v mpicc >/dev/null 2>&1 || need+=(libopenmpi-dev)
  command -v cc >/dev/null 2>&1 || need+=(build-essential)
  command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
  # libclang.so*, not libclang-cpp.so* (a different library).
  ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib*/libclang.so* /usr/lib/*/libclang.so* \
    >/dev/null 2>&1 || need+=(libclang-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing: ${need[*]} — install them with your package manager, then rerun"; exit 2
  fi
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  say "installing ${need[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install Rust from https://rustup.rs, then rerun"; exit 2
fi

say "building (release)"
cargo build --release --bin mfubench --bin mfubench-worker

say "running configs/quickstart.toml with 2 ranks on the CPU backend"
exec target/release/mfubench run configs/quickstart.toml --np 2 --backend cpu "$@"

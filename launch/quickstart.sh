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
need=()
command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
[ -e /usr/include/x86_64-linux-gnu/openmpi/mpi.h ] || [ -e /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h ] \
  || command -v mpicc >/dev/null 2>&1 || need+=(libopenmpi-dev)
ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
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

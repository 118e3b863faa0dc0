#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages mfubench's build and tests need, only
# when one is missing (so a prepared machine pays nothing):
#   build:  libopenmpi-dev openmpi-bin (rsmpi links MPI), libclang-dev (bindgen)
#   tests:  slurm-wlm munge (a real one-node Slurm), iproute2 util-linux
#           (hosts as network namespaces), procps (pgrep/ps in tests),
#           python3 (tests run ci/gpu-check.sh and ci/gpu_compare.py),
#           gcc (tests compile a stand-in libnccl.so.2),
#           prometheus (promtool checks the exported metrics)
set -euo pipefail
PKGS=(libopenmpi-dev openmpi-bin libclang-dev pkg-config slurm-wlm munge iproute2 util-linux procps python3 gcc prometheus)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "ci/install-deps.sh: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages mfubench's build and tests need, only
# when one is missing (so a prepared machine pays nothing):
#   build:  libopenmpi-dev openmpi-bin (rsmpi links MPI), libclang-dev (bindgen)
#   tests:  slurm-wlm munge (a real one-node Slurm), iproute2 util-linux
#           (hosts as network namespaces), procps (pgrep/ps in tests),
#           python3 (tests run ci/gpu-check.sh and ci/gpu_compare.py;
#           ci/check_page.py), gcc (tests compile a stand-in libnccl.so.2),
#           prometheus (promtool checks the exported metrics)
#   simulated GPU (crates/simgpu): NVIDIA's C headers from PyPI's nvidia-*
#           wheels (ci/fetch-nvidia-headers.sh; pip, run at the end)
#   browser check (ci/browser-check.sh): chromium and a font; installed
#           separately and allowed to fail, in which case the check says
#           SKIPPED (Ubuntu ships chromium only as a snap)
set -euo pipefail
PKGS=(libopenmpi-dev openmpi-bin libclang-dev pkg-config slurm-wlm munge iproute2 util-linux procps python3 python3-pip gcc prometheus)
BROWSER_PKGS=(chromium fonts-dejavu-core)
missing_of() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
mapfile -t missing < <(missing_of "${PKGS[@]}")
mapfile -t missing_browser < <(missing_of "${BROWSER_PKGS[@]}")
headers() { "$(dirname "$0")/fetch-nvidia-headers.sh" >/dev/null; }
if [ ${#missing[@]} -eq 0 ] && [ ${#missing_browser[@]} -eq 0 ]; then
  headers
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
if [ ${#missing[@]} -gt 0 ]; then
  echo "ci/install-deps.sh: installing ${missing[*]}"
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ ${#missing_browser[@]} -gt 0 ]; then
  echo "ci/install-deps.sh: installing ${missing_browser[*]} (for ci/browser-check.sh)"
  $SUDO apt-get install -y -q --no-install-recommends "${missing_browser[@]}" ||
    echo "ci/install-deps.sh: WARNING: could not install ${missing_browser[*]}; the browser check will be SKIPPED"
fi
headers

#!/usr/bin/env bash
# The test command of the README: installs what the build needs, then
# formatting, lints and every test of the workspace (real MPI ranks, a real
# one-node Slurm, a 3-node Slurm and hosts as network namespaces (ci/slurm-multi-up.sh,
# ci/netns-up.sh) — the latter need root), then report.html of a real run in
# headless Chromium (ci/browser-check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ci/install-deps.sh
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace --no-fail-fast
echo "== browser check (report.html in headless Chromium, no network)"
ci/browser-check.sh

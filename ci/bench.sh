#!/usr/bin/env bash
# Benchmarks mfubench-worker against what users would pick instead, side by
# side in one run, on the same plan (ci/bench.toml, the quickstart shape):
#  compute mode vs numpy (OpenBLAS) matmuls of the same GEMM list, same
#    threads per rank            — target: mfubench step / numpy step <= 1.0
#  comm mode vs mpi4py Allreduce of the same buckets
#                                — target: mfubench step / mpi4py step <= 1.05
# and, to show what the worker's machinery (stream threads, events, watchdog)
# costs, vs bare loops over the same gemm / rsmpi calls.
# Rounds alternate worker / peers so that machine noise hits all alike; the
# ratios reported are medians over rounds. Usage: ci/bench.sh [ROUNDS] [NP]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-7}
NP=${2:-2}
ci/install-deps.sh
cargo build --release -p mfubench-worker --bins --examples 2>&1 | tail -1
W=target/release/mfubench-worker
B=target/release/examples/bare_loops
CFG=ci/bench.toml
VENV=target/bench-venv
if [ ! -x "$VENV/bin/python" ]; then
  # Debian's python3 needs python3-venv for `python3 -m venv`.
  if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q python3-venv
  fi
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy mpi4py threadpoolctl
fi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$B" plan "$CFG" 0 > "$OUT/plan.json"
ITERS=$(sed -n 's/^iterations *= *//p' "$CFG")
# Threads per rank as the worker picks them: the host's cores / ranks.
THREADS=$(( $(nproc) / NP )); [ "$THREADS" -ge 1 ] || THREADS=1
MPI=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 -np "$NP")
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be set on this machine to work
# around old OpenBLAS bugs; they slow a current numpy, so the peer runs
# without them (the kernel it picks is printed).
PEER=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS"
      "${MPI[@]}" -x OPENBLAS_NUM_THREADS -x OMP_NUM_THREADS "$VENV/bin/python" ci/bench_peers.py)
for r in $(seq 1 "$ROUNDS"); do
  "${MPI[@]}" "$W" --config "$CFG" --out "$OUT" --run-id "round$r" --expect-world "$NP" >/dev/null 2>"$OUT/w$r.err" \
    || { cat "$OUT/w$r.err"; exit 3; }
  "${PEER[@]}" compute "$OUT/plan.json" "$ITERS" > "$OUT/np$r.json"
  "${PEER[@]}" comm "$OUT/plan.json" "$ITERS" > "$OUT/mp$r.json"
  "${MPI[@]}" "$B" gemm "$CFG" "$ITERS" > "$OUT/g$r.json"
  "${MPI[@]}" "$B" allreduce "$CFG" "$ITERS" > "$OUT/a$r.json"
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = []
for r in range(1, rounds + 1):
    s = json.load(open(f"{out}/round{r}/run.json"))["summary"]["step_time_s"]
    npy = json.load(open(f"{out}/np{r}.json"))
    mp = json.load(open(f"{out}/mp{r}.json"))
    g = json.load(open(f"{out}/g{r}.json"))
    a = json.load(open(f"{out}/a{r}.json"))
    rows.append((s["compute"], npy["median_s"], g["median_s"], s["comm"], mp["median_s"], a["median_s"]))
blas = json.load(open(f"{out}/np1.json"))["blas"]
print(f"numpy BLAS: {blas}")
print(f"{'round':>5} | {'mfubench compute':>16} {'numpy':>9} {'ratio':>6} {'bare':>9} | {'mfubench comm':>13} {'mpi4py':>9} {'ratio':>6} {'bare':>9}")
for i, (wc, nc, bc, wa, ma, ba) in enumerate(rows, 1):
    print(f"{i:>5} | {wc*1e3:>13.1f} ms {nc*1e3:>6.1f} ms {wc/nc:>6.3f} {bc*1e3:>6.1f} ms | {wa*1e3:>10.2f} ms {ma*1e3:>6.2f} ms {wa/ma:>6.3f} {ba*1e3:>6.2f} ms")
med = lambda i, j: statistics.median(r[i] / r[j] for r in rows)
print(f"median compute step, mfubench / numpy (OpenBLAS):  {med(0, 1):.3f} (target <= 1.0)")
print(f"median comm step,    mfubench / mpi4py Allreduce:  {med(3, 4):.3f} (target <= 1.05)")
print(f"median compute step, mfubench / bare gemm loop:    {med(0, 2):.3f} (machinery cost)")
print(f"median comm step,    mfubench / bare rsmpi loop:   {med(3, 5):.3f} (machinery cost)")
PY

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
# ratios reported are medians over rounds, each with its distribution-free
# 95 % interval (order statistics; 7 rounds or more give one). The comm
# step is split into the time inside the all-reduce calls and the
# hand-off around them. Usage: ci/bench.sh [ROUNDS] [NP]
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
worker() {
  "${MPI[@]}" "$W" --config "$CFG" --out "$OUT" --run-id "round$1" --expect-world "$NP" >/dev/null 2>"$OUT/w$1.err" \
    || { cat "$OUT/w$1.err"; exit 3; }
}
for r in $(seq 1 "$ROUNDS"); do
  # The worker runs first in odd rounds and last in even ones, so that an
  # effect of the position in the round (caches, clocks) cancels out.
  [ $((r % 2)) -eq 1 ] && worker "$r"
  "${PEER[@]}" compute "$OUT/plan.json" "$ITERS" > "$OUT/np$r.json"
  "${PEER[@]}" comm "$OUT/plan.json" "$ITERS" > "$OUT/mp$r.json"
  "${MPI[@]}" "$B" gemm "$CFG" "$ITERS" > "$OUT/g$r.json"
  "${MPI[@]}" "$B" allreduce "$CFG" "$ITERS" > "$OUT/a$r.json"
  [ $((r % 2)) -eq 0 ] && worker "$r"
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows, split = [], []
for r in range(1, rounds + 1):
    run = json.load(open(f"{out}/round{r}/run.json"))
    s = run["summary"]["step_time_s"]
    # The comm step split: time inside the all-reduce calls (the busiest
    # rank's per iteration) and the rest (the hand-off from the main thread
    # to the comm thread, the gaps between calls, the end event).
    comm = [rk["modes"]["comm"] for rk in run["ranks"]]
    its = range(len(comm[0]["step_time_s"]))
    calls = statistics.median(max(c["allreduce_busy_s"][i] for c in comm) for i in its)
    rest = statistics.median(max(c["step_time_s"][i] - c["allreduce_busy_s"][i] for c in comm) for i in its)
    split.append((calls, rest))
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
def ci(v):
    # Distribution-free 95 % interval of the median: order statistics
    # k and n + 1 - k, the widest k with P(Binomial(n, 1/2) < k) <= 2.5 %.
    v, n = sorted(v), len(v)
    from math import comb
    k, tail = 0, 0.0
    while k < n // 2 and tail + comb(n, k) / 2**n <= 0.025:
        tail += comb(n, k) / 2**n
        k += 1
    return (v[k - 1], v[n - k]) if k > 0 else (v[0], v[-1])
def med(i, j):
    v = [r[i] / r[j] for r in rows]
    lo, hi = ci(v)
    return f"{statistics.median(v):.3f} [{lo:.3f}, {hi:.3f}]"
print(f"median compute step, mfubench / numpy (OpenBLAS):  {med(0, 1)} (target <= 1.0)")
print(f"median comm step,    mfubench / mpi4py Allreduce:  {med(3, 4)} (target <= 1.05)")
print(f"median compute step, mfubench / bare gemm loop:    {med(0, 2)} (machinery cost)")
print(f"median comm step,    mfubench / bare rsmpi loop:   {med(3, 5)} (machinery cost)")
print(f"median comm step,    mpi4py / bare rsmpi loop:     {med(4, 5)} (the same MPI calls in two processes)")
calls = statistics.median(c for c, _ in split)
rest = statistics.median(x for _, x in split)
cr = [c / r[4] for (c, _), r in zip(split, rows)]
calls_ratio = f"{statistics.median(cr):.3f} [{ci(cr)[0]:.3f}, {ci(cr)[1]:.3f}]"
print(f"mfubench comm step split: {calls*1e3:.2f} ms in the all-reduce calls + {rest*1e3:.3f} ms hand-off and gaps (medians over rounds)")
print(f"median all-reduce calls alone, mfubench / mpi4py:  {calls_ratio}")
PY

# The report at scale (issue 24): a generated run of 16,384 ranks (2,048
# hosts × 8; targets < 2 s, < 1 GiB) and of 131,072 ranks (16,384 hosts ×
# 8; targets < 10 s, < 2 GiB, report.html < 5 MB), written per node as the
# worker writes a run above 16 ranks. MFUBENCH_BENCH_SCALE=0 leaves them out
# (the larger one needs several GiB and 1.7 GB of disk to generate).
if [ "${MFUBENCH_BENCH_SCALE:-1}" != 0 ]; then
  echo "== report of a generated 16,384-rank run"
  cargo bench -q -p mfubench-report --bench scale 2>&1 | grep -v '^$' || true
  echo "== report of a generated 131,072-rank run"
  MFUBENCH_SCALE_HOSTS=16384 MFUBENCH_MAX_RUN_JSON_MB=65536 \
    cargo bench -q -p mfubench-report --bench scale 2>&1 | grep -v '^$' || true
fi

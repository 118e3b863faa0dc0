#!/usr/bin/env bash
# Benchmarks the worker against bare loops, side by side in one run:
#  (a) compute-mode GEMM rate of mfubench-worker vs the same gemm calls in a
#      bare loop on the same shapes (target ratio >= 0.95);
#  (b) comm-mode all-reduce busbw vs a bare rsmpi all-reduce loop on the same
#      bucket sizes (target ratio >= 0.95).
# Rounds alternate worker / bare so that machine noise hits both; the ratios
# reported are medians over rounds. Usage: ci/bench.sh [ROUNDS] [NP]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
NP=${2:-2}
ci/install-deps.sh
cargo build --release -p mfubench-worker --bins --examples 2>&1 | tail -1
W=target/release/mfubench-worker
B=target/release/examples/bare_loops
CFG=ci/bench.toml
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
MPI=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 -np "$NP")
for r in $(seq 1 "$ROUNDS"); do
  "${MPI[@]}" "$W" --config "$CFG" --out "$OUT" --run-id "round$r" --expect-world "$NP" >/dev/null 2>"$OUT/w$r.err" \
    || { cat "$OUT/w$r.err"; exit 3; }
  "${MPI[@]}" "$B" gemm "$CFG" 10 > "$OUT/g$r.json"
  "${MPI[@]}" "$B" allreduce "$CFG" 10 > "$OUT/a$r.json"
done
python3 - "$OUT" "$ROUNDS" "$NP" <<'PY'
import json, statistics, sys
out, rounds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = []
for r in range(1, rounds + 1):
    run = json.load(open(f"{out}/round{r}/run.json"))
    s = run["summary"]
    worker_tflops = s["tflops_per_device"]["compute"]
    worker_busbw = s["allreduce"]["busbw_gbps"]
    g = json.loads(open(f"{out}/g{r}.json").read())
    a = json.loads(open(f"{out}/a{r}.json").read())
    bare_busbw = a["algbw_gbps"] * 2 * (n - 1) / n
    rows.append((worker_tflops, g["tflops"], worker_tflops / g["tflops"], worker_busbw, bare_busbw, worker_busbw / bare_busbw))
print(f"{'round':>5} {'worker TF/s':>12} {'bare TF/s':>10} {'ratio':>6} {'worker busbw':>13} {'bare busbw':>11} {'ratio':>6}")
for i, r in enumerate(rows, 1):
    print(f"{i:>5} {r[0]*1e3:>10.1f}GF {r[1]*1e3:>8.1f}GF {r[2]:>6.3f} {r[3]:>11.2f}GB {r[4]:>9.2f}GB {r[5]:>6.3f}")
gemm_ratio = statistics.median(r[2] for r in rows)
ar_ratio = statistics.median(r[5] for r in rows)
print(f"median ratio (a) compute-mode GEMM rate / bare gemm loop: {gemm_ratio:.3f} (target >= 0.95)")
print(f"median ratio (b) comm-mode busbw / bare rsmpi loop:       {ar_ratio:.3f} (target >= 0.95)")
PY

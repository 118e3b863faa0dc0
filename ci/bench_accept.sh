#!/usr/bin/env bash
# Benchmarks of `mfubench accept` against the tools people use instead, on
# the same machine, alternating, ROUNDS times (median ratios):
#  (a) link stage vs iperf3 between the same network-namespace hosts
#      (ci/netns-up.sh), bandwidth-bound size (64 MiB each way). The link
#      stage exchanges both ways at once (MPI_Sendrecv), so its peer is
#      `iperf3 --bidir` (per-direction rate); one-way iperf3 is shown too.
#      Target: mfubench / iperf3 --bidir >= 0.9.
#  (b) sweep stage vs mpi4py Allreduce at the same sizes and iterations
#      (ci/bench_peers.py sweep), 2 ranks on this host.
#      Target: mpi4py time / mfubench time >= 0.95 at the large sizes.
#   ci/bench_accept.sh [ROUNDS]      (root: network namespaces; release build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
cargo build --release -q -p mfubench-launcher -p mfubench-worker
if ! command -v iperf3 >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q iperf3
fi
VENV=target/bench-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import mpi4py, numpy' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy mpi4py threadpoolctl
fi
W=$(mktemp -d)
trap 'ci/netns-down.sh >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
# Other users of the fake hosts (the launcher tests) take the same lock.
exec 9>"${TMPDIR:-/tmp}/mfubench-launcher-tests.lock"
flock 9
cat > "$W/accept.toml" <<'TOML'
[model]
preset = "tiny"
[run]
backend = "cpu"
[accept]
iterations = 10
link_bytes = 67108864
sweep_begin = 1024
sweep_end = 67108864
sweep_factor = 8
sweep_collectives = ["all_reduce"]
TOML
ci/netns-down.sh >/dev/null 2>&1 || true
ci/netns-up.sh 3 >/dev/null
mapfile -t NSARGS < <(ci/mpirun-ns.sh --print-args)
MFU=target/release/mfubench
for r in $(seq 1 "$ROUNDS"); do
  # Verdicts do not matter here (a busy machine can fail a rule): the numbers do.
  "$MFU" accept "$W/accept.toml" --stages link --np 3 --hosts hostA:1,hostB:1,hostC:1 \
    --out "$W/res" --run-id "link$r" --allow-inconclusive -- "${NSARGS[@]}" >/dev/null || true
  ip netns exec hostA iperf3 -s -1 -B 10.77.0.1 >/dev/null 2>&1 & sleep 0.5
  ip netns exec hostB iperf3 -c 10.77.0.1 -t 5 -J > "$W/uni$r.json"; wait
  ip netns exec hostA iperf3 -s -1 -B 10.77.0.1 >/dev/null 2>&1 & sleep 0.5
  ip netns exec hostB iperf3 -c 10.77.0.1 -t 5 --bidir -J > "$W/bidir$r.json"; wait
  # Verdicts do not matter here (a busy machine can fail a rule): the numbers do.
  "$MFU" accept "$W/accept.toml" --stages sweep --np 2 --out "$W/res" --run-id "sweep$r" \
    --allow-inconclusive >/dev/null || true
  python3 -c "import json,sys; print(json.dumps([r['size_bytes'] for r in json.load(open(sys.argv[1]))['sweep']['tables'][0]['rows']]))" \
    "$W/res/sweep$r/accept.json" > "$W/sizes.json"
  mpirun --allow-run-as-root --bind-to none -np 2 "$VENV/bin/python" ci/bench_peers.py sweep "$W/sizes.json" 10 \
    > "$W/mpi4py$r.jsonl"
done
python3 - "$W" "$ROUNDS" <<'PY'
import json, statistics, sys
w, rounds = sys.argv[1], int(sys.argv[2])
med = statistics.median
print(f"{'round':>5} | {'link A-B GB/s':>13} {'iperf3 bidir':>12} {'ratio':>6} {'iperf3 1-way':>12}")
link = []
for r in range(1, rounds + 1):
    a = json.load(open(f"{w}/res/link{r}/accept.json"))
    ab = next(p["gbps"] for p in a["link"]["pairs"] if (p["a"], p["b"]) == (0, 1))
    uni = json.load(open(f"{w}/uni{r}.json"))["end"]["sum_received"]["bits_per_second"] / 8e9
    bi = json.load(open(f"{w}/bidir{r}.json"))["end"]
    bidir = (bi["sum_received"]["bits_per_second"] + bi["sum_received_bidir_reverse"]["bits_per_second"]) / 2 / 8e9
    link.append(ab / bidir)
    print(f"{r:>5} | {ab:>13.3f} {bidir:>12.3f} {ab / bidir:>6.3f} {uni:>12.3f}")
print(f"median link stage / iperf3 --bidir (per direction): {med(link):.3f} (target >= 0.9)")
rows = {}
for r in range(1, rounds + 1):
    a = json.load(open(f"{w}/res/sweep{r}/accept.json"))
    peer = {j["size_bytes"]: j["median_s"] for j in map(json.loads, open(f"{w}/mpi4py{r}.jsonl"))}
    # The all-reduce table (the config sweeps only it): mpi4py's Allreduce.
    for row in a["sweep"]["tables"][0]["rows"]:
        rows.setdefault(row["size_bytes"], []).append((row["time_us"] / 1e6, peer[row["size_bytes"]]))
print(f"{'size':>10} | {'mfubench us':>11} {'mpi4py us':>10} {'mpi4py/mfubench':>15}")
for size, v in sorted(rows.items()):
    m, p = med([x[0] for x in v]), med([x[1] for x in v])
    print(f"{size:>10} | {m * 1e6:>11.1f} {p * 1e6:>10.1f} {med([b / a for a, b in v]):>15.3f}")
big = max(rows)
print(f"largest size, mpi4py time / mfubench time: {med([b / a for a, b in rows[big]]):.3f} (target >= 0.95)")
PY

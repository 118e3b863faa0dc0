"""The tools users would pick instead of mfubench, on mfubench's own plan.

Run under mpirun, one process per rank, like the worker:
    bench_peers.py compute PLAN_JSON ITERATIONS   # numpy (OpenBLAS) matmuls
    bench_peers.py comm    PLAN_JSON ITERATIONS   # mpi4py Allreduce per bucket
    bench_peers.py sweep   SIZES_JSON ITERATIONS  # mpi4py Allreduce per size
                                                  # (vs `mfubench accept`'s sweep)

PLAN_JSON comes from `bare_loops plan CONFIG 0`: the GEMMs of one training
step (m, n, k, batch, transposes) and the gradient bucket sizes. Each
iteration starts after a barrier, as the worker's steps do; an iteration's
time is the max over ranks (the cluster step); rank 0 prints one JSON line
with the median over iterations. f32, data never all zero.
"""
import json
import sys
import time

import numpy as np
from mpi4py import MPI


def sweep(sizes_path, iters):
    """The accept sweep's measurement: per size one untimed Allreduce, then
    ITERATIONS timed ones, each after a barrier; an iteration's time is the
    max over ranks; rank 0 prints one JSON line per size (median)."""
    comm = MPI.COMM_WORLD
    for size in json.load(open(sizes_path)):
        n = max(size // 4, 1)
        send = np.ones(n, dtype=np.float32)
        recv = np.empty(n, dtype=np.float32)
        comm.Allreduce(send, recv, op=MPI.SUM)
        times = []
        for _ in range(iters):
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(send, recv, op=MPI.SUM)
            times.append(time.perf_counter() - t0)
        cluster = np.empty(len(times))
        comm.Allreduce(np.array(times), cluster, op=MPI.MAX)
        if comm.rank == 0:
            print(json.dumps({"mode": "sweep", "size_bytes": size, "median_s": float(np.median(cluster))}))


def main():
    mode, plan_path, iters = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "sweep":
        return sweep(plan_path, iters)
    plan = json.load(open(plan_path))
    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(1234 + comm.rank)

    def filled(*shape):
        # Uniform in ±[1/64, 1]: never zero.
        x = rng.uniform(1.0 / 64, 1.0, size=shape).astype(np.float32)
        x *= np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)
        return x

    if mode == "compute":
        # Operands per op, stored as the op reads them (a transposed operand
        # is stored transposed and passed as a view, as a framework would).
        ops = []
        for o in plan["ops"]:
            b, m, n, k = o["batch"], o["m"], o["n"], o["k"]
            a = filled(b, k, m).transpose(0, 2, 1) if o["trans_a"] else filled(b, m, k)
            w = filled(b, n, k).transpose(0, 2, 1) if o["trans_b"] else filled(b, k, n)
            c = np.empty((b, m, n), dtype=np.float32)
            ops.append((a, w, c))

        def step():
            for a, w, c in ops:
                np.matmul(a, w, out=c)
    elif mode == "comm":
        bufs = [(filled(e), np.empty(e, dtype=np.float32)) for e in plan["buckets"]]

        def step():
            for s, r in bufs:
                comm.Allreduce(s, r, op=MPI.SUM)
    else:
        sys.exit(f"unknown mode {mode}: use compute, comm or sweep")

    times = []
    for it in range(plan["warmup"] + iters):
        comm.Barrier()
        t0 = time.perf_counter()
        step()
        t = time.perf_counter() - t0
        if it >= plan["warmup"]:
            times.append(t)
    cluster = np.empty(len(times))
    comm.Allreduce(np.array(times), cluster, op=MPI.MAX)
    if comm.rank == 0:
        info = {}
        if mode == "compute":
            from threadpoolctl import threadpool_info
            blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
            if blas:
                info = {k: blas[0].get(k) for k in ("internal_api", "architecture", "num_threads", "version")}
        print(json.dumps({"mode": mode, "median_s": float(np.median(cluster)), "blas": info}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Part of ci/gpu-check.sh: compares the worker's GEMM rates with PyTorch.

usage: gpu_compare.py [--sim] [--embed RUN_ID]... RESULTS_DIR OUT_JSON

For each run under RESULTS_DIR (llama3-8b, llama3-8b-fp8), rebuilds the
GEMM shapes of the step plan from the config in run.json (the rules of
crates/core/src/plan.rs; the FLOP total is checked against run.json), takes
our per-op medians from compute mode, times the same shapes (same transposes,
same dtype) with torch.matmul (torch._scaled_mm for fp8, 2-D shapes only),
and prints one table per run: per shape our TFLOP/s, PyTorch's and the
ratio; then MFU per mode and the check results. Exit 1 when a check failed.

Robust by design (the GPU session it runs in is short and scarce): each
shape's tensors are made inside its own try, so an out-of-memory or an
unsupported dtype costs that shape's PyTorch column, not the comparison; a
run whose report fails is named and the others still print; without
PyTorch the table still shows our figures.

--sim (`ci/gpu-check.sh --sim`, the simulated GPU of crates/simgpu): PyTorch
is not imported (there is no GPU to time it on), the torch columns stay
empty, and every table is labelled SIMULATED (so is a run whose run.json
says its device was simulated, with or without the flag): its timings are
CPU timings.

--embed RUN_ID: OUT_JSON also holds that run's whole run.json (under
RUN_ID.run), for a run whose run.json does not come back as a file of its
own (the GPU machine returns at most 8).
"""
import itertools
import json
import os
import statistics
import sys
import traceback

SIM = "--sim" in sys.argv[1:]
if SIM:
    torch = None
    print("PyTorch comparison: SKIPPED (simulated: no PyTorch comparison)")
else:
    try:
        import torch
        print(f"torch {torch.__version__}, CUDA {torch.version.cuda}")
    except Exception as e:  # no PyTorch: our figures still print
        torch = None
        print(f"PyTorch unavailable ({type(e).__name__}: {e}): the torch columns stay empty")

TARGET_RATIO = 0.97
TARGET_MFU = 0.65


def plan_ops(cfg):
    """(label, m, n, k, batch, trans_a, trans_b) of every GEMM, plan order."""
    m, r = cfg["model"], cfg["run"]
    b, s, d = r["micro_batch"], m["seq"], m["hidden"]
    t, hd = b * s, d // m["heads"]
    qkv = d + 2 * m["kv_heads"] * hd
    ab = b * m["heads"]
    lin = [("qkv", d, qkv), ("out_proj", d, d), ("ffn_up", d, m["ffn"])]
    if m["gated_mlp"]:
        lin.append(("ffn_gate", d, m["ffn"]))
    lin.append(("ffn_down", m["ffn"], d))
    ops = []
    layers = r["layers"]

    def fwd(l, p):
        for kind, k, n in lin:
            ops.append((f"L{l}.{kind}.{p}", t, n, k, 1, False, False))
            if kind == "qkv":
                ops.append((f"L{l}.attn_scores.{p}", s, s, hd, ab, False, True))
                ops.append((f"L{l}.attn_values.{p}", s, hd, s, ab, False, False))

    for l in range(layers):
        fwd(l, "fwd")
    if m.get("lm_head"):
        # The plan's share of the head for `layers` of the model's blocks
        # (plan.rs, lm_head_columns): vocab · layers / model layers, rounded
        # up, at least 1; the whole vocabulary at full depth.
        v = m["vocab"]
        if layers < m["layers"]:
            v = max(1, -(-m["vocab"] * layers // m["layers"]))
        ops.append(("lm_head.fwd", t, v, d, 1, False, False))
        ops.append(("lm_head.dgrad", t, d, v, 1, False, True))
        ops.append(("lm_head.wgrad", d, v, t, 1, True, False))
    for l in reversed(range(layers)):
        if r.get("recompute"):
            fwd(l, "recompute")
        for kind, k, n in reversed(lin):
            ops.append((f"L{l}.{kind}.dgrad", t, k, n, 1, False, True))
            ops.append((f"L{l}.{kind}.wgrad", k, n, t, 1, True, False))
            if kind == "out_proj":
                ops.append((f"L{l}.attn_values.dgrad", s, s, hd, ab, False, True))
                ops.append((f"L{l}.attn_values.wgrad", s, hd, s, ab, True, False))
                ops.append((f"L{l}.attn_scores.dgrad", s, hd, s, ab, False, False))
                ops.append((f"L{l}.attn_scores.wgrad", s, hd, s, ab, True, False))
    return ops


def l2_bytes():
    """The GPU's L2 size (50 MiB when PyTorch cannot say)."""
    try:
        return int(torch.cuda.get_device_properties(0).L2_cache_size)
    except Exception:
        return 50 << 20


def rotating(make_pair):
    """Enough operand pairs from make_pair() to span twice the L2, cycled:
    each call reads operands no recent call left in L2, as the worker's
    rotating offsets do (crates/worker/src/cuda/gemm.rs, rotation_bytes)."""
    first = make_pair()
    per = sum(t.numel() * t.element_size() for t in first)
    copies = max(1, min(64, -(-2 * l2_bytes() // max(per, 1))))
    pairs = [first] + [make_pair() for _ in range(copies - 1)]
    it = itertools.cycle(pairs)
    return lambda: next(it)


def torch_matmul(m, n, k, batch, ta, tb, dtype):
    """A function running PyTorch's product of the shape on rotating
    operands, or None when PyTorch has no such kernel (fp8 batches).
    Allocates the operands."""
    dev = "cuda"
    if dtype == "fp8":
        if batch != 1 or not hasattr(torch, "_scaled_mm"):
            return None
        # _scaled_mm wants A row-major and B column-major (TN), as we run it.
        one = torch.ones((), device=dev)
        pair = rotating(lambda: (torch.randn(m, k, device=dev).to(torch.float8_e4m3fn),
                                 torch.randn(n, k, device=dev).to(torch.float8_e4m3fn)))

        def fp8():
            a, bt = pair()
            return torch._scaled_mm(a, bt.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        return fp8
    td = {"bf16": torch.bfloat16, "fp16": torch.float16, "tf32": torch.float32,
          "f32": torch.float32}[dtype]
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    shape = lambda r, c: (batch, r, c) if batch > 1 else (r, c)

    def make():
        a = torch.randn(*shape(k, m) if ta else shape(m, k), device=dev, dtype=td)
        b = torch.randn(*shape(n, k) if tb else shape(k, n), device=dev, dtype=td)
        return (a.transpose(-1, -2) if ta else a, b.transpose(-1, -2) if tb else b)
    pair = rotating(make)
    return lambda: torch.matmul(*pair())


def torch_time(m, n, k, batch, ta, tb, dtype, reps=10):
    """Median seconds of PyTorch's product of the shape, or None (no
    PyTorch, no kernel, or any error, e.g. out of memory: printed)."""
    if torch is None:
        return None
    f = None
    try:
        # Allocation inside the try: an OOM or an unsupported dtype costs
        # this shape only.
        f = torch_matmul(m, n, k, batch, ta, tb, dtype)
        if f is None:
            return None
        for _ in range(3):
            f()
        times = []
        for _ in range(reps):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            f()
            e1.record()
            e1.synchronize()
            times.append(e0.elapsed_time(e1) / 1e3)
        return statistics.median(times)
    except Exception as e:  # out of memory, an unsupported shape or dtype
        print(f"  torch: {m}x{n}x{k} b{batch} {dtype}: {type(e).__name__}: {str(e)[:200]}")
        return None
    finally:
        f = None  # frees the operands the closure holds
        try:
            torch.cuda.empty_cache()
        except Exception:
            pass


def pct(x):
    return "-" if x is None else f"{100 * x:.1f} %"


def report(run, out):
    cfg = run["config"]
    dtype = cfg["run"]["dtype"]
    ops = plan_ops(cfg)
    flops = sum(2 * m * n * k * b for lbl, m, n, k, b, _, _ in ops if ".recompute" not in lbl)
    want = run["plan"]["flops"]["model"]
    ok_plan = abs(flops - want) <= 1e-9 * want
    rank = run["ranks"][0]
    med = {o["name"]: o["median_s"] for o in rank["modes"].get("compute", {}).get("ops", [])}
    groups = {}
    for label, m, n, k, b, ta, tb in ops:
        groups.setdefault((m, n, k, b, ta, tb), []).append(label)
    simulated = SIM or rank.get("device_info", {}).get("simulated") == "true"
    label = "SIMULATED " if simulated else ""
    print(f"\n### {label}{run['run_id']}: {rank['device_name']} ({dtype}), plan FLOPs "
          f"{'match' if ok_plan else 'MISMATCH'} ({flops / 1e12:.2f} vs {want / 1e12:.2f} TFLOP)")
    hdr = f"{'shape (M x N x K, batch, op)':44} {'GFLOP':>8} {'ours TF/s':>10} {'torch TF/s':>10} {'ratio':>6}  example op"
    print(hdr)
    print("-" * len(hdr))
    rows, below = [], 0
    for (m, n, k, b, ta, tb), labels in sorted(groups.items(), key=lambda kv: -kv[0][0] * kv[0][1] * kv[0][2] * kv[0][3]):
        gf = 2 * m * n * k * b / 1e9
        ours_t = [med[l] for l in labels if l in med]
        ours = gf / 1e3 / statistics.median(ours_t) if ours_t else None
        tt = torch_time(m, n, k, b, ta, tb, dtype)
        theirs = gf / 1e3 / tt if tt else None
        ratio = ours / theirs if ours and theirs else None
        flag = ""
        if ratio is not None and gf >= 1.0 and ratio < TARGET_RATIO:
            flag, below = " <", below + 1
        op = ("T" if ta else "N") + ("T" if tb else "N")
        shape = f"{m} x {n} x {k}, {b}, {op}"
        fmt = lambda x, p=1: "-" if x is None else f"{x:.{p}f}"
        # The simulated GPU's CPU rates are hundredths of a TFLOP/s.
        print(f"{shape:44} {gf:8.1f} {fmt(ours, 4 if simulated else 1):>10} {fmt(theirs):>10} "
              f"{fmt(ratio, 3):>6}{flag:2} {labels[0]}")
        rows.append(dict(m=m, n=n, k=k, batch=b, trans_a=ta, trans_b=tb, gflop=gf,
                         ours_tflops=ours, torch_tflops=theirs, ratio=ratio, ops=labels))
    s = run["summary"]
    print(f"shapes >= 1 GFLOP below ratio {TARGET_RATIO}: {below}")
    print(f"peak {s['peak_tflops']} TFLOP/s ({s.get('peak_source')}); MFU: "
          + ", ".join(f"{k} {pct(v)}" for k, v in s["mfu"].items()))
    print("TFLOP/s per GPU: " + ", ".join(
        f"{k} {v:.1f}" for k, v in s["tflops_per_device"].items() if v is not None))
    for k in ("exposed_comm_fraction", "hidden_fraction", "overlap_speedup"):
        if s.get(k) is not None:
            print(f"{k}: {s[k]:.3f}")
    info = rank.get("device_info", {})
    checks = {k: v for k, v in info.items() if k.startswith("gemm_check_")}
    for k, v in sorted(checks.items()):
        print(f"{k}: {v}")
    print(f"all-reduce check: wrong = {s.get('wrong', rank.get('wrong'))}")
    for t in rank.get("telemetry", [])[:8]:
        print(f"telemetry {t['mode']} {t['at']}: SM {t.get('sm_clock_mhz')} MHz, "
              f"{t.get('temperature_c')} C, {t.get('power_w')} W, {t.get('throttle_reasons', [])}")
    vers = run.get("versions", {})
    print("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(vers.items())))
    passed = ok_plan and rank.get("wrong", 1) == 0 and all(v.startswith("ok") for v in checks.values())
    mfu_c = s["mfu"].get("compute")
    if simulated:
        print("SIMULATED: timings, TFLOP/s and MFU are CPU timings of the simulated GPU")
    elif dtype == "bf16" and mfu_c is not None and mfu_c < TARGET_MFU:
        print(f"note: compute-mode MFU {pct(mfu_c)} is below the {pct(TARGET_MFU)} target")
    out[run["run_id"]] = dict(shapes=rows, mfu=s["mfu"], checks=checks, passed=passed,
                              below_ratio=below, versions=vers, simulated=simulated)
    return passed


def main():
    args, embed = [], set()
    it = iter(sys.argv[1:])
    for a in it:
        if a == "--embed":
            embed.add(next(it, ""))
        elif a != "--sim":
            args.append(a)
    if len(args) != 2:
        print("usage: gpu_compare.py [--sim] [--embed RUN_ID]... RESULTS_DIR OUT_JSON")
        return 2
    results, out_json = args
    out, ok = {}, True
    names = sorted(os.listdir(results)) if os.path.isdir(results) else []
    if not names:
        print("no run.json under", results)
        return 1
    for name in names:
        p = os.path.join(results, name, "run.json")
        if not os.path.exists(p):
            continue
        try:
            with open(p) as f:
                run = json.load(f)
            ok &= report(run, out)
            if name in embed and run.get("run_id") in out:
                out[run["run_id"]]["run"] = run
        except Exception:  # one broken run must not hide the others
            print(f"\n### {name}: the report failed:")
            traceback.print_exc(file=sys.stdout)
            out[name] = dict(passed=False, error=traceback.format_exc(limit=3))
            ok = False
    if not out:
        print("no run.json under", results)
        ok = False
    with open(out_json, "w") as f:
        json.dump(out, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

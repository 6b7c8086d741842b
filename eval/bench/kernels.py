"""Benchmark the vidsieve kernels: Triton vs the PyTorch reference vs torch.compile(reference).

Shapes (``--shapes``):

* ``llava-ov``: KTV scores on 64 frames x 729 tokens x 1152 (SigLIP grid, LLaVA-OneVision);
  attention received for SigLIP (64 frames, 16 heads, 729 tokens, head dim 72); AOT Sinkhorn
  (32 frames, 729 tokens x 108 anchors, eps 0.1, both stop rules).
* ``qwen``: Qwen2.5-VL-like: KTV scores on 32 frame pairs x 256 tokens x 3584 (LLM width);
  ViT full-attention layer, 32 frame pairs x 16 heads x 1024 patches x 80; Sinkhorn 64 x 256 x 64.
* ``ktv``: released KTV setting, 6 frames x 576 x 1024 (CLIP-L/336 penultimate layer).

Times are medians with 20th/80th percentiles over ``--repeats`` calls (after warm-up; CUDA
events around each call on GPU, ``perf_counter`` on CPU), measured in one run for every
backend. Achieved bandwidth uses the *minimal* bytes each op must move (stated per row in the
CSV column ``bytes_formula``): inputs read once, outputs written once. The KTV kernel reads
``x`` twice and Sinkhorn re-reads the cost every iteration, so their ceiling against this
count is below 100%. ``pct_of_peak`` is against the device's nominal memory bandwidth on GPU
(table by device name, or ``--peak-gbs``); on CPU against a copy bandwidth measured in the
same run (``peak_source`` says which). ``min_ms`` is kept because on a shared CPU the
median includes time the process was descheduled.

On a machine without CUDA only the reference and torch.compile(reference) run (the Triton
kernels need a GPU; the CPU interpreter is a test tool, not a backend) and the output says so.
Usage::

    python -m vidsieve.eval.bench.kernels --out runs/bench/kernels
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from vidsieve.kernels.attention_received import attention_received
from vidsieve.kernels.attention_received.reference import attention_received_ref
from vidsieve.kernels.sinkhorn import sinkhorn
from vidsieve.kernels.sinkhorn.reference import prepare_marginals, sinkhorn_ref
from vidsieve.kernels.token_scores import ktv_token_scores
from vidsieve.kernels.token_scores.reference import ktv_token_scores_ref

from vidsieve.devices import resolve_device
from vidsieve.versions import git_commit, machine, package_versions

from ._csv import write_csv

#: Nominal HBM/GDDR bandwidth in GB/s by substring of the CUDA device name (first match wins).
PEAK_GBS = (
    ("H200", 4800.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0),
    ("L40S", 864.0),
    ("L4", 300.0),
    ("A10G", 600.0),
    ("RTX 4090", 1008.0),
    ("RTX 3090", 936.0),
    ("V100", 900.0),
    ("T4", 320.0),
)


@dataclass
class Case:
    """One op at one shape: callables per backend on prepared inputs, and the minimal bytes."""

    op: str
    shape_set: str
    shape: str
    dtype: torch.dtype
    run: dict[str, Callable[[], Any]]
    nbytes: int
    bytes_formula: str
    flops: float = 0.0


def _ktv_case(shape_set: str, f: int, length: int, d: int, dev: str, dtype: torch.dtype) -> Case:
    x = torch.randn(f, length, d, device=dev).to(dtype)
    imp = torch.rand(f, length, device=dev)
    ref = ktv_token_scores_ref
    e = x.element_size()
    return Case(
        op="ktv_token_scores",
        shape_set=shape_set,
        shape=f"F={f} L={length} D={d}",
        dtype=dtype,
        run={
            "torch": lambda: ref(x, imp, 0.2),
            "compile": lambda: _compiled(ref)(x, imp, 0.2),
            "triton": lambda: ktv_token_scores(x, imp, 0.2, backend="triton"),
        },
        nbytes=f * length * d * e + f * length * 4 * 2,
        bytes_formula=f"F*L*D*{e} (x) + F*L*4 (importance) + F*L*4 (scores)",
    )


def _attn_case(
    shape_set: str, b: int, h: int, length: int, d: int, dev: str, dtype: torch.dtype
) -> Case:
    q = torch.randn(b, h, length, d, device=dev).to(dtype)
    k = torch.randn(b, h, length, d, device=dev).to(dtype)
    scale = 1 / math.sqrt(d)
    ref = attention_received_ref
    e = q.element_size()
    return Case(
        op="attention_received",
        shape_set=shape_set,
        shape=f"B={b} H={h} L={length} d={d}",
        dtype=dtype,
        run={
            "torch": lambda: ref(q, k, scale),
            "compile": lambda: _compiled(ref)(q, k, scale),
            "triton": lambda: attention_received(q, k, backend="triton"),
        },
        nbytes=2 * b * h * length * d * e + b * length * 4,
        bytes_formula=f"2*B*H*L*d*{e} (q, k) + B*L*4 (out)",
        flops=2 * 2.0 * b * h * length * length * d,  # two QK^T passes (kernel); reference: one
    )


def _sinkhorn_case(
    shape_set: str, b: int, n: int, m: int, stop: str, dev: str, dtype: torch.dtype
) -> Case:
    cost = (torch.rand(b, n, m, device=dev) * 2).to(dtype)
    log_a, log_b = prepare_marginals(cost, None, None, None, None, torch.float32)
    ref = sinkhorn_ref
    tol = 1e-2 if stop == "released" else 1e-3
    e = cost.element_size()
    return Case(
        op=f"sinkhorn[{stop}]",
        shape_set=shape_set,
        shape=f"B={b} N={n} M={m} eps=0.1 tol={tol:g} max_iter=100",
        dtype=dtype,
        run={
            "torch": lambda: ref(cost, log_a, log_b, 0.1, 100, tol, stop).plan,
            "compile": lambda: _compiled(ref)(cost, log_a, log_b, 0.1, 100, tol, stop).plan,
            "triton": lambda: sinkhorn(cost, stop=stop, tol=tol, backend="triton"),
        },
        nbytes=b * n * m * (e + 4),
        bytes_formula=f"B*N*M*{e} (cost, once) + B*N*M*4 (plan); iterations re-read the cost",
    )


_COMPILED: dict[Callable[..., Any], Callable[..., Any]] = {}


def _compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, dynamic=False)
    return _COMPILED[fn]


def make_cases(shape_sets: list[str], dev: str, dtype: torch.dtype, small: bool) -> list[Case]:
    """small: shrink the batch dims (frames/heads) for a quick CPU run; shapes per frame stay."""

    def s(v: int) -> int:
        return max(1, v // 8) if small else v

    cases: list[Case] = []
    if "llava-ov" in shape_sets:
        cases.append(_ktv_case("llava-ov", s(64), 729, 1152, dev, dtype))
        cases.append(_attn_case("llava-ov", s(64), 16, 729, 72, dev, dtype))
        for stop in ("per_problem", "released"):
            cases.append(_sinkhorn_case("llava-ov", s(32), 729, 108, stop, dev, torch.float32))
    if "qwen" in shape_sets:
        cases.append(_ktv_case("qwen", s(32), 256, 3584, dev, dtype))
        cases.append(_attn_case("qwen", s(32), 16, 1024, 80, dev, dtype))
        cases.append(_sinkhorn_case("qwen", s(64), 256, 64, "per_problem", dev, torch.float32))
    if "ktv" in shape_sets:
        cases.append(_ktv_case("ktv", 6, 576, 1024, dev, dtype))
    return cases


def time_fn(fn: Callable[[], Any], repeats: int, cuda: bool, budget_s: float) -> list[float]:
    """Milliseconds per call (after one warm-up call); stops early past ``budget_s``."""
    fn()
    if cuda:
        torch.cuda.synchronize()
    out: list[float] = []
    t_start = time.perf_counter()
    for _ in range(repeats):
        if cuda:
            ev0 = torch.cuda.Event(enable_timing=True)
            ev1 = torch.cuda.Event(enable_timing=True)
            ev0.record()
            fn()
            ev1.record()
            torch.cuda.synchronize()
            out.append(float(ev0.elapsed_time(ev1)))
        else:
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() - t_start > budget_s and len(out) >= 3:
            break
    return out


def percentile(xs: list[float], p: float) -> float:
    ys = sorted(xs)
    if len(ys) == 1:
        return ys[0]
    pos = (len(ys) - 1) * p
    lo = math.floor(pos)
    hi = min(lo + 1, len(ys) - 1)
    return ys[lo] + (ys[hi] - ys[lo]) * (pos - lo)


def cpu_copy_gbs() -> float:
    """Copy bandwidth of this CPU (read + write of a 256 MiB float32 buffer), GB/s."""
    src = torch.empty(64 * 2**20, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t0)
    return 2 * src.numel() * 4 / statistics.median(times) / 1e9


def device_info(peak_override: float | None) -> tuple[str, float | None, str]:
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        if peak_override:
            return name, peak_override, "--peak-gbs"
        for key, gbs in PEAK_GBS:
            if key in name:
                return name, gbs, f"nominal ({key})"
        return name, None, "unknown device: pass --peak-gbs"
    name = f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"
    return name, cpu_copy_gbs(), "measured CPU copy bandwidth"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vidsieve bench kernels", description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="directory for kernels.csv")
    ap.add_argument("--shapes", nargs="+", default=["llava-ov", "qwen", "ktv"],
                    choices=["llava-ov", "qwen", "ktv"])  # fmt: skip
    ap.add_argument("--repeats", type=int, default=50, help="timed calls per backend (GPU)")
    ap.add_argument("--budget-s", type=float, default=10.0, help="most seconds timing one backend")
    ap.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default=None,
                    help="token/q/k dtype (default bf16 on GPU, fp32 on CPU)")  # fmt: skip
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile(reference)")
    ap.add_argument("--small", action="store_true",
                    help="divide frame/head counts by 8 (quick CPU run; per-frame shapes kept)")  # fmt: skip
    ap.add_argument("--peak-gbs", type=float, default=None, help="device bandwidth for %% of peak")
    args = ap.parse_args(argv)

    dev = str(resolve_device("auto"))
    cuda = dev == "cuda"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
        args.dtype or ("bf16" if cuda else "fp32")
    ]
    backends = ["torch"] + ([] if args.no_compile else ["compile"]) + (["triton"] if cuda else [])
    device, peak, peak_source = device_info(args.peak_gbs)
    mach, vers, commit = machine(), package_versions(), git_commit()
    triton_version = vers["triton"]
    print(f"device: {device}; torch {torch.__version__}; triton {triton_version}")
    if not cuda:
        print("No CUDA device: timing the PyTorch reference"
              + ("" if args.no_compile else " and torch.compile(reference)")
              + " only; the Triton kernels need a GPU.")  # fmt: skip
    if peak:
        print(f"bandwidth reference: {peak:.1f} GB/s ({peak_source})")

    path = args.out / "kernels.csv"
    fields = [
        "op", "shape_set", "shape", "dtype", "backend", "median_ms", "p20_ms", "p80_ms", "min_ms", "calls",
        "speedup_vs_torch", "bytes", "bytes_formula", "gbs", "pct_of_peak", "peak_gbs",
        "peak_source", "tflops", "compile_s", "device", "torch", "triton", "python", "commit",
        "note",
    ]  # fmt: skip
    # the same on every row, failed ones included
    common = {"device": device, "torch": torch.__version__, "triton": triton_version,
              "python": mach["python"], "commit": commit}  # fmt: skip
    rows: list[dict[str, Any]] = []
    for case in make_cases(args.shapes, dev, dtype, args.small):
        base_ms = None
        print(
            f"{case.op} [{case.shape}]: bytes = {case.bytes_formula} = {case.nbytes / 1e6:.1f} MB"
        )
        for backend in backends:
            note = ""
            t0 = time.perf_counter()
            try:
                times = time_fn(case.run[backend], args.repeats, cuda, args.budget_s)
            except Exception as exc:  # report the failure as a row, keep benchmarking
                print(f"  {case.op} [{case.shape}] {backend}: FAILED {type(exc).__name__}: {exc}")
                rows.append({"op": case.op, "shape": case.shape, "backend": backend, **common,
                             "note": f"failed: {type(exc).__name__}: {str(exc)[:200]}"})  # fmt: skip
                continue
            first_s = time.perf_counter() - t0 - sum(times) / 1e3
            med = statistics.median(times)
            if backend == "torch":
                base_ms = med
            gbs = case.nbytes / (med / 1e3) / 1e9
            row = {
                "op": case.op,
                "shape_set": case.shape_set,
                "shape": case.shape,
                "dtype": str(case.dtype).replace("torch.", ""),
                "backend": backend if backend != "compile" else "torch.compile(reference)",
                "median_ms": f"{med:.4f}",
                "p20_ms": f"{percentile(times, 0.2):.4f}",
                "p80_ms": f"{percentile(times, 0.8):.4f}",
                "min_ms": f"{min(times):.4f}",
                "calls": len(times),
                "speedup_vs_torch": f"{base_ms / med:.2f}" if base_ms else "",
                "bytes": case.nbytes,
                "bytes_formula": case.bytes_formula,
                "gbs": f"{gbs:.1f}",
                "pct_of_peak": f"{100 * gbs / peak:.1f}" if peak else "",
                "peak_gbs": f"{peak:.1f}" if peak else "",
                "peak_source": peak_source,
                "tflops": f"{case.flops / (med / 1e3) / 1e12:.3f}" if case.flops else "",
                "compile_s": f"{first_s:.1f}" if backend == "compile" else "",
                **common,
                "note": note,
            }
            rows.append(row)
            print(
                f"  {case.op:24s} {case.shape:40s} {row['dtype']:8s} {row['backend']:26s} "
                f"{med:10.3f} ms [{row['p20_ms']}, {row['p80_ms']}] min {row['min_ms']}  {gbs:8.2f} GB/s "
                f"({row['pct_of_peak'] or '?'}%)  x{row['speedup_vs_torch'] or '1.00'}"
                + (f"  (first call incl. compile {first_s:.1f} s)" if backend == "compile" else "")
            )
    env = {"machine": mach, "versions": vers, "commit": commit}
    write_csv([{f: r.get(f, "") for f in fields} for r in rows], path, env=env)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

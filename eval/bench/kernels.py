"""Benchmark the vidsieve kernels: Triton vs the PyTorch reference vs torch.compile(reference).

Cases come from the op table (:mod:`vidsieve.kernels._ops`): every op at every shape set it
lists (``--shapes``): ``llava-ov`` (SigLIP grid, 64 frames: KTV 64 x 729 x 1152, attention
64 x 16 heads x 729 x 72, AOT Sinkhorn 64 x 729 x 108), ``qwen2.5-vl`` (ViT at 504 x 504,
32 frame pairs: 32 x 1296 x 1280, 16 heads of 80), ``llava-video`` (13 x 13 pooled tokens at
the LLM width, 64 frames: 64 x 169 x 3584) and ``ktv`` (released setting, 6 x 576 x 1024).

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
from vidsieve.kernels._ops import OPS, Op

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


_COMPILED: dict[Callable[..., Any], Callable[..., Any]] = {}


def _compiled(fn: Callable[..., Any], backend: str = "inductor") -> Callable[..., Any]:
    key = (fn, backend)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(fn, dynamic=False, backend=backend)  # type: ignore[index]
    return _COMPILED[key]  # type: ignore[index]


def op_case(o: Op, shape_set: str, shape: tuple[int, ...], dev: str, dtype: torch.dtype,
            compile_backend: str = "inductor") -> Case:
    """A benchmark case of one op-table entry: eager reference, compiled reference, Triton."""
    inputs = o.build(shape, dtype, dev, 0)
    nbytes, formula = o.moved_bytes(inputs)
    flops = 0.0
    if o.name == "attention_received":
        b, h, length, d = shape
        flops = 2 * 2.0 * b * h * length * length * d  # two QK^T passes (kernel); reference: one
    return Case(
        op=o.name, shape_set=shape_set, shape=o.shape_text(shape), dtype=dtype,
        run={
            "torch": lambda: o.run_reference(inputs),
            "compile": lambda: _compiled(o.run_reference, compile_backend)(inputs),
            "triton": lambda: o.run(inputs, "triton"),
        },
        nbytes=nbytes, bytes_formula=formula, flops=flops,
    )


def make_cases(shape_sets: list[str], dev: str, dtype: torch.dtype, small: bool) -> list[Case]:
    """Every op-table entry at each requested shape set it has. small: divide the batch
    dimension (frames / problems) by 8 for a quick CPU run; per-frame shapes stay."""
    cases: list[Case] = []
    for shape_set in shape_sets:
        for o in OPS:
            if shape_set not in o.bench_shapes:
                continue
            shape = o.bench_shapes[shape_set]
            if small:
                shape = (max(1, shape[0] // 8), *shape[1:])
            cases.append(op_case(o, shape_set, shape, dev, dtype if dtype in o.dtypes else torch.float32))
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
    ap.add_argument("--shapes", nargs="+", default=["llava-ov", "qwen2.5-vl", "llava-video", "ktv"],
                    choices=sorted({s for o in OPS for s in o.bench_shapes}))  # fmt: skip
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

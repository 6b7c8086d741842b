"""Time the token selectors end to end on LLaVA-OneVision-sized input.

Default shape: 64 frames x 27 x 27 tokens x 1152 (SigLIP grid, float32), attention statistics
at layers 5 and -2 (as AOT uses), an allotment of ``--keep`` tokens per frame. Every selector
is timed with ``select()`` (validation and output checks included), ``--repeats`` calls after
one warm-up; wall-clock medians with 20th/80th percentiles, plus the median process CPU time
(all threads; on a shared machine it is the steadier figure). The baseline row ``resize`` (one bilinear
interpolation) is measured in the same run, and every row states its ratio to it.

Rows: ktv-tokens (attention importance), ktv-tokens without attention (norm fallback),
aot released / paper (clip stage on, ``clip_len=auto``), aot released without attention
(distinctiveness fallback), quota-assign (bilinear, ToMe), resize.

Usage::

    python -m vidsieve.eval.bench.token_stages --out runs/bench/token_stages.csv [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidsieve.tokens.aot import AOTSelector
from vidsieve.tokens.base import TokenInput, TokenSelector
from vidsieve.tokens.ktv_tokens import KTVTokenSelector
from vidsieve.tokens.quota_assign import QuotaAssignSelector
from vidsieve.tokens.resize import ResizeTokenSelector
from vidsieve.versions import git_commit, machine, package_versions

from ._csv import write_csv


def make_input(frames: int, side: int, dim: int, keep: int, *, attention: bool, seed: int = 0) -> TokenInput:
    """Random token grids ``[frames, side, side, dim]`` (float32) with optional attention."""
    g = torch.Generator().manual_seed(seed)
    n = side * side
    tokens = torch.randn(frames, side, side, dim, generator=g)
    att = {}
    if attention:
        att = {5: torch.rand(frames, n, generator=g), -2: torch.rand(frames, n, generator=g)}
    return TokenInput(tokens=tokens, allotment=np.full(frames, keep, dtype=np.int64), attention=att)


def time_calls(fn: Callable[[], Any], repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of ``repeats`` calls after one warm-up."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vidsieve bench token-stages", description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--side", type=int, default=27)
    ap.add_argument("--dim", type=int, default=1152)
    ap.add_argument("--keep", type=int, default=108, help="tokens per frame (AOT's 108 on OV)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/token_stages.csv"))
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    with_att = make_input(args.frames, args.side, args.dim, args.keep, attention=True)
    no_att = make_input(args.frames, args.side, args.dim, args.keep, attention=False)
    cases: list[tuple[str, TokenSelector, TokenInput]] = [
        ("resize", ResizeTokenSelector(), with_att),
        ("ktv-tokens", KTVTokenSelector(), with_att),
        ("ktv-tokens (no attention: norm)", KTVTokenSelector(), no_att),
        ("aot released", AOTSelector(), with_att),
        ("aot paper", AOTSelector(mode="paper"), with_att),
        ("aot released, intra only", AOTSelector(clip_len=1), with_att),
        ("aot released (no attention)", AOTSelector(), no_att),
        ("quota-assign bilinear", QuotaAssignSelector(), with_att),
        ("quota-assign tome", QuotaAssignSelector(assigner="tome"), with_att),
    ]
    info, vers, commit = machine(), package_versions(), git_commit()
    rows = []
    base = None
    shape = f"{args.frames}x{args.side}x{args.side}x{args.dim}"
    for name, sel, inp in cases:
        last: dict[str, Any] = {}

        def call(sel: TokenSelector = sel, inp: TokenInput = inp, last: dict = last) -> None:
            last["s"] = sel.select(inp)

        ts, cpu = time_calls(call, args.repeats)
        med = statistics.median(ts)
        p20, p80 = np.percentile(ts, [20, 80])
        if base is None:
            base = med
        s = last["s"]
        row = {
            "selector": name, "params": repr(sel), "shape": shape, "dtype": "float32",
            "keep_per_frame": args.keep, "tokens_out": s.total,
            "median_s": round(med, 4), "p20_s": round(float(p20), 4), "p80_s": round(float(p80), 4),
            "cpu_median_s": round(statistics.median(cpu), 4),
            "ratio_vs_resize": round(med / base, 2), "repeats": args.repeats,
            "torch_threads": torch.get_num_threads(), "processor": info.get("processor", ""),
            "platform": info.get("platform", ""), "torch": vers.get("torch", ""),
            "vidsieve": vers.get("vidsieve", ""), "commit": commit,
        }
        rows.append(row)
        print(f"{name:34s} median {med * 1e3:8.1f} ms  [p20 {p20 * 1e3:8.1f}, p80 {p80 * 1e3:8.1f}]"
              f"  cpu {row['cpu_median_s'] * 1e3:8.1f} ms  x{row['ratio_vs_resize']:<6}  tokens out {s.total}")
    path = write_csv(rows, args.out, env={"machine": info, "versions": vers, "commit": commit})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

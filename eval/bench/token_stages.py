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

A second table compares vidsieve's KTV token path with the released KTV algorithm restated
in plain PyTorch (:func:`released_ktv_tokens`: per frame, the full ``L x L`` cosine matrix for
redundancy, min-max, blend, top-k) at the released setting, 6 frames x 576 tokens x 1024
(CLIP-L/336 penultimate layer, the 936-token ladder), both given the same [CLS] logits: time
ratio in the same run and whether the kept token sets are identical (``same_tokens``). The
authors' own script is not bundled; the restatement follows its arithmetic (redundancy over
the ``L - 1`` other tokens, raw logits, no softmax).

A third table compares vidsieve's AOT intra-frame stage (:func:`select_anchors` +
:func:`intra_merge` + :func:`merged_map`, released mode) with the released intra stage
restated in plain PyTorch (:mod:`.aot_released`: per-window Python loops for the anchors, a
broadcast ``[N, M, D]`` cosine per frame, the batch-pooled Sinkhorn stop), 32 frames x 729
tokens x 1152, 108 anchors per frame (the Video-MME / LongVideoBench setting on
LLaVA-OneVision), both given the same attention: time ratio in the same run, whether the
anchor sets are identical (``same_tokens``) and the largest difference of the merged maps
(``max_abs_diff``; the merge itself moves values by ``merge_shift``).

Usage::

    vidsieve bench token-stages --out runs/bench/token_stages.csv [--threads 2]
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

from vidsieve.tokens.aot import AOTSelector, intra_merge, merged_map, select_anchors
from vidsieve.tokens.base import TokenInput, TokenSelector
from vidsieve.tokens.ktv_tokens import KTVTokenSelector
from vidsieve.tokens.quota_assign import QuotaAssignSelector
from vidsieve.tokens.resize import ResizeTokenSelector
from vidsieve.versions import git_commit, machine, package_versions

from ._csv import write_csv
from .aot_released import released_anchor_mask, released_intra_merge


def make_input(frames: int, side: int, dim: int, keep: int, *, attention: bool, seed: int = 0) -> TokenInput:
    """Random token grids ``[frames, side, side, dim]`` (float32) with optional attention."""
    g = torch.Generator().manual_seed(seed)
    n = side * side
    tokens = torch.randn(frames, side, side, dim, generator=g)
    att = {}
    if attention:
        att = {5: torch.rand(frames, n, generator=g), -2: torch.rand(frames, n, generator=g)}
    return TokenInput(tokens=tokens, allotment=np.full(frames, keep, dtype=np.int64), attention=att)


def released_ktv_tokens(x: torch.Tensor, importance: torch.Tensor, keep: list[int], alpha: float) -> list[torch.Tensor]:
    """The released KTV token pruning, restated: kept raster indices per frame.

    x ``[F, L, D]`` redundancy features, importance ``[F, L]`` raw [CLS] logits, keep[f] tokens
    of frame f. Per frame: unit vectors, the ``L x L`` cosine matrix, redundancy = (row sum - 1)
    / (L - 1), both terms min-max scaled, score = alpha * importance + (1 - alpha) *
    (1 - redundancy), the top ``keep[f]`` in raster order.
    """

    def minmax(v: torch.Tensor) -> torch.Tensor:
        span = v.max() - v.min()
        return (v - v.min()) / span if span > 0 else torch.zeros_like(v)

    out = []
    for f in range(x.shape[0]):
        unit = x[f] / x[f].norm(dim=-1, keepdim=True)
        sim = unit @ unit.T
        red = (sim.sum(-1) - 1.0) / (x.shape[1] - 1)
        score = alpha * minmax(importance[f]) + (1 - alpha) * (1 - minmax(red))
        out.append(torch.topk(score, keep[f]).indices.sort().values)
    return out


def ktv_comparison(frames: int, side: int, dim: int, repeats: int) -> list[dict[str, Any]]:
    """vidsieve's KTV token selector vs :func:`released_ktv_tokens`, same inputs, same run."""
    g = torch.Generator().manual_seed(1)
    n = side * side
    base = torch.randn(frames, 1, dim, generator=g)
    x = torch.rand(frames, n, 1, generator=g) * 3 * base + torch.randn(frames, n, dim, generator=g)
    logits = torch.randn(frames, n, generator=g) * 4
    ladder = [288, 144, 144, 144, 144, 72][:frames] if n == 576 else [max(1, n // 4)] * frames
    keep = (ladder + [ladder[-1]] * frames)[:frames]
    inp = TokenInput(tokens=x.reshape(frames, side, side, dim), allotment=np.asarray(keep, dtype=np.int64),
                     cls_attention=logits)
    sel = KTVTokenSelector(alpha=0.2, backend="torch")
    got: dict[str, Any] = {}

    def ours() -> None:
        got["ours"] = [t.sort().values for t in sel.select(inp).index]

    def theirs() -> None:
        got["theirs"] = released_ktv_tokens(x, logits, keep, 0.2)

    rows = []
    t_theirs, _ = time_calls(theirs, repeats)
    t_ours, cpu_ours = time_calls(ours, repeats)
    same = all(torch.equal(a, b) for a, b in zip(got["ours"], got["theirs"]))
    for name, ts in (("ktv tokens: released algorithm, restated (L x L matrix)", t_theirs),
                     ("ktv tokens: vidsieve KTVTokenSelector", t_ours)):
        med = statistics.median(ts)
        rows.append({"selector": name, "shape": f"{frames}x{n}x{dim}", "dtype": "float32",
                     "keep": "+".join(map(str, keep)), "median_s": round(med, 5),
                     "p20_s": round(float(np.percentile(ts, 20)), 5), "p80_s": round(float(np.percentile(ts, 80)), 5),
                     "speedup_vs_released": round(statistics.median(t_theirs) / med, 2),
                     "same_tokens": same, "repeats": repeats, "torch_threads": torch.get_num_threads()})
    return rows


def aot_comparison(frames: int, side: int, dim: int, anchors: int, repeats: int) -> list[dict[str, Any]]:
    """vidsieve's AOT intra stage vs the released one restated, same inputs, same run."""
    g = torch.Generator().manual_seed(2)
    n = side * side
    base = torch.randn(frames, 1, dim, generator=g)
    x = torch.rand(frames, n, 1, generator=g) * 3 * base + torch.randn(frames, n, dim, generator=g)
    shallow, deep = torch.rand(frames, n, generator=g), torch.rand(frames, n, generator=g)
    m = torch.full((frames,), anchors, dtype=torch.int64)
    got: dict[str, Any] = {}

    def ours() -> None:
        mask, _ = select_anchors(shallow, deep, m, (side, side), 3, 0.5, fill=False)
        im = intra_merge(x, mask, (side, side), mode="released")
        got["ours"] = (mask, merged_map(x, im.cells, im.valid, im.merged))

    def theirs() -> None:
        mask = released_anchor_mask(shallow, deep, anchors)
        got["theirs"] = (mask, released_intra_merge(x, mask))

    t_theirs, _ = time_calls(theirs, repeats)
    t_ours, _ = time_calls(ours, repeats)
    same = torch.equal(got["ours"][0], got["theirs"][0])
    diff = float((got["ours"][1] - got["theirs"][1]).abs().max())
    shift = float((got["theirs"][1] - x).abs().max())
    rows = []
    for name, ts in (("aot intra: released code, restated (broadcast cosine)", t_theirs),
                     ("aot intra: vidsieve select_anchors + intra_merge", t_ours)):
        med = statistics.median(ts)
        rows.append({"selector": name, "shape": f"{frames}x{n}x{dim}", "dtype": "float32",
                     "keep": anchors, "median_s": round(med, 4),
                     "p20_s": round(float(np.percentile(ts, 20)), 4), "p80_s": round(float(np.percentile(ts, 80)), 4),
                     "speedup_vs_released": round(statistics.median(t_theirs) / med, 2),
                     "same_tokens": same, "max_abs_diff": f"{diff:.2e}", "merge_shift": round(shift, 4),
                     "repeats": repeats, "torch_threads": torch.get_num_threads()})
    return rows


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
    ap.add_argument("--ktv-frames", type=int, default=6, help="frames of the released-KTV comparison")
    ap.add_argument("--ktv-side", type=int, default=24, help="token grid side (24: 576 CLIP-L/336 patches)")
    ap.add_argument("--ktv-dim", type=int, default=1024)
    ap.add_argument("--aot-frames", type=int, default=32, help="frames of the released-AOT comparison")
    ap.add_argument("--aot-side", type=int, default=27, help="token grid side (27: SigLIP's 729 patches)")
    ap.add_argument("--aot-dim", type=int, default=1152)
    ap.add_argument("--aot-repeats", type=int, default=3, help="repeats of the AOT comparison (the "
                    "released baseline takes ~12 s a call on 2 cores)")
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
    for row in ktv_comparison(args.ktv_frames, args.ktv_side, args.ktv_dim, max(args.repeats, 5)):
        rows.append({**row, "commit": commit})
        print(f"{row['selector']:56s} median {row['median_s'] * 1e3:8.2f} ms  x{row['speedup_vs_released']:<6} "
              f"same tokens {row['same_tokens']}")
    for row in aot_comparison(args.aot_frames, args.aot_side, args.aot_dim, args.keep, args.aot_repeats):
        rows.append({**row, "commit": commit})
        print(f"{row['selector']:56s} median {row['median_s'] * 1e3:8.1f} ms  x{row['speedup_vs_released']:<6} "
              f"same anchors {row['same_tokens']}  max |diff| {row['max_abs_diff']} (merge moves {row['merge_shift']})")
    path = write_csv(rows, args.out, env={"machine": info, "versions": vers, "commit": commit})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

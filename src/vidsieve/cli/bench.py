"""``vidsieve bench BENCHMARK``: model-free benchmarks, one sub-command each.

To add a benchmark, write ``_add_<name>(sub)`` that adds its parser (with ``func=``) and list it
in ``_BENCHMARKS``; keep heavy imports inside the handler so ``vidsieve --help`` stays fast.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from ..errors import ParameterError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench", help="run a model-free benchmark (see `vidsieve bench -h`)",
        description="Model-free benchmarks on generated videos with ground truth.",
    )
    bsub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for add in _BENCHMARKS:
        add(bsub)

    def no_benchmark(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=no_benchmark)


def _budgets(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ParameterError(f"--budgets must be comma-separated ints, e.g. 8,16,32,64; got {text!r}.") from None
    if not out or any(b < 1 for b in out):
        raise ParameterError(f"--budgets must be ints >= 1; got {text!r}.")
    return tuple(sorted(set(out)))


def _add_selectors(bsub: Any) -> None:
    p: argparse.ArgumentParser = bsub.add_parser(
        "selectors", help="frame selectors on synthetic long videos (coverage, needles, redundancy, time)",
        description="Generate long synthetic videos with ground truth (scenes of unequal length, "
        "repeated scenes, short needle events), encode 1 fps candidates with the pixel encoder and "
        "run every registered frame selector at each budget. Writes summary.csv, runs.csv, "
        "meta.json and selectors.png to --out and prints the table. See "
        "vidsieve.eval.bench.selectors for the metric definitions.",
    )
    p.add_argument("--videos", type=int, default=6, help="number of generated videos (default 6)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of each video in minutes (default 10)")
    p.add_argument("--budgets", default="8,16,32,64", help="frame budgets, comma-separated (default 8,16,32,64)")
    p.add_argument("--selectors", default=None,
                   help="comma-separated names or globs (default: every registered frame selector; "
                        "uniform is always added as the reference)")
    p.add_argument("--out", default="runs/bench-selectors", help="output directory (default runs/bench-selectors)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated set (default 0)")
    p.add_argument("--tolerance", type=float, default=0.5,
                   help="needle match tolerance in seconds (default 0.5)")
    p.add_argument("--fps", type=float, default=1.0, help="candidate frames per second (default 1)")
    p.add_argument("--styles", default="flat,objects,pan",
                   help="scene styles of the generated videos, cycled (default flat,objects,pan)")
    p.add_argument("--real", choices=("auto", "on", "off"), default="auto",
                   help="also run the real offline clips with TransNetV2 shots (auto: when installed)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_selectors)


def run_selectors(args: argparse.Namespace) -> int:
    from vidsieve.eval.bench.selectors import (
        BenchConfig,
        format_table,
        run_benchmark,
        verdict_lines,
    )

    if args.videos < 1:
        raise ParameterError(f"--videos must be >= 1; got {args.videos}.")
    cfg = BenchConfig(videos=args.videos, minutes=args.minutes, budgets=_budgets(args.budgets),
                      seed=args.seed, tolerance_s=args.tolerance, cand_fps=args.fps,
                      styles=tuple(x.strip() for x in args.styles.split(",") if x.strip()), real=args.real)
    t0 = time.perf_counter()
    res = run_benchmark(cfg, args.out, selectors=args.selectors, progress=not args.quiet)
    print(format_table(res.summary))
    print()
    print("cover: share of distinct scene looks seen (repeats count once); occ: share of scene "
          "occurrences seen;\nrecall/F1/hit: needle temporal recall, F1 and events seen, tolerance "
          f"{cfg.tolerance_s} s; redund: mean pairwise cosine of the chosen frames;\ns/hour: "
          "selection seconds per video-hour; k_out: frames returned (query-free call).\n"
          "x_uni: ratio to uniform at the same budget; +/-: paired per-video difference beyond "
          "2 standard errors (better/worse); no mark: not distinguishable from uniform.")
    for line in verdict_lines(res.summary):
        print(line)
    if res.real:
        print("\nreal clips (TransNetV2 shots):")
        print(format_table(res.real))
    m = res.meta
    print(f"\n{m['videos']} videos x {m['minutes']} min, {m['candidates_mean']:.0f} candidates each, "
          f"encoder {m['encoder']}, commit {m['commit']}, seed {m['seed']}; "
          f"{time.perf_counter() - t0:.1f} s")
    for k, path in res.paths.items():
        print(f"{k}: {path}")
    return 0


#: benchmark scripts under ``vidsieve.eval.bench`` that keep their own ``main(argv)`` parser:
#: ``vidsieve bench NAME ARGS...`` forwards ARGS to it.
_SCRIPTS = {
    "kernels": ("kernels", "Triton kernels vs PyTorch references vs torch.compile (CSV)"),
    "token-stages": ("token_stages", "token selectors' CPU/GPU time at LLaVA-OV shapes (CSV)"),
    "decode-memory": ("decode_memory", "peak RSS and frames/s, 1-minute vs 60-minute video (CSV)"),
    "kmeans": ("kmeans", "KTV k-means keyframes vs the released function: time and same picks (CSV)"),
    "gpu": ("gpu", "one prepared GPU check: kernels vs references, TTFT of 7B-class models (--tiny: CPU)"),
    "ttft": ("ttft", "time to first token and peak memory vs tokens kept, wrapped HF models (CSV)"),
    "candidates": ("candidates", "candidate features on long videos: one reader vs parallel readers vs key frames (CSV)"),
    "decode-paths": ("decode_paths", "uniform frames through Pipeline/compare/wrap vs the decord baseline (CSV)"),
}


def _add_scripts(bsub: Any) -> None:
    for name, (module, help_text) in _SCRIPTS.items():
        p = bsub.add_parser(name, help=help_text, add_help=False,
                            description=f"{help_text}. Arguments are passed to python -m vidsieve.eval.bench.{module}.")
        p.set_defaults(func=_run_script(module), forward_args=True, script_args=[])


def _run_script(module: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        mod = importlib.import_module(f"vidsieve.eval.bench.{module}")
        return int(mod.main(list(args.script_args)) or 0)

    return run


_BENCHMARKS: list[Callable[[Any], None]] = [_add_selectors, _add_scripts]

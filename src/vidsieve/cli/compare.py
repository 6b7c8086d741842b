"""``vidsieve compare VIDEO``: all frame selectors side by side, as HTML, PNG and JSON."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..errors import ParameterError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "compare", help="run every frame selector on one video and write a report",
        description="Decode VIDEO, compute candidate-frame features, run every registered frame "
        "selector (or --selectors) and write report.html, report.png and selections.json.",
    )
    p.add_argument("video")
    p.add_argument("--query", help="text query (needs an encoder with a text side, e.g. --encoder hf)")
    p.add_argument("--query-image", help="image file used as a visual query (works with the pixel encoder)")
    p.add_argument("--frames", type=int, default=8, help="frame budget (default 8)")
    p.add_argument("--tokens", type=int, default=None, help="LLM-token budget (optional)")
    p.add_argument("--selectors", default=None, help="comma-separated names or globs (default: all)")
    p.add_argument("--token-selectors", default=None,
                   help="token selectors to show as heat-maps on the encoder's patch grid (names/globs, e.g. '*')")
    p.add_argument("--encoder", default="pixel", help="frame encoder (default pixel; see `vidsieve list`)")
    p.add_argument("--encoder-model", default=None, help="model id or path for --encoder hf")
    p.add_argument("--fps", type=float, default=1.0, help="candidate frames per second (default 1)")
    p.add_argument("--max-frames", type=int, default=None, help="cap on candidate frames")
    p.add_argument("--out", default="report", help="output directory (default ./report)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..compare import run_compare
    from ..images import load_query_image
    from ..report import write_report
    from ..types import Budget

    if args.query and args.query_image:
        raise ParameterError("Give --query or --query-image, not both.")
    query = load_query_image(args.query_image) if args.query_image else args.query
    enc_params = {"model": args.encoder_model} if args.encoder_model else {}
    if args.fps is not None and args.fps <= 0:
        raise ParameterError(f"--fps must be > 0; got {args.fps}.")
    t0 = time.perf_counter()
    result = run_compare(
        args.video, budget=Budget(frames=args.frames, tokens=args.tokens), query=query,
        selectors=args.selectors, token_selectors=args.token_selectors, encoder=args.encoder,
        encoder_params=enc_params, fps=args.fps, max_frames=args.max_frames, cache=not args.no_cache,
        progress=not args.quiet,
    )
    paths = write_report(result, args.out)
    wall = time.perf_counter() - t0
    for note in result.notes:
        print(f"note: {note}")
    width = max((len(n) for n in result.selections), default=8)
    for n, s in result.selections.items():
        ts = ", ".join(f"{t:.2f}" for t in s.timestamps)
        print(f"{n:<{width}}  {s.timings['select'] * 1e3:8.2f} ms  [{ts}]")
    for n, e in result.errors.items():
        print(f"{n:<{width}}  ERROR {e}")
    print(f"wrote {paths['html']}, {paths['png']}, {paths['json']} in {wall:.2f} s")
    return 1 if not result.selections else 0


__all__ = ["register", "run", "Path"]

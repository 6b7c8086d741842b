"""The body shared by the ``wrap_<family>.py`` examples: wrap one model, answer one question.

Each example script only names its family, its hub id and its default token budget, then calls
:func:`main`. ``--tiny`` builds a randomly initialised model of the same HF class offline
(:mod:`vidsieve.adapters.tiny`): the answer is gibberish, but the mechanics (frames chosen,
tokens fed, per-stage time) are the real ones.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import vidsieve

VIDEO = Path(__file__).resolve().parent / "big_buck_bunny.mp4"


def main(
    family: str,
    hub_id: str,
    argv: Sequence[str] | None = None,
    *,
    budget_tokens: int = 4096,
    description: str | None = None,
) -> None:
    """Parse ``argv`` (default: the command line), wrap ``hub_id`` (or the tiny ``family``
    model with ``--tiny``), answer ``--question`` about ``--video`` and print the answer and
    the selection stats as JSON.

    family:        key of :data:`vidsieve.adapters.tiny.FAMILIES` (e.g. ``"qwen2_vl"``).
    hub_id:        default ``--model``.
    budget_tokens: default ``--budget-tokens`` (LLM visual tokens per video).
    description:   the script's docstring; its first line is the ``--help`` description.
    """
    ap = argparse.ArgumentParser(description=(description or f"Wrap {family}.").splitlines()[0])
    ap.add_argument("--model", default=hub_id, help="hub id or local path")
    ap.add_argument("--tiny", action="store_true", help="random tiny model of the same class (no download)")
    ap.add_argument("--video", default=str(VIDEO))
    ap.add_argument("--question", default="What happens after the rabbit comes out of its burrow?")
    ap.add_argument("--frames", default="ktv", help="frame selector (vidsieve list)")
    ap.add_argument("--tokens", default="aot", help="token selector (vidsieve list)")
    ap.add_argument("--budget-frames", type=int, default=32)
    ap.add_argument("--budget-tokens", type=int, default=budget_tokens, help="LLM tokens per video")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    args = ap.parse_args(argv)

    if args.tiny:
        from vidsieve.adapters.tiny import FAMILIES

        model, processor = FAMILIES[family]()
        budget = vidsieve.Budget(frames=min(args.budget_frames, 8), tokens=min(args.budget_tokens, 40))
    else:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=torch.bfloat16, device_map="auto")
        processor = AutoProcessor.from_pretrained(args.model)
        budget = vidsieve.Budget(frames=args.budget_frames, tokens=args.budget_tokens)

    vlm = vidsieve.wrap(model, processor, frames=args.frames, tokens=args.tokens, budget=budget)
    answer = vlm.generate(args.video, args.question, max_new_tokens=args.max_new_tokens)
    print("answer:", answer)
    print(json.dumps(vlm.last_stats.to_dict(), indent=1))

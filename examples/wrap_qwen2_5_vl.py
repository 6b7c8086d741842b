"""Wrap Qwen2.5-VL with frame and token selection under a budget.

LLM tokens per frame for this family: h*w/4 per pair of frames (temporal patch 2, 28x28 px per token).

    python examples/wrap_qwen2_5_vl.py --video examples/big_buck_bunny.mp4          # real weights (GPU)
    python examples/wrap_qwen2_5_vl.py --tiny                                       # random tiny model

``--tiny`` builds a randomly initialised model of the same HF class offline: the answer is
gibberish, but the mechanics (frames chosen, tokens fed, per-stage time) are the real ones.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import vidsieve

HUB_ID = "Qwen/Qwen2.5-VL-7B-Instruct"
VIDEO = Path(__file__).resolve().parent / "big_buck_bunny.mp4"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=HUB_ID, help="hub id or local path")
    ap.add_argument("--tiny", action="store_true", help="random tiny model of the same class (no download)")
    ap.add_argument("--video", default=str(VIDEO))
    ap.add_argument("--question", default="What happens after the rabbit comes out of its burrow?")
    ap.add_argument("--frames", default="ktv", help="frame selector (vidsieve list)")
    ap.add_argument("--tokens", default="aot", help="token selector (vidsieve list)")
    ap.add_argument("--budget-frames", type=int, default=32)
    ap.add_argument("--budget-tokens", type=int, default=4096, help="LLM tokens per video")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    args = ap.parse_args()

    if args.tiny:
        from vidsieve.adapters.tiny import qwen2_5_vl

        model, processor = qwen2_5_vl()
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


if __name__ == "__main__":
    main()

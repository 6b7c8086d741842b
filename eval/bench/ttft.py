"""Time to first token and peak memory vs share of visual tokens kept, per adapter family.

For each family, one wrapped model answers one video at 100 / 50 / 25 / 10 % of its native
visual tokens (``budget.tokens`` = that share of the tokens the chosen frames cost), with
``--tokens`` (default ``ktv-tokens``) and ``uniform`` frames. Reported per case (median over
``--repeats`` after one warm-up): time to first token and its stages (features = the
candidate frames' descriptors for the frame selector, decode = decoding the chosen frames,
encode = processor + vision tower, select = frame + token selection, prefill = ``generate``
until the first logits), the selection stages' share of TTFT (features + select), total generate time, and peak memory (CUDA max allocated on a GPU; process max RSS on
CPU, which only grows, so CPU peaks are upper bounds). Ratios are against the 100 % row of
the same run. Writes a CSV with machine, versions and shapes.

    python -m vidsieve.eval.bench.ttft --tiny --out bench-out            # tiny random models
    python -m vidsieve.eval.bench.ttft --model Qwen/Qwen2-VL-2B-Instruct --video v.mp4 --out o
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from vidsieve.devices import resolve_device
from vidsieve.types import Budget
from vidsieve.versions import environment

from ._csv import write_csv

KEEP = (1.0, 0.5, 0.25, 0.1)
STAGES = ("features", "decode", "encode", "select", "prefill")


def load(args: argparse.Namespace) -> list[tuple[str, Any, Any]]:
    if args.tiny:
        from vidsieve.adapters.tiny import FAMILIES

        fams = args.families.split(",") if args.families else list(FAMILIES)
        return [(f, *FAMILIES[f](width=args.width, layers=args.layers, scale=args.scale)) for f in fams]
    from transformers import AutoModelForImageTextToText, AutoProcessor

    dev = resolve_device("auto")
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    model: Any = AutoModelForImageTextToText.from_pretrained(args.model, dtype=dtype)
    model = model.to(dev).eval()
    return [(args.model, model, AutoProcessor.from_pretrained(args.model))]


def video_for(args: argparse.Namespace) -> Any:
    if args.video:
        return args.video
    from vidsieve.adapters.tiny import make_frames

    return make_frames(args.frames, args.height, args.width_px, seed=0, fps=4.0, step=2)


def run_case(model: Any, proc: Any, video: Any, budget: Budget, tokens: str, args: argparse.Namespace) -> dict[str, Any]:
    import vidsieve

    vlm = vidsieve.wrap(model, proc, frames="uniform", tokens=tokens, budget=budget, cache=False)
    rows = []
    for i in range(args.repeats + 1):
        vlm.generate(video, args.prompt, max_new_tokens=args.new_tokens, do_sample=False)
        if i:  # the first call warms up
            rows.append(vlm.last_stats)
    st = rows[-1]
    med = {k: statistics.median(r.timings[k] for r in rows) for k in (*STAGES, "time_to_first_token", "total")}
    ttft = med["time_to_first_token"]
    sel_share = (med["features"] + med["select"]) / ttft if ttft else 0.0
    return {
        "frames": st.frames[0], "tokens_fed": st.tokens[0], "tokens_native": st.original_tokens[0],
        **{f"{k}_s": round(v, 5) for k, v in med.items()},
        "selection_share_of_ttft": round(sel_share, 4),
        "peak_memory_mb": round((st.peak_memory_bytes or 0) / 2**20, 1), "peak_memory_kind": st.peak_memory_kind,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vidsieve bench ttft", description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny random models of all five families")
    ap.add_argument("--families", default="", help="comma-separated tiny families (default: all)")
    ap.add_argument("--model", default="", help="a hub id or local path (real weights)")
    ap.add_argument("--video", default="", help="a video file (default: a random pre-decoded clip)")
    ap.add_argument("--tokens", default="ktv-tokens", help="token selector")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--height", type=int, default=224)
    ap.add_argument("--width-px", type=int, default=224)
    ap.add_argument("--width", type=int, default=256, help="tiny LLM width")
    ap.add_argument("--layers", type=int, default=4, help="tiny LLM layers")
    ap.add_argument("--scale", type=int, default=2, help="tiny processors' frame-side multiplier")
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompt", default="what happens after the man opens the door ?")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--out", default="bench-out")
    args = ap.parse_args(argv)
    if not args.tiny and not args.model:
        ap.error("give --tiny or --model")
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment()
    video = video_for(args)
    out_rows = []
    for name, model, proc in load(args):
        import vidsieve

        probe = vidsieve.wrap(model, proc, frames="uniform", tokens="none", budget=Budget(frames=args.frames), cache=False)
        probe.prepare(video, args.prompt)
        native = probe.last_stats.original_tokens[0]
        base = None
        for keep in KEEP:
            budget = Budget(frames=args.frames, tokens=max(2, int(round(native * keep))))
            r = run_case(model, proc, video, budget, "none" if keep == 1.0 else args.tokens, args)
            base = base or r
            r.update(model=name, keep=keep, token_selector="none" if keep == 1.0 else args.tokens,
                     ttft_ratio=round(r["time_to_first_token_s"] / base["time_to_first_token_s"], 3))
            out_rows.append(r)
            print(f"{name:18s} keep {keep:4.0%} tokens {r['tokens_fed']:5d}/{r['tokens_native']:<5d} "
                  f"TTFT {r['time_to_first_token_s'] * 1e3:8.1f} ms (x{r['ttft_ratio']:.2f})  "
                  f"prefill {r['prefill_s'] * 1e3:7.1f} ms  features+select {(r['features_s'] + r['select_s']) * 1e3:6.1f} ms "
                  f"({r['selection_share_of_ttft']:.0%} of TTFT)  peak {r['peak_memory_mb']:.0f} MB")
    path = Path(args.out) / f"ttft-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    shape = {"frames": args.frames, "height": args.height, "width_px": args.width_px, "llm_width": args.width,
             "llm_layers": args.layers, "scale": args.scale, "threads": torch.get_num_threads(), "new_tokens": args.new_tokens, "repeats": args.repeats}
    write_csv([{**r, "shape": shape, "environment": env} for r in out_rows], path, env=env)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

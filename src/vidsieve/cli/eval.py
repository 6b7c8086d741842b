"""``vidsieve eval videomme|longvideobench|report``: benchmark runs and their reports.

Also reachable as ``python -m vidsieve.eval ...`` and, sharded over processes,
``accelerate launch -m vidsieve.eval videomme ...`` (or ``torchrun -m vidsieve.eval``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

BENCHMARKS = ("videomme", "longvideobench")


def _on_off(v: str) -> bool:
    if v.lower() in ("on", "true", "1", "yes"):
        return True
    if v.lower() in ("off", "false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {v!r}")


def _json_dict(v: str) -> dict[str, Any]:
    try:
        d = json.loads(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e})") from None
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return d


def add_run_arguments(p: argparse.ArgumentParser, benchmark: str) -> None:
    p.add_argument("--data", required=True, help="benchmark folder in its official layout")
    p.add_argument("--model", required=True,
                   help="HF hub id or local folder; 'tiny[:family]' (tiny random HF model) or 'fake[:acc]' (no model)")
    p.add_argument("--out", required=True, help="run folder (created; an existing one is resumed)")
    p.add_argument("--frames", default="uniform", help="frame selector (registered name), default uniform")
    p.add_argument("--tokens", default=None, help="token selector (registered name), default: keep all")
    p.add_argument("--budget-frames", type=int, default=32, help="frames per video (default 32)")
    p.add_argument("--budget-tokens", type=int, default=None, help="visual LLM tokens per video (default: no cap)")
    p.add_argument("--selector-params", type=_json_dict, default=None, help="JSON object of frame-selector parameters")
    p.add_argument("--token-params", type=_json_dict, default=None, help="JSON object of token-selector parameters")
    p.add_argument("--subtitles", type=_on_off, default=False, metavar="on|off", help="add subtitles to the prompt (default off)")
    p.add_argument("--subtitle-rule", choices=("selected", "lmms-uniform"), default="selected",
                   help="subtitle lines at the frames shown (selected) or lmms-eval's uniform positions")
    p.add_argument("--subtitle-frames", type=int, default=32, help="frame positions of the lmms-uniform rule (default 32)")
    p.add_argument("--uniform-rule", choices=("linspace", "centered"), default="linspace",
                   help="rule of --frames uniform: linspace (lmms-eval) or centered (VLMEvalKit)")
    p.add_argument("--uniform-over", choices=("all", "candidates"), default="all",
                   help="--frames uniform samples over all frames of the file as lmms-eval does (all), or over "
                        "the selector's 1-fps candidates (candidates)")
    p.add_argument("--parser", default=None, help="answer parser: mcq, legacy, vlmevalkit (default: what lmms-eval 0.7.3 uses)")
    p.add_argument("--prompt", default="lmms-eval", help="prompt variant (default lmms-eval)")
    p.add_argument("--max-new-tokens", type=int, default=16 if benchmark == "videomme" else 32)
    p.add_argument("--limit", type=int, default=None, help="only the first N questions")
    p.add_argument("--seed", type=int, default=0, help="seed of the seeded-random convention")
    p.add_argument("--batch-size", type=int, default=1, help="recorded; questions are answered one at a time per video")
    p.add_argument("--dtype", default="auto", help="auto, bfloat16, float16, float32")
    p.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK if available, else cpu), or a torch device")
    p.add_argument("--attn", default="auto", help="attention backend (sdpa, flash_attention_2, eager)")
    p.add_argument("--no-reuse", action="store_true", help="answer every question from scratch (no per-video reuse)")
    p.add_argument("--kv-reuse", action="store_true",
                   help="reuse the LLM KV cache of the prompt up to the video's end across a video's questions "
                        "(query-free frame selectors; same tokens, logits equal up to ~1e-7)")
    p.add_argument("--retry-errors", action="store_true",
                   help="when resuming, answer again the questions that ended in an error row")
    p.add_argument("--no-progress", action="store_true")


def build_eval_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="eval_command", metavar="BENCHMARK")
    for bench, helptext in (("videomme", "run Video-MME"), ("longvideobench", "run LongVideoBench (validation)")):
        p = sub.add_parser(bench, help=helptext, description=helptext)
        add_run_arguments(p, bench)
        p.set_defaults(func=run_handler, benchmark=bench)
    mk = sub.add_parser("make-miniature", help="write a miniature Video-MME and LongVideoBench (official layouts)")
    mk.add_argument("out", help="folder; gets videomme/ and longvideobench/")
    mk.add_argument("--broken", action="store_true", help="also add a missing and a corrupt video")
    mk.set_defaults(func=miniature_handler)
    r = sub.add_parser("report", help="compare finished runs: table + accuracy vs token budget")
    r.add_argument("runs", nargs="+", help="run folders")
    r.add_argument("--out", default="runs/report", help="where to write report.html/csv/png (default runs/report)")
    r.set_defaults(func=report_handler)

    def no_benchmark(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=no_benchmark)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("eval", help="Video-MME / LongVideoBench runs and reports",
                              description="Faithful, resumable Video-MME and LongVideoBench evaluation.")
    build_eval_parser(p)


def config_from_args(args: argparse.Namespace) -> Any:
    from vidsieve.eval.parsers import DEFAULT_PARSER, check_parser
    from vidsieve.eval.runner import RunConfig

    parser = check_parser(args.parser or DEFAULT_PARSER[args.benchmark])
    extra = {}
    if args.selector_params:
        extra["selector_params"] = args.selector_params
    if args.token_params:
        extra["token_params"] = args.token_params
    return RunConfig(
        benchmark=args.benchmark, data=str(args.data), model=args.model, out=str(args.out),
        frames=args.frames, tokens=args.tokens, budget_frames=args.budget_frames,
        budget_tokens=args.budget_tokens, subtitles=args.subtitles, subtitle_rule=args.subtitle_rule,
        subtitle_frames=args.subtitle_frames, uniform_rule=args.uniform_rule,
        uniform_over=args.uniform_over, parser=parser,
        prompt=args.prompt, max_new_tokens=args.max_new_tokens, limit=args.limit, seed=args.seed,
        batch_size=args.batch_size, dtype=args.dtype, device=args.device, attn=args.attn,
        reuse=not args.no_reuse, kv_reuse=args.kv_reuse, extra=extra,
    )


def run_handler(args: argparse.Namespace) -> int:
    from vidsieve.errors import ParameterError
    from vidsieve.eval.longvideobench import load_longvideobench
    from vidsieve.eval.models import load_answerer
    from vidsieve.eval.prompts import PROMPT_VARIANTS
    from vidsieve.eval.runner import check_selectors, run_questions
    from vidsieve.eval.videomme import load_videomme

    cfg = config_from_args(args)
    if cfg.prompt not in PROMPT_VARIANTS[cfg.benchmark]:
        raise ParameterError(
            f"Unknown {cfg.benchmark} prompt variant {cfg.prompt!r}. Available: {', '.join(PROMPT_VARIANTS[cfg.benchmark])}."
        )
    for name in ("budget_frames", "limit", "max_new_tokens", "batch_size", "budget_tokens", "subtitle_frames"):
        v = getattr(cfg, name)
        if v is not None and v < 1 and not (name == "subtitle_frames" and v == -1):
            raise ParameterError(f"--{name.replace('_', '-')} must be >= 1. Got {v} instead.")
    check_selectors(cfg)  # unknown --frames/--tokens names fail for every --model, fake included
    questions = load_videomme(cfg.data) if cfg.benchmark == "videomme" else load_longvideobench(cfg.data)
    answerer = load_answerer(cfg)
    metrics = run_questions(questions, answerer, cfg, progress=not args.no_progress, retry_errors=args.retry_errors)
    if metrics is not None:
        line = f"{cfg.benchmark}: accuracy {metrics['accuracy']:.2f} over {metrics['n']} questions"
        if cfg.benchmark == "longvideobench":
            line += f" (seeded-random convention {metrics['accuracy_seeded_random']:.2f})"
        line += f"; unparsed {metrics['unparsed']}, errors {metrics['errors']}. Results in {cfg.out}"
        print(line)
    return 0


def report_handler(args: argparse.Namespace) -> int:
    from vidsieve.eval.report import compare_runs

    res = compare_runs(args.runs, args.out)
    print(res["table"])
    print(f"report: {res['out'] / 'report.html'}")
    return 0


def miniature_handler(args: argparse.Namespace) -> int:
    from vidsieve.eval.miniature import make_miniature

    for bench, path in make_miniature(args.out, broken=args.broken).items():
        print(f"{bench}: {path}")
    return 0

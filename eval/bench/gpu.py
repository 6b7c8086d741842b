"""One prepared GPU check: kernels vs their references, and time to first token of 7B-class models.

``vidsieve bench gpu`` runs three sections, each in its own ``try`` (a failure becomes a row
with ``status=failed`` and the next section still runs), and rewrites its results after every
row, so a run stopped at any point keeps what it measured:

1. ``bandwidth``: a device copy kernel (``dst.copy_(src)`` on a 1 GiB buffer; 16 MiB with
   ``--tiny``), GB/s = 2 x bytes / time (read + write). The kernels' percentages below are of
   this figure, measured in the same run; the device's nominal bandwidth is recorded too.
2. ``kernels``: every vidsieve kernel op (KTV token scores, attention received, Sinkhorn) at
   LLaVA-OneVision (64 x 729 x 1152), Qwen2.5-VL (32 x 1296 x 1280) and LLaVA-Video
   (64 x 169 x 3584) shapes, bfloat16 and float32 inputs, three backends: the PyTorch
   reference (eager), ``torch.compile(reference)`` and the Triton kernel. Median and 20th/80th
   percentile milliseconds over repeats (CUDA events), achieved GB/s from the minimal bytes the
   op must move (formula per row), % of the copy bandwidth, speed-up over eager, and the
   largest absolute difference of each backend's output from the eager reference's.
3. ``ttft``: random-weight models built in code from the 7B-class configurations of
   Qwen2.5-VL-7B and LLaVA-OneVision-7B (no download), wrapped with vidsieve (``uniform``
   frames, ``--tokens`` token selector), one 64-frame video at 100 / 50 / 25 / 10 % of the
   visual tokens kept: time to first token, its stages (features, decode, encode, select,
   prefill), the selection stages' share (features + select), ratio to the 100 % row and
   peak GPU memory (``torch.cuda.max_memory_allocated``).

``--tiny`` runs the same code on the CPU in seconds: small shapes, models of the same families
with a few narrow layers, ``torch.compile`` with the ``eager`` backend (the graph capture is
exercised without a C++ toolchain), and the Triton backend only where it can run (CUDA, or
``TRITON_INTERPRET=1``). The whole run stops starting new work after ``--time-budget-s``
(default 420 s, so the full run fits in 8 minutes on one H100/H200-class GPU: eager and Triton kernels first, then TTFT, then the slow ``torch.compile`` pass); rows it skips say so.

Outputs in ``--out``: ``gpu.csv`` (every row, with machine, versions and commit), ``gpu.md``
(markdown tables), ``gpu.png`` (kernel speed-ups and TTFT vs tokens kept), ``meta.json``.
Usage::

    vidsieve bench gpu --out runs/bench-gpu          # on a GPU machine
    vidsieve bench gpu --tiny --out runs/gpu-tiny    # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidsieve.versions import git_commit, machine, package_versions

from ._csv import write_csv

KEEP = (1.0, 0.5, 0.25, 0.1)
STAGES = ("features", "decode", "encode", "select", "prefill")

# ------------------------------------------------------------------------------- results


@dataclass
class Results:
    """Rows of every section, rewritten to ``out`` after each :meth:`add` (atomically)."""

    out: Path
    env: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.flush()

    def flush(self) -> None:
        tmp = self.out / ".gpu.csv.tmp"
        write_csv(self.rows, tmp, env=self.env)
        os.replace(tmp, self.out / "gpu.csv")
        _atomic_text(self.out / "gpu.md", markdown(self.rows, self.env))


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


@contextmanager
def section(res: Results, name: str) -> Iterator[None]:
    """Run a section; an exception becomes a ``failed`` row and the run goes on."""
    t0 = time.perf_counter()
    try:
        yield
    except Exception as exc:
        res.add({"section": name, "status": "failed", "note": f"{type(exc).__name__}: {exc}"[:500]})
        print(f"[{name}] FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        print(f"[{name}] {time.perf_counter() - t0:.1f} s")


class Clock:
    """The run's time budget: ``left()`` seconds remain; sections stop starting work at 0."""

    def __init__(self, budget_s: float) -> None:
        self.t0 = time.perf_counter()
        self.budget_s = budget_s

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)


# ------------------------------------------------------------------------------- timing


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_ms(fn: Callable[[], Any], dev: torch.device, repeats: int, budget_s: float) -> list[float]:
    """Milliseconds of ``repeats`` calls of ``fn`` after one warm-up call (CUDA events on a GPU,
    ``perf_counter`` on the CPU); stops early past ``budget_s`` once 3 calls are timed."""
    fn()
    sync(dev)
    out: list[float] = []
    start = time.perf_counter()
    for _ in range(repeats):
        if dev.type == "cuda":
            ev0 = torch.cuda.Event(enable_timing=True)
            ev1 = torch.cuda.Event(enable_timing=True)
            ev0.record()
            fn()
            ev1.record()
            torch.cuda.synchronize(dev)
            out.append(float(ev0.elapsed_time(ev1)))
        else:
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() - start > budget_s and len(out) >= 3:
            break
    return out


def percentile(xs: list[float], p: float) -> float:
    """Linear-interpolated percentile, ``p`` in [0, 1]."""
    ys = sorted(xs)
    pos = (len(ys) - 1) * p
    lo = math.floor(pos)
    hi = min(lo + 1, len(ys) - 1)
    return ys[lo] + (ys[hi] - ys[lo]) * (pos - lo)


# ------------------------------------------------------------------------------- bandwidth


def copy_bandwidth(dev: torch.device, nbytes: int, repeats: int) -> dict[str, Any]:
    """GB/s of a device copy (read + write) of ``nbytes``; median and 20th/80th percentiles."""
    src = torch.empty(nbytes // 2, dtype=torch.bfloat16, device=dev).uniform_()
    dst = torch.empty_like(src)
    times = time_ms(lambda: dst.copy_(src), dev, repeats, budget_s=20.0)
    med = statistics.median(times)
    moved = 2 * src.numel() * src.element_size()
    return {"bytes": moved, "median_ms": round(med, 4), "p20_ms": round(percentile(times, 0.2), 4),
            "p80_ms": round(percentile(times, 0.8), 4), "gbs": round(moved / (med / 1e3) / 1e9, 1),
            "calls": len(times)}


def nominal_gbs(dev: torch.device) -> float | None:
    if dev.type != "cuda":
        return None
    from .kernels import PEAK_GBS

    name = torch.cuda.get_device_name(dev)
    return next((gbs for key, gbs in PEAK_GBS if key in name), None)


# ------------------------------------------------------------------------------- kernels


def shape_sets() -> list[str]:
    """Shape sets the op table benchmarks (``llava-ov``, ``qwen2.5-vl``, ``llava-video``, ...)."""
    from vidsieve.kernels._ops import OPS

    return list(dict.fromkeys(s for o in OPS for s in o.bench_shapes))


def kernel_cases(shape_set: str, dev: torch.device, dtype: torch.dtype, tiny: bool, compile_backend: str) -> list[Any]:
    """Benchmark cases (``kernels.Case``) of every op-table entry at one shape set and dtype.
    With ``tiny`` each op uses one of its small odd test shapes instead."""
    from vidsieve.kernels._ops import OPS

    from . import kernels as kb

    cases = []
    for o in OPS:
        if dtype not in o.dtypes or shape_set not in o.bench_shapes:
            continue
        if tiny:
            shape = o.test_shapes[shape_sets().index(shape_set) % len(o.test_shapes)]
        else:
            shape = o.bench_shapes[shape_set]
        cases.append(kb.op_case(o, shape_set, shape, str(dev), dtype, compile_backend))
    return cases


def triton_runs(dev: torch.device) -> tuple[bool, str]:
    """Whether the Triton backend can run here, and why not."""
    from vidsieve.kernels import _dispatch

    ok, why = _dispatch.triton_available()
    if not ok:
        return False, why
    if dev.type != "cuda" and not _dispatch.interpreter_enabled():
        return False, "no CUDA device (set TRITON_INTERPRET=1 for the CPU interpreter)"
    return True, ""


def _max_err(a: Any, b: Any) -> float:
    from vidsieve.kernels._ops import plan_of

    return float((plan_of(a).float() - plan_of(b).float()).abs().max())


@dataclass
class KernelState:
    """Eager medians kept between the two kernel passes (eager/Triton first, torch.compile after
    the TTFT section, so the slow compiles come last). Inputs are rebuilt per pass, one shape set
    and dtype at a time (the builders are seeded), so nothing stays on the device meanwhile."""

    eager_ms: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (op, set, dtype)


def run_kernels(res: Results, args: argparse.Namespace, dev: torch.device, copy_gbs: float | None,
                deadline: Callable[[], float], backends: tuple[str, ...], state: KernelState) -> None:
    """Time ``backends`` on every op-table case, group by group (shape set x dtype)."""
    compile_backend = args.compile_backend or ("eager" if args.tiny else "inductor")
    can_triton, why_not = triton_runs(dev)
    names = {"torch": "eager reference", "compile": f"torch.compile(reference, {compile_backend})", "triton": "triton"}
    for shape_set in args.shape_sets:
        for dtype in (torch.bfloat16, torch.float32):
            dname = str(dtype).replace("torch.", "")
            if deadline() <= 0:
                res.add({"section": "kernels", "shape_set": shape_set, "dtype": dname, "backend": "/".join(backends),
                         "status": "skipped", "note": "time budget spent"})
                continue
            try:
                cases = kernel_cases(shape_set, dev, dtype, args.tiny, compile_backend)
            except Exception as exc:
                res.add({"section": "kernels", "shape_set": shape_set, "dtype": dname, "status": "failed",
                         "note": f"inputs: {type(exc).__name__}: {exc}"[:500]})
                continue
            for case in cases:
                _time_case(res, args, dev, copy_gbs, deadline, backends, state, case, shape_set, names, can_triton, why_not)
            del cases
            if dev.type == "cuda":
                torch.cuda.empty_cache()


def _time_case(res: Results, args: argparse.Namespace, dev: torch.device, copy_gbs: float | None,
               deadline: Callable[[], float], backends: tuple[str, ...], state: KernelState, case: Any,
               shape_set: str, names: dict[str, str], can_triton: bool, why_not: str) -> None:
    key = (case.op, shape_set, str(case.dtype))
    ref_out = None
    for backend in backends:
        row: dict[str, Any] = {
            "section": "kernels", "op": case.op, "shape_set": shape_set, "shape": case.shape,
            "dtype": str(case.dtype).replace("torch.", ""), "backend": names[backend],
            "bytes": case.nbytes, "bytes_formula": case.bytes_formula,
        }
        if deadline() <= 0:
            res.add({**row, "status": "skipped", "note": "time budget spent"})
            continue
        if backend == "triton" and not can_triton:
            res.add({**row, "status": "skipped", "note": why_not})
            continue
        if backend != "torch" and key not in state.eager_ms:
            res.add({**row, "status": "skipped", "note": "no eager reference timing to compare with"})
            continue
        try:
            if backend != "torch" and ref_out is None:
                ref_out = case.run["torch"]()  # the oracle for this pass's inputs
            fn = case.run[backend]
            t0 = time.perf_counter()
            out = fn()
            sync(dev)
            first_s = time.perf_counter() - t0
            times = time_ms(fn, dev, args.repeats, budget_s=min(args.case_budget_s, max(deadline(), 1.0)))
        except Exception as exc:  # one failing backend does not stop the others
            res.add({**row, "status": "failed", "note": f"{type(exc).__name__}: {exc}"[:500]})
            print(f"  {case.op} {case.shape} {row['dtype']} {backend}: FAILED {type(exc).__name__}: {exc}")
            continue
        med = statistics.median(times)
        if backend == "torch":
            state.eager_ms[key] = med
            ref_out = out
        base_ms = state.eager_ms[key]
        gbs = case.nbytes / (med / 1e3) / 1e9
        row.update(
            status="ok", median_ms=round(med, 4), p20_ms=round(percentile(times, 0.2), 4),
            p80_ms=round(percentile(times, 0.8), 4), calls=len(times), first_call_s=round(first_s, 3),
            gbs=round(gbs, 4), pct_of_copy_bw=round(100 * gbs / copy_gbs, 3) if copy_gbs else "",
            speedup_vs_eager=round(base_ms / med, 2), max_abs_err_vs_eager=_max_err(out, ref_out),
        )
        res.add(row)
        print(f"  {case.op:22s} {shape_set:11s} {row['dtype']:8s} {backend:8s} {med:9.3f} ms "
              f"[{row['p20_ms']}, {row['p80_ms']}] {gbs:8.1f} GB/s ({row['pct_of_copy_bw'] or '?'}% of copy) "
              f"x{row['speedup_vs_eager']}")


def _raise_recompile_limit(n: int = 64) -> None:
    """One compiled reference serves several shapes and dtypes: allow that many recompiles."""
    try:
        import torch._dynamo

        cfg = torch._dynamo.config
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(cfg, name):
                setattr(cfg, name, max(n, int(getattr(cfg, name))))
    except Exception:  # an older or newer torch without these knobs: keep its defaults
        pass


# ------------------------------------------------------------------------------- models


def _tf5() -> bool:
    import transformers

    return int(transformers.__version__.split(".")[0]) >= 5


def _rope(text: dict[str, Any], theta: float, mrope: list[int] | None) -> dict[str, Any]:
    """Rope settings in the spelling of the installed transformers (5.x ``rope_parameters``)."""
    if _tf5():
        rp: dict[str, Any] = {"rope_type": "default", "rope_theta": theta}
        if mrope:
            rp["mrope_section"] = mrope
        text["rope_parameters"] = rp
    else:
        text["rope_theta"] = theta
        if mrope:
            text["rope_scaling"] = {"type": "mrope", "mrope_section": mrope}
    return text


#: Qwen2-7B-class language model (Qwen2.5-VL-7B and LLaVA-OneVision-7B both use it).
TEXT_7B = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, max_position_embeddings=32768, vocab_size=152064, rms_norm_eps=1e-6)
TEXT_TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=4096, vocab_size=256, rms_norm_eps=1e-6)


def build_qwen2_5_vl(tiny: bool, device: str | None = None) -> tuple[Any, Any, int]:
    """Random-weight Qwen2.5-VL (7B configuration, or a tiny one) and a processor; frame side."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )
    from vidsieve.adapters.tiny import QWEN_SPECIALS, make_tokenizer

    tok = make_tokenizer(QWEN_SPECIALS, qwen=True)
    base = TEXT_TINY if tiny else TEXT_7B
    head = int(base["hidden_size"]) // int(base["num_attention_heads"])
    half = head // 2
    mrope = [half // 4, (half - half // 4) // 2, half - half // 4 - (half - half // 4) // 2]
    text = _rope(dict(base, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.eos_token_id), 1e6, mrope)
    vision = (dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, window_size=56, fullatt_block_indexes=[1])
              if tiny else
              dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, window_size=112,
                   fullatt_block_indexes=[7, 15, 23, 31]))
    c = tok.convert_tokens_to_ids
    cfg = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=dict(vision, out_hidden_size=base["hidden_size"], patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, tokens_per_second=2, in_channels=3),
        image_token_id=c("<|image_pad|>"), video_token_id=c("<|video_pad|>"),
        vision_start_token_id=c("<|vision_start|>"), vision_end_token_id=c("<|vision_end|>"),
    )
    side = 56 if tiny else 448  # 448 x 448: 16 x 16 merged tokens per frame pair
    vp = Qwen2VLVideoProcessor(size={"shortest_edge": side * side, "longest_edge": side * side})
    proc = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok, video_processor=vp)
    return _instantiate(Qwen2_5_VLForConditionalGeneration, cfg, tiny, device), proc, side


def build_llava_onevision(tiny: bool, device: str | None = None) -> tuple[Any, Any, int]:
    """Random-weight LLaVA-OneVision (7B configuration: SigLIP-so400m + Qwen2-7B, or a tiny one)."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )
    from vidsieve.adapters.tiny import make_tokenizer

    tok = make_tokenizer(["<image>", "<video>", "<|im_start|>", "<|im_end|>"])
    base = TEXT_TINY if tiny else TEXT_7B
    text = _rope(dict(base, model_type="qwen2", pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.eos_token_id), 1e6, None)
    side, patch = (56, 8) if tiny else (384, 14)
    vision = (dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
              if tiny else dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=26, num_attention_heads=16))
    cfg = LlavaOnevisionConfig(
        text_config=text,
        vision_config=dict(model_type="siglip_vision_model", image_size=side, patch_size=patch, **vision),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1, vision_aspect_ratio="anyres_max_9", image_grid_pinpoints=[[side, side]],
    )
    grid = side // patch
    proc = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": side, "width": side}, image_grid_pinpoints=[[side, side]]),
        tokenizer=tok, video_processor=LlavaOnevisionVideoProcessor(size={"height": side, "width": side}),
        num_image_tokens=grid * grid, vision_feature_select_strategy="full",
    )
    return _instantiate(LlavaOnevisionForConditionalGeneration, cfg, tiny, device), proc, side


#: dtype of the models' weights: "auto" = bfloat16 on CUDA, float32 on the CPU.
MODEL_DTYPE = {"value": "auto"}


def _instantiate(cls: Any, cfg: Any, tiny: bool, device: str | None = None) -> Any:
    """The model with random weights, built directly on the device in its dtype (bf16 on CUDA).
    device: override (``"meta"`` builds the structure without memory, for checks)."""
    from vidsieve.devices import resolve_device

    dev = torch.device(device) if device else resolve_device("cpu" if tiny else "auto")
    want = MODEL_DTYPE["value"]
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}.get(
        want, torch.bfloat16 if dev.type == "cuda" else torch.float32)
    old = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(dtype)
        with torch.device(dev):
            model = cls(cfg)
    finally:
        torch.set_default_dtype(old)
    model.eval()
    text = model.config.get_text_config()
    model.generation_config.pad_token_id = text.pad_token_id
    model.generation_config.eos_token_id = None  # always generate max_new_tokens
    model.generation_config.do_sample = False
    return model


MODELS: dict[str, Callable[..., tuple[Any, Any, int]]] = {
    "qwen2.5-vl-7b": build_qwen2_5_vl,
    "llava-onevision-7b": build_llava_onevision,
}


def run_ttft(res: Results, args: argparse.Namespace, deadline: Callable[[], float]) -> None:
    import gc

    from vidsieve.adapters.tiny import make_frames

    import vidsieve
    from vidsieve.types import Budget

    frames = args.frames or (4 if args.tiny else 64)
    for name in args.models:
        row0: dict[str, Any] = {"section": "ttft", "model": name + (" (tiny)" if args.tiny else ""), "frames": frames}
        if deadline() <= 0:
            res.add({**row0, "status": "skipped", "note": "time budget spent"})
            continue
        model = probe = None
        try:
            t0 = time.perf_counter()
            model, proc, side = MODELS[name](args.tiny)
            build_s = time.perf_counter() - t0
            dev = next(model.parameters()).device
            video = make_frames(frames, side, side, seed=0, fps=2.0, step=1)
            probe = vidsieve.wrap(model, proc, frames="uniform", tokens="none", budget=Budget(frames=frames), cache=False)
            probe.prepare(video, args.prompt)
            native = int(probe.last_stats.original_tokens[0])
            params = sum(p.numel() for p in model.parameters())
            weights_mb = round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, 1)
            base_ttft = None
            for keep in args.keep:
                row = {**row0, "keep": keep, "params_b": round(params / 1e9, 3), "weights_mb": weights_mb,
                       "build_s": round(build_s, 1),
                       "token_selector": "none" if keep == 1.0 else args.tokens, "device": str(dev)}
                if deadline() <= 0:
                    res.add({**row, "status": "skipped", "note": "time budget spent"})
                    continue
                try:
                    r = ttft_case(model, proc, video, Budget(frames=frames, tokens=max(2, round(native * keep))),
                                  row["token_selector"], args, dev)
                except Exception as exc:
                    res.add({**row, "status": "failed", "note": f"{type(exc).__name__}: {exc}"[:500]})
                    print(f"  {name} keep {keep:.0%}: FAILED {type(exc).__name__}: {exc}")
                    continue
                base_ttft = base_ttft or r["time_to_first_token_s"]
                row.update(status="ok", **r, ttft_ratio=round(r["time_to_first_token_s"] / base_ttft, 3))
                res.add(row)
                print(f"  {name:20s} keep {keep:4.0%} tokens {r['tokens_fed']}/{r['tokens_native']} "
                      f"TTFT {r['time_to_first_token_s'] * 1e3:9.1f} ms (x{row['ttft_ratio']:.2f}) "
                      f"selection {r['selection_share_of_ttft']:.2%} peak {r['peak_gpu_memory_mb']} MB")
        except Exception as exc:
            res.add({**row0, "status": "failed", "note": f"{type(exc).__name__}: {exc}"[:500]})
            print(f"  {name}: FAILED {type(exc).__name__}: {exc}")
            traceback.print_exc()
        finally:
            model = probe = None  # the wrappers hold the model too
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def ttft_case(model: Any, proc: Any, video: Any, budget: Any, tokens: str, args: argparse.Namespace,
              dev: torch.device) -> dict[str, Any]:
    """Median stage timings of ``args.repeats`` wrapped ``generate`` calls (after a warm-up)."""
    import vidsieve

    vlm = vidsieve.wrap(model, proc, frames="uniform", tokens=tokens, budget=budget, cache=False)
    stats = []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for i in range(args.repeats + 1):
        with torch.inference_mode():
            vlm.generate(video, args.prompt, max_new_tokens=args.new_tokens, do_sample=False)
        if i:
            stats.append(vlm.last_stats)
    st = stats[-1]
    med = {k: statistics.median(s.timings.get(k, 0.0) for s in stats) for k in (*STAGES, "time_to_first_token", "total")}
    ttft = med["time_to_first_token"]
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else st.peak_memory_bytes
    return {
        "tokens_fed": int(st.tokens[0]), "tokens_native": int(st.original_tokens[0]),
        **{f"{k}_s": round(v, 5) for k, v in med.items()},
        "selection_share_of_ttft": round((med["features"] + med["select"]) / ttft, 5) if ttft else "",
        **{f"{k}_share_of_ttft": round(med[k] / ttft, 5) if ttft else "" for k in STAGES},
        "peak_gpu_memory_mb": round(peak / 2**20, 1) if peak else "",
        "peak_memory_kind": "torch.cuda.max_memory_allocated" if dev.type == "cuda" else st.peak_memory_kind,
    }


# ------------------------------------------------------------------------------- reports


def _fmt(v: Any) -> str:
    return "" if v is None else str(v)


def markdown(rows: list[dict[str, Any]], env: dict[str, Any]) -> str:
    """Markdown tables of the rows so far (bandwidth, kernels, TTFT, failures)."""
    m = env.get("machine", {})
    lines = [f"# vidsieve bench gpu: {m.get('cuda') or m.get('processor')}", "",
             f"commit {env.get('commit')}; torch {env.get('versions', {}).get('torch')}; "
             f"triton {env.get('versions', {}).get('triton')}; transformers {env.get('versions', {}).get('transformers')}", ""]
    bw = [r for r in rows if r.get("section") == "bandwidth" and r.get("status") == "ok"]
    for r in bw:
        lines.append(f"Copy bandwidth: {r['gbs']} GB/s measured ({r['bytes'] / 2**30:.2f} GiB moved per call)"
                     + (f", nominal {r['nominal_gbs']} GB/s" if r.get("nominal_gbs") else "") + ".")
        lines.append("")
    ker = [r for r in rows if r.get("section") == "kernels" and r.get("status") == "ok"]
    if ker:
        lines += ["| op | shapes | shape | dtype | backend | median ms [p20, p80] | GB/s | % of copy | x eager | max abs err |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in ker:
            err = r.get("max_abs_err_vs_eager")
            lines.append(f"| {r['op']} | {r['shape_set']} | {r['shape']} | {r['dtype']} | {r['backend']} | "
                         f"{r['median_ms']} [{r['p20_ms']}, {r['p80_ms']}] | {r['gbs']} | {_fmt(r.get('pct_of_copy_bw'))} | "
                         f"{_fmt(r.get('speedup_vs_eager'))} | {'' if err in ('', None) else f'{err:.2e}'} |")
        lines.append("")
    tt = [r for r in rows if r.get("section") == "ttft" and r.get("status") == "ok"]
    if tt:
        lines += ["| model | kept | tokens | TTFT ms | x full | selection share | prefill ms | peak memory MB (incl. weights) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in tt:
            lines.append(f"| {r['model']} | {r['keep']:.0%} | {r['tokens_fed']}/{r['tokens_native']} | "
                         f"{r['time_to_first_token_s'] * 1e3:.1f} | {r['ttft_ratio']} | "
                         f"{r['selection_share_of_ttft']:.2%} | {r['prefill_s'] * 1e3:.1f} | {_fmt(r.get('peak_gpu_memory_mb'))} |")
        lines.append("")
    bad = [r for r in rows if r.get("status") in ("failed", "skipped")]
    if bad:
        lines += ["Not measured:", ""]
        for r in bad:
            what = " ".join(str(r[k]) for k in ("section", "model", "op", "shape_set", "dtype", "backend", "keep") if r.get(k) not in (None, ""))
            lines.append(f"- {what}: {r['status']} ({r.get('note', '')})")
        lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Kernel speed-ups over eager (bars) and TTFT vs share of tokens kept (lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    ker = [r for r in rows if r.get("section") == "kernels" and r.get("status") == "ok" and r.get("speedup_vs_eager") != ""
           and not str(r.get("backend", "")).startswith("eager")]
    labels = [f"{r['op'].split('[')[0]}\n{r['shape_set']} {r['dtype']}\n{r['backend'].split('(')[0]}" for r in ker]
    ax1.bar(range(len(ker)), [float(r["speedup_vs_eager"]) for r in ker], color="tab:blue")
    ax1.axhline(1.0, color="grey", lw=0.8)
    ax1.set_xticks(range(len(ker)), labels, rotation=90, fontsize=6)
    ax1.set_ylabel("speed-up over eager reference")
    ax1.set_title("kernels")
    for model in sorted({r["model"] for r in rows if r.get("section") == "ttft" and r.get("status") == "ok"}):
        rs = [r for r in rows if r.get("model") == model and r.get("status") == "ok" and "keep" in r]
        ax2.plot([100 * r["keep"] for r in rs], [r["time_to_first_token_s"] * 1e3 for r in rs], "o-", label=model)
    ax2.set_xlabel("% of visual tokens kept")
    ax2.set_ylabel("time to first token (ms)")
    ax2.set_title("time to first token")
    if ax2.lines:
        ax2.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vidsieve bench gpu", description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench-gpu"), help="output directory")
    ap.add_argument("--tiny", action="store_true", help="the same code on CPU-sized inputs, in seconds")
    ap.add_argument("--sections", nargs="+", default=["bandwidth", "kernels", "ttft"],
                    choices=["bandwidth", "kernels", "ttft"])
    sets = shape_sets()
    ap.add_argument("--shape-sets", nargs="+", default=[s for s in sets if s != "ktv"], choices=sets)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--keep", type=float, nargs="+", default=list(KEEP), help="shares of visual tokens kept")
    ap.add_argument("--tokens", default="ktv-tokens", help="token selector for the kept < 100%% rows")
    ap.add_argument("--frames", type=int, default=0, help="video frames (default 64; 4 with --tiny)")
    ap.add_argument("--repeats", type=int, default=0, help="timed calls per case (default 20 kernels / 2 TTFT; 3 / 1 tiny)")
    ap.add_argument("--new-tokens", type=int, default=2)
    ap.add_argument("--prompt", default="what happens after the man opens the door ?")
    ap.add_argument("--case-budget-s", type=float, default=4.0, help="most seconds timing one kernel case")
    ap.add_argument("--time-budget-s", type=float, default=420.0,
                    help="no new work after this many seconds (eager/Triton kernels until 25%%, TTFT until 60%%, "
                         "torch.compile the rest; time a section leaves unused passes on)")
    ap.add_argument("--model-dtype", choices=["auto", "bf16", "fp32"], default="auto",
                    help="model weights (auto: bf16 on CUDA, fp32 on CPU)")
    ap.add_argument("--compile-backend", default="", help="torch.compile backend (default inductor; eager with --tiny)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vidsieve.devices import resolve_device
    from vidsieve.errors import ParameterError

    dev = resolve_device("cpu" if args.tiny else "auto")
    if dev.type != "cuda" and not args.tiny:
        raise ParameterError("vidsieve bench gpu: no CUDA device here; run it on a GPU machine, or pass --tiny "
                             "for the CPU smoke run.")
    MODEL_DTYPE["value"] = args.model_dtype
    kernel_repeats = args.repeats or (3 if args.tiny else 20)
    ttft_repeats = args.repeats or (1 if args.tiny else 2)
    args.out.mkdir(parents=True, exist_ok=True)
    vers = package_versions(("vidsieve", "torch", "triton", "transformers", "numpy"))
    mach = machine()
    env: dict[str, Any] = {"machine": mach, "versions": vers, "commit": git_commit()}
    res = Results(args.out, env)
    clock = Clock(args.time_budget_s)
    meta = {"args": {k: str(v) for k, v in vars(args).items()}, **env, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _atomic_text(args.out / "meta.json", json.dumps(meta, indent=2))
    print(f"device: {dev} ({mach.get('cuda')}); torch {torch.__version__}; triton {vers['triton']}; "
          f"transformers {vers['transformers']}; budget {args.time_budget_s:.0f} s")

    copy_gbs: float | None = None
    if "bandwidth" in args.sections:
        with section(res, "bandwidth"):
            bw = copy_bandwidth(dev, (16 if args.tiny else 1024) * 2**20, 5 if args.tiny else 30)
            copy_gbs = bw["gbs"]
            res.add({"section": "bandwidth", "op": "copy", "status": "ok", "backend": "torch copy_",
                     "nominal_gbs": nominal_gbs(dev) or "", **bw})
            print(f"copy bandwidth {copy_gbs} GB/s")
    # order: what a first GPU run most needs first; the slow torch.compile pass last
    b = args.time_budget_s
    state = KernelState()
    if "kernels" in args.sections:
        with section(res, "kernels (eager, triton)"):
            run_kernels(res, argparse.Namespace(**{**vars(args), "repeats": kernel_repeats}), dev, copy_gbs,
                        lambda: clock.left() - 0.75 * b, ("torch", "triton"), state)
    if "ttft" in args.sections:
        with section(res, "ttft"):
            run_ttft(res, argparse.Namespace(**{**vars(args), "repeats": ttft_repeats}), lambda: clock.left() - 0.4 * b)
    if "kernels" in args.sections:
        _raise_recompile_limit()
        with section(res, "kernels (torch.compile)"):
            run_kernels(res, argparse.Namespace(**{**vars(args), "repeats": kernel_repeats}), dev, copy_gbs,
                        clock.left, ("compile",), state)
    try:
        plot(res.rows, args.out / "gpu.png")
    except Exception as exc:
        res.add({"section": "plot", "status": "failed", "note": f"{type(exc).__name__}: {exc}"[:500]})
    res.flush()
    bad = sum(r.get("status") == "failed" for r in res.rows)
    print(f"wrote {args.out / 'gpu.csv'}, gpu.md, gpu.png ({len(res.rows)} rows, {bad} failed) "
          f"in {time.perf_counter() - clock.t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

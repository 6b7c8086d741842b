"""Answerers backed by a real (or tiny random) Hugging Face video-LLM wrapped by vidsieve.

``--model`` accepts:

``fake`` / ``fake:0.7``   :class:`~vidsieve.eval.answerers.FakeAnswerer` (no model).
``tiny`` / ``tiny:FAMILY`` a tiny random model of a real HF class (``qwen2_vl`` by default;
                          also ``qwen2_5_vl``, ``qwen3_vl``, ``llava_onevision``,
                          ``llava_next_video``), built by :mod:`vidsieve.adapters.tiny`.
                          Random weights: the accuracy means nothing, the plumbing is real.
anything else             a hub id or local folder, loaded with
                          ``AutoModelForImageTextToText`` / ``AutoProcessor``.

Per-video reuse (``reuse=True``). Within one video's questions:

* candidate features are computed once (the feature cache of :mod:`vidsieve.features`);
* when the frame selector does not use the query, the chosen frames are selected and decoded
  once (the :class:`~vidsieve.adapters.base.PreparedVideo` is passed to the adapter again),
  and the vision tower runs once (an :class:`~vidsieve.adapters.base.EncodeCache` holds its
  output and the tower statistics token selectors read for the later questions; token
  selectors see no query, so their output is the same). Results are identical to answering
  from scratch (tested).
* with ``kv_reuse=True`` (``--kv-reuse``) and a query-free frame selector, the LLM's KV cache
  of the prompt up to the end of the video is prefilled once per video; each question prefills
  only its own text on a copy. Generated tokens are the same as a full prefill; logits agree up
  to float summation order (~1e-7 in float32), so it is opt-in and recorded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidsieve.errors import ParameterError
from vidsieve.types import Budget

from .answerers import Answer, AnswerRequest, FakeAnswerer
from .questions import DatasetError

if TYPE_CHECKING:
    from vidsieve.adapters.base import EncodeCache, PreparedVideo


def build_tiny(family: str = "qwen2_vl") -> tuple[Any, Any]:
    """(model, processor): a tiny random model of a real HF video-LLM class."""
    from vidsieve.adapters.tiny import FAMILIES

    if family not in FAMILIES:
        raise ParameterError(f"Unknown tiny model family {family!r}. Available: {', '.join(sorted(FAMILIES))}.")
    return FAMILIES[family]()


_DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16",
           "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}


def load_hf(model_id: str, *, dtype: str = "auto", device: str = "auto", attn: str = "auto") -> tuple[Any, Any]:
    """Load a hub id or local folder (no download happens when HF_HUB_OFFLINE=1)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if dtype not in _DTYPES:
        raise ParameterError(f"Unknown --dtype {dtype!r}. Use one of {', '.join(_DTYPES)}.")
    td = "auto" if _DTYPES[dtype] == "auto" else getattr(torch, _DTYPES[dtype])
    kw: dict[str, Any] = {"dtype": td}
    if attn != "auto":
        kw["attn_implementation"] = attn
    try:
        processor = AutoProcessor.from_pretrained(model_id)
        model: Any = AutoModelForImageTextToText.from_pretrained(model_id, **kw)
    except OSError as e:
        raise DatasetError(f"Cannot load model {model_id!r}: {str(e).splitlines()[0]}") from None
    dev = resolve_device(device)
    model.to(torch.device(dev)).eval()
    return model, processor


def resolve_device(device: str) -> str:
    import os

    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


class _FirstToken:
    """Logits processor that notes when the first scores arrive (end of prefill)."""

    def __init__(self) -> None:
        self.first: float | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.first is None:
            self.first = time.perf_counter()
        return scores


class WrappedSession:
    """One video's questions through a :class:`vidsieve.adapters.VideoLLM`."""

    def __init__(self, owner: WrappedAnswerer, video: Path) -> None:
        from vidsieve.decoding import probe

        self.owner = owner
        self.video = video
        self.meta = probe(video)
        self._prepared: PreparedVideo | None = None
        self._encode_cache: EncodeCache | None = None
        self._kv: tuple[Any, Any] | None = None

    @property
    def _query_free(self) -> bool:
        return not bool(getattr(self.owner.vlm.frame_selector, "uses_query", False))

    def answer(self, request: AnswerRequest) -> Answer:
        from vidsieve.adapters.base import EncodeCache

        vlm = self.owner.vlm
        t0 = time.perf_counter()
        reused: list[str] = []
        # frames and the vision tower are reused when the selection ignores the question
        reuse = self.owner.reuse and self._query_free
        if reuse and self._prepared is not None:
            prepared = self._prepared
            reused.append("frames")
        elif self.owner.uniform_over_all_frames is not None:
            prepared = self._uniform_over_all_frames(request.query)
        else:
            prepared = vlm.select_frames(str(self.video), request.query)
        if reuse:
            self._prepared = prepared
            if self._encode_cache is None:
                self._encode_cache = EncodeCache()
            if self._encode_cache.filled:
                reused.append("vision_tower")
        cache = self._encode_cache if reuse else None
        t_sel = time.perf_counter() - t0
        fr = prepared.frames
        # the distinct chosen frames (a single Qwen3-VL frame is fed twice)
        idx, first = np.unique(fr.indices, return_index=True)
        ts = fr.timestamps[first]
        prompt = request.build_prompt(ts)
        if self.owner.kv_reuse and reuse:
            ids, kv_hit = self._generate_with_prefix_cache(prepared, prompt, request.max_new_tokens, cache)
            if kv_hit:
                reused.append("kv_prefix")
        else:
            ids = vlm.generate(prepared, prompt, encode_cache=cache, max_new_tokens=request.max_new_tokens,
                               do_sample=False, num_beams=1, return_ids=True)
        st = vlm.last_stats
        text = vlm.processor.batch_decode(ids, skip_special_tokens=True)[0]
        # the adapter's own "decode" time is meaningless here: frames came from this session
        timings = {k: float(v) for k, v in st.timings.items() if k != "decode"}
        timings["select_frames"] = t_sel  # features + frame selection + decoding (0 if reused)
        timings["total"] = time.perf_counter() - t0
        # prompt length as fed: text tokens + the visual tokens the selector kept
        input_tokens = int(st.prompt_tokens[0]) if st.prompt_tokens else None
        return Answer(
            text=text, prompt=prompt, frames=[int(i) for i in idx], timestamps=[float(t) for t in ts],
            visual_tokens=int(st.tokens[0]) if st.tokens else None,
            input_tokens=input_tokens, output_tokens=int(ids.shape[1]), timings=timings, reused=reused,
            extras={"original_visual_tokens": st.original_tokens[0] if st.original_tokens else None,
                    "peak_memory_bytes": st.peak_memory_bytes, "peak_memory_kind": st.peak_memory_kind},
        )

    def _uniform_over_all_frames(self, query: str) -> PreparedVideo:
        """lmms-eval's sampling: ``linspace(0, N-1, k)`` (or VLMEvalKit's centred rule) over ALL
        N frames of the file, not over the 1-fps candidates the adapter samples by default."""
        from vidsieve.decoding import decode_frames
        from vidsieve.selectors.uniform import centered_rows, linspace_rows

        n = self.meta.num_frames
        k = min(self.owner.budget.frames, n)
        rule = self.owner.uniform_over_all_frames
        idx = centered_rows(n, k) if rule == "centered" else linspace_rows(n, k)
        frames = decode_frames(self.video, idx)
        # every decoded frame is kept: the wrapped uniform selector gets a budget >= their count
        # (a content-free selector: the frame stage reads no candidate features)
        return self.owner.vlm.select_frames(frames, query, fps=self.meta.effective_fps)

    def _generate_with_prefix_cache(self, prepared: PreparedVideo, prompt: str, max_new_tokens: int,
                                    encode_cache: EncodeCache | None) -> tuple[Any, bool]:
        """Greedy generation that reuses the LLM KV cache of the prompt up to the end of the
        video (identical for every question of this video when selection is query-free).
        Returns (generated ids ``[1, new]``, whether the prefix cache was reused).

        The prefix is prefilled once with the video features; each question then prefills only
        its own text on a copy of that cache (no ``mm_encoder_outputs``: the suffix has no video
        token). Same generated tokens as a full prefill (logits equal up to float summation
        order, ~1e-7 in float32; tested on all five tiny families)."""
        import copy
        import inspect

        import torch
        from vidsieve.adapters.base import to_device

        vlm = self.owner.vlm
        st_t0 = time.perf_counter()
        kw = vlm.prepare(prepared, prompt, encode_cache=encode_cache)
        st = vlm.last_stats
        dev = next(vlm.model.parameters()).device
        ids = kw["input_ids"]
        if ids.shape[0] != 1:  # pragma: no cover - one video per call
            raise ParameterError("Prefix-cache reuse answers one question at a time.")
        vpos = torch.nonzero(ids[0] == vlm.video_token_id)
        if vpos.numel() == 0:
            raise ParameterError("The prompt has no video placeholder; cannot reuse a video prefix.")
        plen = int(vpos.max()) + 1
        cut = ("input_ids", "attention_mask", "position_ids", "mm_token_type_ids")
        hit = self._kv is not None and torch.equal(self._kv[0], ids[:, :plen])
        t1 = time.perf_counter()
        if not hit:
            pre = {k: (v[..., :plen] if k in cut else v) for k, v in kw.items()}
            with torch.no_grad(), vlm.generation_context(kw):
                out = vlm.model(**to_device(pre, dev), use_cache=True)
            new_cache = getattr(out, "cache", None) or out.past_key_values
            self._kv = (ids[:, :plen].clone(), new_cache)
        prefix_cache = self._kv[1] if self._kv is not None else None
        kw.pop("mm_encoder_outputs")
        timer = _FirstToken()
        from transformers import LogitsProcessorList

        # transformers 5.x names the argument ``cache`` (``past_key_values`` is deprecated)
        cache_kw = "cache" if "cache" in inspect.signature(vlm.model.forward).parameters else "past_key_values"
        with torch.no_grad(), vlm.generation_context(kw):
            seqs = vlm.model.generate(
                **to_device(kw, dev), **{cache_kw: copy.deepcopy(prefix_cache)},
                max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                logits_processor=LogitsProcessorList([timer]),
            )
        t2 = time.perf_counter()
        st.timings["prefill"] = (timer.first or t2) - t1
        st.timings["generate"] = t2 - (timer.first or t1)
        st.timings["time_to_first_token"] = (timer.first or t2) - st_t0
        st.timings["total"] = t2 - st_t0
        st.timings["prefix_len"] = float(plen)
        if dev.type == "cuda":
            st.peak_memory_bytes, st.peak_memory_kind = int(torch.cuda.max_memory_allocated(dev)), "cuda_max_allocated"
        return seqs[:, ids.shape[1]:], hit

    def close(self) -> None:
        self._prepared = None
        self._encode_cache = None
        self._kv = None


class WrappedAnswerer:
    """Answers with ``vidsieve.wrap(model, processor, frames=, tokens=, budget=)``."""

    def __init__(self, model: Any, processor: Any, *, model_id: str, frames: str, tokens: str | None,
                 budget: Budget, reuse: bool = True, kv_reuse: bool = False,
                 uniform_over_all_frames: str | None = None, dtype: str = "auto",
                 attn: str = "auto",
                 selector_params: dict[str, Any] | None = None, token_params: dict[str, Any] | None = None) -> None:
        import vidsieve

        self.vlm = vidsieve.wrap(model, processor, frames=frames, tokens=tokens or "none", budget=budget,
                                 selector_params=selector_params, token_params=token_params)
        self.model_id, self.reuse, self.dtype, self.attn = model_id, reuse, dtype, attn
        self.kv_reuse = kv_reuse
        #: "linspace"/"centered" to sample uniform frames over all frames of the file (as
        #: lmms-eval / VLMEvalKit do), or None to let the frame selector pick from candidates.
        self.uniform_over_all_frames = uniform_over_all_frames
        if uniform_over_all_frames is not None and frames not in ("uniform", "uniform-centered"):
            raise ParameterError("uniform_over_all_frames applies to the uniform frame selectors only.")
        self.frames, self.tokens, self.budget = frames, tokens, budget

    def describe(self) -> dict[str, Any]:
        m = self.vlm.model
        cfg = getattr(m, "config", None)
        return {
            "model": self.model_id, "model_class": type(m).__name__,
            "adapter": type(self.vlm).__name__,
            "dtype": str(next(m.parameters()).dtype),
            "device": str(next(m.parameters()).device),
            "attention_backend": getattr(cfg, "_attn_implementation", None),
            "frame_selector": {"name": self.frames, "params": self.vlm.frame_selector.get_params()},
            "token_selector": {"name": self.tokens or "none", "params": self.vlm.token_selector.get_params()},
            "budget": self.budget.to_dict(), "reuse": self.reuse,
            "kv_cache_reuse": self.kv_reuse,
            "uniform_over_all_frames": self.uniform_over_all_frames,
        }

    def open(self, video: Path) -> WrappedSession:
        return WrappedSession(self, Path(video))


def parse_fake_spec(name: str) -> dict[str, float]:
    """``fake``, ``fake:0.7`` or ``fake:acc=0.7,delay=0.1`` -> options of the fake answerer."""
    out: dict[str, float] = {}
    spec = name.split(":", 1)[1] if ":" in name else ""
    for part in filter(None, spec.split(",")):
        key, _, val = part.rpartition("=")
        key = key or "acc"
        if key not in ("acc", "delay"):
            raise ParameterError(f"Unknown fake-model option {key!r} in {name!r}; use acc= and delay=.")
        try:
            out[key] = float(val)
        except ValueError:
            raise ParameterError(f"Fake-model option {key} must be a number; got {val!r}.") from None
    return out


def load_answerer(cfg: Any) -> Any:
    """The answerer a :class:`~vidsieve.eval.runner.RunConfig` asks for."""
    from .runner import check_selectors

    check_selectors(cfg)  # every entry point (CLI, accelerate, lmms-eval plugin) rejects bad names
    name = cfg.model
    if name == "fake" or name.startswith("fake:"):
        opts = parse_fake_spec(name)
        return FakeAnswerer(budget_frames=cfg.budget_frames, accuracy=opts.get("acc", 0.6), seed=cfg.seed,
                            uniform_rule=cfg.uniform_rule, reuse=cfg.reuse, delay=opts.get("delay", 0.0))
    if name == "tiny" or name.startswith("tiny:"):
        model, processor = build_tiny(name.split(":", 1)[1] if ":" in name else "qwen2_vl")
    else:
        model, processor = load_hf(name, dtype=cfg.dtype, device=cfg.device, attn=cfg.attn)
    frames = cfg.frames
    if frames == "uniform" and cfg.uniform_rule == "centered":
        frames = "uniform-centered"
    return WrappedAnswerer(
        model, processor, model_id=name, frames=frames, tokens=cfg.tokens,
        budget=Budget(frames=cfg.budget_frames, tokens=cfg.budget_tokens), reuse=cfg.reuse,
        kv_reuse=bool(getattr(cfg, "kv_reuse", False)),
        uniform_over_all_frames=(cfg.uniform_rule if frames.startswith("uniform") and frames != "uniform-fps"
                                 and getattr(cfg, "uniform_over", "all") == "all" else None),
        dtype=cfg.dtype, attn=cfg.attn, selector_params=cfg.extra.get("selector_params"),
        token_params=cfg.extra.get("token_params"),
    )

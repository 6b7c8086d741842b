"""Reusing per-video work through the adapter's own API (tiny random models of real HF classes).

* ``prepare`` / ``generate`` accept a :class:`PreparedVideo` from ``select_frames``: same
  result as giving the video itself, and no second frame selection.
* An :class:`EncodeCache`: the second call on the same PreparedVideo gives bit-identical logits
  and the same generated tokens without running the vision tower again (counted with a forward
  hook on the tower), including the tower statistics a token selector reads; a cache used with
  other inputs raises a clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("torchvision")

from vidsieve.adapters import AdapterError, wrap  # noqa: E402
from vidsieve.adapters.base import EncodeCache, PreparedVideo  # noqa: E402

import vidsieve  # noqa: E402
from vidsieve.errors import ParameterError  # noqa: E402

from . import adapters_fixtures as fx  # noqa: E402

PROMPT = "what happens after the man opens the door ?"
OTHER = "describe the video"


def _wrap(family: str, tokens: str = "none", budget: vidsieve.Budget | None = None) -> Any:
    model, proc = fx.build(family)
    return wrap(model, proc, frames="uniform", tokens=tokens, budget=budget or vidsieve.Budget(frames=4),
                cache=False, encoder=fx.small_encoder())


def _tower(vlm: Any) -> torch.nn.Module:
    inner = vlm.model.model
    return inner.visual if hasattr(inner, "visual") else inner.vision_tower


class _Calls:
    """Counts forward calls of a module (a forward hook, removed on exit)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module, self.n = module, 0

    def __enter__(self) -> _Calls:
        self.handle = self.module.register_forward_hook(self._hook)
        return self

    def _hook(self, *args: Any) -> None:
        self.n += 1

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()


def _logits(vlm: Any, kw: dict[str, Any]) -> torch.Tensor:
    with torch.no_grad(), vlm.generation_context(kw):
        return vlm.model(**kw).logits


@pytest.mark.parametrize("family", ["qwen2_vl", "llava_onevision"])
def test_prepared_video_equals_the_path(family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidsieve.synth import make_scene_video

    path = make_scene_video(tmp_path / "v.mp4", [12, 10, 14], fps=8.0, size=(64, 80)).path
    vlm = _wrap(family)
    from_path = vlm.generate(str(path), PROMPT, max_new_tokens=5, return_ids=True)
    st_path = vlm.last_stats
    pv = vlm.select_frames(str(path), PROMPT)
    assert isinstance(pv, PreparedVideo)
    calls = []
    real = vlm.select_frames
    monkeypatch.setattr(vlm, "select_frames", lambda *a, **k: calls.append(1) or real(*a, **k))
    from_pv = vlm.generate(pv, PROMPT, max_new_tokens=5, return_ids=True)
    assert calls == [], "a PreparedVideo is fed as it is, without selecting frames again"
    assert torch.equal(from_path, from_pv)
    assert vlm.last_stats.frame_indices == st_path.frame_indices == [pv.frames.indices.tolist()]
    assert vlm.last_stats.tokens == st_path.tokens
    # a batch mixing a PreparedVideo and a path
    both = vlm.generate([pv, str(path)], [PROMPT, PROMPT], max_new_tokens=5, return_ids=True)
    assert torch.equal(both[0], both[1]) and len(calls) == 1


@pytest.mark.parametrize(("family", "tokens"), [("qwen2_vl", "ktv-tokens"), ("qwen3_vl", "resize"),
                                                ("llava_onevision", "ktv-tokens"), ("llava_next_video", "none")])
def test_encode_cache_is_bit_identical_and_skips_the_tower(family: str, tokens: str) -> None:
    budget = vidsieve.Budget(frames=4, tokens=None if tokens == "none" else 20)
    vlm = _wrap(family, tokens, budget)
    pv = vlm.select_frames(fx.make_frames(6, 60, 80, seed=3), PROMPT)
    ref_kw = vlm.prepare(pv, PROMPT)
    ref_sel = [s.index for s in ref_kw.selections]
    ref_logits = _logits(vlm, ref_kw)
    ref_ids = vlm.generate(pv, PROMPT, max_new_tokens=5, return_ids=True)
    ref_other = vlm.generate(pv, OTHER, max_new_tokens=5, return_ids=True)

    cache = EncodeCache()
    with _Calls(_tower(vlm)) as calls:
        vlm.prepare(pv, PROMPT, encode_cache=cache)
        assert calls.n == 1 and cache.filled and not vlm.last_stats.encode_reused
        if tokens == "ktv-tokens":  # the token selector reads attention statistics: captured once
            assert cache.stats is not None and any(cache.stats["attention"].values())
        kw = vlm.prepare(pv, PROMPT, encode_cache=cache)
        assert vlm.last_stats.encode_reused
        ids = vlm.generate(pv, PROMPT, encode_cache=cache, max_new_tokens=5, return_ids=True)
        other = vlm.generate(pv, OTHER, encode_cache=cache, max_new_tokens=5, return_ids=True)
        assert calls.n == 1, "a filled EncodeCache must not run the vision tower again"
    assert torch.equal(_logits(vlm, kw), ref_logits)
    assert torch.equal(ids, ref_ids) and torch.equal(other, ref_other)
    # the token selection from replayed statistics is the same
    got_sel = [s.index for s in vlm.prepare(pv, PROMPT, encode_cache=cache).selections]
    assert all(torch.equal(a, b) for g, r in zip(got_sel, ref_sel, strict=True) for a, b in zip(g, r, strict=True))


def test_prompt_tokens_count_what_the_llm_is_fed() -> None:
    vlm = _wrap("qwen2_vl", "resize", vidsieve.Budget(frames=4, tokens=10))
    videos = [fx.make_frames(6, 60, 80, seed=1), fx.make_frames(4, 90, 60, seed=2)]
    kw = vlm.prepare(videos, [PROMPT, OTHER])
    st = vlm.last_stats
    assert st.prompt_tokens == kw["attention_mask"].sum(-1).tolist()
    assert all(t <= 10 for t in st.tokens) and st.tokens != st.original_tokens


def test_encode_cache_mismatch_is_a_clear_error() -> None:
    vlm = _wrap("qwen2_vl")
    frames = fx.make_frames(6, 60, 80, seed=3)
    pv = vlm.select_frames(frames, PROMPT)
    cache = EncodeCache()
    vlm.prepare(pv, PROMPT, encode_cache=cache)
    # another PreparedVideo, even of the same frames: reuse is only valid for the cached object
    with pytest.raises(AdapterError, match="other prepared video"):
        vlm.prepare(vlm.select_frames(frames, PROMPT), PROMPT, encode_cache=cache)
    with pytest.raises(AdapterError, match="other prepared video"):
        vlm.prepare([pv, pv], [PROMPT, PROMPT], encode_cache=cache)
    with pytest.raises(ParameterError, match="encode_cache needs PreparedVideo inputs"):
        vlm.generate(frames, PROMPT, encode_cache=cache, max_new_tokens=2)
    with pytest.raises(AdapterError, match="another VideoLLM"):
        _wrap("qwen2_vl").prepare(pv, PROMPT, encode_cache=cache)
    other_sel = _wrap("qwen2_vl", "ktv-tokens", vidsieve.Budget(frames=4, tokens=20))
    other_sel.prepare(pv, PROMPT)  # fine without a cache
    pv.frames.indices[0] += 1
    with pytest.raises(AdapterError, match="frames of a cached PreparedVideo changed"):
        vlm.prepare(pv, PROMPT, encode_cache=cache)
    pv.frames.indices[0] -= 1
    vlm.token_selector = other_sel.token_selector  # now reads attention statistics
    with pytest.raises(AdapterError, match="tower statistics"):
        vlm.prepare(pv, PROMPT, encode_cache=cache)
    cache.clear()
    assert not cache.filled
    vlm.prepare(pv, PROMPT, encode_cache=cache)
    assert cache.filled and cache.stats is not None


def test_prepared_video_of_another_family_is_refused() -> None:
    llava = _wrap("llava_onevision", budget=vidsieve.Budget(frames=3))
    pv = llava.select_frames(fx.make_frames(6, 60, 80, seed=3), PROMPT)
    assert len(pv.frames) == 3
    with pytest.raises(ParameterError, match="whole groups of 2"):
        _wrap("qwen2_vl").prepare(pv, PROMPT)

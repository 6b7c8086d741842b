"""``vidsieve compare``: every frame selector side by side on one video."""

from __future__ import annotations

import fnmatch
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .decoding import decode_frames, each_frame
from .encoders.base import FrameEncoder
from .errors import ParameterError, VidsieveError
from .images import resize_rgb
from .pipeline import FrameStage, token_input_from_features
from .registry import ENCODERS, FRAME_SELECTORS, TOKEN_SELECTORS
from .tokens.base import TokenSelection
from .types import Budget, FrameFeatures, Frames, Query, Selection, VideoMeta
from .versions import environment


@dataclass
class CompareResult:
    """Everything a report shows. ``thumbs`` maps source index -> uint8 ``[h, w, 3]``."""

    meta: VideoMeta
    features: FrameFeatures
    budget: Budget
    query: Query | None
    encoder: str
    selections: dict[str, Selection]
    errors: dict[str, str]
    thumbs: dict[int, np.ndarray]
    stage_times: dict[str, float]
    token_selections: dict[str, TokenSelection] = field(default_factory=dict)
    token_frames: str = ""  # which frame selector's frames the token selectors ran on
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "video": self.meta.to_dict(),
            "budget": self.budget.to_dict(),
            "query": None if self.query is None else {"kind": self.query.kind, "text": self.query.text,
                                                      "embedded": self.query.embedding is not None},
            "encoder": self.encoder,
            "candidates": {"count": len(self.features), "indices": self.features.indices.tolist()},
            "stage_times": self.stage_times,
            "selections": {n: s.to_dict() for n, s in self.selections.items()},
            "errors": self.errors,
            "token_selections": {
                n: {"frames_from": self.token_frames, "counts": t.counts.tolist(), "index": [i.tolist() for i in t.index],
                    "params": t.params, "timings": t.timings}
                for n, t in self.token_selections.items()
            },
            "notes": self.notes,
            "environment": environment(),
        }


#: frames of at most this many pixels (1080p) are decoded at their size for the thumbnails and
#: resized after; larger ones are resized by the decoder (cheaper than decoding 4K frames whole)
NATIVE_THUMBS_UP_TO = 1920 * 1088
#: ... on long videos only: opening a second reader costs about 3 us per frame of the video,
#: while on short ones decord's scaling (in its decoding thread) is faster than decoding whole
#: frames and resizing them here (measured with ``vidsieve bench decode-paths``)
NATIVE_THUMBS_FROM_FRAMES = 30_000


def _match(names: list[str], patterns: str | None) -> list[str]:
    if not patterns:
        return names
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [n for n in names if any(fnmatch.fnmatch(n, p) for p in pats)]
    if not chosen:
        raise ParameterError(f"No registered selector matches {patterns!r}. Available: {', '.join(names)}.")
    return chosen


def run_compare(
    video: str | os.PathLike[str],
    *,
    budget: Budget,
    query: str | np.ndarray | None = None,
    selectors: str | None = None,
    token_selectors: str | None = None,
    encoder: str | FrameEncoder = "pixel",
    encoder_params: dict[str, Any] | None = None,
    fps: float = 1.0,
    max_frames: int | None = None,
    cache: bool | str = True,
    progress: bool = True,
    thumb_height: int = 96,
) -> CompareResult:
    """Run every (matching) registered frame selector on ``video`` and collect the results."""
    names = _match(FRAME_SELECTORS.list(), selectors)  # name errors before any decoding
    token_names = _match(TOKEN_SELECTORS.list(), token_selectors) if token_selectors else []
    enc = encoder if isinstance(encoder, FrameEncoder) else ENCODERS.create(encoder, **(encoder_params or {}))
    selectors_ = {name: FRAME_SELECTORS.create(name) for name in names}
    # candidates are decoded and encoded once, and only if some selector (or a token selector,
    # which reads the encoder's patch grid) needs their content
    content = bool(token_names) or any(s.reads != "nothing" for s in selectors_.values())
    stage = FrameStage(enc, "uniform", fps=fps, max_frames=max_frames, cache=cache, progress=progress, owner="compare")
    st: dict[str, float] = {}
    meta, feats, _ = stage.candidates(video, content=content, timings=st, codec=True)
    stage_times = {"probe": st["probe"], "decode": st.get("features_decode", st["features"]),
                   "encode": st.get("features_encode", 0.0)}
    notes: list[str] = []
    q: Query | None = None
    if query is not None:
        q = stage.embed_query(query, stage_times)
        if q is not None and q.embedding is None:
            notes.append(
                f"The {enc.name!r} encoder cannot embed a {q.kind} query: query-aware selectors ran "
                "query-free. Use an image query or --encoder hf with a CLIP/SigLIP model."
            )
    sels: dict[str, Selection] = {}
    errors: dict[str, str] = {}
    warm = feats.subset(np.arange(min(len(feats), 4)))
    for name, selector in tqdm(selectors_.items(), desc="selectors", disable=not progress, leave=False):
        try:
            # one untimed call on a few frames first: lazy imports (scikit-learn, torch kernels)
            # must not be billed to the selection time shown in the report
            selector.select(warm, budget=1, query=q)
            sels[name] = selector.select(feats, budget=budget, query=q)
        except VidsieveError as e:  # one selector's failure must not sink the report
            errors[name] = f"{type(e).__name__}: {e}"
    stage_times["select_all"] = sum(s.timings["select"] for s in sels.values())
    tok_sels: dict[str, TokenSelection] = {}
    token_frames = ""
    if token_selectors:
        token_frames = "uniform" if "uniform" in sels else next(iter(sels), "")
        if token_frames:
            base = sels[token_frames]
            tb = budget if budget.tokens is not None else Budget(frames=budget.frames, tokens=max(1, len(base) * _grid_size(feats) // 4))
            for name in token_names:
                try:
                    tok_sels[name] = TOKEN_SELECTORS.create(name).select(token_input_from_features(feats, base, tb))
                except VidsieveError as e:
                    errors[f"tokens:{name}"] = f"{type(e).__name__}: {e}"
            if budget.tokens is None:
                notes.append(f"Token selectors ran at 25% of the {token_frames} frames' grid tokens ({tb.tokens}).")
    wanted = sorted({int(i) for s in sels.values() for i in s.indices})
    t0 = time.perf_counter()
    thumbs: dict[int, np.ndarray] = {}
    if wanted:
        th = thumb_height
        tw = max(2, int(round(th * meta.width / max(meta.height, 1))) // 2 * 2)
        if meta.num_frames >= NATIVE_THUMBS_FROM_FRAMES and meta.width * meta.height <= NATIVE_THUMBS_UP_TO:
            # through the reader the frame stage already opened (a second, thumbnail-size
            # reader would parse the stream index again: ~0.3 s per hour of video), one
            # frame at a time, each resized at once
            for i, px in each_frame(video, wanted):
                thumbs[i] = resize_rgb(px, (th, tw))
        else:
            fr: Frames = decode_frames(video, wanted, size=(th, tw))
            thumbs = {int(i): p for i, p in zip(fr.indices, fr.pixels)}
    stage_times["decode_selected"] = time.perf_counter() - t0
    return CompareResult(meta, feats, budget, q, enc.cache_key(), sels, errors, thumbs, stage_times, tok_sels, token_frames, notes)


def _grid_size(feats: FrameFeatures) -> int:
    return 0 if feats.grid is None else int(feats.grid.shape[1] * feats.grid.shape[2])

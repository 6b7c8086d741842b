"""Encoder + frame selector (+ optional token selector) as one call on a video file."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .decoding import decode_frames, probe
from .encoders.base import FrameEncoder
from .features import extract_features
from .params import param_error
from .registry import ENCODERS, FRAME_SELECTORS, TOKEN_SELECTORS
from .selectors.base import FrameSelector
from .tokens.base import TokenInput, TokenSelection, TokenSelector
from .types import Budget, FrameFeatures, Frames, Query, Selection, VideoMeta


def resolve(kind: str, value: Any, base: type, registry: Any, **params: Any) -> Any:
    """A registered name or an instance of ``base`` -> an instance."""
    if isinstance(value, base):
        return value
    if isinstance(value, str):
        return registry.create(value, **params)
    raise param_error("Pipeline", kind, f"a registered name or a {base.__name__}", value)


def token_input_from_features(features: FrameFeatures, selection: Selection, budget: Budget) -> TokenInput:
    """Token-selector input on the encoder's patch grid of the chosen frames (model-free)."""
    import torch

    if features.grid is None:
        raise param_error("Pipeline", "encoder", "an encoder with a patch grid for token selection", features.encoder)
    grid = features.grid[selection.rows]
    return TokenInput(
        tokens=torch.from_numpy(np.ascontiguousarray(grid)),
        allotment=selection.frame_tokens,
        budget=budget.tokens,
        timestamps=selection.timestamps,
        downscale=selection.downscale,
    )


@dataclass
class PipelineResult:
    """What :meth:`Pipeline.run` produced. ``frames``: uint8 ``[K, H, W, 3]`` chosen frames."""

    meta: VideoMeta
    features: FrameFeatures
    query: Query | None
    selection: Selection
    frames: Frames | None
    tokens: TokenSelection | None
    timings: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """decode -> features -> frame selector -> decode chosen frames (-> token selector).

    encoder: a registered encoder name or instance (default ``"pixel"``).
    frames:  a registered frame-selector name or instance (default ``"uniform"``).
    tokens:  None, or a token-selector name/instance run on the encoder's patch grid.
    fps / max_frames: candidate sampling; ``cache``: feature cache (see :mod:`.features`).
    decode_size: ``(H, W)`` of the returned chosen frames, None for native, False to skip.
    """

    def __init__(
        self,
        encoder: str | FrameEncoder = "pixel",
        frames: str | FrameSelector = "uniform",
        tokens: str | TokenSelector | None = None,
        *,
        fps: float = 1.0,
        max_frames: int | None = None,
        cache: bool | str = True,
        progress: bool = True,
        decode_size: tuple[int, int] | None | bool = None,
    ) -> None:
        self.encoder: FrameEncoder = resolve("encoder", encoder, FrameEncoder, ENCODERS)
        self.frame_selector: FrameSelector = resolve("frames", frames, FrameSelector, FRAME_SELECTORS)
        self.token_selector: TokenSelector | None = (
            None if tokens is None else resolve("tokens", tokens, TokenSelector, TOKEN_SELECTORS)
        )
        self.fps = fps
        self.max_frames = max_frames
        self.cache = cache
        self.progress = progress
        self.decode_size = decode_size

    def features(self, video: str | os.PathLike[str], timings: dict[str, float] | None = None) -> FrameFeatures:
        return extract_features(
            video, self.encoder, fps=self.fps, max_frames=self.max_frames, cache=self.cache,
            progress=self.progress, timings=timings,
        )

    def run(
        self, video: str | os.PathLike[str], *, budget: Budget | int, query: str | np.ndarray | Query | None = None
    ) -> PipelineResult:
        if not isinstance(budget, Budget):
            budget = Budget(frames=budget)
        timings: dict[str, float] = {}
        meta = probe(video)
        feats = self.features(video, timings)
        q = None
        if query is not None:
            t0 = time.perf_counter()
            q = self.encoder.embed_query(query)
            timings["embed_query"] = time.perf_counter() - t0
        sel = self.frame_selector.select(feats, budget=budget, query=q)
        timings["select"] = sel.timings["select"]
        frames = None
        if self.decode_size is not False:
            t0 = time.perf_counter()
            size = None if self.decode_size in (None, True) else self.decode_size
            frames = decode_frames(video, sel.indices, size=size)  # type: ignore[arg-type]
            timings["decode_selected"] = time.perf_counter() - t0
        toks = None
        if self.token_selector is not None:
            toks = self.token_selector.select(token_input_from_features(feats, sel, budget))
            timings["select_tokens"] = toks.timings["select"]
        return PipelineResult(meta, feats, q, sel, frames, toks, timings)

"""The frame stage (probe -> candidates -> frame selector -> decode chosen frames) and the
model-free :class:`Pipeline` built on it.

:class:`FrameStage` is the one implementation of the frame stage: ``Pipeline``, ``compare``,
the model adapters (``vidsieve.wrap``), the benchmarks' eval and the vLLM helpers all call it.
It decodes only what the frame selector reads (``FrameSelector.reads``): a content-free
selector (the uniform rules) gets the candidates' positions and timestamps from the container's
metadata, so only the chosen frames are ever decoded; the others get candidate descriptors from
a frame encoder (:func:`vidsieve.features.extract_features`, cached on disk).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .decoding import _resize, candidate_frames, decode_frames, probe
from .encoders.base import FrameEncoder
from .errors import ParameterError
from .features import extract_features
from .params import Choice, Float, Int, NoneValue, check_param, param_error
from .registry import ENCODERS, FRAME_SELECTORS, TOKEN_SELECTORS
from .selectors.base import FrameSelector, as_query
from .tokens.base import TokenInput, TokenSelection, TokenSelector
from .types import Budget, FrameFeatures, Frames, Query, Selection, VideoMeta

VideoSource = Any  # a path, a vidsieve.Frames or a uint8 [T, H, W, 3] array


def resolve(kind: str, value: Any, base: type, registry: Any, owner: str = "Pipeline", **params: Any) -> Any:
    """A registered name or an instance of ``base`` -> an instance."""
    if isinstance(value, base):
        if params:
            raise ParameterError(f"{owner}: parameters for {kind!r} are only used with a registered name, "
                                 f"not with an instance ({type(value).__name__}).")
        return value
    if isinstance(value, str):
        return registry.create(value, **params)
    raise param_error(owner, kind, f"a registered name or a {base.__name__}", value)


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
class ChosenFrames:
    """What :meth:`FrameStage.run` produced for one video.

    meta:      the video's metadata (for in-memory frames: a synthesised one, ``path`` "<array>").
    features:  the candidates the selector saw: ``[T, D]`` descriptors, or positions only
               (``features.content`` False) for a content-free selector.
    query:     the query as the selector saw it (with its embedding when the encoder has one).
    selection: the frame selector's :class:`Selection` (source indices, timestamps, allotments).
    frames:    the chosen frames (uint8 ``[K, H, W, 3]``, source indices, timestamps), or None
               when ``decode_size=False``.
    timings:   seconds: ``probe``, ``features`` (candidate decode + encode; 0 on a cache hit, only
               reading positions for a content-free selector; split into ``features_decode`` and
               ``features_encode`` when encoded), ``embed_query``, ``select``, ``decode`` (the
               chosen frames).
    """

    meta: VideoMeta
    features: FrameFeatures
    query: Query | None
    selection: Selection
    frames: Frames | None
    timings: dict[str, float] = field(default_factory=dict)


class FrameStage:
    """probe -> candidates (only what the selector reads) -> frame selector -> chosen frames.

    encoder:   frame encoder for candidate descriptors (name or instance; default ``"pixel"``).
    frames:    frame selector (name or instance; default ``"uniform"``).
    fps / max_frames: candidate sampling from a file (one candidate every ``1/fps`` s, at most
               ``max_frames``, evenly thinned). cache: the feature cache (see :mod:`.features`).
    selector_params / encoder_params: keyword arguments for components given by name.
    candidates: ``"frames"`` (the frame on screen at each sampling time, exact), ``"keyframes"``
               (the nearest key frame: much cheaper on long videos, other candidates) or
               ``"auto"`` (key frames only where one lies within half a sampling period).
    decode_threads: parallel readers for candidate decoding (None: from the CPUs; identical output).
    """

    def __init__(
        self,
        encoder: str | FrameEncoder = "pixel",
        frames: str | FrameSelector = "uniform",
        *,
        fps: float = 1.0,
        max_frames: int | None = None,
        cache: bool | str | os.PathLike[str] = True,
        progress: bool = False,
        selector_params: dict[str, Any] | None = None,
        encoder_params: dict[str, Any] | None = None,
        candidates: str = "frames",
        decode_threads: int | None = None,
        owner: str = "FrameStage",
    ) -> None:
        self.encoder: FrameEncoder = resolve("encoder", encoder, FrameEncoder, ENCODERS, owner, **(encoder_params or {}))
        self.selector: FrameSelector = resolve("frames", frames, FrameSelector, FRAME_SELECTORS, owner,
                                               **(selector_params or {}))
        check_param(owner, "fps", fps, [Float(gt=0)])
        check_param(owner, "max_frames", max_frames, [Int(ge=1), NoneValue()])
        self.fps: float = float(fps)
        self.max_frames: int | None = None if max_frames is None else int(max_frames)
        self.cache: bool | str | os.PathLike[str] = cache
        self.progress: bool = progress
        check_param(owner, "candidates", candidates, [Choice("frames", "keyframes", "auto")])
        check_param(owner, "decode_threads", decode_threads, [Int(ge=1), NoneValue()])
        self.candidates_from: str = candidates
        self.decode_threads: int | None = decode_threads

    # ------------------------------------------------------------------ candidates
    def candidates(
        self, video: VideoSource, *, content: bool, video_fps: float | None = None,
        timings: dict[str, float] | None = None, codec: bool = False,
    ) -> tuple[VideoMeta, FrameFeatures, Frames | None]:
        """(metadata, candidate features, the in-memory frames or None for a file).

        content=False: positions and timestamps only, read from the container (no frame decoded).
        codec: also read the codec name into the metadata (a file only).
        """
        t = timings if timings is not None else {}
        if isinstance(video, (str, os.PathLike)):
            t0 = time.perf_counter()
            meta = probe(video, codec=codec)
            t["probe"] = time.perf_counter() - t0
            if content:
                ft: dict[str, float] = {}
                feats = extract_features(video, self.encoder, fps=self.fps, max_frames=self.max_frames,
                                         cache=self.cache, progress=self.progress, timings=ft,
                                         candidates=self.candidates_from, decode_threads=self.decode_threads)
                t["features"] = ft.get("decode", 0.0) + ft.get("encode", 0.0)
                t["features_decode"], t["features_encode"] = ft.get("decode", 0.0), ft.get("encode", 0.0)
                t["cache_hit"] = ft.get("cache_hit", 0.0)
            else:
                t0 = time.perf_counter()
                idx, times = candidate_frames(meta, fps=self.fps, max_frames=self.max_frames,
                                              source=self.candidates_from)
                feats = FrameFeatures.positions_only(idx, times, fps=meta.effective_fps,
                                                     duration=meta.duration, source=meta.path)
                t["features"] = time.perf_counter() - t0
            return meta, feats, None
        fr, vfps = _as_frames(video, video_fps)
        meta = VideoMeta(path="<array>", num_frames=int(fr.indices[-1]) + 1, fps=vfps,
                         width=int(fr.pixels.shape[2]), height=int(fr.pixels.shape[1]))
        t0 = time.perf_counter()
        if content:
            emb, grid = self.encoder.encode(fr.pixels)
            feats = FrameFeatures(embeddings=np.asarray(emb, np.float32), indices=fr.indices,
                                  timestamps=fr.timestamps, grid=grid, encoder=self.encoder.cache_key(),
                                  fps=vfps, duration=meta.num_frames / vfps)
        else:
            feats = FrameFeatures.positions_only(fr.indices, fr.timestamps, fps=vfps,
                                                 duration=meta.num_frames / vfps)
        t["features"] = time.perf_counter() - t0
        return meta, feats, fr

    def embed_query(self, query: Query | str | np.ndarray | None, timings: dict[str, float] | None = None) -> Query | None:
        """The query in the encoder's space (None stays None)."""
        q = as_query(query)
        if q is None:
            return None
        t0 = time.perf_counter()
        q = self.encoder.embed_query(q)
        if timings is not None:
            timings["embed_query"] = time.perf_counter() - t0
        return q

    # ------------------------------------------------------------------ the stage
    def run(
        self,
        video: VideoSource,
        *,
        budget: Budget | int,
        query: Query | str | np.ndarray | None = None,
        decode_size: tuple[int, int] | None | bool = None,
        video_fps: float | None = None,
    ) -> ChosenFrames:
        """Choose and decode the frames of one video.

        video: a path, a :class:`Frames` or a uint8 ``[T, H, W, 3]`` array (``video_fps``: its
        rate, default 1 frame per second for arrays). budget: a :class:`Budget` or a frame count.
        decode_size: ``(H, W)`` of the returned frames, None for native, False to skip decoding.
        """
        if not isinstance(budget, Budget):
            budget = Budget(frames=budget)
        size = _check_decode_size(decode_size)
        timings: dict[str, float] = {}
        content = self.selector.reads != "nothing"
        meta, feats, in_memory = self.candidates(video, content=content, video_fps=video_fps, timings=timings)
        q = self.embed_query(query, timings)
        sel = self.selector.select(feats, budget=budget, query=q)
        timings["select"] = sel.timings["select"]
        frames = None
        if in_memory is not None:
            frames = Frames(pixels=in_memory.pixels[sel.rows], indices=in_memory.indices[sel.rows],
                            timestamps=in_memory.timestamps[sel.rows])
            if size:
                frames = Frames(pixels=_resize(frames.pixels, size), indices=frames.indices,
                                timestamps=frames.timestamps)
        elif decode_size is not False:
            t0 = time.perf_counter()
            frames = decode_frames(meta.path, sel.indices, size=size or None)
            timings["decode"] = time.perf_counter() - t0
        return ChosenFrames(meta, feats, q, sel, frames, timings)


def _check_decode_size(decode_size: Any) -> tuple[int, int] | None:
    if decode_size is None or decode_size is True or decode_size is False:
        return None
    ok = isinstance(decode_size, (tuple, list)) and len(decode_size) == 2 and all(
        Int(ge=1).is_satisfied_by(v) for v in decode_size)
    if not ok:
        raise param_error("FrameStage", "decode_size", "None, False or (H, W) with H, W ints >= 1", decode_size)
    return int(decode_size[0]), int(decode_size[1])


def _as_frames(video: Any, fps: float | None) -> tuple[Frames, float]:
    """In-memory frames and their rate (given, derived from the timestamps, or 1 per second)."""
    check_param("FrameStage.run", "video_fps", fps, [Float(gt=0), NoneValue()])
    if isinstance(video, Frames):
        fr = video
    elif isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ParameterError(f"A video array must be uint8 [T, H, W, 3]; got {video.dtype} {video.shape}.")
        idx = np.arange(video.shape[0], dtype=np.int64)
        fr = Frames(pixels=video, indices=idx, timestamps=idx / float(fps or 1.0))
    elif video is None:
        raise ParameterError("No video given: pass a path, a vidsieve.Frames or a uint8 [T, H, W, 3] array.")
    else:
        raise ParameterError(
            f"A video must be a path, a vidsieve.Frames or a uint8 [T, H, W, 3] array; got {type(video).__name__}."
        )
    if len(fr) == 0:
        raise ParameterError("The video has no frames (T=0).")
    if 0 in fr.pixels.shape[1:3]:
        raise ParameterError(f"The video's frames have no pixels (shape {tuple(fr.pixels.shape)}).")
    if fps is None:
        i, t = fr.indices.astype(np.float64), fr.timestamps
        fps = float((i[-1] - i[0]) / (t[-1] - t[0])) if len(fr) > 1 and t[-1] > t[0] else 1.0
    return fr, float(fps)


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
    """The frame stage (:class:`FrameStage`) plus an optional model-free token selector.

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
        self.stage = FrameStage(encoder, frames, fps=fps, max_frames=max_frames, cache=cache, progress=progress,
                                owner="Pipeline")
        self.token_selector: TokenSelector | None = (
            None if tokens is None else resolve("tokens", tokens, TokenSelector, TOKEN_SELECTORS)
        )
        _check_decode_size(decode_size)
        self.decode_size = decode_size

    @property
    def encoder(self) -> FrameEncoder:
        return self.stage.encoder

    @property
    def frame_selector(self) -> FrameSelector:
        return self.stage.selector

    def features(self, video: str | os.PathLike[str], timings: dict[str, float] | None = None) -> FrameFeatures:
        """Candidate descriptors of ``video`` (always with content, whatever the selector reads)."""
        return self.stage.candidates(_check_path_arg(video), content=True, timings=timings)[1]

    def run(
        self, video: str | os.PathLike[str], *, budget: Budget | int, query: str | np.ndarray | Query | None = None
    ) -> PipelineResult:
        """Frame stage on ``video`` (a path), then the token selector on the chosen frames' grid.

        A token selector needs the encoder's patch grid, so with one the candidates are encoded
        even for a content-free frame selector.
        """
        video = _check_path_arg(video)
        if not isinstance(budget, Budget):
            budget = Budget(frames=budget)
        if self.token_selector is None:
            ch = self.stage.run(video, budget=budget, query=query, decode_size=self.decode_size)
            meta, feats, q, sel, frames, st = ch.meta, ch.features, ch.query, ch.selection, ch.frames, ch.timings
        else:
            st = {}
            meta, feats, _ = self.stage.candidates(video, content=True, timings=st)
            q = self.stage.embed_query(query, st)
            sel = self.frame_selector.select(feats, budget=budget, query=q)
            st["select"] = sel.timings["select"]
            frames = None
            if self.decode_size is not False:
                t0 = time.perf_counter()
                frames = decode_frames(video, sel.indices, size=_check_decode_size(self.decode_size))
                st["decode"] = time.perf_counter() - t0
        # PipelineResult.timings: decode/encode = the candidates, decode_selected = chosen frames
        timings = {"probe": st.get("probe", 0.0), "decode": st.get("features_decode", st.get("features", 0.0)),
                   "encode": st.get("features_encode", 0.0), "select": st["select"]}
        if "embed_query" in st:
            timings["embed_query"] = st["embed_query"]
        if "decode" in st:
            timings["decode_selected"] = st["decode"]
        toks = None
        if self.token_selector is not None:
            toks = self.token_selector.select(token_input_from_features(feats, sel, budget))
            timings["select_tokens"] = toks.timings["select"]
        return PipelineResult(meta, feats, q, sel, frames, toks, timings)


def _check_path_arg(video: Any) -> str | os.PathLike[str]:
    if isinstance(video, (str, os.PathLike)):
        return video
    if isinstance(video, Path):  # pragma: no cover - a Path is a PathLike
        return video
    got = "None" if video is None else type(video).__name__
    raise ParameterError(f"Pipeline.run expects the path of a video file; got {got}.")

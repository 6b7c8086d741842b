"""K-frames: scene-driven any-k frame selection, training-free form (K-frames, arXiv 2510.13891).

Source: K-frames (arXiv 2510.13891). The paper *trains* a Qwen2.5-VL-3B selector (SFT + RL)
that predicts query-relevant clips with priority labels, then samples any number of frames
from them. No code was released. vidsieve implements the **training-free** form of the idea;
every learned step is replaced by a rule:

1. Scenes: a :class:`~vidsieve.scenes.SceneDetector` (``"cosine"``: cuts where consecutive
   frame embeddings' cosine drops; ``"transnetv2"``: the TransNetV2 shot detector on pixels),
   then scenes shorter than ``min_scene`` seconds are merged into a neighbour.
2. Scene relevance (replaces the model's clip prediction): the max (``relevance="max"``) or
   the mean of the ``top_m`` best frame-query cosines of the scene. The ``primary`` most
   relevant scenes are priority 1 (weight 1), the next ``secondary`` are priority 2 (weight
   ``secondary_weight``), the rest priority 0.
3. Any-k: frames per scene ``k_j`` proportional to ``w_j * length_j`` (length in candidate
   frames), rounded by largest remainder and capped at the scene's length.
   ``mode="focused"`` gives every frame to priority scenes (overflow, when they are shorter
   than k, spills over the other scenes by length); ``mode="hybrid"`` first reserves
   ``round(reserve * k)`` frames spread evenly over the non-priority scenes (one per scene,
   scenes picked evenly in time, when there are more scenes than reserved frames).
4. Within a scene: ``within="argmax"`` takes the best frame of each of ``k_j`` equal bins
   (stratified argmax of the query cosine), ``"uniform"`` the middle of each bin.

Without a query embedding the selector does *scene coverage*: frames by scene length, every
scene at least one frame while k allows (with fewer frames than scenes: the longest scene,
then each next the scene least like those chosen, so recurring looks are not shown twice),
evenly spaced within scenes; ``extras["query_used"]`` is False.

Outputs: ``clips`` = source-index spans of the scenes that received frames;
``extras["scenes"]`` (row spans), ``extras["scene_bounds"]`` (source-index spans),
``extras["scene_relevance"]``, ``extras["priority"]``, ``extras["allocation"]``.

The TransNetV2 detector needs pixels: it decodes them from ``features.source`` (set by
:func:`vidsieve.features.extract_features`; set it yourself for hand-made features).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..allocation import largest_remainder
from ..errors import ParameterError
from ..params import Choice, Float, Int, Predicate
from ..registry import register_selector
from ..relevance import query_relevance
from ..scenes import SceneDetector, Scenes, create_detector, merge_short_scenes
from ..types import Budget, FrameFeatures, Query
from .base import FrameSelector, SelectOutput


def scene_relevance(rel: np.ndarray, starts: np.ndarray, how: str = "max", top_m: int = 3) -> np.ndarray:
    """Per-scene relevance from per-frame ``rel`` ``[T]``; scenes start at ``starts`` ``[S]``
    (sorted, first 0). ``how="max"`` or ``"topmean"`` (mean of the ``top_m`` best frames)."""
    rel = np.asarray(rel, dtype=np.float64)
    if how == "max":
        return np.maximum.reduceat(rel, starts)
    t = rel.shape[0]
    sid = np.searchsorted(starts, np.arange(t), side="right") - 1
    order = np.lexsort((-rel, sid))  # by scene, best first
    first = np.searchsorted(sid[order], np.arange(starts.size))  # first position of each scene
    rank = np.arange(t) - first[sid[order]]
    keep = order[rank < top_m]
    sums = np.bincount(sid[keep], weights=rel[keep], minlength=starts.size)
    counts = np.bincount(sid[keep], minlength=starts.size)
    return sums / np.maximum(counts, 1)


def spread_evenly(r: int, lengths: np.ndarray) -> np.ndarray:
    """``r`` frames over scenes of ``lengths``: equal shares (capped by length), or, when there
    are more scenes than frames, one frame each to ``r`` scenes evenly spaced in time."""
    n = lengths.size
    if r <= 0 or n == 0:
        return np.zeros(n, dtype=np.int64)
    if r >= n:
        return largest_remainder(r, np.ones(n), cap=lengths)
    out = np.zeros(n, dtype=np.int64)
    out[((2 * np.arange(r) + 1) * n) // (2 * r)] = 1
    return out


def coverage_allocation(k: int, lengths: np.ndarray, looks: np.ndarray | None = None) -> np.ndarray:
    """Query-free any-k: one frame per scene while k allows, the rest proportional to length
    (largest remainder, capped by length).

    With fewer frames than scenes, the scenes that get one are chosen for coverage: the longest
    first, then (with ``looks``, ``[S, D]`` mean scene descriptors) each next the scene with the
    largest ``length * (1 - cos)`` to its most similar chosen scene (ties: the earlier): among
    distinct looks the longest scenes win, and a look that recurs in several scenes is not
    shown twice while another look is never shown. Without ``looks``: the longest scenes.
    """
    s = lengths.size
    out = np.zeros(s, dtype=np.int64)
    if k <= s:
        if looks is None or s < 2:
            order = np.lexsort((np.arange(s), -lengths))
            out[order[:k]] = 1
            return out
        v = looks.astype(np.float64)
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        first = int(np.lexsort((np.arange(s), -lengths))[0])
        out[first] = 1
        nearest = v @ v[first]  # [S] highest cosine to a chosen scene
        for _ in range(k - 1):
            gain = np.where(out > 0, -np.inf, lengths * np.clip(1.0 - nearest, 0.0, 2.0))
            j = int(np.argmax(gain))  # first maximum: the earlier scene on ties
            out[j] = 1
            nearest = np.maximum(nearest, v @ v[j])
        return out
    out[:] = 1
    return out + largest_remainder(k - s, lengths.astype(np.float64), cap=lengths - 1)


def priority_allocation(
    k: int, lengths: np.ndarray, weights: np.ndarray, *, mode: str, reserve: float
) -> np.ndarray:
    """Query-driven any-k (K-frames): ``k_j`` proportional to ``w_j * length_j``.

    ``weights`` ``[S]`` are 0 for non-priority scenes. In ``hybrid`` mode
    ``round(reserve * k)`` frames are first spread evenly over non-priority scenes. Frames
    that priority scenes cannot hold spill over all scenes by length. Sums to ``k`` (needs
    ``k <= lengths.sum()``).
    """
    alloc = np.zeros(lengths.size, dtype=np.int64)
    others = weights <= 0
    if mode == "hybrid" and others.any():
        alloc[others] = spread_evenly(min(int(round(reserve * k)), k), lengths[others])
    main = k - int(alloc.sum())
    if main > 0 and (~others).any():
        cap = np.where(others, 0, lengths - alloc)
        alloc += largest_remainder(main, weights * lengths, cap=cap)
    left = k - int(alloc.sum())
    if left > 0:
        alloc += largest_remainder(left, lengths.astype(np.float64), cap=lengths - alloc)
    return alloc


def within_scene_rows(
    starts: np.ndarray, lengths: np.ndarray, alloc: np.ndarray, rel: np.ndarray | None
) -> np.ndarray:
    """Rows chosen inside scenes: scene ``j`` split into ``alloc[j]`` equal bins, then each
    bin's best row under ``rel`` (stratified argmax), or its middle row if ``rel`` is None.
    Vectorised over all bins of all scenes. Returns sorted int64 ``[sum(alloc)]``."""
    sid = np.repeat(np.arange(starts.size), alloc)
    i = np.arange(sid.size) - np.repeat(np.cumsum(alloc) - alloc, alloc)
    n = alloc[sid]
    lo = starts[sid] + (i * lengths[sid]) // n
    hi = starts[sid] + ((i + 1) * lengths[sid]) // n  # exclusive; hi > lo as alloc <= length
    if rel is None:
        return ((lo + hi - 1) // 2).astype(np.int64)
    t = rel.shape[0]
    rows = np.arange(t)
    b = np.searchsorted(lo, rows, side="right") - 1
    valid = (b >= 0) & (rows < hi[np.maximum(b, 0)])
    r, bb = rows[valid], b[valid]
    order = np.lexsort((r, -rel[r], bb))
    first = np.r_[True, bb[order][1:] != bb[order][:-1]]
    return np.sort(r[order][first]).astype(np.int64)


def _is_detector(v: object) -> bool:
    return isinstance(v, SceneDetector)


@register_selector("kframes", "K-frames, training-free: scenes, query-priority tiers, any-k by largest remainder.")
class KFramesSelector(FrameSelector):
    """Scene-driven any-k selection (see module docstring for the method and its sources).

    detector:         ``"cosine"`` (features only), ``"transnetv2"`` (reads ``features.source``) or a
                      :class:`~vidsieve.scenes.SceneDetector` instance.
    min_scene:        scenes shorter than this many seconds are merged into a neighbour.
    relevance:        ``"max"`` or ``"topmean"`` (mean of the ``top_m`` best frames).
    top_m:            frames averaged by ``"topmean"``.
    mode:             ``"hybrid"`` (reserve a share for other scenes) or ``"focused"``.
    primary:          number of priority-1 scenes (weight 1).
    secondary:        number of priority-2 scenes (weight ``secondary_weight``).
    secondary_weight: allocation weight of priority-2 scenes relative to priority 1.
    reserve:          share of k that ``hybrid`` spreads over non-priority scenes.
    within:           ``"argmax"`` (stratified argmax of query cosine) or ``"uniform"``.
    """

    uses_query = True
    _parameter_constraints = {
        "detector": [Choice("cosine", "transnetv2"), Predicate(_is_detector, "a SceneDetector instance")],
        "min_scene": [Float(ge=0)],
        "relevance": [Choice("max", "topmean")],
        "top_m": [Int(ge=1)],
        "mode": [Choice("hybrid", "focused")],
        "primary": [Int(ge=1)],
        "secondary": [Int(ge=0)],
        "secondary_weight": [Float(gt=0, le=1)],
        "reserve": [Float(ge=0, lt=1)],
        "within": [Choice("argmax", "uniform")],
    }

    def __init__(
        self,
        *,
        detector: str | SceneDetector = "cosine",
        min_scene: float = 2.0,
        relevance: str = "max",
        top_m: int = 3,
        mode: str = "hybrid",
        primary: int = 2,
        secondary: int = 2,
        secondary_weight: float = 0.5,
        reserve: float = 0.25,
        within: str = "argmax",
    ) -> None:
        self.detector = detector
        self.min_scene = min_scene
        self.relevance = relevance
        self.top_m = top_m
        self.mode = mode
        self.primary = primary
        self.secondary = secondary
        self.secondary_weight = secondary_weight
        self.reserve = reserve
        self.within = within
        self._validate_params()

    def _detector(self) -> SceneDetector:
        return self.detector if isinstance(self.detector, SceneDetector) else create_detector(self.detector)

    def scenes(self, features: FrameFeatures, *, video: str | Path | None = None) -> Scenes:
        """Detected scenes after merging short ones: inclusive ``(start_row, end_row)`` spans.

        ``video`` overrides ``features.source`` for pixel-based detectors.
        """
        det = self._detector()
        video = video if video is not None else features.source
        if det.needs_video and video is None:
            raise ParameterError(
                f"KFramesSelector with detector={self.detector!r} reads pixels, but the features do "
                "not name their video: build them with vidsieve.features.extract_features, or "
                "set FrameFeatures(..., source='path/to/video.mp4')."
            )
        raw = det.detect(features, video=video)
        return merge_short_scenes(raw, features.timestamps, self.min_scene, features.embeddings)

    def _select(self, features: FrameFeatures, *, k: int, budget: Budget, query: Query | None) -> SelectOutput:
        sc = np.asarray(self.scenes(features), dtype=np.int64).reshape(-1, 2)
        starts, lengths = sc[:, 0], sc[:, 1] - sc[:, 0] + 1
        rel = query_relevance(features, query)
        priority = np.zeros(starts.size, dtype=np.int64)
        srel: np.ndarray | None = None
        if rel is None:
            looks = np.stack([features.embeddings[a : b + 1].mean(0) for a, b in sc]) if features.content else None
            alloc = coverage_allocation(k, lengths, looks)
        else:
            srel = scene_relevance(rel, starts, self.relevance, self.top_m)
            order = np.lexsort((np.arange(starts.size), -srel))
            priority[order[: self.primary]] = 1
            priority[order[self.primary : self.primary + self.secondary]] = 2
            weights = np.select([priority == 1, priority == 2], [1.0, self.secondary_weight], 0.0)
            alloc = priority_allocation(k, lengths, weights, mode=self.mode, reserve=self.reserve)
        use_rel = rel if self.within == "argmax" else None
        rows = within_scene_rows(starts, lengths, alloc, use_rel)
        idx = features.indices
        used = alloc > 0
        clips = np.stack([idx[sc[used, 0]], idx[sc[used, 1]]], axis=1)
        extras = {
            "scenes": sc.tolist(),
            "scene_bounds": np.stack([idx[sc[:, 0]], idx[sc[:, 1]]], axis=1).tolist(),
            "scene_relevance": None if srel is None else srel.tolist(),
            "priority": priority.tolist(),
            "allocation": alloc.tolist(),
            "mode": self.mode if rel is not None else "coverage",
            "query_used": rel is not None,
            "detector": self.detector if isinstance(self.detector, str) else repr(self.detector),
        }
        return SelectOutput(rows=rows, clips=clips, scores=rel, extras=extras)

"""Metrics of ``vidsieve bench selectors``: pure functions on arrays (the tests check them on
hand-built selections). See :mod:`vidsieve.eval.bench.selectors` for what each one means."""

from __future__ import annotations

import math

import numpy as np


def scene_coverage(chosen: np.ndarray, frame_scene: np.ndarray, scene_look: np.ndarray) -> tuple[float, float]:
    """(look coverage, occurrence coverage) of the chosen source frames.

    chosen:      int ``[K]`` source frame indices.
    frame_scene: int ``[N]`` scene occurrence per source frame (-1 = counts for no scene).
    scene_look:  int ``[S]`` look of each occurrence (equal looks = a repeated scene).
    Returns shares in ``[0, 1]``: distinct looks hit / distinct looks, occurrences hit / S.
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    scene_look = np.asarray(scene_look)
    hit = np.unique(np.asarray(frame_scene)[chosen]) if chosen.size else np.zeros(0, np.int64)
    hit = hit[hit >= 0]
    n_occ = scene_look.shape[0]
    n_looks = np.unique(scene_look).shape[0]
    if n_occ == 0:
        return math.nan, math.nan
    return np.unique(scene_look[hit]).shape[0] / n_looks, hit.shape[0] / n_occ


def temporal_prf(chosen_t: np.ndarray, gt_t: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    """Temporal (precision, recall, F1) of chosen frame times against annotated frame times.

    chosen_t: float ``[K]`` seconds; gt_t: float ``[G]`` seconds; a pair matches when
    ``|chosen - gt| <= tolerance`` (+1e-9). Precision = chosen frames matching some annotated
    frame / K; recall = annotated frames matched by some chosen frame / G; F1 their harmonic
    mean (0 when both are 0). NaN recall/F1 when ``G == 0``; NaN precision when ``K == 0``.
    """
    c = np.asarray(chosen_t, dtype=np.float64).reshape(-1)
    g = np.asarray(gt_t, dtype=np.float64).reshape(-1)
    if c.size == 0 or g.size == 0:
        p = math.nan if c.size == 0 else 0.0
        r = math.nan if g.size == 0 else 0.0
        return p, r, math.nan
    close = np.abs(c[:, None] - g[None, :]) <= tolerance + 1e-9  # [K, G]
    p = float(close.any(axis=1).mean())
    r = float(close.any(axis=0).mean())
    f1 = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    return p, r, f1


def event_hit_rate(chosen_t: np.ndarray, intervals: np.ndarray, tolerance: float) -> float:
    """Share of events ``[E, 2]`` (first, last time) with a chosen time within the tolerance."""
    iv = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    if iv.shape[0] == 0:
        return math.nan
    c = np.asarray(chosen_t, dtype=np.float64).reshape(-1, 1)
    inside = (c >= iv[None, :, 0] - tolerance - 1e-9) & (c <= iv[None, :, 1] + tolerance + 1e-9)
    return float(inside.any(axis=0).mean())


def redundancy(embeddings: np.ndarray) -> float:
    """Mean pairwise cosine similarity of ``[K, D]`` vectors (off-diagonal); NaN if K < 2."""
    x = np.asarray(embeddings, dtype=np.float64)
    k = x.shape[0]
    if k < 2:
        return math.nan
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    s = x.sum(axis=0)
    # sum over all ordered pairs i != j of x_i.x_j = |sum|^2 - sum |x_i|^2
    return float((s @ s - (x * x).sum()) / (k * (k - 1)))


def shots_hit(chosen: np.ndarray, frame_scene: np.ndarray) -> int:
    """Number of distinct scene occurrences (shots) with a chosen source frame (-1 ignored)."""
    chosen = np.asarray(chosen, dtype=np.int64)
    if chosen.size == 0:
        return 0
    hit = np.unique(np.asarray(frame_scene)[chosen])
    return int((hit >= 0).sum())


def shot_separation(embeddings: np.ndarray, shot: np.ndarray) -> float:
    """Mean distance between frames of one shot / median distance between shot centroids.

    embeddings: float ``[T, D]`` (compared as unit vectors); shot: int ``[T]`` shot labels.
    Lower is better: near 1, a clustering selector cannot tell a shot's own motion from a
    cut. Shots with one frame add no within-shot distance. NaN with fewer than two shots.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    shot = np.asarray(shot)
    labels = np.unique(shot)
    if labels.size < 2:
        return math.nan
    within: list[float] = []
    cents = []
    for s in labels:
        f = x[shot == s]
        cents.append(f.mean(axis=0))
        n = f.shape[0]
        if n > 1:  # mean pairwise distance from the Gram matrix: |a-b|^2 = 2 - 2 a.b
            g = f @ f.T
            d = np.sqrt(np.maximum(2.0 - 2.0 * g, 0.0))
            within.append(float((d.sum() - np.trace(d)) / (n * (n - 1))))
    c = np.asarray(cents)
    between = np.linalg.norm(c[:, None] - c[None], axis=-1)[np.triu_indices(c.shape[0], 1)]
    med = float(np.median(between))
    return float(np.mean(within)) / med if within and med > 0 else math.nan


def bootstrap_ci(values: np.ndarray, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaNs dropped).

    Resamples the values (one per video, i.e. per seed of the generated set) with
    replacement ``n_boot`` times; deterministic for a given ``seed``. One value gives a
    zero-width interval; none gives (NaN, NaN).
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    if v.size == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [a, 1.0 - a])
    return float(lo), float(hi)


def _ratio(x: float, ref: float) -> float:
    """``x / ref``; ``inf`` for ``x > 0 == ref``, NaN when undefined (``0 / 0``, NaNs)."""
    if not (np.isfinite(x) and np.isfinite(ref)):
        return math.nan
    if ref == 0:
        return math.inf if x > 0 else math.nan
    return x / ref


def _verdict(diffs: np.ndarray, higher_better: bool) -> str:
    d = diffs[np.isfinite(diffs)]
    if d.size == 0:
        return "n/a"
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else 0.0
    if abs(mean) <= 1e-9 or abs(mean) <= 2 * se:
        return "same"
    return "better" if (mean > 0) == higher_better else "worse"

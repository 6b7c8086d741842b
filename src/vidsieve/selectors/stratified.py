"""Stratified argmax over a per-frame score, and the PEEK teacher as a selector.

Stratified argmax (PEEK, arXiv 2605.31029): split the candidates into
``k`` equal contiguous bins and keep the best-scoring frame of each bin, so the selection
covers the whole video while preferring the most relevant moment of each stretch.

Two registered selectors:

* ``stratified-argmax``: the generic wrapper. A registry-created selector cannot receive a
  Python callable (its parameters must round-trip through ``repr``), so the score is *named*
  by the ``score`` parameter:

  - ``"query"``: cosine of each frame to the query embedding (the teacher's score);
  - ``"distinct"``: ``1 - cos(frame, mean frame)``, how far a frame is from the video's
    average look (query-free);
  - ``"novelty"``: ``1 - mean cos(frame, previous/next frame)``, how much the picture changes
    around a frame (query-free).

  With ``score="query"`` and no query embedding, ``query_free`` names the rule used instead:
  ``"diverse"`` (default; :func:`diverse_rows`: each bin's frame least like every earlier
  pick, so a bin that straddles a cut takes the new shot), ``"distinct"``,
  ``"novelty"`` or ``"uniform"`` (the middle frame of every bin); the choice is reported in
  ``extras["score"]`` and ``extras["fallback"]``. ``"diverse"`` is the default because it
  covered at least as many shots as uniform sampling on every benchmark video, where
  ``"distinct"`` (rare-looking frames) fell below uniform: it spends bins on odd frames and
  short outliers (see ``docs/selection-benchmarks.md``). Any other per-frame
  score (a saliency model, a student's logits) goes through :func:`select_by_scores`.
* ``teacher``: PEEK's teacher used at inference time - query-frame cosine (min-max
  normalised, as PEEK normalises its teacher targets per segment; argmax does not depend on
  it) plus stratified argmax. PEEK's teacher compares frames with a *caption* in SigLIP2
  space; on QA the question plays that role. Without a query embedding it falls back to the
  middle frame of each bin (``fallback="uniform"``) or to ``"distinct"``.
"""

from __future__ import annotations

import numpy as np

from ..params import Choice
from ..registry import register_selector
from ..relevance import l2_normalize, minmax, query_relevance, stratified_argmax
from ..types import Budget, FrameFeatures, Query
from .base import FrameSelector, SelectOutput

QUERY_FREE_SCORES = ("distinct", "novelty")
#: query-free rules of ``stratified-argmax`` (``query_free``): the scores, ``diverse``, ``uniform``.
QUERY_FREE_RULES = ("diverse", "uniform", *QUERY_FREE_SCORES)


def distinct_scores(embeddings: np.ndarray) -> np.ndarray:
    """``1 - cos(frame, mean of unit frames)``: float64 ``[T]`` (0 for a constant video)."""
    f = l2_normalize(np.asarray(embeddings, dtype=np.float64))
    mean = l2_normalize(f.mean(axis=0))
    return 1.0 - f @ mean


def novelty_scores(embeddings: np.ndarray) -> np.ndarray:
    """``1 - mean cos(frame, temporal neighbours)``: float64 ``[T]`` (ends use their one
    neighbour; a single frame scores 0)."""
    f = l2_normalize(np.asarray(embeddings, dtype=np.float64))
    t = f.shape[0]
    if t < 2:
        return np.zeros(t)
    adj = np.einsum("td,td->t", f[1:], f[:-1])  # [T-1] cos(i, i+1)
    left = np.r_[np.nan, adj]
    right = np.r_[adj, np.nan]
    return 1.0 - np.nanmean(np.stack([left, right]), axis=0)


def bin_middles(t: int, k: int) -> np.ndarray:
    """Middle row of each of the ``k`` stratified-argmax bins: int64 ``[k]``."""
    edges = (np.arange(k + 1) * t) // k
    return ((edges[:-1] + edges[1:] - 1) // 2).astype(np.int64)


def named_scores(features: FrameFeatures, score: str) -> np.ndarray:
    """The query-free score ``score`` ("distinct" or "novelty") of every candidate."""
    return distinct_scores(features.embeddings) if score == "distinct" else novelty_scores(features.embeddings)


def box_smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Mean of each row's ``width``-row neighbourhood (centred, cut at the ends): float64 ``[T, D]``."""
    x = np.asarray(x, dtype=np.float64)
    t = x.shape[0]
    half = width // 2
    prefix = np.zeros((t + 1, x.shape[1]))
    np.cumsum(x, axis=0, out=prefix[1:])
    lo = np.clip(np.arange(t) - half, 0, t)
    hi = np.clip(np.arange(t) + half + 1, 0, t)
    return (prefix[hi] - prefix[lo]) / (hi - lo)[:, None]


def diverse_rows(embeddings: np.ndarray, k: int, *, smooth: int = 5) -> np.ndarray:
    """Per stratified bin, the frame least like every earlier pick: int64 ``[k]`` rows.

    The first bin takes its middle frame; bin ``j`` takes the frame whose largest cosine to
    the picks of bins ``0..j-1`` is smallest (ties: the frame nearest the bin's middle, then
    the earliest). Frames are compared on unit features averaged over ``smooth`` neighbouring
    candidates, so a one- to three-frame outlier (a flash, a brief insert) does not pass for
    new content. Inside one long shot the pick is an arbitrary frame of the shot; across a
    cut it is the new shot, unless that shot looks like one already picked (a repeated
    scene). Cost ``O(T * D + T * k)``.
    """
    f = l2_normalize(box_smooth(l2_normalize(np.asarray(embeddings, dtype=np.float64)), max(smooth, 1)))
    t = f.shape[0]
    edges = (np.arange(k + 1) * t) // k
    mids = bin_middles(t, k)
    rows = np.empty(k, dtype=np.int64)
    rows[0] = mids[0]
    closest = np.full(t, -np.inf)  # largest cosine of each frame to the picks so far
    for j in range(1, k):
        closest = np.maximum(closest, f @ f[rows[j - 1]])
        seg = np.arange(edges[j], edges[j + 1])
        sim = closest[seg]
        best = seg[sim <= sim.min() + 1e-12]
        rows[j] = best[np.argmin(np.abs(best - mids[j]))]
    return rows


def select_by_scores(scores: np.ndarray, k: int) -> SelectOutput:
    """Stratified argmax over any float ``[T]`` score (``1 <= k <= T``)."""
    s = np.asarray(scores, dtype=np.float64)
    return SelectOutput(rows=stratified_argmax(s, k), scores=s)


@register_selector(
    "stratified-argmax",
    "Best frame of each of k equal time bins under a named per-frame score (query or query-free).",
)
class StratifiedArgmaxSelector(FrameSelector):
    """Stratified argmax under a named score (see module docstring).

    score:      ``"query"`` (frame-query cosine), ``"distinct"`` or ``"novelty"``.
    query_free: rule used when ``score="query"`` but the query has no embedding:
                ``"diverse"`` (default), ``"distinct"``, ``"novelty"`` or ``"uniform"``
                (middle frame of each bin).
    """

    uses_query = True
    _parameter_constraints = {
        "score": [Choice("query", *QUERY_FREE_SCORES)],
        "query_free": [Choice(*QUERY_FREE_RULES)],
    }

    def __init__(self, *, score: str = "query", query_free: str = "diverse") -> None:
        self.score = score
        self.query_free = query_free
        self._validate_params()

    def _select(self, features: FrameFeatures, *, k: int, budget: Budget, query: Query | None) -> SelectOutput:
        extras: dict[str, object] = {}
        name = self.score
        if name == "query":
            rel = query_relevance(features, query)
            if rel is not None:
                out = select_by_scores(rel, k)
                out.extras = {"score": "query"}
                return out
            name = self.query_free
            extras["fallback"] = f"{name} (no query embedding)"
        if name == "uniform":
            return SelectOutput(rows=bin_middles(len(features), k), extras={"score": "uniform", **extras})
        if name == "diverse":
            return SelectOutput(rows=diverse_rows(features.embeddings, k), extras={"score": "diverse", **extras})
        out = select_by_scores(named_scores(features, name), k)
        out.extras = {"score": name, **extras}
        return out


@register_selector("teacher", "PEEK's teacher at inference: query-frame cosine + stratified argmax.")
class TeacherSelector(FrameSelector):
    """Query-frame cosine, min-max normalised, then stratified argmax (PEEK's teacher).

    fallback: what to do without a query embedding: ``"uniform"`` (middle frame of each bin;
              default) or ``"distinct"`` (stratified argmax of distance to the mean frame).
    """

    uses_query = True
    _parameter_constraints = {"fallback": [Choice("uniform", "distinct")]}

    def __init__(self, *, fallback: str = "uniform") -> None:
        self.fallback = fallback
        self._validate_params()

    def _select(self, features: FrameFeatures, *, k: int, budget: Budget, query: Query | None) -> SelectOutput:
        rel = query_relevance(features, query)
        if rel is not None:
            out = select_by_scores(minmax(rel), k)
            out.extras = {"score": "query"}
            return out
        note = f"{self.fallback} (no query embedding)"
        if self.fallback == "uniform":
            return SelectOutput(rows=bin_middles(len(features), k), extras={"score": "uniform", "fallback": note})
        out = select_by_scores(distinct_scores(features.embeddings), k)
        out.extras = {"score": "distinct", "fallback": note}
        return out

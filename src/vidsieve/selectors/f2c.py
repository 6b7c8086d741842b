"""F2C: from frames to clips: relevance anchors grown into clips at reduced resolution.

Source: "From Frames to Clips" (arXiv 2510.02262; no released code). vidsieve's
implementation is written from the paper; every choice the paper leaves open is named here.

Steps (``T`` candidates, ``r`` float ``[T]``):

1. Relevance ``r_i = cos(E(frame_i), E(query))`` (:func:`vidsieve.relevance.query_relevance`;
   for multiple choice the caller embeds question + options).
2. Anchors (watershed, :func:`watershed_anchors`): the strict local minima of ``r`` (plateaus
   count once) bound basins; each basin's maximum is a candidate. With more candidates than
   ``A`` (the anchor count), 1-D k-means over their time positions (:func:`kmeans_1d`:
   Lloyd from evenly spaced order statistics, deterministic) into ``A`` clusters keeps each
   cluster's best frame. With fewer candidates, all are anchors and ``A`` is their number
   (the formulas below use the anchors actually found, so their clips share the whole budget).
3. Clip per anchor (:func:`best_clip_lengths`): for ``l = 1..floor(l_max)``, a window of
   ``l`` frames containing the anchor (shifted inside the video at the ends) maximises
   ``J(l) = mean r~(clip) - lambda_r * red(clip) + lambda_l * l / l_max`` with ``l_max =
   s_max^2 * K / A`` (ties go to the shorter, then the more centred window). The paper
   centres the window on the anchor (``[a - (l-1)//2, a + l//2]``, ``placement="centred"``);
   vidsieve's default ``placement="best"`` also compares the other windows of each length
   that contain the anchor, because a watershed anchor is often the first or last frame of a
   relevant event (its relevance plateau), and the centred window then spends half the clip
   outside the event.
4. Resolution: ``s* = sqrt(A * l* / K)`` clipped to ``[1, s_max]`` per side; a clip frame costs
   ``1 / s*^2`` full frames (``floor(tokens_per_frame / s*^2)`` tokens, ``frame_tokens``).
   Overlapping clips with the same ``s`` merge; a frame inside clips of different ``s`` takes
   the smallest (finest) ``s``, and those clips' spans may overlap in ``clips``
   (``extras["clip_downscale"]`` gives each span's ``s``).

Commensurable terms of ``J`` (``normalize="minmax"``, the default). The paper's weights
(``lambda_r = 0.5``, ``lambda_l = 0.05``, length term ``l / l_max`` in ``(0, 1]``) only make
sense when relevance and redundancy are also unit-free quantities of about ``[0, 1]``: on raw
cosines the redundancy of any two frames of one shot is about 0.9 with every encoder, so
``0.5 * 0.9`` outweighs every relevance difference and every clip collapses to one frame
(measured: all clips of length 1 on pixel features of moving scenes). vidsieve puts both on
the video's own scale:

* ``r~`` = relevance min-max scaled over the video's candidates, in ``[0, 1]`` (as PEEK
  scales its teacher's query cosines): the most relevant frame is 1, the least 0, whatever
  the encoder's cosine range (CLIP text-image cosines span ~0.1, pixel-descriptor cosines
  ~0.5). ``normalize="rank"`` uses the relevance's rank instead (ties share their mean
  rank); measured, it exaggerates small differences where many frames have similar
  relevance (near the top of a smooth relevance curve), which cuts clips short there.
* ``red(clip) = (mean off-diagonal cos(clip) - c) / (1 - c)``, clipped to ``[-1, 1]``, where
  ``c`` is the median cosine between neighbouring candidates of the video: 0 means "frames as
  alike as neighbouring frames of this video usually are", 1 identical frames, negative a
  clip whose frames change more than usual. A single frame repeats nothing: ``red = 0``, the
  same value as an ordinary clip, so the redundancy term no longer forbids every clip; it
  shortens clips of static, repeated frames and lengthens clips where the picture changes.

``normalize="none"`` uses raw cosines for both (as the formula reads literally; clips then
collapse to single frames). Vectorised over anchors and lengths with prefix sums over each anchor's band of rows:
``sum_{i != j} cos = |sum u|^2 - l`` for unit vectors ``u``.

Budget mapping. ``budget.frames`` is read as *full-resolution frames' worth* (the frame count
a user compares against uniform sampling): F2C returns up to ``s_max^2 * budget.frames``
frames whose costs ``sum 1 / s_i^2`` add up to at most ``budget.frames`` (the selection
contract counts a frame downscaled by ``s`` per side as ``1 / s^2`` frames). ``K``, the
budget in full frames (real valued), is ``k = min(budget.frames, T)``, or ``min(k,
budget.tokens / tokens_per_frame)`` with a token budget, which F2C then fills: every clip costs at most ``K /
A`` full frames (``l <= K/A`` at ``s = 1``; ``l >= l_max`` is impossible above ``s_max``), so
the total is ``<= K`` frames and ``<= budget.tokens`` tokens. ``--frames 8`` thus gives 8
clips of about 4 frames at half resolution each (with ``s_max = 2``), 8 frames' worth of
tokens, not 8 frames. The anchor count ``A`` is ``k_anchor`` (None: ``max(1, floor(K))``,
the paper's ``K_anchor = K``), at most ``floor(s_max^2 K)`` and ``T``. The frame count varies
(shorter clips, merges): ``fills_budget = False``. One degenerate case: a token budget below
one frame at ``s_max`` (``tokens < tokens_per_frame / s_max^2``) still returns one frame, its
``frame_tokens`` cut to ``budget.tokens`` (the adapter must pool that frame further than
``s_max``); ``extras["token_cut"]`` is then True.

Without a query embedding (``query_free``): ``"flat"`` (default) treats every frame as equally
relevant: anchors are the middles of ``A`` equal time bins and clip lengths come from the
redundancy and length terms alone; ``"distinctiveness"`` uses ``r_i = 1 - cos(u_i, mean u)``
(frames unlike the video's average direction) and runs the watershed on it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..allocation import largest_remainder
from ..params import Choice, Float, Int, NoneValue
from ..registry import register_selector
from ..relevance import l2_normalize, minmax, query_relevance
from ..types import Budget, FrameFeatures, Query
from .base import FrameSelector, SelectOutput
from .uniform import linspace_rows


def basin_peaks(r: np.ndarray) -> np.ndarray:
    """Rows of each watershed basin's maximum; basins are bounded by strict local minima.

    r: float ``[T]``. A plateau counts as one point (its first row). Interior points only can
    be minima. Ties inside a basin go to the earliest row. Returns sorted int64 rows.
    """
    r = np.asarray(r, dtype=np.float64)
    t = r.size
    if t == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.r_[True, r[1:] != r[:-1]]  # first row of each plateau
    runs = np.flatnonzero(first)
    v = r[runs]
    is_min = np.zeros(runs.size, dtype=bool)
    if runs.size >= 3:
        is_min[1:-1] = (v[1:-1] < v[:-2]) & (v[1:-1] < v[2:])
    start = np.zeros(t, dtype=bool)
    start[runs[is_min]] = True
    basin = np.cumsum(start)  # basin id per row
    order = np.lexsort((np.arange(t), -r, basin))
    head = np.r_[True, basin[order][1:] != basin[order][:-1]]
    return np.sort(order[head]).astype(np.int64)


def kmeans_1d(x: np.ndarray, k: int, *, max_iter: int = 300) -> np.ndarray:
    """Lloyd's k-means on sorted 1-D points ``x`` ``[N]`` into ``k <= N`` contiguous groups.

    Deterministic: centres start at evenly spaced order statistics (the lmms-eval linspace
    rule over the sorted points); in 1-D every cluster is an interval, so assignment is a
    ``searchsorted`` against the midpoints between sorted centres and the update is a segment
    mean from prefix sums (vectorised, ``O(N log k)`` per iteration). A cluster that empties
    keeps its centre (and no points). Returns int64 labels ``[N]`` in ``0..k-1``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    centres = x[linspace_rows(n, k)]
    prefix = np.r_[0.0, np.cumsum(x)]
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(max_iter):
        mids = (centres[1:] + centres[:-1]) / 2.0
        labels = np.searchsorted(mids, x, side="right").astype(np.int64)  # a point on a midpoint joins the right centre
        lo = np.searchsorted(labels, np.arange(k), side="left")
        hi = np.searchsorted(labels, np.arange(k), side="right")
        counts = hi - lo
        new = np.where(counts > 0, (prefix[hi] - prefix[lo]) / np.maximum(counts, 1), centres)
        if np.array_equal(new, centres):
            break
        centres = new
    return labels


def watershed_anchors(r: np.ndarray, n_anchors: int) -> tuple[np.ndarray, int]:
    """Anchor rows: basin peaks, thinned by 1-D k-means over time to ``n_anchors`` if needed.

    Returns (sorted int64 anchor rows, number of basin-peak candidates). Each k-means cluster
    keeps its most relevant candidate (earliest on ties); an emptied cluster gives no anchor.
    """
    cand = basin_peaks(r)
    if cand.size <= n_anchors:
        return cand, int(cand.size)
    labels = kmeans_1d(cand.astype(np.float64), n_anchors)
    rc = np.asarray(r, dtype=np.float64)[cand]
    order = np.lexsort((cand, -rc, labels))  # per cluster: best relevance, then earliest
    head = np.r_[True, labels[order][1:] != labels[order][:-1]]
    return np.sort(cand[order[head]]).astype(np.int64), int(cand.size)


def clip_windows(anchors: np.ndarray, lengths: np.ndarray, t: int) -> np.ndarray:
    """Start rows ``[A, L]`` of windows of each length centred on each anchor, kept in ``[0, t)``.

    Window ``[a - (l-1)//2, a + l//2]``, shifted to fit (``l <= t`` required).
    """
    start = anchors[:, None] - (lengths[None, :] - 1) // 2
    return np.clip(start, 0, t - lengths[None, :])


def rank_scale(r: np.ndarray) -> np.ndarray:
    """Ranks of ``r`` ``[T]`` scaled to ``[0, 1]`` (ties share their mean rank; ``T = 1`` or a
    constant ``r`` gives 0.5 everywhere): float64 ``[T]``."""
    r = np.asarray(r, dtype=np.float64)
    t = r.size
    if t < 2:
        return np.full(t, 0.5)
    _, inv, counts = np.unique(r, return_inverse=True, return_counts=True)
    first = np.r_[0, np.cumsum(counts)[:-1]]
    mean_rank = first + (counts - 1) / 2.0  # 0-based mean rank of each distinct value
    return mean_rank[inv.reshape(-1)] / (t - 1)


def neighbour_cosine(x: np.ndarray) -> float:
    """Median cosine between consecutive rows of ``x`` ``[T, D]`` (1.0 for ``T < 2``)."""
    if x.shape[0] < 2:
        return 1.0
    u = l2_normalize(np.asarray(x, dtype=np.float64))
    return float(np.median(np.einsum("td,td->t", u[1:], u[:-1])))


def window_candidates(l_cap: int, placement: str) -> tuple[np.ndarray, np.ndarray]:
    """The (length, offset) windows ``J`` compares per anchor: int64 ``[M]`` each.

    A window of length ``l`` and offset ``o`` covers rows ``[a - o, a - o + l)`` of an anchor
    ``a``. ``"centred"``: one window per length, ``o = (l-1)//2`` (the paper's). ``"best"``:
    every window of each length that contains the anchor. Sorted by length, then by distance
    of ``o`` from the centred offset, so a first-maximum argmax prefers shorter, then more
    centred windows.
    """
    lens, offs = [], []
    for length in range(1, l_cap + 1):
        mid = (length - 1) // 2
        o = np.array([mid]) if placement == "centred" else np.arange(length)
        o = o[np.lexsort((o, np.abs(o - mid)))]
        lens.append(np.full(o.size, length))
        offs.append(o)
    return np.concatenate(lens).astype(np.int64), np.concatenate(offs).astype(np.int64)


def best_clip_lengths(
    r: np.ndarray, x: np.ndarray, anchors: np.ndarray, l_cap: int, l_max: float,
    lambda_r: float, lambda_l: float, sim_ref: float | None = None, placement: str = "centred",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per anchor, the window (length ``l*`` in ``1..l_cap``) maximising ``J`` and its start.

    r: float ``[T]`` relevance (already on the scale ``J`` uses); x: float ``[T, D]`` frame
    features (cosines are taken between them); anchors: int ``[A]``. ``sim_ref`` None: the
    redundancy is the raw mean off-diagonal cosine; a float ``c``: it is ``(mean cos - c) /
    (1 - c)`` clipped to ``[-1, 1]`` (0 when ``c >= 1``). Either way 0 for ``l = 1``.
    ``placement``: which windows are compared (:func:`window_candidates`); every window is
    shifted inside the video at the ends and still contains its anchor.
    Returns (``l*`` int64 ``[A]``, start rows int64 ``[A]``, ``J`` float64 ``[A, l_cap]``: the
    best ``J`` of each length). Only the ``A x (<= 2 l_cap)`` rows around the anchors are
    read: window sums come from prefix sums over each anchor's band, so the cost is
    ``O(A * M * D)`` for ``M`` windows per anchor, independent of ``T``.
    """
    t = r.size
    lengths, offsets = window_candidates(l_cap, placement)
    start = np.clip(anchors[:, None] - offsets[None, :], 0, t - lengths[None, :])  # [A, M]
    end = start + lengths[None, :]
    rp = np.r_[0.0, np.cumsum(r, dtype=np.float64)]
    mean_r = (rp[end] - rp[start]) / lengths[None, :]
    base = start.min(axis=1)  # [A] first row any window of the anchor uses
    width = int((end.max(axis=1) - base).max())
    band = np.minimum(base[:, None] + np.arange(width)[None, :], t - 1)  # [A, W]
    units = l2_normalize(np.asarray(x, dtype=np.float64)[band])  # [A, W, D]
    prefix = np.zeros((anchors.size, width + 1, units.shape[2]), dtype=np.float64)
    np.cumsum(units, axis=1, out=prefix[:, 1:])
    a_idx = np.arange(anchors.size)[:, None]
    s = prefix[a_idx, end - base[:, None]] - prefix[a_idx, start - base[:, None]]  # [A, M, D]
    sq = np.einsum("amd,amd->am", s, s)
    pairs = lengths * (lengths - 1)
    redund = (sq - lengths[None, :]) / np.maximum(pairs, 1)[None, :]
    if sim_ref is not None:
        span = 1.0 - sim_ref
        redund = np.clip((redund - sim_ref) / span, -1.0, 1.0) if span > 1e-9 else np.zeros_like(redund)
    redund = np.where(pairs[None, :] > 0, redund, 0.0)
    j = mean_r - lambda_r * redund + lambda_l * lengths[None, :] / l_max
    best = np.argmax(j, axis=1)
    rows = np.arange(anchors.size)
    per_length = np.maximum.reduceat(j, np.flatnonzero(np.r_[True, lengths[1:] != lengths[:-1]]), axis=1)
    return lengths[best], start[rows, best], per_length


def merge_clips(starts: np.ndarray, ends: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge clips (``[start, end)`` rows) that share a frame and have the same ``s2``.

    Returns merged (starts, ends, s2), sorted by start then ``s2``.
    """
    order = np.lexsort((starts, s2))
    st, en, sc = starts[order], ends[order], s2[order]
    # within each s-group (sorted by start) a clip opens a new run unless it overlaps the
    # running maximum end of the previous clips of its group.
    group_start = np.r_[True, sc[1:] != sc[:-1]]
    run_end = en.copy()
    for g0, g1 in _group_bounds(group_start):
        run_end[g0:g1] = np.maximum.accumulate(en[g0:g1])
    new = group_start | np.r_[True, st[1:] >= run_end[:-1]]
    run_id = np.cumsum(new) - 1
    m_st = st[new]
    m_en = np.zeros(m_st.size, dtype=np.int64)
    np.maximum.at(m_en, run_id, en)
    m_sc = sc[new]
    o = np.lexsort((m_sc, m_st))
    return m_st[o], m_en[o], m_sc[o]


def _group_bounds(group_start: np.ndarray) -> list[tuple[int, int]]:
    idx = np.flatnonzero(group_start).tolist() + [group_start.size]
    return list(zip(idx[:-1], idx[1:]))


@register_selector("f2c", "F2C: relevance anchors (watershed) grown into clips at reduced resolution.")
class F2CSelector(FrameSelector):
    """From frames to clips (see the module docstring for the method and budget mapping).

    lambda_r: weight of the clip's redundancy in ``J`` (paper 0.5).
    lambda_l: weight of the length term in ``J`` (paper 0.05).
    s_max: largest per-side downscale (paper 2).
    k_anchor: anchor count ``K_anchor``, or None for ``K`` (paper).
    tokens_per_frame: LLM tokens of one full-resolution frame (196: LLaVA-OneVision).
    query_free: ``"flat"`` or ``"distinctiveness"`` relevance when there is no query embedding.
    normalize: scale of ``J``'s terms: ``"minmax"`` (default), ``"rank"`` or ``"none"`` (raw
        cosines); see "Commensurable terms" in the module docstring.
    placement: ``"best"`` (default: of the windows of each length that contain the anchor,
        the one with the best ``J``) or ``"centred"`` (the paper's window centred on it).
    """

    uses_query = True
    fills_budget = False
    _parameter_constraints = {
        "lambda_r": [Float(ge=0)],
        "lambda_l": [Float(ge=0)],
        "s_max": [Float(ge=1)],
        "k_anchor": [Int(ge=1), NoneValue()],
        "tokens_per_frame": [Int(ge=1)],
        "query_free": [Choice("flat", "distinctiveness")],
        "normalize": [Choice("minmax", "rank", "none")],
        "placement": [Choice("best", "centred")],
    }

    def __init__(
        self,
        *,
        lambda_r: float = 0.5,
        lambda_l: float = 0.05,
        s_max: float = 2.0,
        k_anchor: int | None = None,
        tokens_per_frame: int = 196,
        query_free: str = "flat",
        normalize: str = "minmax",
        placement: str = "best",
    ) -> None:
        self.lambda_r = lambda_r
        self.lambda_l = lambda_l
        self.s_max = s_max
        self.k_anchor = k_anchor
        self.tokens_per_frame = tokens_per_frame
        self.query_free = query_free
        self.normalize = normalize
        self.placement = placement
        self._validate_params()

    def full_frame_budget(self, k: int, budget: Budget) -> float:
        """``K``: the budget in full-resolution frames (real), see the module docstring.

        ``k = min(budget.frames, T)``: more full frames than candidates cannot be shown.
        """
        big_k = float(k)
        if budget.tokens is not None:
            big_k = min(big_k, budget.tokens / self.tokens_per_frame)
        return big_k

    def _j_terms(self, r: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float | None]:
        """Relevance on ``J``'s scale and the redundancy reference ``c`` (None: raw cosines)."""
        if self.normalize == "none":
            return r, None
        rj = rank_scale(r) if self.normalize == "rank" else minmax(r)
        return rj, neighbour_cosine(x)

    def _select(self, features: FrameFeatures, *, k: int, budget: Budget, query: Query | None) -> SelectOutput:
        t = len(features)
        s2max = float(self.s_max) ** 2
        big_k = self.full_frame_budget(k, budget)
        a_target = max(1, math.floor(big_k)) if self.k_anchor is None else self.k_anchor
        a_target = max(1, min(a_target, math.floor(s2max * big_k + 1e-9), t))
        rel = query_relevance(features, query)
        extras: dict[str, Any] = {}
        scores: np.ndarray | None
        if rel is None and self.query_free == "flat":
            r = np.zeros(t)
            # the middles of a_target equal time bins (linspace would put one anchor on frame 0)
            anchors = np.unique(((np.arange(a_target) + 0.5) * t / a_target).astype(np.int64))
            n_cand = int(anchors.size)
            scores = None
            extras["query_free"] = "flat relevance: evenly spaced anchors"
        else:
            if rel is None:
                units = l2_normalize(features.embeddings.astype(np.float64))
                r = 1.0 - units @ l2_normalize(units.mean(0))
                extras["query_free"] = "distinctiveness: 1 - cos(frame, mean direction)"
            else:
                r = rel
            anchors, n_cand = watershed_anchors(r, a_target)
            scores = r
        a = anchors.size
        l_max = s2max * big_k / a
        l_cap = max(1, min(math.floor(l_max + 1e-9), t))
        rj, c_ref = self._j_terms(r, features.embeddings)
        lengths, starts, _ = best_clip_lengths(
            rj, features.embeddings, anchors, l_cap, l_max, self.lambda_r, self.lambda_l, sim_ref=c_ref,
            placement=self.placement,
        )
        # s^2 = A*l/K in [1, s_max^2]; tokens per frame = tokens_per_frame / s^2 (floored).
        s2 = np.clip(a * lengths / big_k, 1.0, s2max)
        m_st, m_en, m_s2 = merge_clips(starts, starts + lengths, s2)
        # every frame takes the finest s among the clips covering it (vectorised over frames).
        cover = np.full(t, np.inf)
        span = m_en - m_st
        frame_rows = np.repeat(m_st - np.r_[0, np.cumsum(span)[:-1]], span) + np.arange(span.sum())
        np.minimum.at(cover, frame_rows, np.repeat(m_s2, span))
        rows = np.flatnonzero(np.isfinite(cover)).astype(np.int64)
        frame_s2 = cover[rows]
        frame_tokens = None
        if budget.tokens is not None:
            frame_tokens = np.floor(self.tokens_per_frame / frame_s2 + 1e-9).astype(np.int64)
            extras["token_cut"] = bool(frame_tokens.sum() > budget.tokens)
            if extras["token_cut"]:
                frame_tokens = largest_remainder(budget.tokens, frame_tokens.astype(np.float64), cap=frame_tokens)
        idx = features.indices
        clips = np.stack([idx[m_st], idx[m_en - 1]], axis=1) if m_st.size else np.zeros((0, 2), np.int64)
        extras.update(
            anchors=anchors, candidates=n_cand, k_anchor=a, full_frames=big_k, l_max=l_max,
            l_cap=l_cap, clip_lengths=lengths, clip_rows=np.stack([m_st, m_en - 1], axis=1),
            clip_downscale=np.sqrt(m_s2), frame_equivalents=float(np.sum(1.0 / frame_s2)),
            normalize=self.normalize, redundancy_reference=c_ref,
        )
        return SelectOutput(
            rows=rows, frame_tokens=frame_tokens, downscale=np.sqrt(frame_s2), clips=clips,
            scores=scores, extras=extras,
        )

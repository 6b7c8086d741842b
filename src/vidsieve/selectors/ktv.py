"""KTV stage 1: question-agnostic keyframes by k-means, ranked by question relevance.

Source: "KTV: keyframes and key tokens" (arXiv 2602.03615) and the authors' released code
(github.com/hktk07/KTV, ``cluster_keyframe_and_order.py`` and ``ktv/llava/model/llava_arch.py``).

What it does (``k = budget.frames``, at most ``T``):

1. ``KMeans(k, init="k-means++", n_init, random_state)`` on the *raw* (unnormalised)
   candidate features ``[T, D]``.
2. One representative frame per centroid: the frame nearest (Euclidean) to the centroid among
   *all* frames (released code, ``representative="all"``) or among the cluster's own members
   (the paper's wording, ``representative="members"``).
3. If the ``k`` picks are not ``k`` unique frames, fall back to uniform sampling:
   ``fallback="linspace"`` (lmms-eval rule, :func:`~vidsieve.selectors.uniform.linspace_rows`,
   the vidsieve default) or ``fallback="floor"`` (the released rule, ``int(i*T/k)`` for
   ``i = 0..k-1``).
4. Rank the keyframes by ``100 * cos(frame, query)`` (:func:`vidsieve.relevance.query_relevance`;
   rank 0 = most relevant). The rank never drops a frame; it only sets the per-frame token
   ladder below. Without a query embedding there is no ranking (``extras["rank"] = None``,
   ``extras["ranking"]`` says why) and tokens are split evenly.

Budget mapping: ``k`` is the budget's frame count. The paper's setting is
``Budget(frames=6, tokens=504 | 936 | 1872)``; the released script's is
``Budget(frames=12, tokens=1872)``.

Per-frame tokens (``frame_tokens``, only when ``budget.tokens`` is set). The released ladders,
for ``tokens_per_frame = 576`` (CLIP ViT-L/14-336, the paper's tower), by relevance rank:

* 6 frames, 504:  ``[144, 72, 72, 72, 72, 72]``
* 6 frames, 936:  ``[288, 144, 144, 144, 144, 72]``
* 6 frames, 1872: ``[576, 288, 288, 288, 288, 144]``
* 12 frames, 1872: ``[288, 288, 144 x 8, 72, 72]`` (the released script's setting)

For another ``tokens_per_frame`` every entry is scaled by ``tokens_per_frame / 576`` and
floored; a ladder applies when ``budget.tokens`` lies between the sum of its scaled entries
and the scaled total rounded up (exactly the paper's totals when ``tokens_per_frame = 576``).
Every other case gets ``min(budget.tokens // k, tokens_per_frame)`` per frame (the released
``budget // frames``). So ``sum(frame_tokens) <= budget.tokens`` and each entry is at most
``tokens_per_frame``.

Deviations from the released code (all documented, none changes the method):

* Speed, same picks. ``solver="exact"`` (default) computes what the released
  ``KMeans(k, init="k-means++", n_init=10, random_state=0)`` computes, with every restart
  at once (one matrix product per seeding or Lloyd step for all restarts, scikit-learn's own
  summation order for the centres, an early exit for restarts that repeat an earlier one):
  the same centres, labels and picks; see :mod:`vidsieve.kmeans` for how, and for the rare
  near-ties where it hands the call to scikit-learn itself (``extras["kmeans"]`` says which
  solver answered). ``solver="sklearn"`` runs ``KMeans`` itself.
* Threads. ``threads=None`` (default) takes the machine's free cores (CPUs this process may
  use minus the 1-minute load average, fewer for small inputs) and limits the BLAS and
  OpenMP pools to that during the call (threadpoolctl), so k-means never oversubscribes a
  busy machine: on a shared 2-core machine scikit-learn's default 2 OpenMP threads were
  several times slower than one. An int fixes the count.
* Cheaper settings exist but move the picks: ``solver="minibatch"`` (mini-batch k-means),
  ``n_init=3``, or ``pca_dims`` (k-means on a randomized-PCA projection; centroids are then
  member means in the raw space, nearest frame found there). Changing only the seed of the
  released call already moves the picks (k-means with k far below the number of scenes has
  many near-equal optima). ``python -m vidsieve.eval.bench.kmeans`` times each against the
  released call in the same run and reports the pick agreement. Defaults stay the released
  ``n_init=10, random_state=0``, raw features.
* Ties (two frames equally near a centroid) go to the lowest row (``argmin``, as released).
* The released ladders are hard-coded for 6 and 12 frames; other frame counts crash there.
  vidsieve uses the even split for them. Released, 6 frames with any total other than 504 or
  1872 (even none) get the 936 ladder; vidsieve applies a ladder only at its own total
  (scaled as above), splits other totals evenly, and gives no ``frame_tokens`` without a
  token budget (native resolution).
* The ranking uses the features' own space (a CLIP/SigLIP-style encoder that embeds the
  question); the released code clusters DINOv2 features and ranks with a separate CLIP.
  With an image-only encoder (no query embedding) there is no ranking.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..allocation import largest_remainder
from ..params import Choice, Int, NoneValue
from ..registry import register_selector
from ..relevance import query_relevance
from ..types import Budget, FrameFeatures, Query
from .base import FrameSelector, SelectOutput
from .uniform import linspace_rows

#: released token ladders by relevance rank, for 576 tokens per frame: {frames: {total: ladder}}.
RELEASED_LADDERS: dict[int, dict[int, tuple[int, ...]]] = {
    6: {
        504: (144, 72, 72, 72, 72, 72),
        936: (288, 144, 144, 144, 144, 72),
        1872: (576, 288, 288, 288, 288, 144),
    },
    12: {1872: (288, 288) + (144,) * 8 + (72, 72)},
}
#: the tokens per frame the ladders were written for (CLIP ViT-L/14-336: 24 x 24).
LADDER_NATIVE = 576


def floor_rows(t: int, k: int) -> np.ndarray:
    """The released fallback: ``int(i*t/k)`` for ``i = 0..k-1`` (first frame kept, last not)."""
    return np.unique((np.arange(k, dtype=np.int64) * t) // k)


def kmeans_keyframes(
    x: np.ndarray,
    k: int,
    *,
    n_init: int = 10,
    random_state: int = 0,
    max_iter: int = 300,
    algorithm: str = "lloyd",
    pca_dims: int | None = None,
    representative: str = "all",
    threads: int | None = None,
    solver: str = "exact",
    info: dict[str, Any] | None = None,
) -> np.ndarray:
    """Rows of the frames nearest to the ``k`` k-means centroids (may contain repeats).

    x: float ``[T, D]`` raw features; ``1 <= k <= T``. Returns int64 ``[k]`` in centroid order.
    ``representative="all"`` searches every frame (released code), ``"members"`` only the
    centroid's own cluster (paper). Ties go to the lowest row. ``threads``: the cores the call
    may use (None: the machine's free cores, :func:`vidsieve.kmeans.machine_threads`). The
    exact solver splits its products over that many threads of one BLAS thread each (the
    optional PCA and the nearest frame run on one BLAS thread too); the other solvers give
    BLAS and OpenMP that many threads, or fewer for small problems.
    ``solver``: ``"exact"`` (scikit-learn's result
    computed with every restart at once, :func:`vidsieve.kmeans.kmeans_released`),
    ``"sklearn"`` (``KMeans`` itself) or ``"minibatch"`` (``MiniBatchKMeans``: faster, other
    picks). ``info``, when given, receives which solver answered and why.
    """
    from ..kmeans import machine_threads, thread_limit

    cores = machine_threads() if threads is None else max(1, int(threads))
    if solver == "exact" and algorithm == "lloyd":
        blas = 1  # the exact solver splits its steps over ``cores`` threads of one BLAS thread
    elif threads is None:
        blas = machine_threads(work=2.0 * n_init * x.shape[0] * x.shape[1] * k * 10)
    else:
        blas = cores
    with thread_limit(min(cores, blas)):
        return _kmeans_keyframes(
            x, k, n_init, random_state, max_iter, algorithm, pca_dims, representative, solver,
            {} if info is None else info, cores,
        )


def _kmeans_keyframes(
    x: np.ndarray, k: int, n_init: int, random_state: int, max_iter: int, algorithm: str,
    pca_dims: int | None, representative: str, solver: str, info: dict[str, Any], workers: int,
) -> np.ndarray:
    from ..kmeans import kmeans_released, kmeans_sklearn

    x = np.ascontiguousarray(x)
    z = x
    if pca_dims is not None and pca_dims < min(x.shape):
        from sklearn.decomposition import PCA

        z = PCA(n_components=pca_dims, svd_solver="randomized", random_state=random_state).fit_transform(x)
        z = np.ascontiguousarray(z, dtype=x.dtype)
    if solver == "minibatch":
        labels, centers = _minibatch(z, k, n_init, random_state, max_iter)
        info.update(solver="minibatch", reason="requested")
    else:
        if solver == "exact" and algorithm == "lloyd":
            res = kmeans_released(z, k, n_init=n_init, random_state=random_state, max_iter=max_iter,
                                  workers=workers)
        else:
            why = "requested" if solver == "sklearn" else f"algorithm={algorithm!r}"
            res = kmeans_sklearn(z, k, n_init=n_init, random_state=random_state, max_iter=max_iter,
                                 algorithm=algorithm, reason=why)
        info.update(solver=res.solver, reason=res.reason)
        labels, centers = res.labels, res.centers
    if z is x:
        centers = centers.astype(np.float64)
    else:
        # member means in the raw space (the k-means centroid definition).
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        sums = np.zeros((k, x.shape[1]), dtype=np.float64)
        np.add.at(sums, labels, x.astype(np.float64))
        centers = sums / np.maximum(counts, 1.0)[:, None]
    allowed = None
    if representative == "members":
        allowed = labels[None, :] == np.arange(k)[:, None]
    return nearest_rows(x, centers, allowed)


def nearest_rows(x: np.ndarray, centers: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """Row of the frame nearest (Euclidean) to each centre, int64 ``[k]``; ties to the lowest row.

    x ``[T, D]``, centers ``[k, D]``, allowed: bool ``[k, T]`` frames each centre may pick (a centre
    with none picks row 0). Exact: float32 products and norms find, per centre, the frames
    within their float32 error bound (``3 D u (|c| + |x|)^2``, u = 2^-24) of the nearest;
    float64 decides among those only, as a full float64 computation would.
    """
    k = centers.shape[0]
    c64 = centers.astype(np.float64)
    cn = np.einsum("ij,ij->i", c64, c64)
    d2 = bound = None
    if x.dtype == np.float32:
        with np.errstate(over="ignore", invalid="ignore"):
            # float32 norms too: their error (<= D u |x|^2) joins the products' in the bound
            xn = np.einsum("ij,ij->i", x, x).astype(np.float64)
            d2 = cn[:, None] - 2.0 * (centers.astype(np.float32) @ x.T).astype(np.float64) + xn[None, :]
            radius = np.sqrt(cn)[:, None] + np.sqrt(xn)[None, :]
            bound = 1.01 * 3.0 * x.shape[1] * 2.0**-24 * radius**2 + 1e-30
        if not (np.isfinite(d2).all() and np.isfinite(bound).all()):
            d2 = bound = None  # float32 overflow (huge features): float64 throughout
    if d2 is None or bound is None:  # float64 (or other) features: float64 throughout
        xf = x.astype(np.float64)
        d2 = cn[:, None] - 2.0 * (c64 @ xf.T) + np.einsum("ij,ij->i", xf, xf)[None, :]
        bound = np.zeros_like(d2)
    if allowed is not None:
        d2 = np.where(allowed, d2, np.inf)
    rows = np.zeros(k, dtype=np.int64)
    for j in range(k):
        if not np.isfinite(d2[j]).any():
            continue  # no frame allowed: row 0, the caller's uniqueness check then falls back
        best = int(np.argmin(d2[j]))
        near = np.flatnonzero(d2[j] - bound[j] <= d2[j, best] + bound[j, best])
        if near.size == 1:
            rows[j] = near[0]
            continue
        xs = x[near].astype(np.float64)
        exact = cn[j] - 2.0 * (xs @ c64[j]) + np.einsum("ij,ij->i", xs, xs)
        rows[j] = near[int(np.argmin(exact))]  # near is ascending: ties go to the lowest row
    return rows


def _minibatch(z: np.ndarray, k: int, n_init: int, random_state: int, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Mini-batch k-means (k-means++ seeding, batches of 1024 frames): labels, centres."""
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=random_state,
                         max_iter=max_iter, batch_size=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km.fit(z)
    return km.labels_.astype(np.int64), km.cluster_centers_


def token_ladder(k: int, tokens: int, tokens_per_frame: int) -> tuple[np.ndarray, str] | None:
    """The released ladder (by rank) for ``k`` frames and ``tokens``, scaled; None if none applies."""
    for total, ladder in RELEASED_LADDERS.get(k, {}).items():
        scaled = (np.asarray(ladder, dtype=np.int64) * tokens_per_frame) // LADDER_NATIVE
        hi = math.ceil(total * tokens_per_frame / LADDER_NATIVE)
        if int(scaled.sum()) <= tokens <= hi:
            return scaled, f"ladder-{k}-{total}"
    return None


@register_selector("ktv", "KTV keyframes: k-means on raw features, nearest frame per centroid, ranked by query.")
class KTVSelector(FrameSelector):
    """KTV's question-agnostic keyframes (k-means) with relevance-ranked token ladders.

    Parameters (see the module docstring for the method and its sources):

    n_init, random_state, max_iter, algorithm: passed to scikit-learn ``KMeans``
        (``init="k-means++"`` always). Released: ``n_init=10, random_state=0``.
    pca_dims: run k-means on this many PCA dimensions (None = raw features, released).
    representative: ``"all"`` (released: nearest among all frames) or ``"members"`` (paper).
    fallback: ``"linspace"`` (lmms-eval rule) or ``"floor"`` (released rule) when the picks
        are not ``k`` unique frames.
    tokens_per_frame: LLM tokens of one full frame, to scale the ladders (576: CLIP-L/336).
    threads: BLAS/OpenMP threads for k-means (None: the machine's free cores, never more).
    solver: ``"exact"`` (the released result, all restarts at once), ``"sklearn"`` (scikit-learn's
        ``KMeans`` itself) or ``"minibatch"`` (mini-batch k-means: faster, other picks).
    """

    uses_query = True
    fills_budget = True
    _parameter_constraints = {
        "n_init": [Int(ge=1)],
        "random_state": [Int(ge=0)],
        "max_iter": [Int(ge=1)],
        "algorithm": [Choice("lloyd", "elkan")],
        "pca_dims": [Int(ge=1), NoneValue()],
        "representative": [Choice("all", "members")],
        "fallback": [Choice("linspace", "floor")],
        "tokens_per_frame": [Int(ge=1)],
        "threads": [Int(ge=1), NoneValue()],
        "solver": [Choice("exact", "sklearn", "minibatch")],
    }

    def __init__(
        self,
        *,
        n_init: int = 10,
        random_state: int = 0,
        max_iter: int = 300,
        algorithm: str = "lloyd",
        pca_dims: int | None = None,
        representative: str = "all",
        fallback: str = "linspace",
        tokens_per_frame: int = 576,
        threads: int | None = None,
        solver: str = "exact",
    ) -> None:
        self.n_init = n_init
        self.random_state = random_state
        self.max_iter = max_iter
        self.algorithm = algorithm
        self.pca_dims = pca_dims
        self.representative = representative
        self.fallback = fallback
        self.tokens_per_frame = tokens_per_frame
        self.threads = threads
        self.solver = solver
        self._validate_params()

    def _select(self, features: FrameFeatures, *, k: int, budget: Budget, query: Query | None) -> SelectOutput:
        t = len(features)
        extras: dict[str, Any] = {}
        if k >= t:
            rows = np.arange(t, dtype=np.int64)
            extras["keyframes"] = "all candidates (k >= T)"
        else:
            info: dict[str, Any] = {}
            picks = kmeans_keyframes(
                features.embeddings, k, n_init=self.n_init, random_state=self.random_state,
                max_iter=self.max_iter, algorithm=self.algorithm, pca_dims=self.pca_dims,
                representative=self.representative, threads=self.threads, solver=self.solver,
                info=info,
            )
            extras["kmeans"] = info
            rows = np.unique(picks)
            extras["fallback"] = rows.size != k
            if rows.size != k:
                rows = linspace_rows(t, k) if self.fallback == "linspace" else floor_rows(t, k)
        rel = query_relevance(features, query)
        scores = None
        rank = None
        if rel is None:
            extras["ranking"] = "none: no query embedding in the features' space"
        else:
            scores = 100.0 * rel
            order = np.lexsort((rows, -scores[rows]))  # most relevant first, ties by time
            rank = np.empty(rows.size, dtype=np.int64)
            rank[order] = np.arange(rows.size)
            extras["ranking"] = "100*cos(frame, query)"
        extras["rank"] = rank
        frame_tokens = None
        if budget.tokens is not None:
            frame_tokens, extras["token_rule"] = self._frame_tokens(rows.size, budget.tokens, rank)
        return SelectOutput(rows=rows, frame_tokens=frame_tokens, scores=scores, extras=extras)

    def _frame_tokens(self, k: int, tokens: int, rank: np.ndarray | None) -> tuple[np.ndarray, str]:
        """Per-frame token allotment aligned with the sorted rows; ``sum <= tokens``."""
        ladder = None if rank is None else token_ladder(k, tokens, self.tokens_per_frame)
        if ladder is not None and rank is not None:
            values, rule = ladder
            return values[rank], rule
        per = min(tokens // k, self.tokens_per_frame)
        if per == 0:  # fewer tokens than frames: one token each to the first `tokens` frames
            return largest_remainder(tokens, np.ones(k), cap=1), "equal"
        return np.full(k, per, dtype=np.int64), "equal"

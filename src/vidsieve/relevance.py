"""Query relevance and score-to-frames helpers shared by query-aware selectors."""

from __future__ import annotations

import numpy as np

from .errors import ParameterError
from .types import FrameFeatures, Query


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """Unit vectors along ``axis`` (zero vectors stay zero)."""
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(n, eps)


def query_relevance(features: FrameFeatures, query: Query | None) -> np.ndarray | None:
    """Cosine similarity of each candidate frame to the query embedding.

    Returns float64 ``[T]`` in ``[-1, 1]``, or None when there is no query or the query has no
    embedding in the features' space (e.g. a text query with the ``pixel`` encoder). Callers
    decide their query-free behaviour for None and should say so in ``Selection.extras``.
    """
    if query is None or query.embedding is None:
        return None
    q = np.asarray(query.embedding, dtype=np.float64).reshape(-1)
    if q.shape[0] != features.embeddings.shape[1]:
        raise ParameterError(
            f"The query embedding has {q.shape[0]} dims but the frame features have "
            f"{features.embeddings.shape[1]}; embed the query with the same encoder."
        )
    f = l2_normalize(features.embeddings.astype(np.float64))
    return f @ l2_normalize(q)


def minmax(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Scale to ``[0, 1]``; a constant array maps to zeros."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi - lo > eps else np.zeros_like(x)


def stratified_argmax(scores: np.ndarray, k: int) -> np.ndarray:
    """Split ``[0, T)`` into ``k`` equal contiguous bins and take each bin's best row.

    scores: float ``[T]``; ``1 <= k <= T``. Ties go to the earliest row. Returns sorted unique
    int64 ``[k]``. Vectorised: no Python loop over bins.
    """
    s = np.asarray(scores, dtype=np.float64)
    t = s.shape[0]
    if not 1 <= k <= t:
        raise ParameterError(f"stratified_argmax needs 1 <= k <= T; got k={k}, T={t}.")
    edges = (np.arange(k + 1) * t) // k  # bins [edges[i], edges[i+1]), each non-empty
    bin_of = np.searchsorted(edges, np.arange(t), side="right") - 1
    # Sort by (bin, -score, row): the first row of each bin is its argmax.
    order = np.lexsort((np.arange(t), -s, bin_of))
    first = np.r_[True, bin_of[order][1:] != bin_of[order][:-1]]
    return np.sort(order[first]).astype(np.int64)

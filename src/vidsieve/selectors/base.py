"""The frame-selector contract.

Subclasses implement :meth:`FrameSelector._select`, which sees validated input and returns the
chosen *rows* (positions in the candidate features) plus optional per-frame outputs. The public
:meth:`FrameSelector.select` validates input, times the call, checks the result against the
contract and builds the :class:`~vidsieve.types.Selection`.

Budget behaviour (documented contract):

* ``len(features) == 0`` -> :class:`~vidsieve.errors.EmptyInputError`.
* ``budget.frames >= len(features)`` -> every candidate frame is returned (``min(budget, T)``
  frames; ``extras["budget_clipped"] = True``). This includes ``T == 1``.
* otherwise exactly ``budget.frames`` frames.

``budget.frames`` counts *full-resolution frame equivalents*: a chosen frame costs
``1 / downscale**2`` (1 without a downscale), so a selector that shows frames at reduced
resolution (F2C's clips) may return more frames than ``budget.frames`` while their cost stays
within it. Selectors that fill the budget return exactly ``min(budget.frames, T)`` frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..configurable import Configurable
from ..errors import ContractError, EmptyInputError, ParameterError
from ..types import Budget, FrameFeatures, Query, Selection


@dataclass
class SelectOutput:
    """What ``_select`` returns. All per-frame arrays are aligned with ``rows`` (sorted)."""

    rows: np.ndarray
    frame_tokens: np.ndarray | None = None
    downscale: np.ndarray | None = None
    clips: np.ndarray | None = None
    scores: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def frame_cost(downscale: np.ndarray | None, n: int) -> float:
    """Full-resolution frame equivalents of ``n`` chosen frames: ``sum(1 / downscale**2)``."""
    if downscale is None:
        return float(n)
    ds = np.asarray(downscale, dtype=np.float64)
    if ds.shape != (n,) or not np.all(ds >= 1.0):
        return float(n)  # malformed downscales are reported by the checks below
    return float(np.sum(1.0 / ds**2))


def as_query(query: Query | str | np.ndarray | None) -> Query | None:
    """Accept a :class:`Query`, a text string or a uint8 image for convenience."""
    if query is None or isinstance(query, Query):
        return query
    if isinstance(query, str):
        return Query(text=query)
    if isinstance(query, np.ndarray):
        return Query(image=query)
    raise ParameterError(
        f"query must be a Query, a str or a uint8 [H, W, 3] array; got {type(query).__name__}."
    )


class FrameSelector(Configurable):
    """Base class of all frame selectors (see module docstring for the contract)."""

    #: whether the selector uses the query when given one.
    uses_query: bool = False
    #: whether the selector always returns exactly ``min(budget.frames, T)`` frames. Selectors
    #: whose frame count follows from a rate, the video's duration or the token budget
    #: (``uniform-fps``, ``quota``, ``f2c``) set False and may return fewer (at least one).
    fills_budget: bool = True
    #: what the selector reads of a video: ``"nothing"`` (content-free: only the candidates'
    #: positions and timestamps, so no candidate frame is decoded for it; the uniform rules),
    #: ``"features"`` (candidate descriptors from a frame encoder, the default) or ``"pixels"``
    #: (descriptors plus the video's own pixels through ``FrameFeatures.source``, e.g. K-frames'
    #: TransNetV2 scene detector).
    reads: str = "features"

    def select(
        self,
        features: FrameFeatures,
        *,
        budget: Budget | int,
        query: Query | str | np.ndarray | None = None,
    ) -> Selection:
        """Choose at most ``budget.frames`` of the candidate frames.

        features: candidate frames' descriptors ``[T, D]``.
        budget:   a :class:`Budget` (an int is read as ``Budget(frames=n)``).
        query:    optional text/image query; selectors that use one read ``query.embedding``.
        """
        if not isinstance(features, FrameFeatures):
            raise ParameterError(
                f"{type(self).__name__}.select expects FrameFeatures; got {type(features).__name__}. "
                "Wrap a [T, D] array with FrameFeatures.from_array(arr, fps=...)."
            )
        if not isinstance(budget, Budget):
            budget = Budget(frames=budget)  # validates
        q = as_query(query)
        t = len(features)
        if t == 0:
            raise EmptyInputError(f"{type(self).__name__} got no candidate frames (T=0).")
        if not features.content and self.reads != "nothing":
            raise ParameterError(
                f"{type(self).__name__} reads frame features (reads={self.reads!r}) but got positions-only "
                "candidates; give it features from a frame encoder (vidsieve.features.extract_features)."
            )
        if not np.all(np.isfinite(features.embeddings)):
            raise ParameterError("Frame features contain NaN or inf.")
        k = min(budget.frames, t)
        start = time.perf_counter()
        out = self._select(features, k=k, budget=budget, query=q)
        elapsed = time.perf_counter() - start
        rows = np.asarray(out.rows, dtype=np.int64)
        self._check_output(rows, out, k, t, budget)
        extras = dict(out.extras)
        if budget.frames >= t:
            extras["budget_clipped"] = True
        timings = {"select": elapsed}
        return Selection(
            indices=features.indices[rows].astype(np.int64),
            timestamps=features.timestamps[rows].astype(np.float64),
            rows=rows,
            selector=self.name or type(self).__name__,
            params=self.get_params(),
            frame_tokens=None if out.frame_tokens is None else np.asarray(out.frame_tokens, np.int64),
            downscale=None if out.downscale is None else np.asarray(out.downscale, np.float64),
            clips=None if out.clips is None else np.asarray(out.clips, np.int64).reshape(-1, 2),
            scores=None if out.scores is None else np.asarray(out.scores, np.float64),
            timings=timings,
            extras=extras,
        )

    def _select(
        self, features: FrameFeatures, *, k: int, budget: Budget, query: Query | None
    ) -> SelectOutput:
        """Return ``k`` sorted unique rows in ``[0, len(features))``. ``1 <= k <= T``."""
        raise NotImplementedError

    def _check_output(self, rows: np.ndarray, out: SelectOutput, k: int, t: int, budget: Budget) -> None:
        name = type(self).__name__
        if rows.ndim != 1:
            raise ContractError(f"{name} returned rows of shape {rows.shape}; expected [K].")
        n_ok = rows.shape[0] == k if self.fills_budget else 1 <= rows.shape[0] <= t
        if not n_ok:
            raise ContractError(f"{name} returned {rows.shape} rows; the budget asks for {k}.")
        cost = frame_cost(out.downscale, rows.shape[0])
        if cost > k + 1e-9:
            raise ContractError(
                f"{name} returned frames worth {cost:.3f} full frames; the budget asks for at most {k}."
            )
        if k and (rows.min() < 0 or rows.max() >= t):
            raise ContractError(f"{name} returned rows outside [0, {t}).")
        if np.any(np.diff(rows) <= 0):
            raise ContractError(f"{name} returned rows that are not sorted and unique.")
        n = rows.shape[0]
        for attr in ("frame_tokens", "downscale"):
            arr = getattr(out, attr)
            if arr is not None and np.asarray(arr).shape != (n,):
                raise ContractError(f"{name}: {attr} must have shape ({n},).")
        if out.frame_tokens is not None:
            ft = np.asarray(out.frame_tokens)
            if np.any(ft < 0):
                raise ContractError(f"{name}: negative per-frame token allotment {ft.tolist()}.")
            if budget.tokens is not None and int(ft.sum()) > budget.tokens:
                raise ContractError(
                    f"{name}: per-frame allotments sum to {int(ft.sum())} > the token budget {budget.tokens}."
                )
        if out.downscale is not None and np.any(~(np.asarray(out.downscale, dtype=np.float64) >= 1.0)):
            raise ContractError(f"{name}: downscale factors must be >= 1.")
        if out.scores is not None and np.asarray(out.scores).shape != (t,):
            raise ContractError(f"{name}: scores must have shape ({t},) (one per candidate).")

"""Uniform sampling in the three rules that published baselines use ."""

from __future__ import annotations

import numpy as np

from ..params import Float
from ..registry import register_selector
from ..types import Budget, FrameFeatures, Query
from .base import FrameSelector, SelectOutput


def linspace_rows(t: int, k: int) -> np.ndarray:
    """lmms-eval rule: ``np.linspace(0, t-1, k, dtype=int)`` (truncation; both ends kept)."""
    return np.unique(np.linspace(0, t - 1, k, dtype=np.int64))


def centered_rows(t: int, k: int) -> np.ndarray:
    """VLMEvalKit rule: ``int(i*t/(k+1))`` for ``i = 1..k`` (both ends excluded)."""
    i = np.arange(1, k + 1, dtype=np.int64)
    return np.unique((i * t) // (k + 1))


@register_selector("uniform", "Evenly spaced frames, both ends kept (lmms-eval's linspace rule).")
class UniformSelector(FrameSelector):
    """``np.linspace(0, T-1, k, dtype=int)`` over the candidates, as lmms-eval samples."""

    reads = "nothing"

    def __init__(self) -> None:
        self._validate_params()

    def _select(self, features: FrameFeatures, *, k: int, budget: Budget, query: Query | None) -> SelectOutput:
        return SelectOutput(rows=linspace_rows(len(features), k), extras={"rule": "linspace"})


@register_selector("uniform-centered", "Evenly spaced frames, ends excluded (VLMEvalKit's rule).")
class CenteredUniformSelector(FrameSelector):
    """``int(i*T/(k+1))`` for ``i = 1..k``, as VLMEvalKit samples."""

    reads = "nothing"

    def __init__(self) -> None:
        self._validate_params()

    def _select(self, features: FrameFeatures, *, k: int, budget: Budget, query: Query | None) -> SelectOutput:
        return SelectOutput(rows=centered_rows(len(features), k), extras={"rule": "centered"})


@register_selector("uniform-fps", "Frames at a fixed rate, thinned by linspace to the frame cap.")
class FpsUniformSelector(FrameSelector):
    """One frame every ``1/fps`` seconds (nearest candidate), then linspace down to the cap.

    Unlike the other rules this one does not fill the budget: a short video at a low rate
    gets fewer frames than ``budget.frames`` (``fills_budget = False``).
    """

    fills_budget = False
    reads = "nothing"
    _parameter_constraints = {"fps": [Float(gt=0)]}

    def __init__(self, *, fps: float = 1.0) -> None:
        self.fps = fps
        self._validate_params()

    def _select(self, features: FrameFeatures, *, k: int, budget: Budget, query: Query | None) -> SelectOutput:
        ts = features.timestamps
        start = float(ts[0])
        duration = max(float(features.duration), float(ts[-1]) - start)
        targets = start + np.arange(0.0, max(duration, 1e-9), 1.0 / self.fps)
        pos = np.clip(np.searchsorted(ts, targets), 0, len(ts) - 1)
        prev = np.clip(pos - 1, 0, len(ts) - 1)
        nearest = np.where(np.abs(ts[prev] - targets) <= np.abs(ts[pos] - targets), prev, pos)
        rows = np.unique(nearest)
        if rows.size > k:
            rows = rows[linspace_rows(rows.size, k)]
        return SelectOutput(rows=rows, extras={"rule": "fps", "fps": self.fps})

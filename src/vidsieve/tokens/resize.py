"""Spatial downsampling of token grids: ``resize`` (to the allotment) and ``f2c-resolution``.

Both resample each frame's ``h x w`` grid to a smaller ``h' x w'`` grid (bilinear, or area =
adaptive average pooling) and report each output token at the native cell nearest its centre
(:func:`~vidsieve.tokens._common.nearest_cells`), so position ids stay meaningful. A frame whose
target is its native size is returned bit-identical.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError
from ..params import Choice
from ..registry import register_token_selector
from ._common import full_allotment, nearest_cells, resample_grids, target_grid
from .base import TokenInput, TokenSelection, TokenSelector


def resampled_selection(
    inputs: TokenInput, grids: list[tuple[int, int]], mode: str, extras: dict
) -> TokenSelection:
    """A :class:`TokenSelection` of each frame resampled to ``grids[f]`` (``(0, 0)`` = empty)."""
    h, w = inputs.grid
    idx = [nearest_cells(h, w, hh, ww) for hh, ww in grids]
    extras = {**extras, "grids": [tuple(g) for g in grids]}
    if all(g == (h, w) for g in grids):
        return TokenSelection(index=idx, embeddings=None, grid=(h, w), extras=extras)
    emb = resample_grids(inputs.tokens, grids, mode)
    return TokenSelection(index=idx, embeddings=emb, grid=(h, w), extras=extras)


@register_token_selector("resize", "Downsample each frame's token grid to its allotment (bilinear or area).")
class ResizeTokenSelector(TokenSelector):
    """Plain spatial downsampling: a strong, cheap baseline.

    Frame ``f`` is resampled to the largest grid with at most ``allotment[f]`` tokens (QuoTA's
    rule: ``floor(sqrt(n))`` per side, one side +1 if it fits; aspect kept on non-square grids,
    see :func:`~vidsieve.tokens._common.target_grid`). The grid rounding can leave a frame a
    few tokens under its allotment (``fills_budget = False``).

    mode: ``"bilinear"`` (default; ``F.interpolate``, ``align_corners=False``, as LLaVA pools)
    or ``"area"`` (adaptive average pooling).
    """

    fills_budget = False
    _parameter_constraints = {"mode": [Choice("bilinear", "area")]}

    def __init__(self, *, mode: str = "bilinear") -> None:
        self.mode = mode
        self._validate_params()

    def _select(self, inputs: TokenInput, allotment: np.ndarray) -> TokenSelection:
        h, w = inputs.grid
        if full_allotment(allotment, h * w):
            grids = [(h, w)] * inputs.num_frames
        else:
            grids = [target_grid(int(a), h, w) for a in allotment]
        return resampled_selection(inputs, grids, self.mode, {})


def downscaled_grid(h: int, w: int, s: float) -> tuple[int, int]:
    """F2C's grid for a per-side downscale ``s``: ``(ceil(h/s), ceil(w/s))``, never above native."""
    if s <= 1.0:
        return h, w
    return min(h, max(1, math.ceil(h / s - 1e-9))), min(w, max(1, math.ceil(w / s - 1e-9)))


@register_token_selector(
    "f2c-resolution", "F2C: downscale each frame's grid by its clip's factor s (tokens ~ 1/s^2)."
)
class F2CResolutionSelector(TokenSelector):
    """Applies ``TokenInput.downscale`` (F2C's per-frame factor ``s``).

    In the model path (``vidsieve.wrap``) it resamples the grid entering the LLM (LLaVA-OneVision
    14 x 14 after its own pooling, LLaVA-NeXT-Video 12 x 12, Qwen's merged grid per temporal
    group of 2 frames, whose factor is the larger of the two). Deviation: the paper pools the
    27 x 27 tower grid to ``ceil(27/s)``; resampling the pooled grid is the same resolution
    change one pooling later (no released code to compare with).

    Frame ``f`` is resampled to ``ceil(h/s_f) x ceil(w/s_f)`` (LLaVA: "pool the feature grid to
    ceil(27/s)"); if that exceeds ``allotment[f]`` it shrinks further to the largest grid within
    it holding at most ``allotment[f]`` tokens (QuoTA's rule, see
    :func:`~vidsieve.tokens._common.target_grid`). ``downscale`` None means ``s = 1`` for every
    frame (then this is ``resize``); ``s <= 1`` keeps the native grid (never upsamples).
    Frames are not topped up to their allotment (``fills_budget = False``).

    mode: ``"bilinear"`` (default, LLaVA-OV's pooling) or ``"area"``.
    """

    fills_budget = False
    _parameter_constraints = {"mode": [Choice("bilinear", "area")]}

    def __init__(self, *, mode: str = "bilinear") -> None:
        self.mode = mode
        self._validate_params()

    def _select(self, inputs: TokenInput, allotment: np.ndarray) -> TokenSelection:
        h, w = inputs.grid
        f = inputs.num_frames
        if inputs.downscale is None:
            s = np.ones(f)
        else:
            s = np.asarray(inputs.downscale, dtype=np.float64).reshape(-1)
            if s.shape != (f,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
                raise ParameterError(
                    f"F2CResolutionSelector: TokenInput.downscale must be {f} finite values > 0; "
                    f"got {inputs.downscale!r}."
                )
        grids = []
        for a, sf in zip(allotment.tolist(), s.tolist()):
            hs, ws = downscaled_grid(h, w, sf)
            grids.append(target_grid(min(int(a), hs * ws), hs, ws))
        return resampled_selection(inputs, grids, self.mode, {"downscale": s.tolist()})


__all__ = ["F2CResolutionSelector", "ResizeTokenSelector", "downscaled_grid", "resampled_selection"]

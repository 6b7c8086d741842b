"""The identity token selector: keeps every token up to the allotment, in raster order."""

from __future__ import annotations

import numpy as np
import torch

from ..registry import register_token_selector
from .base import TokenInput, TokenSelection, TokenSelector


@register_token_selector("none", "Keep the first tokens of each frame up to its allotment (all at full budget).")
class KeepAllTokens(TokenSelector):
    """No token selection: frame ``f`` keeps raster tokens ``0..allotment[f]-1``.

    At full allotment this is the identity, the reference for exactness tests.
    """

    def __init__(self) -> None:
        self._validate_params()

    def _select(self, inputs: TokenInput, allotment: np.ndarray) -> TokenSelection:
        idx = [torch.arange(int(a), dtype=torch.int64) for a in allotment]
        return TokenSelection(index=idx, embeddings=None, grid=inputs.grid)

"""Integer budget allocation shared by selectors (frames per scene, tokens per frame)."""

from __future__ import annotations

import numpy as np

from .errors import ParameterError


def largest_remainder(total: int, weights: np.ndarray, cap: np.ndarray | int | None = None) -> np.ndarray:
    """Split ``total`` into non-negative ints proportional to ``weights``, capped per item.

    weights: float ``[N]`` non-negative (all-zero means equal shares).
    cap:     int or int ``[N]`` upper bound per item; the excess is redistributed to the
             items that still have room, proportionally to their weights.
    Returns int64 ``[N]`` summing to ``min(total, sum(cap))``. Ties break toward lower index,
    so the result is deterministic.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ParameterError(f"weights must be a non-empty 1-D array; got shape {w.shape}.")
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ParameterError("weights must be finite and >= 0.")
    n = w.size
    if int(total) < 0:
        raise ParameterError(f"total must be >= 0; got {total}.")
    caps = np.full(n, int(total), dtype=np.int64) if cap is None else np.broadcast_to(
        np.asarray(cap, dtype=np.int64), (n,)
    ).copy()
    total = int(min(total, caps.sum()))
    out = np.zeros(n, dtype=np.int64)
    remaining = total
    active = caps > 0
    while remaining > 0 and active.any():
        ww = np.where(active, w, 0.0)
        if ww.sum() <= 0:
            ww = active.astype(np.float64)
        share = remaining * ww / ww.sum()
        base = np.floor(share).astype(np.int64)
        rem = share - base
        left = remaining - int(base.sum())
        if left > 0:
            order = np.lexsort((np.arange(n), -rem))  # largest remainder first, then index
            order = order[active[order]]
            base[order[:left]] += 1
        room = caps - out
        add = np.minimum(base, room)
        out += add
        remaining -= int(add.sum())
        active = (caps - out) > 0
    return out

"""QuoTA's token assignment: realise per-frame token quotas on the token grid.

QuoTA scores frames against the query (a frame selector's job), turns the scores into per-frame
token counts (:func:`quota_allotment`, which the frame stage uses to fill
``TokenInput.allotment``), and then *assigns* those counts on each frame's grid; the
``quota-assign`` selector does that last step with one of QuoTA's four assigners.

In the model path (``vidsieve.wrap``) it runs on the grid entering the LLM of every family:
LLaVA-OneVision's pooled 14 x 14 (after the projector and the bilinear pooling), LLaVA-NeXT-
Video's average-pooled 12 x 12, and Qwen's merged grid per temporal group of 2 frames (the
quotas of a group's frames are summed). The released code assigns on LLaVA-Video's pooled grid
too. Deviation: on Qwen the quota is realised per pair of frames, not per frame, because one
token there covers two frames.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..allocation import largest_remainder
from ..errors import ParameterError
from ..params import Choice
from ..registry import register_token_selector
from ._common import flat_tokens, full_allotment, mask_to_index, target_grid
from .base import TokenInput, TokenSelection, TokenSelector
from .resize import resampled_selection


def quota_allotment(frame_scores: np.ndarray, total: int, tokens_per_frame: int) -> np.ndarray:
    """QuoTA's per-frame token counts from per-frame relevance ``p_i`` in ``[0, 1]``.

    Weights ``w_i = (100 p_i)^2`` normalised to sum 1; counts proportional to ``w_i`` summing
    to ``total`` (fewer only if every frame is full), each capped at ``tokens_per_frame`` with
    the excess redistributed to the other frames in proportion to their weights
    (:func:`~vidsieve.allocation.largest_remainder`). QuoTA floors ``int(total * w_i)`` and
    caps only in its non-bilinear assigners; vidsieve hands out the rounding remainder
    (largest remainder first) and caps for every assigner. A count of 0 drops the frame.

    frame_scores: float ``[F]``. Returns int64 ``[F]``.
    """
    p = np.asarray(frame_scores, dtype=np.float64).reshape(-1)
    if p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ParameterError("quota_allotment: frame_scores must be a non-empty array of finite values >= 0.")
    w = (100.0 * p) ** 2
    return largest_remainder(int(total), w, cap=int(tokens_per_frame))


def linspace_cells(h: int, w: int, hh: int, ww: int) -> torch.Tensor:
    """Sorted raster indices of an ``hh x ww`` evenly spaced subset of an ``h x w`` grid.

    Rows ``round(linspace(0, h-1, hh))`` (both edges kept), columns likewise; unique because
    ``hh <= h`` and ``ww <= w``.
    """
    if hh * ww == 0:
        return torch.zeros(0, dtype=torch.int64)
    rows = np.rint(np.linspace(0, h - 1, hh)).astype(np.int64)
    cols = np.rint(np.linspace(0, w - 1, ww)).astype(np.int64)
    return torch.from_numpy((rows[:, None] * w + cols[None, :]).reshape(-1))


def tome_merge(x: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ToMe-style bipartite soft matching, repeated until each frame has ``keep[f]`` tokens.

    x: float ``[F, L, D]``; keep: int64 ``[F]`` in ``[1, L]``.
    Each round splits a frame's live tokens alternately (raster order) into sets A and B,
    matches every A token to its most cosine-similar B token, and merges the
    ``r = min(live - keep, |A|)`` best-matched A tokens into their matches (size-weighted
    means, as ToMe). All frames advance together; no Python loop over frames.
    Returns ``(alive bool [F, L], merged float32 [F, L, D], size float32 [F, L])``: the
    surviving tokens, their merged embeddings and how many original tokens each absorbed
    (itself included).
    """
    f, length, d = x.shape
    dev = x.device
    sums = x.float().clone()  # size-weighted sums
    size = torch.ones(f, length, device=dev)
    alive = torch.ones(f, length, dtype=torch.bool, device=dev)
    keep = keep.to(dev)
    half = (length + 1) // 2
    ar = torch.arange(length, device=dev)
    while True:
        live = alive.sum(dim=1)
        r = torch.minimum(live - keep, live // 2).clamp_min(0)  # [F]
        if int(r.max()) == 0:
            break
        rank = torch.cumsum(alive.to(torch.int64), dim=1) - 1
        in_a = alive & (rank % 2 == 0)
        in_b = alive & (rank % 2 == 1)
        # compact A and B to the front (stable: raster order kept)
        a_pos = torch.sort((~in_a).to(torch.int8), dim=1, stable=True).indices[:, :half]  # [F, half]
        b_pos = torch.sort((~in_b).to(torch.int8), dim=1, stable=True).indices[:, :half]
        a_ok = torch.gather(in_a, 1, a_pos)
        b_ok = torch.gather(in_b, 1, b_pos)
        mean = sums / size[..., None]
        unit = F.normalize(mean, dim=-1)
        ua = torch.gather(unit, 1, a_pos[..., None].expand(-1, -1, d))
        ub = torch.gather(unit, 1, b_pos[..., None].expand(-1, -1, d))
        sim = torch.bmm(ua, ub.transpose(1, 2))  # [F, half, half]
        sim = sim.masked_fill(~b_ok[:, None, :], float("-inf"))
        best, dst = sim.max(dim=2)  # [F, half]
        best = best.masked_fill(~a_ok, float("-inf"))
        order = torch.sort(best, dim=1, descending=True, stable=True).indices
        take = torch.zeros_like(a_ok)
        take.scatter_(1, order, ar[None, :half] < r[:, None])
        take &= a_ok
        src = a_pos  # [F, half] global positions of A tokens
        dst_global = torch.gather(b_pos, 1, dst)  # [F, half]
        w = take.float()
        add = torch.gather(sums, 1, src[..., None].expand(-1, -1, d)) * w[..., None]
        sums.scatter_add_(1, dst_global[..., None].expand(-1, -1, d), add)
        size.scatter_add_(1, dst_global, torch.gather(size, 1, src) * w)
        dead = torch.zeros_like(alive)
        dead.scatter_(1, src, take)
        alive &= ~dead
    return alive, sums / size[..., None], size


@register_token_selector(
    "quota-assign", "QuoTA's assigners: bilinear/pool/linspace/ToMe realisation of per-frame quotas."
)
class QuotaAssignSelector(TokenSelector):
    """Realise each frame's token quota on its grid, as QuoTA's assigners do.

    assigner:
        ``"bilinear"`` (default, QuoTA's best): bilinear interpolation of the frame's grid to
        the QuoTA target grid ``h' x w'`` (``h' = w' = floor(sqrt(n))``, one side +1 if it
        fits; aspect-preserving on non-square grids, see
        :func:`~vidsieve.tokens._common.target_grid`). ``"pool"``: adaptive average pooling
        to the same grid. ``"linspace"``: the evenly spaced ``h' x w'`` subset of the original
        tokens (pure pruning, unchanged embeddings). ``"tome"``: bipartite soft matching
        (ToMe) repeated until exactly ``n`` tokens remain.

    The frame's quota ``n`` is ``TokenInput.resolved_allotment()``: capped at the native size
    (QuoTA's bilinear assigner would upsample a dominant frame past native; vidsieve never
    does). Redistribution of the tokens freed by that cap belongs where quotas are made, see
    :func:`quota_allotment` (the contract forbids a frame exceeding its allotment here). The
    grid assigners keep ``h' * w' <= n`` tokens (up to about ``sqrt(n)`` fewer), ToMe exactly
    ``n``: ``fills_budget = False``. Output positions: for resampled grids the native cell
    nearest each output cell's centre; for ToMe the cell of each surviving token. ToMe's
    ``extras["merge_size"]`` gives, per frame, how many original tokens each output absorbed.
    """

    fills_budget = False
    _parameter_constraints = {"assigner": [Choice("bilinear", "pool", "linspace", "tome")]}

    def __init__(self, *, assigner: str = "bilinear") -> None:
        self.assigner = assigner
        self._validate_params()

    def _select(self, inputs: TokenInput, allotment: np.ndarray) -> TokenSelection:
        h, w = inputs.grid
        n = h * w
        full = full_allotment(allotment, n)
        if self.assigner in ("bilinear", "pool"):
            grids = [(h, w)] * inputs.num_frames if full else [target_grid(int(a), h, w) for a in allotment]
            mode = "bilinear" if self.assigner == "bilinear" else "area"
            return resampled_selection(inputs, grids, mode, {"assigner": self.assigner})
        if self.assigner == "linspace":
            grids = [target_grid(int(a), h, w) for a in allotment]
            idx = [linspace_cells(h, w, hh, ww) for hh, ww in grids]
            return TokenSelection(index=idx, embeddings=None, grid=(h, w),
                                  extras={"assigner": "linspace", "grids": grids})
        # ToMe
        k = torch.as_tensor(np.minimum(allotment, n), dtype=torch.int64)
        if full:
            idx = [torch.arange(n, dtype=torch.int64) for _ in range(inputs.num_frames)]
            return TokenSelection(index=idx, embeddings=None, grid=(h, w), extras={"assigner": "tome"})
        x = flat_tokens(inputs)
        alive, merged, size = tome_merge(x, k.clamp_min(1))
        alive &= (k > 0)[:, None].to(alive.device)
        index = mask_to_index(alive.cpu())
        emb = []
        sizes = []
        for f, cells in enumerate(index):
            if int(k[f]) >= n:  # untouched frame: bit-identical tokens
                emb.append(x[f])
            else:
                emb.append(merged[f, cells.to(merged.device)].to(x.dtype))
            sizes.append(size[f, cells.to(size.device)].cpu())
        return TokenSelection(index=index, embeddings=emb, grid=(h, w),
                              extras={"assigner": "tome", "merge_size": sizes})


__all__ = ["QuotaAssignSelector", "linspace_cells", "quota_allotment", "tome_merge"]

"""Helpers shared by the token selectors: grid geometry, resampling, top-k masks, fallbacks.

Private module (leading underscore: the registry does not import it on its own).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ParameterError
from .base import TokenInput


def target_grid(n: int, h: int, w: int) -> tuple[int, int]:
    """The largest QuoTA-style grid ``(h', w')`` for ``n`` tokens on a native ``h x w`` grid.

    Square native grids follow QuoTA exactly: ``h' = w' = floor(sqrt(n))``, then one side
    (the width) ``+1`` if ``h' * (w' + 1) <= n``. Non-square grids keep the native aspect
    ratio: ``h' = floor(sqrt(n * h / w))``, ``w' = floor(sqrt(n * w / h))`` (each clipped to
    ``[1, native]``, shrunk until ``h' * w' <= n``), then the same single ``+1`` (width first,
    else height) if it still fits. Always ``h' * w' <= n``; ``n >= h * w`` gives ``(h, w)``;
    ``n <= 0`` gives ``(0, 0)``.
    """
    if n <= 0:
        return 0, 0
    if n >= h * w:
        return h, w
    hh = min(h, max(1, math.floor(math.sqrt(n * h / w) + 1e-9)))
    ww = min(w, max(1, math.floor(math.sqrt(n * w / h) + 1e-9)))
    if hh * ww > n:  # only when one side was clipped up to 1 or down to native
        if ww >= hh:
            ww = max(1, n // hh)
        else:
            hh = max(1, n // ww)
    if ww + 1 <= w and hh * (ww + 1) <= n:
        ww += 1
    elif hh + 1 <= h and (hh + 1) * ww <= n:
        hh += 1
    return hh, ww


def nearest_cells(h: int, w: int, hh: int, ww: int) -> torch.Tensor:
    """int64 ``[hh*ww]`` raster index of the native cell containing each output cell's centre.

    Output cell ``(i, j)`` of an ``hh x ww`` grid laid over the native ``h x w`` grid has its
    centre in native row ``floor((i + 0.5) * h / hh)`` (likewise columns). With ``hh <= h`` and
    ``ww <= w`` consecutive centres are at least one cell apart, so the cells are unique and
    the result is sorted.
    """
    rows = ((2 * torch.arange(hh, dtype=torch.int64) + 1) * h) // (2 * hh)
    cols = ((2 * torch.arange(ww, dtype=torch.int64) + 1) * w) // (2 * ww)
    return (rows[:, None] * w + cols[None, :]).reshape(-1)


def resample_grids(
    tokens: torch.Tensor, grids: list[tuple[int, int]], mode: str
) -> list[torch.Tensor]:
    """Resample each frame's token grid to its own target size.

    tokens: float ``[F, h, w, D]``; grids: F target sizes ``(h', w')`` with ``h' <= h``,
    ``w' <= w``; mode: ``"bilinear"`` (``F.interpolate``, ``align_corners=False``, no
    antialias, as LLaVA pools its grids) or ``"area"`` (adaptive average pooling).
    Returns F tensors ``[h'*w', D]`` in the input dtype; a frame whose target is its native
    size gets its tokens unchanged (bit-identical), an empty target an empty tensor. Frames
    sharing a target size are resampled in one call.
    """
    f, h, w, d = tokens.shape
    out: list[torch.Tensor] = [tokens.new_empty(0, d)] * f
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, g in enumerate(grids):
        by_shape.setdefault(g, []).append(i)
    for (hh, ww), frames in by_shape.items():
        if hh * ww == 0:
            continue
        sel = tokens[frames]  # [k, h, w, D]
        if (hh, ww) == (h, w):
            res = sel.reshape(len(frames), h * w, d)
        else:
            x = sel.permute(0, 3, 1, 2).float()  # [k, D, h, w]
            if mode == "bilinear":
                y = F.interpolate(x, size=(hh, ww), mode="bilinear", align_corners=False)
            elif mode == "area":
                y = F.adaptive_avg_pool2d(x, (hh, ww))
            else:
                raise ParameterError(f"Unknown resampling mode {mode!r}; use 'bilinear' or 'area'.")
            res = y.permute(0, 2, 3, 1).reshape(len(frames), hh * ww, d).to(tokens.dtype)
        for j, fi in enumerate(frames):
            out[fi] = res[j]
    return out


def topk_mask(scores: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """bool ``[F, L]``: the ``k[f]`` highest scores of each row (ties: lower index first).

    scores: float ``[F, L]``; k: int64 ``[F]`` (clipped to ``[0, L]``). One stable sort, no
    Python loop over frames.
    """
    f, length = scores.shape
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices  # [F, L]
    rank_ok = torch.arange(length, device=scores.device)[None, :] < k.to(scores.device)[:, None]
    mask = torch.zeros(f, length, dtype=torch.bool, device=scores.device)
    mask.scatter_(1, order, rank_ok)
    return mask


def mask_to_index(mask: torch.Tensor) -> list[torch.Tensor]:
    """Per-row sorted int64 indices of the True entries of bool ``[F, L]`` (raster order)."""
    counts = mask.sum(dim=1).tolist()
    cols = torch.nonzero(mask, as_tuple=False)[:, 1].to(torch.int64).cpu()
    return list(torch.split(cols, counts))


def flat_tokens(inputs: TokenInput) -> torch.Tensor:
    """``[F, L, D]`` view of the input grids."""
    t = inputs.tokens
    return t.reshape(t.shape[0], -1, t.shape[-1])


def redundancy_features(inputs: TokenInput, source: str, owner: str) -> tuple[torch.Tensor, str]:
    """The ``[F, L, D']`` features redundancy/distinctiveness is computed on, and their name.

    source: ``"auto"`` (``pre_projector`` when given, else ``tokens``), ``"pre_projector"``
    (error if missing) or ``"tokens"``.
    """
    pre = inputs.pre_projector
    if source == "tokens" or (source == "auto" and pre is None):
        return flat_tokens(inputs), "tokens"
    if pre is None:
        raise ParameterError(
            f"{owner}: redundancy_source='pre_projector' but TokenInput.pre_projector is None; "
            "pass the vision features before the projector or use 'auto'/'tokens'."
        )
    if pre.ndim != 4 or tuple(pre.shape[:3]) != tuple(inputs.tokens.shape[:3]):
        raise ParameterError(
            f"{owner}: TokenInput.pre_projector must be [F, h, w, D'] matching tokens "
            f"{tuple(inputs.tokens.shape[:3])}; got {tuple(pre.shape)}."
        )
    return pre.reshape(pre.shape[0], -1, pre.shape[-1]), "pre_projector"


def per_frame_stat(stat: torch.Tensor, inputs: TokenInput, what: str, owner: str) -> torch.Tensor:
    """Validate a per-token statistic (``[F, h*w]``, or ``[F, h, w]``) and return float32 ``[F, L]``."""
    f, n = inputs.num_frames, inputs.tokens_per_frame
    if not isinstance(stat, torch.Tensor) or stat.numel() != f * n or stat.shape[0] != f:
        raise ParameterError(
            f"{owner}: {what} must be a tensor [F, h*w] = [{f}, {n}]; got "
            f"{getattr(stat, 'shape', type(stat).__name__)}."
        )
    s = stat.reshape(f, n).float()
    if not bool(torch.isfinite(s).all()):
        raise ParameterError(f"{owner}: {what} contains NaN or inf.")
    return s


def fallback_importance(inputs: TokenInput, kind: str, source: str, owner: str) -> tuple[torch.Tensor, str]:
    """Attention-free token importance, float32 ``[F, L]``, and a label for ``extras``.

    kind ``"norm"``: L2 norm of each token's features. kind ``"distinctiveness"``: one minus
    the mean cosine similarity to the other tokens of the frame (KTV's redundancy, O(L*D)).
    Both on the features chosen by ``source`` (see :func:`redundancy_features`).
    """
    from vidsieve.kernels.token_scores import ktv_redundancy

    x, name = redundancy_features(inputs, source, owner)
    if kind == "norm":
        return x.float().norm(dim=-1), f"norm({name})"
    if kind == "distinctiveness":
        return 1.0 - ktv_redundancy(x), f"distinctiveness({name})"
    raise ParameterError(f"{owner}: unknown fallback importance {kind!r}.")


def full_allotment(allotment: np.ndarray, n: int) -> bool:
    """True when every frame may keep all its ``n`` tokens (the identity case)."""
    return bool(np.all(np.asarray(allotment) >= n))

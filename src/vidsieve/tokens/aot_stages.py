"""AOT's stages as public functions on tensors (the selector in :mod:`.aot` chains them).

Shapes: ``N`` tokens of one frame, ``D`` features, ``M`` anchors, ``(h, w)`` the token grid.
Every function is pure (no selector state), so each stage can be checked on given tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

#: released nearest-neighbour share of the intra-frame merge.
RELEASED_NN_BLEND = 0.1


def grid_positions(h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """float32 ``[h*w, 2]`` cell positions ``(x, y)`` in ``[0, 1]^2`` (linspace per side)."""
    ys = torch.linspace(0.0, 1.0, h, device=device)
    xs = torch.linspace(0.0, 1.0, w, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], dim=-1).reshape(-1, 2)


def window_ids(h: int, w: int, g: int) -> torch.Tensor:
    """int64 ``[h*w]``: which of the ``g x g`` windows each raster cell falls in."""
    r = (torch.arange(h) * g) // h
    c = (torch.arange(w) * g) // w
    return (r[:, None] * g + c[None, :]).reshape(-1)


def select_anchors(
    shallow: torch.Tensor,
    deep: torch.Tensor,
    m: torch.Tensor,
    grid: tuple[int, int],
    window_grid: int,
    global_ratio: float,
    fill: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """AOT's anchor choice for every frame at once.

    shallow, deep: float ``[F, L]`` attention received (or a stand-in) at the shallow and deep
    layers; m: int64 ``[F]`` anchors wanted (``1 <= m < L``).
    Local: top ``floor(m (1 - g)) // window_grid**2`` of ``shallow`` in each window (all of a
    smaller window). Global: top of ``deep`` outside the local picks, ``m - local`` of them if
    ``fill`` else ``m - floor(m (1 - g))`` (released). Ties go to the lower raster index.
    Returns ``(anchor mask bool [F, L], local mask bool [F, L])``.
    """
    f, length = shallow.shape
    dev = shallow.device
    h, w = grid
    nwin = window_grid * window_grid
    wid = window_ids(h, w, window_grid).to(dev)  # [L]
    local_total = torch.floor(m.double() * (1.0 - global_ratio)).to(torch.int64)  # [F]
    per_win = local_total // nwin
    # order cells by (window, -score, index): stable sort by score, then stably by window
    o1 = torch.sort(shallow, dim=1, descending=True, stable=True).indices
    o2 = torch.sort(wid[o1], dim=1, stable=True).indices
    order = torch.gather(o1, 1, o2)  # [F, L]
    sizes = torch.bincount(wid, minlength=nwin)
    starts = torch.cumsum(sizes, 0) - sizes  # [nwin]
    rank = torch.arange(length, device=dev)[None, :] - starts[wid[order]]
    local = torch.zeros(f, length, dtype=torch.bool, device=dev)
    local.scatter_(1, order, rank < per_win[:, None])
    n_local = local.sum(dim=1)
    n_global = (m - n_local) if fill else (m - local_total)
    n_global = torch.minimum(n_global.clamp_min(0), length - n_local)
    deep_masked = deep.masked_fill(local, float("-inf"))
    og = torch.sort(deep_masked, dim=1, descending=True, stable=True).indices
    glob = torch.zeros_like(local)
    glob.scatter_(1, og, torch.arange(length, device=dev)[None, :] < n_global[:, None])
    return local | glob, local


def masked_quantile(v: torch.Tensor, valid: torch.Tensor, q: float) -> torch.Tensor:
    """Per-row ``q``-quantile (linear interpolation, as ``torch.quantile``) of the valid
    entries of float ``[B, N]``; rows without valid entries give ``+inf``. Returns ``[B]``."""
    big = torch.finfo(v.dtype).max
    s = torch.sort(v.masked_fill(~valid, big), dim=1).values
    n = valid.sum(dim=1)
    pos = q * (n - 1).clamp_min(0).to(v.dtype)
    lo = pos.floor().to(torch.int64)
    hi = pos.ceil().to(torch.int64)
    vlo = torch.gather(s, 1, lo[:, None])[:, 0]
    vhi = torch.gather(s, 1, hi[:, None])[:, 0]
    out = vlo + (vhi - vlo) * (pos - lo.to(v.dtype))
    return torch.where(n > 0, out, torch.full_like(out, float("inf")))


@dataclass
class IntraMerge:
    """Output of :func:`intra_merge` for ``F`` frames with at most ``Mmax`` anchors.

    cells: int64 ``[F, Mmax]`` anchor cells in raster order (padding after ``valid``);
    valid: bool ``[F, Mmax]``; merged: float32 ``[F, Mmax, D]`` merged anchors (0 on padding);
    mass: float32 ``[F, Mmax]`` tokens' worth of mass merged into each anchor;
    iterations: int64 ``[F]`` Sinkhorn updates done per frame.
    """

    cells: torch.Tensor
    valid: torch.Tensor
    merged: torch.Tensor
    mass: torch.Tensor
    iterations: torch.Tensor


def merged_map(x: torch.Tensor, cells: torch.Tensor, valid: torch.Tensor, merged: torch.Tensor) -> torch.Tensor:
    """The frame map after the intra merge: ``x`` float ``[F, L, D]`` with each anchor cell
    (``cells`` int64 ``[F, M]``, ``valid`` bool ``[F, M]``) replaced by its merged anchor
    (``merged`` ``[F, M, D]``); the other cells keep their own token (as the released code
    pools it). Returns a new ``[F, L, D]`` tensor."""
    out = x.clone()
    rows = torch.arange(x.shape[0], device=x.device)[:, None].expand_as(cells)
    out[rows[valid], cells[valid]] = merged[valid].to(x.dtype)
    return out


def pool_anchor_mask(anchors: torch.Tensor, pool: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """bool ``[F, n]``: the anchor mask bool ``[F, L]`` pooled like the features (``pool``:
    float ``[F, L, 1] -> [F, n, 1]``) and kept where the pooled value is ``>= 0.5``."""
    return pool(anchors.float()[..., None])[..., 0] >= 0.5


def released_layout(
    tokens: torch.Tensor, valid: torch.Tensor, cells: torch.Tensor, merged: torch.Tensor, keep: torch.Tensor,
    table: np.ndarray, n: int,
) -> tuple[list[torch.Tensor], list[torch.Tensor], bool]:
    """The released clip output as per-frame ``(index, embeddings)`` on an ``n``-cell grid.

    tokens: ``[Fc, P, D]`` each frame's pooled anchors (``valid`` bool ``[Fc, P]``, at grid
    ``cells`` int64 ``[Fc, P]``, raster order); merged: ``[Fc, P, D]`` the clip stage's output
    (its anchor rows hold the merged anchors); keep: bool ``[Fc, P]`` residuals kept by the
    clip stage; table: int64 ``[C, Q]`` rows of each clip (``-1`` = none).
    Per clip, in sequence order: the anchor frame's original anchors, each inner frame's kept
    residuals, then the merged anchors (emitted with the clip's last frame, after its
    residuals; its index adds the anchor frame's cells, completed with the lowest free cells).
    A one-frame clip emits its anchors only. Returns ``(index per frame, embeddings per frame,
    fits)``; ``fits`` is False when a last frame would need more than ``n`` cells (its index is
    then cut to ``n`` and its embeddings to match).
    """
    fc = tokens.shape[0]
    index: list[torch.Tensor] = [torch.zeros(0, dtype=torch.int64)] * fc
    emb: list[torch.Tensor] = [tokens.new_zeros(0, tokens.shape[-1])] * fc
    fits = True
    for clip in table:
        rows = [int(r) for r in clip if r >= 0]
        a = rows[0]
        a_cells = cells[a][valid[a]]
        index[a], emb[a] = a_cells.cpu(), tokens[a][valid[a]]
        if len(rows) == 1:
            continue
        for r in rows[1:]:
            index[r], emb[r] = cells[r][keep[r]].cpu(), tokens[r][keep[r]]
        last = rows[-1]
        y = merged[a][valid[a]]
        need = int(index[last].numel()) + int(y.shape[0])
        taken = torch.zeros(n, dtype=torch.bool)
        taken[index[last]] = True
        taken[a_cells.cpu()] = True
        free = torch.nonzero(~taken).squeeze(1)
        extra = need - int(taken.sum())
        if extra > 0:
            taken[free[:extra]] = True
        e = torch.cat([emb[last], y])
        if need > n:
            fits = False
            e = e[:n]
        index[last] = torch.nonzero(taken).squeeze(1)[:need]
        emb[last] = e
    return index, emb, fits


def _truncate_layout(index: list[torch.Tensor], emb: list[torch.Tensor], ceiling: int,
                     n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Keep the first ``ceiling`` tokens of the sequence (frame order, then within a frame);
    a frame keeps the first cells of its index."""
    out_i, out_e, left = [], [], ceiling
    for i, e in zip(index, emb):
        k = max(0, min(int(e.shape[0]), int(i.numel()), left, n))
        out_i.append(i[:k])
        out_e.append(e[:k])
        left -= k
    return out_i, out_e

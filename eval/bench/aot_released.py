"""AOT's released intra-frame stage, restated in plain PyTorch: the baseline of a benchmark.

The authors' code (a fork of LLaVA-NeXT) is not bundled. This restatement follows its
structure and arithmetic so that a timing against it means "vidsieve vs the released way":

- local anchors: per frame and per 9 x 9 window of the 27 x 27 grid, ``torch.topk`` of the
  shallow-layer attention, each pick mapped back to a raster index with a Python ``divmod``
  on ``.item()``;
- global anchors: the deep-layer attention with the local picks set to 0, ``torch.topk`` of
  the rest;
- merge: per frame, the cosine of every dropped token with every anchor by a broadcast
  ``F.cosine_similarity`` over ``[N, M, D]`` (the released way to avoid a normalised copy),
  cost ``(1 - cos) + 0.5 * ||p_n - p_m||`` with positions in ``[0, 1]^2``, one Sinkhorn over
  all frames at once whose stop test (mean change of the row scaling < 1e-2) is pooled over
  the batch, the plan ``diag(r) K diag(c)``; anchors updated as
  ``(x_a + sum_n T_na x_n) / (1 + sum_n T_na)``, blended ``0.9 *`` that ``+ 0.1 *`` the mean
  of each anchor with the dropped tokens whose nearest anchor (by cosine) it is; the merged
  anchors written back into their cells.

Shapes: ``F`` frames, ``L = 27 * 27`` tokens, ``D`` features, ``m`` anchors per frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812


def released_window_anchors(att: torch.Tensor, k_total: int, window: int = 9) -> torch.Tensor:
    """int64 ``[F, k]``: per frame the top ``k_total // windows`` cells of every window."""
    frames, length = att.shape
    side = int(round(length ** 0.5))
    grid = att.view(frames, side, side)
    per = k_total // ((side // window) ** 2)
    out = []
    for f in range(frames):
        picks = []
        for i in range(side // window):
            for j in range(side // window):
                cell = grid[f, i * window:(i + 1) * window, j * window:(j + 1) * window].reshape(-1)
                for idx in torch.topk(cell, per).indices:
                    dy, dx = divmod(idx.item(), window)
                    picks.append((i * window + dy) * side + j * window + dx)
        out.append(picks)
    return torch.tensor(out, dtype=torch.int64)


def released_anchor_mask(shallow: torch.Tensor, deep: torch.Tensor, m: int) -> torch.Tensor:
    """bool ``[F, L]``: half of ``m`` from the windows of ``shallow``, the rest from ``deep``."""
    n_local = int(m * 0.5)
    local = released_window_anchors(shallow, n_local)
    deep = deep.clone()
    for f in range(deep.shape[0]):
        deep[f, local[f]] = 0
    glob = torch.topk(deep, k=m - n_local, dim=1).indices
    mask = torch.zeros(deep.shape, dtype=torch.bool)
    mask.scatter_(1, torch.cat([local, glob], dim=1), True)
    return mask


def released_sinkhorn(kernel: torch.Tensor, u: torch.Tensor, v: torch.Tensor, max_iter: int = 100) -> torch.Tensor:
    """Plans ``[B, N, M]`` for ``kernel = exp(-C / eps)``; stop when the mean (over the whole
    batch) change of the row scaling falls below 1e-2."""
    r = torch.ones_like(u)
    c = torch.ones_like(v)
    for _ in range(max_iter):
        r0 = r
        r = u / torch.matmul(kernel, c.unsqueeze(-1)).squeeze(-1)
        c = v / torch.matmul(kernel.transpose(1, 2).contiguous(), r.unsqueeze(-1)).squeeze(-1)
        if (r - r0).abs().mean().item() < 1e-2:
            break
    return r.unsqueeze(-1) * c.unsqueeze(-2) * kernel


def released_intra_merge(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """float ``[F, L, D]``: ``x`` with every anchor cell (``mask`` bool ``[F, L]``, the same
    count per frame) replaced by its merged anchor."""
    frames, length, dim = x.shape
    side = int(round(length ** 0.5))
    kept = torch.stack([x[f][mask[f]] for f in range(frames)])  # [F, M, D]
    dropped = torch.stack([x[f][~mask[f]] for f in range(frames)])  # [F, N, D]
    yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    pos = torch.stack([xx, yy], dim=-1).view(-1, 2)
    pos_kept = torch.stack([pos[mask[f]] for f in range(frames)])
    pos_dropped = torch.stack([pos[~mask[f]] for f in range(frames)])
    spatial = torch.cdist(pos_dropped, pos_kept, p=2)  # [F, N, M]
    cos = torch.cat([F.cosine_similarity(dropped[f][None].unsqueeze(2), kept[f][None].unsqueeze(1), dim=3)
                     for f in range(frames)])  # [F, N, M]
    n, m = dropped.shape[1], kept.shape[1]
    cost = (1.0 - cos) + 0.5 * spatial
    with torch.no_grad():
        plan = released_sinkhorn(torch.exp(-cost / 0.1), torch.full((1, n), 1.0 / n), torch.full((1, m), 1.0 / m))
    agg = torch.einsum("bnm,bnd->bmd", plan, dropped)
    load = plan.sum(dim=1).clamp_min(1e-9).unsqueeze(-1)
    ot = (kept + agg) / (1.0 + load)
    nearest = cos.argmax(dim=2)  # [F, N]
    nn_sum = kept.clone()
    nn_sum.scatter_add_(1, nearest.unsqueeze(-1).expand(-1, -1, dim), dropped)
    count = torch.zeros(frames, m, dtype=torch.int32)
    count.scatter_add_(1, nearest, torch.ones_like(nearest, dtype=torch.int32))
    nn_mean = nn_sum / (1 + count.unsqueeze(2))
    merged = 0.1 * nn_mean + 0.9 * ot
    out = x.clone()
    for f in range(frames):
        out[f, mask[f]] = merged[f]
    return out

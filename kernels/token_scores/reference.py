"""PyTorch reference (oracle and CPU fallback) of the KTV token scores.

Per frame ``f`` with tokens ``x[f]`` ``[L, D]``:

* unit vectors ``x^_j = x_j / max(||x_j||, 1e-12)`` and their sum ``s = sum_k x^_k``;
* redundancy ``r_j = (x^_j . s - 1) / (L - 1)``: the mean cosine similarity of token ``j`` to
  the other ``L - 1`` tokens, in O(L*D) without the L x L matrix (``L = 1``: 0);
* score ``alpha * minmax(importance) + (1 - alpha) * (1 - minmax(r))``, where ``minmax`` maps a
  row to ``[0, 1]`` and a constant row to zeros.

All arithmetic is float32 whatever the input dtype.
"""

from __future__ import annotations

import torch

NORM_EPS = 1e-12
#: A row whose max - min is at most this is treated as constant (minmax -> 0).
RANGE_EPS = 1e-12


def ktv_redundancy_ref(x: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity of each token to the others of its frame.

    x: float ``[F, L, D]``. Returns float32 ``[F, L]``.
    """
    xf = x.float()
    length = x.shape[1]
    if length <= 1:
        return torch.zeros(x.shape[0], length, dtype=torch.float32, device=x.device)
    rn = 1.0 / torch.linalg.vector_norm(xf, dim=-1).clamp_min(NORM_EPS)  # [F, L]
    # s = sum_k x_k / |x_k| and x^_j . s = (x_j . s) / |x_j|, as two batched GEMVs: no
    # normalised copy of x and no L x L matrix.
    s = torch.bmm(rn.unsqueeze(1), xf)  # [F, 1, D]
    dot = torch.bmm(xf, s.transpose(1, 2)).squeeze(-1) * rn  # [F, L]
    return (dot - 1.0) / (length - 1)


def minmax_rows(v: torch.Tensor) -> torch.Tensor:
    """Scale each row of float ``[F, L]`` to ``[0, 1]``; a constant row maps to zeros."""
    lo = v.amin(dim=-1, keepdim=True)
    hi = v.amax(dim=-1, keepdim=True)
    rng = hi - lo
    return torch.where(rng > RANGE_EPS, (v - lo) / rng.clamp_min(RANGE_EPS), torch.zeros_like(v))


def ktv_token_scores_ref(x: torch.Tensor, importance: torch.Tensor, alpha: float) -> torch.Tensor:
    """KTV key-token score per token. x ``[F, L, D]``, importance ``[F, L]`` -> float32 ``[F, L]``."""
    red = ktv_redundancy_ref(x)
    imp = minmax_rows(importance.float())
    return alpha * imp + (1.0 - alpha) * (1.0 - minmax_rows(red))

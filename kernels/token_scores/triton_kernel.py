"""Triton kernel of the KTV token scores (see :mod:`.reference` for the definition).

One program per frame. The frame's ``L`` tokens stay in registers along the token axis
(``BLOCK_L = next_pow2(L)``) while the feature axis is streamed in ``BLOCK_D`` chunks: pass 1
accumulates squared norms; pass 2 forms, per chunk, the column sum ``s_c`` of the unit vectors
and immediately adds ``x^_j[c] . s_c`` to each token's dot product, so ``x^_j . s`` is complete
after one sweep and no ``L x L`` matrix (nor ``s`` itself) is ever stored. Both min-max
normalisations and the blend happen in registers; the output is written once. ``x`` is read
twice (norms must be known before the unit-vector sum).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import empty_output
from .reference import NORM_EPS, RANGE_EPS

#: Register tile budget (elements of the ``[BLOCK_L, BLOCK_D]`` tile).
TILE_ELEMS = 16384


@triton.jit
def _ktv_scores_kernel(
    x_ptr,
    imp_ptr,
    out_ptr,
    L,
    D,
    stride_xf,
    stride_xl,
    stride_xd,
    stride_if,
    stride_il,
    stride_of,
    alpha,
    NORM_EPS_C: tl.constexpr,
    RANGE_EPS_C: tl.constexpr,
    REDUNDANCY_ONLY: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    i_f = tl.program_id(0).to(tl.int64)
    o_l = tl.arange(0, BLOCK_L).to(tl.int64)
    m_l = o_l < L
    p_x = x_ptr + i_f * stride_xf + o_l[:, None] * stride_xl  # [BLOCK_L, 1]

    # pass 1: squared norms of every token
    b_sq = tl.zeros([BLOCK_L], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        o_d = d0 + tl.arange(0, BLOCK_D).to(tl.int64)
        m_x = m_l[:, None] & (o_d[None, :] < D)
        b_x = tl.load(p_x + o_d[None, :] * stride_xd, mask=m_x, other=0.0).to(tl.float32)
        b_sq += tl.sum(b_x * b_x, axis=1)  # [BLOCK_L]
    b_rn = 1.0 / tl.maximum(tl.sqrt(b_sq), NORM_EPS_C)  # [BLOCK_L]

    # pass 2: dot_j = sum_c x^_j[c] . s_c with s_c = sum_k x^_k[c]  (padded rows are zero)
    b_dot = tl.zeros([BLOCK_L], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        o_d = d0 + tl.arange(0, BLOCK_D).to(tl.int64)
        m_x = m_l[:, None] & (o_d[None, :] < D)
        b_x = tl.load(p_x + o_d[None, :] * stride_xd, mask=m_x, other=0.0).to(tl.float32)
        b_xh = b_x * b_rn[:, None]  # [BLOCK_L, BLOCK_D]
        b_s = tl.sum(b_xh, axis=0)  # [BLOCK_D]
        b_dot += tl.sum(b_xh * b_s[None, :], axis=1)  # [BLOCK_L]
    lm1 = tl.maximum(L - 1, 1).to(tl.float32)
    b_red = tl.where(L > 1, (b_dot - 1.0) / lm1, 0.0)  # [BLOCK_L]

    p_o = out_ptr + i_f * stride_of + o_l
    if REDUNDANCY_ONLY:
        tl.store(p_o, b_red, mask=m_l)
    else:
        r_lo = tl.min(tl.where(m_l, b_red, float("inf")), axis=0)
        r_hi = tl.max(tl.where(m_l, b_red, float("-inf")), axis=0)
        r_rng = r_hi - r_lo
        b_rn01 = tl.where(r_rng > RANGE_EPS_C, (b_red - r_lo) / tl.maximum(r_rng, RANGE_EPS_C), 0.0)
        b_imp = tl.load(imp_ptr + i_f * stride_if + o_l * stride_il, mask=m_l, other=0.0)
        b_imp = b_imp.to(tl.float32)
        i_lo = tl.min(tl.where(m_l, b_imp, float("inf")), axis=0)
        i_hi = tl.max(tl.where(m_l, b_imp, float("-inf")), axis=0)
        i_rng = i_hi - i_lo
        b_in01 = tl.where(i_rng > RANGE_EPS_C, (b_imp - i_lo) / tl.maximum(i_rng, RANGE_EPS_C), 0.0)
        b_score = alpha * b_in01 + (1.0 - alpha) * (1.0 - b_rn01)
        tl.store(p_o, b_score, mask=m_l)


def ktv_scores_triton(
    x: torch.Tensor, importance: torch.Tensor | None, alpha: float, *, redundancy_only: bool
) -> torch.Tensor:
    """Launch :func:`_ktv_scores_kernel`. x ``[F, L, D]``; importance ``[F, L]`` (ignored when
    ``redundancy_only``). Returns float32 ``[F, L]``."""
    f, length, d = x.shape
    out = empty_output((f, length), x.device)
    imp = out if importance is None else importance  # never read when redundancy_only
    block_l = max(triton.next_power_of_2(length), 16)
    block_d = min(max(TILE_ELEMS // block_l, 4), 128, max(triton.next_power_of_2(d), 4))
    _ktv_scores_kernel[(f,)](
        x,
        imp,
        out,
        length,
        d,
        x.stride(0),
        x.stride(1),
        x.stride(2),
        imp.stride(0),
        imp.stride(1),
        out.stride(0),
        float(alpha),
        NORM_EPS_C=NORM_EPS,
        RANGE_EPS_C=RANGE_EPS,
        REDUNDANCY_ONLY=redundancy_only,
        BLOCK_L=block_l,
        BLOCK_D=block_d,
        num_warps=8,
    )
    return out

"""Triton kernels of attention received per token (flash-style, no L x L matrix).

Pass 1 (:func:`_attn_row_lse_kernel`): one program per (query block, batch*head) streams the
keys and keeps an online row max / normaliser, writing the base-2 log-sum-exp of every query
row. Pass 2 (:func:`_attn_col_sum_kernel`): one program per (key block, batch*head) streams the
queries, recomputes the logits and adds ``exp2(logit - lse)`` down each column. The per-head
column sums ``[B*H, L]`` are averaged over heads on the host (``B*H*L`` floats).

Logits are computed with ``tl.dot``; float32 inputs use IEEE precision (no TF32), half inputs
use tensor cores with float32 accumulation.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .._dispatch import empty_output, interpreter_enabled

LOG2E = 1.4426950408889634


@triton.jit
def _load_tile(ptr, i_b, i_h, o_r, o_d, m_r, m_d, stride_b, stride_h, stride_l, stride_d, UPCAST: tl.constexpr):
    """Rows ``o_r`` of one (batch, head) slice: a ``[BLOCK, BLOCK_D]`` tile, zero-padded."""
    p = ptr + i_b * stride_b + i_h * stride_h + o_r[:, None] * stride_l + o_d[None, :] * stride_d
    b = tl.load(p, mask=m_r[:, None] & m_d[None, :], other=0.0)
    if UPCAST:
        b = b.to(tl.float32)
    return b


@triton.jit
def _scaled_scores(b_q, b_k, qk_scale, IEEE: tl.constexpr):
    """``q k^T * qk_scale`` for a ``[BLOCK_M, BLOCK_D]`` x ``[BLOCK_N, BLOCK_D]`` tile pair."""
    if IEEE:
        b_s = tl.dot(b_q, tl.trans(b_k), input_precision="ieee")  # [BLOCK_M, BLOCK_N]
    else:
        b_s = tl.dot(b_q, tl.trans(b_k))
    return b_s * qk_scale


@triton.jit
def _attn_row_lse_kernel(
    q_ptr,
    k_ptr,
    lse_ptr,
    H,
    L,
    d,
    stride_qb,
    stride_qh,
    stride_ql,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kl,
    stride_kd,
    qk_scale,
    IEEE: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Pass 1: per query row, log2-sum-exp2 of its scaled scores over all keys."""
    i_m = tl.program_id(0)
    i_bh = tl.program_id(1).to(tl.int64)
    i_b = i_bh // H
    i_h = i_bh % H
    o_m = i_m * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    o_d = tl.arange(0, BLOCK_D).to(tl.int64)
    m_m = o_m < L
    m_d = o_d < d
    b_q = _load_tile(q_ptr, i_b, i_h, o_m, o_d, m_m, m_d, stride_qb, stride_qh, stride_ql, stride_qd, UPCAST)
    b_max = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    b_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
    for n0 in range(0, L, BLOCK_N):
        o_n = n0 + tl.arange(0, BLOCK_N).to(tl.int64)
        m_n = o_n < L
        b_k = _load_tile(k_ptr, i_b, i_h, o_n, o_d, m_n, m_d, stride_kb, stride_kh, stride_kl, stride_kd, UPCAST)
        b_s = tl.where(m_n[None, :], _scaled_scores(b_q, b_k, qk_scale, IEEE), float("-inf"))
        b_new = tl.maximum(b_max, tl.max(b_s, axis=1))  # finite: every block has a valid key
        b_sum = b_sum * tl.exp2(b_max - b_new) + tl.sum(tl.exp2(b_s - b_new[:, None]), axis=1)
        b_max = b_new
    tl.store(lse_ptr + i_bh * L + o_m, b_max + tl.log2(b_sum), mask=m_m)


@triton.jit
def _attn_col_sum_kernel(
    q_ptr,
    k_ptr,
    lse_ptr,
    out_ptr,
    H,
    L,
    d,
    stride_qb,
    stride_qh,
    stride_ql,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kl,
    stride_kd,
    qk_scale,
    IEEE: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """Pass 2: per key column, the sum over query rows of its softmax probability."""
    i_n = tl.program_id(0)
    i_bh = tl.program_id(1).to(tl.int64)
    i_b = i_bh // H
    i_h = i_bh % H
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    o_d = tl.arange(0, BLOCK_D).to(tl.int64)
    m_n = o_n < L
    m_d = o_d < d
    b_k = _load_tile(k_ptr, i_b, i_h, o_n, o_d, m_n, m_d, stride_kb, stride_kh, stride_kl, stride_kd, UPCAST)
    b_acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for m0 in range(0, L, BLOCK_M):
        o_m = m0 + tl.arange(0, BLOCK_M).to(tl.int64)
        m_m = o_m < L
        b_q = _load_tile(q_ptr, i_b, i_h, o_m, o_d, m_m, m_d, stride_qb, stride_qh, stride_ql, stride_qd, UPCAST)
        # padded query rows get lse = +inf, hence probability exp2(-inf) = 0
        b_lse = tl.load(lse_ptr + i_bh * L + o_m, mask=m_m, other=float("inf"))  # [BLOCK_M]
        b_p = tl.exp2(_scaled_scores(b_q, b_k, qk_scale, IEEE) - b_lse[:, None])
        b_acc += tl.sum(b_p, axis=0)
    tl.store(out_ptr + i_bh * L + o_n, b_acc, mask=m_n)


def _block(length: int, cap: int) -> int:
    return min(max(triton.next_power_of_2(length), 16), cap)


def attention_received_triton(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """q, k ``[B, H, L, d]`` (any strides) -> float32 ``[B, L]``."""
    b, h, length, d = q.shape
    if k.dtype != q.dtype:
        k = k.to(q.dtype)
    block_d = max(triton.next_power_of_2(d), 16)
    ieee = q.dtype == torch.float32 or q.dtype == torch.float64
    if q.dtype == torch.float64:
        q, k = q.float(), k.float()
    # Triton's CPU interpreter computes bfloat16 tl.dot on the raw bits (wrong results), so
    # under the interpreter bfloat16 tiles are upcast to float32 before the dot; on CUDA the
    # dot runs natively in bfloat16 with float32 accumulation.
    upcast = q.dtype == torch.bfloat16 and interpreter_enabled()
    # [BLOCK, d] tiles of q and k are staged in shared memory: keep them under ~50 KB so the
    # kernel also fits GPUs with ~100 KB of shared memory per SM (fp32 tiles are twice as big).
    block_cap = 64 if block_d * q.element_size() <= 256 else 32
    lse = empty_output((b * h, length), q.device)
    col = empty_output((b * h, length), q.device)
    block = _block(length, block_cap)
    qk_scale = float(scale) * LOG2E
    args = (
        q.stride(0), q.stride(1), q.stride(2), q.stride(3),
        k.stride(0), k.stride(1), k.stride(2), k.stride(3),
    )  # fmt: skip
    grid = (math.ceil(length / block), b * h)
    _attn_row_lse_kernel[grid](
        q, k, lse, h, length, d, *args, qk_scale,
        IEEE=ieee, UPCAST=upcast, BLOCK_M=block, BLOCK_N=block, BLOCK_D=block_d, num_warps=4,
    )  # fmt: skip
    _attn_col_sum_kernel[grid](
        q, k, lse, col, h, length, d, *args, qk_scale,
        IEEE=ieee, UPCAST=upcast, BLOCK_M=block, BLOCK_N=block, BLOCK_D=block_d, num_warps=4,
    )  # fmt: skip
    return col.view(b, h, length).mean(dim=1)

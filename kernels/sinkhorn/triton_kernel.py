"""Triton kernel of batched log-domain Sinkhorn (see :mod:`.reference` for the algorithm).

One program per problem; the cost matrix is streamed in ``[BLOCK_N, BLOCK_M]`` tiles (from L2
after the first sweep for the small problems this serves) and every update is an online
log-sum-exp, so ``K = exp(-C / eps)`` is never stored. The log scalings ``log r`` / ``log c``
and the row log-sum-exp live in small global buffers; ``tl.debug_barrier()`` (a CTA barrier,
which also orders the program's global writes) separates the phases that read what another
thread of the program wrote.

Per iteration: (R) ``lse_i = LSE_j(-C_ij/eps + log c_j)`` and, for ``stop="per_problem"``, the
row-marginal error ``sum_i |exp(log r_i + lse_i) - a_i|``; if it is ``<= tol`` the problem
stops, else (r) ``log r = log a - lse`` (summing ``|r_new - r_old|`` for ``stop="released"``)
and (C) ``log c_j = log b_j - LSE_i(-C_ij/eps + log r_i)``. The plan
``exp(log r_i - C_ij/eps + log c_j)`` is written by the same program at the end.

``stop="released"`` pools its test over the whole batch, which no program can see, so the
host launches one iteration at a time (AOT stops after ~3) and a last launch writes the plan.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import empty_output
from .reference import SinkhornResult


@triton.jit
def _lse_rows(
    c_ptr, logc_ptr, o_i, m_i, N, M, s_n, s_m, inv_eps, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr
):
    """Online LSE_j(-C_ij/eps + log c_j) for the rows ``o_i``: returns ``[BLOCK_N]``."""
    b_max = tl.full([BLOCK_N], float("-inf"), dtype=tl.float32)
    b_sum = tl.zeros([BLOCK_N], dtype=tl.float32)
    for j0 in range(0, M, BLOCK_M):
        o_j = j0 + tl.arange(0, BLOCK_M).to(tl.int64)
        m_j = o_j < M
        b_c = tl.load(
            c_ptr + o_i[:, None] * s_n + o_j[None, :] * s_m,
            mask=m_i[:, None] & m_j[None, :],
            other=0.0,
        )
        b_lc = tl.load(logc_ptr + o_j, mask=m_j, other=float("-inf"))  # [BLOCK_M]
        b_z = b_lc[None, :] - b_c.to(tl.float32) * inv_eps  # [BLOCK_N, BLOCK_M]
        b_new = tl.maximum(b_max, tl.max(b_z, axis=1))
        b_ref = tl.where(b_new == float("-inf"), 0.0, b_new)  # all -inf so far: any finite ref
        b_sum = b_sum * tl.exp(b_max - b_ref) + tl.sum(tl.exp(b_z - b_ref[:, None]), axis=1)
        b_max = b_new
    # every column masked: sum 0, LSE -inf (written without evaluating log(0))
    return tl.where(b_sum > 0.0, b_max + tl.log(tl.maximum(b_sum, 1e-30)), float("-inf"))


@triton.jit
def _lse_cols(
    c_ptr, logr_ptr, o_j, m_j, N, M, s_n, s_m, inv_eps, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr
):
    """Online LSE_i(-C_ij/eps + log r_i) for the columns ``o_j``: returns ``[BLOCK_M]``."""
    b_max = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    b_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
    for i0 in range(0, N, BLOCK_N):
        o_i = i0 + tl.arange(0, BLOCK_N).to(tl.int64)
        m_i = o_i < N
        b_c = tl.load(
            c_ptr + o_i[:, None] * s_n + o_j[None, :] * s_m,
            mask=m_i[:, None] & m_j[None, :],
            other=0.0,
        )
        b_lr = tl.load(logr_ptr + o_i, mask=m_i, other=float("-inf"))  # [BLOCK_N]
        b_z = b_lr[:, None] - b_c.to(tl.float32) * inv_eps  # [BLOCK_N, BLOCK_M]
        b_new = tl.maximum(b_max, tl.max(b_z, axis=0))
        b_ref = tl.where(b_new == float("-inf"), 0.0, b_new)
        b_sum = b_sum * tl.exp(b_max - b_ref) + tl.sum(tl.exp(b_z - b_ref[None, :]), axis=0)
        b_max = b_new
    return tl.where(b_sum > 0.0, b_max + tl.log(tl.maximum(b_sum, 1e-30)), float("-inf"))


@triton.jit
def _sinkhorn_kernel(
    c_ptr,
    loga_ptr,
    logb_ptr,
    logr_ptr,
    logc_ptr,
    lse_ptr,
    plan_ptr,
    iters_ptr,
    delta_ptr,
    N,
    M,
    s_cb,
    s_cn,
    s_cm,
    inv_eps,
    max_iter,
    tol,
    PER_PROBLEM: tl.constexpr,
    WRITE_PLAN: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    i_b = tl.program_id(0).to(tl.int64)
    c_ptr += i_b * s_cb
    loga_ptr += i_b * N
    logr_ptr += i_b * N
    lse_ptr += i_b * N
    logb_ptr += i_b * M
    logc_ptr += i_b * M
    plan_ptr += i_b * N * M

    it = 0
    done = 0
    b_delta = tl.zeros([BLOCK_N], dtype=tl.float32)
    while (it < max_iter) & (done == 0):
        # (R) row log-sum-exp with the current c, and the row-marginal error
        b_err = tl.zeros([BLOCK_N], dtype=tl.float32)
        for i0 in range(0, N, BLOCK_N):
            o_i = i0 + tl.arange(0, BLOCK_N).to(tl.int64)
            m_i = o_i < N
            b_lse = _lse_rows(
                c_ptr, logc_ptr, o_i, m_i, N, M, s_cn, s_cm, inv_eps, BLOCK_N, BLOCK_M
            )
            tl.store(lse_ptr + o_i, b_lse, mask=m_i)
            if PER_PROBLEM:
                b_la = tl.load(loga_ptr + o_i, mask=m_i, other=float("-inf"))
                b_lr = tl.load(logr_ptr + o_i, mask=m_i, other=float("-inf"))
                b_ok = b_la != float("-inf")
                b_err += tl.where(b_ok, tl.abs(tl.exp(b_lr + b_lse) - tl.exp(b_la)), 0.0)
        tl.debug_barrier()
        if PER_PROBLEM:
            if tl.sum(b_err, axis=0) <= tol:
                done = 1
        if done == 0:
            # (r) log r = log a - lse
            b_delta = tl.zeros([BLOCK_N], dtype=tl.float32)
            for i0 in range(0, N, BLOCK_N):
                o_i = i0 + tl.arange(0, BLOCK_N).to(tl.int64)
                m_i = o_i < N
                b_la = tl.load(loga_ptr + o_i, mask=m_i, other=float("-inf"))
                b_lr = tl.load(logr_ptr + o_i, mask=m_i, other=float("-inf"))
                b_lse = tl.load(lse_ptr + o_i, mask=m_i, other=0.0)
                b_ok = b_la != float("-inf")
                b_new = tl.where(b_ok, b_la - tl.where(b_ok, b_lse, 0.0), float("-inf"))
                b_delta += tl.where(b_ok, tl.abs(tl.exp(b_new) - tl.exp(b_lr)), 0.0)
                tl.store(logr_ptr + o_i, b_new, mask=m_i)
            tl.debug_barrier()
            # (C) log c = log b - column log-sum-exp with the new r
            for j0 in range(0, M, BLOCK_M):
                o_j = j0 + tl.arange(0, BLOCK_M).to(tl.int64)
                m_j = o_j < M
                b_lse_c = _lse_cols(
                    c_ptr, logr_ptr, o_j, m_j, N, M, s_cn, s_cm, inv_eps, BLOCK_N, BLOCK_M
                )
                b_lb = tl.load(logb_ptr + o_j, mask=m_j, other=float("-inf"))
                b_okc = b_lb != float("-inf")
                b_newc = tl.where(b_okc, b_lb - tl.where(b_okc, b_lse_c, 0.0), float("-inf"))
                tl.store(logc_ptr + o_j, b_newc, mask=m_j)
            tl.debug_barrier()
            it += 1
    tl.store(iters_ptr + i_b, it)
    tl.store(delta_ptr + i_b, tl.sum(b_delta, axis=0))

    if WRITE_PLAN:
        for i0 in range(0, N, BLOCK_N):
            o_i = i0 + tl.arange(0, BLOCK_N).to(tl.int64)
            m_i = o_i < N
            b_lr = tl.load(logr_ptr + o_i, mask=m_i, other=float("-inf"))  # [BLOCK_N]
            for j0 in range(0, M, BLOCK_M):
                o_j = j0 + tl.arange(0, BLOCK_M).to(tl.int64)
                m_j = o_j < M
                m_ij = m_i[:, None] & m_j[None, :]
                b_c = tl.load(
                    c_ptr + o_i[:, None] * s_cn + o_j[None, :] * s_cm, mask=m_ij, other=0.0
                )
                b_lc = tl.load(logc_ptr + o_j, mask=m_j, other=float("-inf"))  # [BLOCK_M]
                b_t = tl.exp(b_lr[:, None] - b_c.to(tl.float32) * inv_eps + b_lc[None, :])
                tl.store(plan_ptr + o_i[:, None] * M + o_j[None, :], b_t, mask=m_ij)


def _blocks(n: int, m: int) -> tuple[int, int]:
    block_m = min(max(triton.next_power_of_2(m), 16), 64)
    block_n = min(max(triton.next_power_of_2(n), 16), 64)
    return block_n, block_m


def sinkhorn_triton(
    cost: torch.Tensor,
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    eps: float,
    max_iter: int,
    tol: float,
    stop: str,
) -> SinkhornResult:
    """cost ``[B, N, M]`` (any float dtype/strides); log marginals float32 from
    :func:`~vidsieve.kernels.sinkhorn.reference.prepare_marginals`."""
    bsz, n, m = cost.shape
    dev = cost.device
    log_a = log_a.float().contiguous()
    log_b = log_b.float().contiguous()
    zero = torch.zeros((), device=dev)
    log_r = torch.where(torch.isfinite(log_a), zero, float("-inf")).contiguous()
    log_c = torch.where(torch.isfinite(log_b), zero, float("-inf")).contiguous()
    lse = empty_output((bsz, n), dev)
    plan = empty_output((bsz, n, m), dev)
    iters = empty_output((bsz,), dev, torch.int32)
    delta = empty_output((bsz,), dev)
    block_n, block_m = _blocks(n, m)

    def launch(n_iter: int, per_problem: bool, write_plan: bool) -> None:
        _sinkhorn_kernel[(bsz,)](
            cost, log_a, log_b, log_r, log_c, lse, plan, iters, delta,
            n, m, cost.stride(0), cost.stride(1), cost.stride(2),
            1.0 / eps, n_iter, tol,
            PER_PROBLEM=per_problem, WRITE_PLAN=write_plan,
            BLOCK_N=block_n, BLOCK_M=block_m, num_warps=4,
        )  # fmt: skip

    if stop == "per_problem":
        launch(max_iter, per_problem=True, write_plan=True)
        total = iters.to(torch.int64)
    else:
        n_valid = max(int(torch.isfinite(log_a).sum()), 1)
        total = torch.zeros(bsz, dtype=torch.int64, device=dev)
        for _ in range(max_iter):
            launch(1, per_problem=False, write_plan=False)
            total += iters.to(torch.int64)
            if float(delta.sum()) / n_valid < tol:
                break
        launch(0, per_problem=False, write_plan=True)
    return SinkhornResult(plan=plan, iterations=total, log_r=log_r, log_c=log_c)

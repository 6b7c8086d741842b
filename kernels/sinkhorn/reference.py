"""PyTorch reference (oracle and CPU fallback) of batched entropic optimal transport.

Plan ``T = diag(r) K diag(c)`` with ``K = exp(-C / eps)``, found by Sinkhorn's alternating
scalings ``r <- a / (K c)`` then ``c <- b / (K^T r)``, starting from ``r = c = 1``.

Everything runs in the log domain (``log r``, ``log c``, ``-C / eps``, log-sum-exp), so small
``eps`` cannot underflow ``K`` (with ``eps = 0.1`` and costs in ``[0, 2]``, ``K`` spans
``[e^-20, 1]``; with costs up to 10 it would reach ``e^-100``, below float32's range). The
iterates are mathematically those of the plain (non-log) algorithm.

Stopping rules (``stop=``):

* ``"per_problem"``: before each update, a problem whose row-marginal error
  ``sum_i |(T 1)_i - a_i|`` (L1; columns are exact after each ``c`` update) is ``<= tol`` is
  frozen; the loop ends when every problem is frozen or after ``max_iter`` updates.
* ``"released"``: AOT's released rule: after each update the mean of ``|r_new - r_old|`` pooled
  over every unmasked row of every problem of the batch is compared to ``tol`` (absolute); the
  whole batch stops together (AOT: ``tol = 1e-2``, typically ~3 iterations, far from
  converged).

Masked rows/columns (``row_mask``/``col_mask`` False) get zero mass; default marginals are
uniform over the unmasked entries (total mass 1). A problem with no unmasked row or column gets
an all-zero plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vidsieve.errors import ParameterError

#: relative tolerance on ``|sum(a) - sum(b)|`` per problem (after masking).
MASS_RTOL = 1e-4


@dataclass
class SinkhornResult:
    """plan ``[B, N, M]``; iterations ``[B]`` int64 (updates done per problem);
    log_r ``[B, N]``, log_c ``[B, M]`` the final log scalings (``-inf`` where masked)."""

    plan: torch.Tensor
    iterations: torch.Tensor
    log_r: torch.Tensor
    log_c: torch.Tensor


def prepare_marginals(
    cost: torch.Tensor,
    a: torch.Tensor | None,
    b: torch.Tensor | None,
    row_mask: torch.Tensor | None,
    col_mask: torch.Tensor | None,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log marginals ``[B, N]``, ``[B, M]`` with ``-inf`` on masked entries (and on every entry
    of a problem that has no unmasked row or no unmasked column).

    User marginals must be finite and non-negative and, per problem and after masking, have
    equal totals (within a relative :data:`MASS_RTOL`; a default marginal totals 1): Sinkhorn
    cannot meet both otherwise and would silently return a plan with the column total.
    Raises :class:`~vidsieve.errors.ParameterError`.
    """
    bsz, n, m = cost.shape
    dev = cost.device
    rv = torch.ones(bsz, n, dtype=torch.bool, device=dev) if row_mask is None else row_mask.bool()
    cv = torch.ones(bsz, m, dtype=torch.bool, device=dev) if col_mask is None else col_mask.bool()
    both = rv.any(dim=1) & cv.any(dim=1)  # [B]
    rv = rv & both[:, None]
    cv = cv & both[:, None]
    for name, v in (("a", a), ("b", b)):
        if v is not None and (bool((v < 0).any()) or not bool(torch.isfinite(v).all())):
            raise ParameterError(f"sinkhorn: {name} must be finite and non-negative.")
    if a is None:
        a_ = rv.to(dtype) / rv.sum(dim=1, keepdim=True).clamp_min(1).to(dtype)
    else:
        a_ = torch.where(rv, a.to(dtype), torch.zeros((), dtype=dtype, device=dev))
    if b is None:
        b_ = cv.to(dtype) / cv.sum(dim=1, keepdim=True).clamp_min(1).to(dtype)
    else:
        b_ = torch.where(cv, b.to(dtype), torch.zeros((), dtype=dtype, device=dev))
    if a is not None or b is not None:
        check_equal_totals(a_, b_)
    return torch.log(a_), torch.log(b_)


def check_equal_totals(a: torch.Tensor, b: torch.Tensor) -> None:
    """Raise :class:`~vidsieve.errors.ParameterError` naming both totals of the first problem
    whose masked marginals ``a`` ``[B, N]`` and ``b`` ``[B, M]`` differ in total by more than
    :data:`MASS_RTOL` (relative to the larger)."""
    sa, sb = a.double().sum(dim=1), b.double().sum(dim=1)
    bad = (sa - sb).abs() > MASS_RTOL * torch.maximum(sa, sb)
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten().tolist()
        i = idx[0]
        more = f" ({len(idx)} of {a.shape[0]} problems differ)" if len(idx) > 1 else ""
        raise ParameterError(
            f"sinkhorn: the marginals a and b must have equal totals per problem (after masking); "
            f"problem {i} has sum(a) = {float(sa[i]):.6g} and sum(b) = {float(sb[i]):.6g}{more}. "
            "Rescale one of them (e.g. both to sum 1)."
        )


def sinkhorn_ref(
    cost: torch.Tensor,
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    eps: float,
    max_iter: int,
    tol: float,
    stop: str,
) -> SinkhornResult:
    """Log-domain Sinkhorn on ``cost`` ``[B, N, M]`` with log marginals from
    :func:`prepare_marginals`. Float32 arithmetic (float64 if ``cost`` is float64)."""
    dtype = torch.float64 if cost.dtype == torch.float64 else torch.float32
    kl = -cost.to(dtype) / eps  # [B, N, M] log K
    ninf = torch.tensor(float("-inf"), dtype=dtype, device=cost.device)
    zero = torch.zeros((), dtype=dtype, device=cost.device)
    rv = torch.isfinite(log_a)
    log_r = torch.where(rv, zero, ninf)  # r = 1 on unmasked rows
    log_c = torch.where(torch.isfinite(log_b), zero, ninf)
    bsz = cost.shape[0]
    iters = torch.zeros(bsz, dtype=torch.int64, device=cost.device)
    active = torch.ones(bsz, dtype=torch.bool, device=cost.device)
    n_valid = int(rv.sum())
    a = log_a.exp()
    for t in range(max_iter + 1):
        lse_r = torch.logsumexp(kl + log_c[:, None, :], dim=2)  # [B, N] log (K c)
        if stop == "per_problem":
            marg = torch.where(rv, (log_r + lse_r).exp(), zero)
            err = (marg - a).abs().sum(dim=1)  # [B]
            active = active & (err > tol)
        if t == max_iter or not bool(active.any()):
            break
        new_r = torch.where(rv, log_a - lse_r, ninf)
        delta = (new_r.exp() - log_r.exp()).abs().sum() / max(n_valid, 1)
        log_r = torch.where(active[:, None], new_r, log_r)
        lse_c = torch.logsumexp(kl + log_r[:, :, None], dim=1)  # [B, M] log (K^T r)
        new_c = torch.where(torch.isfinite(log_b), log_b - lse_c, ninf)
        log_c = torch.where(active[:, None], new_c, log_c)
        iters += active.to(torch.int64)
        if stop == "released" and float(delta) < tol:
            break
    plan = (log_r[:, :, None] + kl + log_c[:, None, :]).exp()
    return SinkhornResult(plan=plan, iterations=iters, log_r=log_r, log_c=log_c)

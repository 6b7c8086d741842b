"""Batched entropic optimal transport (Sinkhorn), many small problems in one launch.

``sinkhorn(cost, ...)`` returns the plan ``T = diag(r) K diag(c)``, ``K = exp(-C / eps)``; see
:mod:`.reference` for the log-domain algorithm, masks and the two stopping rules
(``"per_problem"``; ``"released"`` = AOT's released code). Triton on CUDA tensors (one program
per problem), the PyTorch reference elsewhere; see :mod:`vidsieve.kernels._dispatch`.
"""

from __future__ import annotations

import torch

from vidsieve.errors import ParameterError
from vidsieve.params import Choice, Float, Int, check_param

from .._dispatch import call_triton, choose_backend
from .reference import SinkhornResult, prepare_marginals, sinkhorn_ref

__all__ = ["STOP_RULES", "SinkhornResult", "sinkhorn", "sinkhorn_result"]

STOP_RULES = ("per_problem", "released")


def _check_vec(name: str, v: torch.Tensor | None, shape: tuple[int, int], boolean: bool) -> None:
    if v is None:
        return
    if not isinstance(v, torch.Tensor) or tuple(v.shape) != shape:
        raise ParameterError(
            f"sinkhorn: {name} must be a tensor of shape {shape}; got "
            f"{getattr(v, 'shape', type(v).__name__)}."
        )
    if boolean and v.dtype != torch.bool:
        raise ParameterError(f"sinkhorn: {name} must be a bool tensor; got {v.dtype}.")
    if not boolean:
        if not v.is_floating_point():
            raise ParameterError(f"sinkhorn: {name} must be a float tensor; got {v.dtype}.")
        if bool((v < 0).any()) or not bool(torch.isfinite(v).all()):
            raise ParameterError(f"sinkhorn: {name} must be finite and non-negative.")


def sinkhorn_result(
    cost: torch.Tensor,
    *,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    row_mask: torch.Tensor | None = None,
    col_mask: torch.Tensor | None = None,
    eps: float = 0.1,
    max_iter: int = 100,
    tol: float = 1e-2,
    stop: str = "per_problem",
    backend: str = "auto",
) -> SinkhornResult:
    """:func:`sinkhorn` returning the plan with the iterations done and the log scalings."""
    if not isinstance(cost, torch.Tensor) or cost.ndim != 3 or not cost.is_floating_point():
        raise ParameterError(
            f"sinkhorn: cost must be a floating-point 3-D tensor [B, N, M]; got "
            f"{getattr(cost, 'shape', type(cost).__name__)}."
        )
    bsz, n, m = cost.shape
    _check_vec("a", a, (bsz, n), boolean=False)
    _check_vec("b", b, (bsz, m), boolean=False)
    _check_vec("row_mask", row_mask, (bsz, n), boolean=True)
    _check_vec("col_mask", col_mask, (bsz, m), boolean=True)
    for v in (a, b, row_mask, col_mask):
        if v is not None and v.device != cost.device:
            raise ParameterError(f"sinkhorn: all inputs must be on {cost.device}; got {v.device}.")
    check_param("sinkhorn", "eps", eps, [Float(gt=0.0)])
    check_param("sinkhorn", "max_iter", max_iter, [Int(ge=0)])
    check_param("sinkhorn", "tol", tol, [Float(ge=0.0)])
    check_param("sinkhorn", "stop", stop, [Choice(*STOP_RULES)])
    if not bool(torch.isfinite(cost).all()):
        raise ParameterError("sinkhorn: cost must be finite (mask entries instead of using inf).")
    if cost.numel() == 0:
        empty = torch.zeros(bsz, n, m, dtype=torch.float32, device=cost.device)
        return SinkhornResult(
            plan=empty,
            iterations=torch.zeros(bsz, dtype=torch.int64, device=cost.device),
            log_r=torch.full((bsz, n), float("-inf"), device=cost.device),
            log_c=torch.full((bsz, m), float("-inf"), device=cost.device),
        )
    use = choose_backend("sinkhorn", backend, cost)
    dtype = torch.float64 if (use == "torch" and cost.dtype == torch.float64) else torch.float32
    # validates the marginals' totals (ParameterError) before either backend runs
    log_a, log_b = prepare_marginals(cost, a, b, row_mask, col_mask, dtype)
    if use == "torch":
        return sinkhorn_ref(cost, log_a, log_b, float(eps), max_iter, float(tol), stop)

    def run() -> SinkhornResult:
        from .triton_kernel import sinkhorn_triton

        return sinkhorn_triton(cost, log_a, log_b, float(eps), max_iter, float(tol), stop)

    return call_triton(
        "sinkhorn",
        backend,
        run,
        lambda: sinkhorn_ref(cost, log_a, log_b, float(eps), max_iter, float(tol), stop),
    )


def sinkhorn(
    cost: torch.Tensor,
    *,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    row_mask: torch.Tensor | None = None,
    col_mask: torch.Tensor | None = None,
    eps: float = 0.1,
    max_iter: int = 100,
    tol: float = 1e-2,
    stop: str = "per_problem",
    backend: str = "auto",
) -> torch.Tensor:
    """Entropic OT plans for a batch of small problems.

    cost:     float ``[B, N, M]`` (finite).
    a, b:     marginals ``[B, N]`` / ``[B, M]`` (finite, non-negative; per problem and after
              masking their totals must agree within a relative 1e-4, else ParameterError),
              default uniform over unmasked entries (total mass 1).
    row_mask, col_mask: bool ``[B, N]`` / ``[B, M]``; False entries get zero mass.
    eps:      entropic regularisation (``K = exp(-C / eps)``; log domain, no underflow).
    max_iter: most scaling updates; tol and stop: see :mod:`.reference`.
    Returns float32 ``[B, N, M]`` (float64 on the reference backend for a float64 cost).
    """
    return sinkhorn_result(
        cost,
        a=a,
        b=b,
        row_mask=row_mask,
        col_mask=col_mask,
        eps=eps,
        max_iter=max_iter,
        tol=tol,
        stop=stop,
        backend=backend,
    ).plan

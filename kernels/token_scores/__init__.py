"""KTV key-token scores: importance blended with (1 - redundancy), one pass per frame.

``ktv_token_scores(x, importance, alpha)`` and ``ktv_redundancy(x)``; see :mod:`.reference`
for the exact definition. Triton on CUDA tensors, the PyTorch reference elsewhere (see
:mod:`vidsieve.kernels._dispatch` for ``backend=`` and ``VIDSIEVE_KERNEL_BACKEND``).
"""

from __future__ import annotations

import torch

from vidsieve.errors import ParameterError
from vidsieve.params import Float, check_param

from .._dispatch import call_triton, choose_backend
from .reference import ktv_redundancy_ref, ktv_token_scores_ref

__all__ = ["ktv_redundancy", "ktv_token_scores"]

#: Longest frame the Triton kernel handles (a frame's scores are kept in registers).
TRITON_MAX_TOKENS = 4096


def _check_x(op: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise ParameterError(
            f"{op}: x must be a 3-D tensor [F, L, D]; got {getattr(x, 'shape', type(x).__name__)}."
        )
    if not x.is_floating_point():
        raise ParameterError(f"{op}: x must be a floating-point tensor; got {x.dtype}.")


def _limit(x: torch.Tensor) -> str | None:
    if x.shape[1] > TRITON_MAX_TOKENS:
        return f"L={x.shape[1]} > {TRITON_MAX_TOKENS} tokens per frame"
    return None


def ktv_redundancy(x: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Mean cosine similarity of each token to the other tokens of its frame.

    x: float ``[F, L, D]``. Returns float32 ``[F, L]`` (zeros when ``L == 1``).
    """
    _check_x("ktv_redundancy", x)
    if x.numel() == 0:
        return torch.zeros(x.shape[0], x.shape[1], dtype=torch.float32, device=x.device)
    if choose_backend("ktv_redundancy", backend, x, triton_limit=_limit(x)) == "torch":
        return ktv_redundancy_ref(x)

    def run() -> torch.Tensor:
        from .triton_kernel import ktv_scores_triton

        return ktv_scores_triton(x, None, 0.0, redundancy_only=True)

    return call_triton("ktv_redundancy", backend, run, lambda: ktv_redundancy_ref(x))


def ktv_token_scores(
    x: torch.Tensor, importance: torch.Tensor, alpha: float, *, backend: str = "auto"
) -> torch.Tensor:
    """KTV key-token score of every token of every frame.

    x:          float ``[F, L, D]`` token features (KTV: penultimate vision layer).
    importance: float ``[F, L]`` per-token importance ([CLS] attention or attention received).
    alpha:      weight of importance in ``[0, 1]`` (released KTV example 0.2; paper 0.8-0.9).
    Returns float32 ``[F, L]``:
    ``alpha * minmax(importance) + (1 - alpha) * (1 - minmax(redundancy))`` per frame, with
    ``minmax`` of a constant row = 0.
    """
    _check_x("ktv_token_scores", x)
    if not isinstance(importance, torch.Tensor) or tuple(importance.shape) != tuple(x.shape[:2]):
        raise ParameterError(
            f"ktv_token_scores: importance must be a tensor of shape {tuple(x.shape[:2])} "
            f"[F, L]; got {getattr(importance, 'shape', type(importance).__name__)}."
        )
    check_param("ktv_token_scores", "alpha", alpha, [Float(ge=0.0, le=1.0)])
    if importance.device != x.device:
        raise ParameterError(
            f"ktv_token_scores: x is on {x.device} but importance is on {importance.device}."
        )
    if x.numel() == 0:
        return torch.zeros(x.shape[0], x.shape[1], dtype=torch.float32, device=x.device)
    if (
        choose_backend("ktv_token_scores", backend, x, importance, triton_limit=_limit(x))
        == "torch"
    ):
        return ktv_token_scores_ref(x, importance, float(alpha))

    def run() -> torch.Tensor:
        from .triton_kernel import ktv_scores_triton

        return ktv_scores_triton(x, importance, float(alpha), redundancy_only=False)

    return call_triton(
        "ktv_token_scores", backend, run, lambda: ktv_token_scores_ref(x, importance, float(alpha))
    )

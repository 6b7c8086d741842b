"""Attention received per token (column sums of softmax attention, averaged over heads).

Used as token importance for vision towers without [CLS] (SigLIP, Qwen ViT): KTV on such towers
and AOT's anchor selection. The Triton kernel is flash-style (pass 1: per-row log-sum-exp;
pass 2: column sums of ``exp(logit - lse)``) and never materialises the L x L matrix. See
:mod:`vidsieve.kernels._dispatch` for ``backend=``.
"""

from __future__ import annotations

import math

import torch

from vidsieve.errors import ParameterError
from vidsieve.params import Float, check_param

from .._dispatch import call_triton, choose_backend
from .reference import attention_received_ref, cls_attention_ref

__all__ = ["attention_received", "cls_attention"]

#: Largest head dim the Triton kernel handles (a [BLOCK, d] tile is kept in registers).
TRITON_MAX_HEAD_DIM = 256


def _resolve_scale(op: str, scale: float | None, d: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(d)
    check_param(op, "scale", scale, [Float()])
    return float(scale)


def attention_received(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    scale: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Attention each token receives, averaged over heads.

    q, k:  float ``[B, H, L, d]`` query and key projections of one attention layer (after any
           rotary embedding the layer applies).
    scale: logit scale, default ``1 / sqrt(d)``.
    Returns float32 ``[B, L]``: ``mean_h sum_i softmax(scale * q_i K^T)_j``. Each row of the
    softmax sums to 1, so each output row sums to L.
    """
    op = "attention_received"
    for name, t in (("q", q), ("k", k)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4 or not t.is_floating_point():
            raise ParameterError(
                f"{op}: {name} must be a floating-point 4-D tensor [B, H, L, d]; got "
                f"{getattr(t, 'shape', type(t).__name__)}."
            )
    if tuple(q.shape) != tuple(k.shape):
        raise ParameterError(
            f"{op}: q and k must have the same shape [B, H, L, d]; got {tuple(q.shape)} and "
            f"{tuple(k.shape)}."
        )
    if q.device != k.device:
        raise ParameterError(f"{op}: q is on {q.device} but k is on {k.device}.")
    s = _resolve_scale(op, scale, int(q.shape[-1]))
    b, h, length, d = q.shape
    if b == 0 or length == 0:
        return torch.zeros(b, length, dtype=torch.float32, device=q.device)
    if h == 0:
        raise ParameterError(f"{op}: q and k have no heads (H = 0).")
    limit = f"head dim {d} > {TRITON_MAX_HEAD_DIM}" if d > TRITON_MAX_HEAD_DIM else None
    if choose_backend(op, backend, q, k, triton_limit=limit) == "torch":
        return attention_received_ref(q, k, s)

    def run() -> torch.Tensor:
        from .triton_kernel import attention_received_triton

        return attention_received_triton(q, k, s)

    return call_triton(op, backend, run, lambda: attention_received_ref(q, k, s))


def cls_attention(
    q_cls: torch.Tensor,
    k: torch.Tensor,
    *,
    scale: float | None = None,
    softmax: bool = True,
) -> torch.Tensor:
    """[CLS] -> patch attention averaged over heads (PyTorch only: it is one GEMV per head).

    q_cls: float ``[B, H, d]`` the [CLS] query; k: float ``[B, H, L, d]``.
    scale: default ``1 / sqrt(d)``. softmax=False returns the raw scaled logits (released KTV).
    Returns float32 ``[B, L]``. To exclude the [CLS] key itself, pass ``k[:, :, 1:]``.
    """
    op = "cls_attention"
    if not isinstance(q_cls, torch.Tensor) or q_cls.ndim != 3:
        raise ParameterError(
            f"{op}: q_cls must be a 3-D tensor [B, H, d]; got "
            f"{getattr(q_cls, 'shape', type(q_cls).__name__)}."
        )
    if not isinstance(k, torch.Tensor) or k.ndim != 4:
        raise ParameterError(
            f"{op}: k must be a 4-D tensor [B, H, L, d]; got {getattr(k, 'shape', type(k).__name__)}."
        )
    if (q_cls.shape[0], q_cls.shape[1], q_cls.shape[2]) != (k.shape[0], k.shape[1], k.shape[3]):
        raise ParameterError(
            f"{op}: q_cls {tuple(q_cls.shape)} does not match k {tuple(k.shape)} in B, H or d."
        )
    s = _resolve_scale(op, scale, int(k.shape[-1]))
    return cls_attention_ref(q_cls, k, s, softmax=softmax)

"""PyTorch reference (oracle and CPU fallback) of attention received per token.

``received[b, j] = mean_h sum_i softmax_j(scale * q[b, h, i] . k[b, h, :])[j]``: the column sums
of the softmax attention matrix, averaged over heads. Rows are processed in chunks so memory
stays at ``B * H * chunk * L`` floats (at most 2**26), not ``L x L`` per head. Float32 arithmetic.
"""

from __future__ import annotations

import torch

#: Most query rows per chunk in the reference.
ROW_CHUNK = 1024
#: Most float32 logits held at once by the reference (B*H*chunk*L), 256 MiB.
MAX_CHUNK_ELEMS = 2**26


def attention_received_ref(
    q: torch.Tensor, k: torch.Tensor, scale: float, row_chunk: int | None = None
) -> torch.Tensor:
    """q, k: ``[B, H, L, d]``. Returns float32 ``[B, L]``.

    row_chunk: query rows per step; default keeps ``B*H*chunk*L`` under ``MAX_CHUNK_ELEMS``.
    """
    b, h, length, _ = q.shape
    if row_chunk is None:
        row_chunk = max(1, min(ROW_CHUNK, MAX_CHUNK_ELEMS // max(1, b * h * k.shape[2])))
    kf = k.float()
    acc = torch.zeros(b, h, k.shape[2], dtype=torch.float32, device=q.device)
    for start in range(0, length, row_chunk):
        qs = q[:, :, start : start + row_chunk].float()  # [B, H, c, d]
        p = torch.softmax(torch.matmul(qs, kf.transpose(-1, -2)) * scale, dim=-1)  # [B, H, c, L]
        acc += p.sum(dim=2)
    return acc.mean(dim=1)


def cls_attention_ref(
    q_cls: torch.Tensor, k: torch.Tensor, scale: float, softmax: bool = True
) -> torch.Tensor:
    """[CLS] -> token attention averaged over heads.

    q_cls: ``[B, H, d]``; k: ``[B, H, L, d]``. Returns float32 ``[B, L]``: the softmax row of
    the [CLS] query (or the raw scaled logits when ``softmax=False``, as released KTV does),
    averaged over heads.
    """
    logits = torch.einsum("bhd,bhld->bhl", q_cls.float(), k.float()) * scale  # [B, H, L]
    if softmax:
        logits = torch.softmax(logits, dim=-1)
    return logits.mean(dim=1)

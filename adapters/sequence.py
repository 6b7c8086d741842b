"""Sequence pruning: cut a batch of prompts down to the kept visual tokens and re-pad it.

Pure tensor code (no model): :func:`video_keep_mask` turns a token selection into a keep mask
over one video's placeholder run, :func:`prune_sequences` applies one keep mask per row to
``input_ids``, ``attention_mask``, ``mm_token_type_ids`` and the position rows together and
re-pads the rows on the left.
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import AdapterError


class ModelInputs(dict):
    """The keyword arguments of one :meth:`VideoLLM.prepare` call (a dict: ``model(**kw)`` and
    ``model.generate(**kw)`` take it as is) plus what generation needs from that call, as
    attributes (like transformers' ``BatchFeature``), so nothing is kept on the adapter.

    stats:        the call's :class:`~.stats.Stats`.
    selections:   the token selections, one per video.
    legacy_state: transformers 4.x only: what :meth:`VideoLLM.generation_context` installs.
    videos:       (processor outputs) the prepared videos they were made from.
    """

    def __init__(self, *args: Any, legacy_state: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stats: Any = None
        self.selections: list[Any] = []
        self.legacy_state = legacy_state
        self.videos: list[Any] = []


def video_keep_mask(index: list[torch.Tensor], grid: tuple[int, int, int], n_tail: int) -> torch.Tensor:
    """bool ``[F*h*w + n_tail]``: which placeholders of one video stay.

    index: per frame the kept raster cells (int64 ``[k_f]``); grid: ``(F, h, w)``; the
    ``n_tail`` tokens after the grids (LLaVA-OneVision's newline) always stay.
    """
    f, h, w = grid
    keep = torch.zeros(f * h * w + n_tail, dtype=torch.bool)
    for i, idx in enumerate(index):
        keep[i * h * w + idx.cpu()] = True
    keep[f * h * w:] = True
    return keep


def prune_sequences(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
    keeps: list[torch.Tensor],
    video_token_id: int,
    *,
    pad_id: int | None = None,
    mm_token_type_ids: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Drop the placeholders that ``keeps`` rejects and re-pad every row on the left.

    input_ids, attention_mask: ``[B, L]`` (left-padded); positions: ``[..., B, L]`` (``[B, L]``
    or M-RoPE ``[4, B, L]``); keeps: per row a bool ``[N_b]`` over that row's ``N_b``
    placeholders (``input_ids == video_token_id``, in order); pad_id: the pad token (0 if None);
    mm_token_type_ids: ``[B, L]`` or None.
    Returns ``input_ids``, ``attention_mask`` (1 on kept tokens), ``position_ids`` (the kept
    tokens' given positions; 0 on padding) ``[..., B, L']`` with ``L'`` the longest kept row,
    and ``mm_token_type_ids`` when given. Text tokens and padding-free rows keep their order.
    Raises :class:`AdapterError` when a row's placeholder count differs from its keep mask.
    """
    b_sz = input_ids.shape[0]
    if len(keeps) != b_sz:
        raise AdapterError(f"prune_sequences got {len(keeps)} keep masks for {b_sz} rows.")
    keep_seq = torch.ones_like(input_ids, dtype=torch.bool)
    vmask = input_ids == video_token_id
    for b in range(b_sz):
        where = torch.nonzero(vmask[b]).squeeze(1)
        if where.numel() != keeps[b].numel():
            raise AdapterError(
                f"Row {b} has {where.numel()} video placeholders but its video has {keeps[b].numel()} tokens; "
                "one video per prompt is supported."
            )
        keep_seq[b, where] = keeps[b].to(input_ids.device)
    rows = [torch.nonzero(attention_mask[b].bool() & keep_seq[b]).squeeze(1) for b in range(b_sz)]
    length = max(int(r.numel()) for r in rows)
    new_ids = torch.full((b_sz, length), pad_id if pad_id is not None else 0, dtype=input_ids.dtype)
    new_att = torch.zeros((b_sz, length), dtype=attention_mask.dtype)
    tt = mm_token_type_ids
    new_tt = None if tt is None else torch.zeros((b_sz, length), dtype=tt.dtype)
    new_pos = torch.zeros(positions.shape[:-1] + (length,), dtype=positions.dtype)
    for b, r in enumerate(rows):
        off = length - int(r.numel())
        new_ids[b, off:] = input_ids[b, r]
        new_att[b, off:] = 1
        if new_tt is not None and tt is not None:
            new_tt[b, off:] = tt[b, r]
        new_pos[..., b, off:] = positions[..., b, r]
    out: dict[str, Any] = {"input_ids": new_ids, "attention_mask": new_att, "position_ids": new_pos}
    if new_tt is not None:
        out["mm_token_type_ids"] = new_tt
    return out


def text_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` ``attention_mask.cumsum - 1`` (0 on padding): the 1-D positions generation
    numbers a left-padded row with."""
    return (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)

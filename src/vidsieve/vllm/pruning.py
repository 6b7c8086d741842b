"""Token pruning at a fixed retained count, on tensors shaped as vLLM passes them.

vLLM's video pruning for Qwen2.5-VL / Qwen3-VL (``--video-pruning-rate``) fixes, at prompt
time, how many placeholder tokens a video gets: ``retained = max(L, int(L * t * (1 - rate)))``
(``L`` tokens per temporal group, ``t`` groups), the rule of vLLM's
``compute_retained_tokens_count``. After the vision tower, one function chooses which of the
``t * L`` tokens fill those places, and each kept token takes its *original* M-RoPE position
(computed on the unpruned grid) with it. :func:`prune_video_embeds` is that function for any
vidsieve token selector: the selector chooses, the count is exactly ``retained``.

Layout (one video):

* ``embeds`` ``[N, C]`` with ``N = t * (h // m) * (w // m)``: tokens in the order vLLM's tower
  emits them (temporal group, merged row, merged column), ``C`` = the LLM width ``D``, or for
  Qwen3-VL ``D * (1 + number of deepstack levels)`` (main features, then each deepstack
  level's, concatenated along channels as vLLM concatenates them). The selector sees all
  ``C`` channels, as vLLM's own EVS does, so a merge mixes the deepstack channels with the
  same weights as the main ones.
* ``grid_thw`` ``(t, h, w)`` in patches, before the spatial merge; ``m`` the merge size.
* ``positions`` ``[N, P]`` (optional): per-token channels carried with the tokens, e.g. the
  ``[t, h, w, max_width]`` rows of vLLM's ``compute_mrope_for_media``. Each output token gets
  the row of the grid cell it stands at, exactly as EVS masks them.

Each temporal group is one "frame" for the selector (a Qwen token covers two frames). The
``retained`` tokens are split over the groups by ``allotment``: ``"even"`` (default; largest
remainder, capped at ``L``) or ``"first-full"`` (the first group keeps all ``L`` tokens, the
rest share the remainder evenly; EVS always keeps the first frame whole). Selectors that may
return fewer tokens than allotted (``resize``, ``aot``, ``quota-assign``) are topped up in
each group with its unchosen original tokens, evenly spaced in raster order, so the total is
always exactly ``retained``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..allocation import largest_remainder
from ..errors import ParameterError
from ..params import param_error
from ..registry import TOKEN_SELECTORS
from ..tokens.base import TokenInput, TokenSelector


def evs_retained_count(tokens_per_group: int, num_groups: int, rate: float) -> int:
    """The number of video tokens vLLM reserves for a pruned video (its EVS rule).

    ``max(tokens_per_group, int(tokens_per_group * num_groups * (1 - rate)))``: never fewer
    than one temporal group's tokens. ``rate`` in ``[0, 1)``; ``rate = 0`` keeps all.
    """
    for name, v in (("tokens_per_group", tokens_per_group), ("num_groups", num_groups)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise param_error("evs_retained_count", name, "an int >= 1", v)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (0.0 <= rate < 1.0):
        raise param_error("evs_retained_count", "rate", "a float in [0, 1)", rate)
    total = int(tokens_per_group) * int(num_groups)
    return max(int(tokens_per_group), int(total * (1 - rate)))


@dataclass(frozen=True, eq=False)
class PrunedVideo:
    """What :func:`prune_video_embeds` returns for one video.

    embeds:    ``[retained, C]`` output tokens, grouped by temporal group, raster order within
               each (the order of ``embeds[keep]``), in the input dtype.
    keep:      bool ``[N]``: the grid cells the output tokens stand at (``retained`` True).
    positions: ``[retained, P]`` the carried rows of those cells, or None.
    counts:    int64 ``[t]`` output tokens per temporal group.
    merged:    True when some output tokens are new embeddings (a merging/resampling
               selector), False when ``embeds == input[keep]`` exactly.
    selection_extras: the token selector's ``extras`` (empty for the identity case).
    """

    embeds: torch.Tensor
    keep: torch.Tensor
    positions: torch.Tensor | None
    counts: np.ndarray
    merged: bool
    selection_extras: dict[str, Any]


def resolve_token_selector(selector: str | TokenSelector, params: dict[str, Any] | None = None) -> TokenSelector:
    """A registered token-selector name (with ``params``) or an instance -> an instance."""
    if isinstance(selector, TokenSelector):
        if params:
            raise ParameterError(
                "prune_video_embeds: selector_params are only for a selector given by name; "
                "configure the instance instead."
            )
        return selector
    if isinstance(selector, str):
        return TOKEN_SELECTORS.create(selector, **(params or {}))
    raise param_error("prune_video_embeds", "selector", "a registered token-selector name or a TokenSelector", selector)


def group_allotment(retained: int, num_groups: int, per_group: int, rule: str | np.ndarray) -> np.ndarray:
    """int64 ``[t]`` tokens per temporal group, summing to ``retained`` (each ``<= per_group``)."""
    if isinstance(rule, str):
        if rule == "even":
            return largest_remainder(retained, np.ones(num_groups), cap=per_group)
        if rule == "first-full":
            first = min(per_group, retained)
            rest = retained - first
            if num_groups == 1:
                return np.array([first], dtype=np.int64)
            tail = largest_remainder(rest, np.ones(num_groups - 1), cap=per_group)
            return np.concatenate([[first], tail]).astype(np.int64)
        raise param_error("prune_video_embeds", "allotment", "'even', 'first-full' or an int array [t]", rule)
    a = np.asarray(rule)
    if (
        a.shape != (num_groups,) or not np.issubdtype(a.dtype, np.integer) or np.any(a < 0)
        or np.any(a > per_group) or int(a.sum()) != retained
    ):
        raise ParameterError(
            f"The 'allotment' parameter of prune_video_embeds must be 'even', 'first-full' or "
            f"{num_groups} ints in [0, {per_group}] summing to {retained}. Got {rule!r} instead."
        )
    return a.astype(np.int64)


def _spread(candidates: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` of the sorted ``candidates``, evenly spaced (``linspace`` rows, unique)."""
    n = int(candidates.numel())
    if k >= n:
        return candidates
    rows = (torch.arange(k, dtype=torch.int64) * n) // k + (n // (2 * k))
    return candidates[rows.clamp(max=n - 1)]


def _check_inputs(embeds: Any, grid_thw: Any, merge: Any, retained: Any, positions: Any) -> tuple[int, int, int]:
    if not isinstance(embeds, torch.Tensor) or embeds.ndim != 2 or not embeds.is_floating_point():
        raise ParameterError(
            "prune_video_embeds: embeds must be a float tensor [N, C] (one video); got "
            f"{getattr(embeds, 'dtype', type(embeds).__name__)} {tuple(getattr(embeds, 'shape', ()))}."
        )
    try:
        t, h, w = (int(v) for v in (grid_thw.tolist() if isinstance(grid_thw, torch.Tensor) else grid_thw))
    except (TypeError, ValueError):
        raise param_error("prune_video_embeds", "grid_thw", "three ints (t, h, w)", grid_thw) from None
    if isinstance(merge, bool) or not isinstance(merge, (int, np.integer)) or merge < 1:
        raise param_error("prune_video_embeds", "spatial_merge_size", "an int >= 1", merge)
    if min(t, h, w) < 1 or h % merge or w % merge:
        raise ParameterError(
            f"prune_video_embeds: grid_thw {(t, h, w)} must be positive with h and w multiples of "
            f"the merge size {merge}."
        )
    per_group = (h // merge) * (w // merge)
    if embeds.shape[0] != t * per_group:
        raise ParameterError(
            f"prune_video_embeds: embeds has {embeds.shape[0]} tokens; grid_thw {(t, h, w)} with "
            f"merge {merge} gives {t} x {per_group} = {t * per_group}."
        )
    if isinstance(retained, bool) or not isinstance(retained, (int, np.integer)) or not 1 <= retained <= t * per_group:
        raise param_error("prune_video_embeds", "retained", f"an int in [1, {t * per_group}]", retained)
    if positions is not None and (
        not isinstance(positions, torch.Tensor) or positions.ndim != 2 or positions.shape[0] != embeds.shape[0]
    ):
        raise ParameterError(
            f"prune_video_embeds: positions must be a tensor [N, P] with N = {embeds.shape[0]}; got "
            f"{tuple(getattr(positions, 'shape', ()))}."
        )
    return t, h // int(merge), w // int(merge)


def prune_video_embeds(
    embeds: torch.Tensor,
    grid_thw: Any,
    spatial_merge_size: int,
    retained: int,
    selector: str | TokenSelector = "ktv-tokens",
    *,
    selector_params: dict[str, Any] | None = None,
    positions: torch.Tensor | None = None,
    allotment: str | np.ndarray = "even",
    timestamps: np.ndarray | list[float] | None = None,
) -> PrunedVideo:
    """Choose exactly ``retained`` of one video's tokens with a vidsieve token selector.

    embeds ``[N, C]``, grid_thw ``(t, h, w)`` (patches, before merging), spatial_merge_size
    ``m``, retained: the count vLLM reserved (:func:`evs_retained_count`). selector: a
    registered token-selector name (``selector_params`` its parameters) or an instance; it sees
    each temporal group as a frame ``[h//m, w//m, C]`` and no tower attention (vLLM's tower does
    not expose it), so attention-based selectors use their attention-free fallbacks.
    positions ``[N, P]``: rows carried with the tokens. timestamps ``[t]`` seconds per group
    (optional, passed to the selector). ``retained == N`` returns the input unchanged (the
    selector is not called). See the module docstring for the layout and the top-up rule.
    """
    t, gh, gw = _check_inputs(embeds, grid_thw, spatial_merge_size, retained, positions)
    n_per = gh * gw
    total = t * n_per
    if retained == total:
        keep = torch.ones(total, dtype=torch.bool, device=embeds.device)
        return PrunedVideo(embeds, keep, positions, np.full(t, n_per, dtype=np.int64), False, {})
    sel_obj = resolve_token_selector(selector, selector_params)
    allot = group_allotment(int(retained), t, n_per, allotment)
    grids = embeds.detach().reshape(t, gh, gw, embeds.shape[-1])
    work = grids.float()  # selectors score in float32, on the tower's device (Triton kernels on CUDA)
    ts = None if timestamps is None else np.asarray(timestamps, dtype=np.float64).reshape(-1)[:t]
    sel = sel_obj.select(TokenInput(tokens=work, allotment=allot, budget=int(retained), timestamps=ts))

    flat_in = embeds.reshape(t, n_per, embeds.shape[-1])
    out_rows: list[torch.Tensor] = []
    keep = torch.zeros(t, n_per, dtype=torch.bool)
    merged = sel.embeddings is not None
    for f in range(t):
        idx = sel.index[f].to(torch.int64).cpu()
        if sel.embeddings is not None:
            emb = sel.embeddings[f].to(device=embeds.device, dtype=embeds.dtype)
        else:
            emb = flat_in[f, idx.to(embeds.device)]
        short = int(allot[f]) - int(idx.numel())
        if short > 0:  # top up with unchosen original tokens, evenly spaced in raster order
            free = torch.ones(n_per, dtype=torch.bool)
            free[idx] = False
            extra = _spread(torch.nonzero(free).squeeze(1), short)
            idx = torch.cat([idx, extra])
            emb = torch.cat([emb, flat_in[f, extra.to(embeds.device)]])
            order = torch.argsort(idx)
            idx, emb = idx[order], emb[order.to(embeds.device)]
        keep[f, idx] = True
        out_rows.append(emb)
    keep_flat = keep.reshape(-1).to(embeds.device)
    out = torch.cat(out_rows)
    if out.shape[0] != retained:  # a selector broke its contract; never hand vLLM a wrong count
        raise ParameterError(
            f"prune_video_embeds: selector {sel.selector!r} produced {out.shape[0]} tokens; "
            f"{retained} are reserved."
        )
    pos = None if positions is None else positions[keep_flat.to(positions.device)]
    counts = keep.sum(dim=1).numpy().astype(np.int64)
    return PrunedVideo(out, keep_flat, pos, counts, merged, dict(sel.extras))


__all__ = ["PrunedVideo", "evs_retained_count", "group_allotment", "prune_video_embeds", "resolve_token_selector"]

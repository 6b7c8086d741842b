"""Qwen2.5-VL / Qwen3-VL subclasses whose video pruning step uses a vidsieve token selector.

vLLM prunes video tokens in ``_postprocess_video_embeds_evs`` when ``--video-pruning-rate``
is above 0; the number of tokens is fixed earlier, at prompt time, from the grid and the rate.
These subclasses keep that count, the position bookkeeping and everything else of the
upstream classes, and replace only the choice of the kept tokens with
:func:`vidsieve.vllm.pruning.prune_video_embeds`.

Configuration (read from the model's HF config, so set it with ``hf_overrides``)::

    hf_overrides={"vidsieve": {"token_selector": "ktv-tokens",      # any registered name
                               "params": {"alpha": 0.5},              # its parameters
                               "allotment": "even"}}                  # or "first-full"

Without a ``vidsieve`` entry (or with rate 0) the subclasses behave exactly as upstream: the
plugin registers them over the upstream architecture names, so every Qwen2.5-VL / Qwen3-VL
served with the plugin installed goes through them. This module imports vLLM.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from vllm.model_executor.models.qwen2_5_vl import Qwen2_5_VLForConditionalGeneration
from vllm.model_executor.models.qwen3_vl import Qwen3VLForConditionalGeneration
from vllm.model_executor.models.qwen3_vl_moe import Qwen3VLMoeForConditionalGeneration
from vllm.multimodal.video_prune.evs import compute_mrope_for_media, compute_retained_tokens_count

from ..tokens.base import TokenSelector
from .pruning import prune_video_embeds
from .settings import vidsieve_settings

#: under vLLM's logger namespace, so its handlers print it
logger = logging.getLogger("vllm.plugins.vidsieve")


def _configure(model: Any) -> tuple[TokenSelector, str] | None:
    settings = vidsieve_settings(model.config)
    if settings is not None:
        logger.info(
            "vidsieve: %s chooses the kept video tokens (%r, allotment %s) at video_pruning_rate=%s",
            type(model).__name__, settings[0], settings[1], getattr(model, "video_pruning_rate", None),
        )
    return settings


def _timestamps(video_input: Any, i: int) -> Any:
    ts = getattr(video_input, "timestamps", None)
    if ts is None and isinstance(video_input, dict):
        ts = video_input.get("timestamps")
    return None if ts is None else ts[i]


class VidsieveQwen2_5_VLForConditionalGeneration(Qwen2_5_VLForConditionalGeneration):
    """Qwen2.5-VL with vidsieve token selection in the video pruning step (see module doc)."""

    def __init__(self, *, vllm_config: Any, prefix: str = "") -> None:
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        self._vidsieve = _configure(self)

    def _postprocess_video_embeds_evs(self, video_embeds_split: Any, video_input: Any) -> tuple[torch.Tensor, ...]:
        if self._vidsieve is None:
            return super()._postprocess_video_embeds_evs(video_embeds_split, video_input)
        selector, allotment = self._vidsieve
        grid_thw = video_input["video_grid_thw"]
        merge = self.visual.spatial_merge_size
        second_per_grid_ts = video_input.get("second_per_grid_ts")
        if second_per_grid_ts is None:
            raise ValueError("second_per_grid_ts is required when video_pruning_rate > 0.")
        # the same integer cast as upstream, so positions match its EVS path exactly
        second_per_grid_ts = second_per_grid_ts.long()
        tps = self.config.vision_config.tokens_per_second
        out = []
        for emb, size, spg in zip(video_embeds_split, grid_thw.tolist(), second_per_grid_ts):
            t, h, w = (int(v) for v in size)
            retained = compute_retained_tokens_count((h // merge) * (w // merge), t, self.video_pruning_rate)
            positions = compute_mrope_for_media(
                size, merge, tokens_per_second=tps, video_second_per_grid=spg.item()
            ).to(emb.device)
            pruned = prune_video_embeds(
                emb, size, merge, retained, selector, positions=positions, allotment=allotment
            )
            if pruned.positions is None:  # pragma: no cover - positions were passed in
                raise RuntimeError("pruning lost the position channels (internal error).")
            out.append(torch.cat([pruned.embeds, pruned.positions], dim=1))
        return tuple(out)


class _Qwen3VidsieveMixin:
    """Qwen3-VL family: prune, then let upstream lay out timestamps, deepstack and positions."""

    _vidsieve: tuple[TokenSelector, str] | None

    def _postprocess_video_embeds_evs(self, video_embeds_split: Any, video_input: Any) -> tuple[torch.Tensor, ...]:
        me: Any = self
        if self._vidsieve is None or not me.is_multimodal_pruning_enabled:
            return super()._postprocess_video_embeds_evs(video_embeds_split, video_input)  # type: ignore[misc]
        selector, allotment = self._vidsieve
        merge = me.visual.spatial_merge_size
        if getattr(me, "video_pruning_method", None) == "vidcom2":
            from vllm.multimodal.video_prune.vidcom2 import (
                compute_retained_tokens_count as count_fn,
            )
        else:
            count_fn = compute_retained_tokens_count
        out = []
        for i, (emb, size) in enumerate(zip(video_embeds_split, video_input["video_grid_thw"].tolist())):
            t, h, w = (int(v) for v in size)
            timestamps = _timestamps(video_input, i)
            retained = count_fn(
                tokens_per_frame=(h // merge) * (w // merge), num_frames=t, q=me.video_pruning_rate
            )
            ts = None if timestamps is None else [float(x) for x in timestamps]
            pruned = prune_video_embeds(emb, size, merge, retained, selector, allotment=allotment, timestamps=ts)
            out.append(
                me._create_final_video_embeddings(
                    video_embeddings=pruned.embeds,
                    num_tokens_per_frame=[int(c) for c in pruned.counts],
                    timestamps=timestamps,
                    video_grid_thw=size,
                    retention_mask=pruned.keep,
                )
            )
        return tuple(out)


class VidsieveQwen3VLForConditionalGeneration(_Qwen3VidsieveMixin, Qwen3VLForConditionalGeneration):
    """Qwen3-VL with vidsieve token selection in the video pruning step (see module doc)."""

    def __init__(self, *, vllm_config: Any, prefix: str = "model") -> None:
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        self._vidsieve = _configure(self)


class VidsieveQwen3VLMoeForConditionalGeneration(_Qwen3VidsieveMixin, Qwen3VLMoeForConditionalGeneration):
    """Qwen3-VL-MoE with vidsieve token selection in the video pruning step (see module doc)."""

    def __init__(self, *, vllm_config: Any, prefix: str = "") -> None:
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        self._vidsieve = _configure(self)

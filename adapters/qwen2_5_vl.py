"""Qwen2.5-VL adapter: Qwen2-VL's route plus ``second_per_grid_ts`` and window attention.

Temporal spacing: the processor sets ``second_per_grid_ts = 2 / sampled_fps`` with
``sampled_fps = K / total_frames * fps`` computed from the chosen frames' metadata, and
``get_rope_index`` spaces temporal positions by ``tokens_per_second * second_per_grid_ts``.
So the spacing reflects how many frames were chosen from how long a video (the model's
own rule assumes even spacing; uneven keyframes are spaced at their mean interval). With
``temporal_positions="timestamps"`` each temporal group's t position is instead
``int((start time of the group - start time of the first group) * tokens_per_second)``
from the chosen frames' true timestamps (close to the model's rule when the frames evenly span
the whole video; truthful for uneven keyframes; then no longer identical to the plain model).

Tower statistics: most vision blocks attend within windows over a permuted patch order; the
statistics are un-permuted with the tower's own ``window_index`` before mapping to the grid.
"""

from __future__ import annotations

from typing import Any

import torch

from vidsieve.errors import ParameterError
from vidsieve.registry import register_adapter

from .base import AdapterError, VideoTokens
from .qwen2_vl import QwenVideoLLM


@register_adapter("qwen2_5_vl", "Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration)")
class Qwen2_5VLVideoLLM(QwenVideoLLM):
    model_types = ("qwen2_5_vl",)
    processor_classes = ("Qwen2_5_VLProcessor",)
    rope_extra_keys = ("second_per_grid_ts",)

    def __init__(self, model: Any, processor: Any, *, temporal_positions: str = "processor", **kwargs: Any) -> None:
        if temporal_positions not in ("processor", "timestamps"):
            raise ParameterError(
                f"temporal_positions must be 'processor' or 'timestamps'. Got {temporal_positions!r} instead."
            )
        self.temporal_positions = temporal_positions
        super().__init__(model, processor, **kwargs)

    def original_positions(self, inputs: dict[str, Any]) -> torch.Tensor:
        pos = super().original_positions(inputs)
        if self.temporal_positions != "timestamps":
            return pos
        videos = getattr(inputs, "videos", None)
        if not videos:
            raise AdapterError("temporal_positions='timestamps' needs the inputs from this adapter's process().")
        # start time of each temporal group (its first frame)
        group_starts = [v.frames.timestamps[::self.temporal_group].astype(float) for v in videos]
        tps = float(self.model.config.vision_config.tokens_per_second)
        ids, m2 = inputs["input_ids"], self.merge**2
        for b, ((t, h, w), starts) in enumerate(zip(inputs["video_grid_thw"].tolist(), group_starts)):
            where = torch.nonzero(ids[b] == self.video_token_id).squeeze(1)
            per_group = h * w // m2
            offsets = torch.tensor([int((s - starts[0]) * tps) for s in starts[:t]], dtype=pos.dtype)
            t0 = pos[1, b, where[0]]
            pos[1, b, where] = t0 + offsets.repeat_interleave(per_group)
        return pos

    def _patch_rows(self, rows: list[torch.Tensor], vids: list[VideoTokens]) -> list[torch.Tensor]:
        vis = self.inner.visual
        m = self.merge  # the grid (t, h, w) of patches, as video_grid_thw gives it
        thw = torch.tensor([[vt.grid.shape[0], vt.grid.shape[1] * m, vt.grid.shape[2] * m] for vt in vids])
        if hasattr(vis, "get_window_index"):  # transformers 4.x
            window_index, _ = vis.get_window_index(thw)
        else:
            from transformers.vision_utils import get_vision_window_index

            window_index, _ = get_vision_window_index(
                thw, spatial_merge_size=vis.spatial_merge_size, window_size=vis.window_size,
                patch_size=vis.patch_size,
            )
        flat = torch.cat(rows)  # patches in the tower's permuted order
        unit = vis.spatial_merge_unit
        unperm = flat.reshape(-1, unit)[torch.argsort(window_index.to(flat.device))].reshape(-1)
        sizes = [h * w for (t, h, w) in thw.tolist() for _ in range(t)]
        return list(torch.split(unperm, sizes))

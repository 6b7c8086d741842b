"""Qwen3-VL adapter: Qwen2-VL's route plus timestamps and deepstack features.

Timestamps: the processor writes ``<{t:.1f} seconds>`` before each temporal group, computed from
``video_metadata.frames_indices / fps`` (mean of the group's two frames), so the text tells
the chosen frames' true times, uneven keyframes included.

Deepstack: the vision tower also returns ``deepstack_features`` (one ``[N, D]`` per listed
vision layer per video) that the LLM adds to the visual positions of its first layers. They
are cut with the same keep mask as the main features (a merged/resampled token takes the
deepstack features of the grid cell it stands at).
"""

from __future__ import annotations

from typing import Any

import torch

from vidsieve.registry import register_adapter

from .qwen2_vl import QwenVideoLLM


@register_adapter("qwen3_vl", "Qwen3-VL (Qwen3VLForConditionalGeneration)")
class Qwen3VLVideoLLM(QwenVideoLLM):
    model_types = ("qwen3_vl",)
    processor_classes = ("Qwen3VLProcessor",)
    min_processor_frames = 2  # its processor refuses one frame; one chosen frame is fed twice

    def pruned_output(self, enc: Any, feats: list[torch.Tensor], keeps: list[torch.Tensor]) -> Any:
        cls = type(enc)
        deep = [
            tuple(f[k.to(f.device)] for f, k in zip(layer, keeps)) for layer in enc.deepstack_features
        ]
        return cls(pooler_output=tuple(feats), deepstack_features=deep)

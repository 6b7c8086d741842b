"""Qwen3-VL adapter: Qwen2-VL's route plus timestamps and deepstack features.

Timestamps: the processor writes ``<{t:.1f} seconds>`` before each temporal group, computed from
``video_metadata.frames_indices / fps`` (mean of the group's first and last frame), so the text
tells the chosen frames' times, uneven keyframes included. When the frames carry presentation
timestamps that ``index / fps`` does not give (variable frame rate), the metadata's
``frames_indices`` are ``timestamp * fps`` instead, so the text tells the true times.

Deepstack: the vision tower also returns ``deepstack_features`` (one ``[N, D]`` per listed
vision layer per video) that the LLM adds to the visual positions of its first layers. They
are cut with the same keep mask as the main features (a merged/resampled token takes the
deepstack features of the grid cell it stands at).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vidsieve.registry import register_adapter

from .frames import PreparedVideo
from .qwen2_vl import QwenVideoLLM


@register_adapter("qwen3_vl", "Qwen3-VL (Qwen3VLForConditionalGeneration)")
class Qwen3VLVideoLLM(QwenVideoLLM):
    model_types = ("qwen3_vl",)
    processor_classes = ("Qwen3VLProcessor",)
    min_processor_frames = 2  # its processor refuses one frame; one chosen frame is fed twice

    def video_metadata(self, video: PreparedVideo) -> dict[str, Any]:
        md = super().video_metadata(video)
        fr = video.frames
        if not np.allclose(fr.indices / video.fps, fr.timestamps, rtol=0.0, atol=1e-6):
            md["frames_indices"] = (fr.timestamps * video.fps).tolist()  # the processor divides by fps
        return md

    def pruned_output(self, enc: Any, feats: list[torch.Tensor], keeps: list[torch.Tensor]) -> Any:
        cls = type(enc)
        deep = [
            tuple(f[k.to(f.device)] for f, k in zip(layer, keeps)) for layer in enc.deepstack_features
        ]
        return cls(pooler_output=tuple(feats), deepstack_features=deep)

"""LLaVA-NeXT-Video adapter.

Token grid: CLIP patches (shortest edge 224, centre crop; [CLS] dropped) average-pooled with
stride 2 BEFORE the projector: 12x12 = 144 tokens per frame for the reference models, no
newline. ``pooler_output`` is ``[B, F*144, D]``; the model flattens each entry, so the pruned
features are handed over as a list of per-video ``[K_i, D]``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from vidsieve.registry import register_adapter

from .base import VideoTokens
from .llava_onevision import LlavaVideoLLM


@register_adapter("llava_next_video", "LLaVA-NeXT-Video (LlavaNextVideoForConditionalGeneration)")
class LlavaNextVideoVideoLLM(LlavaVideoLLM):
    model_types = ("llava_next_video",)
    processor_classes = ("LlavaNextVideoProcessor",)
    n_tail = 0
    pre_projector_on_llm_grid = True

    def default_text(self, prompt: str) -> str:
        return f"USER: {self.video_placeholder}\n{prompt} ASSISTANT:"

    def pruned_output(self, enc: Any, feats: list[torch.Tensor], keeps: list[torch.Tensor]) -> Any:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        out: Any = list(feats)
        return BaseModelOutputWithPooling(pooler_output=out)

    def pre_projector_to_grid(self, feats: list[torch.Tensor], vids: list[VideoTokens]) -> list[torch.Tensor | None]:
        """The projector's input here is the pooled vision features of the feature layer (-2 for
        the reference models), one ``[h*w, D']`` per frame: exactly the LLM grid."""
        rows = torch.cat([f.reshape(-1, f.shape[-2], f.shape[-1]) for f in feats])  # [sum F, h*w, D']
        out: list[torch.Tensor | None] = []
        i = 0
        for vt in vids:
            f, h, w, _ = vt.grid.shape
            out.append(rows[i:i + f].reshape(f, h, w, rows.shape[-1]).to(vt.grid.device))
            i += f
        return out

    def _pool_stats(self, maps: torch.Tensor, h: int, w: int) -> torch.Tensor:
        stride = maps.shape[-1] // h
        return F.avg_pool2d(maps[:, None], kernel_size=stride, stride=stride)[:, 0].reshape(maps.shape[0], -1)

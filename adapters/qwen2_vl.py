"""Qwen2-VL adapter (also the shared Qwen logic that Qwen2.5-VL and Qwen3-VL extend).

Token grid: ``get_video_features`` returns per video ``[t * h/2 * w/2, D]`` in the order
(temporal group, merged row, merged column), which is also the order of the video's
``<|video_pad|>`` run, so the grid is a plain reshape to ``[t, h/2, w/2, D]``. One grid
"frame" is a temporal group of 2 chosen frames.

Positions: ``[4, B, L]``: row 0 is the text position (``attention_mask.cumsum - 1``, used by
the mask code), rows 1-3 the M-RoPE (t, h, w) from the model's own ``get_rope_index`` on the
unpruned sequence.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import torch

from vidsieve.registry import register_adapter

from .base import AdapterError, VideoTokens, accepts
from .legacy import QwenLegacyRoute


class QwenVideoLLM(QwenLegacyRoute):
    """Shared Qwen2/2.5/3-VL logic."""

    temporal_group = 2
    mrope = True
    video_placeholder = "<|vision_start|><|video_pad|><|vision_end|>"
    image_placeholder = "<|vision_start|><|image_pad|><|vision_end|>"

    @property
    def inner(self) -> Any:
        return self.model.model

    @property
    def merge(self) -> int:
        return int(self.model.config.vision_config.spatial_merge_size)

    def default_text(self, prompt: str) -> str:
        return f"<|im_start|>user\n{self.video_placeholder}{prompt}<|im_end|>\n<|im_start|>assistant\n"

    def encode(self, inputs: dict[str, Any]) -> tuple[Any, list[VideoTokens]]:
        pv, thw = inputs["pixel_values_videos"], inputs["video_grid_thw"]
        dev = next(self.model.parameters()).device
        enc: Any
        if self.legacy:
            enc = self._legacy_features(pv.to(dev), thw.to(dev))
        else:
            enc = self.inner.get_video_features(pv.to(dev), thw.to(dev), return_dict=True)
        m = self.merge
        vids = []
        for f, (t, h, w) in zip(enc.pooler_output, thw.tolist()):
            vids.append(VideoTokens(grid=f.reshape(t, h // m, w // m, f.shape[-1]), tail=f[:0]))
        return enc, vids

    def pruned_output(self, enc: Any, feats: list[torch.Tensor], keeps: list[torch.Tensor]) -> Any:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        out: Any = tuple(feats)
        return BaseModelOutputWithPooling(pooler_output=out)

    def original_positions(self, inputs: dict[str, Any]) -> torch.Tensor:
        text = super().original_positions(inputs)
        fn = self.inner.get_rope_index
        kw: dict[str, Any] = {"video_grid_thw": inputs["video_grid_thw"], "attention_mask": inputs["attention_mask"]}
        for key in self.rope_extra_keys:
            if key in inputs and accepts(fn, key):
                v = inputs[key]
                kw[key] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
        if accepts(fn, "mm_token_type_ids"):
            vis, _ = fn(inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"], **kw)
        elif accepts(fn, "video_grid_thw"):  # transformers 4.x: token types read off input_ids
            vis, _ = fn(inputs["input_ids"], **kw)
        else:
            raise AdapterError(f"Unsupported get_rope_index signature: {inspect.signature(fn)}.")
        return torch.cat([text[None], vis.to(text.dtype)], dim=0)

    # ---- vision-tower statistics (attention received per token)
    def tower_modules(self) -> list[tuple[int, torch.nn.Module]]:
        return [(i, blk.attn) for i, blk in enumerate(self.inner.visual.blocks)]

    def _qk_from_call(self, module: Any, args: tuple, kwargs: dict) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        hidden = args[0] if args else kwargs["hidden_states"]
        cu: Any = kwargs.get("cu_seqlens", args[1] if len(args) > 1 else None)
        cos, sin = kwargs.get("position_embeddings", args[2] if len(args) > 2 else (None, None))
        n = hidden.shape[0]
        q, k, _ = module.qkv(hidden).reshape(n, 3, module.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        rot = sys.modules[type(module).__module__].apply_rotary_pos_emb_vision
        q, k = rot(q, k, cos, sin)
        q, k = q.transpose(0, 1).unsqueeze(0), k.transpose(0, 1).unsqueeze(0)  # [1, H, n, d]
        out = []
        for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
            out.append((q[:, :, a:b], k[:, :, a:b], float(module.scaling)))
        return out

    def _patch_rows(self, rows: list[torch.Tensor], vids: list[VideoTokens]) -> list[torch.Tensor]:
        """Per temporal group ``[h*w]`` patch statistics in tower order, per segment."""
        return rows

    def tower_stats_to_grid(self, stats: list[torch.Tensor], vids: list[VideoTokens]) -> list[torch.Tensor]:
        rows = self._patch_rows(stats, vids)
        m2 = self.merge**2
        out, i = [], 0
        for vt in vids:
            f, h, w, _ = vt.grid.shape
            g = torch.stack([r.reshape(h * w, m2).sum(-1) for r in rows[i:i + f]])  # merge windows are contiguous
            out.append(g.float().to(vt.grid.device))
            i += f
        return out


@register_adapter("qwen2_vl", "Qwen2-VL (Qwen2VLForConditionalGeneration)")
class Qwen2VLVideoLLM(QwenVideoLLM):
    model_types = ("qwen2_vl",)
    processor_classes = ("Qwen2VLProcessor",)

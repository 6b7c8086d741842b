"""LLaVA-OneVision adapter (also LLaVA-Video checkpoints, which use the same HF class).

Token grid: ``get_video_features`` returns per video ``[F * h' * w' + 1, D]``: each frame's
projected SigLIP grid bilinearly pooled to ``ceil(h/2) x ceil(w/2)`` (27x27 -> 14x14 = 196 for
the reference models), then ONE newline token at the end of the video. The newline is always
kept and counts toward ``budget.tokens``.

Pruned features are handed over as ``pooler_output`` of shape ``[N, 1, D]`` (one token per
entry): the model flattens the first two dims, and generate's beam/sample expansion then
groups the entries per video by the placeholder counts, which stays correct when videos in a
batch keep different numbers of tokens (a ``[1, sum K, D]`` layout would be expanded wrongly).

Positions are 1-D: ``positions="original"`` (default) gives each kept token its unpruned
index; ``"compact"`` renumbers ``0..L'-1``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from vidsieve.registry import register_adapter
from vidsieve.tokens.base import TokenInput, TokenSelection

from .base import PreparedVideo, VideoTokens
from .legacy import LlavaLegacyRoute
from .sequence import ModelInputs


class LlavaVideoLLM(LlavaLegacyRoute):
    """Shared LLaVA-family logic: SigLIP/CLIP towers, 1-D positions, fixed-size frames."""

    #: tokens after the frame grids in each video's placeholder run.
    n_tail = 0

    @property
    def inner(self) -> Any:
        return self.model.model

    def default_text(self, prompt: str) -> str:
        return f"<|im_start|>user\n{self.video_placeholder}\n{prompt}<|im_end|>\n<|im_start|>assistant\n"

    def process(self, texts: list[str], videos: list[PreparedVideo]) -> dict[str, Any]:
        counts = {len(v.frames) for v in videos}
        if len(counts) == 1:
            return super().process(texts, videos)
        # The processor stacks videos into one tensor; different frame counts are processed one
        # by one and collated here (left padding).
        parts = [super(LlavaVideoLLM, self).process([t], [v]) for t, v in zip(texts, videos)]
        length = max(p["input_ids"].shape[1] for p in parts)
        pad = self.processor.tokenizer.pad_token_id or 0
        ids = torch.full((len(parts), length), pad, dtype=parts[0]["input_ids"].dtype)
        att = torch.zeros((len(parts), length), dtype=parts[0]["attention_mask"].dtype)
        for b, p in enumerate(parts):
            n = p["input_ids"].shape[1]
            ids[b, length - n:] = p["input_ids"][0]
            att[b, length - n:] = p["attention_mask"][0]
        res = ModelInputs({"input_ids": ids, "attention_mask": att,
                           "pixel_values_videos": [p["pixel_values_videos"] for p in parts]})
        res.videos = list(videos)
        return res

    def _video_features(self, pv: torch.Tensor) -> Any:
        return self.inner.get_video_features(pixel_values_videos=pv, return_dict=True)

    def _grid_side(self, n_per_frame: int) -> tuple[int, int]:
        s = math.isqrt(n_per_frame)
        return s, n_per_frame // s

    def encode(self, inputs: dict[str, Any]) -> tuple[Any, list[VideoTokens]]:
        dev = next(self.model.parameters()).device
        pvs = inputs["pixel_values_videos"]
        batches = [pvs] if isinstance(pvs, torch.Tensor) else list(pvs)
        outs, vids = [], []
        for pv in batches:
            enc = self._legacy_features(pv.to(dev)) if self.legacy else self._video_features(pv.to(dev))
            outs.append(enc)
            frames = pv.shape[1]
            for feat in enc.pooler_output:
                body = feat[: feat.shape[0] - self.n_tail]
                h, w = self._grid_side(body.shape[0] // frames)
                vids.append(VideoTokens(grid=body.reshape(frames, h, w, feat.shape[-1]), tail=feat[body.shape[0]:]))
        return outs, vids

    def pruned_output(self, enc: Any, feats: list[torch.Tensor], keeps: list[torch.Tensor]) -> Any:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        return BaseModelOutputWithPooling(pooler_output=torch.cat(feats)[:, None, :])

    # ---- vision-tower statistics
    def tower_modules(self) -> list[tuple[int, torch.nn.Module]]:
        attn = [m for m in self.inner.vision_tower.modules() if hasattr(m, "q_proj") and hasattr(m, "k_proj")]
        return list(enumerate(attn))

    def _qk_from_call(self, module: Any, args: tuple, kwargs: dict) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        hidden = args[0] if args else kwargs["hidden_states"]
        b, n, _ = hidden.shape
        heads = module.num_heads
        q = module.q_proj(hidden).reshape(b, n, heads, -1).transpose(1, 2)
        k = module.k_proj(hidden).reshape(b, n, heads, -1).transpose(1, 2)
        return [(q, k, float(module.scale))]

    def _pool_stats(self, maps: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``[F, side, side]`` tower-grid statistics -> ``[F, h*w]`` on the LLM grid."""
        return F.interpolate(maps[:, None], size=(h, w), mode="bilinear")[:, 0].reshape(maps.shape[0], -1)

    def tower_stats_to_grid(self, stats: list[torch.Tensor], vids: list[VideoTokens]) -> list[torch.Tensor]:
        out, i = [], 0
        drop = 1 if self.has_cls_token() else 0
        for vt in vids:
            f, h, w, _ = vt.grid.shape
            rows = torch.stack(stats[i:i + f]).float()[:, drop:]
            side = math.isqrt(rows.shape[1])
            out.append(self._pool_stats(rows.reshape(f, side, side), h, w).to(vt.grid.device))
            i += f
        return out

    def has_cls_token(self) -> bool:
        return self.model.config.vision_config.model_type == "clip_vision_model"

    def projector_module(self) -> torch.nn.Module | None:
        return self.inner.multi_modal_projector  # type: ignore[no-any-return]


@register_adapter("llava_onevision", "LLaVA-OneVision / LLaVA-Video (LlavaOnevisionForConditionalGeneration)")
class LlavaOnevisionVideoLLM(LlavaVideoLLM):
    model_types = ("llava_onevision",)
    processor_classes = ("LlavaOnevisionProcessor",)
    n_tail = 1
    pools_after_projector = True

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The model's own pooling of a tower-grid map: float ``[F, H*W, C] -> [F, h*w, C]``
        (bilinear to ``ceil(H/2) x ceil(W/2)``)."""
        fn = getattr(self.inner, "apply_pooling", None)
        if fn is not None:
            return fn(x)  # type: ignore[no-any-return]
        side = math.isqrt(x.shape[1])  # pragma: no cover - every supported version has apply_pooling
        y = F.interpolate(x.reshape(x.shape[0], side, side, -1).permute(0, 3, 1, 2),
                          size=(math.ceil(side / 2), math.ceil(side / 2)), mode="bilinear")
        return y.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[-1])

    def pre_pool_selections(self, vids: list[VideoTokens], inputs: list[TokenInput],
                            stats: dict[str, Any]) -> list[TokenSelection]:
        """Run the token selector's ``select_before_pooling`` on the tower's own grid.

        The selector gets, per video, the projected features BEFORE pooling ``[F, H, W, D]``
        (the projector's output) and the tower's attention received per patch ``[F, H*W]`` at
        its layers (not pooled), plus :meth:`pool` and the LLM-grid allotment and budget.
        """
        proj = torch.cat([p.reshape(-1, p.shape[-2], p.shape[-1]) for p in stats["projected"]])
        out, i = [], 0
        for vt, ti in zip(vids, inputs):
            f, h, w, _ = vt.grid.shape
            grid = proj[i:i + f]
            side = math.isqrt(grid.shape[1])
            att = {layer: torch.stack(rows[i:i + f]).float() for layer, rows in stats["attention"].items()}
            pre = TokenInput(tokens=grid.reshape(f, side, side, -1).detach().float(), attention=att)
            out.append(self.token_selector.select_before_pooling(  # type: ignore[attr-defined]
                pre, self.pool, (h, w), allotment=ti.allotment, budget=ti.budget))
            i += f
        return out

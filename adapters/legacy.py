"""The transformers 4.x route (models without ``mm_encoder_outputs``), one class per family.

Detected by feature (``inspect.signature``), not by version string; checked with transformers
4.57 (``tests/test_adapters_tf4.py``).

* Qwen (:class:`QwenLegacyRoute`): 4.x drops user ``position_ids`` during generation, so
  ``get_video_features`` and ``get_rope_index`` are overridden on the model instance inside
  :meth:`~.base.VideoLLM.generation_context` (removed on exit) to return the kept features and
  the kept tokens' original positions.
* LLaVA (:class:`LlavaLegacyRoute`): the kept features are scattered into ``inputs_embeds``;
  with ``positions="original"`` a forward pre-hook on the language model gives the prompt its
  original positions and shifts each decode step by the row's pruned count.

The per-call state travels on the :class:`~.sequence.ModelInputs` (``legacy_state``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import torch

from .base import AdapterError, VideoLLM
from .sequence import ModelInputs


class QwenLegacyRoute(VideoLLM):
    """The 4.x route of the Qwen families."""

    @property
    def inner(self) -> Any:
        return self.model.model

    def _legacy_features(self, pv: torch.Tensor, thw: torch.Tensor) -> Any:
        """4.x ``get_video_features`` returns a tuple per video (Qwen3: plus a deepstack list of
        ``[N, D]``); put it in the 5.x layout (``pooler_output``, ``deepstack_features``)."""
        res = self.inner.get_video_features(pv, thw)
        feats, deep = (res[0], res[1]) if len(res) == 2 and isinstance(res[1], list) else (res, None)
        sizes = [int(f.shape[0]) for f in feats]
        return SimpleNamespace(
            pooler_output=tuple(feats),
            deepstack_features=None if deep is None else [tuple(torch.split(d, sizes)) for d in deep],
        )

    def legacy_kwargs(self, inputs: dict[str, Any], out: dict[str, Any], feats: list[torch.Tensor],
                      keeps: list[torch.Tensor], enc: Any) -> ModelInputs:
        """4.x drops user ``position_ids`` in ``prepare_inputs_for_generation`` and has no
        ``mm_encoder_outputs``: generation passes the original pixels and grids, and
        :meth:`legacy_context` makes ``get_video_features`` return the kept features and
        ``get_rope_index`` the kept tokens' original positions (deltas for the decode steps
        follow 4.x's rule ``position = cache_position + delta``)."""
        att = out["attention_mask"]
        vis = out["position_ids"][1:]
        length = att.shape[1]
        deltas = torch.stack([vis[:, b, att[b].bool()].max() + 1 - length for b in range(att.shape[0])])
        deep = None
        if getattr(enc, "deepstack_features", None) is not None:
            deep = [[d[k.to(d.device)] for d, k in zip(layer, keeps)] for layer in enc.deepstack_features]
        state = {"pos": vis, "deltas": deltas.reshape(-1, 1), "feats": feats, "deep": deep}
        kw = {"input_ids": out["input_ids"], "attention_mask": att,
              "pixel_values_videos": inputs["pixel_values_videos"], "video_grid_thw": inputs["video_grid_thw"]}
        for key in self.rope_extra_keys:
            if key in inputs:
                kw[key] = inputs[key]
        return ModelInputs(kw, legacy_state=state)

    @contextlib.contextmanager
    def legacy_context(self, state: dict[str, Any] | None) -> Iterator[None]:
        if state is None:
            raise AdapterError("The transformers 4.x Qwen route needs the prepare() result's legacy_state.")
        st, inner, dev = state, self.inner, self._device()

        def get_rope_index(input_ids: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            e = input_ids.shape[0] // st["pos"].shape[1]  # beams / num_return_sequences
            return st["pos"].repeat_interleave(e, dim=1).to(dev), st["deltas"].repeat_interleave(e, 0).to(dev)

        def get_video_features(pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor | None = None) -> Any:
            n = len(st["feats"])
            e = (len(video_grid_thw) // n) if video_grid_thw is not None else 1
            feats = tuple(f.to(dev) for f in st["feats"] for _ in range(e))
            if st["deep"] is None:
                return feats
            return feats, [torch.cat([d.to(dev) for d in layer for _ in range(e)]) for layer in st["deep"]]

        inner.get_rope_index, inner.get_video_features = get_rope_index, get_video_features
        try:
            yield
        finally:
            del inner.get_rope_index, inner.get_video_features


class LlavaLegacyRoute(VideoLLM):
    """The 4.x route of the LLaVA families."""

    #: tokens after the frame grids in each video's placeholder run.
    n_tail = 0

    @property
    def inner(self) -> Any:
        return self.model.model

    def _legacy_features(self, pv: torch.Tensor) -> Any:
        """transformers 4.x: ``get_video_features`` returns the frame grids only (OneVision's
        newline is appended in ``forward``); append it here so the layout matches 5.x."""
        cfg = self.model.config
        res = self.inner.get_video_features(pixel_values=pv, vision_feature_layer=cfg.vision_feature_layer,
                                            vision_feature_select_strategy=cfg.vision_feature_select_strategy)
        per_video = [r.reshape(-1, r.shape[-1]) for r in res]
        if self.n_tail:
            nl = self.inner.image_newline
            per_video = [torch.cat([v, nl[None].to(v.device, v.dtype)]) for v in per_video]
        return SimpleNamespace(pooler_output=per_video)

    def legacy_kwargs(self, inputs: dict[str, Any], out: dict[str, Any], feats: list[torch.Tensor],
                      keeps: list[torch.Tensor], enc: Any) -> ModelInputs:
        """transformers 4.x: the kept features are scattered into ``inputs_embeds`` here (the
        model's own ``masked_scatter``); with ``positions="original"`` a forward pre-hook on the
        language model (inside :meth:`legacy_context`) gives the prompt its original positions
        and shifts each decode step's positions by the row's pruned count."""
        dev = self._device()
        ids, att = out["input_ids"], out["attention_mask"]
        emb = self.model.get_input_embeddings()(ids.to(dev))
        mask = (ids == self.video_token_id).to(dev)[..., None]
        emb = emb.masked_scatter(mask, torch.cat(feats).to(dev, emb.dtype))
        pos = out["position_ids"]
        offset = torch.stack([pos[b, -1] - (att[b].sum() - 1) for b in range(ids.shape[0])])
        return ModelInputs({"input_ids": ids, "inputs_embeds": emb, "attention_mask": att},
                           legacy_state={"pos": pos, "offset": offset})

    @contextlib.contextmanager
    def legacy_context(self, state: dict[str, Any] | None) -> Iterator[None]:
        if self.positions != "original" or state is None:
            yield
            return
        st = state

        def hook(module: Any, args: tuple, kwargs: dict) -> Any:
            pos = kwargs.get("position_ids")
            if pos is None:
                return None
            e = pos.shape[0] // st["pos"].shape[0]
            if pos.shape[-1] == st["pos"].shape[-1]:  # the prompt
                new = st["pos"].repeat_interleave(e, 0)
            else:  # decode steps: 4.x numbers them attention_mask.cumsum - 1
                new = pos + st["offset"].repeat_interleave(e, 0)[:, None].to(pos.device)
            kwargs["position_ids"] = new.to(pos.device)
            return args, kwargs

        h = self.inner.language_model.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            yield
        finally:
            h.remove()

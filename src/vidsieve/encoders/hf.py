"""Frame encoder for Hugging Face CLIP / SigLIP / DINOv2-style models (``pip install vidsieve[hf]``)."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ..devices import resolve_device
from ..errors import ParameterError, VidsieveError
from ..params import Choice, Int, NoneValue, Str
from ..registry import register_encoder
from .base import FrameEncoder


def _pooled(out: Any) -> Any:
    """Tensor from ``get_*_features`` (a tensor in transformers 4.x, a ModelOutput in 5.x)."""
    return getattr(out, "pooler_output", out)


@register_encoder("hf", "Any HF CLIP/SigLIP/DINOv2-style model by hub id or local path (needs the 'hf' extra).")
class HFEncoder(FrameEncoder):
    """Image (and, where the model has one, text) embeddings from a transformers model.

    model:      hub id or local directory (loaded with ``AutoModel``/``AutoProcessor``; honours
                ``HF_HUB_OFFLINE``/``local_files_only``).
    device:     "auto" (CUDA if available), "cpu", "cuda", "cuda:1", ...
    dtype:      "auto" (bfloat16 on CUDA, float32 on CPU), "float32", "float16", "bfloat16".
    batch_size: frames per forward pass.

    Embeddings are the model's projected image features (CLIP/SigLIP ``get_image_features``) or
    the pooled output (DINOv2-style models without a text side). The grid is the last layer's
    patch tokens ``[B, g, g, C]`` (the [CLS] token dropped when present).
    """

    _parameter_constraints = {
        "model": [Str()],
        "device": [Str()],
        "dtype": [Choice("auto", "float32", "float16", "bfloat16")],
        "batch_size": [Int(ge=1)],
        "local_files_only": [Choice(True, False), NoneValue()],
    }

    def __init__(
        self,
        *,
        model: str = "openai/clip-vit-base-patch32",
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 32,
        local_files_only: bool | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.local_files_only = local_files_only
        self._validate_params()
        self._loaded: tuple[Any, Any] | None = None

    # ``_loaded`` is a cache, not a parameter: keep it out of equality and repr.
    def cache_key(self) -> str:
        return f"HFEncoder(model={self.model!r})"

    @property
    def decode_size(self) -> tuple[int, int] | None:  # type: ignore[override]
        return None  # the processor resizes; decoding at native size keeps its crop exact

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is not None:
            return self._loaded
        try:
            import torch
            from transformers import AutoModel, AutoProcessor
        except ImportError as e:
            raise VidsieveError("The 'hf' encoder needs transformers: pip install 'vidsieve[hf]'") from e
        offline = self.local_files_only
        if offline is None:
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        dev = resolve_device(self.device, owner="HFEncoder")
        dt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}.get(
            self.dtype, torch.bfloat16 if dev.type == "cuda" else torch.float32
        )
        try:
            proc = AutoProcessor.from_pretrained(self.model, local_files_only=offline)
            mdl = AutoModel.from_pretrained(self.model, local_files_only=offline, dtype=dt)
        except OSError as e:
            raise VidsieveError(
                f"Could not load {self.model!r} ({str(e).splitlines()[0]}). Give a local path or a hub id "
                "reachable from this machine."
            ) from None
        mdl.eval().to(dev)
        self._loaded = (mdl, proc)
        return self._loaded

    def _image_processor(self, proc: Any) -> Any:
        return getattr(proc, "image_processor", proc)

    def encode(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        if pixels.ndim != 4 or pixels.shape[-1] != 3 or pixels.dtype != np.uint8:
            raise ParameterError(f"HFEncoder.encode expects uint8 [B, H, W, 3]; got {pixels.dtype} {pixels.shape}.")
        mdl, proc = self._load()
        dev = next(mdl.parameters()).device
        dt = next(mdl.parameters()).dtype
        embs: list[np.ndarray] = []
        grids: list[np.ndarray | None] = []
        for s in range(0, pixels.shape[0], self.batch_size):
            batch = list(pixels[s : s + self.batch_size])
            inputs = self._image_processor(proc)(images=batch, return_tensors="pt")
            pv = inputs["pixel_values"].to(dev, dt)
            with torch.inference_mode():
                if hasattr(mdl, "get_image_features"):
                    out = mdl.get_image_features(pixel_values=pv)
                    emb = _pooled(out)
                    hidden = getattr(out, "last_hidden_state", None)
                else:
                    out = mdl(pixel_values=pv)
                    emb = out.pooler_output if getattr(out, "pooler_output", None) is not None else out.last_hidden_state[:, 0]
                    hidden = out.last_hidden_state
            embs.append(emb.float().cpu().numpy())
            if hidden is not None:
                grids.append(_to_grid(hidden.float().cpu().numpy()))
        emb_all = np.concatenate(embs).astype(np.float32)
        ok = [g for g in grids if g is not None]
        grid = np.concatenate(ok).astype(np.float32) if ok and len(ok) == len(embs) else None
        return emb_all, grid

    def embed_text(self, text: str) -> np.ndarray | None:
        import torch

        mdl, proc = self._load()
        if not hasattr(mdl, "get_text_features"):
            return None
        tok = getattr(proc, "tokenizer", None)
        if tok is None:
            return None
        kw: dict[str, Any] = {"padding": "max_length"} if "siglip" in type(mdl).__name__.lower() else {"padding": True}
        inputs = tok([text], return_tensors="pt", truncation=True, **kw)
        dev = next(mdl.parameters()).device
        with torch.inference_mode():
            out = mdl.get_text_features(**{k: v.to(dev) for k, v in inputs.items()})
        return _pooled(out).float().cpu().numpy()[0].astype(np.float32)


def _to_grid(hidden: np.ndarray) -> np.ndarray | None:
    """``[B, N, C]`` patch tokens (with or without a leading [CLS]) -> ``[B, g, g, C]``."""
    n = hidden.shape[1]
    for drop in (0, 1):
        g = math.isqrt(n - drop)
        if g * g == n - drop and g > 0:
            return hidden[:, drop:].reshape(hidden.shape[0], g, g, hidden.shape[2])
    return None

"""Hugging Face video-LLM adapters: ``vidsieve.wrap(model, processor, frames=, tokens=, budget=)``.

One shared base (:mod:`.base`) and one small module per family. :func:`wrap` picks the adapter
from the model's ``config.model_type`` and checks that the processor belongs to the same
family.
"""

from __future__ import annotations

from typing import Any

from vidsieve.registry import ADAPTERS

from .base import AdapterError, EncodeCache, PreparedVideo, Stats, VideoLLM

__all__ = ["AdapterError", "EncodeCache", "PreparedVideo", "Stats", "VideoLLM", "adapter_for", "wrap"]


def adapter_for(model: Any) -> type[VideoLLM]:
    """The registered adapter class whose ``model_types`` contains the model's type."""
    cfg = getattr(model, "config", None)
    mt = getattr(cfg, "model_type", None)
    for name in ADAPTERS.list():
        cls = ADAPTERS.get(name)
        if mt in cls.model_types:
            return cls  # type: ignore[no-any-return]
    supported = sorted(t for n in ADAPTERS.list() for t in ADAPTERS.get(n).model_types)
    raise AdapterError(
        f"vidsieve has no adapter for {type(model).__name__} (model_type={mt!r}). "
        f"Supported model types: {', '.join(supported)}."
    )


def wrap(model: Any, processor: Any, **kwargs: Any) -> VideoLLM:
    """Wrap a Hugging Face video-LLM and its processor (see :class:`~.base.VideoLLM` for kwargs)."""
    return adapter_for(model)(model, processor, **kwargs)

"""The vLLM general plugin: what ``vidsieve.vllm.register`` does in every vLLM process.

1. Imports :mod:`vidsieve.vllm.loader`, which registers the ``vidsieve`` video loader backend
   in vLLM's ``VIDEO_LOADER_REGISTRY``.
2. Registers the subclasses of :mod:`vidsieve.vllm.models` over the upstream Qwen2.5-VL and
   Qwen3-VL architecture names with ``ModelRegistry.register_model`` (as lazy
   ``"module:Class"`` strings, so no model code is imported before it is needed). Without a
   ``vidsieve`` entry in ``hf_overrides`` they behave exactly as upstream.

Set ``VIDSIEVE_VLLM_MODELS=0`` to register the loader only (vLLM's ``VLLM_PLUGINS`` turns the
whole plugin off).
"""

from __future__ import annotations

import os

#: upstream architecture name -> subclass in vidsieve.vllm.models.
ARCHITECTURES = {
    "Qwen2_5_VLForConditionalGeneration": "VidsieveQwen2_5_VLForConditionalGeneration",
    "Qwen3VLForConditionalGeneration": "VidsieveQwen3VLForConditionalGeneration",
    "Qwen3VLMoeForConditionalGeneration": "VidsieveQwen3VLMoeForConditionalGeneration",
}

_registered = False


def register() -> None:
    """Register the loader backend and (unless ``VIDSIEVE_VLLM_MODELS=0``) the model subclasses."""
    global _registered
    if _registered:
        return
    from vllm import ModelRegistry

    from . import loader  # noqa: F401  (registers the video loader backend on import)

    if os.environ.get("VIDSIEVE_VLLM_MODELS", "1") != "0":
        supported = set(ModelRegistry.get_supported_archs())
        for arch, cls in ARCHITECTURES.items():
            if arch in supported:
                ModelRegistry.register_model(arch, f"vidsieve.vllm.models:{cls}")
    _registered = True

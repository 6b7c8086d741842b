"""vidsieve inside vLLM: client-side frame selection, token pruning at vLLM's count, a plugin.

* :func:`video_input` / :func:`prepare_video` / :func:`chat_request` (no vLLM needed): run a
  frame selector and hand vLLM ``(frames, metadata)`` offline, or an OpenAI request body.
* :func:`prune_video_embeds` (no vLLM needed): any vidsieve token selector choosing exactly
  the number of video tokens vLLM reserved for a pruned video, positions carried along.
* :func:`register` (``vllm.general_plugins`` entry point ``vidsieve``): registers the
  ``vidsieve`` video loader backend and the Qwen2.5-VL / Qwen3-VL model subclasses that use
  :func:`prune_video_embeds` in place of vLLM's EVS selection.

Importing this package does not import vLLM; :func:`register` does.
"""

from __future__ import annotations

from .inputs import (
    VLLMVideo,
    chat_request,
    jpeg_data_url,
    prepare_video,
    video_input,
    vllm_metadata,
)
from .pruning import PrunedVideo, evs_retained_count, prune_video_embeds


def register() -> None:
    """vLLM plugin entry point: register the video loader and the model subclasses.

    Safe to call more than once and in every vLLM process (vLLM's plugin contract).
    """
    from .plugin import register as _register

    _register()


__all__ = [
    "PrunedVideo", "VLLMVideo", "chat_request", "evs_retained_count", "jpeg_data_url",
    "prepare_video", "prune_video_embeds", "register", "video_input", "vllm_metadata",
]

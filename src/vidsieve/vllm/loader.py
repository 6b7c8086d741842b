"""The ``vidsieve`` video loader backend for vLLM (server-side, query-agnostic frame selection).

Selected per deployment (``VLLM_VIDEO_LOADER_BACKEND=vidsieve`` or
``--media-io-kwargs '{"video": {"video_backend": "vidsieve", ...}}'``) or per request
(``media_io_kwargs`` with ``--trust-request-mm-kwargs``). vLLM hands a loader the video bytes
and the ``media_io_kwargs`` of the ``video`` modality, never the prompt, so only selectors that
need no query make sense here (uniform rules, ``ktv`` keyframes, ``kframes`` scenes,
``stratified-argmax`` ...); query-aware selection belongs on the client
(:func:`vidsieve.vllm.video_input`).

``media_io_kwargs["video"]`` keys read here:

* ``num_frames``: the frame budget (vLLM's own key; ``-1`` or absent = ``DEFAULT_FRAMES``).
* ``selector``: a registered frame-selector name (default ``"ktv"``); ``selector_params``: a
  dict of its parameters.
* ``encoder``: a registered encoder name (default ``"pixel"``); ``candidate_fps``: candidate
  sampling rate in frames per second (default 1.0); ``max_candidates``: cap on candidates.

Other keys vLLM passes (``fps``, ``max_duration``, ``backend``, ...) are ignored. The metadata
returned carries the source fps and the chosen frames' source indices (``do_sample_frames``
False), as vLLM's Qwen processors need.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
from vllm.multimodal.video import VIDEO_LOADER_REGISTRY, VideoLoader

from ..types import Budget
from .inputs import VIDEO_BACKEND_NAME, prepare_video

#: frames chosen when the request does not say (vLLM's own video default is 32).
DEFAULT_FRAMES = 32


def load_video_bytes(
    data: bytes,
    *,
    num_frames: int = -1,
    selector: str = "ktv",
    selector_params: dict[str, Any] | None = None,
    encoder: str = "pixel",
    candidate_fps: float = 1.0,
    max_candidates: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Run a frame selector on encoded video ``data``; ``(frames uint8 [K, H, W, 3], metadata)``."""
    k = DEFAULT_FRAMES if num_frames is None or int(num_frames) <= 0 else int(num_frames)
    fd, path = tempfile.mkstemp(suffix=".mp4", prefix="vidsieve-vllm-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        video = prepare_video(
            path, query=None, frames=selector, budget=Budget(frames=k), encoder=encoder,
            fps=candidate_fps, max_frames=max_candidates, cache=False,
            selector_params=selector_params, resize=False,
        )
    finally:
        os.unlink(path)
    return video.as_tuple()


@VIDEO_LOADER_REGISTRY.register(VIDEO_BACKEND_NAME)
class VidsieveVideoLoader(VideoLoader):
    """vLLM ``VideoLoader`` that selects frames with vidsieve (see module docstring)."""

    @classmethod
    def load_bytes(cls, data: bytes, num_frames: int = -1, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        ours = {k: kwargs[k] for k in ("selector", "selector_params", "encoder", "candidate_fps", "max_candidates") if k in kwargs}
        return load_video_bytes(data, num_frames=num_frames, **ours)

"""Client-side frame selection for vLLM: chosen frames + the metadata vLLM's Qwen models need.

vLLM takes a video as ``(frames uint8 [T, H, W, 3], metadata)``; Qwen2-VL, Qwen2.5-VL and
Qwen3-VL require the metadata (``total_num_frames``, ``fps``, ``duration``, ``frames_indices``,
``do_sample_frames=False``, ``video_backend``). :func:`video_input` runs a vidsieve frame
selector on the video and returns that tuple with the chosen frames' *source* indices and the
source fps, so the model is told where the frames really are:

* Qwen3-VL writes a ``<t seconds>`` text timestamp before each temporal group, from
  ``frames_indices / fps``: uneven keyframes get their true times.
* Qwen2-VL / Qwen2.5-VL space temporal positions by ``second_per_grid_ts = 2 / sampled_fps``
  with ``sampled_fps = len(frames_indices) / total_num_frames * fps``: the mean interval of the
  chosen frames (the models have no per-group spacing, so uneven keyframes get even spacing).

Token budgets. vLLM has no per-frame token budget: a video item is one array, every frame
the same size, and the processor gives every temporal group ``(H/f) * (W/f)`` tokens
(``f`` = 28 for Qwen2/2.5-VL, 32 for Qwen3-VL; one token covers 2 frames). Per-frame
allotments (QuoTA, KTV) and per-frame F2C downscales are therefore realised as ONE resize of
all chosen frames whose token count matches their *total* (the per-frame differences are
lost), and ``Budget.tokens`` alone caps the total the same way. :class:`VLLMVideo` carries
``mm_processor_kwargs`` that stop the processor from resizing the frames again.

The OpenAI-compatible server takes the same frames as a ``video/jpeg`` data URL (base64 JPEG
frames joined by commas) plus ``media_io_kwargs`` with the metadata
(:meth:`VLLMVideo.openai_content`, :func:`chat_request`); the server must be started with
``--trust-request-mm-kwargs`` to accept per-request ``media_io_kwargs``. JPEG is lossy: the
server sees slightly different pixels than the offline tuple.
"""

from __future__ import annotations

import base64
import io
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..params import param_error
from ..selectors.base import FrameSelector
from ..types import Budget, Frames, Query, Selection, VideoMeta

#: patch geometry per model family: (pixels per LLM token side, frames per token).
MODEL_GEOMETRY: dict[str, tuple[int, int]] = {
    "qwen2-vl": (28, 2),
    "qwen2.5-vl": (28, 2),
    "qwen3-vl": (32, 2),
}

#: the ``video_backend`` value written into the metadata (informational for vLLM/HF).
VIDEO_BACKEND_NAME = "vidsieve"


@dataclass(frozen=True, eq=False)
class VLLMVideo:
    """Chosen frames ready for vLLM.

    frames:    uint8 ``[K, H, W, 3]`` (resized when a token budget asked for it).
    metadata:  the dict vLLM's Qwen processors read (see module docstring).
    selection: the frame selector's :class:`~vidsieve.types.Selection` (source indices,
               timestamps, allotments, scores, timings).
    meta:      the source video's :class:`~vidsieve.types.VideoMeta`.
    mm_processor_kwargs: processor kwargs that keep vLLM's processor from resizing the frames
               again (empty when the frames were not resized).
    query:     the query as the frame selector saw it, or None.
    timings:   seconds per stage (features, select, decode, resize).
    """

    frames: np.ndarray
    metadata: dict[str, Any]
    selection: Selection
    meta: VideoMeta
    mm_processor_kwargs: dict[str, Any] = field(default_factory=dict)
    query: Query | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def as_tuple(self) -> tuple[np.ndarray, dict[str, Any]]:
        """``(frames, metadata)``: the value of ``multi_modal_data["video"]``."""
        return self.frames, dict(self.metadata)

    def media_io_kwargs(self) -> dict[str, dict[str, Any]]:
        """``{"video": {...}}`` for an OpenAI request carrying these frames as ``video/jpeg``."""
        md = self.metadata
        return {
            "video": {
                "num_frames": int(self.frames.shape[0]),  # the server keeps only 32 frames by default
                "fps": float(md["fps"]),
                "frames_indices": [int(i) for i in md["frames_indices"]],
                "total_num_frames": int(md["total_num_frames"]),
                "duration": float(md["duration"]),
            }
        }

    def openai_content(self, *, quality: int = 95) -> dict[str, Any]:
        """The ``video_url`` content part: a ``data:video/jpeg;base64,`` URL of the frames."""
        return {"type": "video_url", "video_url": {"url": jpeg_data_url(self.frames, quality=quality)}}


def jpeg_data_url(frames: np.ndarray, *, quality: int = 95) -> str:
    """``data:video/jpeg;base64,<frame 0>,<frame 1>,...`` for uint8 ``[K, H, W, 3]`` frames."""
    from PIL import Image

    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ParameterError(
            f"jpeg_data_url: frames must be uint8 [K, H, W, 3]; got {getattr(frames, 'dtype', type(frames).__name__)} "
            f"{tuple(getattr(frames, 'shape', ()))}."
        )
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise param_error("jpeg_data_url", "quality", "an int in [1, 100]", quality)
    parts = []
    for frame in frames:
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
        parts.append(base64.b64encode(buf.getvalue()).decode("ascii"))
    return "data:video/jpeg;base64," + ",".join(parts)


def vllm_metadata(meta: VideoMeta, indices: np.ndarray) -> dict[str, Any]:
    """The metadata dict for frames ``indices`` (source frame numbers) of a video ``meta``."""
    fps = float(meta.effective_fps)
    total = int(meta.num_frames)
    return {
        "total_num_frames": total,
        "fps": fps,
        "duration": total / fps,
        "frames_indices": [int(i) for i in np.asarray(indices).tolist()],
        "do_sample_frames": False,
        "video_backend": VIDEO_BACKEND_NAME,
    }


def _geometry(model: str) -> tuple[int, int]:
    if model not in MODEL_GEOMETRY:
        raise param_error("video_input", "model", f"one of {sorted(MODEL_GEOMETRY)}", model)
    return MODEL_GEOMETRY[model]


def native_grid(height: int, width: int, factor: int) -> tuple[int, int]:
    """Token grid a Qwen processor gives an ``height x width`` frame without a pixel cap."""
    return max(1, round(height / factor)), max(1, round(width / factor))


def target_tokens(selection: Selection, budget: Budget, native_per_frame: int) -> int | None:
    """Total LLM tokens the chosen frames should cost, or None for native size.

    The smallest of: ``Budget.tokens``; the sum of per-frame allotments (QuoTA, KTV); the sum of
    ``native / s_f^2`` over per-frame F2C downscales ``s_f``. None when none of them applies.
    """
    caps = []
    if budget.tokens is not None:
        caps.append(int(budget.tokens))
    if selection.frame_tokens is not None:
        caps.append(int(np.asarray(selection.frame_tokens).sum()))
    if selection.downscale is not None:
        s = np.maximum(np.asarray(selection.downscale, dtype=np.float64), 1.0)
        caps.append(int(np.floor(np.sum(native_per_frame / s**2))))
    return min(caps) if caps else None


def frame_size_for_tokens(
    height: int, width: int, total_tokens: int, num_frames: int, model: str = "qwen2.5-vl"
) -> tuple[int, int]:
    """``(H', W')`` multiples of the patch factor so ``num_frames`` frames cost <= ``total_tokens``.

    Tokens per temporal group ``= 2 * total_tokens / num_frames`` (one LLM token covers two
    frames; an odd frame count is padded by one repeated frame); the grid keeps the aspect
    ratio (QuoTA's grid rule) and never exceeds the native grid. At least one token per group.
    """
    factor, tpatch = _geometry(model)
    groups = math.ceil(num_frames / tpatch)
    per_group = max(1, int(total_tokens) // max(1, groups))
    gh, gw = native_grid(height, width, factor)
    from ..tokens._common import target_grid

    hh, ww = target_grid(per_group, gh, gw)
    return hh * factor, ww * factor


def resize_frames(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``[K, H, W, 3]`` -> ``[K, size[0], size[1], 3]`` (PIL bicubic, as the Qwen processors)."""
    from PIL import Image

    h, w = size
    if pixels.shape[1:3] == (h, w):
        return pixels
    out = np.empty((pixels.shape[0], h, w, 3), dtype=np.uint8)
    for i, frame in enumerate(pixels):
        out[i] = np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BICUBIC))
    return out


def processor_kwargs_for(size: tuple[int, int], num_frames: int, model: str) -> dict[str, Any]:
    """``mm_processor_kwargs`` whose pixel bounds make the processor keep ``num_frames`` frames of ``size``.

    Qwen2/2.5-VL bound the pixels of one frame; Qwen3-VL bounds the pixels of the whole
    video (frames rounded to the temporal patch, times height, times width).
    """
    factor, tpatch = _geometry(model)
    pixels = int(size[0]) * int(size[1])
    if model == "qwen3-vl":
        pixels *= max(int(num_frames), round(num_frames / tpatch) * tpatch, tpatch)
    return {"size": {"shortest_edge": min(pixels, factor * factor), "longest_edge": pixels}}


def _run_frame_stage(
    video: Any, *, query: Any, frames: Any, budget: Budget, encoder: Any, fps: float,
    max_frames: int | None, cache: bool | str, video_fps: float | None,
    selector_params: dict[str, Any] | None,
) -> tuple[VideoMeta, Selection, Frames, Query | None, dict[str, float]]:
    """Probe, candidates, selection and decoding of the chosen frames (the library's frame stage)."""
    from ..pipeline import FrameStage

    stage = FrameStage(
        encoder, frames, fps=fps, max_frames=max_frames, cache=cache, progress=False,
        selector_params=selector_params, owner="video_input",
    )
    out = stage.run(video, budget=budget, query=query, video_fps=video_fps)
    if out.frames is None:  # pragma: no cover - decode_size=None always decodes
        raise RuntimeError("the frame stage returned no frames (internal error).")
    return out.meta, out.selection, out.frames, out.query, dict(out.timings)


def prepare_video(
    video: str | os.PathLike[str] | Frames | np.ndarray,
    *,
    query: str | np.ndarray | Query | None = None,
    frames: str | FrameSelector = "ktv",
    budget: Budget | int = 16,
    encoder: Any = "pixel",
    model: str = "qwen2.5-vl",
    fps: float = 1.0,
    max_frames: int | None = None,
    cache: bool | str = True,
    video_fps: float | None = None,
    selector_params: dict[str, Any] | None = None,
    resize: bool = True,
) -> VLLMVideo:
    """Select frames with vidsieve and package them for vLLM (see :func:`video_input`)."""
    import time

    geometry = _geometry(model)
    if not isinstance(budget, Budget):
        budget = Budget(frames=budget)
    meta, sel, chosen, q, timings = _run_frame_stage(
        video, query=query, frames=frames, budget=budget, encoder=encoder, fps=fps,
        max_frames=max_frames, cache=cache, video_fps=video_fps, selector_params=selector_params,
    )
    pixels = chosen.pixels
    kwargs: dict[str, Any] = {}
    if resize:
        factor = geometry[0]
        gh, gw = native_grid(pixels.shape[1], pixels.shape[2], factor)
        # vidsieve allotments count LLM tokens per frame; a Qwen token covers ``geometry[1]`` frames
        total = target_tokens(sel, budget, gh * gw // geometry[1])
        if total is not None and total < math.ceil(len(pixels) / geometry[1]) * gh * gw:
            t0 = time.perf_counter()
            size = frame_size_for_tokens(pixels.shape[1], pixels.shape[2], total, len(pixels), model)
            pixels = resize_frames(pixels, size)
            timings["resize"] = time.perf_counter() - t0
            kwargs = processor_kwargs_for(size, len(pixels), model)
    md = vllm_metadata(meta, chosen.indices)
    return VLLMVideo(np.ascontiguousarray(pixels), md, sel, meta, kwargs, q, timings)


def video_input(
    video: str | os.PathLike[str] | Frames | np.ndarray,
    *,
    query: str | np.ndarray | Query | None = None,
    frames: str | FrameSelector = "ktv",
    budget: Budget | int = 16,
    **kwargs: Any,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``(frames uint8 [K, H, W, 3], metadata)`` for ``LLM.generate``'s ``multi_modal_data["video"]``.

    video: a path, a :class:`~vidsieve.types.Frames` or a uint8 ``[T, H, W, 3]`` array (its rate
    as ``video_fps=``, default 1 frame per second). query: text, an image or a
    :class:`~vidsieve.types.Query` for query-aware selectors. frames: a registered frame
    selector name or instance. budget: a :class:`~vidsieve.types.Budget` or a frame count.
    Other keyword arguments as :func:`prepare_video` (``encoder``, ``model`` for the patch
    geometry, candidate ``fps`` / ``max_frames``, ``cache``, ``selector_params``, ``resize``).
    """
    return prepare_video(video, query=query, frames=frames, budget=budget, **kwargs).as_tuple()


def chat_request(
    model: str,
    video: VLLMVideo,
    question: str,
    *,
    max_tokens: int = 128,
    temperature: float = 0.0,
    quality: int = 95,
    mm_processor_kwargs: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The JSON body of a ``/v1/chat/completions`` request asking ``question`` about ``video``.

    Carries the frames as ``video/jpeg`` and their metadata in ``media_io_kwargs`` (start the
    server with ``--trust-request-mm-kwargs``). ``mm_processor_kwargs`` defaults to the video's
    own (which keep the processor from resizing resized frames); ``extra`` keys are added to
    the body (e.g. ``seed``).
    """
    if not isinstance(video, VLLMVideo):
        raise param_error("chat_request", "video", "a VLLMVideo (from prepare_video)", video)
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "user", "content": [video.openai_content(quality=quality), {"type": "text", "text": question}]}
        ],
        "max_tokens": max_tokens,
        "temperature": temperature,
        "media_io_kwargs": video.media_io_kwargs(),
    }
    proc = video.mm_processor_kwargs if mm_processor_kwargs is None else mm_processor_kwargs
    if proc:
        body["mm_processor_kwargs"] = proc
    body.update(extra)
    return body


__all__ = [
    "MODEL_GEOMETRY", "VLLMVideo", "chat_request", "frame_size_for_tokens", "jpeg_data_url",
    "prepare_video", "target_tokens", "video_input", "vllm_metadata",
]

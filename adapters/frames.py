"""What frame selection hands to the rest of an adapter: chosen frames and their grouping.

:class:`PreparedVideo` is one video's chosen frames with per token-grid-frame values;
:func:`group_frames` builds one following the processor's own temporal padding rule;
:func:`as_frames` reads in-memory video input; :class:`VideoTokens` is one video's encoder
output in LLM space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidsieve.errors import ParameterError
from vidsieve.params import Float, NoneValue, check_param, param_error
from vidsieve.types import Frames, Selection


@dataclass
class VideoTokens:
    """One video's encoder output in LLM space.

    grid:  ``[F, h, w, D]`` token grids (F frames or temporal groups), in placeholder order.
    tail:  ``[n_tail, D]`` tokens after the grid in the placeholder run that are always kept
           (LLaVA-OneVision's newline), or an empty tensor.
    """

    grid: torch.Tensor
    tail: torch.Tensor

    @property
    def num_tokens(self) -> int:
        f, h, w, _ = self.grid.shape
        return f * h * w + int(self.tail.shape[0])


@dataclass
class PreparedVideo:
    """What frame selection produced for one video (:meth:`VideoLLM.select_frames`).

    :meth:`VideoLLM.prepare` / :meth:`VideoLLM.generate` accept one wherever they accept a
    video; frame selection and decoding are then skipped (the frames are fed as they are).

    frames:           the ``K`` chosen frames, ``pixels`` uint8 ``[K, H, W, 3]``, their source
                      ``indices`` ``[K]`` and ``timestamps`` ``[K]``, exactly as chosen (Qwen's
                      processor pads an odd ``K`` to whole temporal groups itself).
    fps, total_frames: the source video's rate and length (for the processor's metadata).
    selection:        the frame selector's :class:`Selection` (None for raw frames).
    group_allotment / group_downscale / group_timestamps: per token-grid frame ``[ceil(K / g)]``
                      (``g`` = ``VideoLLM.temporal_group``), or None.
    timings:          seconds spent producing it (``features``, ``decode``); a call given this
                      object reports these (and the selection's ``select``) as its own.
    group_size:       the temporal group size the per-group arrays were made for.
    """

    frames: Frames
    fps: float
    total_frames: int
    selection: Selection | None
    group_allotment: np.ndarray | None = None
    group_downscale: np.ndarray | None = None
    group_timestamps: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: the ``temporal_group`` of the adapter that grouped it (the per-group arrays depend on it).
    group_size: int = 1


def group_frames(fr: Frames, fps: float, total: int, sel: Selection | None, *, group: int = 1,
                 min_frames: int = 1) -> PreparedVideo:
    """The :class:`PreparedVideo` of chosen frames for an adapter with temporal groups of
    ``group`` frames whose processor needs at least ``min_frames`` frames.

    Per token-grid frame allotments, downscale factors and times for the chosen frames.

    The frames themselves are kept exactly as chosen (the processor pads an odd count to
    whole temporal groups itself, by repeating the last frame); the per-group values follow
    that same rule: a group's allotment is the sum over its chosen frames (a padding repeat
    adds nothing), its downscale the max, its time the mean of its first and last frame
    (the last chosen frame standing in for a missing one).
    """
    g = group
    ft = None if sel is None or sel.frame_tokens is None else sel.frame_tokens.astype(np.int64)
    ds = None if sel is None or sel.downscale is None else sel.downscale.astype(np.float64)
    if len(fr) < min_frames:  # the processor refuses so few frames
        extra = min_frames - len(fr)
        rep = np.r_[np.arange(len(fr)), np.full(extra, len(fr) - 1)]
        fr = Frames(pixels=fr.pixels[rep], indices=fr.indices[rep], timestamps=fr.timestamps[rep])
        ft = None if ft is None else np.r_[ft, np.zeros(extra, np.int64)]
        ds = None if ds is None else ds[rep]
    k = len(fr)
    pad = -k % g
    order = np.r_[np.arange(k), np.full(pad, k - 1, dtype=np.int64)]  # the processor's padding
    ng = (k + pad) // g
    allot = None if ft is None else np.r_[ft, np.zeros(pad, np.int64)].reshape(ng, g).sum(1)
    down = None if ds is None else ds[order].reshape(ng, g).max(1)
    ts_g = fr.timestamps[order].reshape(ng, g)
    ts = (ts_g[:, 0] + ts_g[:, -1]) / 2.0
    return PreparedVideo(frames=fr, fps=fps, total_frames=total, selection=sel,
                         group_allotment=allot, group_downscale=down, group_timestamps=ts, group_size=g)


def as_frames(video: Any, fps: float | None, owner: str) -> tuple[Frames, float, int, str | None]:
    """``(frames, fps, total frames, None)`` for in-memory video (a :class:`Frames` or a uint8
    ``[T, H, W, 3]`` array; ``fps`` given, derived from the timestamps, or 1), or
    ``(None, 0, 0, path)`` for a file. Bad input raises :class:`ParameterError`."""
    if fps is not None:
        check_param(owner, "fps", fps, [Float(gt=0.0), NoneValue()])
    if isinstance(video, (str, Path)):
        return None, 0.0, 0, str(video)  # type: ignore[return-value]
    if isinstance(video, Frames):
        fr = video
    elif isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ParameterError(f"A video array must be uint8 [T, H, W, 3]; got {video.dtype} {video.shape}.")
        if video.shape[0] == 0:
            raise param_error(owner, "videos", "a uint8 [T, H, W, 3] array with T >= 1 frames", f"an array of shape {video.shape}")
        idx = np.arange(video.shape[0], dtype=np.int64)
        f = float(fps or 1.0)
        fr = Frames(pixels=video, indices=idx, timestamps=idx / f)
    else:
        raise ParameterError(
            f"A video must be a path, a vidsieve.Frames or a uint8 [T, H, W, 3] array; got {type(video).__name__}."
        )
    if len(fr) == 0:
        raise param_error(owner, "videos", "a vidsieve.Frames with at least one frame", "0 frames")
    if fps is None:
        i, t = fr.indices.astype(np.float64), fr.timestamps
        fps = float(i[-1] / t[-1]) if len(fr) > 1 and t[-1] > 0 else 1.0
    return fr, float(fps), int(fr.indices[-1]) + 1, None

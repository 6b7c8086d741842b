"""Value objects passed between stages. Shapes are given in each docstring.

Conventions: ``T`` candidate frames, ``K`` selected frames, ``D`` feature width,
``H, W`` pixel height/width, ``h, w`` token-grid height/width. Frame ``indices`` are always
indices into the *source video* (0-based decode order), never positions in an array.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ParameterError
from .params import Float, check_param, param_error


@dataclass(frozen=True)
class VideoMeta:
    """What is known about a video file without decoding it.

    ``duration`` is in seconds; ``num_frames`` counts decodable frames.
    """

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str = "unknown"
    size_bytes: int = 0

    #: the rate assumed for a container that declares none (ffmpeg's own default guess).
    DEFAULT_FPS = 25.0

    @property
    def effective_fps(self) -> float:
        """The frame rate to compute with: the declared one, or 25.0 when none is declared."""
        return self.fps if self.fps > 0 and np.isfinite(self.fps) else self.DEFAULT_FPS

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "num_frames": self.num_frames,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "size_bytes": self.size_bytes,
            "duration": self.duration,
        }


def _is_real(dtype: np.dtype) -> bool:
    return bool(np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)) and dtype != np.bool_


def _check_indices(indices: np.ndarray, timestamps: np.ndarray, n: int, what: str) -> None:
    if indices.shape != (n,) or timestamps.shape != (n,):
        raise ParameterError(
            f"{what}: indices and timestamps must have shape ({n},); "
            f"got {indices.shape} and {timestamps.shape}."
        )


@dataclass(frozen=True, eq=False)
class Frames:
    """Decoded frames.

    pixels:     uint8 ``[T, H, W, 3]`` RGB.
    indices:    int64 ``[T]`` source frame indices, strictly increasing.
    timestamps: float64 ``[T]`` seconds.
    """

    pixels: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray

    def __post_init__(self) -> None:
        if self.pixels.ndim != 4 or self.pixels.shape[-1] != 3 or self.pixels.dtype != np.uint8:
            raise ParameterError(
                f"Frames.pixels must be uint8 [T, H, W, 3]; got {self.pixels.dtype} "
                f"{tuple(self.pixels.shape)}."
            )
        _check_indices(self.indices, self.timestamps, self.pixels.shape[0], "Frames")

    def __len__(self) -> int:
        return int(self.pixels.shape[0])


@dataclass(frozen=True, eq=False)
class FrameFeatures:
    """Per-frame descriptors of the candidate frames.

    embeddings: float32 ``[T, D]`` one vector per candidate frame.
    indices:    int64 ``[T]`` source frame indices, strictly increasing.
    timestamps: float64 ``[T]`` seconds.
    grid:       optional float32 ``[T, h, w, d]`` per-patch descriptors on a fixed grid (the
                shape of a vision tower's token grid), for token selectors without a model.
    encoder:    name and parameters of the encoder that produced them.
    fps:        frame rate of the source video; ``duration`` its length in seconds.
    source:     path of the video the frames were decoded from, or None (for selectors that
                read pixels themselves, e.g. K-frames with the TransNetV2 scene detector).
    content:    False for :meth:`positions_only` features (``embeddings`` is ``[T, 0]``): what
                content-free selectors (``FrameSelector.reads == "nothing"``) are given, so no
                candidate frame is decoded for them.
    """

    embeddings: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray
    grid: np.ndarray | None = None
    encoder: str = "unknown"
    fps: float = 0.0
    duration: float = 0.0
    source: str | None = None
    content: bool = True

    def __post_init__(self) -> None:
        for name in ("embeddings", "indices", "timestamps"):
            object.__setattr__(self, name, np.asarray(getattr(self, name)))
        emb = self.embeddings
        if emb.ndim != 2:
            raise ParameterError(f"FrameFeatures.embeddings must be 2-D [T, D]; got shape {tuple(emb.shape)}.")
        if not _is_real(emb.dtype):
            raise ParameterError(f"FrameFeatures.embeddings must be real numbers; got dtype {emb.dtype}.")
        if self.content and emb.shape[0] and emb.shape[1] == 0:
            raise ParameterError("FrameFeatures.embeddings has width D=0; give at least one feature per frame.")
        _check_indices(self.indices, self.timestamps, emb.shape[0], "FrameFeatures")
        if self.indices.size and not np.issubdtype(self.indices.dtype, np.integer):
            raise ParameterError(f"FrameFeatures.indices must be integers; got {self.indices.dtype}.")
        if self.indices.size and self.indices.min() < 0:
            raise ParameterError("FrameFeatures.indices must be >= 0 (indices into the source video).")
        if np.any(np.diff(self.indices) <= 0):
            raise ParameterError("FrameFeatures.indices must be strictly increasing (sorted, unique).")
        if not _is_real(self.timestamps.dtype) or not np.all(np.isfinite(self.timestamps)):
            raise ParameterError("FrameFeatures.timestamps must be finite real numbers (seconds).")
        if np.any(np.diff(self.timestamps) < 0):
            raise ParameterError("FrameFeatures.timestamps must not decrease (frames in presentation order).")
        if self.grid is not None:
            object.__setattr__(self, "grid", np.asarray(self.grid))
            g = self.grid
            if g.ndim != 4 or g.shape[0] != emb.shape[0] or not _is_real(g.dtype) or 0 in g.shape[1:]:
                raise ParameterError(
                    f"FrameFeatures.grid must be real [T, h, w, d] with T={emb.shape[0]} and h, w, d >= 1; "
                    f"got {g.dtype} {tuple(g.shape)}."
                )
        for name in ("fps", "duration"):
            check_param("FrameFeatures", name, getattr(self, name), [Float(ge=0)])

    @classmethod
    def positions_only(
        cls, indices: np.ndarray, timestamps: np.ndarray, *, fps: float, duration: float,
        source: str | None = None,
    ) -> FrameFeatures:
        """Candidate positions without descriptors (``embeddings`` ``[T, 0]``, ``content=False``).

        indices ``[T]`` source frame indices, timestamps ``[T]`` seconds. Content-free selectors
        (the uniform rules) choose from these exactly as from full features.
        """
        idx = np.asarray(indices, dtype=np.int64)
        return cls(np.zeros((idx.shape[0], 0), np.float32), idx, np.asarray(timestamps, np.float64),
                   encoder="positions-only", fps=float(fps), duration=float(duration), source=source,
                   content=False)

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    @classmethod
    def from_array(
        cls, embeddings: np.ndarray, fps: float = 1.0, grid: np.ndarray | None = None
    ) -> FrameFeatures:
        """Wrap a ``[T, D]`` array whose rows are consecutive frames at ``fps``."""
        if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not np.isfinite(fps) or fps <= 0:
            raise param_error("FrameFeatures.from_array", "fps", "a float > 0", fps)
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2:
            raise ParameterError(f"embeddings must be 2-D [T, D]; got shape {emb.shape}.")
        t = emb.shape[0]
        idx = np.arange(t, dtype=np.int64)
        return cls(emb, idx, idx / float(fps), grid=grid, fps=float(fps), duration=t / float(fps))

    def subset(self, rows: np.ndarray) -> FrameFeatures:
        """The features of the given rows (positions, not source indices)."""
        rows = np.asarray(rows, dtype=np.int64)
        return replace(
            self,
            embeddings=self.embeddings[rows],
            indices=self.indices[rows],
            timestamps=self.timestamps[rows],
            grid=None if self.grid is None else self.grid[rows],
        )


@dataclass(frozen=True)
class Budget:
    """How much of the video the LLM may see.

    frames: the most frames to select (an int >= 1), counted as full-resolution frame
            equivalents: a frame shown downscaled by ``s`` per side costs ``1 / s**2`` (so F2C's
            half-resolution clips may hold up to ``4 * frames`` frames).
    tokens: the most visual tokens *as they enter the LLM* (after projector and pooling), or
            None for "whatever the chosen frames cost at native resolution".
    """

    frames: int
    tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("frames", "tokens"):
            v = getattr(self, name)
            if name == "tokens" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise param_error("Budget", name, "an int >= 1" + (" or None" if name == "tokens" else ""), v)
            object.__setattr__(self, name, int(v))

    def to_dict(self) -> dict[str, int | None]:
        return {"frames": self.frames, "tokens": self.tokens}


@dataclass(frozen=True, eq=False)
class Query:
    """A text or image query, with its embedding in the encoder's space when one exists.

    text:      the question (and options), or None.
    image:     uint8 ``[H, W, 3]`` visual query, or None.
    embedding: float32 ``[D]`` in the same space as :class:`FrameFeatures`, or None when the
               encoder cannot embed this kind of query (e.g. text with the ``pixel`` encoder).
    """

    text: str | None = None
    image: np.ndarray | None = None
    embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.text is None and self.image is None and self.embedding is None:
            raise ParameterError("A Query needs text, an image or an embedding.")
        if self.embedding is not None:
            e = np.asarray(self.embedding)
            if e.ndim != 1 or e.size == 0 or not np.issubdtype(e.dtype, np.number) or not np.all(np.isfinite(e)):
                raise ParameterError(
                    f"Query.embedding must be a non-empty, finite 1-D vector [D]; got {e.dtype} {e.shape}."
                )
            object.__setattr__(self, "embedding", e)
        if self.image is not None and (
            self.image.ndim != 3 or self.image.shape[-1] != 3 or self.image.dtype != np.uint8
        ):
            raise ParameterError(
                f"Query.image must be uint8 [H, W, 3]; got {self.image.dtype} {self.image.shape}."
            )

    @property
    def kind(self) -> str:
        return "image" if self.image is not None else "text" if self.text is not None else "embedding"


@dataclass(frozen=True, eq=False)
class Selection:
    """The frames a frame selector chose.

    indices:      int64 ``[K]`` sorted unique source frame indices.
    timestamps:   float64 ``[K]`` seconds.
    rows:         int64 ``[K]`` positions of the chosen frames in the candidate features.
    frame_tokens: optional int64 ``[K]`` LLM-token allotment per chosen frame.
    downscale:    optional float64 ``[K]`` per-side downscale factor per chosen frame (>= 1).
    clips:        optional int64 ``[C, 2]`` inclusive source-index spans of chosen clips.
    scores:       optional float64 ``[T]`` per-candidate relevance/priority the selector used.
    selector:     registered name; ``params``: its hyper-parameters.
    timings:      seconds per stage (``select`` always present).
    extras:       method-specific outputs (ranks, anchors, scene bounds, notes...).
    """

    indices: np.ndarray
    timestamps: np.ndarray
    rows: np.ndarray
    selector: str
    params: dict[str, Any]
    frame_tokens: np.ndarray | None = None
    downscale: np.ndarray | None = None
    clips: np.ndarray | None = None
    scores: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (numpy arrays become lists)."""

        def conv(x: Any) -> Any:
            if isinstance(x, np.ndarray):
                return x.tolist()
            if isinstance(x, (np.integer, np.floating)):
                return x.item()
            if isinstance(x, dict):
                return {str(k): conv(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [conv(v) for v in x]
            if isinstance(x, Path):
                return str(x)
            if isinstance(x, np.bool_):
                return bool(x)
            if x is None or isinstance(x, (str, int, float, bool)):
                return x
            return repr(x)  # objects passed as parameters (scorers, callables): their repr

        return {
            "selector": self.selector,
            "params": conv(self.params),
            "indices": conv(self.indices),
            "timestamps": conv(self.timestamps),
            "frame_tokens": conv(self.frame_tokens),
            "downscale": conv(self.downscale),
            "clips": conv(self.clips),
            "scores": conv(self.scores),
            "timings": conv(self.timings),
            "extras": conv(self.extras),
        }

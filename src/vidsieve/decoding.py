"""Video reading with decord: metadata, candidate sampling and chunked decoding.

Only the requested frames are decoded, in bounded chunks, optionally resized at decode time,
so memory stays flat in video length. Every failure a user can cause (missing file, not a
video, truncated or corrupt file, zero frames, indices past the end) raises a
:class:`~vidsieve.errors.VideoError` subclass that says which file and what to do.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FrameIndexError, ParameterError, VideoDecodeError, VideoNotFoundError
from .types import Frames, VideoMeta

#: frames decoded per ``get_batch`` call; bounds peak memory of one decode step.
DEFAULT_CHUNK = 32
#: a reader is reopened after this many decoded frames: decord's ``get_batch`` keeps growing
#: internal buffers over a long pass (measured: +80 MB over 20k frames), a fresh reader does not.
REOPEN_EVERY = 2048


def _decord():  # type: ignore[no-untyped-def]
    try:
        import decord
    except ImportError as e:  # pragma: no cover - decord is a base dependency
        raise VideoDecodeError("decord is not installed: pip install decord") from e
    decord.bridge.set_bridge("native")
    return decord


def _check_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoNotFoundError(f"Video not found: {p}")
    if p.is_dir():
        raise VideoDecodeError(f"{p} is a directory, not a video file.")
    if p.stat().st_size == 0:
        raise VideoDecodeError(f"{p} is empty (0 bytes).")
    return p


def open_reader(path: str | os.PathLike[str], size: tuple[int, int] | None = None):  # type: ignore[no-untyped-def]
    """A decord ``VideoReader`` (resized at decode time to ``size=(H, W)`` when given)."""
    p = _check_path(path)
    decord = _decord()
    kw = {} if size is None else {"height": int(size[0]), "width": int(size[1])}
    try:
        with warnings.catch_warnings(), _native_stderr_held() as held:
            warnings.simplefilter("ignore")
            vr = decord.VideoReader(str(p), ctx=decord.cpu(0), num_threads=1, **kw)
        held.release()
    except Exception as e:
        reason = re.sub(r"^\[[^\]]*\]\s*\S+:\d+:\s*", "", str(e).splitlines()[0])[:200]
        raise VideoDecodeError(f"{p} is not a readable video ({reason}).") from None
    if len(vr) == 0:
        raise VideoDecodeError(f"{p} contains no video frames.")
    return vr


class _HeldStderr:
    """What native code wrote to fd 2 while held back; ``release()`` passes it on."""

    data = b""

    def release(self) -> None:
        if self.data:
            os.write(2, self.data)


@contextlib.contextmanager
def _native_stderr_held() -> Iterator[_HeldStderr]:
    """Hold back what decord's C++ code writes to fd 2 while it opens a file.

    On a bad file decord prints its own log line before raising; the user should see one clear
    vidsieve error instead. On success the caller passes the held text on with ``release()``.
    """
    held = _HeldStderr()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreters): nothing to hold back
        yield held
        return
    with tempfile.TemporaryFile() as tmp:
        try:
            os.dup2(tmp.fileno(), 2)
            yield held
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            held.data = tmp.read()


@functools.lru_cache(maxsize=256)
def _codec_name(path: str, mtime_ns: int) -> str:
    import imageio_ffmpeg

    try:
        gen = imageio_ffmpeg.read_frames(path)
        meta = next(gen)
        gen.close()
        return str(meta.get("codec", "unknown")).split(" ")[0] or "unknown"
    except Exception:
        return "unknown"


def probe(path: str | os.PathLike[str], *, codec: bool = False) -> VideoMeta:
    """Read a video's metadata without decoding frames (``codec=True`` asks ffmpeg too)."""
    p = _check_path(path)
    vr = open_reader(p)
    fps = float(vr.get_avg_fps())
    h, w = _frame_shape(vr, p)
    st = p.stat()
    return VideoMeta(
        path=str(p),
        num_frames=len(vr),
        fps=fps if np.isfinite(fps) and fps > 0 else 0.0,
        width=w,
        height=h,
        codec=_codec_name(str(p.resolve()), st.st_mtime_ns) if codec else "unknown",
        size_bytes=st.st_size,
    )


def _frame_shape(vr, p: Path) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    # decord exposes the size without decoding through the first frame's lazy shape only in
    # some builds; reading one frame is cheap and also proves the stream decodes.
    try:
        shape = vr.next().shape
        vr.seek(0)
    except Exception as e:
        raise VideoDecodeError(f"{p}: the first frame cannot be decoded ({e}); the file is corrupt.") from None
    return int(shape[0]), int(shape[1])


def sample_indices(
    meta: VideoMeta,
    *,
    fps: float | None = None,
    count: int | None = None,
    max_frames: int | None = None,
) -> np.ndarray:
    """Candidate frame indices: one every ``1/fps`` seconds, or ``count`` evenly spaced.

    Exactly one of ``fps`` and ``count`` is given; ``max_frames`` caps the result (evenly
    thinned). Returns sorted unique int64 ``[T]`` in ``[0, meta.num_frames)``.
    """
    n = meta.num_frames
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1):
        raise ParameterError(f"The 'max_frames' parameter must be an int >= 1 or None. Got {max_frames!r} instead.")
    if (fps is None) == (count is None):
        raise ParameterError("Give exactly one of fps= and count= to sample candidate frames.")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ParameterError(f"The 'count' parameter must be an int >= 1. Got {count!r} instead.")
        idx = np.unique(np.linspace(0, n - 1, min(int(count), n), dtype=np.int64))
    else:
        if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
            raise ParameterError(f"The 'fps' parameter must be a float > 0. Got {fps!r} instead.")
        src_fps = meta.fps if meta.fps > 0 else 25.0
        step = src_fps / float(fps)
        idx = np.unique(np.floor(np.arange(0.0, n, max(step, 1.0))).astype(np.int64))
    if max_frames is not None and idx.size > max_frames:
        idx = idx[np.unique(np.linspace(0, idx.size - 1, max_frames, dtype=np.int64))]
    return idx


def _validate_indices(indices: Sequence[int] | np.ndarray, n: int, path: str) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ParameterError(f"Frame indices must be a 1-D sequence of ints; got {idx.dtype} {idx.shape}.")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)]
        raise FrameIndexError(
            f"{path} has {n} frames (indices 0..{n - 1}); requested {bad[:5].tolist()}"
            f"{'...' if bad.size > 5 else ''}."
        )
    return idx


_malloc_trim: Any = None


def release_freed_memory() -> None:
    """Return freed heap pages to the OS (glibc only; a no-op elsewhere).

    decord's and torch's allocations alternate chunk after chunk and fragment glibc's heap:
    without this, peak RSS creeps up with video length although every chunk is freed.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


def _resize(batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)
    return t.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def iter_frames(
    path: str | os.PathLike[str],
    indices: Sequence[int] | np.ndarray,
    *,
    size: tuple[int, int] | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> Iterator[Frames]:
    """Decode ``indices`` (any order; returned sorted, unique) in chunks of at most ``chunk``.

    size: ``(H, W)`` to resize to (at decode time where decord allows it), or None.
    Yields :class:`Frames` with uint8 ``[<=chunk, H, W, 3]`` pixels.
    """
    if chunk < 1:
        raise ParameterError(f"The 'chunk' parameter must be an int >= 1. Got {chunk!r} instead.")
    p = _check_path(path)
    vr = open_reader(p)
    n, fps = len(vr), float(vr.get_avg_fps()) or 25.0
    idx = np.unique(_validate_indices(indices, n, str(p)))
    resize_after = False
    if size is not None:
        try:
            vr = open_reader(p, size=size)
        except VideoDecodeError:
            resize_after = True  # decord refuses some small sizes; resize after decoding
    decode_size = None if resize_after else size
    since_open = 0
    for start in range(0, idx.size, chunk):
        part = idx[start : start + chunk]
        if since_open >= REOPEN_EVERY:
            del vr
            vr = open_reader(p, size=decode_size)
            since_open = 0
        since_open += part.size
        try:
            pixels = vr.get_batch(part.tolist()).asnumpy()
        except Exception as e:
            raise VideoDecodeError(
                f"{p}: frames {part[0]}..{part[-1]} cannot be decoded ({str(e).splitlines()[0][:160]}); "
                "the file is truncated or corrupt."
            ) from None
        if resize_after and size is not None:
            pixels = _resize(pixels, size)
        yield Frames(pixels=np.ascontiguousarray(pixels), indices=part, timestamps=part / fps)
        del pixels
        release_freed_memory()


def decode_frames(
    path: str | os.PathLike[str],
    indices: Sequence[int] | np.ndarray,
    *,
    size: tuple[int, int] | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> Frames:
    """Decode the given frames into one :class:`Frames` (sorted unique indices)."""
    parts = list(iter_frames(path, indices, size=size, chunk=chunk))
    if not parts:
        raise ParameterError("decode_frames needs at least one frame index.")
    return Frames(
        pixels=np.concatenate([f.pixels for f in parts]),
        indices=np.concatenate([f.indices for f in parts]),
        timestamps=np.concatenate([f.timestamps for f in parts]),
    )

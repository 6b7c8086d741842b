"""Video reading with decord: metadata, presentation times, candidate sampling, chunked decoding.

Only the requested frames are decoded, in bounded chunks, optionally resized at decode time,
so memory stays flat in video length. Frames come out as every player shows them: a rotation
the container declares (phone footage: a display matrix of 90, 180 or 270 degrees) is applied,
and ``probe`` reports the displayed width and height. Where decord refuses a decode-time size
(it does for some widths and for some very tall or thin frames), frames are decoded at their
native size and resized afterwards, so every size works.

Timestamps are the frames' presentation times (PTS) read from the container's index without
decoding pixels, so variable-frame-rate video gets its true times. decord reports them to the
millisecond; a stream whose times all lie within 1 ms of ``index / fps`` is constant-rate and
gets the exact ``index / fps``.

Long videos: chunks can be decoded by parallel readers (``threads=``, pixel-identical to one
reader), and candidates can be key frames (``candidate_frames(..., source="keyframes"|"auto")``),
each of which decodes on its own instead of costing every frame since the previous key frame.

Every failure a user can cause (missing file, not a video, truncated or corrupt file, zero
frames, indices past the end) raises a :class:`~vidsieve.errors.VideoError` subclass with one
clean line that says which file and what is wrong: decord's wall-clock and source-file
prefixes and FFmpeg's log lines are kept out of it, so identical runs give identical errors.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import subprocess
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Generator, Iterator, Sequence
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
#: decord's presentation times are rounded to the millisecond: a stream within this of
#: ``index / fps`` everywhere is constant-rate.
CFR_TOLERANCE_S = 1.0e-3 + 1.0e-6


def _decord():  # type: ignore[no-untyped-def]
    try:
        import decord
    except ImportError as e:  # pragma: no cover - decord is a base dependency
        raise VideoDecodeError("decord is not installed: pip install decord") from e
    decord.bridge.set_bridge("native")
    _quiet_ffmpeg(decord)
    return decord


@functools.lru_cache(maxsize=1)
def _quiet_ffmpeg(decord: Any) -> None:
    # decord's own FFmpeg libraries log decoder complaints ("[h264 @ 0x...] ...") to stderr
    # before decord raises; vidsieve reports the failure itself, in one line.
    decord.logging.set_level(decord.logging.QUIET)


def _check_path(path: str | os.PathLike[str]) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"A video must be given as a path (str or os.PathLike). Got {type(path).__name__} instead.")
    p = Path(path)
    if not p.exists():
        raise VideoNotFoundError(f"Video not found: {p}")
    if p.is_dir():
        raise VideoDecodeError(f"{p} is a directory, not a video file.")
    if p.stat().st_size == 0:
        raise VideoDecodeError(f"{p} is empty (0 bytes).")
    return p


# decord prefixes its messages with a wall-clock time and the C++ source position, sometimes
# several times over ("[06:40:40] /src/x.cc:292: [06:40:40] /src/y.cc:218: Check failed: ...").
_DECORD_PREFIX = re.compile(r"\[\d{1,2}:\d{2}:\d{2}\]\s*(?:\S+\.(?:cc|cpp|cxx|c|h|hpp):\d+:\s*)?")
_SOURCE_POS = re.compile(r"(?:^|\s)\S*/\S+\.(?:cc|cpp|cxx|c|h|hpp):\d+:\s*")


def clean_error_text(e: BaseException | str, limit: int = 200) -> str:
    """One reproducible line from a decord/FFmpeg error: no clock, source paths or stack trace."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("Stack trace", "[bt]"))]
    text = lines[0] if lines else ""
    text = _SOURCE_POS.sub(" ", _DECORD_PREFIX.sub("", text)).strip()
    return text[:limit] or type(e).__name__


_stderr_lock = threading.RLock()


class _HeldStderr:
    """What native code wrote to fd 2 while held back; ``release()`` passes it on."""

    data = b""

    def release(self) -> None:
        if self.data:
            os.write(2, self.data)


@contextlib.contextmanager
def _native_stderr_held() -> Iterator[_HeldStderr]:
    """Hold back what decord's C++ code and FFmpeg write to fd 2 during one native call.

    On a bad file they print log lines before decord raises; the user should see one clear
    vidsieve error instead. On success the caller may pass the held text on with ``release()``.
    One holder at a time (fd 2 is process-wide).
    """
    held = _HeldStderr()
    with _stderr_lock:
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


def open_reader(path: str | os.PathLike[str], size: tuple[int, int] | None = None):  # type: ignore[no-untyped-def]
    """A decord ``VideoReader`` (resized at decode time to ``size=(H, W)`` when given).

    decord applies the container's rotation; ``size`` is the size of the upright frame.
    """
    p = _check_path(path)
    decord = _decord()
    kw = {} if size is None else {"height": int(size[0]), "width": int(size[1])}
    try:
        with warnings.catch_warnings(), _native_stderr_held() as held:
            warnings.simplefilter("ignore")
            vr = decord.VideoReader(str(p), ctx=decord.cpu(0), num_threads=1, **kw)
        held.release()
    except Exception as e:
        raise VideoDecodeError(f"{p} is not a readable video ({clean_error_text(e)}).") from None
    if len(vr) == 0:
        raise VideoDecodeError(f"{p} contains no video frames.")
    return vr


# ------------------------------------------------------------------ codec name
_CODEC_RE = re.compile(r"Stream #\d+:\d+\S*.*?: Video: ([A-Za-z0-9_]+)")


@functools.lru_cache(maxsize=256)
def _codec_name(path: str, mtime_ns: int) -> str:
    """The video codec's short name (``h264``, ``vp8``, ``hevc``...) from FFmpeg's stream line.

    ``ffmpeg -i FILE`` with no output only reads the header: nothing is decoded, so a large
    file costs nothing and there is no decoder process to kill afterwards.
    """
    import imageio_ffmpeg

    try:
        out = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", path],
            capture_output=True, timeout=60, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    m = _CODEC_RE.search(out.stderr.decode("utf-8", "replace"))
    return m.group(1) if m else "unknown"


# ------------------------------------------------------------------ presentation times
class _StreamTimes:
    """Per-file presentation times of every frame, cached by (path, size, mtime)."""

    def __init__(self, maxsize: int = 16) -> None:
        self._cache: OrderedDict[tuple[str, int, int], tuple[np.ndarray, float]] = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.Lock()

    @staticmethod
    def key(p: Path) -> tuple[str, int, int]:
        st = p.stat()
        return (str(p.resolve()), st.st_size, st.st_mtime_ns)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def get(self, p: Path, vr: Any = None) -> tuple[np.ndarray, float]:
        """(start times ``[N]`` float64 seconds, average fps) of ``p``; ``vr`` an open reader."""
        k = self.key(p)
        with self._lock:
            if k in self._cache:
                self._cache.move_to_end(k)
                return self._cache[k]
        value = _read_times(vr if vr is not None else open_reader(p))
        with self._lock:
            self._cache[k] = value
            while len(self._cache) > self._maxsize:
                self._cache.popitem(last=False)
        return value


def _read_times(vr: Any) -> tuple[np.ndarray, float]:
    n = len(vr)
    declared = float(vr.get_avg_fps())
    declared = declared if np.isfinite(declared) and declared > 0 else 0.0
    rate = declared if declared > 0 else VideoMeta.DEFAULT_FPS
    nominal = np.arange(n, dtype=np.float64) / rate
    try:
        se = np.asarray(vr.get_frame_timestamp(np.arange(n)), dtype=np.float64).reshape(n, 2)
    except Exception:
        return nominal, declared
    start = np.round(se[:, 0], 6)
    if not np.all(np.isfinite(start)) or (n > 1 and start[-1] <= start[0]):
        return nominal, declared  # no usable PTS (e.g. a stream without timestamps)
    start = np.maximum.accumulate(start - start[0])
    if declared > 0 and np.max(np.abs(start - nominal)) <= CFR_TOLERANCE_S:
        return nominal, declared  # constant rate: exact index / fps
    end = round(float(se[-1, 1]) - float(se[0, 0]), 6)  # decord reports float32 milliseconds
    span = end if np.isfinite(end) and end > start[-1] else start[-1] * n / max(n - 1, 1)
    if not span > 0:
        return nominal, declared
    return start, n / span


_TIMES = _StreamTimes()


class _ReaderCache:
    """The last file's open native-size reader, handed to one user at a time.

    Opening a decord reader parses the whole stream index (about 0.3 s for an hour of video);
    ``probe`` followed by decoding the chosen frames would open the file twice. A reader is
    taken out while in use and given back after, so two threads never share one; at most
    ``maxsize`` idle readers are kept (each holds its decoder's buffers).
    """

    def __init__(self, maxsize: int = 1) -> None:
        self._idle: OrderedDict[tuple[str, int, int], tuple[Any, int]] = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def take(self, p: Path) -> tuple[Any, int]:
        """(an open native reader of ``p``, frames it has decoded since it was opened)."""
        k = _StreamTimes.key(p)
        with self._lock:
            got = self._idle.pop(k, None)
        return got if got is not None else (open_reader(p), 0)

    def give(self, p: Path, vr: Any, decoded: int = 0) -> None:
        try:
            k = _StreamTimes.key(p)
        except OSError:  # the file went away: nothing to keep the reader for
            return
        with self._lock:
            self._idle[k] = (vr, decoded)
            self._idle.move_to_end(k)
            while len(self._idle) > self._maxsize:
                self._idle.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()


_READERS = _ReaderCache()


def clear_caches() -> None:
    """Forget every file's cached frame times and close the idle reader kept for the next
    call (its decoder buffers are freed). Benchmarks call it so each call opens the file as a
    first one would."""
    _READERS.clear()
    _TIMES.clear()


def frame_timestamps(
    path: str | os.PathLike[str], indices: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """Presentation times in seconds (float64 ``[K]``) of frames ``indices`` (all when None).

    Read from the container's index, no pixel is decoded. The first frame is at 0.0. For a
    constant-rate stream this is exactly ``index / fps``; for a variable-rate one the frames'
    own times (to the millisecond).
    """
    p = _check_path(path)
    times, _ = _TIMES.get(p)
    if indices is None:
        return times.copy()
    return times[_validate_indices(indices, times.size, str(p))]


def probe(path: str | os.PathLike[str], *, codec: bool = False) -> VideoMeta:
    """Read a video's metadata without decoding more than its first frame.

    ``width``/``height`` are those of the upright (displayed) frame. ``fps`` is the declared
    rate of a constant-rate stream, ``frames / duration`` of a variable-rate one (so
    ``duration`` is right for both), 0.0 when the container declares none.
    ``codec=True`` also asks FFmpeg for the codec name.
    """
    p = _check_path(path)
    vr, decoded = _READERS.take(p)
    _, fps = _TIMES.get(p, vr)
    h, w = _frame_shape(vr, p)
    _READERS.give(p, vr, decoded + 1)
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
        with _native_stderr_held():
            vr.seek(0)  # a reader handed back after decoding may stand anywhere
            shape = vr.next().shape
            vr.seek(0)
    except Exception as e:
        raise VideoDecodeError(
            f"{p}: the first frame cannot be decoded ({clean_error_text(e)}); the file is corrupt."
        ) from None
    return int(shape[0]), int(shape[1])


# ------------------------------------------------------------------ sampling
def sample_indices(
    meta: VideoMeta,
    *,
    fps: float | None = None,
    count: int | None = None,
    max_frames: int | None = None,
    timestamps: np.ndarray | None = None,
) -> np.ndarray:
    """Candidate frame indices: one every ``1/fps`` seconds, or ``count`` evenly spaced.

    Exactly one of ``fps`` and ``count`` is given; ``max_frames`` caps the result (evenly
    thinned). ``timestamps``: the presentation times ``[num_frames]`` of every frame (see
    :func:`frame_timestamps`); with ``fps`` each pick is then the frame on screen at
    ``k / fps`` seconds, which is right for variable-rate video too. Without them the times
    are taken as ``index / meta.effective_fps``. Returns sorted unique int64 ``[T]`` in
    ``[0, meta.num_frames)``.
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
        if not isinstance(fps, (int, float, np.floating)) or isinstance(fps, bool) or not fps > 0 or not np.isfinite(fps):
            raise ParameterError(f"The 'fps' parameter must be a float > 0. Got {fps!r} instead.")
        if timestamps is not None:
            ts = np.asarray(timestamps, dtype=np.float64)
            if ts.shape != (n,):
                raise ParameterError(f"timestamps must have shape ({n},) (one per frame); got {ts.shape}.")
            # frame on screen at each target time: the last one that started by then
            targets = np.arange(0.0, ts[-1] + 1e-9, 1.0 / float(fps)) if n else np.empty(0)
            pos = np.searchsorted(ts, targets + 1e-6, side="right") - 1
            idx = np.unique(np.clip(pos, 0, max(n - 1, 0))).astype(np.int64)
        else:
            step = meta.effective_fps / float(fps)
            idx = np.unique(np.floor(np.arange(0.0, n, max(step, 1.0))).astype(np.int64))
    if max_frames is not None and idx.size > max_frames:
        idx = idx[np.unique(np.linspace(0, idx.size - 1, max_frames, dtype=np.int64))]
    return idx


#: where candidate frames come from (see :func:`candidate_frames`)
CANDIDATE_SOURCES = ("frames", "keyframes", "auto")


def keyframe_indices(path: str | os.PathLike[str]) -> np.ndarray:
    """Indices (int64 ``[K]``, sorted) of the key frames (I-frames), read from the index.

    A key frame decodes on its own: candidates that are key frames cost one frame each to
    decode, while any other frame costs every frame since the key frame before it.
    """
    p = _check_path(path)
    return _keyframes_of(*_StreamTimes.key(p)).copy()


@functools.lru_cache(maxsize=16)
def _keyframes_of(path: str, size: int, mtime_ns: int) -> np.ndarray:
    return np.unique(np.asarray(open_reader(path).get_key_indices(), dtype=np.int64))


def _nearest_keyframes(times: np.ndarray, keys: np.ndarray, fps: float) -> tuple[np.ndarray, float]:
    """(the key frame nearest each ``k / fps`` target, the worst distance to its target in s)."""
    targets = np.arange(0.0, times[-1] + 1e-9, 1.0 / fps)
    kt = times[keys]
    pos = np.searchsorted(kt, targets)  # first key frame at or after each target
    lo, hi = np.clip(pos - 1, 0, kt.size - 1), np.clip(pos, 0, kt.size - 1)
    pick = np.where(np.abs(kt[lo] - targets) <= np.abs(kt[hi] - targets), lo, hi)
    worst = float(np.max(np.abs(kt[pick] - targets)))
    return np.unique(keys[pick]), worst


def candidate_frames(
    meta: VideoMeta,
    *,
    fps: float | None = None,
    count: int | None = None,
    max_frames: int | None = None,
    source: str = "frames",
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate ``(indices [T] int64, timestamps [T] seconds)`` of a file, no pixel decoded.

    The one sampling rule every path uses (feature extraction and content-free selectors):
    :func:`sample_indices` on the frames' presentation times. ``source`` (with ``fps``):

    - ``"frames"``: the frame on screen at each ``k / fps`` seconds (exact; default);
    - ``"keyframes"``: the key frame nearest each target instead (much cheaper to decode on
      long videos: each candidate is one frame's decode; fewer candidates where key frames
      are sparser than the rate);
    - ``"auto"``: key frames where every target has one within half a period
      (``0.5 / fps`` s), so the rate is kept, else ``"frames"``.
    """
    if source not in CANDIDATE_SOURCES:
        raise ParameterError(f"The 'source' parameter must be one of {CANDIDATE_SOURCES}. Got {source!r} instead.")
    times = frame_timestamps(meta.path)
    if times.size != meta.num_frames:  # pragma: no cover - metadata of another file version
        raise VideoDecodeError(f"{meta.path} changed while it was read; run again.")
    idx = None
    if fps is not None and source != "frames":
        sample_indices(meta, fps=fps)  # validates fps
        all_keys = keyframe_indices(meta.path)
        keys, worst = _nearest_keyframes(times, all_keys, float(fps)) if all_keys.size else (all_keys, np.inf)
        if all_keys.size and (source == "keyframes" or worst <= 0.5 / float(fps) + 1e-6):
            idx = keys
            if max_frames is not None:
                sample_indices(meta, count=1, max_frames=max_frames)  # validates max_frames
                if idx.size > max_frames:
                    idx = idx[np.unique(np.linspace(0, idx.size - 1, max_frames, dtype=np.int64))]
    if idx is None:
        idx = sample_indices(meta, fps=fps, count=count, max_frames=max_frames, timestamps=times if fps is not None else None)
    return idx, times[idx]


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

    t = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)
    return t.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def as_numpy(nd: Any) -> np.ndarray:
    """A decord ``NDArray`` as a numpy array over the same memory (DLPack, through torch).

    ``NDArray.asnumpy()`` copies: a batch would exist twice until the decord one is freed.
    Where DLPack is not available the copy is made."""
    try:
        from torch.utils.dlpack import from_dlpack

        return from_dlpack(nd.to_dlpack()).numpy()  # type: ignore[no-any-return]
    except (AttributeError, RuntimeError, TypeError, BufferError):
        return nd.asnumpy()  # type: ignore[no-any-return]


class _BatchDecoder:
    """``get_batch`` with decode-time resizing where decord accepts the size, else afterwards.

    decord refuses some decode-time sizes only on the first batch (its output buffer and the
    scaler disagree: "DECORDArrayCopyFromTo: The size must exactly match"), so a refusal is
    caught there too: the reader is reopened at the native size and every batch is resized
    after decoding.
    """

    def __init__(self, p: Path, size: tuple[int, int] | None, *, shared: bool = False) -> None:
        """shared: a native-size reader may come from (and go back to, :meth:`close`) the
        last file's idle reader."""
        self.p, self.size = p, size
        self.decode_size = size
        self.vr: Any = None
        self.since_open = 0
        self.shared = shared
        if size is not None:
            try:
                self.vr = open_reader(p, size=size)
            except VideoDecodeError:
                self.decode_size = None
        if self.vr is None:
            if shared:
                self.vr, self.since_open = _READERS.take(p)
            else:
                self.vr = open_reader(p)

    def close(self) -> None:
        """Give a native-size reader back for the next call on the same file."""
        if self.shared and self.decode_size is None and self.vr is not None:
            _READERS.give(self.p, self.vr, self.since_open)
        self.vr = None

    def _native(self) -> None:
        self.vr = None
        self.decode_size = None
        self.vr = open_reader(self.p)
        self.since_open = 0

    def _batch(self, part: np.ndarray) -> np.ndarray:
        return as_numpy(self.vr.get_batch(part.tolist()))

    def _count(self, n: int) -> None:
        """Reopen the reader when it is due (:data:`REOPEN_EVERY`), then count ``n`` frames."""
        if self.since_open >= REOPEN_EVERY:
            self.vr = None
            self.vr = open_reader(self.p, size=self.decode_size)
            self.since_open = 0
        self.since_open += n

    def get(self, part: np.ndarray) -> np.ndarray:
        """uint8 ``[len(part), H, W, 3]`` for sorted frame indices ``part``."""
        self._count(part.size)
        try:
            pixels = self._batch(part)
        except Exception as e:
            if self.decode_size is None:
                raise VideoDecodeError(
                    f"{self.p}: frames {part[0]}..{part[-1]} cannot be decoded ({clean_error_text(e, 160)}); "
                    "the file is truncated or corrupt."
                ) from None
            self._native()
            return self.get(part)
        if self.size is not None and pixels.shape[1:3] != tuple(self.size):
            pixels = _resize(pixels, self.size)
        return pixels

    def frames(self, idx: np.ndarray) -> Generator[np.ndarray, None, None]:
        """Frames ``idx`` (sorted indices) one at a time, each uint8 ``[H, W, 3]`` at ``size``.

        A frame is decord's own buffer (or its resized copy) and is only valid until the next
        one is asked for: nothing but the decoder's buffers and one frame is held, where
        ``get_batch`` would first build all of them in one more array. A size decord refuses
        or ignores switches to native decoding and resizing here, as :meth:`get` does.
        decord decodes ahead in a worker thread and reports a failure at whichever frame is
        asked for next, so an error names the whole requested range (identical runs, identical
        errors).
        """
        span = f"frames {idx[0]}..{idx[-1]}" if idx.size > 1 else f"frame {idx[0]}" if idx.size else ""
        for i in idx.tolist():
            self._count(1)
            while True:
                try:
                    self.vr.seek_accurate(i)
                    px = as_numpy(self.vr.next())
                except Exception as e:
                    if self.decode_size is None:
                        raise VideoDecodeError(
                            f"{self.p}: {span} cannot all be decoded ({clean_error_text(e, 160)}); "
                            "the file is truncated or corrupt."
                        ) from None
                    self._native()
                    continue
                if self.decode_size is not None and px.shape != (*self.decode_size, 3):
                    self._native()  # decord gave another shape than it was asked for
                    continue
                break
            if self.size is not None and px.shape[:2] != tuple(self.size):
                px = _resize(px[None], self.size)[0]
            yield px
            del px


@contextlib.contextmanager
def _shared_decoder(p: Path, size: tuple[int, int] | None) -> Iterator[_BatchDecoder]:
    """A :class:`_BatchDecoder` over the last file's idle reader, handed back afterwards
    unless decoding failed (a reader that failed is not handed to the next call)."""
    dec = _BatchDecoder(p, size, shared=True)
    try:
        yield dec
    except Exception:  # not GeneratorExit: a caller that stops early keeps a good reader
        dec.vr = None
        raise
    finally:
        dec.close()


def _request(dec: _BatchDecoder, p: Path, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(every frame's presentation time ``[N]``, the requested indices validated, sorted, unique)."""
    times, _ = _TIMES.get(p, dec.vr if dec.decode_size is None else None)
    return times, np.unique(_validate_indices(indices, len(dec.vr), str(p)))


def _check_chunk(chunk: Any) -> None:
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ParameterError(f"The 'chunk' parameter must be an int >= 1. Got {chunk!r} instead.")


def default_decode_threads() -> int:
    """Decoding threads to use: the CPUs this process may run on, at most 4 (never more)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return default_decode_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ParameterError(f"The 'threads' parameter must be an int >= 1 or None. Got {threads!r} instead.")
    return int(threads)


def iter_frames(
    path: str | os.PathLike[str],
    indices: Sequence[int] | np.ndarray,
    *,
    size: tuple[int, int] | None = None,
    chunk: int = DEFAULT_CHUNK,
    threads: int | None = 1,
) -> Iterator[Frames]:
    """Decode ``indices`` (any order; returned sorted, unique) in chunks of at most ``chunk``.

    size: ``(H, W)`` of the upright frames to resize to (at decode time where decord allows
    it, else after decoding), or None for the native size. threads: readers decoding
    consecutive chunks in parallel (None: :func:`default_decode_threads`); each has its own
    decoder, so sparse frames of long videos decode about ``threads`` times faster, while
    the chunks still come out in order and at most ``threads + 1`` are held at a time.
    Yields :class:`Frames` with uint8 ``[<=chunk, H, W, 3]`` pixels and the frames'
    presentation times.
    """
    _check_chunk(chunk)
    n_threads = _check_threads(threads)
    p = _check_path(path)
    with _shared_decoder(p, size) as dec:
        times, idx = _request(dec, p, indices)
        parts = [idx[s : s + chunk] for s in range(0, idx.size, chunk)]
        if n_threads == 1 or len(parts) < 2:
            for part in parts:
                pixels = dec.get(part)
                yield Frames(pixels=np.ascontiguousarray(pixels), indices=part, timestamps=times[part])
                del pixels
                release_freed_memory()
            return
        yield from _iter_parallel(p, size, dec, parts, times, min(n_threads, len(parts)))


def each_frame(path: str | os.PathLike[str], indices: Sequence[int] | np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, uint8 [H, W, 3] native upright frame)`` for ``indices`` (sorted, unique).

    One frame at a time through the reader :func:`probe` left open: a frame is only valid
    until the next one is asked for (keep a copy or something derived from it, such as a
    thumbnail). Memory is the decoder's buffers and one frame, whatever the count.
    """
    p = _check_path(path)
    with _shared_decoder(p, None) as dec:
        idx = np.unique(_validate_indices(indices, len(dec.vr), str(p)))
        yield from zip(idx.tolist(), dec.frames(idx))


@contextlib.contextmanager
def _borrowed(pool: Any, p: Path, size: tuple[int, int] | None) -> Iterator[_BatchDecoder]:
    """A reader from ``pool`` (a ``queue.SimpleQueue``), or a new one when all are busy (so at
    most one per worker thread), put back afterwards."""
    import queue

    try:
        dec = pool.get_nowait()
    except queue.Empty:
        dec = _BatchDecoder(p, size)
    try:
        yield dec
    finally:
        pool.put(dec)


def _iter_parallel(
    p: Path, size: tuple[int, int] | None, first: _BatchDecoder, parts: list[np.ndarray],
    times: np.ndarray, n_threads: int,
) -> Iterator[Frames]:
    """Chunks decoded by ``n_threads`` readers (decord releases the GIL while decoding)."""
    import queue
    from concurrent.futures import Future, ThreadPoolExecutor

    pool: queue.SimpleQueue[_BatchDecoder] = queue.SimpleQueue()
    pool.put(first)

    def work(part: np.ndarray) -> np.ndarray:
        with _borrowed(pool, p, size) as dec:
            return np.ascontiguousarray(dec.get(part))

    ex = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="vidsieve-decode")
    pending: list[Future[np.ndarray]] = []
    try:
        nxt = 0
        for k, part in enumerate(parts):
            while nxt < len(parts) and nxt <= k + n_threads:  # keep the workers busy, bounded
                pending.append(ex.submit(work, parts[nxt]))
                nxt += 1
            pixels = pending.pop(0).result()
            yield Frames(pixels=pixels, indices=part, timestamps=times[part])
            del pixels
            release_freed_memory()
    finally:
        for f in pending:
            f.cancel()
        ex.shutdown(wait=True)


#: frames per worker task of a threaded :func:`decode_frames`
SELECTED_CHUNK = 8

#: arrays of decoded frames at least this large get their own memory mapping (:func:`frame_buffer`)
OWN_MAPPING_FROM_BYTES = 1 << 20


def frame_buffer(shape: tuple[int, ...], dtype: Any = np.uint8) -> np.ndarray:
    """An uninitialised array for decoded frames (e.g. uint8 ``[K, H, W, 3]``).

    One of at least :data:`OWN_MAPPING_FROM_BYTES` is its own anonymous memory mapping, handed
    back to the OS the moment the array (and every view of it) is freed. From the heap, glibc
    raises its mmap threshold to the size of a freed block and keeps later blocks of that size
    resident, so peak memory crept up call after call (measured here: +10 to +50 MB over five
    calls that each decode 32 frames at 360p).
    """
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if count * dt.itemsize < OWN_MAPPING_FROM_BYTES:
        return np.empty(shape, dtype=dt)
    import mmap

    private = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    # private, not Python's default shared mapping (tmpfs pages: 1.5x slower to fault in here).
    # Not in huge pages: faster to fill (3.6 ms instead of 12 for 22 MB) but freed lazily, the
    # peak then jumped by up to 40 MB from one call to the next.
    n = count * dt.itemsize
    m = mmap.mmap(-1, n, flags=private) if private else mmap.mmap(-1, n)
    return np.frombuffer(m, dtype=dt, count=count).reshape(shape)


def decode_frames(
    path: str | os.PathLike[str],
    indices: Sequence[int] | np.ndarray,
    *,
    size: tuple[int, int] | None = None,
    chunk: int = SELECTED_CHUNK,
    threads: int | None = 1,
) -> Frames:
    """Decode the given frames into one :class:`Frames` (sorted unique indices).

    size: ``(H, W)`` of the returned upright frames (None: native). The pixels
    ``[n, H, W, 3]`` are allocated once (:func:`frame_buffer`) and each frame is copied from
    the decoder straight into its row: the peak is the output plus the decoder's own buffers
    (lmms-eval's ``get_batch(...).asnumpy()`` holds the output twice). threads: readers
    decoding ``chunk`` frames each in parallel (None: :func:`default_decode_threads`; the
    output is identical to one reader's).
    """
    _check_chunk(chunk)
    n_threads = _check_threads(threads)
    p = _check_path(path)
    with _shared_decoder(p, size) as dec:
        times, idx = _request(dec, p, indices)
        if idx.size == 0:
            raise ParameterError("decode_frames needs at least one frame index.")
        frames = dec.frames(idx)
        first = next(frames)
        out = frame_buffer((idx.size, *first.shape))
        out[0] = first
        del first
        parts = [np.arange(s, min(s + chunk, idx.size)) for s in range(1, idx.size, chunk)]
        if n_threads == 1 or len(parts) < 2:
            for j, px in enumerate(frames, start=1):
                out[j] = px
        else:
            frames.close()
            _fill_parallel(p, size, dec, idx, out, parts, min(n_threads, len(parts)))
    return Frames(pixels=out, indices=idx, timestamps=times[idx])


def _fill_parallel(
    p: Path, size: tuple[int, int] | None, first: _BatchDecoder, idx: np.ndarray, out: np.ndarray,
    parts: list[np.ndarray], n_threads: int,
) -> None:
    """Rows ``parts`` of ``out`` (frames ``idx[part]``) filled by ``n_threads`` readers."""
    import queue
    from concurrent.futures import ThreadPoolExecutor

    pool: queue.SimpleQueue[_BatchDecoder] = queue.SimpleQueue()
    pool.put(first)

    def work(rows: np.ndarray) -> None:
        with _borrowed(pool, p, size) as dec:
            for r, px in zip(rows.tolist(), dec.frames(idx[rows])):
                out[r] = px

    with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="vidsieve-decode") as ex:
        tasks = [ex.submit(work, rows) for rows in parts]
        try:
            for f in tasks:
                f.result()
        finally:  # after a failure, the parts not started yet are dropped
            for f in tasks:
                f.cancel()

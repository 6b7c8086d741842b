"""Candidate-frame features: sampled, decoded in chunks, encoded, cached on disk.

The cache key is the video's identity (resolved path, size, mtime), the encoder's
``cache_key()`` and the sampling, so a second run on the same video skips decoding and
encoding. Entries are written atomically (temp file + rename); a crash never leaves a
half-written entry behind, and the temp file of a writer that was killed is removed by the
next write. A cache directory that cannot be written is reported once (a warning) and the
run goes on without the cache: the features are still returned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .decoding import candidate_frames, iter_frames, probe
from .encoders.base import FrameEncoder
from .errors import VideoDecodeError
from .types import FrameFeatures, VideoMeta

#: 2: timestamps are the frames' presentation times and fps-sampling follows them (VFR video).
CACHE_VERSION = 2
#: a temp file of another host (or of an unparsable name) older than this is an orphan.
STALE_TMP_AGE_S = 3600.0


def default_cache_dir() -> Path:
    """``$VIDSIEVE_CACHE_DIR``, else ``$XDG_CACHE_HOME/vidsieve``, else ``~/.cache/vidsieve``."""
    env = os.environ.get("VIDSIEVE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vidsieve"


def cache_key(meta: VideoMeta, encoder: FrameEncoder, sampling: Mapping[str, object]) -> str:
    p = Path(meta.path).resolve()
    st = p.stat()
    ident = {
        "v": CACHE_VERSION,
        "path": str(p),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "encoder": encoder.cache_key(),
        "sampling": sampling,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]


_warned_dirs: set[str] = set()


def _warn_once(root: Path, err: BaseException) -> None:
    if str(root) not in _warned_dirs:
        _warned_dirs.add(str(root))
        warnings.warn(
            f"The feature cache in {root} cannot be used ({type(err).__name__}: {err}); "
            "running without it. Set VIDSIEVE_CACHE_DIR to a writable directory, or pass cache=False.",
            RuntimeWarning,
            stacklevel=3,
        )


def _tmp_tag() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_temp_files(folder: Path) -> int:
    """Remove ``*.tmp.npz`` left by writers that died (SIGKILL, power loss); returns how many.

    A temp file is named ``.<key>.<host>-<pid>.<random>.tmp.npz``: one of this host whose pid is
    gone is an orphan; any other is one once it is older than :data:`STALE_TMP_AGE_S`.
    """
    host, removed, now = socket.gethostname(), 0, time.time()
    for f in folder.glob("*.tmp.npz"):
        parts = f.name.split(".")
        tag = parts[2] if len(parts) >= 6 else ""
        f_host, _, f_pid = tag.rpartition("-")
        try:
            if f_host == host and f_pid.isdigit():
                stale = int(f_pid) != os.getpid() and not _pid_alive(int(f_pid))
            else:
                stale = now - f.stat().st_mtime > STALE_TMP_AGE_S
            if stale:
                f.unlink()
                removed += 1
        except OSError:
            continue  # removed meanwhile by another process, or not ours to remove
    return removed


def _save(path: Path, feats: FrameFeatures) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temp_files(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.{_tmp_tag()}.", suffix=".tmp.npz")
    os.close(fd)
    arrays = {
        "embeddings": feats.embeddings,
        "indices": feats.indices,
        "timestamps": feats.timestamps,
        "meta": np.array(json.dumps({"encoder": feats.encoder, "fps": feats.fps, "duration": feats.duration})),
    }
    if feats.grid is not None:
        arrays["grid"] = feats.grid
    try:
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path) -> FrameFeatures | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return FrameFeatures(
                embeddings=z["embeddings"],
                indices=z["indices"],
                timestamps=z["timestamps"],
                grid=z["grid"] if "grid" in z.files else None,
                encoder=meta["encoder"],
                fps=float(meta["fps"]),
                duration=float(meta["duration"]),
            )
    except Exception:
        return None  # unreadable entry: recompute (and overwrite) rather than fail


def extract_features(
    video: str | os.PathLike[str],
    encoder: FrameEncoder,
    *,
    fps: float | None = 1.0,
    count: int | None = None,
    max_frames: int | None = None,
    cache: bool | str | os.PathLike[str] = True,
    progress: bool = True,
    batch_size: int = 32,
    timings: dict[str, float] | None = None,
    candidates: str = "frames",
    decode_threads: int | None = None,
) -> FrameFeatures:
    """Sample candidate frames (``fps`` or ``count``), decode them in chunks and encode them.

    Returns :class:`FrameFeatures` with embeddings ``[T, D]`` (and the encoder's patch grid).
    ``cache``: True (default dir), False, or a directory. ``timings`` (if given) receives
    ``decode`` and ``encode`` seconds (zero on a cache hit) and ``cache_hit``.
    ``candidates``: ``"frames"`` (the frame at each ``k / fps`` s), ``"keyframes"`` or
    ``"auto"`` (key frames near those times: far cheaper on long videos; see
    :func:`~vidsieve.decoding.candidate_frames`). ``decode_threads``: parallel readers
    (None: as many as the CPUs allow, at most 4); the result does not depend on it.
    Timestamps are the candidates' presentation times.
    """
    meta = probe(video)
    if count is not None:
        fps = None
    idx, times = candidate_frames(meta, fps=fps, count=count, max_frames=max_frames, source=candidates)
    sampling = {"fps": fps, "count": count, "max_frames": max_frames, "candidates": candidates}
    entry: Path | None = None
    if cache:
        root = default_cache_dir() if cache is True else Path(cache)
        entry = root / "features" / f"{cache_key(meta, encoder, sampling)}.npz"
        try:
            hit = _load(entry) if entry.exists() else None
        except OSError as err:
            _warn_once(root, err)
            hit, entry = None, None
        if hit is not None:
            hit = dataclasses.replace(hit, source=meta.path)
            if timings is not None:
                timings.update(decode=0.0, encode=0.0, cache_hit=1.0)
            return hit
    # Outputs are allocated once the first batch shows their width: no list of chunks and no
    # concatenation copy at the end, so peak memory is the output plus one chunk.
    emb_out: np.ndarray | None = None
    grid_out: np.ndarray | None = None
    has_grid = True
    t_dec = t_enc = 0.0
    pos = 0
    bar = tqdm(total=len(idx), desc=f"decode+encode {Path(meta.path).name}", unit="frame", disable=not progress, leave=False)
    frames_iter = iter_frames(meta.path, idx, size=encoder.decode_size, chunk=batch_size, threads=decode_threads)
    while True:
        t0 = time.perf_counter()
        try:
            fr = next(frames_iter)
        except StopIteration:
            break
        t1 = time.perf_counter()
        e, g = encoder.encode(fr.pixels)
        t2 = time.perf_counter()
        t_dec += t1 - t0
        t_enc += t2 - t1
        if emb_out is None:
            emb_out = np.empty((len(idx), e.shape[1]), np.float32)
            has_grid = g is not None
            grid_out = np.empty((len(idx), *g.shape[1:]), np.float32) if g is not None else None
        emb_out[pos : pos + len(fr)] = e
        if grid_out is not None and g is not None:
            grid_out[pos : pos + len(fr)] = g
        pos += len(fr)
        bar.update(len(fr))
    bar.close()
    if emb_out is None:
        raise VideoDecodeError(f"{meta.path}: no candidate frames could be decoded.")
    feats = FrameFeatures(
        embeddings=emb_out,
        indices=idx,
        timestamps=times,
        grid=grid_out if has_grid else None,
        encoder=encoder.cache_key(),
        fps=meta.effective_fps,
        duration=meta.duration,
        source=meta.path,
    )
    if timings is not None:
        timings.update(decode=t_dec, encode=t_enc, cache_hit=0.0)
    if entry is not None:
        try:
            _save(entry, feats)
        except OSError as err:  # unwritable or full: the work is done, keep its result
            _warn_once(entry.parent.parent, err)
    return feats

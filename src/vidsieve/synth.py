"""Synthetic videos with known structure, for tests, demos and model-free benchmarks.

Videos are H.264 mp4 written with the ffmpeg that ``imageio-ffmpeg`` bundles; frames are
rendered one at a time (memory stays flat for long videos). Three scene styles:

* ``"flat"``: a solid background colour with stripes and one moving disc: cuts are
  unambiguous to any frame descriptor.
* ``"objects"``: a smooth multi-colour background (a few related hues, like a real set) and
  three large shapes crossing the frame at different speeds, with a little camera shake: the
  layout of every frame changes while the scene stays the same.
* ``"pan"``: the camera pans across a panorama three frames wide (bouncing at its ends),
  with two moving shapes and a slow brightness drift: each frame shows a different part of
  the scene, as in real footage with camera motion.

Scene palettes of the ``objects``/``pan`` styles draw hue, saturation and value from the same
ranges, so two different scenes can share colours: only their mixture tells them apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ParameterError


@dataclass(frozen=True)
class Scene:
    """One scene: ``frames`` long, looking like scene ``look`` (equal looks = a repeated scene).

    ``needle`` marks an inserted short event (a distinct object) instead of a regular scene.
    """

    frames: int
    look: int
    needle: bool = False


#: scene styles :func:`render_frame` draws (see the module docstring).
STYLES = ("flat", "objects", "pan")


@dataclass
class SceneVideo:
    """Ground truth of a generated video: frame ranges of every scene."""

    path: Path
    fps: float
    size: tuple[int, int]  # (H, W)
    scenes: list[Scene]
    starts: list[int] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return sum(s.frames for s in self.scenes)

    @property
    def boundaries(self) -> list[int]:
        """First frame index of every scene after the first (the cut positions)."""
        return self.starts[1:]

    def scene_of(self, frame: int) -> int:
        """Index into ``scenes`` of the scene containing ``frame``."""
        return int(np.searchsorted(np.asarray(self.starts), frame, side="right") - 1)



def _paint_needle(img: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> None:
    """A needle frame's mark, in place: a large red/white checker square in the centre.

    img: float ``[h, w, 3]``; yy, xx: int ``[h, w]`` pixel coordinates.
    """
    h, w = yy.shape
    cy, cx, r = h // 2, w // 2, min(h, w) // 3
    sq = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r)
    chk = ((yy // max(r // 3, 1) + xx // max(r // 3, 1)) % 2).astype(bool)
    img[sq & chk] = (250, 30, 30)
    img[sq & ~chk] = (250, 250, 250)

def look_palette(look: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Deterministic (background RGB, shape RGB, texture period) for a scene look."""
    rng = np.random.default_rng(10_007 * (look + 1))
    bg = rng.integers(20, 236, size=3)
    fg = 255 - bg
    period = int(rng.integers(6, 30))
    return bg.astype(np.int16), fg.astype(np.int16), period


def render_frame(look: int, t: int, size: tuple[int, int], needle: bool = False, style: str = "flat") -> np.ndarray:
    """uint8 ``[H, W, 3]`` frame ``t`` of a scene with look ``look`` in ``style`` (see :data:`STYLES`)."""
    if style not in STYLES:
        raise ParameterError(f"The 'style' parameter of render_frame must be one of {STYLES}. Got {style!r} instead.")
    if style != "flat":
        return _render_moving(look, t, size, needle, style)
    h, w = size
    bg, fg, period = look_palette(look)
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = ((xx + yy * (look % 3)) // max(period * w // 224, 2)) % 2
    img = bg[None, None, :] + (stripes[..., None] * 40 - 20)
    # a moving disc (or, for a needle, a large white/red checker square in the centre)
    if needle:
        _paint_needle(img, yy, xx)
    else:
        cx = int((0.2 + 0.6 * ((t * 0.03 + look * 0.17) % 1.0)) * w)
        cy = int((0.3 + 0.4 * ((look * 0.37) % 1.0)) * h)
        r = max(min(h, w) // 8, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[disc] = fg
    return np.clip(img, 0, 255).astype(np.uint8)


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """float ``[..., 3]`` HSV in ``[0, 1]`` -> float RGB in ``[0, 255]``."""
    h, s, v = hsv[..., 0] * 6.0, hsv[..., 1], hsv[..., 2]
    i = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    p, q, u = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [np.stack(c, -1) for c in ((v, u, p), (q, v, p), (p, v, u), (p, q, v), (u, p, v), (v, p, q))]
    out = np.choose(i[..., None], choices)
    return out * 255.0


def scene_palette(look: int, n: int = 4) -> np.ndarray:
    """float ``[n, 3]`` RGB colours of a moving-style scene: ``n`` hues within 50 degrees of
    a base hue, saturation 0.25-0.8, value 0.3-0.95, one of them desaturated."""
    rng = np.random.default_rng(7_919 * (look + 3))
    base = rng.random()
    hsv = np.stack([
        (base + rng.uniform(-0.07, 0.07, n)) % 1.0,
        rng.uniform(0.25, 0.8, n),
        rng.uniform(0.3, 0.95, n),
    ], axis=1)
    hsv[-1, 1] *= 0.3
    return _hsv_to_rgb(hsv)


@lru_cache(maxsize=16)
def _panorama(look: int, size: tuple[int, int], width_factor: int) -> np.ndarray:
    """float32 ``[H, W * width_factor, 3]`` smooth colour field of a scene look (cached)."""
    h, w = size
    rng = np.random.default_rng(104_729 * (look + 1))
    pal = scene_palette(look)
    cells = rng.integers(0, len(pal), size=(3, 4 * width_factor))
    coarse = pal[cells] + rng.normal(0.0, 12.0, size=(*cells.shape, 3))
    from PIL import Image

    chans = [np.asarray(Image.fromarray(coarse[..., c].astype(np.float32)).resize((w * width_factor, h), Image.Resampling.BICUBIC))
             for c in range(3)]
    pano = np.stack(chans, axis=-1)
    yy, xx = np.mgrid[0:h, 0 : w * width_factor]
    period = max(int(rng.integers(5, 14)) * w // 160, 2)
    texture = (((xx // period + yy // period) % 2) * 2 - 1) * rng.uniform(4, 12)
    return np.clip(pano + texture[..., None], 0, 255).astype(np.float32)


def _render_moving(look: int, t: int, size: tuple[int, int], needle: bool, style: str) -> np.ndarray:
    h, w = size
    rng = np.random.default_rng(31_337 * (look + 1))
    wf = 3 if style == "pan" else 1
    pano = _panorama(look, size, wf)
    if style == "pan":
        span = w * (wf - 1)
        speed = rng.uniform(0.01, 0.03) * w  # px per frame
        pos = (t * speed + rng.uniform(0, span)) % (2 * span)
        x0 = int(pos if pos <= span else 2 * span - pos)
        img = pano[:, x0 : x0 + w].copy()
        img *= 1.0 + 0.08 * np.sin(t * 0.05 + look)
    else:
        dy, dx = (int(round(2 * np.sin(t * 0.7 + k))) for k in (0, 1))
        img = np.roll(pano, (dy, dx), axis=(0, 1)).copy()
    yy, xx = np.mgrid[0:h, 0:w]
    pal = scene_palette(look + 5_000)  # shapes: colours unrelated to the background's
    n_obj = 3 if style == "objects" else 2
    for j in range(n_obj):
        r = int(min(h, w) * rng.uniform(0.12, 0.22))
        period = rng.uniform(40, 120)
        phase = (t / period + rng.random()) % 2.0
        u = phase if phase <= 1 else 2 - phase  # back and forth
        cx = int(-r + u * (w + 2 * r))
        cy = int(h * rng.uniform(0.25, 0.75) + 0.1 * h * np.sin(t / 9.0 + j))
        if j % 2:
            shape = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < int(r * 1.4))
        else:
            shape = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[shape] = pal[j % len(pal)]
    if needle:
        _paint_needle(img, yy, xx)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_video(
    path: str | Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int], *, crf: int = 20
) -> Path:
    """Encode uint8 ``[H, W, 3]`` frames to H.264 mp4 (H and W must be even; ``crf``: x264
    quality, lower is better and larger)."""
    import imageio_ffmpeg

    h, w = size
    if h % 2 or w % 2:
        raise ParameterError(f"H.264 needs even frame sizes; got {h}x{w}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=None,
        output_params=["-crf", str(int(crf)), "-g", str(max(int(fps * 2), 1))], macro_block_size=2,
    )
    writer.send(None)
    n = 0
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
        n += 1
    writer.close()
    if n == 0:
        path.unlink(missing_ok=True)
        raise ParameterError("write_video got no frames.")
    return path


def make_scene_video(
    path: str | Path,
    scenes: list[Scene] | list[int],
    *,
    fps: float = 10.0,
    size: tuple[int, int] = (96, 128),
    style: str = "flat",
) -> SceneVideo:
    """Write a video made of ``scenes`` (ints = frame counts of scenes with distinct looks),
    drawn in ``style`` (see :data:`STYLES`)."""
    sc = [s if isinstance(s, Scene) else Scene(frames=int(s), look=i) for i, s in enumerate(scenes)]  # type: ignore[call-overload]
    if not sc or any(s.frames < 1 for s in sc):
        raise ParameterError("Every scene needs at least one frame.")
    if style not in STYLES:
        raise ParameterError(f"The 'style' parameter of make_scene_video must be one of {STYLES}. Got {style!r} instead.")
    starts = np.concatenate([[0], np.cumsum([s.frames for s in sc])[:-1]]).astype(int).tolist()

    def frames() -> Iterator[np.ndarray]:
        for s in sc:
            for t in range(s.frames):
                yield render_frame(s.look, t, size, needle=s.needle, style=style)

    write_video(path, frames(), fps, size)
    return SceneVideo(path=Path(path), fps=fps, size=size, scenes=sc, starts=starts)

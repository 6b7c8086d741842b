"""Synthetic videos with known structure, for tests, demos and model-free benchmarks.

Videos are H.264 mp4 written with the ffmpeg that ``imageio-ffmpeg`` bundles. Each scene has
its own background colour and texture and a moving shape, so cuts are unambiguous to any
frame descriptor; frames are rendered one at a time (memory stays flat for long videos).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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


def look_palette(look: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Deterministic (background RGB, shape RGB, texture period) for a scene look."""
    rng = np.random.default_rng(10_007 * (look + 1))
    bg = rng.integers(20, 236, size=3)
    fg = 255 - bg
    period = int(rng.integers(6, 30))
    return bg.astype(np.int16), fg.astype(np.int16), period


def render_frame(look: int, t: int, size: tuple[int, int], needle: bool = False) -> np.ndarray:
    """uint8 ``[H, W, 3]`` frame ``t`` of a scene with look ``look``."""
    h, w = size
    bg, fg, period = look_palette(look)
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = ((xx + yy * (look % 3)) // max(period * w // 224, 2)) % 2
    img = bg[None, None, :] + (stripes[..., None] * 40 - 20)
    # a moving disc (or, for a needle, a large white/red checker square in the centre)
    if needle:
        cy, cx, r = h // 2, w // 2, min(h, w) // 3
        sq = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r)
        chk = ((yy // max(r // 3, 1) + xx // max(r // 3, 1)) % 2).astype(bool)
        img[sq & chk] = (250, 30, 30)
        img[sq & ~chk] = (250, 250, 250)
    else:
        cx = int((0.2 + 0.6 * ((t * 0.03 + look * 0.17) % 1.0)) * w)
        cy = int((0.3 + 0.4 * ((look * 0.37) % 1.0)) * h)
        r = max(min(h, w) // 8, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[disc] = fg
    return np.clip(img, 0, 255).astype(np.uint8)


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int]) -> Path:
    """Encode uint8 ``[H, W, 3]`` frames to H.264 mp4 (H and W must be even)."""
    import imageio_ffmpeg

    h, w = size
    if h % 2 or w % 2:
        raise ParameterError(f"H.264 needs even frame sizes; got {h}x{w}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=None,
        output_params=["-crf", "20", "-g", str(max(int(fps * 2), 1))], macro_block_size=2,
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
) -> SceneVideo:
    """Write a video made of ``scenes`` (ints = frame counts of scenes with distinct looks)."""
    sc = [s if isinstance(s, Scene) else Scene(frames=int(s), look=i) for i, s in enumerate(scenes)]  # type: ignore[call-overload]
    if not sc or any(s.frames < 1 for s in sc):
        raise ParameterError("Every scene needs at least one frame.")
    starts = np.concatenate([[0], np.cumsum([s.frames for s in sc])[:-1]]).astype(int).tolist()

    def frames() -> Iterator[np.ndarray]:
        for s in sc:
            for t in range(s.frames):
                yield render_frame(s.look, t, size, needle=s.needle)

    write_video(path, frames(), fps, size)
    return SceneVideo(path=Path(path), fps=fps, size=size, scenes=sc, starts=starts)

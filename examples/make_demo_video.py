"""Build ``examples/demo_multishot.mp4``, the multi-shot video `vidsieve compare` is shown on.

    .venv/bin/python examples/make_demo_video.py [--out examples/demo_multishot.mp4]

A one-shot clip makes every frame selector pick about the same frames. This video has 11
shots of very unequal length (1.5 s to 12 s, 60 s in all, 320x180, 12 fps): generated scenes
with camera pans or moving shapes, each with a caption and a scrolling ticker (text, as in
real footage), plus the bundled *Big Buck Bunny* excerpt cut into a 3.5 s shot and a 1.5 s
insert later on (CC BY 3.0, Blender Foundation; see ``VIDEO_LICENSE.md``). With the image
query ``query_bunny.jpg`` (a frame of the 1.5 s insert) the query-aware selectors find the
insert; uniform sampling at 8 frames (2 fps candidates) misses both bunny shots and the 1.5 s
tunnel shot.

Everything is deterministic (seeded scene looks, PIL's built-in font); the result is
written atomically (to a temporary file, then renamed).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidsieve.decoding import decode_frames, probe
from vidsieve.synth import render_frame, write_video

HERE = Path(__file__).resolve().parent
SIZE = (180, 320)  # (H, W)
FPS = 12.0

#: (seconds, kind, look or bunny frame range, caption): kind "pan" / "objects" / "bunny".
SHOTS: list[tuple[float, str, int | tuple[int, int], str]] = [
    (4.0, "pan", 11, "Harbour, 06:10"),
    (12.0, "objects", 12, "Market square"),
    (2.0, "pan", 13, "Bridge"),
    (3.5, "bunny", (0, 84), "Meadow"),
    (9.0, "objects", 14, "Workshop"),
    (1.5, "pan", 15, "Tunnel"),
    (6.0, "pan", 16, "Coast road"),
    (1.5, "bunny", (84, 132), "Meadow again"),
    (10.0, "objects", 17, "Station hall"),
    (2.5, "pan", 18, "Rooftops"),
    (8.0, "objects", 19, "Night street"),
]

TICKER = "vidsieve demo  -  eleven shots of unequal length  -  which frames does each selector keep?  -  "


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _caption(frame: np.ndarray, text: str, t: int, shot: int) -> np.ndarray:
    """Draw the shot caption (top left), a clock and a scrolling ticker (bottom band)."""
    img = Image.fromarray(frame)
    d = ImageDraw.Draw(img)
    h, w = SIZE
    d.rectangle((6, 6, 14 + 9 * len(text), 28), fill=(0, 0, 0))
    d.text((10, 8), text, font=_font(16), fill=(255, 255, 255))
    d.text((w - 70, 8), f"#{shot + 1:02d} {t / FPS:4.1f}s", font=_font(12), fill=(255, 255, 210))
    d.rectangle((0, h - 20, w, h), fill=(20, 20, 60))
    x = -int(t * 4) % (len(TICKER) * 7)
    d.text((x - len(TICKER) * 7, h - 18), TICKER * 2, font=_font(13), fill=(240, 240, 120))
    return np.asarray(img)


def _bunny(lo: int, hi: int, n: int) -> list[np.ndarray]:
    """``n`` frames of the bundled bunny clip between source frames ``lo`` and ``hi``."""
    src = HERE / "big_buck_bunny.mp4"
    total = probe(src).num_frames
    idx = np.unique(np.linspace(lo, min(hi, total) - 1, n).round().astype(np.int64))
    frames = decode_frames(src, idx, size=SIZE).pixels
    return [frames[min(i, len(frames) - 1)] for i in range(n)]


def frames() -> Iterator[np.ndarray]:
    for j, (sec, kind, what, caption) in enumerate(SHOTS):
        n = int(round(sec * FPS))
        if isinstance(what, tuple):  # a bunny excerpt: source frames [lo, hi)
            shot = _bunny(what[0], what[1], n)
        else:
            shot = [render_frame(what, 2 * t, SIZE, style=kind) for t in range(n)]
        for t, fr in enumerate(shot):
            yield _caption(fr, caption, t, j)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "demo_multishot.mp4"))
    args = ap.parse_args()
    out = Path(args.out)
    tmp = out.with_name(out.stem + ".partial.mp4")
    write_video(tmp, frames(), FPS, SIZE)
    os.replace(tmp, out)
    starts = np.cumsum([0] + [int(round(s * FPS)) for s, *_ in SHOTS])
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB); shots start at frames {starts[:-1].tolist()}")


if __name__ == "__main__":
    main()

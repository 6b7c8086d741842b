"""What `vidsieve compare` does, in Python: every frame selector on the bundled demo video.

    .venv/bin/python examples/compare_selectors.py [--frames 8] [--out report]

The default video is ``demo_multishot.mp4`` (11 shots of unequal length, two of them from Big
Buck Bunny; rebuild it with ``make_demo_video.py``); the image query is a Big Buck Bunny frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import vidsieve
from vidsieve.compare import run_compare
from vidsieve.encoders.pixel import PixelEncoder
from vidsieve.features import extract_features
from vidsieve.report import write_report

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=str(HERE / "demo_multishot.mp4"))
    ap.add_argument("--query-image", default=str(HERE / "query_bunny.jpg"))
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--fps", type=float, default=2.0, help="candidate frames per second")
    ap.add_argument("--out", default="report")
    args = ap.parse_args()

    # 1. Candidate features (decoded in chunks, cached on disk) and an image query.
    encoder = PixelEncoder()
    features = extract_features(args.video, encoder, fps=args.fps)
    query = encoder.embed_query(np.asarray(Image.open(args.query_image).convert("RGB")))
    budget = vidsieve.Budget(frames=args.frames, tokens=args.frames * 196)

    # 2. Every registered selector through the same contract.
    for name in vidsieve.list_selectors():
        selection = vidsieve.create_selector(name).select(features, budget=budget, query=query)
        times = " ".join(f"{t:5.2f}" for t in selection.timestamps)
        print(f"{name:<18} {selection.timings['select'] * 1e3:7.2f} ms  {times}")

    # 3. The same, with the report the CLI writes.
    result = run_compare(args.video, budget=budget, query=query.image, fps=args.fps, token_selectors="*")
    paths = write_report(result, args.out)
    print("report:", paths["html"])


if __name__ == "__main__":
    main()

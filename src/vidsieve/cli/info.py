"""``vidsieve info VIDEO``: duration, fps, frames, size, codec."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("info", help="show a video's metadata")
    p.add_argument("video")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..decoding import probe

    m = probe(args.video, codec=True)
    if args.json:
        print(json.dumps(m.to_dict(), indent=1))
        return 0
    print(f"path      {m.path}")
    print(f"duration  {m.duration:.3f} s")
    print(f"fps       {m.fps:.3f}")
    print(f"frames    {m.num_frames}")
    print(f"size      {m.width}x{m.height}")
    print(f"codec     {m.codec}")
    print(f"bytes     {m.size_bytes}")
    return 0

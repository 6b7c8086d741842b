"""Decoding memory and speed vs video length: peak RSS must stay flat.

Generates a short and a long synthetic video (default 1 and 60 minutes), then, each in a fresh
process, extracts 1-fps candidate features with the default encoder (chunked decode +
encode) and records peak RSS and frames/s. Prints a table with the long/short ratio and
writes a CSV with machine, versions and shapes.

    python -m vidsieve.eval.bench.decode_memory --out bench-out [--minutes 1,60]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from vidsieve.synth import Scene, make_scene_video

from ._csv import write_csv

_CHILD = r"""
import json, resource, sys, time
import numpy as np
from vidsieve.encoders.pixel import PixelEncoder
from vidsieve.features import extract_features
from vidsieve.decoding import iter_frames, probe, sample_indices
path, mode = sys.argv[1], sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
meta = probe(path)
t0 = time.perf_counter()
if mode == "features":
    f = extract_features(path, PixelEncoder(), fps=1.0, cache=False, progress=False)
    n = len(f)
    out_mb = (f.embeddings.nbytes + f.grid.nbytes) / 2**20
else:  # decode only, every frame at native size
    n, out_mb = 0, 0.0
    for fr in iter_frames(path, np.arange(meta.num_frames), chunk=32):
        n += len(fr)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"output_mb": out_mb, "frames": int(n), "seconds": dt, "peak_rss_mb": peak / 1024, "import_rss_mb": base / 1024,
                  "video_frames": meta.num_frames}))
"""


def make_video(path: Path, minutes: float, fps: float, size: tuple[int, int]) -> Path:
    if path.exists():
        return path
    n = int(minutes * 60 * fps)
    scene_len = int(20 * fps)  # a new scene every 20 s
    scenes = [Scene(frames=min(scene_len, n - s), look=(s // scene_len) % 37) for s in range(0, n, scene_len)]
    make_scene_video(path, scenes, fps=fps, size=size)
    return path


def measure(path: Path, mode: str) -> dict[str, float]:
    r = subprocess.run([sys.executable, "-c", _CHILD, str(path), mode], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"measuring {path.name} ({mode}) failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vidsieve bench decode-memory", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--minutes", default="1,10,60", help="video lengths in minutes (comma-separated)")
    ap.add_argument("--fps", type=float, default=10.0, help="source frame rate of the generated videos")
    ap.add_argument("--size", default="180x320", help="HxW of the generated videos")
    ap.add_argument("--modes", default="features,decode", help="features (1-fps candidates + encode) and/or decode (every frame)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    h, w = (int(x) for x in args.size.split("x"))
    rows = []
    for minutes in [float(m) for m in args.minutes.split(",")]:
        t0 = time.perf_counter()
        path = make_video(out / f"synthetic_{minutes:g}min_{h}x{w}_{args.fps:g}fps.mp4", minutes, args.fps, (h, w))
        gen = time.perf_counter() - t0
        for mode in args.modes.split(","):
            m = measure(path, mode)
            row = {"minutes": minutes, "mode": mode, "height": h, "width": w, "src_fps": args.fps,
                   "video_frames": m["video_frames"], "frames": m["frames"], "seconds": round(m["seconds"], 3),
                   "frames_per_s": round(m["frames"] / m["seconds"], 1), "peak_rss_mb": round(m["peak_rss_mb"], 1),
                   "output_mb": round(m["output_mb"], 1),
                   "working_mb": round(m["peak_rss_mb"] - m["import_rss_mb"] - m["output_mb"], 1),
                   "import_rss_mb": round(m["import_rss_mb"], 1), "generate_s": round(gen, 1)}
            rows.append(row)
            print(json.dumps(row))
    csv_path = write_csv(rows, out / "decode_memory.csv")
    print(f"\n{'minutes':>8} {'mode':>9} {'frames':>8} {'frames/s':>9} {'peak RSS MB':>12} {'output MB':>10} {'working MB':>11}")
    for r in rows:
        print(f"{r['minutes']:>8g} {r['mode']:>9} {r['frames']:>8} {r['frames_per_s']:>9} {r['peak_rss_mb']:>12}"
              f" {r['output_mb']:>10} {r['working_mb']:>11}")
    print("working MB = peak RSS - RSS after imports - size of the returned features (which grow with length by design)")
    for mode in args.modes.split(","):
        mr = [r for r in rows if r["mode"] == mode]
        if len(mr) >= 2:
            print(f"{mode}: peak RSS longest/shortest = {mr[-1]['peak_rss_mb'] / mr[0]['peak_rss_mb']:.3f}, "
                  f"working memory longest/shortest = {mr[-1]['working_mb'] / max(mr[0]['working_mb'], 1e-9):.3f}")
    print(f"wrote {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

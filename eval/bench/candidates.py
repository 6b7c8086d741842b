"""Candidate-feature extraction on long videos: today's path vs the cheap ones, same run.

For each generated video (synthetic scenes, H.264, a key frame at least every 2 s plus one at
every cut; default 1 and 10 minutes at 640x360 25 fps and 1280x720 30 fps) and each method,
a fresh process extracts 1-fps candidate features with the pixel encoder and records wall
time, candidate frames/s, how many times faster than real time, and peak RSS:

- ``current``:   one reader, the frame at each ``k / fps`` s (the path before parallel readers);
- ``threads``:   the same candidates decoded by parallel readers (``decode_threads=None``);
- ``keyframes``: the key frame nearest each target, parallel readers;
- ``auto``:      key frames where they keep the rate (every target within half a period),
  else the exact frames.

Selection agreement with ``current``: each selector runs on every method's features at
``--budget`` frames; ``same`` = identical picks, ``within_s`` = share of the current picks
with a pick of the method no more than ``--tolerance`` s away (and twice that). Videos longer than a minute
repeat the 1-minute clip (joined without re-encoding), so they decode exactly like a long
encode of the same content. Writes ``candidates.csv`` (rows + machine, versions, commit) and
``candidates.md`` to ``--out``.

    python -m vidsieve.eval.bench.candidates --out bench-out [--minutes 1,10,60] [--sizes 360p,720p]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._csv import write_csv

#: name -> ((H, W), fps) of the generated clip; "120p" is a quick smoke-test size
SIZES = {"120p": ((120, 160), 10.0), "360p": ((360, 640), 25.0), "720p": ((720, 1280), 30.0)}
METHODS = {
    "current": {"candidates": "frames", "decode_threads": 1},
    "threads": {"candidates": "frames", "decode_threads": None},
    "keyframes": {"candidates": "keyframes", "decode_threads": None},
    "auto": {"candidates": "auto", "decode_threads": None},
}

# Peak RSS from /proc (VmHWM, in kB): ru_maxrss of a child also counts the parent's memory it
# was forked from, VmHWM starts afresh at exec.
_CHILD = r"""
import json, sys, time
import numpy as np
from vidsieve.encoders.pixel import PixelEncoder
from vidsieve.features import extract_features
from vidsieve.decoding import default_decode_threads, probe
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return float(line.split()[1])
    return float("nan")
path, kw, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
base = hwm()
t0 = time.perf_counter()
meta = probe(path)
t = {}
f = extract_features(path, PixelEncoder(), fps=1.0, cache=False, progress=False, timings=t, **kw)
dt = time.perf_counter() - t0
peak = hwm()
np.savez(out, embeddings=f.embeddings, indices=f.indices, timestamps=f.timestamps)
threads = kw["decode_threads"] or default_decode_threads()
print(json.dumps({"seconds": dt, "decode_s": t["decode"], "encode_s": t["encode"], "frames": len(f),
                  "peak_rss_mb": peak / 1024, "import_rss_mb": base / 1024, "video_frames": meta.num_frames,
                  "duration_s": meta.duration, "threads": threads}))
"""


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def make_video(folder: Path, minutes: float, size: str) -> Path:
    """The 1-minute synthetic clip of ``size``, repeated to ``minutes`` (stream copy)."""
    from .decode_memory import make_video as make_clip

    (h, w), fps = SIZES[size]
    clip = make_clip(folder / f"clip_1min_{size}.mp4", 1.0, fps, (h, w))
    if minutes == 1:
        return clip
    if minutes != int(minutes) or minutes < 1:
        raise SystemExit(f"--minutes must be whole minutes >= 1; got {minutes:g}.")
    out = folder / f"synthetic_{minutes:g}min_{size}.mp4"
    if not out.exists():
        listing = folder / f"concat_{minutes:g}_{size}.txt"
        listing.write_text("".join(f"file '{clip.name}'\n" for _ in range(int(minutes))))
        tmp = out.with_suffix(".tmp.mp4")
        subprocess.run([_ffmpeg(), "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-c", "copy", str(tmp)], check=True)
        os.replace(tmp, out)
    return out


def measure(path: Path, method: str, feats_out: Path) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-c", _CHILD, str(path), json.dumps(METHODS[method]), str(feats_out)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"measuring {path.name} ({method}) failed:\n{r.stderr[-3000:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def agreement(ref: Path, other: Path, duration: float, selectors: list[str], budget: int,
              tolerance: float) -> dict[str, dict[str, float]]:
    """Per selector: identical picks (1/0) and the share of ``ref`` picks with a pick of ``other``
    within ``tolerance`` s (``within_s``) and within twice that (``within_2s``)."""
    from vidsieve.registry import FRAME_SELECTORS
    from vidsieve.types import FrameFeatures

    def load(p: Path) -> FrameFeatures:
        with np.load(p) as z:
            return FrameFeatures(embeddings=z["embeddings"], indices=z["indices"], timestamps=z["timestamps"],
                                 fps=1.0, duration=duration)

    a, b = load(ref), load(other)
    out = {}
    for name in selectors:
        sa = FRAME_SELECTORS.create(name).select(a, budget=budget)
        sb = FRAME_SELECTORS.create(name).select(b, budget=budget)
        ta, tb = np.asarray(sa.timestamps, float), np.asarray(sb.timestamps, float)
        gap = np.min(np.abs(ta[:, None] - tb[None, :]), axis=1) if tb.size and ta.size else np.full(ta.size, np.inf)
        out[name] = {"same": float(np.array_equal(sa.indices, sb.indices)),
                     "within_s": float(np.mean(gap <= tolerance + 1e-9)) if ta.size else 1.0,
                     "within_2s": float(np.mean(gap <= 2 * tolerance + 1e-9)) if ta.size else 1.0}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vidsieve bench candidates", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-out/candidates")
    ap.add_argument("--minutes", default="1,10", help="video lengths in whole minutes (default 1,10)")
    ap.add_argument("--sizes", default="360p,720p", help=f"comma-separated, of {sorted(SIZES)}")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {list(METHODS)} (current always runs)")
    ap.add_argument("--selectors", default="uniform,ktv,kframes,stratified-argmax", help="selectors for the agreement")
    ap.add_argument("--budget", type=int, default=32, help="frames each selector picks (default 32)")
    ap.add_argument("--tolerance", type=float, default=1.0,
                    help="seconds for a pick to count as matched (default 1; twice it is reported too)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs per method, interleaved across methods; the median is reported (default 3)")
    args = ap.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    methods = ["current"] + [m for m in args.methods.split(",") if m and m != "current"]
    for s in sizes:
        if s not in SIZES:
            raise SystemExit(f"--sizes: unknown size {s!r}; choose from {sorted(SIZES)}.")
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"--methods: unknown method {m!r}; choose from {list(METHODS)}.")
    selectors = [s for s in args.selectors.split(",") if s]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        for minutes in [float(x) for x in args.minutes.split(",") if x]:
            t0 = time.perf_counter()
            path = make_video(out, minutes, size)
            gen = time.perf_counter() - t0
            feats = {m: out / f"features_{minutes:g}min_{size}_{m}.npz" for m in methods}
            runs: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
            for _ in range(max(1, args.repeats)):  # interleaved: a load change hits every method alike
                for method in methods:
                    load0 = os.getloadavg()[0]
                    runs[method].append({**measure(path, method, feats[method]), "load": load0})
            base: dict[str, Any] = {}
            for method in methods:
                rs = runs[method]
                m = rs[0]
                sec = float(np.median([r["seconds"] for r in rs]))
                row: dict[str, Any] = {
                    "size": size, "minutes": minutes, "method": method, "threads": m["threads"],
                    "video_frames": m["video_frames"], "candidates": m["frames"], "repeats": len(rs),
                    "seconds": round(sec, 3), "seconds_min": round(min(r["seconds"] for r in rs), 3),
                    "decode_s": round(float(np.median([r["decode_s"] for r in rs])), 3),
                    "encode_s": round(float(np.median([r["encode_s"] for r in rs])), 3),
                    "candidates_per_s": round(m["frames"] / sec, 1),
                    "x_realtime": round(m["duration_s"] / sec, 1),
                    "x_realtime_best": round(m["duration_s"] / min(r["seconds"] for r in rs), 1),
                    "peak_rss_mb": round(max(r["peak_rss_mb"] for r in rs), 1),
                    "import_rss_mb": round(m["import_rss_mb"], 1),
                    "load_avg_1min": round(float(np.mean([r["load"] for r in rs])), 2), "generate_s": round(gen, 1),
                }
                if method == "current":
                    base = row
                row["speedup_vs_current"] = round(base["seconds"] / sec, 2)
                row["rss_vs_current"] = round(row["peak_rss_mb"] / base["peak_rss_mb"], 3)
                if method != "current":
                    agree = agreement(feats["current"], feats[method], m["duration_s"], selectors, args.budget,
                                      args.tolerance)
                    row["same_picks"] = json.dumps({k: v["same"] for k, v in agree.items()})
                    row["picks_within_tol"] = json.dumps({k: round(v["within_s"], 3) for k, v in agree.items()})
                    row["picks_within_2tol"] = json.dumps({k: round(v["within_2s"], 3) for k, v in agree.items()})
                rows.append(row)
                print(json.dumps(row), flush=True)
    csv_path = write_csv(rows, out / "candidates.csv")
    head = ("| size | min | method | thr | candidates | median s | cand/s | x real time (best) | speed-up "
            "| peak RSS MB | picks within tol |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['size']} | {r['minutes']:g} | {r['method']} | {r['threads']} | {r['candidates']} | {r['seconds']} "
                     f"| {r['candidates_per_s']} | {r['x_realtime']} ({r['x_realtime_best']}) | {r['speedup_vs_current']} | {r['peak_rss_mb']} "
                     f"| {r.get('picks_within_tol', '')} |")
    md = out / "candidates.md"
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {csv_path} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

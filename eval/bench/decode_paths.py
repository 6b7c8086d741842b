"""Uniform frames through every vidsieve path vs the plain decord baseline (time and memory).

A content-free selector (the uniform rules) must cost what the baseline costs: reading the
container's metadata and decoding the chosen frames, nothing else. For each generated video
(default 1 and 10 minutes at 640x360, 25 fps; ``--minutes 1,10,60``, ``--size 720x1280``;
videos over 10 minutes repeat the 10-minute one without re-encoding) and
each path, a fresh process picks ``--frames`` uniform frames and reports wall seconds and peak
RSS:

* ``decord-baseline``: lmms-eval's way, ``VideoReader(path).get_batch(linspace(0, N-1, k))``
  (in a process that has torch imported, as every model harness has).
* ``pipeline``: ``vidsieve.Pipeline(frames="uniform").run(path, budget=k)``.
* ``compare``: ``vidsieve.compare.run_compare(path, selectors="uniform")`` (no report files).
* ``wrap``: ``vidsieve.wrap(model, processor, frames="uniform").select_frames(path, prompt)`` on a
  tiny random Qwen2-VL (the frame stage the model path and ``vidsieve eval`` run).
* ``candidates``: 1-fps candidate features with the pixel encoder (what a content-aware
  selector pays on top; shows what the content-free path saves).

One-time set-up (imports, decord and torch in every path, building the model or the selector
objects) happens before the clock starts and before the post-import RSS is read; each process then makes ``--reps`` calls on the video: the time reported is the
median of the calls after the first (the per-video cost a benchmark run pays), the first call
(with one-time costs such as loading decoder libraries) is in ``first_call_s``. Prints the table with each path's time and
peak memory as a ratio to the baseline measured in the same run (and the working memory: peak
minus the RSS after imports, and its ratio to the baseline's), and writes ``decode_paths.csv``
(machine, versions, shapes) to ``--out``.

The same call's peak RSS can differ between processes (what decord's decoder holds while it
seeks, when glibc hands freed blocks back): each path therefore runs in ``--processes``
fresh processes, the paths interleaved; the CSV has the median of each figure and the range
of working memory (``work_rss_min_mb``/``work_rss_max_mb``).

    python -m vidsieve.eval.bench.decode_paths --out runs/bench-decode-paths [--minutes 1,10,60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from ._csv import write_csv
from .decode_memory import make_video

PATHS = ("decord-baseline", "pipeline", "compare", "wrap", "candidates")

_CHILD = r"""
import json, resource, sys, time
path, mode, k, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import numpy as np
import decord, torch  # every path has the decoder library and torch loaded before the clock
if mode == "wrap":  # model construction is not part of the frame stage: build it first
    import vidsieve
    from vidsieve.adapters.tiny import qwen2_vl
    model, proc = qwen2_vl()
    vlm = vidsieve.wrap(model, proc, frames="uniform", budget=k, cache=False)
elif mode == "decord-baseline":
    pass  # a model harness has torch loaded: the same import footprint as vidsieve's paths
else:
    import vidsieve, vidsieve.pipeline, vidsieve.compare, vidsieve.features, vidsieve.encoders.pixel
    vidsieve.list_selectors()  # one-time registry import, not per-video work
    pipe = vidsieve.pipeline.Pipeline(frames="uniform", cache=False, progress=False)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def once():
    if mode == "decord-baseline":
        vr = decord.VideoReader(path, num_threads=1)
        idx = np.linspace(0, len(vr) - 1, k).astype(int)
        return len(vr.get_batch(idx.tolist()).asnumpy())
    if mode == "pipeline":
        return len(pipe.run(path, budget=k).frames)
    if mode == "compare":
        from vidsieve.types import Budget
        r = vidsieve.compare.run_compare(path, budget=Budget(frames=k), selectors="uniform", cache=False, progress=False)
        return len(r.selections["uniform"])
    if mode == "wrap":
        return len(np.unique(vlm.select_frames(path, "what happens?").frames.indices))
    f = vidsieve.features.extract_features(path, vidsieve.encoders.pixel.PixelEncoder(), fps=1.0, cache=False, progress=False)
    return len(f)


times = []
for _ in range(reps):
    if mode != "decord-baseline":  # each call opens the file as a first call would
        import vidsieve.decoding
        vidsieve.decoding.clear_caches()
    t0 = time.perf_counter()
    n = once()
    times.append(time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
warm = sorted(times[1:])[len(times[1:]) // 2] if len(times) > 1 else times[0]
print(json.dumps({"frames": int(n), "seconds": warm, "first_call_s": times[0], "peak_rss_mb": peak / 1024,
                  "import_rss_mb": base / 1024}))
"""


def measure(path: Path, mode: str, frames: int, reps: int = 3) -> dict[str, Any]:
    """One path in a fresh process, ``reps`` calls: frames delivered, ``seconds`` (median of the
    calls after the first: the per-video cost), ``first_call_s`` (with one-time costs), peak and
    post-import RSS (MB)."""
    r = subprocess.run([sys.executable, "-c", _CHILD, str(path), mode, str(frames), str(reps)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def _video(folder: Path, minutes: float, fps: float, size: tuple[int, int]) -> Path:
    """The generated video of ``minutes``: encoded directly up to 10 minutes; longer whole
    multiples of 10 minutes repeat the 10-minute video (joined without re-encoding, so they
    decode exactly like a long encode of that content, in a fraction of the time)."""
    h, w = size
    path = folder / f"scenes_{minutes:g}min_{h}x{w}_{fps:g}fps.mp4"
    if minutes <= 10 or minutes % 10 or path.exists():
        return make_video(path, minutes, fps, size)
    import imageio_ffmpeg

    base = _video(folder, 10.0, fps, size)
    listing = folder / f"concat_{minutes:g}min_{h}x{w}_{fps:g}fps.txt"
    listing.write_text("".join(f"file '{base.name}'\n" for _ in range(int(minutes // 10))))
    tmp = path.with_suffix(".tmp.mp4")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "concat", "-safe", "0",
                    "-i", str(listing), "-c", "copy", str(tmp)], check=True)
    os.replace(tmp, path)
    return path


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over a path's processes of each figure, and the range of its working memory."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    work = [r["peak_rss_mb"] - r["import_rss_mb"] for r in ok]
    med = {key: statistics.median(r[key] for r in ok) for key in ("seconds", "first_call_s", "peak_rss_mb", "import_rss_mb")}
    return {"frames": ok[0]["frames"], **{key: round(v, 4) for key, v in med.items()},
            "work_rss_mb": round(statistics.median(work), 1), "work_rss_min_mb": round(min(work), 1),
            "work_rss_max_mb": round(max(work), 1)}


def _size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--minutes", default="1,10", help="video lengths in minutes, comma-separated (default 1,10)")
    ap.add_argument("--size", default="360x640", help="HxW of the generated videos (default 360x640)")
    ap.add_argument("--fps", type=float, default=25.0, help="frame rate of the generated videos (default 25)")
    ap.add_argument("--frames", type=int, default=32, help="uniform frames to pick (default 32)")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated subset of {','.join(PATHS)}")
    ap.add_argument("--reps", type=int, default=3,
                    help="calls per path and process; the time is the median after the first (default 3)")
    ap.add_argument("--out", default="runs/bench-decode-paths", help="output directory")
    ap.add_argument("--videos", default=None, help="folder for the generated videos (default: OUT/videos)")
    ap.add_argument("--processes", type=int, default=3,
                    help="fresh processes per path, interleaved; medians reported (default 3)")
    args = ap.parse_args(argv)
    minutes = [float(m) for m in args.minutes.split(",") if m.strip()]
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    bad = [p for p in paths if p not in PATHS]
    if bad or not minutes or args.frames < 1 or args.reps < 1:
        ap.error(f"unknown paths {bad}; choose from {PATHS}" if bad else "--minutes and --frames >= 1 are needed")
    if "decord-baseline" not in paths:
        paths.insert(0, "decord-baseline")
    h, w = _size(args.size)
    out = Path(args.out)
    vdir = Path(args.videos) if args.videos else out / "videos"
    vdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for m in minutes:
        video = _video(vdir, m, args.fps, (h, w))
        runs: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
        for _ in range(max(1, args.processes)):  # interleaved: drift on the machine hits all alike
            for p in paths:
                runs[p].append(measure(video, p, args.frames, args.reps))
        summary = {p: _summary(r) for p, r in runs.items()}
        base = summary["decord-baseline"]
        for p in paths:
            res = summary[p]
            row: dict[str, Any] = {"minutes": m, "size": f"{h}x{w}", "video_fps": args.fps, "k": args.frames,
                                   "path": p, "processes": len(runs[p]), **res}
            if "seconds" in res and "seconds" in base:
                row["time_x_baseline"] = round(res["seconds"] / max(base["seconds"], 1e-9), 3)
                row["peak_rss_x_baseline"] = round(res["peak_rss_mb"] / max(base["peak_rss_mb"], 1e-9), 3)
                # a tiny video's baseline may need no memory beyond the imports: no ratio then
                row["work_rss_x_baseline"] = (round(res["work_rss_mb"] / base["work_rss_mb"], 3)
                                              if base["work_rss_mb"] >= 1.0 else "")
            rows.append(row)
            print(_line(row), flush=True)
    csv = write_csv(rows, out / "decode_paths.csv")
    print(f"wrote {csv}")
    return 0


def _ratio(v: Any) -> str:
    return f"{v:4.2f}x" if isinstance(v, (int, float)) else "  - x"


def _line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['minutes']:>5g} min {r['size']:>9} {r['path']:<16} ERROR {r['error']}"
    return (f"{r['minutes']:>5g} min {r['size']:>9} {r['path']:<16} {r['frames']:>5} frames "
            f"{r['seconds']:8.2f} s ({r.get('time_x_baseline', 1.0):6.2f}x, first {r['first_call_s']:6.2f} s)  peak RSS {r['peak_rss_mb']:7.0f} MB "
            f"({r.get('peak_rss_x_baseline', 1.0):5.2f}x, working {r.get('work_rss_mb', 0):6.1f} MB "
            f"[{r.get('work_rss_min_mb', 0):.0f}-{r.get('work_rss_max_mb', 0):.0f}], "
            f"{_ratio(r.get('work_rss_x_baseline', 1.0))})")


if __name__ == "__main__":
    raise SystemExit(main())

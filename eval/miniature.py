"""Miniature Video-MME and LongVideoBench in the official layouts, for tests and demos.

Videos are synthetic scene videos (:mod:`vidsieve.synth`); every question asks something the
video really shows (how many scenes, which scene comes first, whether a "needle" event
occurs), so a capable model could answer it. Subtitles say which scene is on screen.

``make_videomme(dir)`` writes ``videomme/test-00000-of-00001.parquet``, ``data/*.mp4`` and
``subtitle/*.srt`` (lines wrapped in Video-MME's ``<font ...>`` tags);
``make_longvideobench(dir)`` writes ``lvb_val.json``, ``videos/*.mp4`` and
``subtitles/*_en.json``. ``broken=True`` also adds a question whose video is missing and
one whose video is truncated (corrupt), to exercise error rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vidsieve.synth import Scene, make_scene_video

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "grey", "pink"]


def _plan(seed: int, n_videos: int) -> list[list[Scene]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    plans = []
    for v in range(n_videos):
        n_scenes = int(rng.integers(2, 5))
        looks = rng.choice(len(COLOURS), size=n_scenes, replace=False)
        scenes = [Scene(frames=int(rng.integers(8, 16)), look=int(lk)) for lk in looks]
        if v % 2 == 1:  # a short needle event in odd videos
            scenes.insert(1, Scene(frames=3, look=7, needle=True))
        plans.append(scenes)
    return plans


def _srt_time(t: float) -> str:
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def _lvb_time(t: float) -> str:
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:06.3f}"


def _scene_spans(scenes: list[Scene], fps: float) -> list[tuple[float, float, Scene]]:
    out, t = [], 0.0
    for s in scenes:
        out.append((t, t + s.frames / fps, s))
        t += s.frames / fps
    return out


def _questions(scenes: list[Scene]) -> list[tuple[str, list[str], int]]:
    """(question, option texts, index of the correct option) about one video."""
    regular = [s for s in scenes if not s.needle]
    n = len(regular)
    counts = sorted({n, n + 1, max(1, n - 1), n + 2} | {n + 3})[:4]
    first = COLOURS[regular[0].look]
    others = [c for c in COLOURS if c != first][:3]
    has_needle = any(s.needle for s in scenes)
    return [
        ("How many different scenes does the video show?", [str(c) for c in counts], counts.index(n)),
        ("Which colour is the background of the first scene?", [first, *others], 0),
        ("Does a red-and-white checkerboard flash on screen?", ["Yes", "No"], 0 if has_needle else 1),
    ]


def _write_videos(root: Path, sub: str, plans: list[list[Scene]], fps: float, size: tuple[int, int]) -> list[Path]:
    paths = []
    for i, scenes in enumerate(plans):
        p = root / sub / f"vid{i:03d}.mp4"
        make_scene_video(p, scenes, fps=fps, size=size)
        paths.append(p)
    return paths


def _break(root: Path, sub: str, name: str, src: Path) -> None:
    data = src.read_bytes()
    (root / sub / name).write_bytes(data[: max(len(data) // 6, 64)])


def make_videomme(
    root: str | Path, *, n_videos: int = 3, fps: float = 8.0, size: tuple[int, int] = (64, 96),
    seed: int = 0, broken: bool = False,
) -> Path:
    """A miniature Video-MME (3 questions per video); returns ``root``."""
    import pandas as pd

    root = Path(root)
    plans = _plan(seed, n_videos)
    paths = _write_videos(root, "data", plans, fps, size)
    (root / "subtitle").mkdir(parents=True, exist_ok=True)
    durations = ["short", "medium", "long"]
    domains = ["Knowledge", "Film & Television", "Sports Competition"]
    subcats = ["Astronomy", "Animation", "Football"]
    tasks = ["Counting Problem", "Attribute Perception", "Temporal Perception"]
    recs: list[dict[str, Any]] = []
    vids = [p.stem for p in paths]
    if broken:
        _break(root, "data", "vidcorrupt.mp4", paths[0])
        plans = [*plans, plans[0], plans[0]]
        vids = [*vids, "vidmissing", "vidcorrupt"]
    for v, (vid, scenes) in enumerate(zip(vids, plans)):
        lines = []
        for j, (a, b, s) in enumerate(_scene_spans(scenes, fps)):
            txt = "Something flashes!" if s.needle else f"Now the {COLOURS[s.look]} scene."
            lines.append(f"{j + 1}\n{_srt_time(a)} --> {_srt_time(b)}\n<font color=\"white\" size=\".72c\">{txt}</font>\n")
        (root / "subtitle" / f"{vid}.srt").write_text("\n".join(lines), encoding="utf-8")
        for k, (q, opts, correct) in enumerate(_questions(scenes)):
            letters = [chr(ord("A") + i) for i in range(len(opts))]
            recs.append({
                "video_id": f"{v + 1:03d}", "duration": durations[v % 3], "domain": domains[v % 3],
                "sub_category": subcats[v % 3], "url": f"https://example.invalid/{vid}",
                "videoID": vid, "question_id": f"{v + 1:03d}-{k + 1}", "task_type": tasks[k],
                "question": q, "options": [f"{ltr}. {o}." for ltr, o in zip(letters, opts)],
                "answer": letters[correct],
            })
    (root / "videomme").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(recs).to_parquet(root / "videomme" / "test-00000-of-00001.parquet", index=False)
    return root


LVB_CATEGORIES = ["S2E", "S2O", "S2A", "E2O", "O2E", "T2E", "T2O", "T2A", "E3E", "O3O", "SSS", "SOS", "SAA", "T3E", "T3O", "TOS", "TAA"]


def make_longvideobench(
    root: str | Path, *, n_videos: int = 3, fps: float = 8.0, size: tuple[int, int] = (64, 96),
    seed: int = 1, broken: bool = False,
) -> Path:
    """A miniature LongVideoBench validation set (3 questions per video); returns ``root``."""
    root = Path(root)
    plans = _plan(seed, n_videos)
    paths = _write_videos(root, "videos", plans, fps, size)
    (root / "subtitles").mkdir(parents=True, exist_ok=True)
    groups = [15, 60, 600, 3600]
    names = [p.name for p in paths]
    if broken:
        _break(root, "videos", "vidcorrupt.mp4", paths[0])
        plans = [*plans, plans[0], plans[0]]
        names = [*names, "vidmissing.mp4", "vidcorrupt.mp4"]
    recs: list[dict[str, Any]] = []
    for v, (name, scenes) in enumerate(zip(names, plans)):
        stem = Path(name).stem
        offset = 2.0 * (v % 2)  # subtitles on the original clock, video starts `offset` s in
        subs = [
            {"start": _lvb_time(a + offset), "end": _lvb_time(b + offset),
             "line": "Something flashes!" if s.needle else f"Now the {COLOURS[s.look]} scene."}
            for a, b, s in _scene_spans(scenes, fps)
        ]
        sub_name = f"{stem}_en.json"
        (root / "subtitles" / sub_name).write_text(json.dumps(subs), encoding="utf-8")
        duration = sum(s.frames for s in scenes) / fps
        for k, (q, opts, correct) in enumerate(_questions(scenes)):
            if k == 1:  # five candidates, as many LVB questions have
                opts = [*opts, "white"]
            rec: dict[str, Any] = {
                "video_id": stem, "id": f"{stem}_{k}", "video_path": name, "subtitle_path": sub_name,
                "question": q, "question_wo_referring_query": q, "candidates": opts,
                "correct_choice": correct, "duration_group": groups[v % 4],
                "question_category": LVB_CATEGORIES[(3 * v + k) % len(LVB_CATEGORIES)],
                "starting_timestamp_for_subtitles": offset, "duration": duration,
                "topic_category": "synthetic", "level": "L1-Perception", "position": [1],
            }
            for i in range(5):
                rec[f"option{i}"] = opts[i] if i < len(opts) else "N/A"
            recs.append(rec)
    (root / "lvb_val.json").write_text(json.dumps(recs, indent=1), encoding="utf-8")
    return root


def make_miniature(root: str | Path, *, broken: bool = False) -> dict[str, Path]:
    """Both miniatures under ``root/videomme`` and ``root/longvideobench``."""
    root = Path(root)
    return {
        "videomme": make_videomme(root / "videomme", broken=broken),
        "longvideobench": make_longvideobench(root / "longvideobench", broken=broken),
    }

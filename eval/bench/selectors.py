"""Model-free benchmark of frame selectors: ``vidsieve bench selectors``.

Long synthetic videos with known structure (``vidsieve.synth`` rendering) are generated, their
candidate frames are encoded with the real feature pipeline (default: ``pixel`` encoder at
1 fps), and every registered frame selector is run at several frame budgets. Scores need no
model: they come from the ground truth of the generated videos.

The benchmark set
-----------------
Each video lasts ``minutes`` and is a sequence of *scene occurrences* of unequal length
(log-normal, median about ``mean_scene_s`` seconds, clipped to 3-90 s). Some scene looks come
back later in the video (a *repeated scene*: same background, texture and moving disc, as a
cut back to an earlier shot); about ``repeat_share`` of the occurrences are repeats and two
consecutive occurrences never share a look. Inside scenes, short *needle* events (1-3 s, i.e.
2-6 source frames at 2 fps) show a distinct object over the host scene's background; there are
``needle_kinds`` kinds (objects) per video and each kind occurs once or twice. Sizes are small
(``64 x 96`` px, 2 fps source) so generation and decoding take a second or two per video.

Tasks and metrics (per video, selector and budget)
--------------------------------------------------
*Query-free run* (``select(features, budget=b)``):

- ``coverage``: share of the video's distinct scene **looks** with at least one chosen frame.
  A repeated scene counts once, so a selector that spends frames on a repeat rather than on an
  unseen scene gains nothing (repeats carry no new content).
- ``coverage_occ``: share of scene **occurrences** (each contiguous appearance, repeats counted
  separately) with at least one chosen frame: plain temporal coverage.
  Frames that show a needle count for neither (they show the event, not the scene).
- ``redundancy``: mean pairwise cosine similarity of the chosen frames' feature vectors
  (off-diagonal pairs; NaN with fewer than two frames). Lower = more diverse.

*Needle runs* (one per needle kind; the query is an image of that kind's object rendered on a
background that appears nowhere in the video, embedded with the same encoder, so the query
is the object, not a copy of the needle frames):

- ``needle_recall``, ``needle_precision``, ``needle_f1``: temporal recall/precision/F1 in the
  sense of T*'s LV-Haystack evaluation. The annotated frames are every source frame of every
  occurrence of the queried kind. A chosen frame is a hit if it lies within ``tolerance_s``
  seconds of an annotated frame; recall = share of annotated frames with a chosen frame within
  the tolerance; precision = share of chosen frames within the tolerance of an annotated frame.
  (The released LV-Haystack script divides the count of *covered annotated* frames by the
  number of chosen frames for precision; here precision counts chosen frames, so it is a true
  share in ``[0, 1]``.) The default tolerance 0.5 s is half the candidate spacing at 1 fps: a
  chosen frame counts only if it shows the needle or borders it. LV-Haystack uses 5 s on real
  videos where the searched object stays in view; here a needle lasts 1-3 s, and a 5 s
  tolerance would credit frames that never show it.
- ``needle_hit``: share of needle occurrences with at least one chosen frame within the
  tolerance (did the selection see the event at all).
  Needle metrics are averaged over the video's queries.

A selector whose class declares ``uses_query = False`` is called once per budget: its
query-free selection is also scored on the needles (that is what it returns for any query).

*Cost*: ``select_s_per_hour``: mean seconds of ``FrameSelector.select`` per call (query-free
and needle calls together; feature extraction excluded, it is shared by all selectors)
divided by the video length in hours.

Every metric is averaged over videos. ``*_vs_uniform`` is the ratio of a selector's mean to the
``uniform`` selector's mean at the same budget; ``*_verdict`` compares the per-video paired
differences with uniform: ``better``/``worse`` when the mean difference is more than two
standard errors from zero (and above 1e-9), else ``same``. A selector that raises on some
input gets an error row (its message in ``error``), never a crash.
"""

from __future__ import annotations

import fnmatch
import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from vidsieve.encoders.base import FrameEncoder
from vidsieve.errors import ParameterError
from vidsieve.synth import render_frame, write_video
from vidsieve.types import Budget, FrameFeatures, Query
from vidsieve.versions import git_commit, machine, package_versions

from ._csv import write_csv

#: frame budgets run by default.
DEFAULT_BUDGETS: tuple[int, ...] = (8, 16, 32, 64)
#: the reference every ratio and verdict is computed against.
BASELINE = "uniform"
#: number of distinct needle objects :func:`render_needle` can draw.
NEEDLE_KINDS = 4
#: look id of the query images' background; scene looks are drawn from ``[0, 10**6)``.
QUERY_LOOK = 987_654_321

#: metrics in the summary, with whether larger is better (None: no direction, e.g. time).
METRICS: dict[str, bool | None] = {
    "coverage": True,
    "coverage_occ": True,
    "needle_recall": True,
    "needle_precision": True,
    "needle_f1": True,
    "needle_hit": True,
    "redundancy": False,
    "select_s_per_hour": None,
    "k_chosen": None,  # frames actually returned by the query-free call (< budget for rate rules)
}
#: metrics with a ``*_vs_uniform`` ratio and a ``*_verdict`` column.
COMPARED = ("coverage", "coverage_occ", "needle_recall", "needle_f1", "needle_hit", "redundancy")

FeatureFn = Callable[[Path, FrameEncoder, float], FrameFeatures]


@dataclass(frozen=True)
class BenchConfig:
    """Size and rules of the benchmark set (all defaults are what the CLI runs)."""

    videos: int = 6
    minutes: float = 10.0
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    seed: int = 0
    size: tuple[int, int] = (64, 96)  # (H, W) of the generated videos
    src_fps: float = 2.0
    cand_fps: float = 1.0
    tolerance_s: float = 0.5
    needle_kinds: int = 3
    mean_scene_s: float = 20.0
    repeat_share: float = 0.4

    def __post_init__(self) -> None:
        if self.videos < 1:
            raise ParameterError(f"The benchmark needs at least one video; got videos={self.videos}.")
        if not self.minutes > 0:
            raise ParameterError(f"minutes must be > 0; got {self.minutes}.")
        if self.minutes * 60 < 20:
            raise ParameterError(f"Videos must last at least 20 s (got {self.minutes} min): "
                                 "they hold several scenes and needles.")
        if not self.budgets or any(int(b) < 1 for b in self.budgets):
            raise ParameterError(f"Budgets must be ints >= 1; got {list(self.budgets)}.")
        if not 1 <= self.needle_kinds <= NEEDLE_KINDS:
            raise ParameterError(f"needle_kinds must be in 1..{NEEDLE_KINDS}; got {self.needle_kinds}.")
        if self.size[0] % 2 or self.size[1] % 2 or min(self.size) < 16:
            raise ParameterError(f"size must be even and >= 16 px per side; got {self.size}.")
        if not (self.src_fps > 0 and self.cand_fps > 0 and self.tolerance_s >= 0):
            raise ParameterError("src_fps and cand_fps must be > 0 and tolerance_s >= 0.")
        if not 0 <= self.repeat_share < 1:
            raise ParameterError(f"repeat_share must be in [0, 1); got {self.repeat_share}.")


# ---------------------------------------------------------------------------------------------
# The benchmark set
# ---------------------------------------------------------------------------------------------


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
        return {"path": str(self.path), "fps": self.fps, "size": list(self.size),
                "scenes": [asdict(s) for s in self.scenes], "needles": [asdict(n) for n in self.needles]}


_NEEDLE_COLOURS = {
    1: ((30, 90, 250), (250, 220, 30)),   # blue / yellow rings
    2: ((30, 200, 60), (20, 20, 20)),     # green / black bars
    3: ((240, 40, 220), (40, 230, 230)),  # magenta / cyan diagonal stripes
}


def render_needle(kind: int, look: int, t: int, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``[H, W, 3]``: needle object ``kind`` over the background of scene look ``look``.

    Kind 0 is :func:`vidsieve.synth.render_frame`'s own needle (red/white checker square);
    kinds 1-3 paint other patterns and colours into the same central square.
    """
    if not 0 <= kind < NEEDLE_KINDS:
        raise ParameterError(f"needle kind must be in 0..{NEEDLE_KINDS - 1}; got {kind}.")
    img = render_frame(look, t, size, needle=True)
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


def query_image(kind: int, size: tuple[int, int]) -> np.ndarray:
    """The visual query for needle ``kind``: its object over a background no video uses."""
    return render_needle(kind, QUERY_LOOK, 0, size)


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


def make_bench_video(path: str | Path, rng: np.random.Generator, cfg: BenchConfig) -> BenchVideo:
    """Plan, render (frame by frame) and encode one benchmark video to H.264 mp4."""
    scenes, needles = plan_video(rng, cfg)
    video = BenchVideo(path=Path(path), fps=cfg.src_fps, size=cfg.size, scenes=scenes, needles=needles)
    needle_at = {f: n.kind for n in needles for f in range(n.start, n.start + n.frames)}

    def frames():  # type: ignore[no-untyped-def]
        for s in scenes:
            for t in range(s.frames):  # t runs on through a needle: the scene goes on under it
                kind = needle_at.get(s.start + t)
                yield render_frame(s.look, t, cfg.size) if kind is None else render_needle(kind, s.look, t, cfg.size)

    write_video(path, frames(), cfg.src_fps, cfg.size)
    return video


# ---------------------------------------------------------------------------------------------
# Metrics (pure functions on arrays; the tests check them on hand-built selections)
# ---------------------------------------------------------------------------------------------


def scene_coverage(chosen: np.ndarray, frame_scene: np.ndarray, scene_look: np.ndarray) -> tuple[float, float]:
    """(look coverage, occurrence coverage) of the chosen source frames.

    chosen:      int ``[K]`` source frame indices.
    frame_scene: int ``[N]`` scene occurrence per source frame (-1 = counts for no scene).
    scene_look:  int ``[S]`` look of each occurrence (equal looks = a repeated scene).
    Returns shares in ``[0, 1]``: distinct looks hit / distinct looks, occurrences hit / S.
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    scene_look = np.asarray(scene_look)
    hit = np.unique(np.asarray(frame_scene)[chosen]) if chosen.size else np.zeros(0, np.int64)
    hit = hit[hit >= 0]
    n_occ = scene_look.shape[0]
    n_looks = np.unique(scene_look).shape[0]
    if n_occ == 0:
        return math.nan, math.nan
    return np.unique(scene_look[hit]).shape[0] / n_looks, hit.shape[0] / n_occ


def temporal_prf(chosen_t: np.ndarray, gt_t: np.ndarray, tolerance: float) -> tuple[float, float, float]:
    """Temporal (precision, recall, F1) of chosen frame times against annotated frame times.

    chosen_t: float ``[K]`` seconds; gt_t: float ``[G]`` seconds; a pair matches when
    ``|chosen - gt| <= tolerance`` (+1e-9). Precision = chosen frames matching some annotated
    frame / K; recall = annotated frames matched by some chosen frame / G; F1 their harmonic
    mean (0 when both are 0). NaN recall/F1 when ``G == 0``; NaN precision when ``K == 0``.
    """
    c = np.asarray(chosen_t, dtype=np.float64).reshape(-1)
    g = np.asarray(gt_t, dtype=np.float64).reshape(-1)
    if c.size == 0 or g.size == 0:
        p = math.nan if c.size == 0 else 0.0
        r = math.nan if g.size == 0 else 0.0
        return p, r, math.nan
    close = np.abs(c[:, None] - g[None, :]) <= tolerance + 1e-9  # [K, G]
    p = float(close.any(axis=1).mean())
    r = float(close.any(axis=0).mean())
    f1 = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    return p, r, f1


def event_hit_rate(chosen_t: np.ndarray, intervals: np.ndarray, tolerance: float) -> float:
    """Share of events ``[E, 2]`` (first, last time) with a chosen time within the tolerance."""
    iv = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    if iv.shape[0] == 0:
        return math.nan
    c = np.asarray(chosen_t, dtype=np.float64).reshape(-1, 1)
    inside = (c >= iv[None, :, 0] - tolerance - 1e-9) & (c <= iv[None, :, 1] + tolerance + 1e-9)
    return float(inside.any(axis=0).mean())


def redundancy(embeddings: np.ndarray) -> float:
    """Mean pairwise cosine similarity of ``[K, D]`` vectors (off-diagonal); NaN if K < 2."""
    x = np.asarray(embeddings, dtype=np.float64)
    k = x.shape[0]
    if k < 2:
        return math.nan
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    s = x.sum(axis=0)
    # sum over all ordered pairs i != j of x_i.x_j = |sum|^2 - sum |x_i|^2
    return float((s @ s - (x * x).sum()) / (k * (k - 1)))


# ---------------------------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------------------------


def pipeline_features(path: Path, encoder: FrameEncoder, fps: float) -> FrameFeatures:
    """The real feature pipeline (:func:`vidsieve.features.extract_features`), uncached."""
    from vidsieve.features import extract_features

    return extract_features(path, encoder, fps=fps, cache=False, progress=False)


def resolve_selectors(patterns: str | Sequence[str] | None) -> list[str]:
    """Registered frame-selector names matching comma-separated globs (all when None).

    The baseline ``uniform`` is always included (every ratio is taken against it).
    """
    from vidsieve.registry import list_selectors

    names = list_selectors()
    if patterns is None:
        chosen = list(names)
    else:
        pats = [p.strip() for p in (patterns.split(",") if isinstance(patterns, str) else patterns) if p.strip()]
        chosen = []
        for p in pats:
            hit = [n for n in names if fnmatch.fnmatch(n, p)]
            if not hit:
                raise ParameterError(f"No frame selector matches {p!r}. Available: {', '.join(names)}.")
            chosen += [n for n in hit if n not in chosen]
    if BASELINE not in chosen:
        chosen.insert(0, BASELINE)
    return chosen


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def _select_rows(
    selector: Any, feats: FrameFeatures, budget: int, query: Query | None, notes: list[str] | None = None
) -> tuple[np.ndarray | None, float, str]:
    """(rows, seconds, error message); ``notes`` collects the selection's ``extras["warning"]``."""
    try:
        sel = selector.select(feats, budget=Budget(frames=budget), query=query)
    except Exception as e:  # any failure of a selector is a result, not a crash
        return None, math.nan, _err(e)
    if notes is not None and sel.extras.get("warning"):
        notes.append(str(sel.extras["warning"])[:200])
    return np.asarray(sel.rows, dtype=np.int64), float(sel.timings.get("select", math.nan)), ""


def evaluate_video(
    video: BenchVideo,
    feats: FrameFeatures,
    queries: dict[int, Query],
    selector_name: str,
    budgets: Sequence[int],
    tolerance: float,
    *,
    warmup: bool = False,
) -> list[dict[str, Any]]:
    """Rows (one per budget) of metrics of one selector on one video (see module docstring).

    ``warmup``: make one untimed call first, so one-off costs (lazy imports, compilation)
    are not charged to the first timed call.
    """
    from vidsieve.registry import create_selector

    base = {"selector": selector_name, "video": video.path.stem, "duration_s": video.duration,
            "candidates": len(feats), "scenes": len(video.scenes),
            "looks": int(np.unique(video.scene_looks()).size), "needles": len(video.needles)}
    try:
        selector = create_selector(selector_name)
    except Exception as e:
        return [{**base, "budget": int(b), "params": "", "error": "create: " + _err(e)} for b in budgets]
    if warmup:
        q0 = next(iter(queries.values()), None) if selector.uses_query else None
        _select_rows(selector, feats, int(budgets[0]), q0)
    frame_scene, looks = video.frame_scene(), video.scene_looks()
    hours = video.duration / 3600.0
    rows = []
    for b in budgets:
        row: dict[str, Any] = {**base, "budget": int(b), "params": repr(selector)}
        errors: list[str] = []
        notes: list[str] = []
        times: list[float] = []
        r, dt, err = _select_rows(selector, feats, int(b), None, notes)
        free_rows = r
        if r is None:
            errors.append("query-free: " + err)
            row.update(k_chosen=math.nan, coverage=math.nan, coverage_occ=math.nan, redundancy=math.nan)
        else:
            times.append(dt)
            cov, cov_occ = scene_coverage(feats.indices[r], frame_scene, looks)
            row.update(k_chosen=int(r.size), coverage=cov, coverage_occ=cov_occ,
                       redundancy=redundancy(feats.embeddings[r]))
        per_q: list[tuple[float, float, float, float]] = []
        for kind, q in queries.items():
            if not selector.uses_query and free_rows is not None:
                r = free_rows  # declared query-free: the query-free selection is its answer
            else:
                r, dt, err = _select_rows(selector, feats, int(b), q, notes)
                if r is None:
                    errors.append(f"needle {kind}: " + err)
                    continue
                times.append(dt)
            t = feats.timestamps[r]
            p, rec, f1 = temporal_prf(t, video.needle_times(kind), tolerance)
            per_q.append((p, rec, f1, event_hit_rate(t, video.needle_intervals(kind), tolerance)))
        if per_q:
            arr = np.asarray(per_q, dtype=np.float64)
            row.update(needle_precision=arr[:, 0].mean(), needle_recall=arr[:, 1].mean(),
                       needle_f1=arr[:, 2].mean(), needle_hit=arr[:, 3].mean())
        else:
            row.update(needle_precision=math.nan, needle_recall=math.nan, needle_f1=math.nan, needle_hit=math.nan)
        row["select_s_per_hour"] = float(np.mean(times)) / hours if times else math.nan
        row["error"] = " | ".join(dict.fromkeys(errors))  # dedupe, keep order
        row["notes"] = " | ".join(dict.fromkeys(notes))
        rows.append(row)
    return rows


@dataclass
class BenchResult:
    """Per-video rows, the per-(selector, budget) summary, run metadata and written files."""

    runs: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    meta: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)


def run_benchmark(
    cfg: BenchConfig,
    out_dir: str | Path,
    *,
    selectors: str | Sequence[str] | None = None,
    encoder: FrameEncoder | None = None,
    feature_fn: FeatureFn | None = None,
    progress: bool = True,
) -> BenchResult:
    """Generate the benchmark set under ``out_dir/videos``, run the selectors, write outputs.

    selectors:  comma-separated names/globs (default: every registered frame selector).
    encoder:    frame encoder (default ``pixel`` with its default parameters).
    feature_fn: ``(video_path, encoder, fps) -> FrameFeatures`` (default: the real pipeline).
    Writes ``runs.csv`` (one row per video, selector, budget), ``summary.csv`` (means over
    videos with ratios to uniform and run metadata), ``meta.json`` and ``selectors.png``.
    """
    from vidsieve.registry import create_encoder

    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    names = resolve_selectors(selectors)
    enc = encoder if encoder is not None else create_encoder("pixel")
    feature_fn = feature_fn or pipeline_features
    budgets = [int(b) for b in cfg.budgets]
    rng = np.random.default_rng(cfg.seed)
    runs: list[dict[str, Any]] = []
    shapes: dict[str, Any] = {}
    t_gen = t_feat = 0.0
    bar = tqdm(total=cfg.videos * len(names), desc="bench selectors", unit="run", disable=not progress)
    for v in range(cfg.videos):
        bar.set_postfix_str(f"video {v + 1}/{cfg.videos}: generate + features")
        t0 = time.perf_counter()
        video = make_bench_video(out / "videos" / f"bench_{cfg.seed}_{v:03d}.mp4", np.random.default_rng(rng.integers(2**63)), cfg)
        t1 = time.perf_counter()
        feats = feature_fn(video.path, enc, cfg.cand_fps)
        t2 = time.perf_counter()
        t_gen, t_feat = t_gen + t1 - t0, t_feat + t2 - t1
        shapes.setdefault("feature_dim", int(feats.embeddings.shape[1]))
        shapes.setdefault("candidates", []).append(len(feats))
        queries = {k: enc.embed_query(query_image(k, cfg.size)) for k in video.kinds()}
        (out / "videos" / f"{video.path.stem}.json").write_text(json.dumps(video.to_dict()))
        for name in names:
            bar.set_postfix_str(f"video {v + 1}/{cfg.videos}: {name}")
            runs += evaluate_video(video, feats, queries, name, budgets, cfg.tolerance_s, warmup=v == 0)
            bar.update(1)
    bar.close()
    meta = run_metadata(cfg, enc, shapes, {"generate_s": t_gen, "features_s": t_feat})
    summary = summarize(runs, names, budgets)
    result = BenchResult(runs=runs, summary=summary, meta=meta)
    result.paths = write_outputs(result, out)
    return result


# ---------------------------------------------------------------------------------------------
# Aggregation and outputs
# ---------------------------------------------------------------------------------------------


def _ratio(x: float, ref: float) -> float:
    """``x / ref``; ``inf`` for ``x > 0 == ref``, NaN when undefined (``0 / 0``, NaNs)."""
    if not (np.isfinite(x) and np.isfinite(ref)):
        return math.nan
    if ref == 0:
        return math.inf if x > 0 else math.nan
    return x / ref


def _verdict(diffs: np.ndarray, higher_better: bool) -> str:
    d = diffs[np.isfinite(diffs)]
    if d.size == 0:
        return "n/a"
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else 0.0
    if abs(mean) <= 1e-9 or abs(mean) <= 2 * se:
        return "same"
    return "better" if (mean > 0) == higher_better else "worse"


def summarize(runs: list[dict[str, Any]], names: Sequence[str], budgets: Sequence[int]) -> list[dict[str, Any]]:
    """Mean of every metric over videos per (selector, budget), with ratios/verdicts vs uniform."""
    by: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in runs:
        by.setdefault((r["selector"], int(r["budget"])), []).append(r)

    def vec(rows: list[dict[str, Any]], m: str) -> np.ndarray:
        return np.array([float(r.get(m, math.nan)) for r in rows], dtype=np.float64)

    out = []
    for b in budgets:
        ref = {r["video"]: r for r in by.get((BASELINE, b), [])}
        for n in names:
            rows = by.get((n, b), [])
            s: dict[str, Any] = {"selector": n, "budget": b, "n_videos": len(rows),
                                 "errors": sum(1 for r in rows if r.get("error"))}
            for m in METRICS:
                x = vec(rows, m)
                s[m] = float(np.nanmean(x)) if np.isfinite(x).any() else math.nan
            for m in COMPARED:
                base = vec(list(ref.values()), m)
                bmean = float(np.nanmean(base)) if np.isfinite(base).any() else math.nan
                s[f"{m}_vs_uniform"] = _ratio(s[m], bmean)
                paired = np.array([float(r.get(m, math.nan)) - float(ref[r["video"]].get(m, math.nan))
                                   for r in rows if r["video"] in ref], dtype=np.float64)
                s[f"{m}_verdict"] = _verdict(paired, bool(METRICS[m]))
            errs = [r["error"] for r in rows if r.get("error")]
            s["first_error"] = errs[0] if errs else ""
            notes = [r["notes"] for r in rows if r.get("notes")]
            s["notes"] = notes[0] if notes else ""
            out.append(s)
    return out


def run_metadata(cfg: BenchConfig, encoder: FrameEncoder, shapes: dict[str, Any], times: dict[str, float]) -> dict[str, Any]:
    """Machine, versions, commit, seed and shapes recorded with every result."""
    cands = shapes.get("candidates", [])
    vers = package_versions(("vidsieve", "numpy", "torch", "decord", "scikit-learn", "POT"))
    mach = machine()
    return {
        "benchmark": "selectors",
        "machine": f"{platform.node()} | {mach.get('platform', '')} | {mach.get('processor', '')} | "
                   f"cpus={_cpus()} | torch_threads={mach.get('torch_threads', '?')}",
        "python": mach.get("python", platform.python_version()),
        **{f"v_{k}": v for k, v in vers.items()},
        "commit": git_commit(),
        "seed": cfg.seed,
        "videos": cfg.videos,
        "minutes": cfg.minutes,
        "video_hw": f"{cfg.size[0]}x{cfg.size[1]}",
        "src_fps": cfg.src_fps,
        "cand_fps": cfg.cand_fps,
        "candidates_mean": float(np.mean(cands)) if cands else math.nan,
        "feature_dim": shapes.get("feature_dim", math.nan),
        "encoder": repr(encoder),
        "tolerance_s": cfg.tolerance_s,
        "needle_kinds": cfg.needle_kinds,
        "mean_scene_s": cfg.mean_scene_s,
        "repeat_share": cfg.repeat_share,
        "budgets": ",".join(str(b) for b in cfg.budgets),
        **{k: round(v, 3) for k, v in times.items()},
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


def _write_csv(path: Path, rows: list[dict[str, Any]], extra: dict[str, Any], env: dict[str, Any]) -> None:
    write_csv([{**{k: _fmt(v) for k, v in r.items()}, **extra} for r in rows], path, env=env)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def write_outputs(result: BenchResult, out: Path) -> dict[str, Path]:
    """``summary.csv``, ``runs.csv``, ``meta.json`` and ``selectors.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out / "summary.csv", "runs": out / "runs.csv", "meta": out / "meta.json",
             "plot": out / "selectors.png"}
    # the meta's own machine / commit columns win; versions and (in runs.csv) machine are added
    env = {"machine": machine(), "versions": package_versions(), "commit": result.meta["commit"]}
    _write_csv(paths["summary"], result.summary, result.meta, env)
    short = {k: result.meta[k] for k in ("commit", "seed", "encoder", "tolerance_s")}
    _write_csv(paths["runs"], result.runs, short, env)
    paths["meta"].write_text(json.dumps(result.meta, indent=2, default=str))
    plot_summary(result.summary, paths["plot"], title=_plot_title(result.meta))
    return paths


def _plot_title(meta: dict[str, Any]) -> str:
    return (f"vidsieve bench selectors: {meta['videos']} synthetic videos x {meta['minutes']} min, "
            f"{meta['cand_fps']} fps candidates, encoder {meta['encoder']}, tolerance {meta['tolerance_s']} s, "
            f"seed {meta['seed']}, commit {meta['commit']}")


_PANELS = (
    ("coverage", "scene coverage (distinct looks)", False),
    ("coverage_occ", "scene coverage (occurrences)", False),
    ("needle_recall", "needle temporal recall", False),
    ("needle_f1", "needle temporal F1", False),
    ("redundancy", "redundancy (mean pairwise cos, lower = better)", False),
    ("select_s_per_hour", "selection s per video-hour (log)", True),
)


def plot_summary(summary: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """One panel per metric (metric vs budget, one line per selector; uniform dashed black)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["selector"] for r in summary))
    budgets = sorted({int(r["budget"]) for r in summary})
    # tab10 first (most distinct), then the light tab20 shades; uniform is drawn first, thick
    # and dashed, so selectors that coincide with it stay visible on top of it.
    palette = [plt.get_cmap("tab10")(i) for i in range(10)] + [plt.get_cmap("tab20")(2 * i + 1) for i in range(10)]
    markers = "osD^v<>pPXh*"
    others = [n for n in names if n != BASELINE]
    order = ([BASELINE] if BASELINE in names else []) + others
    fig, axes = plt.subplots(2, 3, figsize=(16, 9.5), dpi=110)
    for ax, (m, label, logy) in zip(axes.ravel(), _PANELS):
        for n in order:
            pts = [(int(r["budget"]), float(r[m])) for r in summary if r["selector"] == n]
            pts = [(b, y) for b, y in sorted(pts) if np.isfinite(y) and (not logy or y > 0)]
            if not pts:
                continue
            xs, ys = zip(*pts)
            if n == BASELINE:
                ax.plot(xs, ys, color="0.15", ls="--", lw=3.2, marker="o", ms=7, label=n, zorder=1)
            else:
                i = others.index(n)
                ax.plot(xs, ys, color=palette[i % len(palette)], lw=1.7, marker=markers[i % len(markers)],
                        ms=5, label=n, zorder=2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets)
        ax.set_xticklabels([str(b) for b in budgets])
        ax.set_xlabel("frame budget")
        ax.set_title(label, fontsize=11)
        ax.grid(alpha=0.3)
        if logy:
            ax.set_yscale("log")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    for ax in axes.ravel()[1:]:  # a selector may be missing from the first panel (errors)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=10, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03 + 0.035 * math.ceil(len(labels) / 7), 1, 0.96))
    fig.savefig(path)
    plt.close(fig)
    return path


def format_table(summary: list[dict[str, Any]]) -> str:
    """The summary as a fixed-width text table (k_out = mean frames returned by the query-free
    call; x_uni = ratio to uniform at the same budget; a '+'/'-' after a ratio marks a paired
    difference beyond two standard errors)."""
    cols = [("selector", "selector", "s"), ("budget", "k", "d"), ("k_chosen", "k_out", ".1f"),
            ("coverage", "cover", ".3f"),
            ("coverage_vs_uniform", "x_uni", "r"), ("coverage_occ", "occ", ".3f"),
            ("needle_recall", "recall", ".3f"), ("needle_recall_vs_uniform", "x_uni", "r"),
            ("needle_f1", "F1", ".3f"), ("needle_f1_vs_uniform", "x_uni", "r"),
            ("needle_hit", "hit", ".3f"), ("redundancy", "redund", ".3f"),
            ("select_s_per_hour", "s/hour", ".3g"), ("errors", "err", "d")]
    verdict_of = {"coverage_vs_uniform": "coverage_verdict", "needle_recall_vs_uniform": "needle_recall_verdict",
                  "needle_f1_vs_uniform": "needle_f1_verdict"}
    width = max([len(str(r["selector"])) for r in summary] + [8])
    lines = []
    head = []
    for key, h, _ in cols:
        head.append(f"{h:<{width}}" if key == "selector" else f"{h:>7}")
    lines.append(" ".join(head))
    prev_b = None
    for r in summary:
        if prev_b is not None and r["budget"] != prev_b:
            lines.append("")
        prev_b = r["budget"]
        cells = []
        for key, _, f in cols:
            v = r.get(key)
            if key == "selector":
                cells.append(f"{v:<{width}}")
            elif f == "r":
                mark = {"better": "+", "worse": "-"}.get(r.get(verdict_of[key], ""), " ")
                shown = f"{v:>6.2f}" if isinstance(v, float) and not math.isnan(v) else f"{'-':>6}"
                cells.append(shown + mark)
            elif isinstance(v, float) and not np.isfinite(v):
                cells.append(f"{'-':>7}")
            else:
                cells.append(f"{v:>7{f}}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def verdict_lines(summary: list[dict[str, Any]]) -> list[str]:
    """One plain sentence per selector: where it beats, matches or loses to uniform."""
    out = []
    names = list(dict.fromkeys(r["selector"] for r in summary))
    for n in names:
        if n == BASELINE:
            continue
        rows = [r for r in summary if r["selector"] == n]
        parts = []
        for m, label in (("coverage", "coverage"), ("needle_recall", "needle recall")):
            groups: dict[str, list[str]] = {}
            for r in rows:
                groups.setdefault(r[f"{m}_verdict"], []).append(str(r["budget"]))
            parts.append(f"{label}: " + ", ".join(
                f"{v} than uniform at k={'/'.join(bs)}" if v in ("better", "worse") else f"{v} at k={'/'.join(bs)}"
                for v, bs in groups.items()))
        errs = sum(int(r["errors"]) for r in rows)
        tail = f"; {errs} error rows ({rows[0]['first_error'] or next((r['first_error'] for r in rows if r['first_error']), '')})" if errs else ""
        note = next((r["notes"] for r in rows if r.get("notes")), "")
        out.append(f"{n}: " + "; ".join(parts) + tail + (f"\n    note from the selector: {note}" if note else ""))
    return out

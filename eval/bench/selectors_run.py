"""The runner of ``vidsieve bench selectors``: features, selectors, per-video rows, summaries.

See :mod:`vidsieve.eval.bench.selectors` for the set, the tasks and the metrics.
"""

from __future__ import annotations

import fnmatch
import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from vidsieve.encoders.base import FrameEncoder
from vidsieve.errors import ParameterError
from vidsieve.types import Budget, FrameFeatures, Query
from vidsieve.versions import git_commit, machine, package_versions

from ._csv import write_csv
from .selectors_config import BASELINE, COMPARED, METRICS, WITH_CI, BenchConfig
from .selectors_data import (
    BenchVideo,
    make_bench_video,
    make_real_video,
    query_image,
    real_clips_available,
)
from .selectors_metrics import (
    _ratio,
    _verdict,
    bootstrap_ci,
    event_hit_rate,
    redundancy,
    scene_coverage,
    shot_separation,
    shots_hit,
    temporal_prf,
)
from .selectors_plot import plot_summary, plot_title

FeatureFn = Callable[[Path, FrameEncoder, float], FrameFeatures]


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

    base = {"selector": selector_name, "video": video.path.stem, "style": video.style, "duration_s": video.duration,
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
            row.update(k_chosen=math.nan, coverage=math.nan, coverage_occ=math.nan, shots_hit=math.nan,
                       redundancy=math.nan)
        else:
            times.append(dt)
            cov, cov_occ = scene_coverage(feats.indices[r], frame_scene, looks)
            row.update(k_chosen=int(r.size), coverage=cov, coverage_occ=cov_occ,
                       shots_hit=shots_hit(feats.indices[r], frame_scene),
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
    """Per-video rows, the per-(selector, budget) summaries, run metadata and written files.

    ``summary``: over the generated videos; ``real``: over the real offline clips (empty when
    they were not run).
    """

    runs: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    meta: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)
    real: list[dict[str, Any]] = field(default_factory=list)


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
    the generated videos with 95 % intervals, ratios to uniform and run metadata),
    ``real.csv`` (the same over the real clips, when run), ``meta.json`` and ``selectors.png``.
    """
    from vidsieve.registry import create_encoder

    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    names = resolve_selectors(selectors)
    enc = encoder if encoder is not None else create_encoder("pixel")
    feature_fn = feature_fn or pipeline_features
    budgets = [int(b) for b in cfg.budgets]
    real_ok, real_note = _real_enabled(cfg)
    rng = np.random.default_rng(cfg.seed)
    runs: list[dict[str, Any]] = []
    real_runs: list[dict[str, Any]] = []
    shapes: dict[str, Any] = {}
    separation: dict[str, list[float]] = {}
    t_gen = t_feat = 0.0
    total = (cfg.videos + int(real_ok)) * len(names)
    bar = tqdm(total=total, desc="bench selectors", unit="run", disable=not progress)
    for v in range(cfg.videos + int(real_ok)):
        real = v == cfg.videos
        bar.set_postfix_str("real clips: join + TransNetV2 + features" if real
                            else f"video {v + 1}/{cfg.videos}: generate + features")
        t0 = time.perf_counter()
        if real:
            video = make_real_video(out / "videos" / "real_offline_clips.mp4")
        else:
            style = cfg.styles[v % len(cfg.styles)]
            video = make_bench_video(out / "videos" / f"bench_{cfg.seed}_{v:03d}.mp4",
                                     np.random.default_rng(rng.integers(2**63)), cfg, style)
        t1 = time.perf_counter()
        feats = feature_fn(video.path, enc, cfg.real_fps if real else cfg.cand_fps)
        t2 = time.perf_counter()
        t_gen, t_feat = t_gen + t1 - t0, t_feat + t2 - t1
        if not real:
            shapes.setdefault("feature_dim", int(feats.embeddings.shape[1]))
            shapes.setdefault("candidates", []).append(len(feats))
        frame_scene = video.frame_scene()[feats.indices]
        keep = frame_scene >= 0
        separation.setdefault(video.style, []).append(shot_separation(feats.embeddings[keep], frame_scene[keep]))
        queries = {k: enc.embed_query(query_image(k, cfg.size, video.style)) for k in video.kinds()}
        if not real:  # the real video writes its own labels (with the clip list it reuses them by)
            (out / "videos" / f"{video.path.stem}.json").write_text(json.dumps(video.to_dict()))
        for name in names:
            bar.set_postfix_str(f"{'real clips' if real else f'video {v + 1}/{cfg.videos}'}: {name}")
            rows = evaluate_video(video, feats, queries, name, budgets, cfg.tolerance_s, warmup=v == 0)
            (real_runs if real else runs).extend(rows)
            bar.update(1)
    bar.close()
    meta = run_metadata(cfg, enc, shapes, {"generate_s": t_gen, "features_s": t_feat})
    meta["real_clips"] = "run" if real_ok else real_note
    for style, vals in separation.items():
        finite = [x for x in vals if np.isfinite(x)]
        meta[f"shot_separation_{style}"] = round(float(np.mean(finite)), 4) if finite else math.nan
    summary = summarize(runs, names, budgets)
    result = BenchResult(runs=runs + real_runs, summary=summary, meta=meta,
                         real=summarize(real_runs, names, budgets) if real_runs else [])
    result.paths = write_outputs(result, out)
    return result


def _real_enabled(cfg: BenchConfig) -> tuple[bool, str]:
    if cfg.real == "off":
        return False, "real clips not run (real='off')"
    ok, why = real_clips_available()
    if cfg.real == "on" and not ok:
        raise ParameterError(f"BenchConfig(real='on') but {why}: pip install 'vidsieve[dev,scenes]'.")
    return ok, why



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
                if m in WITH_CI:
                    s[f"{m}_ci_lo"], s[f"{m}_ci_hi"] = bootstrap_ci(x)
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
        "styles": ",".join(cfg.styles),
        "real_fps": cfg.real_fps,
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
    """``summary.csv``, ``runs.csv``, (``real.csv``), ``meta.json`` and ``selectors.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out / "summary.csv", "runs": out / "runs.csv", "meta": out / "meta.json",
             "plot": out / "selectors.png"}
    # the meta's own machine / commit columns win; versions and (in runs.csv) machine are added
    env = {"machine": machine(), "versions": package_versions(), "commit": result.meta["commit"]}
    _write_csv(paths["summary"], result.summary, result.meta, env)
    short = {k: result.meta[k] for k in ("commit", "seed", "encoder", "tolerance_s")}
    _write_csv(paths["runs"], result.runs, short, env)
    if result.real:
        paths["real"] = out / "real.csv"
        _write_csv(paths["real"], result.real, short, env)
    paths["meta"].write_text(json.dumps(result.meta, indent=2, default=str))
    plot_summary(result.summary, paths["plot"], title=plot_title(result.meta), real=result.real)
    return paths

"""Benchmark KTV's k-means keyframes: time and pick agreement of speed settings vs released.

The released KTV call is ``KMeans(k, init="k-means++", n_init=10, random_state=0)`` on raw
features. This script times that and cheaper settings (fewer restarts, Elkan, fewer
iterations, PCA to fewer dims, float64) on synthetic clustered features of one video-hour at
1 fps (3,600 x 1,024 by default) and reports how much the keyframes move:

* ``jaccard``: |A & B| / |A | B| of the picked rows (1 = identical sets);
* ``mean_dist_s``: symmetric mean distance in seconds from each pick to the nearest pick of
  the other set (0 = identical);
* ``exact``: fraction of videos with identical picks;
* ``coverage_cost_vs_released``: mean squared distance of every frame to its nearest
  keyframe, relative to the released picks (k-means' objective at the picks; < 1 is better).

``released,seed=1/2`` rerun the released setting with another seed: the agreement they reach
is the noise floor (k-means with k far below the number of scenes has many equal optima).
Times are wall and process CPU (all threads); on a shared machine trust CPU and ratios.

Picks are the selector's final rows (``KTVSelector`` including its uniform fallback).
Times are medians over ``--repeats`` runs with 20th/80th percentiles, measured in the same run
as the released baseline. Usage::

    python -m vidsieve.eval.bench.kmeans --out runs/bench/kmeans.csv
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from vidsieve.selectors.ktv import KTVSelector
from vidsieve.types import Budget, FrameFeatures
from vidsieve.versions import git_commit, machine, package_versions

from ._csv import write_csv

#: name -> KTVSelector parameters; "released" is the baseline every other row is compared to.
CONFIGS: dict[str, dict[str, object]] = {
    "released": {"n_init": 10, "pca_dims": None, "threads": None},
    "released,seed=1": {"n_init": 10, "pca_dims": None, "threads": None, "random_state": 1},
    "released,seed=2": {"n_init": 10, "pca_dims": None, "threads": None, "random_state": 2},
    "1thread": {"n_init": 10, "pca_dims": None, "threads": 1},  # = KTVSelector() defaults
    "elkan,1thread": {"n_init": 10, "pca_dims": None, "threads": 1, "algorithm": "elkan"},
    "max_iter=30,1thread": {"n_init": 10, "pca_dims": None, "threads": 1, "max_iter": 30},
    "n_init=5,1thread": {"n_init": 5, "pca_dims": None, "threads": 1},
    "n_init=3,1thread": {"n_init": 3, "pca_dims": None, "threads": 1},
    "n_init=1,1thread": {"n_init": 1, "pca_dims": None, "threads": 1},
    "pca128,1thread": {"n_init": 10, "pca_dims": 128, "threads": 1},
    "pca64,n_init=3,1thread": {"n_init": 3, "pca_dims": 64, "threads": 1},
}


def clustered_features(t: int, d: int, *, scenes: int, seed: int) -> np.ndarray:
    """float32 ``[t, d]``: ``scenes`` scenes of random length, a third of them revisited looks,
    each a centre plus a slow drift (random walk) plus per-frame noise."""
    rng = np.random.default_rng(seed)
    looks = max(1, (2 * scenes) // 3)
    centres = rng.normal(size=(looks, d))
    look_of_scene = np.r_[np.arange(looks), rng.integers(0, looks, scenes - looks)]
    rng.shuffle(look_of_scene)
    lengths = rng.multinomial(t - scenes, rng.dirichlet(np.ones(scenes))) + 1
    scene_of = np.repeat(np.arange(scenes), lengths)
    drift = np.cumsum(rng.normal(scale=0.05, size=(t, d)), axis=0)
    drift -= np.repeat(drift[np.r_[0, np.cumsum(lengths)[:-1]]], lengths, axis=0)  # restart per scene
    x = centres[look_of_scene[scene_of]] + drift + rng.normal(scale=0.6, size=(t, d))
    return x.astype(np.float32)


def coverage_cost(x: np.ndarray, rows: np.ndarray) -> float:
    """Mean squared distance from every frame to its nearest keyframe (k-means' own objective,
    evaluated at the picked frames in the raw space): lower = more representative picks."""
    c = x[rows].astype(np.float64)
    xf = x.astype(np.float64)
    d2 = (xf**2).sum(1)[:, None] - 2.0 * xf @ c.T + (c**2).sum(1)[None, :]
    return float(np.maximum(d2.min(1), 0.0).mean())


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(Jaccard of the two row sets, symmetric mean distance to the nearest pick in rows)."""
    sa, sb = set(a.tolist()), set(b.tolist())
    jac = len(sa & sb) / len(sa | sb)
    dab = np.abs(a[:, None] - b[None, :])
    return jac, float((dab.min(1).mean() + dab.min(0).mean()) / 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vidsieve bench kmeans", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="CSV path to write")
    ap.add_argument("--frames", type=int, default=3600, help="candidates T (1 fps: seconds)")
    ap.add_argument("--dims", type=int, default=1024)
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--k", type=int, nargs="+", default=[6, 12])
    ap.add_argument("--videos", type=int, default=3, help="synthetic videos (seeds)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per config and video")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = ap.parse_args(argv)

    import sklearn  # noqa: F401  (loaded first so threadpool_info sees its OpenMP runtime)
    import threadpoolctl

    threads = max((i.get("num_threads", 0) for i in threadpoolctl.threadpool_info()), default=0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    mach = {**machine(), "cpus": str(os.cpu_count()), "blas_threads": str(threads)}
    vers = package_versions()
    env = {"machine": mach, "versions": vers, "commit": git_commit()}
    names = ["released"] + [c for c in args.configs if c != "released"]
    rows_out = []
    for k in args.k:
        base_time: list[float] = []
        results: dict[str, dict[str, list[float]]] = {
            n: {"t": [], "cpu": [], "jac": [], "dist": [], "exact": [], "cost": []} for n in names
        }
        for v in range(args.videos):
            feats = FrameFeatures.from_array(
                clustered_features(args.frames, args.dims, scenes=args.scenes, seed=v), fps=1.0
            )
            ref = None
            ref_cost = 1.0
            for name in names:
                sel = KTVSelector(**CONFIGS[name])  # type: ignore[arg-type]
                times, cpus = [], []
                for _ in range(args.repeats):
                    t0, c0 = time.perf_counter(), time.process_time()
                    s = sel.select(feats, budget=Budget(frames=k))
                    times.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0)
                cost = coverage_cost(feats.embeddings, s.rows)
                if ref is None:
                    ref, ref_cost = s.rows, cost
                    base_time += times
                jac, dist = agreement(ref, s.rows)
                r = results[name]
                r["t"] += times
                r["cpu"] += cpus
                r["cost"].append(cost / ref_cost)
                r["jac"].append(jac)
                r["dist"].append(dist)
                r["exact"].append(float(np.array_equal(ref, s.rows)))
        base_med = float(np.median(base_time))
        for name in names:
            r = results[name]
            med = float(np.median(r["t"]))
            row = {
                "load_at_start": round(load, 2), "python": mach["python"], "numpy": vers["numpy"],
                "sklearn": vers["scikit-learn"], "T": args.frames, "D": args.dims, "k": k,
                "videos": args.videos, "repeats": args.repeats, "config": name,
                "params": repr(KTVSelector(**CONFIGS[name])),  # type: ignore[arg-type]
                "median_s": round(med, 4), "p20_s": round(float(np.percentile(r["t"], 20)), 4),
                "p80_s": round(float(np.percentile(r["t"], 80)), 4),
                "cpu_median_s": round(float(np.median(r["cpu"])), 4),
                "speedup_vs_released": round(base_med / med, 2),
                "jaccard": round(float(np.mean(r["jac"])), 3),
                "mean_dist_s": round(float(np.mean(r["dist"])), 2),
                "exact": round(float(np.mean(r["exact"])), 3),
                "coverage_cost_vs_released": round(float(np.mean(r["cost"])), 4),
            }
            rows_out.append(row)
            print(f"k={k:3d} {name:24s} median {med:7.3f}s cpu {row['cpu_median_s']:7.3f}s "
                  f"x{row['speedup_vs_released']:6.2f}  jaccard {row['jaccard']:.3f}  "
                  f"dist {row['mean_dist_s']:6.2f}s  exact {row['exact']:.2f}  "
                  f"cost {row['coverage_cost_vs_released']:.4f}", flush=True)
    print(f"wrote {write_csv(rows_out, args.out, env=env)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

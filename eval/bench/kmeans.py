"""Benchmark KTV's k-means keyframes: vidsieve vs the released function, same run, same picks?

The released KTV function is ``KMeans(k, init="k-means++", n_init=10, random_state=0)`` on the
raw features, then the frame nearest to each centroid among all frames, computed over the
``[k, T, D]`` difference tensor. :func:`released_keyframes` restates it. This script times it
at 1 thread, at the machine's free cores and at the libraries' default threads (the fastest of
the three in the same run is the reference) against vidsieve's solvers on synthetic clustered features (5,400 x 1,024 by default:
KTV's candidate cap, DINOv2-large width) and reports how the picks compare:

* ``same_picks``: fraction of (video, repeat) cases whose set of picked rows equals the
  released function's (1 = always identical);
* ``jaccard``: mean |A & B| / |A | B| of the picked rows;
* ``coverage_cost_vs_released``: mean squared distance of every frame to its nearest pick,
  relative to the released picks (k-means' objective at the picks; < 1 is better).

Configs: ``vidsieve exact`` (the default solver: all restarts at once, same result), ``sklearn
solver`` (scikit-learn's KMeans inside vidsieve), and the opt-in approximations ``minibatch``,
``pca128`` and ``n_init=3``. Every config runs once per round, round-robin, so load drift on a
shared machine hits all alike; times are medians with 20th/80th percentiles over
``videos x repeats``; ratios are to the fastest released median in the same run; vidsieve chooses its own
thread count per call unless ``--threads`` fixes it. Every timed call starts after
``SETTLE_S`` seconds of idle, so that the thread pools the call before left spinning (OpenBLAS
spins ~0.1 s after a call) do not slow it. On a shared machine identical calls can vary severalfold
(other tenants); ``speedup_best_call_vs_best_released_call`` (fastest call against the fastest
released call) is the figure least moved by that: interference only ever adds time. Usage::

    vidsieve bench kmeans --out runs/bench/kmeans.csv
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vidsieve.versions import git_commit, machine, package_versions

from ._csv import write_csv

#: seconds of idle before every timed call
SETTLE_S = 0.3


def released_keyframes(x: np.ndarray, k: int) -> np.ndarray:
    """The released KTV keyframe function, restated: picks ``[k]`` in centroid order."""
    import warnings

    from sklearn.cluster import KMeans

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = KMeans(n_clusters=k, random_state=0, init="k-means++", n_init=10).fit(x)
    dist = np.linalg.norm(x - km.cluster_centers_[:, np.newaxis, :], axis=2)
    return np.argmin(dist, axis=1)


def _configs(threads: int | None, machine_n: int) -> dict[str, Callable[[np.ndarray, int], np.ndarray]]:
    """The released function at 1 thread, at the machine's free cores and at the libraries'
    default (the fastest of them is the reference), then vidsieve's solvers at ``threads``
    (None: each call's own choice, what a user gets)."""
    from threadpoolctl import threadpool_limits

    from vidsieve.selectors.ktv import kmeans_keyframes

    def limited(n: int | None) -> Callable[[np.ndarray, int], np.ndarray]:
        def run(x: np.ndarray, k: int) -> np.ndarray:
            with threadpool_limits(limits=n):
                return released_keyframes(x, k)

        return run

    def vs(**kw: object) -> Callable[[np.ndarray, int], np.ndarray]:
        return lambda x, k: kmeans_keyframes(x, k, threads=threads, **kw)  # type: ignore[arg-type]

    released = {"released (1 thread)": limited(1)}
    if machine_n > 1:
        released[f"released ({machine_n} threads)"] = limited(machine_n)
    released["released (library threads)"] = limited(None)
    return {
        **released,
        "vidsieve exact": vs(),
        "vidsieve sklearn solver": vs(solver="sklearn"),
        "minibatch (opt-in)": vs(solver="minibatch"),
        "pca128 (opt-in)": vs(pca_dims=128),
        "n_init=3 (opt-in)": vs(n_init=3),
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
    ap.add_argument("--out", type=Path, default=Path("runs/bench/kmeans.csv"), help="CSV path to write")
    ap.add_argument("--frames", type=int, default=5400, help="candidates T (KTV caps at 5,400)")
    ap.add_argument("--dims", type=int, default=1024)
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--k", type=int, nargs="+", default=[6, 12])
    ap.add_argument("--videos", type=int, default=2, help="synthetic videos (seeds)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds per video")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for vidsieve and one released baseline (default: vidsieve "
                    "chooses per call; the released function runs at 1, the free cores and "
                    "the libraries' default)")
    ap.add_argument("--configs", nargs="+", default=None, help="subset of config names (default all)")
    args = ap.parse_args(argv)

    import sklearn  # noqa: F401  (loaded first so threadpool_info sees its OpenMP runtime)
    import threadpoolctl

    from vidsieve.kmeans import machine_threads

    lib_threads = max((i.get("num_threads", 0) for i in threadpoolctl.threadpool_info()), default=0)
    machine_n = args.threads or machine_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    mach = {**machine(), "cpus": str(os.cpu_count()), "library_threads": str(lib_threads)}
    vers = package_versions(("vidsieve", "numpy", "scikit-learn", "scipy", "torch", "threadpoolctl"))
    env = {"machine": mach, "versions": vers, "commit": git_commit()}
    configs = _configs(args.threads, machine_n)
    bases = [n for n in configs if n.startswith("released")]
    names = [n for n in configs if args.configs is None or n in args.configs or n in bases]
    rows_out = []
    for k in args.k:
        res: dict[str, dict[str, list[float]]] = {n: {"t": [], "same": [], "jac": [], "cost": []} for n in names}
        for v in range(args.videos):
            x = clustered_features(args.frames, args.dims, scenes=args.scenes, seed=v)
            ref_rows: np.ndarray | None = None
            ref_cost = 1.0
            for _ in range(args.repeats):
                for name in names:  # round-robin: one call of each config per round
                    # let the BLAS/OpenMP helpers of the call before (and of the scoring below)
                    # stop spinning (OpenBLAS's spin for ~2^28 cycles): each call is timed alone
                    time.sleep(SETTLE_S)
                    t0 = time.perf_counter()
                    picks = configs[name](x, k)
                    res[name]["t"].append(time.perf_counter() - t0)
                    rows = np.unique(picks)
                    if ref_rows is None:  # the first config is the released baseline
                        ref_rows, ref_cost = rows, coverage_cost(x, rows)
                    jac, _ = agreement(ref_rows, rows)
                    res[name]["same"].append(float(np.array_equal(ref_rows, rows)))
                    res[name]["jac"].append(jac)
                    res[name]["cost"].append(coverage_cost(x, rows) / ref_cost)
        base_med = min(float(np.median(res[b]["t"])) for b in bases)
        base_min = min(min(res[b]["t"]) for b in bases)
        base = min(bases, key=lambda b: float(np.median(res[b]["t"])))
        lib_med = float(np.median(res["released (library threads)"]["t"])) if "released (library threads)" in res else float("nan")
        for name in names:
            r = res[name]
            med = float(np.median(r["t"]))
            row = {
                "load_at_start": round(load, 2), "T": args.frames, "D": args.dims, "k": k,
                "dtype": "float32", "videos": args.videos, "repeats": args.repeats, "threads": (name if name.startswith("released") else args.threads or "own choice"),
                "reference": base, "config": name, "median_s": round(med, 4),
                "p20_s": round(float(np.percentile(r["t"], 20)), 4),
                "p80_s": round(float(np.percentile(r["t"], 80)), 4),
                "speedup_vs_fastest_released": round(base_med / med, 2),
                "min_s": round(min(r["t"]), 4),
                "speedup_best_call_vs_best_released_call": round(base_min / min(r["t"]), 2),
                "speedup_vs_released_library_threads": round(lib_med / med, 2),
                "same_picks": round(float(np.mean(r["same"])), 3),
                "jaccard": round(float(np.mean(r["jac"])), 3),
                "coverage_cost_vs_released": round(float(np.mean(r["cost"])), 4),
            }
            rows_out.append(row)
            print(f"k={k:3d} {name:28s} median {med:7.3f}s  x{row['speedup_vs_fastest_released']:6.2f} "
                  f"(best calls x{row['speedup_best_call_vs_best_released_call']:6.2f}) "
                  f"(x{row['speedup_vs_released_library_threads']:6.2f} vs library threads)  "
                  f"same picks {row['same_picks']:.2f}  jaccard {row['jaccard']:.3f}  "
                  f"cost {row['coverage_cost_vs_released']:.4f}", flush=True)
        write_csv(rows_out, args.out, env=env)  # after every k: nothing lost if stopped
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

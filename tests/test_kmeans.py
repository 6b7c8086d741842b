"""vidsieve.kmeans: the lock-step k-means gives scikit-learn's KMeans result, bit for bit.

The oracle is scikit-learn's ``KMeans(k, init="k-means++", n_init, random_state)`` itself,
run on the same array; centres are compared after sorting (restart order is the same, so
they should even come in the same order, which is checked too).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from vidsieve.kmeans import kmeans_released, machine_threads
from vidsieve.selectors.ktv import KTVSelector
from vidsieve.types import Budget, FrameFeatures


def _clustered(t: int, d: int, scenes: int, seed: int, spread: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(scenes, d))
    lab = np.sort(rng.integers(0, scenes, t))
    return (centres[lab] + rng.normal(scale=spread, size=(t, d))).astype(np.float32)


def _random(t: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(t, d)).astype(np.float32)


CASES = {
    "clustered-400x64-k6": (lambda: _clustered(400, 64, 20, 0), 6),
    "clustered-400x64-k12": (lambda: _clustered(400, 64, 20, 1), 12),
    "clustered-300x40-k3": (lambda: _clustered(300, 40, 3, 2, spread=0.3), 3),
    "random-300x32-k5": (lambda: _random(300, 32, 3), 5),
    "random-257x17-k12": (lambda: _random(257, 17, 4), 12),
    "clustered-float64-200x24-k4": (lambda: _clustered(200, 24, 8, 5).astype(np.float64), 4),
    "k1": (lambda: _random(50, 8, 6), 1),
    # more samples than scikit-learn's distance block (1,082 rows at 64 features): the first
    # k-means++ distances come from blocks of that length plus an odd tail of 18
    "random-1100x64-k5": (lambda: _random(1100, 64, 7), 5),
    "clustered-1500x48-k8": (lambda: _clustered(1500, 48, 30, 8), 8),
}


def _released_sklearn(x: np.ndarray, **kw: object) -> KMeans:
    """The oracle: scikit-learn's KMeans on one thread. With several OpenMP threads its own
    centre sums are reduced per thread, so its last bits depend on the thread count; one thread
    sums in sample order, the order vidsieve reproduces."""
    with threadpool_limits(1):
        return KMeans(**kw).fit(x)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", list(CASES))
def test_same_result_as_sklearn(case: str) -> None:
    make, k = CASES[case]
    x = make()
    x_before = x.copy()
    km = _released_sklearn(x, n_clusters=k, init="k-means++", n_init=10, random_state=0)
    got = kmeans_released(x, k)
    np.testing.assert_array_equal(x, x_before)  # input untouched
    assert got.centers.dtype == km.cluster_centers_.dtype
    np.testing.assert_array_equal(got.centers, km.cluster_centers_)
    np.testing.assert_array_equal(got.labels, km.labels_)
    if got.solver == "lockstep":
        assert got.inertia == pytest.approx(km.inertia_, rel=1e-5)
    else:
        assert got.inertia == km.inertia_


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_clustered_inputs_take_the_lockstep_path(seed: int) -> None:
    """The fast path itself (not the fallback) is what agrees with scikit-learn here."""
    x = _clustered(500, 48, 25, seed)
    for k in (6, 12):
        got = kmeans_released(x, k, random_state=seed)
        km = _released_sklearn(x, n_clusters=k, init="k-means++", n_init=10, random_state=seed)
        assert got.solver == "lockstep", got.reason
        np.testing.assert_array_equal(got.centers, km.cluster_centers_)


def test_early_exit_drops_repeats_and_keeps_the_result() -> None:
    # three far-apart blobs, k = 3: most restarts reach the same clustering by different paths
    x = _clustered(300, 16, 3, 8, spread=2.0)
    full = kmeans_released(x, 3, early_exit=False)
    fast = kmeans_released(x, 3)
    assert fast.solver == full.solver == "lockstep"
    assert sum(fast.iterations) < sum(full.iterations)
    np.testing.assert_array_equal(fast.centers, full.centers)
    np.testing.assert_array_equal(fast.labels, full.labels)
    km = _released_sklearn(x, n_clusters=3, init="k-means++", n_init=10, random_state=0)
    np.testing.assert_array_equal(fast.centers, km.cluster_centers_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_duplicate_points_hand_over_to_sklearn() -> None:
    # two distinct points, k = 3: tied seeding candidates and an empty cluster (relocated by
    # scikit-learn) are decisions the lock-step path leaves to scikit-learn
    x = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]], dtype=np.float32), 5, axis=0)
    got = kmeans_released(x, 3)
    km = _released_sklearn(x, n_clusters=3, init="k-means++", n_init=10, random_state=0)
    assert got.solver == "sklearn" and got.reason
    np.testing.assert_array_equal(got.centers, km.cluster_centers_)


@pytest.mark.parametrize("k", [6, 12])
def test_selector_picks_equal_released_function(k: int) -> None:
    """KTVSelector's rows equal the released function's: KMeans + nearest frame to each centre."""
    x = _clustered(600, 64, 30, k)
    km = _released_sklearn(x, n_clusters=k, init="k-means++", n_init=10, random_state=0)
    nearest = np.argmin(np.linalg.norm(x - km.cluster_centers_[:, None, :], axis=2), axis=1)
    sel = KTVSelector()
    s = sel.select(FrameFeatures.from_array(x), budget=Budget(frames=k))
    assert s.extras["kmeans"]["solver"] == "lockstep"
    assert s.rows.tolist() == np.unique(nearest).tolist()
    same = KTVSelector(solver="sklearn").select(FrameFeatures.from_array(x), budget=Budget(frames=k))
    assert same.rows.tolist() == s.rows.tolist()


def test_minibatch_is_opt_in_and_valid() -> None:
    x = _clustered(400, 32, 6, 3, spread=0.2)
    s = KTVSelector(solver="minibatch").select(FrameFeatures.from_array(x), budget=Budget(frames=6))
    assert s.extras["kmeans"]["solver"] == "minibatch"
    assert len(s) == 6


def test_machine_threads_bounds() -> None:
    import os

    n = machine_threads()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    assert 1 <= n <= cpus
    assert machine_threads(work=1.0) == 1  # tiny calls never fan out


def test_machine_threads_do_not_count_this_process_s_own_load(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import vidsieve.kmeans as km

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # a 1-minute load of every CPU, all of it ours: nobody else is runnable now
    monkeypatch.setattr(os, "getloadavg", lambda: (float(cpus), 0.0, 0.0))
    monkeypatch.setattr(km, "others_running", lambda: 0)
    assert machine_threads() == cpus
    monkeypatch.setattr(km, "others_running", lambda: cpus)  # others busy now and lately
    assert machine_threads() == 1
    monkeypatch.setattr(km, "others_running", lambda: None)  # no /proc: the load average
    assert machine_threads() == 1


def test_others_running_excludes_this_process() -> None:
    from vidsieve.kmeans import others_running

    now = others_running()
    if os.path.exists("/proc/loadavg"):
        assert now is not None and now >= 0
    else:
        assert now is None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_features_too_large_for_float32_products_hand_over_to_sklearn() -> None:
    x = _clustered(60, 8, 3, 9) * np.float32(1e18)
    got = kmeans_released(x, 3)
    assert got.solver == "sklearn" and "too large" in got.reason
    s = KTVSelector().select(FrameFeatures.from_array(x), budget=Budget(frames=3))
    assert len(s) == 3


def test_incremental_products_equal_full_products() -> None:
    """Recomputing only the moved centres' rows gives the full product's values: one BLAS
    output element does not depend on how many other rows the call has (the assumption the
    lock-step E-step rests on, checked on this machine's BLAS)."""
    from scipy.linalg import blas

    from vidsieve.kmeans import _Distances, _estep, _products

    x = _clustered(700, 96, 12, 11)
    rng = np.random.default_rng(0)
    centres = (x[rng.integers(0, 700, (4, 6))] + 0.1).astype(np.float32)  # [R, k, D]
    with threadpool_limits(1):
        full = _products(x, centres.reshape(24, 96), blas.sgemm)
        for m in (1, 2, 3, 7, 23):
            rows = np.sort(rng.choice(24, m, replace=False))
            part = _products(x, centres.reshape(24, 96)[rows] if m > 1
                             else np.repeat(centres.reshape(24, 96)[rows], 2, axis=0), blas.sgemm)
            np.testing.assert_array_equal(part[:m], full[rows])
        cache = _Distances(4, 6, 700, np.dtype(np.float32))
        cache.estep(x, centres, [0, 1, 2, 3], blas.sgemm)
        centres[1, 2] += 0.5  # one centre of one restart moves, restart 3 is done
        cache.stale[1, 2] = True
        labels, dmin = cache.estep(x, centres, [0, 1, 2], blas.sgemm)
        ref_labels, ref_dmin = _estep(x, centres[:3], blas.sgemm)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(dmin, ref_dmin)


def test_thread_limit_limits_and_restores() -> None:
    from threadpoolctl import threadpool_info

    from vidsieve.kmeans import thread_limit

    before = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    with thread_limit(1):
        inside = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    after = {i["filepath"]: i["num_threads"] for i in threadpool_info()}
    assert inside and all(n == 1 for n in inside.values())
    assert after == before


@pytest.mark.parametrize("workers", [2, 3, 10, 16])
def test_restart_groups_in_parallel_give_the_same_result(workers: int) -> None:
    x = _clustered(600, 40, 25, 12)
    km = _released_sklearn(x, n_clusters=6, init="k-means++", n_init=10, random_state=0)
    got = kmeans_released(x, 6, workers=workers)
    assert got.solver == "lockstep", got.reason
    np.testing.assert_array_equal(got.centers, km.cluster_centers_)
    np.testing.assert_array_equal(got.labels, km.labels_)


def test_parallel_groups_hand_over_on_an_uncertain_decision() -> None:
    # the duplicate-point case raises inside a worker thread: the call still answers, via sklearn
    x = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]], dtype=np.float32), 5, axis=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = kmeans_released(x, 3, workers=2)
    assert got.solver == "sklearn" and got.reason


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gil_free_products_equal_scipys_wrapper(dtype: type) -> None:
    from scipy.linalg import blas

    from vidsieve.blas_nogil import products_nogil

    rng = np.random.default_rng(3)
    x = rng.normal(size=(301, 67)).astype(dtype)
    rows = rng.normal(size=(7, 67)).astype(dtype)
    pre = np.asfortranarray(rng.normal(size=(7, 301)).astype(dtype))
    gemm = blas.sgemm if dtype == np.float32 else blas.dgemm
    want = np.asarray(gemm(-2.0, rows.T, x.T, beta=1.0, c=pre.copy(order="F"), trans_a=1))
    got = pre.copy(order="F")
    assert products_nogil(rows, x, got)
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="Fortran"):
        products_nogil(rows, x, np.ascontiguousarray(pre))
    assert not products_nogil(rows.astype(np.float16), x, got)  # no routine: caller falls back


def test_estep_labels_take_the_first_of_tied_centres() -> None:
    from scipy.linalg import blas

    from vidsieve.kmeans import _Distances, _estep

    x = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]], dtype=np.float32)
    # centres 0 and 2 coincide, centre 1 is far: every tie must go to centre 0, as argmin's
    centres = np.array([[[1.0, 0.0], [9.0, 9.0], [1.0, 0.0]]], dtype=np.float32)
    labels, dmin = _Distances(1, 3, 3, np.dtype(np.float32)).estep(x, centres, [0], blas.sgemm)
    ref_labels, ref_dmin = _estep(x, centres, blas.sgemm)
    assert labels.tolist() == [[0, 0, 0]]
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(dmin, ref_dmin)

"""scikit-learn's k-means (k-means++ seeding, Lloyd, ``n_init`` restarts) with every restart run at once.

:func:`kmeans_released` computes what ``sklearn.cluster.KMeans(k, init="k-means++",
n_init=n_init, random_state=seed, max_iter=max_iter, tol=tol)`` computes on a dense ``[T, D]``
array, step for step, but organised for BLAS instead of for one restart at a time:

* **Seeding.** scikit-learn's k-means++ draws the same number of random numbers whatever the
  data (one for the first centre, ``2 + int(log k)`` per further centre), so all restarts'
  draws are taken up front from one ``RandomState(seed)`` in scikit-learn's order and the
  restarts are seeded together: one matrix product per seeding step for every restart's
  candidates instead of ten chunked, re-upcast products. Distances are computed in float64 and
  rounded to the data's dtype, as scikit-learn does for float32 data; cumulative sums, the
  potential and the choice of candidate follow scikit-learn's operations and dtypes.
* **Lloyd.** The restarts iterate in lock-step: one single-precision product gives every
  active restart's distances (``||c||^2 - 2 x.c`` through the same BLAS library, call and
  operand order as scikit-learn's Cython kernel, first minimum wins); cluster sums are
  accumulated one sample at a time in sample order (``torch.index_add_``, rows in blocks shared
  by all restarts), as scikit-learn's kernel does with one thread, times the reciprocal of the
  count: the centres come out bit for bit equal. A restart stops exactly when scikit-learn's
  would (labels unchanged, or total squared centre shift <= ``tol`` times the mean feature
  variance, then one more assignment step) and leaves the batch.
* **Early exit.** A restart whose labels (up to a renaming of clusters) equal those another
  restart had at a step after which both went on, follows that restart's path from there: it
  reaches the same clustering with the same inertia, which scikit-learn's rule ("replace the
  best only with a strictly lower inertia and a different clustering") never prefers. It is
  dropped at once and given the other restart's result, renamed.
* **Best restart.** scikit-learn's rule, in restart order, on float64 inertias; two different
  clusterings within a relative ``1e-4`` are compared with scikit-learn's own inertia function.

Why the result is scikit-learn's. Every step above repeats scikit-learn's arithmetic; the one
assumption is that a BLAS product gives each output element the same value whatever the number
of rows or columns around it (true of OpenBLAS's kernels, which sum every element over the
shared dimension in the same blocked order); the tests compare centres and labels bit for bit.
Decisions that a difference in the last bit could still tip are not taken here: two seeding
candidates of potentials within a relative ``1e-6`` (e.g. duplicate frames), a total centre
shift within ``1e-3`` of the tolerance (scikit-learn sums it in another order), an empty
cluster (scikit-learn relocates it), or an early-exited restart that would have hit
``max_iter``. Then the call runs scikit-learn's ``KMeans`` itself; :class:`KMeansResult` says
which path answered and why. With several threads scikit-learn's own result is not
reproducible bit for bit (its per-thread partial sums are added in lock order); the
lock-step path gives its one-thread result.
"""

from __future__ import annotations

import os
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["KMeansResult", "kmeans_released", "kmeans_sklearn", "machine_threads", "thread_limit"]

#: relative margins above which a decision is taken as certain (see the module docstring).
POT_MARGIN = 1e-6
TOL_MARGIN = 1e-3
#: samples per block of the lock-step M-step (a block of 1,024 x 1,024 float32 is 4 MiB)
MSTEP_BLOCK = 1024
INERTIA_MARGIN = 1e-4


@dataclass
class KMeansResult:
    """centers ``[k, D]`` (the data's dtype, original space), labels int64 ``[T]``, inertia.

    solver: ``"lockstep"`` (this module's path) or ``"sklearn"`` (scikit-learn's ``KMeans``).
    reason: why scikit-learn was used (empty for the lock-step path).
    iterations: Lloyd steps computed per restart (lock-step path; early-exited restarts
    stop short).
    """

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    solver: str
    reason: str = ""
    iterations: list[int] = field(default_factory=list)


class _Uncertain(Exception):
    """A decision fell within rounding noise: scikit-learn itself must decide."""


def machine_threads(work: float | None = None) -> int:
    """Threads to use for BLAS on this machine now: the CPUs this process may run on, minus
    the ones other processes keep busy (1-minute load average), at least 1.

    work: estimated floating-point operations of the call. One thread per ~8e9 of it: measured
    on 2-core x86_64 with KTV's keyframe clustering (5,400 x 1,024, ten restarts), a second
    thread made k=6 (~6.6e9) 20 % slower (the products are small and the other libraries'
    pools spin between them) and k=12 (~1.3e10) 10 % faster.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    free = int(cpus - busy + 0.5)  # our own process is not running yet: the load is others'
    n = max(1, min(cpus, free))
    if work is not None:
        n = max(1, min(n, round(work / 8e9)))
    return n


_CONTROLLER: list[Any] = []


def thread_limit(threads: int) -> AbstractContextManager[Any]:
    """Limit the BLAS and OpenMP pools of the loaded libraries to ``threads`` while inside.

    threadpoolctl's ``threadpool_limits`` looks the libraries up again on every call (about
    4 ms); here the lookup is made once, after importing scikit-learn, SciPy and torch, whose
    pools the k-means paths use.
    """
    if not _CONTROLLER:
        import scipy.linalg  # noqa: F401
        import sklearn.cluster  # noqa: F401
        import torch  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=threads)  # type: ignore[no-any-return]


def kmeans_sklearn(x: np.ndarray, k: int, *, n_init: int, random_state: int, max_iter: int,
                   tol: float = 1e-4, algorithm: str = "lloyd", reason: str = "requested") -> KMeansResult:
    """scikit-learn's ``KMeans`` itself (the released call), as a :class:`KMeansResult`."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=random_state,
                max_iter=max_iter, tol=tol, algorithm=algorithm)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        # duplicate frames give fewer distinct clusters than k: callers handle that.
        warnings.simplefilter("ignore")
        km.fit(x)
    return KMeansResult(km.cluster_centers_, km.labels_.astype(np.int64), float(km.inertia_),
                        "sklearn", reason)


def kmeans_released(x: np.ndarray, k: int, *, n_init: int = 10, random_state: int = 0,
                    max_iter: int = 300, tol: float = 1e-4, early_exit: bool = True) -> KMeansResult:
    """``KMeans(k, init="k-means++", n_init, random_state, max_iter, tol).fit(x)``'s result.

    x: ``[T, D]`` float (float32 and float64 keep their dtype, others become float64),
    ``1 <= k <= T``. Run under the caller's BLAS thread limit (threadpoolctl).
    early_exit: drop restarts that repeat another one (False: run each to its end; same result).
    """
    xa = np.asarray(x)
    dtype = xa.dtype if xa.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    xw = np.array(xa, dtype=dtype, order="C", copy=True)
    try:
        return _lockstep(xw, k, n_init, random_state, max_iter, tol, early_exit)
    except _Uncertain as why:
        return kmeans_sklearn(xa, k, n_init=n_init, random_state=random_state, max_iter=max_iter,
                              tol=tol, reason=str(why))


# ----------------------------------------------------------------------------- internals


def _canonical(labels: np.ndarray, k: int) -> bytes:
    """Labels renamed by order of first appearance: equal for clusterings equal up to renaming."""
    first = np.full(k, -1, dtype=np.int64)
    seen, idx = np.unique(labels, return_index=True)
    order = np.argsort(idx)
    first[seen[order]] = np.arange(seen.size)
    return first[labels].astype(np.int16 if k < 32000 else np.int32).tobytes()


def _same_clustering(a: np.ndarray, b: np.ndarray, k: int) -> bool:
    """scikit-learn's check: every label of ``a`` maps to one label of ``b`` (one direction)."""
    mapping = np.full(k, -1, dtype=np.int64)
    first = np.unique(a, return_index=True)[1]
    mapping[a[first]] = b[first]
    return bool(np.array_equal(mapping[a], b))


def _sklearn_batch(n_x: int, n_y: int, d: int) -> int:
    """The block length scikit-learn's float32 distance function (``_euclidean_distances_upcast``
    on dense data) upcasts to float64 at a time, for ``n_x`` by ``n_y`` samples of ``d``
    features: about 10 % of the memory already in use, at least 10 MiB."""
    maxmem = max(((n_x + n_y) * d + n_x * n_y) / 10, 10 * 2**17)
    tmp = 2.0 * d
    return max(int((-tmp + np.sqrt(tmp**2 + 4 * maxmem)) / 2), 1)


def _seed(x: np.ndarray, x64: np.ndarray, xsq64: np.ndarray, k: int, n_init: int,
          rs: np.random.RandomState) -> np.ndarray:
    """k-means++ centres for every restart, ``[n_init, k, D]`` (scikit-learn's seeding)."""
    t = x.shape[0]
    trials = 2 + int(np.log(k))
    w = np.ones(t, dtype=x.dtype)
    firsts = np.empty(n_init, dtype=np.int64)
    draws = np.empty((n_init, max(k - 1, 0), trials))
    for r in range(n_init):  # scikit-learn's order: one restart's draws, then the next's
        firsts[r] = rs.choice(t, p=w / w.sum())
        for c in range(k - 1):
            draws[r, c] = rs.uniform(size=trials)

    def dist(rows: np.ndarray, one_by_one: bool = False) -> np.ndarray:
        """``[len(rows), T]`` squared distances as scikit-learn computes them: float64
        ``-2 a.b + ||a||^2 + ||b||^2`` through numpy's matrix product, rounded to the data's
        dtype. Each distinct row is computed once; ``one_by_one`` multiplies single rows (a
        one-row product may take BLAS's matrix-vector path, as scikit-learn's does)."""
        uniq, inv_ = np.unique(rows, return_inverse=True)
        inv: np.ndarray | None = inv_
        if uniq.size == rows.size:  # no repeats: keep the caller's order, no gather
            uniq, inv = rows, None
        if one_by_one:
            # scikit-learn's own calls: each row against blocks of samples of its batch size
            # (a one-row product's summation order depends on the block's length); block by
            # block, so a block is read from memory once for every row
            d = np.empty((uniq.size, t))
            step = _sklearn_batch(1, t, x.shape[1])
            for s0 in range(0, t, step):
                blk = x64[s0 : s0 + step].T
                for i, u in enumerate(uniq):
                    d[i : i + 1, s0 : s0 + step] = x64[u : u + 1] @ blk
        else:
            d = x64[uniq] @ x64.T
        d *= -2.0  # exact, as scikit-learn's -2 * (a @ b.T)
        d += xsq64[uniq][:, None]
        d += xsq64[None, :]
        out = d.astype(x.dtype)
        np.maximum(out, 0, out=out)
        return out if inv is None else out[inv.ravel()]

    ids = np.empty((n_init, k), dtype=np.int64)
    ids[:, 0] = firsts
    closest = dist(firsts, one_by_one=True)  # [R, T]
    pot = closest @ w  # [R]
    for c in range(1, k):
        cand = np.empty((n_init, trials), dtype=np.int64)
        for r in range(n_init):
            vals = draws[r, c - 1] * pot[r : r + 1]
            cand[r] = np.searchsorted(np.cumsum(w * closest[r]), vals)
        np.clip(cand, None, t - 1, out=cand)
        d = dist(cand.ravel()).reshape(n_init, trials, t)
        np.minimum(closest[:, None, :], d, out=d)
        pots = d @ w  # [R, trials]
        best = np.argmin(pots, axis=1)
        rr = np.arange(n_init)
        if trials > 1:  # the best must beat every *other* point among the candidates clearly
            other = np.where(cand == cand[rr, best][:, None], np.inf, pots.astype(np.float64))
            lo = pots[rr, best].astype(np.float64)
            if (other.min(1) - lo <= POT_MARGIN * np.abs(lo)).any():
                raise _Uncertain("two k-means++ candidates of almost equal potential")
        pot = pots[rr, best]
        closest = d[rr, best]
        ids[:, c] = cand[rr, best]
    return x[ids]


def _products(x: np.ndarray, rows: np.ndarray, blas_sgemm: object) -> np.ndarray:
    """``[len(rows), T]`` ``||c||^2 - 2 x.c`` for centres ``rows`` ``[m, D]``, as scikit-learn's
    assignment computes them: the centres' squared norms preloaded, then ``gemm(alpha=-2,
    beta=1)`` through the same BLAS library and in the same operand order as its Cython kernel
    (each output element's sum runs over the features in the same order whatever the number of
    rows or columns around it)."""
    flat = np.ascontiguousarray(rows)
    cn = np.einsum("ij,ij->i", flat, flat)
    pre = np.asfortranarray(np.broadcast_to(cn[:, None], (flat.shape[0], x.shape[0])))
    out = blas_sgemm(-2.0, flat.T, x.T, beta=1.0, c=pre, trans_a=1, overwrite_c=1)  # type: ignore[operator]
    return np.asarray(out)


def _estep(x: np.ndarray, centers: np.ndarray, blas_sgemm: object) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``[R, T]`` (int32) for each restart's centres ``[R, k, D]``, and ``[R, T]`` float64
    ``||c||^2 - 2 x.c`` of the chosen centre: scikit-learn's assignment (:func:`_products`) for
    every restart in one product; the first minimum wins."""
    r, k, d = centers.shape
    out = _products(x, centers.reshape(r * k, d), blas_sgemm)
    dist = out.T.reshape(x.shape[0], r, k).transpose(1, 0, 2)  # [R, T, k]
    labels = np.argmin(dist, axis=2).astype(np.int32)
    dmin = np.take_along_axis(dist, labels[..., None].astype(np.int64), axis=2)[..., 0]
    return labels, dmin.astype(np.float64)


class _Distances:
    """Each restart's ``[k, T]`` centre-to-sample products, recomputed only for the centres that
    moved. A centre whose cluster kept the same members is bit for bit the same centre (the
    same samples summed in the same order), so its row of products is too: late Lloyd steps,
    where few clusters change, cost a fraction of a full product."""

    def __init__(self, n_init: int, k: int, t: int, dtype: np.dtype) -> None:
        self.rows = np.empty((n_init, k, t), dtype=dtype)
        self.stale = np.ones((n_init, k), dtype=bool)

    def estep(self, x: np.ndarray, centers: np.ndarray, active: list[int],
              blas_sgemm: object) -> tuple[np.ndarray, np.ndarray]:
        """Labels ``[len(active), T]`` int32 and float64 products of the chosen centres, for
        the active restarts' centres ``centers[active]`` ``[.., k, D]`` (as :func:`_estep`)."""
        act = np.asarray(active, dtype=np.int64)
        which = self.stale[act]  # [A, k]
        if which.any():
            moved = centers[act][which]
            # one row could take BLAS's matrix-vector path (another summation order): two
            fresh = _products(x, moved if len(moved) > 1 else np.repeat(moved, 2, axis=0),
                              blas_sgemm)[: len(moved)]  # [m, T]
            rr, cc = np.nonzero(which)
            self.rows[act[rr], cc] = fresh
            self.stale[act] = False
        dist = self.rows[act]  # [A, k, T]
        labels = np.argmin(dist, axis=1).astype(np.int32)
        dmin = np.take_along_axis(dist, labels[:, None, :].astype(np.int64), axis=1)[:, 0]
        return labels, dmin.astype(np.float64)


def _mstep(xt: object, labels: np.ndarray, prev: np.ndarray, k: int, dtype: np.dtype,
           current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster means ``[R, k, D]`` as scikit-learn computes them, and which clusters changed
    members ``[R, k]`` (their means are new; the others are ``current``'s, unchanged).

    A changed cluster's mean: float sums accumulated one sample at a time in sample order
    (``torch.index_add_`` adds rows sequentially), times the reciprocal of the count rounded to the data's dtype.
    ``prev`` ``[R, T]``: the labels of the step before (-1: none, every cluster is new)."""
    import torch

    x_t: torch.Tensor = xt  # type: ignore[assignment]
    threads = torch.get_num_threads()
    # index_add_ sums one sample at a time anyway; a second torch thread only fights the BLAS
    # threads that still spin after the E-step's product (5x slower on 2 cores)
    torch.set_num_threads(1)
    try:
        return _mstep_sums(x_t, labels, prev, k, dtype, current)
    finally:
        torch.set_num_threads(threads)


def _mstep_sums(x_t: torch.Tensor, labels: np.ndarray, prev: np.ndarray, k: int,
                dtype: np.dtype, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    r, t = labels.shape
    out = current.astype(dtype, copy=True)
    changed = np.zeros((r, k), dtype=bool)
    for j in range(r):
        moved = labels[j] != prev[j]
        if (prev[j] < 0).any():
            changed[j] = True
        elif moved.any():
            changed[j, labels[j][moved]] = True
            changed[j, prev[j][moved]] = True
    todo = [j for j in range(r) if changed[j].any()]
    sums = [torch.zeros((k, x_t.shape[1]), dtype=x_t.dtype) for _ in todo]
    labs = [torch.from_numpy(labels[j].astype(np.int64)) for j in todo]
    # rows in blocks, every restart per block: each block is read from memory once, and each
    # restart's sums still receive the samples one at a time in sample order (a gather of the
    # changed clusters' members costs more than it saves)
    for s0 in range(0, t, MSTEP_BLOCK):
        block = x_t[s0 : s0 + MSTEP_BLOCK]
        for acc, lab in zip(sums, labs):
            acc.index_add_(0, lab[s0 : s0 + MSTEP_BLOCK], block)
    for j, acc in zip(todo, sums):
        counts = np.bincount(labels[j], minlength=k)
        if (counts == 0).any():
            raise _Uncertain("an empty cluster (scikit-learn relocates it)")
        alpha = (1.0 / counts.astype(np.float64)).astype(dtype)
        cj = np.flatnonzero(changed[j])
        out[j, cj] = acc.numpy()[cj] * alpha[cj, None]
    return out, changed


def _lockstep(x: np.ndarray, k: int, n_init: int, seed: int, max_iter: int, tol: float,
              early_exit: bool) -> KMeansResult:
    import torch
    from scipy.linalg import blas

    try:  # scikit-learn's exact inertia and clustering check, for near-ties only
        from sklearn.cluster._k_means_common import _inertia_dense, _is_same_clustering
    except ImportError as exc:  # another scikit-learn layout: use KMeans itself
        raise _Uncertain(f"scikit-learn's k-means helpers not found ({exc})") from None

    sgemm = blas.sgemm if x.dtype == np.float32 else blas.dgemm
    t = x.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        big = float(np.abs(x).max(initial=0.0)) ** 2 * x.shape[1]
    if not big * 16 < float(np.finfo(x.dtype).max):  # products would overflow the dtype
        raise _Uncertain("features too large for products in their dtype")
    tol_abs = float(np.mean(np.var(x, axis=0)) * tol) if tol else 0.0
    mean = x.mean(axis=0)
    x -= mean
    x64 = x if x.dtype == np.float64 else x.astype(np.float64)
    xsq64 = np.einsum("ij,ij->i", x64, x64)
    centers = _seed(x, x64, xsq64, k, n_init, np.random.RandomState(seed))
    del x64
    xt = torch.from_numpy(x)
    xsq_total = float(xsq64.sum())

    final_labels: list[np.ndarray | None] = [None] * n_init
    final_centers: list[np.ndarray | None] = [None] * n_init
    approx_inertia = [0.0] * n_init
    # run -> (run it follows, its step, our step, its label -> our label)
    alias: dict[int, tuple[int, int, int, np.ndarray]] = {}
    # canonical labels after a continued step -> (run, step, its labels then)
    seen: dict[bytes, tuple[int, int, np.ndarray]] = {}
    iters = [0] * n_init
    active = list(range(n_init))
    prev = np.full((n_init, t), -1, dtype=np.int32)
    products = _Distances(n_init, k, t, x.dtype)
    for step in range(max_iter):
        if not active:
            break
        labels, dmin = products.estep(x, centers, active, sgemm)
        new, changed = _mstep(xt, labels, prev[active], k, x.dtype, centers[active])
        same = np.logical_not(changed.any(axis=1))
        products.stale[active] = changed
        diff = new.astype(np.float64) - centers[active].astype(np.float64)
        shift_tot = (diff * diff).sum(axis=(1, 2))  # [R]
        still: list[int] = []
        for j, r in enumerate(active):
            iters[r] = step + 1
            centers[r] = new[j]
            if same[j]:  # strict convergence: new centres == old
                final_labels[r], final_centers[r] = labels[j], new[j]
                approx_inertia[r] = float(dmin[j].sum()) + xsq_total
                continue
            if abs(shift_tot[j] - tol_abs) <= TOL_MARGIN * tol_abs:
                raise _Uncertain("a centre shift almost at the tolerance")
            if shift_tot[j] <= tol_abs:
                final_centers[r] = new[j]  # labels from one more assignment step, below
                continue
            key = _canonical(labels[j], k)
            if early_exit and key in seen:  # from here on this restart repeats another one, renamed
                s_run, s_step, s_labels = seen[key]
                perm = np.zeros(k, dtype=np.int64)
                perm[s_labels] = labels[j]
                alias[r] = (s_run, s_step, step, perm)
                continue
            seen[key] = (r, step, labels[j].copy())
            prev[r] = labels[j]
            still.append(r)
        active = still
    todo = [r for r in range(n_init) if r not in alias and final_labels[r] is None]
    if todo:  # stopped on the tolerance or at max_iter: one more assignment step
        for r in todo:
            if final_centers[r] is None:
                final_centers[r] = centers[r]
        lab, dmin = _estep(x, np.stack([final_centers[r] for r in todo]), sgemm)  # type: ignore[misc]
        for j, r in enumerate(todo):
            final_labels[r] = lab[j]
            approx_inertia[r] = float(dmin[j].sum()) + xsq_total

    def total_steps(r: int) -> int:
        """Steps restart r would have taken without the early exit."""
        if r not in alias:
            return iters[r]
        s, s_step, r_step, _ = alias[r]
        return r_step + total_steps(s) - s_step

    def resolve(r: int) -> tuple[int, np.ndarray]:
        """The restart that computed r's result, and its label -> r's label."""
        perm = np.arange(k)
        while r in alias:
            r, _, _, p = alias[r]
            perm = perm[p]  # r's names are p applied to the followed run's names
        return r, perm

    for r in alias:
        if total_steps(r) > max_iter:
            raise _Uncertain("an early-exited restart would have run out of iterations")

    w = np.ones(t, dtype=x.dtype)
    exact: dict[int, float] = {}

    def sk_inertia(r: int) -> float:
        if r not in exact:
            exact[r] = float(_inertia_dense(x, w, final_centers[r], final_labels[r], 1))
        return exact[r]

    best = -1
    best_root = -1
    for r0 in range(n_init):  # scikit-learn's rule, in restart order
        r, _ = resolve(r0)
        if best < 0:
            best, best_root = r0, r
            continue
        a, b = approx_inertia[r], approx_inertia[best_root]
        if abs(a - b) <= INERTIA_MARGIN * abs(b):  # too close for float64 sums: its own
            a, b = sk_inertia(r), sk_inertia(best_root)
        if a < b and not _is_same_clustering(final_labels[r], final_labels[best_root], k):
            best, best_root = r0, r
    r, perm = resolve(best)
    cen_r, lab_r = final_centers[r], final_labels[r]
    if cen_r is None or lab_r is None:  # pragma: no cover - every restart ends with a result
        raise RuntimeError("k-means: the winning restart has no result (internal error).")
    named = np.empty_like(cen_r)
    named[perm] = cen_r  # in the winning restart's own cluster order
    inertia = exact.get(r, approx_inertia[r])
    return KMeansResult(named + mean, perm[lab_r].astype(np.int64), inertia, "lockstep", "", iters)

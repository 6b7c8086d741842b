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
* **Threads.** With ``workers > 1`` the seeding products and every assignment step are cut by
  samples into that many slices computed in parallel threads, each with one BLAS thread
  (SciPy's ``gemm`` called without the GIL, :mod:`vidsieve.blas_nogil`): an output element
  does not depend on the slice around it, so the result is the same for any ``workers``. On
  2 cores this beats giving BLAS two threads, whose helpers spin between the many small calls.
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
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["KMeansResult", "kmeans_released", "kmeans_sklearn", "machine_threads", "others_running", "thread_limit"]

#: relative margins above which a decision is taken as certain (see the module docstring).
POT_MARGIN = 1e-6
TOL_MARGIN = 1e-3
#: samples per block of the lock-step M-step (a block of 1,024 x 1,024 float32 is 4 MiB)
MSTEP_BLOCK = 1024
#: the M-step gathers the changed clusters' members when they are at most this share of the
#: samples (a gather costs about one more pass over the rows it copies)
GATHER_SHARE = 0.4
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


def others_running() -> int | None:
    """Threads of other processes runnable at this instant (Linux ``/proc``), None elsewhere.

    The kernel's count of runnable threads, minus this process's own runnable ones (the
    calling thread among them)."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        own = 0
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/stat") as f:
                stat = f.read()
            own += stat[stat.rindex(")") + 2] == "R"
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - own)


def machine_threads(work: float | None = None) -> int:
    """Threads to use on this machine now: the CPUs this process may run on, minus the ones
    other processes keep busy, at least 1.

    Busy CPUs: the 1-minute load average, or the threads of other processes runnable now
    (:func:`others_running`) when fewer; the load average alone would count this process's
    own recent work (a loop of calls would talk itself down to one thread).
    work: estimated floating-point operations of one BLAS call sequence. One BLAS thread per
    ~8e9 of it: measured on 2-core x86_64 with KTV's keyframe clustering through scikit-learn
    (5,400 x 1,024, ten restarts), a second BLAS thread made k=6 (~6.6e9) 20 % slower (the
    products are small and the other libraries' pools spin between them) and k=12 (~1.3e10)
    10 % faster. (vidsieve's exact k-means splits its steps over its own threads instead.)
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    now = others_running()
    if now is not None:
        busy = min(busy, float(now))
    free = int(cpus - busy + 0.5)
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
                    max_iter: int = 300, tol: float = 1e-4, early_exit: bool = True,
                    workers: int = 1) -> KMeansResult:
    """``KMeans(k, init="k-means++", n_init, random_state, max_iter, tol).fit(x)``'s result.

    x: ``[T, D]`` float (float32 and float64 keep their dtype, others become float64),
    ``1 <= k <= T``. Run under the caller's BLAS thread limit (threadpoolctl).
    early_exit: drop restarts that repeat another one (False: run each to its end; same result).
    workers: threads that share the seeding products and each Lloyd assignment (split by
    samples), each with one BLAS thread; the result does not depend on it.
    """
    xa = np.asarray(x)
    dtype = xa.dtype if xa.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    try:
        return _lockstep(np.ascontiguousarray(xa, dtype=dtype), k, n_init, random_state, max_iter, tol, early_exit, max(1, int(workers)))
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


class _Split:
    """Runs work on contiguous slices of an axis in ``parts`` threads (the caller's among them).

    Every slice is computed as the whole would be (one BLAS output element or one sample's
    nearest centre does not depend on the other slices), so the result is the same for any
    ``parts``. The slices run BLAS (through :mod:`vidsieve.blas_nogil` or numpy) and numpy's
    large operations, which release the GIL.
    """

    def __init__(self, parts: int) -> None:
        self.parts = max(1, int(parts))
        self._pool: Any = None
        if self.parts > 1:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.parts - 1, thread_name_prefix="vidsieve-kmeans")

    def run(self, fn: Callable[[int, int], None], n: int, *, align: int = 1) -> None:
        """``fn(start, stop)`` over ``parts`` slices of ``range(n)`` (bounds multiples of
        ``align``), in parallel; an exception in one slice is re-raised here."""
        cuts = sorted({min(n, (n * i // self.parts) // align * align) for i in range(self.parts)} | {n})
        spans = [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
        if self._pool is None or len(spans) < 2:
            for a, b in spans:
                fn(a, b)
            return
        futures = [self._pool.submit(fn, a, b) for a, b in spans[1:]]
        fn(*spans[0])
        for f in futures:
            f.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _draws(t: int, k: int, n_init: int, dtype: np.dtype, rs: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Every restart's k-means++ random numbers, in scikit-learn's order (one restart's draws,
    then the next's): first centres int64 ``[n_init]`` and uniform draws ``[n_init, k - 1,
    2 + int(log k)]``."""
    trials = 2 + int(np.log(k))
    w = np.ones(t, dtype=dtype)
    firsts = np.empty(n_init, dtype=np.int64)
    draws = np.empty((n_init, max(k - 1, 0), trials))
    for r in range(n_init):
        firsts[r] = rs.choice(t, p=w / w.sum())
        for c in range(k - 1):
            draws[r, c] = rs.uniform(size=trials)
    return firsts, draws


def _seed(x: np.ndarray, x64: np.ndarray, xsq64: np.ndarray, k: int, firsts: np.ndarray,
          draws: np.ndarray, split: _Split) -> np.ndarray:
    """k-means++ centres ``[R, k, D]`` of the restarts whose random numbers (:func:`_draws`)
    are ``firsts`` ``[R]`` and ``draws`` ``[R, k - 1, trials]`` (scikit-learn's seeding)."""
    t = x.shape[0]
    n_init = len(firsts)
    trials = 2 + int(np.log(k))
    w = np.ones(t, dtype=x.dtype)

    def dist(rows: np.ndarray, one_by_one: bool = False) -> np.ndarray:
        """``[len(rows), T]`` squared distances as scikit-learn computes them: float64
        ``-2 a.b + ||a||^2 + ||b||^2`` through numpy's matrix product, rounded to the data's
        dtype. Each distinct row is computed once; ``one_by_one`` multiplies single rows (a
        one-row product may take BLAS's matrix-vector path, as scikit-learn's does)."""
        uniq, inv_ = np.unique(rows, return_inverse=True)
        inv: np.ndarray | None = inv_
        if uniq.size == rows.size:  # no repeats: keep the caller's order, no gather
            uniq, inv = rows, None
        d = np.empty((uniq.size, t))
        if one_by_one:
            # scikit-learn's own calls: each row against blocks of samples of its batch size
            # (a one-row product's summation order depends on the block's length); block by
            # block, so a block is read from memory once for every row
            step = _sklearn_batch(1, t, x.shape[1])

            def blocks(a: int, b: int) -> None:
                for s0 in range(a, b, step):
                    blk = x64[s0 : s0 + step].T
                    for i, u in enumerate(uniq):
                        d[i : i + 1, s0 : s0 + step] = x64[u : u + 1] @ blk

            split.run(blocks, t, align=step)
        else:
            lhs = x64[uniq]

            def cols(a: int, b: int) -> None:
                np.matmul(lhs, x64[a:b].T, out=d[:, a:b])

            split.run(cols, t)
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
    rows or columns around it). ``x`` may be a slice of the samples (C-contiguous rows)."""
    from .blas_nogil import products_nogil

    flat = np.ascontiguousarray(rows)
    cn = np.einsum("ij,ij->i", flat, flat)
    pre = np.asfortranarray(np.broadcast_to(cn[:, None], (flat.shape[0], x.shape[0])))
    if products_nogil(flat, x, pre):  # the same routine without the GIL: slices in parallel
        return pre
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
              blas_sgemm: object, split: _Split | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Labels ``[len(active), T]`` int32 and float64 products of the chosen centres, for
        the active restarts' centres ``centers[active]`` ``[.., k, D]`` (as :func:`_estep`);
        ``split``: samples in parallel slices."""
        act = np.asarray(active, dtype=np.int64)
        which = self.stale[act]  # [A, k]
        rr, cc = np.nonzero(which)
        moved = centers[act][which]
        # one row could take BLAS's matrix-vector path (another summation order): two
        lhs = moved if len(moved) != 1 else np.repeat(moved, 2, axis=0)
        dmin = np.empty((len(act), x.shape[0]), dtype=x.dtype)
        labels = np.empty((len(act), x.shape[0]), dtype=np.int32)

        def part(a: int, b: int) -> None:
            if len(moved):
                self.rows[act[rr], cc, a:b] = _products(x[a:b], lhs, blas_sgemm)[: len(moved)]
            rows = self.rows[act, :, a:b]  # [A, k, b - a]
            # a running strict comparison over the k rows: the first minimum wins, as argmin's
            # (argmin along the middle axis walks memory with a stride of T)
            lo, lab = dmin[:, a:b], labels[:, a:b]
            lo[:] = rows[:, 0]
            lab[:] = 0
            for c in range(1, rows.shape[1]):
                closer = rows[:, c] < lo
                np.copyto(lo, rows[:, c], where=closer)
                lab[closer] = c

        (split or _Split(1)).run(part, x.shape[0])
        self.stale[act] = False
        return labels, dmin.astype(np.float64)


def _mstep(x_t: torch.Tensor, labels: np.ndarray, prev: np.ndarray, k: int, dtype: np.dtype,
           current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster means ``[R, k, D]`` as scikit-learn computes them, and which clusters changed
    members ``[R, k]`` (their means are new; the others are ``current``'s, unchanged).

    A changed cluster's mean: float sums accumulated one sample at a time in sample order
    (``torch.index_add_`` adds rows sequentially), times the reciprocal of the count rounded to
    the data's dtype. ``prev`` ``[R, T]``: the labels of the step before (-1: none, every
    cluster is new).
    """
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
    sums = {j: torch.zeros((k, x_t.shape[1]), dtype=x_t.dtype) for j in todo}
    full: list[int] = []
    for j in todo:
        # only the changed clusters' means are needed: when their members are few, add just
        # those rows (gathered in sample order, so each sum sees the same sequence of adds)
        members = np.flatnonzero(changed[j][labels[j]])
        if len(members) <= GATHER_SHARE * t:
            rows = torch.from_numpy(members)
            sums[j].index_add_(0, torch.from_numpy(labels[j][members].astype(np.int64)), x_t.index_select(0, rows))
        else:
            full.append(j)
    labs = [torch.from_numpy(labels[j].astype(np.int64)) for j in full]
    # the others: rows in blocks, every restart per block, so each block is read from memory
    # once; each restart's sums still receive the samples one at a time in sample order
    for s0 in range(0, t, MSTEP_BLOCK) if full else ():
        block = x_t[s0 : s0 + MSTEP_BLOCK]
        for j, lab in zip(full, labs):
            sums[j].index_add_(0, lab[s0 : s0 + MSTEP_BLOCK], block)
    for j, acc in sums.items():
        counts = np.bincount(labels[j], minlength=k)
        if (counts == 0).any():
            raise _Uncertain("an empty cluster (scikit-learn relocates it)")
        alpha = (1.0 / counts.astype(np.float64)).astype(dtype)
        cj = np.flatnonzero(changed[j])
        out[j, cj] = acc.numpy()[cj] * alpha[cj, None]
    return out, changed


@dataclass
class _Runs:
    """Per-restart results of the lock-step Lloyd, by restart number."""

    labels: list[np.ndarray | None]
    centers: list[np.ndarray | None]
    inertia: list[float]
    iters: list[int]
    # run -> (run it follows, its step, our step, its label -> our label)
    alias: dict[int, tuple[int, int, int, np.ndarray]]


def _lloyd(x: np.ndarray, xt: torch.Tensor, centers: np.ndarray, k: int, max_iter: int,
           tol_abs: float, xsq_total: float, early_exit: bool, sgemm: object, out: _Runs,
           split: _Split) -> None:
    """Lloyd in lock-step for every restart from its seeded ``centers`` ``[R, k, D]`` (modified
    in place); results into ``out``."""
    n, t = centers.shape[0], x.shape[0]
    # canonical labels after a continued step -> (run, step, its labels then)
    seen: dict[bytes, tuple[int, int, np.ndarray]] = {}
    active = list(range(n))
    prev = np.full((n, t), -1, dtype=np.int32)
    products = _Distances(n, k, t, x.dtype)
    for step in range(max_iter):
        if not active:
            break
        labels, dmin = products.estep(x, centers, active, sgemm, split)
        new, changed = _mstep(xt, labels, prev[active], k, x.dtype, centers[active])
        same = np.logical_not(changed.any(axis=1))
        products.stale[active] = changed
        diff = new.astype(np.float64) - centers[active].astype(np.float64)
        shift_tot = (diff * diff).sum(axis=(1, 2))  # [A]
        still: list[int] = []
        for j, r in enumerate(active):
            out.iters[r] = step + 1
            centers[r] = new[j]
            if same[j]:  # strict convergence: new centres == old
                out.labels[r], out.centers[r] = labels[j], new[j]
                out.inertia[r] = float(dmin[j].sum()) + xsq_total
                continue
            if abs(shift_tot[j] - tol_abs) <= TOL_MARGIN * tol_abs:
                raise _Uncertain("a centre shift almost at the tolerance")
            if shift_tot[j] <= tol_abs:
                out.centers[r] = new[j]  # labels from one more assignment step, below
                continue
            key = _canonical(labels[j], k)
            if early_exit and key in seen:  # from here on this restart repeats another one, renamed
                s_run, s_step, s_labels = seen[key]
                perm = np.zeros(k, dtype=np.int64)
                perm[s_labels] = labels[j]
                out.alias[r] = (s_run, s_step, step, perm)
                continue
            seen[key] = (r, step, labels[j].copy())
            prev[r] = labels[j]
            still.append(r)
        active = still
    todo = [r for r in range(n) if r not in out.alias and out.labels[r] is None]
    if todo:  # stopped on the tolerance or at max_iter: one more assignment step
        for r in todo:
            if out.centers[r] is None:
                out.centers[r] = centers[r]
        lab, dmin = _estep(x, np.stack([out.centers[r] for r in todo]), sgemm)  # type: ignore[misc]
        for j, r in enumerate(todo):
            out.labels[r] = lab[j]
            out.inertia[r] = float(dmin[j].sum()) + xsq_total


def _centred(x_in: np.ndarray, split: _Split) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's centred copy of the data (``X - X.mean(axis=0)`` in its dtype), the same
    in float64 (the seeding's precision), its rows' float64 squared norms ``[T]`` and the mean
    ``[D]``; rows in parallel slices (each row's values are computed alone)."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean = x_in.mean(axis=0)
    x = np.empty_like(x_in)
    x64 = x if x.dtype == np.float64 else np.empty(x.shape, dtype=np.float64)
    xsq64 = np.empty(x.shape[0], dtype=np.float64)

    def rows(a: int, b: int) -> None:
        with np.errstate(over="ignore", invalid="ignore"):
            np.subtract(x_in[a:b], mean, out=x[a:b])
            if x64 is not x:
                x64[a:b] = x[a:b]
            np.einsum("ij,ij->i", x64[a:b], x64[a:b], out=xsq64[a:b])

    split.run(rows, x.shape[0])
    return x, x64, xsq64, mean


def _lockstep(x_in: np.ndarray, k: int, n_init: int, seed: int, max_iter: int, tol: float,
              early_exit: bool, workers: int = 1) -> KMeansResult:
    """The lock-step k-means of float ``x_in`` ``[T, D]`` (C-contiguous; not modified)."""
    import torch
    from scipy.linalg import blas

    try:  # scikit-learn's exact inertia and clustering check, for near-ties only
        from sklearn.cluster._k_means_common import _inertia_dense, _is_same_clustering
    except ImportError as exc:  # another scikit-learn layout: use KMeans itself
        raise _Uncertain(f"scikit-learn's k-means helpers not found ({exc})") from None

    sgemm = blas.sgemm if x_in.dtype == np.float32 else blas.dgemm
    t, d = x_in.shape
    split = _Split(workers)
    torch_threads = torch.get_num_threads()
    # the M-step's index_add_ on one torch thread: it sums one sample at a time anyway, and
    # a second torch thread fought the threads spinning between steps (5x slower on 2 cores;
    # with the steps split over workers it gained nothing)
    torch.set_num_threads(1)
    runs = _Runs([None] * n_init, [None] * n_init, [0.0] * n_init, [0] * n_init, {})
    try:
        with thread_limit(1) if workers > 1 else nullcontext():
            x, x64, xsq64, mean = _centred(x_in, split)
            # |x.c| and ||c||^2 are at most max ||x||^2 (centres are means of samples), a
            # squared distance at most 4 max ||x||^2 and a k-means++ potential T times that:
            # all in range, with a factor 4 to spare
            if not float(xsq64.max(initial=0.0)) * 16 * t < float(np.finfo(x.dtype).max):
                raise _Uncertain("features too large for products in their dtype")
            # scikit-learn's tolerance: tol times the mean feature variance, i.e. the mean
            # squared norm of the centred samples over D; its float32 sum differs from this
            # float64 one far below TOL_MARGIN, and decisions within TOL_MARGIN of the
            # tolerance are not taken here
            tol_abs = float(xsq64.sum()) / (t * d) * tol if tol else 0.0
            firsts, draws = _draws(t, k, n_init, x.dtype, np.random.RandomState(seed))
            centers = _seed(x, x64, xsq64, k, firsts, draws, split)
            del x64  # 8 bytes a feature, not needed by Lloyd
            _lloyd(x, torch.from_numpy(x), centers, k, max_iter, tol_abs, float(xsq64.sum()),
                   early_exit, sgemm, runs, split)
    finally:
        torch.set_num_threads(torch_threads)
        split.close()
    final_labels, final_centers, approx_inertia = runs.labels, runs.centers, runs.inertia
    alias, iters = runs.alias, runs.iters

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

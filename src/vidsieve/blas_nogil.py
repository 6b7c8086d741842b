"""SciPy's BLAS ``gemm`` callable from several Python threads at once.

``scipy.linalg.blas.sgemm`` (the f2py wrapper) holds the GIL while BLAS runs, so two threads
calling it take turns. scikit-learn's k-means kernels call the same routine through
``scipy.linalg.cython_blas``; that module exports its function pointers, and a ``ctypes``
call through one releases the GIL. Same library, same routine, so the same bits as the
wrapper (a test compares them); only the GIL differs.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import cache

import numpy as np

__all__ = ["products_nogil"]

_INT = ctypes.POINTER(ctypes.c_int)


@cache
def _gemm(dtype: str) -> Callable[..., None] | None:
    """The ``sgemm``/``dgemm`` of ``scipy.linalg.cython_blas`` as a ctypes function, or None
    where this SciPy does not export it (callers then use the f2py wrapper)."""
    try:
        from scipy.linalg import cython_blas

        cap = cython_blas.__pyx_capi__[{"float32": "sgemm", "float64": "dgemm"}[dtype]]
        name_of = ctypes.pythonapi.PyCapsule_GetName
        name_of.restype, name_of.argtypes = ctypes.c_char_p, [ctypes.py_object]
        name = name_of(cap)
        if not name or b"int *" not in name:  # 64-bit integer BLAS: another signature
            return None
        pointer_of = ctypes.pythonapi.PyCapsule_GetPointer
        pointer_of.restype, pointer_of.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        ptr = pointer_of(cap, name)
    except (ImportError, AttributeError, KeyError, ValueError):
        return None
    real = ctypes.POINTER(ctypes.c_float if dtype == "float32" else ctypes.c_double)
    proto = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, _INT, _INT, _INT, real,
                             ctypes.c_void_p, _INT, ctypes.c_void_p, _INT, real, ctypes.c_void_p, _INT)
    return proto(ptr)  # type: ignore[no-any-return]


def products_nogil(rows: np.ndarray, x: np.ndarray, pre: np.ndarray) -> bool:
    """``pre <- pre - 2 rows @ x.T`` in place through BLAS ``gemm``, without the GIL.

    rows: C-contiguous ``[m, D]``; x: C-contiguous ``[T, D]``; pre: Fortran-ordered ``[m, T]``
    of the same dtype (float32 or float64). The call is the one SciPy's f2py wrapper makes for
    ``gemm(-2.0, rows.T, x.T, beta=1.0, c=pre, trans_a=1)``. Returns False (nothing done)
    where no GIL-free routine is available.
    """
    fn = _gemm(str(x.dtype))
    if fn is None or rows.dtype != x.dtype or pre.dtype != x.dtype:
        return False
    if not (rows.flags.c_contiguous and x.flags.c_contiguous and pre.flags.f_contiguous):
        raise ValueError("products_nogil: rows and x must be C-contiguous, pre Fortran-ordered")
    m, d = rows.shape
    t = x.shape[0]
    if pre.shape != (m, t) or x.shape[1] != d:
        raise ValueError(f"products_nogil: shapes {rows.shape}, {x.shape}, {pre.shape} do not match")
    real = ctypes.c_float if x.dtype == np.float32 else ctypes.c_double
    ints = [ctypes.c_int(v) for v in (m, t, d, d, d, m)]
    alpha, beta = real(-2.0), real(1.0)
    fn(b"T", b"N", ctypes.byref(ints[0]), ctypes.byref(ints[1]), ctypes.byref(ints[2]),
       ctypes.byref(alpha), rows.ctypes.data, ctypes.byref(ints[3]), x.ctypes.data,
       ctypes.byref(ints[4]), ctypes.byref(beta), pre.ctypes.data, ctypes.byref(ints[5]))
    return True

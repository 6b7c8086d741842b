"""Backend choice shared by every kernel op: Triton on CUDA tensors, PyTorch reference otherwise.

Rules (one call of :func:`choose_backend` per op call; the decision is logged once per op and
decision):

* ``backend="torch"``: always the PyTorch reference.
* ``backend="triton"``: the Triton kernel, or a :class:`KernelBackendError` saying why it cannot
  run (triton not installed, CPU tensors). CPU tensors are allowed when ``TRITON_INTERPRET=1`` is
  set (Triton's interpreter runs the kernel on the CPU; used by the tests).
* ``backend="auto"`` (default): the environment variable ``VIDSIEVE_KERNEL_BACKEND``
  (``auto``/``triton``/``torch``) decides if set; otherwise Triton when it is importable and every
  tensor is on CUDA, else the reference. An automatic choice never raises: a rejected Triton
  backend falls back quietly to the reference and the log line names the reason.

An explicit ``backend=`` argument wins over the environment variable.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from typing import Literal, TypeVar

import torch

from vidsieve.errors import ParameterError
from vidsieve.params import Choice, check_param

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "Backend",
    "KernelBackendError",
    "call_triton",
    "choose_backend",
    "empty_output",
    "interpreter_enabled",
    "triton_available",
]

logger = logging.getLogger("vidsieve.kernels")

Backend = Literal["auto", "triton", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "triton", "torch")
ENV_VAR = "VIDSIEVE_KERNEL_BACKEND"

_logged: set[tuple[str, str, str]] = set()
T = TypeVar("T")


class KernelBackendError(ParameterError):
    """The requested kernel backend cannot run here (e.g. Triton forced without CUDA)."""


def triton_available() -> tuple[bool, str]:
    """``(True, "")`` when ``triton`` can be imported, else ``(False, reason)``."""
    if importlib.util.find_spec("triton") is None:
        return False, "triton not installed"
    try:
        import triton  # noqa: F401
    except Exception as exc:  # a broken install must not break the reference path
        return False, f"triton failed to import ({type(exc).__name__}: {exc})"
    return True, ""


def interpreter_enabled() -> bool:
    """True when ``TRITON_INTERPRET=1`` (kernels then run on CPU tensors, slowly)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def _requested(op: str, backend: str) -> tuple[str, str]:
    check_param(op, "backend", backend, [Choice(*BACKENDS)])
    if backend != "auto":
        return backend, "argument"
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if not env:
        return "auto", ""
    if env not in BACKENDS:
        raise ParameterError(
            f"The environment variable {ENV_VAR} must be one of {list(BACKENDS)}. "
            f"Got {env!r} instead."
        )
    return env, f"{ENV_VAR}={env}"


def _log_once(op: str, choice: str, reason: str) -> None:
    key = (op, choice, reason)
    if key not in _logged:
        _logged.add(key)
        logger.info("vidsieve.kernels.%s: using the %s backend (%s)", op, choice, reason)


def choose_backend(
    op: str, backend: str, *tensors: torch.Tensor, triton_limit: str | None = None
) -> Literal["triton", "torch"]:
    """Pick ``"triton"`` or ``"torch"`` for one call of ``op`` on ``tensors``.

    triton_limit: a reason the Triton kernel cannot handle these inputs (e.g. a size cap), or
    None. Auto mode then falls back to the reference; forced Triton raises.
    """
    want, source = _requested(op, backend)
    if want == "torch":
        _log_once(op, "torch", f"requested by {source}")
        return "torch"
    ok, why = triton_available()
    if ok:
        on_cuda = all(t.is_cuda for t in tensors)
        if not on_cuda and not (want == "triton" and interpreter_enabled()):
            why = "CPU tensor"
        elif triton_limit is not None:
            why = triton_limit
        else:
            why = ""
    if why:
        if want == "triton":
            hint = (
                " Move the tensors to a CUDA device, or set TRITON_INTERPRET=1 to run the kernel "
                "in Triton's (slow) CPU interpreter, or use backend='torch'."
                if why == "CPU tensor"
                else " Use backend='torch' (or unset VIDSIEVE_KERNEL_BACKEND)."
            )
            raise KernelBackendError(
                f"{op}: the Triton backend was requested ({source}) but cannot run: {why}.{hint}"
            )
        _log_once(op, "torch", f"triton rejected: {why}")
        return "torch"
    mode = "interpreter" if interpreter_enabled() else "CUDA"
    _log_once(op, "triton", f"{source or 'auto'}, {mode}")
    return "triton"


def call_triton(op: str, backend: str, triton_fn: Callable[[], T], torch_fn: Callable[[], T]) -> T:
    """Run ``triton_fn``; if it raises (e.g. the kernel does not compile for this GPU) and the
    backend was chosen automatically, log a warning and return ``torch_fn()`` instead. A backend
    the user forced (argument or environment) re-raises."""
    try:
        return triton_fn()
    except Exception as exc:
        if _requested(op, backend)[0] == "triton":
            raise
        logger.warning(
            "vidsieve.kernels.%s: the Triton kernel failed (%s: %s); using the torch reference",
            op,
            type(exc).__name__,
            exc,
        )
        return torch_fn()


def empty_output(
    shape: tuple[int, ...], device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Uninitialised kernel output; NaN-filled (-1 for ints) under ``TRITON_INTERPRET=1`` so a
    slot the kernel never writes fails the tests instead of passing by luck."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if interpreter_enabled():
        out.fill_(float("nan") if dtype.is_floating_point else -1)
    return out

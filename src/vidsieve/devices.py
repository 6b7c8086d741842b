"""Turn a user's device string into a ``torch.device``, with a clear error when it cannot be used.

Every component that takes a ``device=`` parameter (PEEK's student, TransNetV2, the HF
encoder, the benchmarks) resolves it here, so ``"auto"`` means the same thing everywhere and
asking for CUDA on a CPU-only machine fails with a :class:`~vidsieve.errors.ParameterError`
instead of a torch traceback from deep inside a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ParameterError

if TYPE_CHECKING:
    import torch

_EXPECTED = "'auto', 'cpu', 'cuda' or 'cuda:N'"


def resolve_device(device: str | torch.device | None = "auto", *, owner: str | None = None) -> torch.device:
    """The ``torch.device`` for ``device``.

    device: ``"auto"`` (or None): CUDA when available, else CPU; ``"cpu"``; ``"cuda"`` /
            ``"cuda:N"``; ``"mps"``; any other string torch accepts as a device (a
            ``torch.device`` is checked the same way).
    owner:  who asked (e.g. ``"HFEncoder"``), named in error messages.

    Raises :class:`ParameterError` when the string is not a device, or names an accelerator
    this machine does not have (CUDA unavailable, ``cuda:N`` beyond the device count, MPS
    unavailable).
    """
    import torch

    who = f"{owner}: " if owner else ""
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device.strip())
        except (RuntimeError, ValueError):
            raise ParameterError(f"{who}{device!r} is not a device; use {_EXPECTED}.") from None
    else:
        raise ParameterError(f"{who}the device must be a string such as {_EXPECTED}. Got {device!r} instead.")

    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(
                f"{who}device {str(dev)!r} was asked for but CUDA is not available on this machine; "
                "use device='cpu' (or 'auto', which picks CUDA only when it is there)."
            )
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ParameterError(
                f"{who}device {str(dev)!r} was asked for but this machine has {n} CUDA device(s) "
                f"(cuda:0 to cuda:{n - 1})."
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ParameterError(f"{who}device 'mps' was asked for but MPS is not available on this machine; use 'cpu'.")
    return dev

"""The adapters' error type."""

from __future__ import annotations

from vidsieve.errors import VidsieveError


class AdapterError(VidsieveError, ValueError):
    """The model, processor or inputs cannot be used with this adapter."""

"""Shared fixtures of the adapter tests: cached tiny models of the five real HF families.

The builders live in :mod:`vidsieve.adapters.tiny` (also used by the examples and the
benchmark); this module caches one (model, processor) per family for the test session.
"""

from __future__ import annotations

from typing import Any

from vidsieve.adapters.tiny import FAMILIES, make_frames

__all__ = ["FAMILIES", "build", "make_frames", "record_processor_calls", "small_encoder"]

_CACHE: dict[str, tuple[Any, Any]] = {}


def build(family: str) -> tuple[Any, Any]:
    """A cached tiny (model, processor) of the family (tests never mutate the model)."""
    if family not in _CACHE:
        _CACHE[family] = FAMILIES[family]()
    return _CACHE[family]


def small_encoder() -> Any:
    """The default frame encoder at a small size: candidate features cost little in tests."""
    import vidsieve

    return vidsieve.create_encoder("pixel", size=32, lum_grid=4, grid=4)


def record_processor_calls(proc: Any, monkeypatch: Any) -> list[dict[str, Any]]:
    """Keyword arguments of every call to ``proc`` from now on (the processor still runs);
    undone by ``monkeypatch`` at the end of the test."""
    seen: list[dict[str, Any]] = []
    orig = type(proc).__call__

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(type(proc), "__call__", spy)
    return seen

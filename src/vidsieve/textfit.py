"""Bounding user text (queries, paths, error messages) before it goes into a picture or a page."""

from __future__ import annotations


def ellipsise(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (``…`` marks a cut)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + "…"

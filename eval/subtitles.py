"""Subtitles: read (.srt/.ass/.vtt via pysubs2, or LongVideoBench JSON) and pick the lines the
prompt shows.

Two rules (the run records which):

``selected``     (vidsieve default) the lines on screen at the frames the model actually sees:
                 a line ``[start, end)`` is kept when a selected frame's timestamp falls in it.
``lmms-uniform`` lmms-eval's rule for ``videomme_w_subtitle``: whatever frames the model sees,
                 take ``np.linspace(0, total_frames - 1, n, dtype=int)`` frame positions,
                 convert each line's times to frames with ``int(t * fps)``, keep lines with
                 ``start_frame <= f < end_frame`` for some position ``f``, and order them as
                 ``list(set(line_indices))`` does in CPython (lmms-eval's order).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidsieve.errors import ParameterError

from .questions import DatasetError

SUBTITLE_RULES = ("selected", "lmms-uniform")


@dataclass(frozen=True)
class Line:
    """One subtitle line: seconds on the video's clock and plain text."""

    start: float
    end: float
    text: str


_TAG = re.compile(r"<[^>]+>")


def _hms(s: str) -> float:
    h, m, sec = str(s).replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec)


def _load_json(path: Path, offset: float) -> list[Line]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DatasetError(f"Subtitle file {path} is not readable JSON ({e}).") from None
    out: list[Line] = []
    for i, it in enumerate(items if isinstance(items, list) else []):
        if "timestamp" in it:
            start, end = it["timestamp"]
            text = it.get("text", "")
            start = float(start)
            end = float(end) if isinstance(end, (int, float)) else float("inf")
        elif "start" in it and "end" in it:
            start, end, text = _hms(it["start"]), _hms(it["end"]), it.get("line", it.get("text", ""))
        else:
            raise DatasetError(f"Subtitle file {path} entry {i} has neither 'timestamp' nor 'start'/'end'.")
        out.append(Line(start - offset, end - offset, _TAG.sub("", str(text)).strip()))
    return out


def load_subtitles(path: str | Path, *, offset: float = 0.0) -> list[Line]:
    """Lines sorted by start time; ``offset`` seconds are subtracted from every time."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"Subtitle file not found: {p}")
    if p.suffix.lower() == ".json":
        lines = _load_json(p, offset)
    else:
        import pysubs2

        try:
            subs = pysubs2.load(str(p), encoding="utf-8")
        except Exception as e:
            raise DatasetError(f"Subtitle file {p} cannot be parsed ({e}).") from None
        lines = [
            Line(ev.start / 1000.0 - offset, ev.end / 1000.0 - offset, " ".join(ev.plaintext.split("\n")).strip())
            for ev in subs
            if not ev.is_comment
        ]
    return sorted((ln for ln in lines if ln.text), key=lambda ln: (ln.start, ln.end))


def lines_at(lines: Sequence[Line], timestamps: Sequence[float] | np.ndarray) -> list[Line]:
    """Lines on screen at any of ``timestamps`` (seconds), in time order, each once."""
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.size == 0:
        return []
    return [ln for ln in lines if bool(np.any((ts >= ln.start) & (ts < ln.end)))]


def lmms_uniform_lines(lines: Sequence[Line], *, total_frames: int, fps: float, n: int) -> list[Line]:
    """lmms-eval's uniform subtitle rule (see module docstring)."""
    if total_frames < 1 or fps <= 0:
        raise ParameterError(f"lmms-uniform subtitles need frame count and fps; got {total_frames}, {fps}.")
    n = total_frames if n == -1 else n
    positions = np.linspace(0, total_frames - 1, n, dtype=int).tolist()
    spans = [(int(ln.start * fps), int(ln.end * fps)) for ln in lines]
    hit = [i for f in positions for i, (s, e) in enumerate(spans) if s <= f < e]
    return [lines[i] for i in list(set(hit))]


def subtitle_text(lines: Sequence[Line]) -> str:
    return "\n".join(ln.text for ln in lines)

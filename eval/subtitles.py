"""Subtitles: read (.srt/.ass/.vtt via pysubs2, or LongVideoBench JSON) and pick the lines the
prompt shows.

Two rules (``--subtitle-rule``; the run records which):

``selected``     (default) the lines on screen at the frames the model actually sees: a line
                 ``[start, end)`` is kept when a selected frame's timestamp falls in it; lines
                 in time order, tags stripped. No line (or no file) -> "No subtitles available".
``lmms-uniform`` lmms-eval 0.7.3's ``videomme_w_subtitle`` rule, reproduced exactly for .srt
                 files (:func:`lmms_uniform_block`), whatever frames the model sees.

What ``lmms-uniform`` does, step by step (each step is what lmms-eval does, quirks included):

1. No subtitle file -> the block is "No subtitles available". A file that exists but yields
   no line (empty, or no line on the sampled frames) -> an **empty** block.
2. The file is split at blank lines; a block with at least 3 lines gives one entry: line 2 is
   ``start --> end`` (``HH:MM:SS,mmm``; the millisecond field is read as an integer, so
   ``,5`` is 5 ms), the text is the remaining lines joined by spaces. Entries are keyed by
   their (start, end): of entries with identical times the **last** text is kept, at the
   position of the first. File order is kept (no sorting).
3. Frame positions ``np.linspace(0, total_frames - 1, n, dtype=int)`` (``n = -1``: every
   frame); each entry spans frames ``[int(start * fps), int(end * fps))``. Every (position,
   entry) hit is listed, position-major, and the entry indices are deduplicated with
   ``list(set(...))``: CPython's set order, which for large indices is not ascending.
4. Of each entry only the first match of ``<font color="white" size=".72c">(.*?)</font>`` is
   kept (entries without such a tag are dropped; an empty tag gives an empty line). The block
   is those texts joined by newlines.

Where lmms-eval would raise (a block whose second line is not a valid time range, or a file
that is not UTF-8) vidsieve skips the block or replaces the bad bytes, so a run goes on.
``total_frames`` and ``fps`` come from vidsieve's reader (decord); lmms-eval asks OpenCV,
which can differ by a frame on some files.

LongVideoBench subtitles are JSON, and lmms-eval's ``longvideobench_val_v`` shows none, so
there ``lmms-uniform`` applies step 3 to the parsed lines (tags stripped, time order): a
vidsieve extension for comparability, not an lmms-eval reproduction.
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


def _positions(total_frames: int, fps: float, n: int) -> list[int]:
    if total_frames < 1 or fps <= 0:
        raise ParameterError(f"lmms-uniform subtitles need frame count and fps; got {total_frames}, {fps}.")
    n = total_frames if n == -1 else n
    return np.linspace(0, total_frames - 1, n, dtype=int).tolist()


def _hit_order(spans: Sequence[tuple[int, int]], positions: Sequence[int]) -> list[int]:
    """Entry indices hit by a position, deduplicated in lmms-eval's order (step 3)."""
    hit = [i for f in positions for i, (s, e) in enumerate(spans) if f < e and f >= s]
    return list(set(hit))


def lmms_uniform_lines(lines: Sequence[Line], *, total_frames: int, fps: float, n: int) -> list[Line]:
    """Step 3 of the module docstring on parsed lines (used for LongVideoBench's JSON)."""
    positions = _positions(total_frames, fps, n)
    spans = [(int(ln.start * fps), int(ln.end * fps)) for ln in lines]
    return [lines[i] for i in _hit_order(spans, positions)]


_LMMS_FONT = re.compile(r'<font color="white" size=".72c">(.*?)</font>')


def _lmms_time(text: str) -> float:
    h, m, s_ms = text.split(":")
    s, ms = s_ms.split(",")
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000  # lmms-eval's arithmetic, same order


def load_srt_lmms(path: str | Path) -> list[tuple[float, float, str]]:
    """An .srt file read as lmms-eval 0.7.3 reads it (step 2 of the module docstring):
    ``(start_s, end_s, raw_text)`` in file order, tags kept, the last of identical times."""
    raw = Path(path).read_bytes().decode("utf-8", errors="replace")
    content = raw.replace("\r\n", "\n").replace("\r", "\n")  # Python's universal newlines
    entries: dict[tuple[float, float], str] = {}
    for section in content.split("\n\n"):
        if not section.strip():
            continue
        lines = section.split("\n")
        if len(lines) < 3:
            continue
        try:
            start_s, end_s = lines[1].split(" --> ")
            key = (_lmms_time(start_s), _lmms_time(end_s))
        except ValueError:  # lmms-eval raises here; vidsieve skips the block
            continue
        entries[key] = " ".join(lines[2:])
    return [(a, b, text) for (a, b), text in entries.items()]


def lmms_uniform_block(path: str | Path | None, *, total_frames: int, fps: float, n: int) -> str:
    """The subtitle block lmms-eval 0.7.3 puts in a Video-MME prompt (module docstring).

    path: the .srt file, or None when the video has none (-> "No subtitles available").
    total_frames, fps: the video's frame count and frame rate; n: ``frame_num`` (32 in
    lmms-eval's default task; -1 = every frame).
    """
    from .prompts import VIDEOMME_NO_SUBTITLES

    if path is None or not Path(path).exists():
        return VIDEOMME_NO_SUBTITLES
    entries = load_srt_lmms(path)
    positions = _positions(total_frames, fps, n)
    spans = [(int(a * fps), int(b * fps)) for a, b, _ in entries]
    texts = []
    for i in _hit_order(spans, positions):
        m = _LMMS_FONT.findall(entries[i][2])
        if m:
            texts.append(m[0])
    return "\n".join(texts)


def subtitle_text(lines: Sequence[Line]) -> str:
    return "\n".join(ln.text for ln in lines)

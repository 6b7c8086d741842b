"""LongVideoBench validation set in its official layout (HF ``longvideobench/LongVideoBench``).

Layout under ``--data DIR``::

    DIR/lvb_val.json              list of question records
    DIR/videos/{video_path}       the videos
    DIR/subtitles/{subtitle_path} subtitles (JSON lists, or .srt)

Fields used: ``id, video_id, video_path, question, option0..option4`` ("N/A" for absent
options) or ``candidates``, ``correct_choice`` (int), ``duration_group``,
``question_category``, ``subtitle_path``, ``starting_timestamp_for_subtitles``,
``duration``.

Options: lmms-eval builds a question's options from ``option0..option4`` (skipping "N/A"),
so vidsieve does too whenever those fields exist; ``candidates`` (the JSON release's list) is
used only when they do not. When a record has both and they disagree, ``option0..4`` win
(the letters and ``correct_choice`` then index them, as in lmms-eval) and the loader warns
once with the number of such records.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from .questions import DatasetError, Question

BENCHMARK = "longvideobench"
ANNOTATION = "lvb_val.json"
REQUIRED_FIELDS = ("id", "video_path", "question", "correct_choice", "duration_group", "question_category")
GROUP_FIELDS = ("duration_group", "question_category")


def find_annotation(root: Path) -> Path:
    if root.is_file() and root.suffix == ".json":
        return root
    if not root.is_dir():
        raise DatasetError(f"LongVideoBench folder not found: {root}")
    p = root / ANNOTATION
    if not p.exists():
        raise DatasetError(
            f"No LongVideoBench annotation: {p} does not exist (the lvb_val.json of the HF "
            "dataset longvideobench/LongVideoBench)."
        )
    return p


def _options(rec: dict[str, Any]) -> list[str] | None:
    """``option0..option4`` without "N/A" (and absent ones), or None when there are none."""
    opts = [rec.get(f"option{i}") for i in range(5)]
    if all(o is None for o in opts):
        return None
    return [str(o) for o in opts if o is not None and o != "N/A"]


def candidates_of(rec: dict[str, Any], where: str) -> list[str]:
    """The answer options as lmms-eval builds them (module docstring): ``option0..4`` when
    present, else ``candidates``."""
    opts = _options(rec)
    if opts is not None:
        return opts
    if rec.get("candidates") is not None:
        return [str(c) for c in rec["candidates"]]
    raise DatasetError(f"{where} has neither 'candidates' nor 'option0'..'option4'.")


def _disagree(rec: dict[str, Any]) -> bool:
    opts = _options(rec)
    cands = rec.get("candidates")
    return opts is not None and cands is not None and [str(c) for c in cands] != opts


def load_longvideobench(data: str | Path) -> list[Question]:
    """Every question of ``lvb_val.json`` in file order."""
    root = Path(data)
    ann = find_annotation(root)
    if root.is_file():
        root = ann.parent
    try:
        records = json.loads(ann.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DatasetError(f"{ann} is not a readable JSON file ({e}).") from None
    if not isinstance(records, list):
        raise DatasetError(f"{ann} must hold a JSON list of question records; got {type(records).__name__}.")
    out: list[Question] = []
    seen: set[str] = set()
    disagree = 0
    for i, rec in enumerate(records):
        where = f"{ann} record {i}"
        missing = [f for f in REQUIRED_FIELDS if f not in rec]
        if missing:
            raise DatasetError(f"{where} lacks the LongVideoBench field(s) {', '.join(missing)}.")
        qid = str(rec["id"])
        if qid in seen:
            raise DatasetError(f"{ann}: id {qid!r} appears twice (record {i}).")
        seen.add(qid)
        cands = candidates_of(rec, where)
        disagree += _disagree(rec)
        letters = tuple(chr(ord("A") + j) for j in range(len(cands)))
        try:
            correct = int(rec["correct_choice"])
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: correct_choice must be an int; got {rec['correct_choice']!r}.") from None
        if not 0 <= correct < len(cands):
            raise DatasetError(f"{where}: correct_choice {correct} is outside its {len(cands)} candidates.")
        sub_name = rec.get("subtitle_path")
        sub = root / "subtitles" / str(sub_name) if sub_name else None
        duration = rec.get("duration")
        out.append(
            Question(
                benchmark=BENCHMARK, qid=qid,
                video_id=str(rec.get("video_id") or Path(str(rec["video_path"])).stem),
                video=root / "videos" / str(rec["video_path"]), question=str(rec["question"]),
                options=tuple(cands), letters=letters, answer=letters[correct],
                subtitle=sub if sub is not None and sub.exists() else None,
                subtitle_offset=float(rec.get("starting_timestamp_for_subtitles") or 0.0),
                duration=None if duration is None else float(duration),
                groups={k: str(rec[k]) for k in GROUP_FIELDS}, raw=dict(rec),
            )
        )
    if disagree:
        warnings.warn(
            f"{ann}: {disagree} record(s) have 'candidates' that disagree with option0..option4; "
            "following option0..option4 as lmms-eval does.",
            stacklevel=2,
        )
    return out

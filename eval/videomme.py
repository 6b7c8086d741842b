"""Video-MME in its official layout (HF dataset ``lmms-eval/Video-MME``), read offline.

Layout under ``--data DIR``::

    DIR/videomme/test-00000-of-00001.parquet   (also accepted: DIR/test-*.parquet)
    DIR/data/{videoID}.mp4                      (.MP4 and .mkv are tried, as lmms-eval does)
    DIR/subtitle/{videoID}.srt                  (optional; only for --subtitles on)

Fields: ``video_id, duration, domain, sub_category, url, videoID, question_id, task_type,
question, options, answer``; ``options`` carry letters ("A. Apples."), ``answer`` is a letter.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .questions import DatasetError, Question

BENCHMARK = "videomme"
REQUIRED_FIELDS = (
    "videoID", "question_id", "question", "options", "answer", "duration", "domain",
    "sub_category", "task_type",
)
GROUP_FIELDS = ("duration", "domain", "sub_category", "task_type")
VIDEO_EXTENSIONS = (".mp4", ".MP4", ".mkv")
_LETTER = re.compile(r"^\s*([A-Z])[.)]")


def find_annotation(root: Path) -> Path:
    """The annotation parquet under ``root`` (clear error naming what was looked for)."""
    if root.is_file() and root.suffix == ".parquet":
        return root
    if not root.is_dir():
        raise DatasetError(f"Video-MME folder not found: {root}")
    for pattern in ("videomme/test-*.parquet", "test-*.parquet", "videomme/*.parquet", "*.parquet"):
        hits = sorted(root.glob(pattern))
        if hits:
            return hits[0]
    raise DatasetError(
        f"No Video-MME annotation in {root}: expected {root / 'videomme' / 'test-00000-of-00001.parquet'} "
        "(the parquet of the HF dataset lmms-eval/Video-MME)."
    )


def video_path(root: Path, video_id: str) -> Path:
    """``data/{videoID}.mp4``, else ``.MP4`` / ``.mkv`` if present (else the .mp4 path)."""
    for ext in VIDEO_EXTENSIONS:
        p = root / "data" / f"{video_id}{ext}"
        if p.exists():
            return p
    return root / "data" / f"{video_id}.mp4"


def _to_list(v: Any) -> list[str]:
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, str):
        return [v]
    return [str(x) for x in v]


def load_videomme(data: str | Path, *, durations: tuple[str, ...] | None = None) -> list[Question]:
    """Every question of the annotation, in file order (optionally only some durations)."""
    import pandas as pd

    root = Path(data)
    ann = find_annotation(root)
    if ann.is_file() and root.is_file():
        root = ann.parent.parent if ann.parent.name == "videomme" else ann.parent
    try:
        df = pd.read_parquet(ann)
    except Exception as e:
        raise DatasetError(f"{ann} is not a readable parquet file ({e}).") from None
    missing = [f for f in REQUIRED_FIELDS if f not in df.columns]
    if missing:
        raise DatasetError(
            f"{ann} lacks the Video-MME field(s) {', '.join(missing)} "
            f"(found: {', '.join(map(str, df.columns))})."
        )
    out: list[Question] = []
    seen: set[str] = set()
    for i, rec in enumerate(df.to_dict("records")):
        qid = str(rec["question_id"])
        if qid in seen:
            raise DatasetError(f"{ann}: question_id {qid!r} appears twice (row {i}).")
        seen.add(qid)
        if durations and str(rec["duration"]) not in durations:
            continue
        options = _to_list(rec["options"])
        letters = []
        for j, opt in enumerate(options):
            m = _LETTER.match(opt)
            letters.append(m.group(1) if m else chr(ord("A") + j))
        answer = str(rec["answer"]).strip()
        if answer not in letters:
            raise DatasetError(f"{ann}: question {qid} has answer {answer!r}, not one of its options {letters}.")
        vid = str(rec["videoID"])
        sub = root / "subtitle" / f"{vid}.srt"
        raw = {k: (_to_list(v) if k == "options" else v) for k, v in rec.items()}
        out.append(
            Question(
                benchmark=BENCHMARK, qid=qid, video_id=vid, video=video_path(root, vid),
                question=str(rec["question"]), options=tuple(options), letters=tuple(letters),
                answer=answer, subtitle=sub if sub.exists() else None,
                groups={k: str(rec[k]) for k in GROUP_FIELDS}, raw=_jsonable(raw),
            )
        )
    return out


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if hasattr(v, "item") and not hasattr(v, "__len__"):
            v = v.item()
        out[str(k)] = v if isinstance(v, (str, int, float, bool, list, type(None))) else str(v)
    return out

"""One benchmark question, as both loaders produce it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidsieve.errors import VidsieveError


class DatasetError(VidsieveError):
    """A benchmark folder or annotation file is missing something (named in the message)."""


@dataclass(frozen=True)
class Question:
    """A multiple-choice question about one video.

    qid:          unique id within the benchmark (Video-MME ``question_id``, LVB ``id``).
    video_id:     questions with the same ``video_id`` share decoding and features.
    video:        expected video path (it may be missing; the run records an error row).
    question:     question text.
    options:      options as the annotation gives them (Video-MME: "A. Apples."; LVB: the
                  candidate texts, "N/A" removed); the prompt builders take them as they are.
    letters:      option letters, aligned with ``options``; ``answer``: the correct letter.
    subtitle:     subtitle file path or None; ``subtitle_offset``: seconds to subtract from
                  subtitle times (LVB ``starting_timestamp_for_subtitles``).
    duration:     video length in seconds if the annotation states it (else None).
    groups:       metric breakdown keys -> value (e.g. ``{"duration": "short"}``).
    raw:          the annotation record (JSON-ready), for prompts that need original fields.
    """

    benchmark: str
    qid: str
    video_id: str
    video: Path
    question: str
    options: tuple[str, ...]
    letters: tuple[str, ...]
    answer: str
    subtitle: Path | None = None
    subtitle_offset: float = 0.0
    duration: float | None = None
    groups: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

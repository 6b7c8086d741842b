"""The "answerer" protocol the runner drives, and a deterministic fake answerer.

An answerer turns (video, question) into raw text plus statistics. The runner opens one
:class:`VideoSession` per video and asks all of that video's questions through it, so the
session can keep per-video work (decoded frames, frame features, vision-tower outputs, a
shared-prefix KV cache) between questions.

Because the prompt may depend on which frames are shown (subtitles aligned to the selected
frames), a request carries a ``build_prompt(timestamps) -> str`` callback instead of a fixed
prompt; the session calls it once it knows the frames.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .questions import Question


@dataclass
class AnswerRequest:
    """One question put to a video session.

    query:          text a query-aware selector may use (question + options).
    build_prompt:   seconds of the shown frames ``[K]`` -> the full text prompt.
    max_new_tokens: generation length (greedy decoding).
    """

    question: Question
    query: str
    build_prompt: Callable[[np.ndarray], str]
    max_new_tokens: int = 16


@dataclass
class Answer:
    """What a session returns for one request.

    frames:        source frame indices fed to the model ``[K]``; ``timestamps`` their seconds.
    visual_tokens: visual tokens that entered the LLM; ``input_tokens``: whole prompt length.
    timings:       seconds: ``decode``, ``features``, ``select``, ``prefill`` (time to first
                   token), ``generate``, ``total``; ``reused`` names the per-video work reused.
    """

    text: str
    prompt: str
    frames: list[int]
    timestamps: list[float]
    visual_tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


class VideoSession(Protocol):
    def answer(self, request: AnswerRequest) -> Answer: ...

    def close(self) -> None: ...


class Answerer(Protocol):
    """Opens per-video sessions. ``open`` raises a VideoError for a missing/corrupt video."""

    def describe(self) -> dict[str, Any]: ...

    def open(self, video: Path) -> VideoSession: ...


# ---------------------------------------------------------------------------------------------
# Deterministic fake (tests, demos, plumbing checks without a model)

#: answer styles the fake cycles through: the tricky outputs the parsers must survive.
FAKE_TEMPLATES = (
    "{L}", "({L})", "The answer is {L}.", "Based on the video, {L}", "{l}", "{L}. {opt}",
    "The best answer is: {L}", "I cannot tell from these frames.",
)


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


class FakeSession:
    """Decodes the uniformly chosen frames once per video (``reuse=True``), then answers with a
    letter derived from a hash of (seed, question id, decoded pixels)."""

    def __init__(self, owner: FakeAnswerer, video: Path) -> None:
        from vidsieve.decoding import probe

        self.owner = owner
        self.video = video
        self.meta = probe(video)  # raises VideoNotFoundError / VideoDecodeError
        self._cache: tuple[np.ndarray, np.ndarray, float] | None = None

    def _frames(self) -> tuple[np.ndarray, np.ndarray, float, bool]:
        from vidsieve.decoding import decode_frames
        from vidsieve.selectors.uniform import centered_rows, linspace_rows

        if self.owner.reuse and self._cache is not None:
            idx, ts, digest = self._cache
            return idx, ts, digest, True
        n, k = self.meta.num_frames, min(self.owner.budget_frames, self.meta.num_frames)
        rows = centered_rows(n, k) if self.owner.uniform_rule == "centered" else linspace_rows(n, k)
        fr = decode_frames(self.video, rows)
        digest = float(fr.pixels.mean())
        self._cache = (fr.indices, fr.timestamps, digest)
        return fr.indices, fr.timestamps, digest, False

    def answer(self, request: AnswerRequest) -> Answer:
        t0 = time.perf_counter()
        idx, ts, digest, reused = self._frames()
        t1 = time.perf_counter()
        prompt = request.build_prompt(ts)
        if self.owner.delay:
            time.sleep(self.owner.delay)  # stands in for model time (resume tests kill mid-run)
        q = request.question
        h = _h(self.owner.seed, q.qid, round(digest, 3))
        letters = q.letters or ("A", "B", "C", "D")
        if q.answer in letters and h % 100 < self.owner.accuracy * 100:
            letter = q.answer
        else:
            letter = letters[h % len(letters)]
        tpl = FAKE_TEMPLATES[(h >> 8) % len(FAKE_TEMPLATES)]
        j = letters.index(letter)
        opt = q.options[j] if j < len(q.options) else ""
        text = tpl.format(L=letter, l=letter.lower(), opt=opt)
        t2 = time.perf_counter()
        return Answer(
            text=text, prompt=prompt, frames=[int(i) for i in idx], timestamps=[float(t) for t in ts],
            visual_tokens=len(idx) * self.owner.tokens_per_frame, input_tokens=None,
            output_tokens=len(text.split()),
            timings={"decode": t1 - t0, "generate": t2 - t1, "total": t2 - t0},
            reused=["decode"] if reused else [],
        )

    def close(self) -> None:
        self._cache = None


@dataclass
class FakeAnswerer:
    """No model: right with probability ``accuracy`` (hash-seeded, deterministic), answers in
    the tricky formats of :data:`FAKE_TEMPLATES`. Decodes real frames, so missing or corrupt
    videos fail exactly as they would for a model."""

    budget_frames: int = 32
    accuracy: float = 0.6
    seed: int = 0
    uniform_rule: str = "linspace"
    reuse: bool = True
    tokens_per_frame: int = 196
    delay: float = 0.0

    def describe(self) -> dict[str, Any]:
        return {
            "model": "fake", "frames": f"uniform ({self.uniform_rule})", "tokens": None,
            "fake_accuracy": self.accuracy, "seed": self.seed, "reuse": self.reuse, "delay": self.delay,
        }

    def open(self, video: Path) -> FakeSession:
        return FakeSession(self, Path(video))

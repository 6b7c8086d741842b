"""What a call fed the LLM and how long it took (:class:`Stats`), the reusable vision-tower
pass (:class:`EncodeCache`) and the first-token timer used by ``generate``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import AdapterError
from .frames import PreparedVideo, VideoTokens
from .tower_stats import TowerRequest


@dataclass
class Stats:
    """What the last call fed the LLM and how long each stage took (``VideoLLM.last_stats``).

    frames: distinct chosen frames per video (<= budget.frames); frame_indices: the source
    indices fed to the processor (exactly the chosen frames; Qwen's processor pads an odd count).
    tokens: visual tokens fed per video; original_tokens: what the chosen frames cost unpruned.
    prompt_tokens: per row, the prompt's length as fed to the LLM (text + kept visual tokens,
    no padding). encode_reused: whether the vision tower was skipped (an :class:`EncodeCache`).
    timings (seconds): ``features`` (candidate descriptors for the frame selector), ``decode``
    (decoding the chosen frames), ``encode`` (processor + vision tower), ``select`` (frame +
    token selection), and after ``generate``: ``prefill`` (until the first logits),
    ``generate`` (the rest), ``time_to_first_token``, ``total``.
    peak_memory_bytes: ``torch.cuda.max_memory_allocated`` on a GPU (``peak_memory_kind``
    says which), else the process's max RSS (monotone: an upper bound).
    """

    frames: list[int] = field(default_factory=list)
    frame_indices: list[list[int]] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    original_tokens: list[int] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    encode_reused: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: int | None = None
    peak_memory_kind: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": list(self.frames),
            "frame_indices": [list(x) for x in self.frame_indices],
            "tokens": list(self.tokens),
            "original_tokens": list(self.original_tokens),
            "prompt_tokens": list(self.prompt_tokens),
            "encode_reused": self.encode_reused,
            "timings": dict(self.timings),
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_memory_kind": self.peak_memory_kind,
        }


class EncodeCache:
    """One vision-tower pass kept for reuse by later calls on the SAME prepared video(s).

    Pass one as ``encode_cache=`` to :meth:`VideoLLM.prepare` / :meth:`VideoLLM.generate`
    together with the :class:`PreparedVideo` objects that :meth:`VideoLLM.select_frames`
    returned. While empty, the call runs the vision tower and fills it; once filled, a call
    with the same PreparedVideo objects (the same objects, in the same order, frame indices
    unchanged) on the same adapter skips the tower and reuses its output and the tower
    statistics the token selector reads. Prompts may differ: the tower sees only the frames,
    and token selectors see no prompt, so the result is bit-identical to running the tower
    again. Anything else raises :class:`AdapterError` (clear the cache, or use a new one).

    encoded: what :meth:`VideoLLM.encode` returned: the model's encoder output and per video a
             :class:`VideoTokens` (``grid`` ``[F, h, w, D]``, ``tail`` ``[n_tail, D]``).
    stats:   what :meth:`VideoLLM.capture_tower_stats` captured (``attention[layer]`` and
             ``cls``: lists of ``[L]`` per chunk), or None when the token selector reads none.
    """

    encoded: tuple[Any, list[VideoTokens]] | None
    stats: dict[str, Any] | None
    # what the entry is valid for: the adapter, the prepared videos (held, so they are compared
    # by identity safely), their frame indices, and the statistics the token selector asked for
    _owner: Any
    _videos: tuple[PreparedVideo, ...]
    _indices: list[np.ndarray]
    _wanted: TowerRequest

    def __init__(self) -> None:
        self.clear()

    @property
    def filled(self) -> bool:
        return self.encoded is not None

    def clear(self) -> None:
        """Drop the stored pass (the next call fills the cache again)."""
        self.encoded, self.stats = None, None
        self._owner, self._videos, self._indices, self._wanted = None, (), [], TowerRequest()

    def fill(self, owner: Any, videos: Sequence[PreparedVideo], wanted: TowerRequest,
             encoded: tuple[Any, list[VideoTokens]], stats: dict[str, Any] | None) -> None:
        """Store one tower pass over ``videos`` (called by :meth:`VideoLLM.prepare`)."""
        self.encoded, self.stats = encoded, stats
        self._owner, self._videos, self._wanted = owner, tuple(videos), wanted
        self._indices = [pv.frames.indices.copy() for pv in videos]

    def check(self, owner: Any, videos: Sequence[PreparedVideo], wanted: TowerRequest) -> None:
        """Raise :class:`AdapterError` unless the stored pass is valid for this call."""
        if owner is not self._owner:
            raise AdapterError("This EncodeCache was filled by another VideoLLM; use one cache per adapter.")
        if len(videos) != len(self._videos) or any(a is not b for a, b in zip(videos, self._videos)):
            raise AdapterError(
                f"This EncodeCache holds the vision-tower output of other prepared video(s) "
                f"({len(self._videos)} cached, {len(videos)} given); reuse is only valid for the same "
                "PreparedVideo objects, in the same order. Call cache.clear() or use a new EncodeCache."
            )
        if any(not np.array_equal(pv.frames.indices, idx) for pv, idx in zip(videos, self._indices)):
            raise AdapterError("The frames of a cached PreparedVideo changed since the EncodeCache was filled.")
        if wanted != self._wanted:
            raise AdapterError(
                f"The token selector now reads tower statistics {wanted} but the EncodeCache holds "
                f"{self._wanted}; use a new EncodeCache."
            )


class FirstTokenTimer:
    """A logits processor that records when generation produced its first scores (end of prefill)."""

    def __init__(self) -> None:
        self.first: float | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.first is None:
            self.first = time.perf_counter()
        return scores

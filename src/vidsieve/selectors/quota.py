"""QuoTA: query-oriented token assignment over a duration-dependent number of frames.

Source: "QuoTA: Query-oriented Token Assignment via CoT Query Decouple for Long Video
Comprehension" (arXiv 2503.08689) and the authors' released code (github.com/MAC-AutoML/QuoTA:
``quota_pipeline.py``, ``core/llava_arch.py`` ``token_compress``). Scoring, prompts and CoT decoupling live in
:mod:`vidsieve.selectors.quota_scoring`.

Steps:

1. Frame count grows with duration: ``T_q = base_frames + int(hours * frames_per_hour)``
   (released 96 + int(hours*64)), evenly sampled over the candidates with the lmms-eval
   linspace rule (released: ``np.linspace(0, N-1, T_q, dtype=int)`` over the video). The
   budget caps it: ``n = min(budget.frames, T_q, T)``.
2. Optional CoT query decoupling (``generate``: the LVLM as text-in/text-out callable) turns
   the question into an object list for the scorer.
3. A :class:`~vidsieve.selectors.quota_scoring.FrameScorer` gives ``p_i`` in ``[0, 1]`` per
   sampled frame (default: image-text cosine from the frame encoder, see
   :class:`~vidsieve.selectors.quota_scoring.SimilarityScorer`; released: Qwen2-VL-2B yes/no).
4. Weights ``w_i = (100 p_i)^power`` (released power 2), normalised to sum 1 (all zero: equal).
5. Token allotment ``n_i = int(N_t * w_i)`` with ``N_t = budget.tokens`` (or
   ``tokens_per_frame * n`` without a token budget: every frame then keeps its native count).
   Frames with ``n_i <= 0`` are dropped.

Cap: vidsieve caps *every* frame at ``tokens_per_frame`` (its native LLM tokens) and gives the
excess to the uncapped frames in proportion to their weights (exact water-filling, repeated
until no frame exceeds the cap). The released code caps only for its non-default assigners
(one pass of ``scale_weights``); its default bilinear assigner does not cap and upsamples a
dominant frame past native size. Excess that only zero-weight frames could take is left unused,
as released.

Budget contract: the frame count is ``min(budget.frames, T_q, T)`` minus dropped frames, so it
can be below ``budget.frames``: ``fills_budget = False``. At least one frame is always kept:
if every ``n_i`` rounds to 0 (a token budget below the frame count), the best frame alone gets
``min(N_t, tokens_per_frame)``. ``sum(frame_tokens) <= N_t`` always (floors), and each entry is
``<= tokens_per_frame``. ``extras["grids"]`` gives the released target grid per kept frame
(:func:`target_grid`) for a bilinear token assigner.

In the model path (``vidsieve.wrap``) the frames are chosen from the candidate features before
any model runs; the per-frame allotments become the token selector's allotment on the grid
entering the LLM (summed over each Qwen temporal group of 2 frames); ``quota-assign`` realises
them there. With ``vidsieve.adapters.scoring.use_vlm_quota`` the scorer is the wrapped VLM's
(or a smaller one's) yes/no probability per frame, the released protocol.

Deviations: the cap for all assigners (above); uniform sampling over the candidates rather
than over every decoded frame; ``Selection.scores`` is None (only the sampled frames are
scored; their ``p`` is in ``extras["p"]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParameterError
from ..params import Choice, Float, Int, NoneValue, Predicate
from ..registry import register_selector
from ..types import Budget, FrameFeatures, Query
from .base import FrameSelector, SelectOutput
from .quota_scoring import FrameScorer, SimilarityScorer, decouple_query
from .uniform import linspace_rows


def quota_frame_count(duration_s: float, base_frames: int = 96, frames_per_hour: int = 64) -> int:
    """Released rule: ``base_frames + int(duration_s / 3600 * frames_per_hour)``."""
    return int(base_frames + int(duration_s / 3600.0 * frames_per_hour))


def cap_weights(weights: np.ndarray, cap: float) -> np.ndarray:
    """Normalise ``weights`` to sum 1, then cap each at ``cap`` and give the excess away.

    The excess goes to uncapped items in proportion to their weights, repeatedly, until none
    exceeds ``cap`` (water-filling). If ``cap * N <= 1`` every item gets ``cap``. Zero weights
    stay zero, so excess only they could take is dropped. Returns float64 ``[N]``.
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.size
    if n == 0 or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ParameterError("cap_weights needs a non-empty array of finite weights >= 0.")
    w = w / w.sum() if w.sum() > 0 else np.full(n, 1.0 / n)
    if cap * n <= 1.0:
        return np.full(n, cap)
    capped = np.zeros(n, dtype=bool)
    out = w.copy()
    while True:
        free = ~capped
        mass = 1.0 - cap * capped.sum()
        total_free = w[free].sum()
        out = np.where(capped, cap, w * (mass / total_free if total_free > 0 else 0.0))
        over = free & (out > cap)
        if not over.any():
            return out
        capped |= over


def target_grid(n_tokens: np.ndarray) -> np.ndarray:
    """Released bilinear target grid per allotment: ``h = w = floor(sqrt(n))``, ``h + 1`` if
    ``(h+1)*w <= n``. int64 ``[N, 2]`` of ``(h, w)``; ``h*w <= n``."""
    n = np.asarray(n_tokens, dtype=np.int64)
    s = np.floor(np.sqrt(n.astype(np.float64))).astype(np.int64)
    s -= (s * s > n).astype(np.int64)  # guard float rounding
    s += ((s + 1) * (s + 1) <= n).astype(np.int64)
    h = s + ((s * s < n) & (s * (s + 1) <= n)).astype(np.int64)
    return np.stack([h, s], axis=-1)


def _is_scorer(v: Any) -> bool:
    return v == "similarity" or (not isinstance(v, str) and isinstance(v, FrameScorer))


@register_selector("quota", "QuoTA: duration-dependent frame count, query-scored per-frame token allotment.")
class QuoTASelector(FrameSelector):
    """QuoTA frame sampling and token assignment (see the module docstring).

    base_frames, frames_per_hour: frame count rule (released 96, 64).
    tokens_per_frame: native LLM tokens of one frame, the per-frame cap (196: LLaVA-Video).
    power: weight exponent, ``w = (100 p)^power`` (released 2).
    scorer: ``"similarity"`` (frame-encoder cosine) or a
        :class:`~vidsieve.selectors.quota_scoring.FrameScorer` instance.
    similarity_map: ``p`` from cosine for the similarity scorer: ``"relu"``, ``"affine"``,
        ``"minmax"`` (see :class:`~vidsieve.selectors.quota_scoring.SimilarityScorer`).
    generate: text-in/text-out LVLM callable for CoT query decoupling, or None (no objects;
        a VLM scorer then asks the fallback "sufficient information" question).
    """

    uses_query = True
    fills_budget = False
    _parameter_constraints = {
        "base_frames": [Int(ge=1)],
        "frames_per_hour": [Int(ge=0)],
        "tokens_per_frame": [Int(ge=1)],
        "power": [Float(gt=0)],
        "scorer": [Predicate(_is_scorer, "'similarity' or a FrameScorer (an object with score())")],
        "similarity_map": [Choice("relu", "affine", "minmax")],
        "generate": [NoneValue(), Predicate(callable, "a callable str -> str")],
    }

    def __init__(
        self,
        *,
        base_frames: int = 96,
        frames_per_hour: int = 64,
        tokens_per_frame: int = 196,
        power: float = 2.0,
        scorer: Any = "similarity",
        similarity_map: str = "relu",
        generate: Any = None,
    ) -> None:
        self.base_frames = base_frames
        self.frames_per_hour = frames_per_hour
        self.tokens_per_frame = tokens_per_frame
        self.power = power
        self.scorer = scorer
        self.similarity_map = similarity_map
        self.generate = generate
        self._validate_params()

    def _select(self, features: FrameFeatures, *, k: int, budget: Budget, query: Query | None) -> SelectOutput:
        t = len(features)
        duration = features.duration
        if duration <= 0 and t > 1:
            duration = float(features.timestamps[-1] - features.timestamps[0])
        n_rule = quota_frame_count(duration, self.base_frames, self.frames_per_hour)
        n = min(k, n_rule)
        sampled = linspace_rows(t, n)
        objects = None
        if self.generate is not None and query is not None and query.text:
            objects = decouple_query(query.text, self.generate)
        scorer: FrameScorer = (
            SimilarityScorer(mapping=self.similarity_map) if self.scorer == "similarity" else self.scorer
        )
        p = np.asarray(scorer.score(features, sampled, objects=objects, query=query), dtype=np.float64)
        if p.shape != sampled.shape or not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
            raise ParameterError(
                f"The QuoTA scorer must return {sampled.size} finite probabilities in [0, 1]; "
                f"got shape {p.shape}."
            )
        raw = (100.0 * p) ** self.power
        total = budget.tokens if budget.tokens is not None else self.tokens_per_frame * sampled.size
        w = cap_weights(raw, self.tokens_per_frame / total)
        # int() as released; the 1e-9 absorbs float error at exact integers (sum stays <= total).
        alloc = np.minimum(np.floor(total * w + 1e-9).astype(np.int64), self.tokens_per_frame)
        keep = alloc > 0
        if not keep.any():
            keep[int(np.argmax(w))] = True
            alloc[keep] = min(total, self.tokens_per_frame)
        rows = sampled[keep]
        frame_tokens = alloc[keep]
        extras: dict[str, Any] = {
            "frame_rule_count": n_rule,
            "sampled_rows": sampled,
            "p": p,
            "weights": w,
            "dropped": int((~keep).sum()),
            "total_tokens": int(total),
            "objects": objects,
            "scorer": repr(scorer),
            "grids": target_grid(frame_tokens),
        }
        if query is None or (query.embedding is None and self.scorer == "similarity"):
            extras["query_free"] = "no query embedding: equal weights (uniform allotment)"
        return SelectOutput(rows=rows, frame_tokens=frame_tokens, extras=extras)

"""KTV key tokens: per-frame top-k by importance and (1 - redundancy).

Paper: arXiv 2602.03615 (released code hktk07/KTV). Score per token
(:func:`key_token_scores`)::

    alpha * minmax(importance) + (1 - alpha) * (1 - minmax(redundancy))

redundancy = mean cosine similarity of the token to the other tokens of its frame, computed in
O(L*D) (no L x L matrix). Each frame keeps its ``allotment[f]`` best tokens, in raster order.

Stages as public functions: :func:`cls_logits` (the released importance: [CLS] -> patch
logits over the full width), :func:`key_token_scores` (the score above), :func:`frame_budgets`
(the per-frame token budgets by relevance rank: the released ladders, else an even split) and
:func:`vidsieve.tokens._common.topk_mask` (top-k per frame).

Where it runs in each model family (``vidsieve.wrap``), ``mode="released"``:

* LLaVA-NeXT-Video (CLIP, with [CLS]): importance = raw [CLS] logits of the LAST tower layer,
  full width, scaled by ``hidden_size ** -0.5``, no softmax, no head split, as released;
  redundancy on the features entering the projector (the feature layer, -2 for the reference
  models). Deviation: released KTV runs on LLaVA-v1.6's unpooled 24 x 24 grid; this family
  average-pools the grid 2 x 2 before the projector, so the [CLS] logits are average-pooled the
  same way and redundancy is computed on the pooled (pre-projector) features, the tokens the
  LLM actually receives.
* Towers without [CLS] (SigLIP in LLaVA-OneVision, the Qwen ViTs): importance = attention
  received per token at ``attention_layer`` (column sums of the softmax attention, mean over
  heads), mapped to the LLM grid with the family's own reduction (bilinear pooling; sum over
  each 2 x 2 merge window); redundancy on the projected LLM tokens (there the projector's
  input is not on the LLM grid). This is KTV's rule for models without [CLS], not released
  code.

``mode="head-softmax"`` (vidsieve's earlier behaviour): per-head softmax [CLS] rows averaged
over heads, redundancy on the projected tokens unless ``redundancy_source="pre_projector"``.
The mode only changes what the model adapter captures (``tower_request``); given a
:class:`TokenInput`, both modes score the same way.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError
from ..params import Choice, Float, Int, param_error
from ..registry import register_token_selector
from ._common import (
    fallback_importance,
    full_allotment,
    mask_to_index,
    per_frame_stat,
    redundancy_features,
    topk_mask,
)
from .base import TokenInput, TokenSelection, TokenSelector


def cls_logits(q: torch.Tensor, k: torch.Tensor, *, hidden_size: int | None = None) -> torch.Tensor:
    """Released KTV importance: [CLS] -> token logits over the full width.

    q, k: float ``[B, L, C]`` the attention module's query and key projections (token 0 is the
    [CLS]); hidden_size: the scale's width (default ``C``). Returns float32 ``[B, L]``
    ``q[:, 0] . k^T * hidden_size ** -0.5`` (no softmax, no head split; column 0 is [CLS]
    itself, which callers drop).
    """
    if q.ndim != 3 or k.shape != q.shape:
        raise ParameterError(f"cls_logits needs q and k of one shape [B, L, C]; got {tuple(q.shape)} and {tuple(k.shape)}.")
    c = int(q.shape[-1]) if hidden_size is None else int(hidden_size)
    return torch.einsum("bc,blc->bl", q[:, 0].float(), k.float()) * (c ** -0.5)


def key_token_scores(features: torch.Tensor, importance: torch.Tensor, alpha: float,
                     *, backend: str = "auto") -> torch.Tensor:
    """KTV token scores, float32 ``[F, L]``.

    features: ``[F, L, D]`` the features redundancy is computed on; importance: ``[F, L]``.
    ``alpha * minmax(importance) + (1 - alpha) * (1 - minmax(redundancy))`` per frame.
    """
    from vidsieve.kernels.token_scores import ktv_token_scores

    return ktv_token_scores(features, importance.to(features.device), float(alpha), backend=backend)


def frame_budgets(rank: np.ndarray | None, tokens: int, tokens_per_frame: int) -> np.ndarray:
    """int64 ``[K]`` per-frame token budgets of KTV's keyframes.

    rank: int64 ``[K]`` relevance rank of each keyframe (0 = most relevant), or None. The
    released ladders (6 frames: 504 -> [144, 72, 72, 72, 72, 72], 936, 1872; 12 frames: 1872;
    written for 576 tokens per frame and scaled to ``tokens_per_frame``) are applied by rank
    when ``tokens`` matches one; otherwise ``min(tokens // K, tokens_per_frame)`` each (one token
    to each of the first ``tokens`` frames when ``tokens < K``). Never more than ``tokens``.
    """
    from vidsieve.allocation import largest_remainder
    from vidsieve.selectors.ktv import token_ladder

    if rank is None:
        raise param_error("frame_budgets", "rank", "an int array [K] of relevance ranks", rank)
    r = np.asarray(rank, dtype=np.int64)
    k = int(r.size)
    if k == 0 or tokens < 0 or tokens_per_frame < 1:
        raise ParameterError(
            f"frame_budgets needs K >= 1 frames, tokens >= 0 and tokens_per_frame >= 1; got {k}, {tokens}, {tokens_per_frame}."
        )
    ladder = token_ladder(k, int(tokens), int(tokens_per_frame))
    if ladder is not None:
        return ladder[0][r]
    per = min(int(tokens) // k, int(tokens_per_frame))
    if per == 0:
        return largest_remainder(int(tokens), np.ones(k), cap=1)
    return np.full(k, per, dtype=np.int64)


def resolve_importance(
    inputs: TokenInput, importance: str, layer: int, fallback: str, source: str, owner: str
) -> tuple[torch.Tensor, str]:
    """KTV importance float32 ``[F, L]`` and where it came from.

    ``"auto"``: ``cls_attention`` when given, else ``attention[layer]`` when present, else the
    attention-free ``fallback`` (``"norm"`` or ``"distinctiveness"``). ``"cls"`` and
    ``"attention"`` raise a :class:`ParameterError` when their statistic is missing; ``"norm"``
    and ``"distinctiveness"`` never use attention.
    """
    if importance in ("auto", "cls") and inputs.cls_attention is not None:
        return per_frame_stat(inputs.cls_attention, inputs, "cls_attention", owner), "cls_attention"
    if importance == "cls":
        raise ParameterError(
            f"{owner}: importance='cls' but TokenInput.cls_attention is None (the tower has no "
            "[CLS] or it was not hooked); use importance='auto' or 'attention'."
        )
    if importance in ("auto", "attention") and layer in inputs.attention:
        stat = per_frame_stat(inputs.attention[layer], inputs, f"attention[{layer}]", owner)
        return stat, f"attention[{layer}]"
    if importance == "attention":
        have = sorted(inputs.attention)
        raise ParameterError(
            f"{owner}: importance='attention' needs TokenInput.attention[{layer}]; the input has "
            f"layers {have}. Set attention_layer to one of them or use importance='auto'."
        )
    kind = fallback if importance == "auto" else importance
    return fallback_importance(inputs, kind, source, owner)


@register_token_selector(
    "ktv-tokens", "KTV key tokens: per-frame top-k of attention importance and low redundancy."
)
class KTVTokenSelector(TokenSelector):
    """KTV's key-token pruning (arXiv 2602.03615).

    Parameters
    ----------
    mode:
        ``"released"`` (default) or ``"head-softmax"``: what the model adapter captures (see the
        module docstring: raw full-width [CLS] logits + pre-projector redundancy features, or
        per-head softmax [CLS] rows and the projected tokens).
    alpha:
        Weight of importance against (1 - redundancy). Default 0.2, the released code's
        example; the paper's ablation is best near 0.8-0.9.
    importance:
        ``"auto"`` (default): [CLS] attention (``TokenInput.cls_attention``) when present, as
        KTV does on CLIP; else attention received at ``attention_layer``
        (``TokenInput.attention``), KTV's rule for towers without [CLS]; else the
        attention-free ``fallback``. ``"cls"`` / ``"attention"`` force one source and raise if
        it is missing; ``"norm"`` / ``"distinctiveness"`` force an attention-free importance.
    attention_layer:
        Vision layer whose received attention is used (default -2, the layer LLaVA-style models
        take their features from).
    fallback:
        Importance when ``"auto"`` finds no attention (e.g. the ``pixel`` encoder's grids):
        ``"norm"`` (default; L2 norm of each token) or ``"distinctiveness"`` (1 - redundancy,
        which then duplicates the redundancy term: the score reduces to redundancy alone).
    redundancy_source:
        Features for redundancy: ``"auto"`` (``pre_projector`` when given, as KTV uses the
        penultimate vision layer, else the tokens), ``"pre_projector"`` or ``"tokens"``.
    backend:
        Kernel backend for the scores (``"auto"``, ``"torch"``, ``"triton"``).

    Importance statistics are used as given: released KTV feeds raw [CLS] logits (no softmax),
    the paper the softmax; min-max scaling removes the scale, not the softmax's non-linearity,
    so build ``cls_attention`` accordingly (``vidsieve.kernels.attention_received.cls_attention``
    has ``softmax=``). A full allotment returns every token (``embeddings=None``).

    Ties in the score go to the lower raster index (stable sort). ``extras`` records the
    importance and redundancy sources and the per-token ``scores`` (float32 ``[F, L]``).
    """

    _parameter_constraints = {
        "mode": [Choice("released", "head-softmax")],
        "alpha": [Float(ge=0.0, le=1.0)],
        "importance": [Choice("auto", "cls", "attention", "norm", "distinctiveness")],
        "attention_layer": [Int()],
        "fallback": [Choice("norm", "distinctiveness")],
        "redundancy_source": [Choice("auto", "pre_projector", "tokens")],
        "backend": [Choice("auto", "torch", "triton")],
    }

    def __init__(
        self,
        *,
        mode: str = "released",
        alpha: float = 0.2,
        importance: str = "auto",
        attention_layer: int = -2,
        fallback: str = "norm",
        redundancy_source: str = "auto",
        backend: str = "auto",
    ) -> None:
        self.mode = mode
        self.alpha = alpha
        self.importance = importance
        self.attention_layer = attention_layer
        self.fallback = fallback
        self.redundancy_source = redundancy_source
        self.backend = backend
        self._validate_params()

    @property
    def tower_request(self) -> dict:
        """What a model adapter captures for this selector (see the module docstring)."""
        cls = None
        if self.importance in ("auto", "cls"):
            cls = "raw" if self.mode == "released" else "softmax"
        layers = [self.attention_layer] if self.importance in ("auto", "attention") else []
        pre = self.redundancy_source == "pre_projector" or (
            self.mode == "released" and self.redundancy_source == "auto")
        return {"attention_layers": layers, "cls": cls, "pre_projector": pre}

    def _select(self, inputs: TokenInput, allotment: np.ndarray) -> TokenSelection:
        n = inputs.tokens_per_frame
        owner = type(self).__name__
        if full_allotment(allotment, n):
            idx = [torch.arange(n, dtype=torch.int64) for _ in range(inputs.num_frames)]
            return TokenSelection(index=idx, embeddings=None, grid=inputs.grid,
                                  extras={"identity": True})
        imp, imp_src = resolve_importance(
            inputs, self.importance, self.attention_layer, self.fallback,
            self.redundancy_source, owner,
        )
        x, red_src = redundancy_features(inputs, self.redundancy_source, owner)
        scores = key_token_scores(x, imp, float(self.alpha), backend=self.backend)
        k = torch.as_tensor(np.asarray(allotment), dtype=torch.int64)
        keep = topk_mask(scores, k)
        return TokenSelection(
            index=mask_to_index(keep.cpu()),
            embeddings=None,
            grid=inputs.grid,
            extras={"importance_source": imp_src, "redundancy_source": red_src,
                    "scores": scores.cpu()},
        )


__all__ = ["KTVTokenSelector", "cls_logits", "frame_budgets", "key_token_scores", "resolve_importance"]
